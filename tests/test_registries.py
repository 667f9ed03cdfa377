"""Every registered class of every kind round-trips through its config, and every
registered activation's derivative matches finite differences. A class added to a
registry without a case here fails the first test: each kind stays covered."""
import numpy as np
import pytest

import cnnx
import cnnx.models  # noqa: F401 (registers Sequential and Model as layers)
from cnnx import activations, initializers, layers, losses, metrics, optimizers, regularizers

from helpers import numerical_grad

# One instance of each layer class, with arguments away from their defaults.
LAYER_CASES = {
    "InputLayer": lambda: layers.InputLayer(shape=(5, 5, 2), name="in"),
    "Conv2D": lambda: layers.Conv2D(3, (2, 3), strides=2, padding="same", activation="tanh",
                                    use_bias=False, kernel_initializer="he_normal",
                                    kernel_regularizer=regularizers.L2(0.01)),
    "Convolution2D": lambda: layers.Convolution2D(2, (3, 1), padding="same"),
    "Dense": lambda: layers.Dense(4, activation="relu", bias_initializer="ones",
                                  bias_regularizer="l1"),
    "Activation": lambda: layers.Activation("selu"),
    "ReLU": lambda: layers.ReLU(max_value=2.0, negative_slope=0.1, threshold=0.5),
    "LeakyReLU": lambda: layers.LeakyReLU(negative_slope=0.05),
    "Softmax": lambda: layers.Softmax(),
    "Dropout": lambda: layers.Dropout(0.25, seed=3),
    "Flatten": lambda: layers.Flatten(),
    "Reshape": lambda: layers.Reshape((-1, 2)),
    "BatchNormalization": lambda: layers.BatchNormalization(
        momentum=0.9, epsilon=1e-4, center=False, gamma_initializer="random_normal",
        moving_variance_initializer=initializers.Constant(2.0),
        gamma_regularizer=regularizers.L1L2(0.1, 0.2)),
    "MaxPooling2D": lambda: layers.MaxPooling2D((3, 2), strides=1, padding="same"),
    "AveragePooling2D": lambda: layers.AveragePooling2D(2, strides=(1, 2)),
    "GlobalAveragePooling2D": lambda: layers.GlobalAveragePooling2D(keepdims=True),
    "GlobalMaxPooling2D": lambda: layers.GlobalMaxPooling2D(),
    "DepthwiseConv2D": lambda: layers.DepthwiseConv2D(
        (3, 2), strides=2, padding="same", depth_multiplier=3, activation="relu",
        use_bias=False, depthwise_initializer="he_normal", depthwise_regularizer="l2"),
    "SeparableConv2D": lambda: layers.SeparableConv2D(
        4, 3, dilation_rate=2, depth_multiplier=2, activation="tanh",
        pointwise_initializer="zeros", bias_regularizer="l1"),
    "Conv2DTranspose": lambda: layers.Conv2DTranspose(
        3, (2, 3), strides=2, padding="same", output_padding=1, activation="relu",
        kernel_initializer="he_uniform", bias_regularizer="l2"),
    "Conv1D": lambda: layers.Conv1D(4, 3, padding="causal", dilation_rate=2,
                                    activation="relu", bias_initializer="ones"),
    "MaxPooling1D": lambda: layers.MaxPooling1D(3, strides=2, padding="same"),
    "AveragePooling1D": lambda: layers.AveragePooling1D(2),
    "GlobalAveragePooling1D": lambda: layers.GlobalAveragePooling1D(keepdims=True),
    "GlobalMaxPooling1D": lambda: layers.GlobalMaxPooling1D(),
    "LayerNormalization": lambda: layers.LayerNormalization(
        epsilon=1e-5, center=False, gamma_initializer="random_normal"),
    "GroupNormalization": lambda: layers.GroupNormalization(
        groups=2, scale=False, beta_regularizer="l2"),
    "ELU": lambda: layers.ELU(alpha=0.5),
    "PReLU": lambda: layers.PReLU(alpha_initializer="ones", shared_axes=[1, 2]),
    "UpSampling2D": lambda: layers.UpSampling2D((2, 3), interpolation="bilinear"),
    "ZeroPadding2D": lambda: layers.ZeroPadding2D(((1, 2), (0, 3))),
    "Cropping2D": lambda: layers.Cropping2D((1, 2)),
    "Permute": lambda: layers.Permute((2, 1)),
    "RepeatVector": lambda: layers.RepeatVector(4),
    "GaussianNoise": lambda: layers.GaussianNoise(0.3, seed=2),
    "ActivityRegularization": lambda: layers.ActivityRegularization(l1=0.01, l2=0.5),
    "GaussianDropout": lambda: layers.GaussianDropout(0.2),
    "SpatialDropout2D": lambda: layers.SpatialDropout2D(0.4, seed=1),
    "Rescaling": lambda: layers.Rescaling(1 / 127.5, offset=-1),
    "Normalization": lambda: layers.Normalization(mean=[1.0, 2.0], variance=[4.0, 9.0],
                                                  invert=True),
    "CenterCrop": lambda: layers.CenterCrop(3, 5),
    "Resizing": lambda: layers.Resizing(4, 6, interpolation="nearest",
                                        crop_to_aspect_ratio=True),
    "RandomFlip": lambda: layers.RandomFlip("vertical", seed=3),
    "RandomRotation": lambda: layers.RandomRotation((-0.1, 0.2), fill_mode="wrap",
                                                    fill_value=1.0, seed=1),
    "RandomZoom": lambda: layers.RandomZoom(0.2, (-0.1, 0.3), fill_mode="constant"),
    "RandomTranslation": lambda: layers.RandomTranslation(0.1, (-0.2, 0.0)),
    "RandomContrast": lambda: layers.RandomContrast(0.3, value_range=(0, 1)),
    "RandomBrightness": lambda: layers.RandomBrightness((-0.2, 0.1), seed=5),
    "RandomCrop": lambda: layers.RandomCrop(3, 4, seed=5),
    "Add": lambda: layers.Add(name="plus"),
    "Subtract": lambda: layers.Subtract(),
    "Multiply": lambda: layers.Multiply(),
    "Average": lambda: layers.Average(),
    "Maximum": lambda: layers.Maximum(),
    "Minimum": lambda: layers.Minimum(),
    "Concatenate": lambda: layers.Concatenate(axis=1),
    "Sequential": lambda: cnnx.Sequential([cnnx.Input((4,)), layers.Dense(2)]),
    "Model": lambda: _two_input_model(),
}


def _two_input_model():
    a, b = cnnx.Input((3,), name="a"), cnnx.Input((3,), name="b")
    shared = layers.Dense(2, name="shared")
    return cnnx.Model([a, b], layers.concatenate([shared(a), shared(b)]), name="two")


def test_every_registered_layer_has_a_case():
    assert sorted(cls.__name__ for cls in layers.REGISTRY.classes()) == sorted(LAYER_CASES)


@pytest.mark.parametrize("name", sorted(LAYER_CASES))
def test_layer_configs_round_trip(name):
    layer = LAYER_CASES[name]()
    config = layers.serialize(layer)
    again = layers.deserialize(config)
    assert type(again) is type(layer)
    assert layers.serialize(again)["config"] == config["config"]


def _round_trip(registry, serialize, get, instance):
    config = serialize(instance)
    again = get(config)
    assert type(again) is type(instance)
    assert serialize(again) == config
    return config


@pytest.mark.parametrize("instance", [
    optimizers.SGD(0.1, momentum=0.5, nesterov=True, clipnorm=1.0),
    optimizers.Adam(0.01, beta_1=0.8, epsilon=1e-6), optimizers.AdamW(weight_decay=0.01),
    optimizers.RMSprop(rho=0.8, momentum=0.1), optimizers.Adagrad(0.1, epsilon=1e-5),
    optimizers.Ftrl(0.05, learning_rate_power=-0.2, l1_regularization_strength=0.05,
                    beta=0.3),
], ids=lambda o: type(o).__name__)
def test_optimizer_configs_round_trip(instance):
    _round_trip(optimizers.REGISTRY, optimizers.serialize, optimizers.get, instance)


def test_every_registered_class_of_the_other_kinds_round_trips():
    kinds = [(optimizers, optimizers.serialize, optimizers.get),
             (losses, losses.serialize, losses.get),
             (initializers, initializers.serialize, initializers.get),
             (regularizers, regularizers.serialize, regularizers.get)]
    for module, serialize, get in kinds:
        for cls in module.REGISTRY.classes():
            _round_trip(module.REGISTRY, serialize, get, cls())
    for cls in metrics.REGISTRY.classes():
        assert type(metrics.get(cls.__name__)) is cls
    with pytest.raises(ValueError, match=r"Unknown optimizer class 'Nope'; cnnx knows"):
        optimizers.get({"class_name": "Nope", "config": {}})
    with pytest.raises(ValueError, match=r"Unknown loss 'nope'; expected one of"):
        losses.get("nope")


@pytest.mark.parametrize("name", sorted(activations.REGISTRY._by_name))
def test_every_activation_is_one_object_with_its_derivative(name, rng):
    act = activations.get(name)
    assert act is getattr(activations, name)   # aliases (swish, hard_swish) are one object
    assert activations.get(activations.serialize(act)) is act
    assert cnnx.layers.Activation(name).activation is act
    x = rng.standard_normal((3, 5))
    x[np.abs(x) < 1e-2] = 0.5   # away from the kinks of relu and friends
    r = rng.standard_normal(x.shape)
    analytic = act.grad(r, x, act(x))
    numeric = numerical_grad(lambda: float(np.sum(act(x) * r)), x)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-7)

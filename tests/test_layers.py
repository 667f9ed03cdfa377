"""Every layer's backward against finite differences (float64), shapes and configs."""
import numpy as np
import pytest

import cnnx
from cnnx import layers

from helpers import assert_grad, numerical_grad


def _check_layer(layer, x, rng, training=True):
    # A layer's own forward and backward, as a model's plan runs them: each call keeps
    # what its backward needs in a Context, and leaves its weights' gradients there.
    y = layer(x, training=training)
    r = rng.standard_normal(y.shape)

    def loss():
        return float(np.sum(layer.forward(layers.Context(), x, training) * r))

    ctx = layers.Context()
    layer.forward(ctx, x, training)
    dx = layer.backward(ctx, r.copy())
    found = {id(var): g.copy() for var, g in ctx.grads}
    grads = [found[id(w)] for w in layer.trainable_weights]
    assert_grad(dx, numerical_grad(loss, x))
    for w, g in zip(layer.trainable_weights, grads):
        assert_grad(g, numerical_grad(loss, w.value))


LAYERS = [
    lambda: layers.Conv2D(3, 3, activation="relu", dtype="float64"),
    lambda: layers.Conv2D(2, (2, 3), strides=2, padding="same", activation="tanh",
                          dtype="float64"),
    lambda: layers.Conv2D(2, 3, dilation_rate=2, padding="same", use_bias=False,
                          dtype="float64"),
    lambda: layers.MaxPooling2D(2, dtype="float64"),
    lambda: layers.AveragePooling2D(3, strides=2, padding="same", dtype="float64"),
    lambda: layers.GlobalAveragePooling2D(dtype="float64"),
    lambda: layers.GlobalMaxPooling2D(dtype="float64"),
    lambda: layers.Flatten(dtype="float64"),
    lambda: layers.Reshape((-1, 4), dtype="float64"),
    lambda: layers.ReLU(dtype="float64"),
    lambda: layers.ReLU(max_value=0.5, negative_slope=0.1, dtype="float64"),
    lambda: layers.LeakyReLU(dtype="float64"),
    lambda: layers.Activation("sigmoid", dtype="float64"),
    lambda: layers.Activation("elu", dtype="float64"),
    lambda: layers.Activation("selu", dtype="float64"),
    lambda: layers.Activation("gelu", dtype="float64"),
    lambda: layers.Activation("softplus", dtype="float64"),
    lambda: layers.BatchNormalization(dtype="float64"),
]


@pytest.mark.parametrize("make", LAYERS)
def test_layer_gradient(make, rng):
    x = rng.standard_normal((2, 6, 6, 4))
    x[np.abs(x) < 0.05] += 0.2  # away from ReLU kinks
    x[..., :] += rng.permutation(x.size).reshape(x.shape) * 1e-4  # no ties in max pooling
    _check_layer(make(), x, rng)


@pytest.mark.parametrize("activation", ["linear", "relu", "sigmoid", "tanh", "softmax"])
def test_dense_gradient(activation, rng):
    x = rng.standard_normal((3, 5))
    _check_layer(layers.Dense(4, activation=activation, dtype="float64",
                              kernel_regularizer="l2"), x, rng)


def test_dropout_gradient_uses_the_same_mask(rng):
    layer = layers.Dropout(0.4, seed=3, dtype="float64")
    x = rng.standard_normal((4, 10))
    ctx = layers.Context()
    y = layer.forward(ctx, x, training=True)
    kept = y != 0
    np.testing.assert_allclose(y[kept], x[kept] / 0.6)
    r = rng.standard_normal(y.shape)
    np.testing.assert_allclose(layer.backward(ctx, r), r * kept / 0.6)
    assert layer.call(x, training=False) is x  # inference: the identity


def test_flatten_is_row_by_row():
    x = np.arange(2 * 2 * 3 * 2, dtype=np.float32).reshape(2, 2, 3, 2)
    np.testing.assert_array_equal(layers.Flatten()(x), x.reshape(2, 12))


def test_configs_round_trip():
    for make in LAYERS + [lambda: layers.Dense(3, activation="relu", kernel_regularizer="l1"),
                          lambda: layers.Dropout(0.3), lambda: layers.Softmax(),
                          lambda: layers.InputLayer(shape=(5, 5, 1))]:
        layer = make()
        config = layer.get_config()
        again = type(layer).from_config(config)
        assert again.get_config() == config


def test_invalid_arguments_are_rejected_in_init():
    with pytest.raises(ValueError, match=r"Conv2D .*`filters` must be a positive int"):
        layers.Conv2D(0, 3)
    with pytest.raises(ValueError, match=r"`kernel_size` must be >= 1"):
        layers.Conv2D(4, 0)
    with pytest.raises(ValueError, match=r"`padding` must be 'valid' or 'same'"):
        layers.Conv2D(4, 3, padding="full")
    with pytest.raises(ValueError, match=r"Dense .*`units` must be a positive int"):
        layers.Dense(-1)
    with pytest.raises(ValueError, match=r"Dropout .*`rate` must be in \[0, 1\)"):
        layers.Dropout(1.5)
    with pytest.raises(ValueError, match=r"Unknown activation 'relux'"):
        layers.Dense(3, activation="relux")
    with pytest.raises(TypeError, match=r"unexpected keyword argument"):
        layers.Dense(3, unitz=4)


def test_layer_call_checks_its_input_shape():
    layer = layers.Dense(3)
    layer(np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"Input to layer 'dense.*' .*has shape \(2, 5\), "
                                         r"but the layer expects \(None, 4\)"):
        layer(np.zeros((2, 5)))


def test_keras_style_names():
    cnnx.layers.clear_session()
    names = [layers.Conv2D(1, 1).name, layers.Conv2D(1, 1).name,
             layers.MaxPooling2D().name, layers.BatchNormalization().name]
    assert names == ["conv2d", "conv2d_1", "max_pooling2d", "batch_normalization"]


def test_course_filters_by_their_defining_properties(shared_data):
    from cnnx import filters
    path = shared_data / "catsdogs" / "training_set" / "dogs" / "dog.1.jpg"
    pytest.importorskip("PIL")
    photo = cnnx.utils.img_to_array(cnnx.utils.load_img(path))
    constant = np.full_like(photo, 93.0)
    # Each filter keeps the image's shape, RGB channel by channel.
    for name, kernel in filters.FILTERS.items():
        assert filters.apply_filter(photo, kernel).shape == photo.shape, name
    # Detectors of change answer zero to a constant image...
    for name in ("edge_detect", "edge_enhance", "sobel_x", "sobel_y"):
        assert np.abs(filters.apply_filter(constant, name)).max() == 0, name
    # ... and the smoothing and sharpening kernels (weights summing to 1) return it.
    for name in ("sharpen", "blur"):
        np.testing.assert_allclose(filters.apply_filter(constant, name), constant,
                                   rtol=1e-6, err_msg=name)
    # Blur preserves the mean: exactly with wrap-around padding, nearly with reflection.
    assert filters.apply_filter(photo, "blur", "wrap").mean() == pytest.approx(photo.mean(),
                                                                               rel=1e-5)
    assert filters.apply_filter(photo, "blur").mean() == pytest.approx(photo.mean(), rel=1e-3)
    # Sobel-x answers a vertical edge, Sobel-y does not.
    x = np.zeros((8, 8))
    x[:, 4:] = 1
    assert np.abs(filters.apply_filter(x, "sobel_x")[:, 3:5]).min() > 0
    assert np.abs(filters.apply_filter(x, "sobel_y")).max() == 0
    gray = filters.apply_filter(photo[..., 0], "emboss")
    assert gray.shape == photo.shape[:2]
    with pytest.raises(ValueError, match="unknown filter 'glow'"):
        filters.apply_filter(photo, "glow")


def test_plot_model_text():
    model = cnnx.Sequential([cnnx.Input((8, 8, 1)), layers.Conv2D(2, 3, activation="relu"),
                             layers.Flatten(), layers.Dense(2, activation="softmax")])
    text = cnnx.viz.plot_model(model)
    assert "Input (None, 8, 8, 1)" in text and "+ relu -> (None, 6, 6, 2)" in text
    assert text.count("v") >= 3


@pytest.mark.parametrize("make,match", [
    (lambda: layers.InputLayer(), "`shape` is required"),
    (lambda: layers.InputLayer(shape=(0, 3)), "`shape` must be positive ints"),
    (lambda: layers.ReLU(max_value=-1), "`max_value` must be >= 0"),
    (lambda: layers.ReLU(negative_slope=-0.1), "`negative_slope` must be >= 0"),
    (lambda: layers.LeakyReLU(negative_slope=-1), "`negative_slope` must be >= 0"),
    (lambda: layers.Softmax(axis=1), "only axis=-1 is supported"),
    (lambda: layers.Dropout(0.5, noise_shape=(1, 2)), "`noise_shape` is not supported"),
    (lambda: layers.Reshape((-1, -1)), "at most one -1"),
])
def test_more_invalid_layer_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_input_shapes_reshape_and_activation_layers_in_a_model(rng):
    assert layers.InputLayer(shape=5).get_config()["shape"] == [5]
    with pytest.raises(ValueError, match=r"cannot reshape a sample of shape"):
        cnnx.Sequential([cnnx.Input((4,)), layers.Reshape((3, -1))])
    with pytest.raises(ValueError, match="expects 2-D input"):
        cnnx.Sequential([cnnx.Input((2, 2)), layers.Dense(3)])
    model = cnnx.Sequential([cnnx.Input((4,)), layers.Dense(3, dtype="float64"),
                             layers.Activation("relu", dtype="float64"),
                             layers.Softmax(dtype="float64")])
    model.compile(optimizer=cnnx.optimizers.SGD(1.0), loss="mse")
    x, y = rng.standard_normal((5, 4)), rng.random((5, 3))
    p = model.predict(x, verbose=0)
    np.testing.assert_allclose(p.sum(axis=1), 1)
    from helpers import assert_directional_derivatives
    assert_directional_derivatives(model, x, y, rng)

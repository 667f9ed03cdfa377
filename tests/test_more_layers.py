"""Shape, activation and noise layers: values on exact cases (TensorFlow's bilinear
resize among them), gradients by finite differences in float64, training-only noise."""
import numpy as np
import pytest

import cnnx
from cnnx import layers

from helpers import assert_grad, numerical_grad

DETERMINISTIC = [
    lambda: layers.UpSampling2D((2, 3)),
    lambda: layers.UpSampling2D(2, interpolation="bilinear"),
    lambda: layers.UpSampling2D((3, 2), interpolation="bilinear"),
    lambda: layers.ZeroPadding2D(((1, 2), (0, 1))),
    lambda: layers.Cropping2D(((1, 0), (2, 1))),
    lambda: layers.Permute((3, 1, 2)),
    lambda: layers.ELU(alpha=0.7),
    lambda: layers.PReLU(alpha_initializer="random_normal"),
    lambda: layers.PReLU(alpha_initializer="random_normal", shared_axes=[1, 2]),
    lambda: layers.LayerNormalization(gamma_initializer="random_normal",
                                      beta_initializer="random_normal"),
    lambda: layers.GroupNormalization(groups=3, gamma_initializer="random_normal"),
    lambda: layers.GroupNormalization(groups=1, center=False, epsilon=0.1),
]


@pytest.mark.parametrize("make", DETERMINISTIC)
def test_layer_gradients(make, rng):
    cnnx.utils.set_random_seed(1)
    layer = make()
    layer.dtype = np.dtype(np.float64)
    x = rng.standard_normal((2, 4, 5, 3))
    x[np.abs(x) < 0.05] += 0.2
    y = layer(x)
    r = rng.standard_normal(y.shape)
    ctx = layers.Context()
    layer.forward(ctx, x, True)
    dx = layer.backward(ctx, r)
    found = {id(v): g for v, g in ctx.grads}

    def loss():
        return float(np.sum(layer.forward(layers.Context(), x, True) * r))

    assert_grad(dx, numerical_grad(loss, x))
    for w in layer.trainable_weights:
        assert_grad(found[id(w)], numerical_grad(loss, w.value))


def test_repeat_vector_gradient(rng):
    layer = layers.RepeatVector(3, dtype="float64")
    x = rng.standard_normal((2, 4))
    np.testing.assert_array_equal(layer(x), np.stack([x] * 3, axis=1))
    r = rng.standard_normal((2, 3, 4))
    ctx = layers.Context()
    layer.forward(ctx, x)
    np.testing.assert_allclose(layer.backward(ctx, r), r.sum(axis=1))


def test_bilinear_upsampling_is_tensorflows_half_pixel_resize():
    """tf.image.resize([1, 2] -> 4 values, bilinear) is [1, 1.25, 1.75, 2]."""
    x = np.array([1.0, 2.0]).reshape(1, 1, 2, 1)
    y = layers.UpSampling2D((1, 2), interpolation="bilinear", dtype="float64")(x)
    np.testing.assert_allclose(y.ravel(), [1, 1.25, 1.75, 2])
    y = layers.UpSampling2D(2, dtype="float64")(x)
    np.testing.assert_array_equal(y[0, :, :, 0], [[1, 1, 2, 2], [1, 1, 2, 2]])


def test_padding_cropping_and_permute_values():
    x = np.arange(2 * 3 * 4 * 1, dtype=np.float64).reshape(2, 3, 4, 1)
    padded = layers.ZeroPadding2D(((1, 0), (2, 1)), dtype="float64")(x)
    assert padded.shape == (2, 4, 7, 1)
    np.testing.assert_array_equal(padded[:, 1:, 2:6], x)
    assert padded.sum() == x.sum()
    np.testing.assert_array_equal(layers.Cropping2D((1, 1), dtype="float64")(x),
                                  x[:, 1:2, 1:3])
    np.testing.assert_array_equal(layers.Permute((2, 1, 3), dtype="float64")(x),
                                  x.transpose(0, 2, 1, 3))
    with pytest.raises(ValueError, match="leaves nothing"):
        layers.Cropping2D(2)(x)
    with pytest.raises(ValueError, match="must be a permutation"):
        layers.Permute((1, 1, 2))


def test_prelu_shares_alpha_along_axes():
    layer = layers.PReLU(shared_axes=[1, 2])
    layer(np.ones((1, 4, 5, 3)))
    assert layer.alpha.shape == (1, 1, 3)


@pytest.mark.parametrize("make", [lambda: layers.GaussianNoise(0.5),
                                  lambda: layers.GaussianDropout(0.3),
                                  lambda: layers.SpatialDropout2D(0.5)])
def test_noise_only_in_training_and_its_gradient(make, rng):
    layer = make()
    layer.dtype = np.dtype(np.float64)
    x = rng.standard_normal((4, 5, 5, 6)) + 3
    np.testing.assert_array_equal(layer(x, training=False), x)
    ctx = layers.Context()
    y = layer.forward(ctx, x, True)
    assert not np.array_equal(y, x)
    r = rng.standard_normal(y.shape)
    dx = layer.backward(ctx, r)
    # Each of them is y = x * m + n with m, n fixed by the draw: dL/dx = r * m.
    if isinstance(layer, layers.GaussianNoise):
        np.testing.assert_array_equal(dx, r)
    else:
        np.testing.assert_allclose(dx, r * (y / x), rtol=1e-12)
    if isinstance(layer, layers.SpatialDropout2D):
        kept = (y != 0).all(axis=(1, 2))           # whole channels kept or dropped
        assert ((y == 0).all(axis=(1, 2)) | kept).all()
        np.testing.assert_allclose(y[kept[:, None, None, :].repeat(5, 1).repeat(5, 2)],
                                   (x * 2)[kept[:, None, None, :].repeat(5, 1).repeat(5, 2)])


@pytest.mark.parametrize("name,expected", [
    ("silu", lambda x: x / (1 + np.exp(-x))),
    ("swish", lambda x: x / (1 + np.exp(-x))),
    ("hard_sigmoid", lambda x: np.clip(x / 6 + 0.5, 0, 1)),
    ("hard_swish", lambda x: x * np.clip(x / 6 + 0.5, 0, 1)),
    ("mish", lambda x: x * np.tanh(np.log1p(np.exp(x)))),
    ("log_softmax", lambda x: x - np.log(np.sum(np.exp(x), axis=-1, keepdims=True))),
])
def test_new_activations_by_their_definitions(name, expected):
    x = np.linspace(-5, 5, 24).reshape(4, 6)
    np.testing.assert_allclose(cnnx.activations.get(name)(x), expected(x), rtol=1e-12,
                               atol=1e-12)
    np.testing.assert_allclose(layers.Activation(name, dtype="float64")(x), expected(x),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("make", [
    lambda: layers.Conv1D(3, 3, activation="tanh"),
    lambda: layers.Conv1D(2, 2, strides=2, padding="same", use_bias=False),
    lambda: layers.Conv1D(3, 3, padding="causal", dilation_rate=2, activation="relu",
                          bias_initializer="random_normal"),
    lambda: layers.MaxPooling1D(3, strides=2, padding="same"),
    lambda: layers.AveragePooling1D(2),
    lambda: layers.GlobalAveragePooling1D(),
    lambda: layers.GlobalMaxPooling1D(keepdims=True),
])
def test_1d_layer_gradients(make, rng):
    cnnx.utils.set_random_seed(2)
    layer = make()
    layer.dtype = np.dtype(np.float64)
    if hasattr(layer, "_pool"):
        layer._pool.dtype = layer.dtype
    x = rng.standard_normal((2, 9, 4))
    x += rng.permutation(x.size).reshape(x.shape) * 1e-4   # no ties in max pooling
    y = layer(x)
    r = rng.standard_normal(y.shape)
    ctx = layers.Context()
    layer.forward(ctx, x, True)
    dx = layer.backward(ctx, r)
    found = {id(v): g for v, g in ctx.grads}

    def loss():
        return float(np.sum(layer.forward(layers.Context(), x, True) * r))

    assert_grad(dx, numerical_grad(loss, x))
    for w in layer.trainable_weights:
        assert_grad(found[id(w)], numerical_grad(loss, w.value))


def test_conv1d_values_and_causality(rng):
    layer = layers.Conv1D(2, 3, padding="causal", dilation_rate=2, dtype="float64")
    x = rng.standard_normal((2, 7, 3))
    y = layer(x)
    assert y.shape == (2, 7, 2)
    k, b = layer.kernel.value, layer.bias.value
    padded = np.pad(x, ((0, 0), (4, 0), (0, 0)))
    want = sum(padded[:, i * 2:i * 2 + 7] @ k[i] for i in range(3)) + b
    np.testing.assert_allclose(y, want, rtol=1e-12)
    # Output t depends on inputs up to t only.
    x2 = x.copy()
    x2[:, 4:] += 1
    np.testing.assert_array_equal(layer(x2)[:, :4], y[:, :4])
    assert layers.Conv1D(4, 3, strides=2, padding="same")(np.ones((1, 9, 2))).shape == (1, 5, 4)


def test_layer_and_group_normalization_by_their_definitions(rng):
    x = rng.standard_normal((2, 3, 4, 6)) * 5 + 1
    ln = layers.LayerNormalization(dtype="float64")
    want = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-3)
    np.testing.assert_allclose(ln(x), want, rtol=1e-12)
    assert ln.count_params() == 12
    gn = layers.GroupNormalization(groups=2, dtype="float64")
    g = x.reshape(2, 3, 4, 2, 3)
    want = ((g - g.mean(axis=(1, 2, 4), keepdims=True))
            / np.sqrt(g.var(axis=(1, 2, 4), keepdims=True) + 1e-3)).reshape(x.shape)
    np.testing.assert_allclose(gn(x), want, rtol=1e-12)
    with pytest.raises(ValueError, match="2 groups must divide the 5 channels"):
        layers.GroupNormalization(groups=2)(np.ones((1, 5)))

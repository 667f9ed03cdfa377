"""Conv2DTranspose: the transposed convolution against its twin on every SIMD path in
both dtypes, Keras's shape cases, finite differences, and an autoencoder that trains.
(Fuzzing: fuzz_kernels.py; thread counts: test_threads.py; config:
test_registries.py.)"""
import numpy as np
import pytest

import cnnx
from cnnx import layers, ops
from cnnx.testing import reference as ref

from helpers import assert_directional_derivatives, assert_grad, numerical_grad

GEOMETRY = [  # (x shape, kernel (kh, kw, filters, in), strides, padding, output_padding)
    ((2, 4, 5, 3), (3, 3, 6, 3), 2, "same", None),
    ((2, 4, 4, 3), (3, 3, 5, 3), 2, "valid", None),
    ((1, 3, 3, 2), (2, 2, 4, 2), 3, "valid", 1),
    ((2, 4, 4, 2), (3, 3, 2, 2), 2, "same", 1),
    ((3, 6, 6, 16), (3, 3, 32, 16), 1, "same", None),
    ((2, 5, 3, 4), (4, 2, 3, 4), (2, 1), "same", None),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,kshape,strides,padding,output_padding", GEOMETRY)
def test_conv_transpose_matches_the_twin(simd_path, shape, kshape, strides, padding,
                                         output_padding, dtype, rng):
    x = rng.standard_normal(shape).astype(dtype)
    kernel = rng.standard_normal(kshape).astype(dtype)
    bias = rng.standard_normal(kshape[2]).astype(dtype)
    args = (strides, padding, output_padding)
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-12,
                                                                      atol=1e-12)
    y = ops.conv2d_transpose(x, kernel, bias, *args)
    np.testing.assert_allclose(y, ref.conv2d_transpose(x, kernel, bias, *args), **tol)
    dy = rng.standard_normal(y.shape).astype(dtype)
    for got, want in zip(ops.conv2d_transpose_backward(x, kernel, dy, *args),
                         ref.conv2d_transpose_backward(x, kernel, dy, *args)):
        assert got.dtype == dtype
        np.testing.assert_allclose(got, want, **tol)


def test_conv_transpose_is_the_adjoint_of_conv(rng):
    """<conv2d(z, K), x> = <z, conv2d_transpose(x, K)> for every z: the definition."""
    x = rng.standard_normal((2, 4, 4, 3))
    kernel = rng.standard_normal((3, 3, 5, 3))
    t = ops.conv2d_transpose(x, kernel, None, 2, "same")
    z = rng.standard_normal(t.shape)
    np.testing.assert_allclose(np.vdot(ops.conv2d(z, kernel, None, 2, "same"), x),
                               np.vdot(z, t), rtol=1e-12)


@pytest.mark.parametrize("shape,kshape,strides,padding,output_padding", GEOMETRY[:4])
def test_conv_transpose_gradients_by_finite_differences(shape, kshape, strides, padding,
                                                        output_padding, rng):
    x = rng.standard_normal(shape)
    kernel = rng.standard_normal(kshape)
    bias = rng.standard_normal(kshape[2])
    args = (strides, padding, output_padding)
    r = rng.standard_normal(ops.conv2d_transpose(x, kernel, bias, *args).shape)

    def loss():
        return float(np.sum(ops.conv2d_transpose(x, kernel, bias, *args) * r))

    dx, dk, db = ops.conv2d_transpose_backward(x, kernel, r, *args)
    assert_grad(dx, numerical_grad(loss, x))
    assert_grad(dk, numerical_grad(loss, kernel))
    assert_grad(db, numerical_grad(loss, bias))


@pytest.mark.parametrize("filters,kernel_size,strides,padding,output_padding,shape,expected", [
    # Keras 3's ConvTransposeBasicTest cases (channels_last; the channels_first one moved).
    (5, 2, 2, "valid", None, (2, 8, 8, 4), (2, 16, 16, 5)),
    (6, 2, 3, "same", 2, (2, 8, 8, 4), (2, 23, 23, 6)),
    (6, (2, 3), (2, 1), "valid", None, (2, 8, 8, 4), (2, 16, 10, 6)),
    (2, (7, 7), (16, 16), "valid", None, (1, 14, 14, 2), (1, 224, 224, 2)),
])
def test_conv_transpose_shapes_of_keras_tests(filters, kernel_size, strides, padding,
                                              output_padding, shape, expected, rng):
    layer = layers.Conv2DTranspose(filters, kernel_size, strides=strides, padding=padding,
                                   output_padding=output_padding)
    assert layer(rng.standard_normal(shape)).shape == expected
    assert len(layer.trainable_weights) == 2
    assert layer.kernel.shape == layer.kernel_size + (filters, shape[-1])


def test_conv_transpose_arguments_are_checked():
    with pytest.raises(ValueError, match="`output_padding` .* must be smaller than"):
        layers.Conv2DTranspose(2, 3, strides=2, output_padding=2)
    with pytest.raises(ValueError, match="expects 4-D input"):
        layers.Conv2DTranspose(2, 3)(np.zeros((2, 5)))


@pytest.mark.parametrize("make", [
    lambda: layers.Conv2DTranspose(3, 3, strides=2, padding="same", activation="tanh",
                                   dtype="float64"),
    lambda: layers.Conv2DTranspose(2, (2, 3), strides=(2, 1), use_bias=False,
                                   dtype="float64"),
])
def test_conv_transpose_layer_gradients(make, rng):
    layer = make()
    x = rng.standard_normal((2, 4, 4, 3))
    y = layer(x)
    r = rng.standard_normal(y.shape)
    ctx = layers.Context()
    layer.forward(ctx, x, True)
    dx = layer.backward(ctx, r)
    found = {id(v): g.copy() for v, g in ctx.grads}

    def loss():
        return float(np.sum(layer.forward(layers.Context(), x, True) * r))

    assert_grad(dx, numerical_grad(loss, x))
    for w in layer.trainable_weights:
        assert_grad(found[id(w)], numerical_grad(loss, w.value))


def test_a_convolutional_autoencoder_has_right_gradients_and_trains(rng):
    cnnx.utils.set_random_seed(5)
    kw = {"dtype": "float64", "bias_initializer": "random_normal"}
    model = cnnx.Sequential([
        cnnx.Input((8, 8, 1)),
        layers.Conv2D(4, 3, strides=2, padding="same", activation="relu", **kw),
        layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", **kw),
        layers.Conv2DTranspose(8, 3, strides=2, padding="same", activation="relu", **kw),
        layers.Conv2DTranspose(4, 3, strides=2, padding="same", activation="relu", **kw),
        layers.Conv2D(1, 3, padding="same", activation="sigmoid", **kw)])
    assert model.output_shape == (None, 8, 8, 1)
    model.compile(optimizer=cnnx.optimizers.SGD(1.0), loss="binary_crossentropy")
    x = rng.uniform(0, 1, (4, 8, 8, 1))
    assert_directional_derivatives(model, x, x, rng)
    model.compile(optimizer=cnnx.optimizers.Adam(0.01), loss="binary_crossentropy")
    history = model.fit(x, x, epochs=30, verbose=0).history["loss"]
    assert history[-1] < history[0]

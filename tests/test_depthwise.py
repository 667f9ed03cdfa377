"""DepthwiseConv2D and SeparableConv2D: the depthwise kernels against their NumPy twin
on every SIMD path in both dtypes, gradients by finite differences in float64, Keras's
own shape cases, and the layers in a model. (Fuzzing: fuzz_kernels.py; thread counts:
test_threads.py; configs: test_registries.py.)"""
import numpy as np
import pytest

import cnnx
from cnnx import layers, ops
from cnnx.testing import reference as ref

from helpers import assert_directional_derivatives, assert_grad, numerical_grad

GEOMETRY = [  # (x shape, kernel shape, strides, padding, dilation)
    ((2, 7, 6, 5), (3, 3, 5, 1), 1, "same", 1),
    ((3, 9, 8, 4), (3, 2, 4, 2), 2, "valid", 1),
    ((2, 8, 8, 3), (3, 3, 3, 1), 1, "same", 2),
    ((1, 1, 1, 3), (1, 1, 3, 1), 1, "valid", 1),
    ((5, 6, 6, 17), (5, 5, 17, 1), (2, 1), "same", 1),
    ((9, 10, 12, 64), (3, 3, 64, 1), 1, "same", 1),     # whole vectors of channels
    ((2, 5, 5, 3), (7, 7, 3, 3), 3, "same", 1),          # a kernel larger than the image
    # 3 x 3 at stride 1: the input gradient as a flipped forward pass, the kernel
    # gradient's sums in registers (whole vectors of channels, then the rest), edge
    # columns and rows, dilated, and an image narrower than the dilated kernel
    ((2, 9, 11, 21), (3, 3, 21, 1), 1, "valid", 1),
    ((2, 12, 10, 40), (3, 3, 40, 1), 1, "same", (2, 3)),
    ((2, 3, 2, 16), (3, 3, 16, 1), 1, "same", 2),
    ((2, 7, 9, 16), (3, 3, 16, 1), (2, 1), "same", 1),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,kshape,strides,padding,dilation", GEOMETRY)
def test_depthwise_kernels_match_the_twin(simd_path, shape, kshape, strides, padding,
                                          dilation, dtype, rng):
    x = rng.standard_normal(shape).astype(dtype)
    kernel = rng.standard_normal(kshape).astype(dtype)
    bias = rng.standard_normal(kshape[2] * kshape[3]).astype(dtype)
    args = (strides, padding, dilation)
    tol = dict(rtol=2e-5, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-12,
                                                                       atol=1e-12)
    y = ops.depthwise_conv2d(x, kernel, bias, *args)
    np.testing.assert_allclose(y, ref.depthwise_conv2d(x, kernel, bias, *args), **tol)
    # The fused ReLU: the same sums, then max(y, 0) with NaN passing, as ops.relu.
    x_nan = x.copy()
    x_nan.flat[::7] = np.nan
    y_nan = ops.depthwise_conv2d(x_nan, kernel, bias, *args)
    np.testing.assert_array_equal(ops.depthwise_conv2d(x_nan, kernel, bias, *args, "relu"),
                                  ops.relu(y_nan))
    np.testing.assert_allclose(ops.depthwise_conv2d(x, kernel, bias, *args, "relu"),
                               ref.depthwise_conv2d(x, kernel, bias, *args, "relu"), **tol)
    dy = rng.standard_normal(y.shape).astype(dtype)
    for got, want in zip(ops.depthwise_conv2d_backward(x, kernel, dy, *args),
                         ref.depthwise_conv2d_backward(x, kernel, dy, *args)):
        assert got.dtype == dtype
        np.testing.assert_allclose(got, want, **tol)
    dx, dk, db = ops.depthwise_conv2d_backward(x, kernel, dy, *args, use_bias=False,
                                               input_grad=False)
    assert dx is None and db is None
    np.testing.assert_allclose(dk, ref.depthwise_conv2d_backward(x, kernel, dy, *args)[1],
                               **tol)


@pytest.mark.parametrize("kshape,strides,padding", [
    ((3, 3, 12, 1), 1, "same"),      # dx as the flipped kernel's forward, row by row
    ((3, 3, 12, 2), 2, "same"),      # dx scattered, two filters per channel
    ((2, 3, 12, 1), (1, 2), "valid"),
])
def test_depthwise_backward_in_one_pass_or_two(simd_path, kshape, strides, padding,
                                               threads, rng):
    """With two or more chunks of the batch per thread, each chunk's input gradient is
    computed right after its kernel-gradient share (one pass over dy); with fewer, in a
    pass of its own. 20 samples are 5 chunks: one pass on 1 and 2 threads, two passes on
    3. The same bits either way, and the twin's values."""
    x = rng.standard_normal((20, 9, 10, 12)).astype(np.float32)
    kernel = rng.standard_normal(kshape).astype(np.float32)
    dy = rng.standard_normal(ops.depthwise_conv2d(x, kernel, None, strides, padding).shape
                             ).astype(np.float32)
    got = {}
    for n in (1, 2, 3):
        threads(n)
        got[n] = ops.depthwise_conv2d_backward(x, kernel, dy, strides, padding)
    want = ref.depthwise_conv2d_backward(x, kernel, dy, strides, padding)
    for i in range(3):
        np.testing.assert_array_equal(got[1][i], got[3][i])
        np.testing.assert_array_equal(got[2][i], got[3][i])
        np.testing.assert_allclose(got[3][i], want[i], rtol=2e-5, atol=2e-5)


def test_depthwise_twin_is_per_channel_convolution(rng):
    """The twin itself against its definition: channel c * M + m is input channel c
    convolved (ops.conv2d, one filter) with kernel[:, :, c, m]."""
    x = rng.standard_normal((2, 6, 5, 3))
    kernel = rng.standard_normal((3, 2, 3, 2))
    y = ref.depthwise_conv2d(x, kernel, None, 1, "same")
    for c in range(3):
        for m in range(2):
            want = ops.conv2d(x[..., c:c + 1], kernel[:, :, c:c + 1, m:m + 1], None, 1, "same")
            np.testing.assert_allclose(y[..., c * 2 + m], want[..., 0], rtol=1e-12)


@pytest.mark.parametrize("shape,kshape,strides,padding,dilation", GEOMETRY[:5])
def test_depthwise_gradients_by_finite_differences(shape, kshape, strides, padding,
                                                   dilation, rng):
    shape = (min(shape[0], 2),) + shape[1:3] + (min(shape[3], 4),)
    kshape = kshape[:2] + (shape[3], kshape[3])
    x = rng.standard_normal(shape)
    kernel = rng.standard_normal(kshape)
    bias = rng.standard_normal(kshape[2] * kshape[3])
    args = (strides, padding, dilation)
    r = rng.standard_normal(ops.depthwise_conv2d(x, kernel, bias, *args).shape)

    def loss():
        return float(np.sum(ops.depthwise_conv2d(x, kernel, bias, *args) * r))

    dx, dk, db = ops.depthwise_conv2d_backward(x, kernel, r, *args)
    assert_grad(dx, numerical_grad(loss, x))
    assert_grad(dk, numerical_grad(loss, kernel))
    assert_grad(db, numerical_grad(loss, bias))


@pytest.mark.parametrize("multiplier,kernel_size,strides,padding,dilation,shape,expected", [
    # Keras 3's DepthwiseConvBasicTest cases (keras/src/layers/convolutional).
    (5, 2, 1, "valid", 1, (3, 5, 5, 4), (3, 4, 4, 20)),
    (6, 2, 1, "same", (2, 2), (3, 4, 4, 4), (3, 4, 4, 24)),
    (6, (2, 2), (2, 2), "valid", (1, 1), (3, 5, 5, 4), (3, 2, 2, 24)),
])
def test_depthwise_shapes_of_keras_tests(multiplier, kernel_size, strides, padding,
                                         dilation, shape, expected, rng):
    layer = layers.DepthwiseConv2D(kernel_size, strides=strides, padding=padding,
                                   depth_multiplier=multiplier, dilation_rate=dilation)
    y = layer(rng.standard_normal(shape))
    assert y.shape == expected and len(layer.trainable_weights) == 2
    assert layer.compute_output_shape((None,) + shape[1:]) == (None,) + expected[1:]


def test_depthwise_layer_arguments_are_checked():
    with pytest.raises(ValueError, match="`depth_multiplier` must be a positive int"):
        layers.DepthwiseConv2D(1, depth_multiplier=0)
    with pytest.raises(ValueError, match="kernel_size"):
        layers.DepthwiseConv2D((1, 0), depth_multiplier=2)
    with pytest.raises(ValueError, match="strides > 1 and dilation_rate > 1"):
        layers.DepthwiseConv2D((2, 2), strides=2, dilation_rate=(2, 1), depth_multiplier=2)
    with pytest.raises(NotImplementedError, match="depthwise_constraint"):
        layers.DepthwiseConv2D(3, depthwise_constraint="non_neg")


def test_separable_conv_is_depthwise_then_pointwise(rng):
    layer = layers.SeparableConv2D(5, 3, strides=2, padding="same", depth_multiplier=2,
                                   activation="relu", dtype="float64")
    x = rng.standard_normal((2, 7, 7, 3))
    y = layer(x)
    assert [w.name.split("/")[1] for w in layer.weights] == [
        "depthwise_kernel", "pointwise_kernel", "bias"]
    t = ref.depthwise_conv2d(x, layer.depthwise_kernel.value, None, 2, "same")
    want = ref.conv2d(t, layer.pointwise_kernel.value, layer.bias.value, activation="relu")
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)
    # Keras's parameter count: kh * kw * C * M + C * M * filters + filters.
    assert layer.count_params() == 3 * 3 * 3 * 2 + 3 * 2 * 5 + 5


@pytest.mark.parametrize("make", [
    lambda: layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, activation="tanh",
                                   dtype="float64"),
    lambda: layers.DepthwiseConv2D((2, 3), strides=2, use_bias=False, dtype="float64"),
    lambda: layers.SeparableConv2D(3, 3, padding="same", activation="sigmoid", dtype="float64"),
    lambda: layers.SeparableConv2D(2, (3, 2), dilation_rate=2, use_bias=False,
                                   depth_multiplier=2, dtype="float64"),
])
def test_depthwise_layer_gradients(make, rng):
    layer = make()
    x = rng.standard_normal((2, 6, 6, 3))
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


def test_a_mobilenet_block_trains_with_right_gradients(rng):
    cnnx.utils.set_random_seed(3)
    # Nonzero biases: with zero biases, a window of ReLU zeros gives a pre-activation of
    # exactly 0, the kink where a finite difference sees one side only.
    kw = {"dtype": "float64", "bias_initializer": "random_normal"}
    model = cnnx.Sequential([
        cnnx.Input((8, 8, 3)),
        layers.Conv2D(4, 3, padding="same", activation="relu", **kw),
        layers.DepthwiseConv2D(3, padding="same", activation="relu", **kw),
        layers.MaxPooling2D(2, dtype="float64"),   # ReLU fused into its backward
        layers.SeparableConv2D(6, 3, padding="same", activation="relu", **kw),
        layers.GlobalAveragePooling2D(dtype="float64"),
        layers.Dense(3, activation="softmax", **kw)])
    model.compile(optimizer=cnnx.optimizers.SGD(1.0), loss="categorical_crossentropy")
    x = rng.standard_normal((4, 8, 8, 3))
    y = cnnx.utils.to_categorical(rng.integers(0, 3, 4), 3)
    assert_directional_derivatives(model, x, y, rng)

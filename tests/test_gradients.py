"""Finite-difference checks, in float64, of every backward kernel in cnnx.ops."""
import numpy as np
import pytest

from cnnx import ops

EPS = 1e-6


def numerical_grad(loss, array):
    """Central differences of the scalar loss() with respect to each element of array."""
    grad = np.zeros_like(array)
    flat, g = array.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        keep = flat[i]
        flat[i] = keep + EPS
        up = loss()
        flat[i] = keep - EPS
        down = loss()
        flat[i] = keep
        g[i] = (up - down) / (2 * EPS)
    return grad


def assert_grad(analytic, numeric):
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("case", [
    ((2, 5, 5, 2), (3, 3, 2, 3), 1, "valid", 1),
    ((2, 6, 7, 2), (3, 2, 2, 3), 2, "same", 1),
    ((1, 7, 7, 3), (3, 3, 3, 2), 1, "same", 2),
    ((2, 6, 5, 2), (2, 3, 2, 2), (3, 2), "valid", (1, 2)),
    ((1, 1, 1, 2), (3, 3, 2, 2), 1, "same", 1),
])
def test_conv2d_gradients(case, rng, conv_algorithm):
    xshape, kshape, s, pad, d = case
    x = rng.standard_normal(xshape)
    kernel = rng.standard_normal(kshape)
    bias = rng.standard_normal(kshape[3])
    r = rng.standard_normal(ops.conv2d(x, kernel, bias, s, pad, d).shape)

    def loss():
        return np.sum(ops.conv2d(x, kernel, bias, s, pad, d) * r)

    dx, dk, db = ops.conv2d_backward(x, kernel, r, s, pad, d)
    assert_grad(dx, numerical_grad(loss, x))
    assert_grad(dk, numerical_grad(loss, kernel))
    assert_grad(db, numerical_grad(loss, bias))


def test_relu_gradient(rng):
    x = rng.standard_normal((3, 4, 5))
    x[np.abs(x) < 1e-3] = 0.5  # keep away from the kink
    r = rng.standard_normal(x.shape)
    assert_grad(ops.relu_backward(r, x), numerical_grad(lambda: np.sum(ops.relu(x) * r), x))


@pytest.mark.parametrize("pool,strides,padding", [(2, None, "valid"), (3, 2, "same"),
                                                  ((2, 3), 1, "same")])
def test_pool_gradients(pool, strides, padding, rng):
    x = rng.permutation(2 * 6 * 7 * 2).reshape(2, 6, 7, 2) / 10.0  # distinct: no ties
    y, arg = ops.max_pool2d(x, pool, strides, padding)
    r = rng.standard_normal(y.shape)
    assert_grad(ops.max_pool2d_backward(r, arg, x.shape),
                numerical_grad(lambda: np.sum(ops.max_pool2d(x, pool, strides, padding)[0] * r),
                               x))
    ya = ops.average_pool2d(x, pool, strides, padding)
    ra = rng.standard_normal(ya.shape)
    assert_grad(ops.average_pool2d_backward(ra, x.shape, pool, strides, padding),
                numerical_grad(lambda: np.sum(ops.average_pool2d(x, pool, strides, padding) * ra),
                               x))


def test_dense_gradients(rng):
    x = rng.standard_normal((4, 6))
    kernel = rng.standard_normal((6, 3))
    bias = rng.standard_normal(3)
    r = rng.standard_normal((4, 3))

    def loss():
        return np.sum(ops.dense(x, kernel, bias) * r)

    dx, dk, db = ops.dense_backward(x, kernel, r)
    assert_grad(dx, numerical_grad(loss, x))
    assert_grad(dk, numerical_grad(loss, kernel))
    assert_grad(db, numerical_grad(loss, bias))


def test_fused_relu_gradients_through_relu_backward(rng):
    # The layers' path: y = conv(x) with fused ReLU; dL/d(pre-activation) = relu_backward(r, y).
    x = rng.standard_normal((1, 5, 5, 2))
    kernel = rng.standard_normal((3, 3, 2, 2))
    r = rng.standard_normal((1, 3, 3, 2))
    y = ops.conv2d(x, kernel, activation="relu")
    dx, dk, _ = ops.conv2d_backward(x, kernel, ops.relu_backward(r, y))
    loss = lambda: np.sum(ops.conv2d(x, kernel, activation="relu") * r)  # noqa: E731
    assert_grad(dx, numerical_grad(loss, x))
    assert_grad(dk, numerical_grad(loss, kernel))


def test_softmax_cross_entropy_gradient(rng):
    z = rng.standard_normal((4, 5)) * 3
    t = np.eye(5)[[0, 3, 1, 4]]
    _, grad = ops.softmax_cross_entropy(z, t)
    assert_grad(grad, numerical_grad(lambda: ops.softmax_cross_entropy(z, t)[0].sum(), z))


def test_sigmoid_cross_entropy_gradient(rng):
    z = rng.standard_normal((6, 2)) * 3
    t = rng.random((6, 2))
    _, grad = ops.sigmoid_cross_entropy(z, t)
    assert_grad(grad, numerical_grad(lambda: ops.sigmoid_cross_entropy(z, t)[0].sum(), z))


@pytest.mark.parametrize("first_filters", [4, 8, 32])  # 8, 32: channel-vectorised (float64)
def test_model_gradients_with_relu_fused_into_pooling(first_filters, rng, conv_algorithm):
    """A conv (ReLU) -> max-pool stack through the model's backward pass, where the pools
    apply the convs' ReLU masks and the first conv fuses its mask into its kernel
    gradient, against finite differences in float64."""
    from cnnx import layers as L
    from cnnx.models import Sequential
    model = Sequential([
        L.Input((9, 9, 2)),
        L.Conv2D(first_filters, 3, activation="relu", dtype="float64"),
        L.MaxPooling2D(2, strides=1, padding="same", dtype="float64"),
        L.Conv2D(5, 3, activation="relu", dtype="float64"),
        L.MaxPooling2D(2, dtype="float64"),
        L.Flatten(dtype="float64"),
        L.Dense(3, dtype="float64"),
    ])
    x = rng.standard_normal((3, 9, 9, 2))
    out = model._forward(x, training=True)
    r = rng.standard_normal(out.shape)

    def loss():
        return np.sum(model._forward(x, training=True) * r)

    model._forward(x, training=True)
    model._backward(r)
    for layer in (model.layers[0], model.layers[2]):
        for var in (layer.kernel, layer.bias):
            analytic = var.grad.copy()
            assert_grad(analytic, numerical_grad(loss, var.value))

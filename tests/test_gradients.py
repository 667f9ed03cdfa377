"""Finite-difference checks, in float64, of every backward kernel in cnnx.ops."""
import numpy as np
import pytest

import cnnx
from cnnx import ops

from helpers import assert_directional_derivatives, assert_grad, numerical_grad


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
    """A conv (ReLU) -> max-pool stack trained through the model, where the pools apply
    the convs' ReLU masks and the first conv fuses its mask into its kernel gradient:
    the gradient of a training step against directional finite differences, float64."""
    from cnnx import layers as L
    # Seeded: a random start could put a max-pool tie or a ReLU kink within the finite
    # difference's step, where the loss has no derivative.
    cnnx.utils.set_random_seed(7)
    model = cnnx.Sequential([
        L.Input((9, 9, 2)),
        L.Conv2D(first_filters, 3, activation="relu", dtype="float64"),
        L.MaxPooling2D(2, strides=1, padding="same", dtype="float64"),
        L.Conv2D(5, 3, activation="relu", dtype="float64"),
        L.MaxPooling2D(2, dtype="float64"),
        L.Flatten(dtype="float64"),
        L.Dense(3, dtype="float64"),
    ])
    model.compile(optimizer=cnnx.optimizers.SGD(learning_rate=1.0), loss="mse")
    x = rng.standard_normal((3, 9, 9, 2))
    y = rng.standard_normal((3, 3))
    assert_directional_derivatives(model, x, y, rng)


def test_directional_check_catches_a_wrong_gradient(rng):
    """The check above can fail: the gradient of a model whose loss is scaled behind the
    optimizer's back (one weight's gradient off by 1%) is caught."""
    from cnnx import layers as L

    import helpers
    cnnx.utils.set_random_seed(7)
    model = cnnx.Sequential([L.Input((4,)), L.Dense(3, dtype="float64")])
    model.compile(optimizer=cnnx.optimizers.SGD(learning_rate=1.0), loss="mse")
    x, y = rng.standard_normal((5, 4)), rng.standard_normal((5, 3))
    right = helpers.model_gradients(model, x, y)
    wrong = [g.copy() for g in right]
    wrong[0].flat[0] *= 1.01
    original = helpers.model_gradients
    try:
        helpers.model_gradients = lambda *args: wrong
        with pytest.raises(AssertionError):
            assert_directional_derivatives(model, x, y, rng)
    finally:
        helpers.model_gradients = original
    assert_directional_derivatives(model, x, y, rng)

"""The compiled normalization kernels (batch, layer and group) against their NumPy twins
in both dtypes, and their gradients by finite differences in float64. (Fuzzing:
fuzz_kernels.py; thread counts: test_threads.py.)"""
import numpy as np
import pytest

from cnnx import _kernels, ops
from cnnx.testing import reference as ref

from helpers import assert_grad, numerical_grad


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(4, 6), (3, 5, 4, 8), (40, 9, 9, 16), (1, 3),
                                   (600, 300), (2, 131, 37)])
def test_batch_normalization_matches_the_twin(simd_path, shape, dtype, rng):
    # (600, 300): more rows than a chunk of 256; (2, 131, 37): a chunk of 32 whole runs
    # of 8 rows, then one of 6 (a run cut short), at an odd number of channels
    x = (rng.standard_normal(shape) * 3 + 1).astype(dtype)
    gamma, beta = (rng.standard_normal(shape[-1]).astype(dtype) for _ in range(2))
    # float32: the kernels sum runs of rows in float32, then in double; the twin in
    # float32.
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-12,
                                                                      atol=1e-12)
    mean, var = ops.batch_normalization_moments(x)
    for got, want in zip((mean, var), ref.batch_normalization_moments(x)):
        np.testing.assert_allclose(got, want, **tol)
    np.testing.assert_allclose(ops.batch_normalization(x, mean, var, gamma, beta),
                               ref.batch_normalization(x, mean, var, gamma, beta), **tol)
    dy = rng.standard_normal(shape).astype(dtype)
    for training in (True, False):
        for got, want in zip(
                ops.batch_normalization_backward(x, dy, mean, var, gamma, training=training),
                ref.batch_normalization_backward(x, dy, mean, var, gamma,
                                                 training=training)):
            np.testing.assert_allclose(got, want, **tol)
    # With a fused ReLU: the output clamped, the gradient masked where it is 0.
    y = ops.batch_normalization(x, mean, var, gamma, beta, activation="relu")
    np.testing.assert_allclose(y, ref.batch_normalization(x, mean, var, gamma, beta,
                                                          activation="relu"), **tol)
    assert 0 < np.mean(y == 0) < 1
    for got, want in zip(
            ops.batch_normalization_backward(x, dy, mean, var, gamma, relu_output=y),
            ref.batch_normalization_backward(x, dy, mean, var, gamma, relu_output=y)):
        np.testing.assert_allclose(got, want, **tol)
    # The mask recomputed from x (activation="relu"): the same bits as read from y, in
    # training and with fixed statistics, with and without gamma and beta.
    for g, b in ((gamma, beta), (None, None), (gamma, None)):
        y = ops.batch_normalization(x, mean, var, g, b, activation="relu")
        for training in (True, False):
            from_y = ops.batch_normalization_backward(x, dy, mean, var, g,
                                                      training=training, relu_output=y)
            from_x = ops.batch_normalization_backward(x, dy, mean, var, g,
                                                      training=training,
                                                      activation="relu", beta=b)
            # (The twin recomputes the mask its own way: with one row, the normalized
            # values are 0 there and rounding errors in the kernels, of either sign.)
            twin = ref.batch_normalization_backward(
                x, dy, mean, var, g, training=training,
                **(dict(relu_output=y) if shape[0] == 1 else dict(activation="relu", beta=b)))
            for got, want, reference in zip(from_x, from_y, twin):
                np.testing.assert_array_equal(got, want)
                np.testing.assert_allclose(got, reference, **tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_recomputed_relu_mask_agrees_at_the_edge(simd_path, dtype, rng):
    """Inputs whose normalized value is 0, the smallest values either side of it, and
    NaN: the mask recomputed from x is the one the forward pass's ReLU made, bit for
    bit, in the vector loops and their remainders (C = 37)."""
    c = 37
    mean, var = rng.standard_normal(c).astype(dtype), rng.uniform(0.5, 2, c).astype(dtype)
    gamma, beta = rng.standard_normal(c).astype(dtype), rng.standard_normal(c).astype(dtype)
    scale, shift = ops._bn_affine(np.zeros((1, c), dtype), mean, var, gamma, beta, 1e-3,
                                  "t")[3]
    root = (-shift / scale).astype(dtype)            # x * scale + shift near 0
    rows = [root, np.nextafter(root, np.inf), np.nextafter(root, -np.inf), mean,
            np.full(c, np.nan, dtype)]
    x = np.stack(rows * 40).astype(dtype)            # 200 rows: several BN_GROUPs
    dy = rng.standard_normal(x.shape).astype(dtype)
    y = ops.batch_normalization(x, mean, var, gamma, beta, activation="relu")
    assert (y[:3] == 0).any() and (y[:3] > 0).any()
    for training in (True, False):
        from_y = ops.batch_normalization_backward(x, dy, mean, var, gamma,
                                                  training=training, relu_output=y)
        from_x = ops.batch_normalization_backward(x, dy, mean, var, gamma,
                                                  training=training, activation="relu",
                                                  beta=beta)
        for got, want in zip(from_x, from_y):
            np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="relu_output` or activation"):
        ops.batch_normalization_backward(x, dy, mean, var, gamma, relu_output=y,
                                         activation="relu")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("with_gamma,with_beta", [(True, True), (False, True), (True, False),
                                                  (False, False)])
def test_batch_norm_affine_is_the_numpy_arithmetic(with_gamma, with_beta, dtype, rng):
    """rstd in double rounded once, scale = rstd * gamma and shift = -mean * scale + beta
    in the dtype: NumPy's bits for rstd and scale; shift's too where the compiler fuses no
    multiply-add (x86-64), else within one rounding."""
    c = 37
    mean = rng.standard_normal(c).astype(dtype)
    var = rng.uniform(0, 3, c).astype(dtype)
    var[0] = 0
    gamma = rng.standard_normal(c).astype(dtype) if with_gamma else None
    beta = rng.standard_normal(c).astype(dtype) if with_beta else None
    rstd, affine = np.empty(c, dtype), np.empty((2, c), dtype)
    _kernels.batch_norm_affine(mean, var, gamma, beta, 1e-3, rstd, affine)
    want_rstd = (1 / np.sqrt(var.astype(np.float64) + 1e-3)).astype(dtype)
    want_scale = want_rstd * gamma if with_gamma else want_rstd
    want_shift = -mean * want_scale + (beta if with_beta else 0)
    np.testing.assert_array_equal(rstd, want_rstd)
    np.testing.assert_array_equal(affine[0], want_scale)
    bound = 8 * np.finfo(dtype).eps * (1 + np.abs(want_shift))
    assert np.all(np.abs(affine[1] - want_shift) <= bound)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batch_normalization_moments_keep_their_digits_far_from_zero(dtype, rng):
    """The moments come from one pass of sums of x - x[0] and their squares: data whose
    mean is 10^4 of its spread (where sums of x^2 lose every digit of the variance in
    float32, and 8 in float64) still gives the two-pass mean and variance."""
    x = (1e4 + rng.standard_normal((40, 7, 7, 5)) * np.array([1, 2, 0.5, 3, 1])).astype(dtype)
    x[..., 4] = x.flat[4]   # a constant channel: variance exactly 0
    mean, var = ops.batch_normalization_moments(x)
    want_mean, want_var = ref.batch_normalization_moments(x)
    tol = 1e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(mean, want_mean, rtol=tol)
    np.testing.assert_allclose(var[:4], want_var[:4], rtol=tol * 10)
    assert var[4] == 0   # NumPy's two passes leave ~1e-20 in float64


def test_batch_normalization_gradients_by_finite_differences(rng):
    x = rng.standard_normal((3, 2, 2, 4))
    gamma, beta = rng.standard_normal(4), rng.standard_normal(4)
    r = rng.standard_normal(x.shape)

    def training_loss():   # the statistics are the batch's own
        mean, var = ops.batch_normalization_moments(x)
        return float(np.sum(ops.batch_normalization(x, mean, var, gamma, beta) * r))

    mean, var = ops.batch_normalization_moments(x)
    dx, dgamma, dbeta = ops.batch_normalization_backward(x, r, mean, var, gamma)
    assert_grad(dx, numerical_grad(training_loss, x))
    assert_grad(dgamma, numerical_grad(training_loss, gamma))
    assert_grad(dbeta, numerical_grad(training_loss, beta))
    fixed_mean, fixed_var = rng.standard_normal(4), rng.uniform(0.5, 2, 4)
    dx, _, _ = ops.batch_normalization_backward(x, r, fixed_mean, fixed_var, gamma,
                                                training=False)
    assert_grad(dx, numerical_grad(lambda: float(np.sum(ops.batch_normalization(
        x, fixed_mean, fixed_var, gamma, beta) * r)), x))

    def relu_loss():       # the ReLU fused into the normalization
        mean, var = ops.batch_normalization_moments(x)
        return float(np.sum(ops.batch_normalization(x, mean, var, gamma, beta,
                                                    activation="relu") * r))

    y = ops.batch_normalization(x, mean, var, gamma, beta, activation="relu")
    dx, dgamma, dbeta = ops.batch_normalization_backward(x, r, mean, var, gamma,
                                                         relu_output=y)
    assert_grad(dx, numerical_grad(relu_loss, x))
    assert_grad(dgamma, numerical_grad(relu_loss, gamma))
    assert_grad(dbeta, numerical_grad(relu_loss, beta))


@pytest.mark.parametrize("groups", [1, 2, 4])
def test_group_normalization_gradients_by_finite_differences(groups, rng):
    x = rng.standard_normal((2, 3, 2, 4)) * 2
    gamma, beta = rng.standard_normal(4), rng.standard_normal(4)
    r = rng.standard_normal(x.shape)

    def loss():
        return float(np.sum(ops.group_normalization(x, groups, gamma, beta)[0] * r))

    _, mean, rstd = ops.group_normalization(x, groups, gamma, beta)
    dx, dgamma, dbeta = ops.group_normalization_backward(x, r, mean, rstd, groups, gamma)
    assert_grad(dx, numerical_grad(loss, x))
    assert_grad(dgamma, numerical_grad(loss, gamma))
    assert_grad(dbeta, numerical_grad(loss, beta))


def test_normalization_arguments_are_checked():
    x = np.ones((2, 6), np.float32)
    with pytest.raises(ValueError, match="group_normalization: `groups` must be a positive "
                                         "int dividing the 6 channels, received 4"):
        ops.group_normalization(x, 4)
    with pytest.raises(ValueError, match="batch_normalization: `mean` must have one value "
                                         "per channel"):
        ops.batch_normalization(x, np.zeros(5), np.ones(6))
    with pytest.raises(ValueError, match="`epsilon` must be > 0"):
        ops.batch_normalization(x, np.zeros(6), np.ones(6), epsilon=0)
    c = np.ones(6, np.float32)
    for source in (np.ones((3, 6), np.float32), np.ones((2, 6))):
        with pytest.raises(ValueError, match="batch_norm_grad: relu_source must be 2 x 6 "
                                             "in x's dtype, received"):
            _kernels.batch_norm_grad(x, x, c, c, c, True, np.empty_like(x), None, None,
                                     np.ones((2, 6), np.float32), 1, ops._workspace, source)

"""Fuzzing of every kernel against its NumPy twin, over the geometry that breaks index
arithmetic: zero-size dimensions, strides and dilations larger than the image, 1x1
inputs, and aliased buffers. Run by tests/test_fuzz.py in a child process, so that a
crash is a failed test and not the end of the test run; run it directly with
`python -m pytest tests/fuzz_kernels.py`."""
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cnnx import _kernels, ops
from cnnx.testing import reference as ref

from helpers import conv_tol

TOL = {np.float32: dict(rtol=2e-4, atol=2e-4), np.float64: dict(rtol=1e-10, atol=1e-10)}
FUZZ = settings(max_examples=400, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])
dims = st.integers(0, 7)
extents = st.integers(1, 12)          # strides and dilations, up to well past the image


def _assert_close(got, want, dtype, what):
    assert got.shape == want.shape, (what, got.shape, want.shape)
    np.testing.assert_allclose(got, want, err_msg=what, **conv_tol(TOL[dtype], dtype, want))


@FUZZ
@given(n=dims, h=dims, w=dims, c=st.integers(1, 4), f=st.integers(1, 9),
       kh=st.integers(1, 4), kw=st.integers(1, 4), sh=extents, sw=extents, dh=extents,
       dw=extents, padding=st.sampled_from(["valid", "same"]),
       algorithm=st.sampled_from(["gemm", "direct", "winograd", "winograd4", "auto"]),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2 ** 32 - 1))
def test_conv2d_any_geometry(n, h, w, c, f, kh, kw, sh, sw, dh, dw, padding, algorithm,
                             dtype, seed):
    # "valid" needs the dilated kernel inside the image: refused otherwise (tested in
    # test_validation.py), so draw again.
    assume(padding == "same" or ((kh - 1) * dh < h and (kw - 1) * dw < w))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h, w, c)).astype(dtype)
    kernel = rng.standard_normal((kh, kw, c, f)).astype(dtype)
    bias = rng.standard_normal(f).astype(dtype)
    args = ((sh, sw), padding, (dh, dw))
    before = _kernels.conv_algorithm()
    _kernels.set_conv_algorithm(algorithm)
    try:
        y = ops.conv2d(x, kernel, bias, *args)
        _assert_close(y, ref.conv2d(x, kernel, bias, *args), dtype, "y")
        dy = rng.standard_normal(y.shape).astype(dtype)
        got = ops.conv2d_backward(x, kernel, dy, *args)
        want = ref.conv2d_backward(x, kernel, dy, *args)
        for name, g, r in zip(("dx", "dkernel", "dbias"), got, want):
            _assert_close(g, r, dtype, name)
        # The same with ReLU fused into the kernel gradient of a first layer.
        relu_y = np.maximum(y, 0)
        got = ops.conv2d_backward(x, kernel, dy, *args, input_grad=False,
                                  relu_output=relu_y)
        want = ref.conv2d_backward(x, kernel, dy * (relu_y > 0), *args)
        _assert_close(got[1], want[1], dtype, "dkernel with relu_output")
    finally:
        _kernels.set_conv_algorithm(before)



@FUZZ
@given(n=dims, h=dims, w=dims, c=st.integers(0, 9), m=st.integers(1, 3),
       kh=st.integers(1, 4), kw=st.integers(1, 4), sh=extents, sw=extents, dh=extents,
       dw=extents, padding=st.sampled_from(["valid", "same"]),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2 ** 32 - 1))
def test_depthwise_conv2d_any_geometry(n, h, w, c, m, kh, kw, sh, sw, dh, dw, padding, dtype,
                                       seed):
    assume(padding == "same" or ((kh - 1) * dh < h and (kw - 1) * dw < w))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h, w, c)).astype(dtype)
    kernel = rng.standard_normal((kh, kw, c, m)).astype(dtype)
    bias = rng.standard_normal(c * m).astype(dtype)
    args = ((sh, sw), padding, (dh, dw))
    if c == 0:   # no channels: refused as any zero-sized kernel axis is
        with pytest.raises(ValueError, match="no zero-sized axis"):
            ops.depthwise_conv2d(x, kernel, bias, *args)
        return
    y = ops.depthwise_conv2d(x, kernel, bias, *args)
    _assert_close(y, ref.depthwise_conv2d(x, kernel, bias, *args), dtype, "y")
    dy = rng.standard_normal(y.shape).astype(dtype)
    got = ops.depthwise_conv2d_backward(x, kernel, dy, *args)
    want = ref.depthwise_conv2d_backward(x, kernel, dy, *args)
    for name, g, r in zip(("dx", "dkernel", "dbias"), got, want):
        _assert_close(g, r, dtype, name)



@FUZZ
@given(n=dims, h=st.integers(1, 6), w=st.integers(1, 6), c=st.integers(1, 4),
       f=st.integers(1, 5), kh=st.integers(1, 4), kw=st.integers(1, 4),
       sh=st.integers(1, 5), sw=st.integers(1, 5), dh=st.integers(1, 3),
       padding=st.sampled_from(["valid", "same"]), pad_h=st.integers(0, 4),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2 ** 32 - 1))
def test_conv2d_transpose_any_geometry(n, h, w, c, f, kh, kw, sh, sw, dh, padding, pad_h,
                                       dtype, seed):
    assume(sh == 1 or dh == 1)
    output_padding = None if pad_h >= sh else (pad_h, 0)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h, w, c)).astype(dtype)
    kernel = rng.standard_normal((kh, kw, f, c)).astype(dtype)
    bias = rng.standard_normal(f).astype(dtype)
    args = ((sh, sw), padding, output_padding, (dh, 1))
    try:
        y = ops.conv2d_transpose(x, kernel, bias, *args)
    except ValueError as e:
        # Refused only where Keras's output size does not map back to the input through
        # the convolution (a "same" output of zero width, say).
        assert "does not map back" in str(e)
        from cnnx._geometry import conv_output_length, conv_transpose_output_length
        back = []
        for length, k, s, p, d in ((h, kh, sh, output_padding and output_padding[0], dh),
                                   (w, kw, sw, output_padding and output_padding[1], 1)):
            out = conv_transpose_output_length(length, k, padding, s, p, d)
            back.append(conv_output_length(out, k, padding, s, d))
        assert tuple(back) != (h, w)
        return
    _assert_close(y, ref.conv2d_transpose(x, kernel, bias, *args), dtype, "y")
    dy = rng.standard_normal(y.shape).astype(dtype)
    for name, g, r in zip(("dx", "dkernel", "dbias"),
                          ops.conv2d_transpose_backward(x, kernel, dy, *args),
                          ref.conv2d_transpose_backward(x, kernel, dy, *args)):
        _assert_close(g, r, dtype, name)



@FUZZ
@given(n=dims, h=dims, w=st.integers(1, 5), groups=st.integers(1, 4), per=st.integers(1, 5),
       affine=st.booleans(), dtype=st.sampled_from([np.float32, np.float64]),
       seed=st.integers(0, 2 ** 32 - 1))
def test_group_normalization_any_shape(n, h, w, groups, per, affine, dtype, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((n, h, w, groups * per)) * 4 + 2).astype(dtype)
    c = groups * per
    gamma = rng.standard_normal(c).astype(dtype) if affine else None
    beta = rng.standard_normal(c).astype(dtype) if affine else None
    got = ops.group_normalization(x, groups, gamma, beta)
    want = ref.group_normalization(x, groups, gamma, beta)
    for name, g, r in zip(("y", "mean", "rstd"), got, want):
        _assert_close(g, r, dtype, name)
    dy = rng.standard_normal(x.shape).astype(dtype)
    for name, g, r in zip(("dx", "dgamma", "dbeta"),
                          ops.group_normalization_backward(x, dy, *got[1:], groups, gamma),
                          ref.group_normalization_backward(x, dy, *want[1:], groups, gamma)):
        _assert_close(g, r, dtype, name)



@FUZZ
@given(n=dims, h=dims, c=st.integers(0, 9), affine=st.booleans(), training=st.booleans(),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2 ** 32 - 1))
def test_batch_normalization_any_shape(n, h, c, affine, training, dtype, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((n, h, 3, c)) * 4 + 2).astype(dtype)
    gamma = rng.standard_normal(c).astype(dtype) if affine else None
    beta = rng.standard_normal(c).astype(dtype) if affine else None
    mean, var = ops.batch_normalization_moments(x)
    for name, g, r in zip(("mean", "var"), (mean, var), ref.batch_normalization_moments(x)):
        _assert_close(g, r, dtype, name)
    _assert_close(ops.batch_normalization(x, mean, var, gamma, beta),
                  ref.batch_normalization(x, mean, var, gamma, beta), dtype, "y")
    dy = rng.standard_normal(x.shape).astype(dtype)
    for name, g, r in zip(("dx", "dgamma", "dbeta"),
                          ops.batch_normalization_backward(x, dy, mean, var, gamma,
                                                           training=training),
                          ref.batch_normalization_backward(x, dy, mean, var, gamma,
                                                           training=training)):
        _assert_close(g, r, dtype, name)


@FUZZ
@given(n=dims, h=dims, w=dims, c=st.integers(0, 9), ph=st.integers(1, 4),
       pw=st.integers(1, 4), sh=extents, sw=extents,
       padding=st.sampled_from(["valid", "same"]),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2 ** 32 - 1))
def test_pooling_any_geometry(n, h, w, c, ph, pw, sh, sw, padding, dtype, seed):
    assume(padding == "same" or (ph <= h and pw <= w))
    rng = np.random.default_rng(seed)
    # Distinct values: ties make argmax a matter of convention.
    x = rng.permutation(n * h * w * c).reshape(n, h, w, c).astype(dtype)
    args = ((ph, pw), (sh, sw), padding)
    y, argmax = ops.max_pool2d(x, *args)
    y_ref, arg_ref = ref.max_pool2d(x, *args)
    _assert_close(y, y_ref, dtype, "max y")
    dy = rng.standard_normal(y.shape).astype(dtype)
    _assert_close(ops.max_pool2d_backward(dy, argmax, x.shape),
                  ref.max_pool2d_backward(dy, arg_ref, x.shape), dtype, "max dx")
    a = ops.average_pool2d(x, *args)
    _assert_close(a, ref.average_pool2d(x, *args), dtype, "avg y")
    _assert_close(ops.average_pool2d_backward(dy, x.shape, *args),
                  ref.average_pool2d_backward(dy, x.shape, *args), dtype, "avg dx")


@FUZZ
@given(b=dims, i=st.integers(1, 40), o=st.integers(1, 40),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2 ** 32 - 1))
def test_dense_any_shape(b, i, o, dtype, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((b, i)).astype(dtype)
    kernel = rng.standard_normal((i, o)).astype(dtype)
    bias = rng.standard_normal(o).astype(dtype)
    _assert_close(ops.dense(x, kernel, bias), ref.dense(x, kernel, bias), dtype, "y")
    dy = rng.standard_normal((b, o)).astype(dtype)
    for name, g, r in zip(("dx", "dkernel", "dbias"), ops.dense_backward(x, kernel, dy),
                          ref.dense_backward(x, kernel, dy)):
        _assert_close(g, r, dtype, name)


@FUZZ
@given(n=dims, k=st.integers(0, 12), seed=st.integers(0, 2 ** 32 - 1))
def test_cross_entropies_any_shape(n, k, seed):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, k))
    t = rng.random((n, k))
    loss, grad = ops.softmax_cross_entropy(z, t)
    want_loss, want_grad = ref.softmax_cross_entropy(z, t) if k else (np.zeros(n), z)
    assert np.all(np.isfinite(loss))
    _assert_close(loss, want_loss, np.float64, "loss")
    _assert_close(grad, want_grad, np.float64, "grad")
    loss, grad = ops.sigmoid_cross_entropy(z, t)
    want_loss, want_grad = ref.sigmoid_cross_entropy(z, t)
    _assert_close(loss, want_loss, np.float64, "sigmoid loss")


@pytest.mark.parametrize("name,value", [("strides", 2 ** 31), ("dilation_rate", 2 ** 60),
                                        ("strides", (1, 2 ** 58))])
def test_extreme_strides_and_dilations_are_refused_by_name(name, value):
    x = np.ones((1, 5, 5, 2), np.float32)
    kernel = np.ones((3, 3, 2, 4), np.float32)
    with pytest.raises(ValueError, match=rf"conv2d: `{name}` is too large"):
        ops.conv2d(x, kernel, padding="same", **{name: value})
    with pytest.raises(ValueError, match=r"max_pool2d: `strides` is too large"):
        ops.max_pool2d(x, 2, strides=2 ** 31, padding="same")


def _brute_conv(x, kernel, strides, dilation):
    """Convolution under "same" padding by its definition, pixel by pixel, with Python
    integers for the positions (for geometry too large for the padded reference)."""
    n, h, w, c = x.shape
    kh, kw, _, f = kernel.shape
    out = [-(-h // strides[0]), -(-w // strides[1])]
    pads = [max((o - 1) * s + (k - 1) * d + 1 - size, 0) // 2 for o, s, k, d, size in
            zip(out, strides, (kh, kw), dilation, (h, w))]
    y = np.zeros((n, out[0], out[1], f))
    for oh in range(out[0]):
        for ow in range(out[1]):
            for i in range(kh):
                for j in range(kw):
                    r = oh * strides[0] - pads[0] + i * dilation[0]
                    q = ow * strides[1] - pads[1] + j * dilation[1]
                    if 0 <= r < h and 0 <= q < w:
                        y[:, oh, ow, :] += x[:, r, q, :] @ kernel[i, j]
    return y


@pytest.mark.parametrize("algorithm", ["gemm", "direct", "winograd", "winograd4"])
def test_largest_legal_stride_and_dilation_compute_within_memory(algorithm):
    # 2**31 - 1 is legal: the direct kernels would pad a copy the size of the dilated
    # kernel, so the im2col product reads it in place instead.
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 5, 5, 2))
    kernel = rng.standard_normal((3, 3, 2, 2))
    big = 2 ** 31 - 1
    before = _kernels.conv_algorithm()
    _kernels.set_conv_algorithm(algorithm)
    try:
        for s, d in (((1, big), (1, 1)), ((1, 1), (1, big)), ((big, big), (big, big)),
                     ((1, 7), (9, 1))):
            y = ops.conv2d(x, kernel, None, s, "same", d)
            np.testing.assert_allclose(y, _brute_conv(x, kernel, s, d), rtol=1e-12,
                                       atol=1e-12)
    finally:
        _kernels.set_conv_algorithm(before)


def test_overlapping_buffers_are_refused():
    kernel = np.ones((3, 3, 3, 3), np.float32)
    buf = np.zeros(200, np.float32)
    xs = buf[:2 * 4 * 4 * 3].reshape(2, 4, 4, 3)
    with pytest.raises(ValueError, match="conv2d: `out` overlaps an input"):
        ops.conv2d(xs, kernel, out=buf[8:8 + 2 * 2 * 2 * 3].reshape(2, 2, 2, 3))
    with pytest.raises(ValueError, match="conv2d_backward: `out` overlaps an input"):
        ops.conv2d_backward(xs, kernel, np.ones((2, 2, 2, 3), np.float32),
                            out=(xs, None, None))
    w = np.ones((4, 4), np.float32)
    with pytest.raises(ValueError, match="dense: `out` overlaps an input"):
        ops.dense(w, w, out=w)
    x = np.ones((2, 6, 6, 3), np.float32)
    pooled = x.reshape(-1)[:2 * 3 * 3 * 3].reshape(2, 3, 3, 3)
    with pytest.raises(ValueError, match="max_pool2d: `out` overlaps an input"):
        ops.max_pool2d(x, 2, out=(pooled, np.empty((2, 3, 3, 3), np.int32)))
    # A non-contiguous input is copied first, so an output over the original is safe.
    y = ops.conv2d(x[:, :4, :4, :], kernel, out=x.reshape(-1)[:24].reshape(2, 2, 2, 3))
    assert y.shape == (2, 2, 2, 3)
    # Elementwise kernels may write over their input exactly, not partly.
    g = np.ones((2, 4, 4, 3), np.float32)
    assert ops.relu(g, out=g) is g
    flat = np.ones(100, np.float32)
    with pytest.raises(ValueError, match="relu: `out` overlaps an input"):
        ops.relu(flat[:50], out=flat[10:60])

"""Every compiled kernel against its pure-NumPy twin in cnnx._reference."""
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import cnnx
from cnnx import _kernels, ops
from cnnx import _reference as ref

from helpers import assert_grad, by_conv_algorithm, conv_algorithm, conv_tol, numerical_grad

DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=1e-4, atol=1e-4), np.float64: dict(rtol=1e-10, atol=1e-10)}

# (N, H, W, C, F, kernel, strides, padding, dilation)
CONV_CASES = [
    (2, 7, 7, 3, 5, (3, 3), 1, "valid", 1),
    (3, 9, 8, 4, 33, (3, 3), 2, "same", 1),
    (2, 10, 11, 2, 7, (3, 3), 1, "same", 2),
    (4, 13, 13, 32, 64, (3, 3), 1, "valid", 1),
    (1, 1, 1, 1, 1, (1, 1), 1, "valid", 1),
    (1, 1, 1, 3, 2, (3, 3), 1, "same", 1),
    (2, 6, 5, 3, 4, (2, 2), 3, "same", 1),
    (2, 8, 9, 5, 6, (5, 3), (2, 1), "valid", (1, 2)),
    (2, 8, 9, 5, 6, (2, 4), (1, 3), "same", (2, 1)),
    (3, 12, 12, 1, 6, (5, 5), 1, "valid", 1),
    (2, 16, 16, 3, 40, (3, 3), 1, "same", 1),
    (1, 5, 17, 7, 3, (1, 7), (2, 2), "same", 1),
    (2, 9, 9, 3, 48, (3, 3), 1, "same", 1),    # 48 = 3 AVX-512 float vectors: 1-vector tiles
    (3, 10, 10, 6, 16, (5, 5), 1, "valid", 1),
    (2, 7, 9, 33, 40, (3, 3), 1, "same", 1),   # Winograd: odd sizes, partial tiles
    (2, 9, 6, 32, 64, (3, 3), 1, "valid", 1),
]


def _conv_check(case, dtype, rng, bias=True, activation=None):
    n, h, w, c, f, k, s, pad, d = case
    x = rng.standard_normal((n, h, w, c)).astype(dtype)
    kernel = rng.standard_normal(k + (c, f)).astype(dtype)
    b = rng.standard_normal(f).astype(dtype) if bias else None
    y = ops.conv2d(x, kernel, b, s, pad, d, activation)
    want = ref.conv2d(x, kernel, b, s, pad, d, activation)
    np.testing.assert_allclose(y, want, **conv_tol(TOL[dtype], dtype, want))
    assert y.dtype == dtype
    dy = rng.standard_normal(y.shape).astype(dtype)
    got = ops.conv2d_backward(x, kernel, dy, s, pad, d, use_bias=bias)
    want = ref.conv2d_backward(x, kernel, dy, s, pad, d, use_bias=bias)
    for name, g, r in zip(("dx", "dkernel", "dbias"), got, want):
        if r is None:
            assert g is None, name
        else:
            np.testing.assert_allclose(g, r, err_msg=name, **conv_tol(TOL[dtype], dtype, r))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_matches_reference(case, dtype, rng, simd_path, conv_algorithm):
    _conv_check(case, dtype, rng)


# Paths that only "auto" takes: pointwise layers (1x1, stride 1) through the dense
# kernels, forward and input gradient; kernel gradients whose per-chunk partial sums
# would outweigh the data through the im2col product (small images, wide layers).
AUTO_CASES = [
    (5, 6, 7, 32, 48, (1, 1), 1, "same", 1),        # pointwise
    (2, 2, 2, 64, 128, (1, 1), 1, "valid", 2),      # pointwise, partials 5x the data
    (1, 8, 8, 19, 7, (1, 1), 1, "valid", 1),        # pointwise, one image, odd channels
    (8, 4, 4, 32, 64, (3, 3), 1, "valid", 1),       # 3x3, partials 6x the data
    (3, 5, 5, 16, 32, (1, 1), 2, "valid", 1),       # 1x1 at stride 2: not pointwise
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", AUTO_CASES)
def test_conv2d_auto_paths_match_reference(case, dtype, rng, simd_path):
    _conv_check(case, dtype, rng)
    _conv_check(case, dtype, rng, bias=False, activation="relu")


@pytest.mark.parametrize("dtype", DTYPES)
def test_conv2d_fused_relu_and_no_bias(dtype, rng, conv_algorithm):
    for case in CONV_CASES[:4]:
        _conv_check(case, dtype, rng, bias=False, activation="relu")
        _conv_check(case, dtype, rng, bias=True, activation="relu")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", [(64, 9, 9, 19, 24, (3, 3), 1, "same", 1),
                                  (16, 10, 10, 19, 8, (3, 3), 2, "same", 1)])
def test_kernel_gradient_product_packs_wide_blocks(case, dtype, rng, simd_path):
    """The im2col product's kernel gradient packs each A block in one walk over the
    pixels: here 171 rows (3 x 3 taps of 19 channels; all of them in one block in
    float32), so taps cross strips, the last strip is partial and a walk cuts more
    rows than it holds at once; with the reduction split in chunks (5184 pixels) and
    not (1600). 24 filters are not whole panels, so dy is packed: the chunks must start
    where its blocks do (chunks of 2592 read it at the wrong offsets)."""
    with conv_algorithm("gemm"):
        _conv_check(case, dtype, rng)


@pytest.mark.parametrize("dtype", DTYPES)
def test_pointwise_kernel_gradients_take_the_product(dtype, rng, simd_path):
    """A pointwise layer's kernel gradient runs the im2col product under "auto" (it beat
    the channel-vectorised direct kernel at W6's 1x1 layers on AVX2): the same bits as
    "gemm", not those of "direct". AVX-512 keeps the direct kernel (not measured)."""
    x = rng.standard_normal((8, 8, 8, 64)).astype(dtype)
    kernel = rng.standard_normal((1, 1, 64, 32)).astype(dtype)
    dy = rng.standard_normal((8, 8, 8, 32)).astype(dtype)
    dk = by_conv_algorithm(("auto", "gemm", "direct"), lambda: ops.conv2d_backward(
        x, kernel, dy, use_bias=False, input_grad=False)[1])
    taken, other = ("direct", "gemm") if simd_path == "avx512" else ("gemm", "direct")
    assert np.array_equal(dk["auto"], dk[taken])
    assert not np.array_equal(dk["auto"], dk[other])
    np.testing.assert_allclose(dk["auto"], ref.conv2d_backward(x, kernel, dy)[1],
                               **TOL[dtype])


def test_conv2d_large_reduction_uses_split_k(rng):
    # P = 64*18*18 = 20736 rows: the kernel gradient is reduced in several chunks.
    _conv_check((64, 20, 20, 8, 16, (3, 3), 1, "valid", 1), np.float64, rng)


def test_conv2d_input_grad_can_be_skipped(rng):
    x = rng.standard_normal((2, 5, 5, 3))
    kernel = rng.standard_normal((3, 3, 3, 4))
    dy = rng.standard_normal((2, 3, 3, 4))
    dx, dk, db = ops.conv2d_backward(x, kernel, dy, input_grad=False)
    assert dx is None
    np.testing.assert_allclose(dk, ref.conv2d_backward(x, kernel, dy)[1], rtol=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 3), h=st.integers(1, 12), w=st.integers(1, 12), c=st.integers(1, 6),
    f=st.integers(1, 20), kh=st.integers(1, 4), kw=st.integers(1, 4),
    sh=st.integers(1, 3), sw=st.integers(1, 3), dh=st.integers(1, 3), dw=st.integers(1, 3),
    padding=st.sampled_from(["valid", "same"]), seed=st.integers(0, 2 ** 32 - 1),
    algorithm=st.sampled_from(["gemm", "direct", "winograd"]),
    dtype=st.sampled_from(DTYPES),
)
def test_conv2d_random_geometry(n, h, w, c, f, kh, kw, sh, sw, dh, dw, padding, seed,
                                algorithm, dtype):
    # "valid" with a dilated kernel larger than the image is refused by validation
    # (tested elsewhere): draw again rather than pass silently.
    assume(padding != "valid" or ((kh - 1) * dh + 1 <= h and (kw - 1) * dw + 1 <= w))
    rng = np.random.default_rng(seed)
    with conv_algorithm(algorithm):
        _conv_check((n, h, w, c, f, (kh, kw), (sh, sw), padding, (dh, dw)), dtype, rng)


@pytest.mark.parametrize("shape", [(3, 32, 32, 1, 6, (5, 5)), (2, 28, 28, 1, 32, (3, 3)),
                                   (2, 14, 14, 6, 16, (5, 5)), (2, 64, 64, 3, 32, (3, 3))])
def test_conv2d_direct_agrees_with_gemm_at_network_shapes(shape, rng):
    """The two algorithms on the first layers of benchmarks/run.py's networks, where
    "auto" picks the direct kernels; both must agree with the reference and each other."""
    n, h, w, c, f, k = shape
    x = rng.standard_normal((n, h, w, c)).astype(np.float32)
    kernel = rng.standard_normal(k + (c, f)).astype(np.float32)
    dy = rng.standard_normal((n, h - k[0] + 1, w - k[1] + 1, f)).astype(np.float32)
    results = by_conv_algorithm(("gemm", "direct"), lambda: (
        ops.conv2d(x, kernel, activation="relu"),
        *ops.conv2d_backward(x, kernel, dy, input_grad=False)[1:]))
    for a, b in zip(results["gemm"], results["direct"]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(results["direct"][0],
                               ref.conv2d(x, kernel, activation="relu"), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", [
    # (n, h, w, c, f, kernel, strides, padding, dilation): a kernel row's taps (3 x C)
    # a whole number of the kernel gradient's tiles (24, 12 or 6 taps on AVX-512, each one
    # run in memory), and beside them tiles that are not runs: 5 columns of 16 channels
    # (80 taps), dilated columns, a stride, and fewer taps than a tile
    (2, 9, 11, 16, 16, (3, 3), (1, 1), "same", (1, 1)),
    (2, 8, 8, 32, 32, (3, 3), (1, 1), "same", (1, 1)),
    (2, 6, 6, 64, 64, (3, 3), (1, 1), "same", (1, 1)),     # 4-vector tiles on AVX-512
    (3, 7, 6, 8, 16, (3, 3), (1, 1), "valid", (1, 1)),
    (2, 12, 12, 16, 16, (3, 5), (1, 1), "same", (1, 1)),
    (2, 12, 12, 16, 32, (3, 3), (1, 1), "valid", (2, 2)),
    (2, 13, 13, 16, 16, (3, 3), (2, 2), "same", (1, 1)),
    (2, 9, 9, 3, 16, (3, 3), (1, 1), "same", (1, 1))])
def test_direct_kernel_gradient_tiles_of_consecutive_taps(case, dtype, rng, simd_path):
    """The channel-vectorised kernel gradient reads a tile of taps that lie in one run of
    memory at one base pointer plus constants, and others through their offsets: both
    agree with the reference, with and without the fused ReLU mask and bias."""
    n, h, w, c, f, k, s, pad, d = case
    x = rng.standard_normal((n, h, w, c)).astype(dtype)
    kernel = rng.standard_normal(k + (c, f)).astype(dtype)
    with conv_algorithm("direct"):
        y = ops.conv2d(x, kernel, None, s, pad, d, activation="relu")
        dy = rng.standard_normal(y.shape).astype(dtype)
        _, dk, db = ops.conv2d_backward(x, kernel, dy, s, pad, d, input_grad=False,
                                        relu_output=y)
    _, want_dk, want_db = ref.conv2d_backward(x, kernel, np.where(y > 0, dy, 0), s, pad, d)
    np.testing.assert_allclose(dk, want_dk, **TOL[dtype])
    np.testing.assert_allclose(db, want_db, **TOL[dtype])


@pytest.mark.parametrize("input_grad", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("c,f,padding", [(1, 32, "valid"), (3, 64, "same"), (1, 6, "valid"),
                                         (8, 16, "same")])
def test_conv2d_backward_fuses_relu_mask(c, f, padding, dtype, input_grad, rng,
                                         conv_algorithm, simd_path):
    """relu_output=y gives what relu_backward then conv2d_backward give."""
    x = rng.standard_normal((5, 9, 11, c)).astype(dtype)
    kernel = rng.standard_normal((3, 3, c, f)).astype(dtype)
    bias = rng.standard_normal(f).astype(dtype)
    y = ops.conv2d(x, kernel, bias, padding=padding, activation="relu")
    dy = rng.standard_normal(y.shape).astype(dtype)
    got = ops.conv2d_backward(x, kernel, dy, padding=padding, input_grad=input_grad,
                              relu_output=y)
    want = ref.conv2d_backward(x, kernel, ref.relu_backward(dy, y), padding=padding)
    for name, g, r in zip(("dx", "dkernel", "dbias"), got, want):
        if input_grad or name != "dx":
            np.testing.assert_allclose(g, r, err_msg=name, **conv_tol(TOL[dtype], dtype, r))
    with pytest.raises(ValueError, match="relu_output"):
        ops.conv2d_backward(x, kernel, dy, padding=padding, relu_output=y[:, :1])


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool_backward_fuses_relu_mask(dtype, rng):
    """relu_output=pooled gives relu_backward(max_pool2d_backward(dy), relu input)."""
    z = rng.standard_normal((3, 8, 9, 6)).astype(dtype)
    z[0, :2, :2, :] = -1.0                      # a window with nothing positive
    a = ref.relu(z)
    p, arg = ops.max_pool2d(a, 3, 2, "same")
    dy = rng.standard_normal(p.shape).astype(dtype)
    want = ref.relu_backward(ref.max_pool2d_backward(dy, arg, a.shape), a)
    got = ops.max_pool2d_backward(dy, arg, a.shape, relu_output=p)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(
        ref.max_pool2d_backward(dy, arg, a.shape, relu_output=p), want)
    with pytest.raises(ValueError, match="relu_output"):
        ops.max_pool2d_backward(dy, arg, a.shape, relu_output=p[:, :1])


def test_conv_algorithm_rejects_unknown_names():
    with pytest.raises(ValueError, match="conv algorithm"):
        _kernels.set_conv_algorithm("fft")


@pytest.mark.parametrize("shape,expected", [
    ((64, 8, 8, 64, 64), "winograd4"), ((64, 16, 16, 32, 32), "winograd4"),
    ((64, 32, 32, 16, 16), "winograd4"), ((16, 16, 16, 32, 64), "winograd4"),
    ((16, 8, 8, 256, 256), "winograd")])
def test_winograd_is_chosen_for_wide_3x3_layers(shape, expected, rng, simd_path):
    """W5's 64 -> 64, 32 -> 32 and 16 -> 16 layers (on AVX-512, 16 outputs take the AVX2
    microkernel's 16 columns), and 32 -> 64 at 16 x 16, run Winograd F(4x4,
    3x3) under "auto", a 256 -> 256 layer F(2x2, 3x3) (its transformed kernel is too
    large for F(4x4)'s): the same bits as when it is forced, other bits than the other
    algorithms', and the reference's values to float32's tolerance."""
    n, h, w, c, f = shape
    x = rng.standard_normal((n, h, w, c)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, c, f)).astype(np.float32)
    bias = rng.standard_normal(f).astype(np.float32)
    ys = by_conv_algorithm(("auto", "winograd", "winograd4", "gemm"), lambda: ops.conv2d(
        x, kernel, bias, 1, "same", activation="relu"))
    assert np.array_equal(ys["auto"], ys[expected])
    for other in {"winograd", "winograd4", "gemm"} - {expected}:
        assert not np.array_equal(ys["auto"], ys[other])
    want = ref.conv2d(x, kernel, bias, 1, "same", activation="relu")
    with conv_algorithm(expected):
        np.testing.assert_allclose(ys["auto"], want, **conv_tol(TOL[np.float32], np.float32, want))


@pytest.mark.parametrize("shape,expected", [
    ((64, 8, 8, 64, 64), "winograd4"), ((64, 16, 16, 32, 32), "winograd4"),
    ((2, 9, 7, 48, 40), "winograd4"), ((16, 8, 8, 256, 256), "winograd")])
def test_winograd_kernel_gradients(shape, expected, rng, simd_path, threads):
    """A kernel gradient runs Winograd under the forward pass's rule (forced, in the
    third case): the same bits as forced, other bits than the product's, the same bits
    on 1, 2 and 3 threads (64 16 x 16 images: 1024 tiles, two chunks), the reference's
    values to float32's tolerance."""
    n, h, w, c, f = shape
    x = rng.standard_normal((n, h, w, c)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, c, f)).astype(np.float32)
    dy = rng.standard_normal((n, h, w, f)).astype(np.float32)

    def dkernel():
        return ops.conv2d_backward(x, kernel, dy, 1, "same", use_bias=False,
                                   input_grad=False)[1]

    forced = by_conv_algorithm((expected, "gemm"), dkernel)
    if n > 2:
        assert np.array_equal(by_conv_algorithm(("auto",), dkernel)["auto"], forced[expected])
    assert not np.array_equal(forced[expected], forced["gemm"])
    with conv_algorithm(expected):
        for t in (1, 3):
            threads(t)
            assert np.array_equal(dkernel(), forced[expected])
        want = ref.conv2d_backward(x, kernel, dy, 1, "same", use_bias=False)[1]
        np.testing.assert_allclose(forced[expected], want,
                                   **conv_tol(TOL[np.float32], np.float32, want))


@pytest.mark.parametrize("batch,size,c,f,expected", [
    (1, 10, 32, 32, "direct"), (2, 6, 64, 64, "direct"), (1, 6, 64, 64, "direct"),
    (3, 6, 48, 48, "direct"), (1, 6, 128, 128, "winograd4"), (1, 13, 32, 64, "winograd4"),
    (2, 13, 32, 64, "winograd4"), (64, 13, 32, 64, "winograd4"), (1, 10, 64, 64, "winograd4"),
    (1, 10, 128, 128, "winograd4"), (3, 13, 48, 48, "winograd4"),
    (1, 18, 64, 128, "winograd4"), (1, 26, 64, 64, "winograd4"), (1, 32, 64, 64, "winograd4"),
    (3, 32, 64, 64, "winograd4"),
    (48, 13, 48, 48, "winograd4"), (32, 8, 256, 256, "winograd"),
    (64, 32, 16, 16, "winograd4")])
def test_few_output_pixels_take_the_direct_forward(batch, size, c, f, expected, rng,
                                                   simd_path):
    """A 3x3 layer (here "valid") whose Winograd F(4x4, 3x3) would have fewer than 16384
    tile x C x F products takes the channel-vectorised direct forward: one to three
    small images. From there on (one 4 x 4 tile of 128 -> 128, one image through W1's
    32 -> 64 layer, W4's layers from one image on, one block of tiles that the threads
    share) F(4x4, 3x3), above 128 channels F(2x2, 3x3).
    Seen through the bits, with the reference's values either way. The baseline path
    has no direct kernels."""
    x = rng.standard_normal((batch, size, size, c)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, c, f)).astype(np.float32)
    bias = rng.standard_normal(f).astype(np.float32)
    algorithms = ("direct", "gemm", "winograd", "winograd4")
    ys = by_conv_algorithm(("auto",) + algorithms,
                           lambda: ops.conv2d(x, kernel, bias, activation="relu"))
    if simd_path in ("avx512", "avx2") or expected != "direct":
        assert np.array_equal(ys["auto"], ys[expected])
        for other in set(algorithms) - {expected}:
            assert not np.array_equal(ys["auto"], ys[other])
    want = ref.conv2d(x, kernel, bias, activation="relu")
    with conv_algorithm(expected):
        np.testing.assert_allclose(ys["auto"], want, **conv_tol(TOL[np.float32], np.float32, want))


@pytest.mark.parametrize("batch,size,c,f,padding", [
    (1, 13, 32, 64, "valid"), (1, 16, 64, 128, "same"), (3, 10, 32, 48, "valid"),
    (6, 8, 64, 64, "same")])
def test_winograd_blocks_shared_by_the_threads_keep_their_bits(batch, size, c, f, padding,
                                                               rng, simd_path, threads):
    """Fewer blocks of tiles than two a thread (one image through W1's 32 -> 64 layer:
    one block; W4's 64 -> 128: one; 6 images of 8 x 8: two): the threads take strips of
    output channels of each block where the strips divide among them (64 channels, 2 and
    4 threads), and share each block's phases otherwise (3 threads; 48 channels: 3
    strips of 16 on AVX2). Every count gives one thread's bits, and the reference's
    values."""
    x = rng.standard_normal((batch, size, size, c)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, c, f)).astype(np.float32)
    bias = rng.standard_normal(f).astype(np.float32)
    with conv_algorithm("winograd4"):
        ys = []
        for n in (1, 2, 3, 4):
            threads(n)
            ys.append(ops.conv2d(x, kernel, bias, padding=padding, activation="relu"))
    for n, y in zip((2, 3, 4), ys[1:]):
        assert np.array_equal(y, ys[0]), f"{n} threads"
    want = ref.conv2d(x, kernel, bias, padding=padding, activation="relu")
    np.testing.assert_allclose(ys[0], want, **conv_tol(TOL[np.float32], np.float32, want))


@pytest.mark.parametrize("shape,padding", [((64, 16, 16, 64, 128), "same"),
                                           ((8, 13, 13, 32, 64), "valid")])
def test_input_gradient_of_a_widening_layer_runs_winograd(shape, padding, rng, simd_path):
    """More outputs than inputs (W4's 64 -> 128, W1's 32 -> 64): the input gradient is
    the flipped kernel's forward pass when that runs Winograd (its bits, not col2im's,
    which "gemm" forces), the reference's values."""
    n, h, w, c, f = shape
    x = rng.standard_normal((n, h, w, c)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, c, f)).astype(np.float32)
    dy = rng.standard_normal(ops.conv2d(x, kernel, None, 1, padding).shape).astype(np.float32)
    pad = 1 if padding == "same" else 2   # the flipped pass's padding on each side
    flipped = np.ascontiguousarray(kernel[::-1, ::-1].transpose(0, 1, 3, 2))
    dxs = by_conv_algorithm(("auto", "gemm"), lambda: ops.conv2d_backward(
        x, kernel, dy, 1, padding, use_bias=False)[0])
    with conv_algorithm("winograd4"):
        forward = ops.conv2d(np.pad(dy, ((0, 0), (pad, pad), (pad, pad), (0, 0))), flipped)
        assert np.array_equal(dxs["auto"], forward)
        assert not np.array_equal(dxs["auto"], dxs["gemm"])
        want = ref.conv2d_backward(x, kernel, dy, 1, padding, use_bias=False)[0]
        np.testing.assert_allclose(dxs["auto"], want, **conv_tol(TOL[np.float32],
                                                                 np.float32, want))


@pytest.mark.parametrize("algorithm", ["winograd", "winograd4"])
@pytest.mark.parametrize("padding", ["same", "valid"])
def test_winograd_gradients_by_finite_differences(padding, algorithm, rng):
    """float64, Winograd forced: the forward pass and the input gradient (the flipped
    kernel's forward pass) run through it; central differences agree. 5 x 7 images:
    partial tiles of both sizes."""
    x = rng.standard_normal((2, 5, 7, 3))
    kernel = rng.standard_normal((3, 3, 3, 2))
    y = ops.conv2d(x, kernel, None, 1, padding)
    r = rng.standard_normal(y.shape)
    with conv_algorithm(algorithm):
        def loss():
            return float(np.sum(ops.conv2d(x, kernel, None, 1, padding) * r))

        dx, dk, _ = ops.conv2d_backward(x, kernel, r, 1, padding, use_bias=False)
        assert_grad(dx, numerical_grad(loss, x))
        assert_grad(dk, numerical_grad(loss, kernel))


POOL_CASES = [
    ((2, 7, 7, 3), 2, None, "same"),
    ((2, 9, 8, 4), 3, 2, "valid"),
    ((3, 5, 6, 2), (2, 3), (1, 2), "same"),
    ((1, 1, 1, 1), 1, None, "valid"),
    ((2, 6, 6, 3), 3, 1, "same"),
    ((2, 26, 26, 32), 2, None, "valid"),
    ((1, 4, 9, 5), (1, 2), (3, 1), "same"),
    ((2, 7, 9, 32), 3, 2, "same"),    # channels in whole vectors: the SIMD row kernel
    ((2, 5, 5, 16), (2, 3), 1, "same"),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,pool,strides,padding", POOL_CASES)
def test_max_pool_matches_reference(shape, pool, strides, padding, dtype, rng, simd_path):
    x = rng.standard_normal(shape).astype(dtype)
    x[x < 0] = 0  # many ties, as after a ReLU: the first maximum must win in both
    y, arg = ops.max_pool2d(x, pool, strides, padding)
    y_ref, arg_ref = ref.max_pool2d(x, pool, strides, padding)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(arg, arg_ref)
    dy = rng.standard_normal(y.shape).astype(dtype)
    np.testing.assert_allclose(ops.max_pool2d_backward(dy, arg, x.shape),
                               ref.max_pool2d_backward(dy, arg_ref, x.shape), **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,pool,strides,padding", POOL_CASES)
def test_average_pool_matches_reference(shape, pool, strides, padding, dtype, rng):
    x = rng.standard_normal(shape).astype(dtype)
    y = ops.average_pool2d(x, pool, strides, padding)
    np.testing.assert_allclose(y, ref.average_pool2d(x, pool, strides, padding), **TOL[dtype])
    dy = rng.standard_normal(y.shape).astype(dtype)
    np.testing.assert_allclose(ops.average_pool2d_backward(dy, x.shape, pool, strides, padding),
                               ref.average_pool2d_backward(dy, x.shape, pool, strides, padding),
                               **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (2, 3, 5, 17), (5, 8, 8, 64), (3, 1, 7, 40),
                                   (0, 4, 4, 3), (2, 4, 4, 0)])
def test_global_average_pool_matches_reference(shape, dtype, rng, simd_path):
    x = (rng.standard_normal(shape) + 3).astype(dtype)
    y = ops.global_average_pool2d(x)
    assert y.shape == (shape[0], shape[3]) and y.dtype == dtype
    np.testing.assert_allclose(y, ref.global_average_pool2d(x), **TOL[dtype])
    if dtype == np.float32:   # summed in float64, rounded once: 0.1 averages to 0.1
        same = np.full(shape, 0.1, dtype)
        np.testing.assert_array_equal(ops.global_average_pool2d(same),
                                      np.full((shape[0], shape[3]), 0.1, dtype))


def test_global_average_pool_is_the_same_for_any_thread_count_and_refuses_no_pixels(
        rng, threads):
    x = rng.standard_normal((7, 5, 5, 33)).astype(np.float32)
    outs = []
    for n in (1, 2, 3):
        threads(n)
        outs.append(ops.global_average_pool2d(x, out=np.empty((7, 33), np.float32)))
    for other in outs[1:]:
        np.testing.assert_array_equal(outs[0], other)
    with pytest.raises(ValueError, match="global_average_pool2d: `inputs` must have at "
                                         "least one pixel"):
        ops.global_average_pool2d(np.zeros((2, 0, 3, 4), np.float32))
    with pytest.raises(ValueError, match="`out` must be a writeable C-contiguous array of "
                                         "shape \\(7, 33\\)"):
        ops.global_average_pool2d(x, out=np.empty((7, 32), np.float32))


def test_average_pool_same_leaves_padding_out_of_divisor():
    x = np.ones((1, 3, 3, 1))
    # Every window of ones averages to exactly 1, corners included.
    np.testing.assert_array_equal(ops.average_pool2d(x, 2, 2, "same"), np.ones((1, 2, 2, 1)))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1,), (7,), (3, 5), (128, 26, 26, 32), (2, 3, 4, 5)])
def test_relu_matches_reference(shape, dtype, rng):
    x = rng.standard_normal(shape).astype(dtype)
    np.testing.assert_array_equal(ops.relu(x), ref.relu(x))
    dy = rng.standard_normal(shape).astype(dtype)
    np.testing.assert_array_equal(ops.relu_backward(dy, x), ref.relu_backward(dy, x))


@pytest.mark.parametrize("dtype", DTYPES)
def test_all_finite_matches_reference_at_every_position(dtype, rng):
    # Lengths around the kernel's 4096-value blocks and the vector widths; one
    # non-finite value at each position in turn (first, last, block edges).
    for n in (0, 1, 15, 17, 4095, 4096, 4097, 9000):
        x = rng.standard_normal(n).astype(dtype)
        assert ops.all_finite(x) is True and ref.all_finite(x) is True
        for at in sorted({0, n // 2, n - 1, 4095, 4096} & set(range(n))):
            for bad in (np.nan, np.inf, -np.inf):
                y = x.copy()
                y[at] = bad
                assert ops.all_finite(y) is False and ref.all_finite(y) is False
    big = np.full(3, np.finfo(dtype).max, dtype)   # finite, however large
    assert ops.all_finite(big) and ops.all_finite(-big)


def test_all_finite_other_arrays():
    assert ops.all_finite(np.arange(6).reshape(2, 3))                    # integers
    assert not ops.all_finite(np.array([1.0, np.nan], np.float16))        # via NumPy
    strided = np.ones((4, 4), np.float32)[:, ::2]
    strided[1, 1] = np.inf
    assert not ops.all_finite(strided)
    with pytest.raises(TypeError, match="all_finite: a float32 or float64 array"):
        _kernels.all_finite(np.ones(3, np.int32))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(0,), (1,), (7,), (3, 5), (64, 32, 32, 16)])
def test_add_matches_reference(shape, dtype, rng):
    a, b = (rng.standard_normal(shape).astype(dtype) for _ in range(2))
    for activation in (None, "relu"):
        want = ref.add(a, b, activation)
        np.testing.assert_array_equal(ops.add(a, b, activation), want)
        inplace = a.copy()
        assert ops.add(inplace, b, activation, out=inplace) is inplace
        np.testing.assert_array_equal(inplace, want)
    if a.size:
        a.reshape(-1)[0], b.reshape(-1)[0] = np.nan, 1   # NaN passes the fused ReLU
        assert np.isnan(ops.add(a, b, "relu").reshape(-1)[0])


def test_add_refuses_mismatched_shapes_and_overlaps():
    with pytest.raises(ValueError, match=r"add: `x1` and `x2` must have the same shape"):
        ops.add(np.ones((2, 3)), np.ones((1, 3)))
    with pytest.raises(ValueError, match="activation"):
        ops.add(np.ones(3), np.ones(3), "tanh")
    buf = np.zeros(8)
    with pytest.raises(ValueError, match="overlaps"):
        ops.add(buf[:4], buf[2:6], out=buf[1:5])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("b,i,o", [(1, 1, 1), (5, 7, 3), (128, 6272, 128), (33, 65, 10),
                                   (3000, 20, 17), (5000, 30, 10)])
def test_dense_matches_reference(b, i, o, dtype, rng, simd_path):
    # (5000, 30, 10): the kernel gradient's reduction in chunks (2 x 2560 rows) against a
    # packed dy (10 columns, not whole panels); chunks of 2500 read it at the wrong offsets.
    x = rng.standard_normal((b, i)).astype(dtype)
    kernel = rng.standard_normal((i, o)).astype(dtype)
    bias = rng.standard_normal(o).astype(dtype)
    tol = dict(rtol=1e-4, atol=1e-3) if dtype == np.float32 else TOL[dtype]
    for act in (None, "relu"):
        np.testing.assert_allclose(ops.dense(x, kernel, bias, act),
                                   ref.dense(x, kernel, bias, act), **tol)
    dy = rng.standard_normal((b, o)).astype(dtype)
    for g, r in zip(ops.dense_backward(x, kernel, dy), ref.dense_backward(x, kernel, dy)):
        np.testing.assert_allclose(g, r, **tol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("path", ["gemm", "gemv"])
@pytest.mark.parametrize("b,i,o", [(1, 1, 1), (1, 1600, 10), (1, 300, 100), (2, 7, 3),
                                   (5, 40, 17), (0, 5, 3), (1, 5, 64), (3, 9, 45),
                                   (2, 1300, 300), (1, 520, 250)])
def test_both_dense_paths_match_reference(b, i, o, path, dtype, rng, simd_path):
    # The row path (a few images through a dense layer, by default) and the GEMM, each
    # forced on shapes the other would take; zero rows, and the row path's blocks of
    # columns (128 wide, 1-3 x 32, 1-3 x 8, single ones), of kernel rows (256 each, their
    # sums added in order) and its work items on the threads, included.
    x = rng.standard_normal((b, i)).astype(dtype)
    kernel = rng.standard_normal((i, o)).astype(dtype)
    bias = rng.standard_normal(o).astype(dtype)
    tol = dict(rtol=1e-4, atol=1e-3) if dtype == np.float32 else TOL[dtype]
    before = _kernels.dense_path()
    _kernels.set_dense_path(path)
    try:
        for act, b_ in ((None, bias), ("relu", bias), ("relu", None)):
            np.testing.assert_allclose(ops.dense(x, kernel, b_, act),
                                       ref.dense(x, kernel, b_, act), **tol)
    finally:
        _kernels.set_dense_path(before)


def test_a_few_rows_through_a_dense_layer_take_the_row_path(rng, simd_path):
    # The rule: one or two rows take the rows of multiply-adds, four rows too while the
    # kernel is at most 1 MiB; more rows, or four with a larger kernel, the GEMM. (Both
    # sum blocks of 256 kernel rows in order, so their bits may agree: the rule is read
    # from dense_path_for, and "auto" gives the bits of the path it names.)
    def run(b, o, path, bias=None, activation=None):
        before = _kernels.dense_path()
        _kernels.set_dense_path(path)
        try:
            return ops.dense(x[:b], kernel[:, :o], bias, activation)
        finally:
            _kernels.set_dense_path(before)
    x = rng.standard_normal((5, 700)).astype(np.float32)
    kernel = rng.standard_normal((700, 400)).astype(np.float32)   # 1.1 MB
    cases = [(1, 10, "gemv"), (1, 100, "gemv"), (2, 100, "gemv"), (2, 400, "gemv"),
             (4, 100, "gemv"), (4, 400, "gemm"), (5, 10, "gemm")]
    for b, o, expected in cases:
        assert _kernels.dense_path_for(b, 700, o, 4) == expected, (b, o)
        np.testing.assert_array_equal(run(b, o, "auto"), run(b, o, expected))
    bias = rng.standard_normal(400).astype(np.float32)
    before = cnnx.get_num_threads()
    try:   # the row path's columns are cut into work items of whole blocks: the same
        outs = []   # bits for any thread count, with and without the tail columns
        for threads in (1, 2, 3, 5):
            cnnx.set_num_threads(threads)
            outs.append([run(b, o, "gemv", bias[:o], "relu") for b, o in
                         [(1, 100), (2, 37), (1, 400), (1, 7)]])
    finally:
        cnnx.set_num_threads(before)
    for other in outs[1:]:
        for a, b in zip(outs[0], other):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="dense path must be one of"):
        _kernels.set_dense_path("fast")


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_and_cross_entropies_match_reference(dtype, rng):
    z = (rng.standard_normal((50, 10)) * 5).astype(dtype)
    np.testing.assert_allclose(ops.softmax(z), ref.softmax(z), **TOL[dtype])
    np.testing.assert_allclose(ops.softmax(z, axis=0), ref.softmax(z, axis=0), **TOL[dtype])
    np.testing.assert_allclose(ops.sigmoid(z), ref.sigmoid(z), **TOL[dtype])
    t = np.eye(10, dtype=dtype)[rng.integers(0, 10, 50)]
    for g, r in zip(ops.softmax_cross_entropy(z, t), ref.softmax_cross_entropy(z, t)):
        np.testing.assert_allclose(g, r, **TOL[dtype])
    tb = (rng.random((50, 10)) > 0.5).astype(dtype)
    for g, r in zip(ops.sigmoid_cross_entropy(z, tb), ref.sigmoid_cross_entropy(z, tb)):
        np.testing.assert_allclose(g, r, **TOL[dtype])


def test_cross_entropies_are_stable_at_extreme_logits():
    z = np.array([[1000.0, -1000.0], [-1000.0, 1000.0]], np.float32)
    t = np.array([[1.0, 0.0], [1.0, 0.0]], np.float32)
    loss, grad = ops.softmax_cross_entropy(z, t)
    np.testing.assert_allclose(loss, [0.0, 2000.0])
    np.testing.assert_allclose(grad, [[0, 0], [-1, 1]])
    loss, grad = ops.sigmoid_cross_entropy(np.array([1000.0, -1000.0]), np.array([0.0, 1.0]))
    np.testing.assert_allclose(loss, [1000.0, 1000.0])
    np.testing.assert_allclose(grad, [1.0, -1.0])
    assert np.all(np.isfinite(ops.sigmoid(np.array([-1e4, 1e4], np.float32))))


def test_keras_style_probability_losses():
    t = np.array([[1.0, 0.0], [0.0, 1.0]])
    p = np.array([[0.9, 0.1], [0.0, 1.0]])
    np.testing.assert_allclose(ops.categorical_crossentropy(t, p),
                               [-np.log(0.9), -np.log(1 - 1e-7)], rtol=1e-6)
    z = np.log(p[:1])
    np.testing.assert_allclose(ops.categorical_crossentropy(t[:1], z, from_logits=True),
                               [-np.log(0.9)], rtol=1e-6)
    np.testing.assert_allclose(ops.binary_crossentropy(np.array([1.0]), np.array([0.8])),
                               [-np.log(0.8)], rtol=1e-6)
    np.testing.assert_allclose(
        ops.binary_crossentropy(np.array([1.0]), np.array([np.log(4.0)]), from_logits=True),
        [-np.log(0.8)], rtol=1e-6)


def test_out_argument_is_filled_and_returned(rng):
    x = rng.standard_normal((2, 6, 6, 3)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 3, 4)).astype(np.float32)
    out = np.empty((2, 4, 4, 4), np.float32)
    assert ops.conv2d(x, kernel, out=out) is out
    np.testing.assert_allclose(out, ref.conv2d(x, kernel), rtol=1e-5, atol=1e-5)


def test_nan_passes_through_without_crash():
    x = np.ones((1, 4, 4, 2), np.float32)
    x[0, 1, 1, 0] = np.nan
    kernel = np.ones((2, 2, 2, 3), np.float32)
    y = ops.conv2d(x, kernel, activation="relu")
    assert np.isnan(y[0, :2, :2]).all() and np.isfinite(y[0, 2:, 2:]).all()
    p, arg = ops.max_pool2d(x, 2)
    assert np.isnan(p[0, 0, 0, 0]) and p[0, 0, 0, 1] == 1
    assert arg[0, 0, 0, 0] == (1 * 4 + 1) * 2 + 0
    assert np.isnan(ops.relu(x)[0, 1, 1, 0])
    assert np.isnan(ops.softmax(np.array([[np.nan, 1.0]]))).all()
    dx, dk, db = ops.conv2d_backward(x, kernel, np.ones_like(y))
    assert np.isnan(dk).any()


def test_values_no_window_reads_do_not_leak(rng, conv_algorithm, simd_path):
    """Stride 2, valid: the last column (19) is under no window. The direct kernels'
    spare vector lanes do read it; inf there must not reach y or the gradients."""
    x = rng.standard_normal((2, 9, 20, 1)).astype(np.float32)
    x[:, :, 19, :] = np.inf
    kernel = rng.standard_normal((3, 3, 1, 6)).astype(np.float32)
    y = ops.conv2d(x, kernel, strides=2)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    clean = x.copy()
    clean[:, :, 19, :] = 0
    np.testing.assert_allclose(y, ref.conv2d(clean, kernel, strides=2), rtol=1e-4, atol=1e-4)
    for got, want in zip(ops.conv2d_backward(x, kernel, dy, strides=2),
                         ref.conv2d_backward(clean, kernel, dy, strides=2)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_empty_batch(rng):
    x = np.zeros((0, 5, 5, 2), np.float32)
    kernel = rng.standard_normal((3, 3, 2, 4)).astype(np.float32)
    assert ops.conv2d(x, kernel).shape == (0, 3, 3, 4)
    dx, dk, db = ops.conv2d_backward(x, kernel, np.zeros((0, 3, 3, 4), np.float32))
    assert dx.shape == x.shape and not dk.any() and not db.any()
    assert ops.max_pool2d(x, 2)[0].shape == (0, 2, 2, 2)
    assert ops.dense(np.zeros((0, 3)), np.ones((3, 2))).shape == (0, 2)


def test_tuple_out_arguments_are_filled_and_returned(rng):
    x = rng.standard_normal((2, 6, 6, 3))
    kernel = rng.standard_normal((3, 3, 3, 4))
    dy = rng.standard_normal((2, 4, 4, 4))
    bufs = (np.empty_like(x), np.empty_like(kernel), np.empty(4))
    got = ops.conv2d_backward(x, kernel, dy, out=bufs)
    assert all(g is b for g, b in zip(got, bufs))
    for g, r in zip(got, ref.conv2d_backward(x, kernel, dy)):
        np.testing.assert_allclose(g, r, rtol=1e-10, atol=1e-12)
    y, arg = ops.max_pool2d(x, 2, out=(np.empty((2, 3, 3, 3)), None))
    dx = np.empty_like(x)
    assert ops.max_pool2d_backward(y, arg, x.shape, out=dx) is dx
    w = rng.standard_normal((5, 2))
    xd = rng.standard_normal((3, 5))
    bufs = (None, np.empty_like(w), None)
    dxd, dw, db = ops.dense_backward(xd, w, np.ones((3, 2)), out=bufs)
    assert dw is bufs[1] and dxd.shape == xd.shape and db.shape == (2,)
    g = np.ones_like(x)
    assert ops.relu_backward(g, x, out=g) is g  # in place
    np.testing.assert_array_equal(g, (x > 0).astype(float))

# Included by _kernels.pyx (one extension module; see its header).
# Pooling: max (_pool_template.h) and average, forward and backward

# ---------------------------------------------------------------------------------
# Pooling (NHWC). KH, KW: the pool window; ph, pw: padding before; windows are clipped
# to the image.
# ---------------------------------------------------------------------------------

def max_pool2d(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] y,
               int32_t[:, :, :, ::1] argmax, int64_t KH, int64_t KW, int64_t sh, int64_t sw,
               int64_t ph, int64_t pw, int nthreads):
    """y = max over each window; argmax = the flat index (h*W + w)*C + c within the
    sample of the first maximum in row-major window order (or of the first NaN).
    Channels are the inner loop, so it runs on contiguous, vectorisable rows."""
    if y.shape[0] * y.shape[1] * y.shape[2] * y.shape[3] == 0:
        return
    with nogil:
        _max_pool_forward(&x[0, 0, 0, 0], &y[0, 0, 0, 0], &argmax[0, 0, 0, 0], x.shape[0],
                          x.shape[1], x.shape[2], x.shape[3], y.shape[1], y.shape[2],
                          KH, KW, sh, sw, ph, pw, nthreads)


cdef void _max_pool_forward(const floating *x, floating *y, int32_t *argmax, int64_t N,
                            int64_t H, int64_t W, int64_t C, int64_t OH, int64_t OW,
                            int64_t KH, int64_t KW, int64_t sh, int64_t sw, int64_t ph,
                            int64_t pw, int nthreads) noexcept nogil:
    """max_pool2d on raw NHWC arrays (y and argmax: N x OH x OW x C; argmax NULL: the
    maxima alone, for inference)."""
    cdef int64_t row, n, oh, ow, h0, w0, h1, w1, h, w, c, base
    cdef floating v, b
    cdef int take
    cdef floating *best
    cdef int32_t *arg
    cdef const floating *src
    # The SIMD row kernel takes channels in whole vectors, or fewer than one vector.
    cdef int64_t vw = cnnx_k.vw_f32 if floating is float else cnnx_k.vw_f64
    cdef bint vector_path = (((cnnx_k.mp_f32 != NULL) if floating is float else
                              (cnnx_k.mp_f64 != NULL)) and (C % vw == 0 or C < vw))
    for row in prange(N * OH, num_threads=nthreads, schedule="static"):
        n = row // OH
        oh = row - n * OH
        h0 = max(oh * sh - ph, 0)
        h1 = min(oh * sh - ph + KH, H)
        if vector_path:   # the SIMD row kernel of _pool_template.h
            if floating is float:
                cnnx_k.mp_f32(x + n * H * W * C, W, C, h0, h1, OW, KW, sw, pw,
                              y + row * OW * C,
                              argmax + row * OW * C if argmax != NULL else NULL,
                              (N - n) * H * W * C)
            else:
                cnnx_k.mp_f64(x + n * H * W * C, W, C, h0, h1, OW, KW, sw, pw,
                              y + row * OW * C,
                              argmax + row * OW * C if argmax != NULL else NULL,
                              (N - n) * H * W * C)
            continue
        for ow in range(OW):
            w0 = max(ow * sw - pw, 0)
            w1 = min(ow * sw - pw + KW, W)
            best = y + (row * OW + ow) * C
            arg = argmax + (row * OW + ow) * C if argmax != NULL else NULL
            base = (h0 * W + w0) * C
            src = x + n * H * W * C + base
            for c in range(C):
                best[c] = src[c]
                if arg != NULL:
                    arg[c] = <int32_t> (base + c)
            for h in range(h0, h1):
                for w in range(w0, w1):
                    base = (h * W + w) * C
                    src = x + n * H * W * C + base
                    for c in range(C):
                        v = src[c]
                        b = best[c]
                        # Branch-free select (random data mispredicts a branch half
                        # the time). The first NaN wins and stays, as in np.max.
                        take = (v > b) | ((v != v) & (b == b))
                        best[c] = v if take else b
                        if arg != NULL:
                            arg[c] = <int32_t> (base + c) if take else arg[c]


def max_pool2d_grad(const floating[:, :, :, ::1] dy, const int32_t[:, :, :, ::1] argmax,
                    floating[:, :, :, ::1] dx, const floating[:, :, :, ::1] relu_output,
                    int nthreads):
    """dx = dy scattered to the recorded argmax. Each sample is one thread's, in order.
    With relu_output (the pool's output, when its input came from a ReLU), each dy value
    is dropped where that output is not > 0: ReLU's backward pass, fused. (The ReLU mask
    at an argmax is the pooled value's, and elsewhere dx is 0 anyway.)
    Indices outside the sample are skipped and counted: the count is returned, so the
    caller can reject an argmax that did not come from max_pool2d."""
    cdef int64_t N = dy.shape[0]
    cdef int64_t per_in = dx.shape[1] * dx.shape[2] * dx.shape[3]
    cdef int64_t per_out = dy.shape[1] * dy.shape[2] * dy.shape[3]
    cdef int64_t n, i, bad = 0
    cdef int32_t a
    cdef floating v
    cdef floating *d
    cdef const floating *g
    cdef const int32_t *arg
    cdef const floating *mask
    cdef const floating *masks = &relu_output[0, 0, 0, 0] if relu_output is not None else NULL
    with nogil:
        for n in prange(N, num_threads=nthreads, schedule="static"):
            d = &dx[n, 0, 0, 0]
            g = &dy[n, 0, 0, 0]
            arg = &argmax[n, 0, 0, 0]
            mask = masks + n * per_out if masks != NULL else NULL
            memset(d, 0, per_in * sizeof(floating))
            for i in range(per_out):
                a = arg[i]
                v = g[i]
                if mask != NULL and not (mask[i] > 0):
                    v = 0
                if 0 <= a < per_in:
                    d[a] = d[a] + v
                else:
                    bad += 1
    return bad


def average_pool2d(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] y,
                   int64_t KH, int64_t KW, int64_t sh, int64_t sw, int64_t ph, int64_t pw, int nthreads):
    """y = mean over each window; padding is not counted in the divisor."""
    cdef int64_t N = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef int64_t OH = y.shape[1], OW = y.shape[2]
    cdef int64_t row, n, oh, ow, h0, w0, h1, w1, h, w, c
    cdef floating inv
    cdef floating *out
    cdef const floating *src
    with nogil:
        for row in prange(N * OH, num_threads=nthreads, schedule="static"):
            n = row // OH
            oh = row - n * OH
            h0 = oh * sh - ph
            h1 = h0 + KH if h0 + KH < H else H
            h0 = h0 if h0 > 0 else 0
            for ow in range(OW):
                w0 = ow * sw - pw
                w1 = w0 + KW if w0 + KW < W else W
                w0 = w0 if w0 > 0 else 0
                out = &y[n, oh, ow, 0]
                for c in range(C):
                    out[c] = 0
                for h in range(h0, h1):
                    for w in range(w0, w1):
                        src = &x[n, h, w, 0]
                        for c in range(C):
                            out[c] = out[c] + src[c]
                inv = 1.0 / ((h1 - h0) * (w1 - w0))
                for c in range(C):
                    out[c] = out[c] * inv


def average_pool2d_grad(const floating[:, :, :, ::1] dy, floating[:, :, :, ::1] dx,
                        int64_t KH, int64_t KW, int64_t sh, int64_t sw, int64_t ph, int64_t pw, int nthreads):
    """dx = each window's share of dy, scattered back. Each sample is one thread's."""
    cdef int64_t N = dx.shape[0], H = dx.shape[1], W = dx.shape[2], C = dx.shape[3]
    cdef int64_t OH = dy.shape[1], OW = dy.shape[2]
    cdef int64_t n, oh, ow, h0, w0, h1, w1, h, w, c, i
    cdef floating inv
    cdef floating *dst
    cdef const floating *g
    with nogil:
        for n in prange(N, num_threads=nthreads, schedule="static"):
            dst = &dx[n, 0, 0, 0]
            for i in range(H * W * C):
                dst[i] = 0
            for oh in range(OH):
                h0 = oh * sh - ph
                h1 = h0 + KH if h0 + KH < H else H
                h0 = h0 if h0 > 0 else 0
                for ow in range(OW):
                    w0 = ow * sw - pw
                    w1 = w0 + KW if w0 + KW < W else W
                    w0 = w0 if w0 > 0 else 0
                    inv = 1.0 / ((h1 - h0) * (w1 - w0))
                    g = &dy[n, oh, ow, 0]
                    for h in range(h0, h1):
                        for w in range(w0, w1):
                            for c in range(C):
                                dst[(h * W + w) * C + c] = dst[(h * W + w) * C + c] + g[c] * inv


def global_average_pool2d(const floating[:, :, :, ::1] x, floating[:, ::1] y, int nthreads):
    """y[n, c] = the mean of x[n, :, :, c]."""
    if x.shape[0] * x.shape[3] == 0:
        return
    with nogil:
        _global_average_pool(&x[0, 0, 0, 0], &y[0, 0], x.shape[0], x.shape[1] * x.shape[2],
                             x.shape[3], nthreads)


cdef enum:
    GAP_BLOCK = 16    # channels whose sums stay in registers


cdef void _global_average_pool(const floating *x, floating *y, int64_t N, int64_t P,
                               int64_t C, int nthreads) noexcept nogil:
    """Each sample's per-channel means over its P pixels: summed in double, pixel after
    pixel, divided once; one sample per work item."""
    cdef int64_t n
    for n in prange(N, num_threads=nthreads, schedule="static"):
        _mean_pixels(x + n * P * C, y + n * C, P, C)


cdef void _mean_pixels(const floating *x, floating *y, int64_t P, int64_t C) noexcept nogil:
    cdef double acc[GAP_BLOCK]
    cdef int64_t block, c0, p, j, width
    for block in range(_cdiv(C, GAP_BLOCK)):
        c0 = block * GAP_BLOCK
        width = min(<int64_t> GAP_BLOCK, C - c0)
        for j in range(width):
            acc[j] = 0
        for p in range(P):
            for j in range(width):
                acc[j] += x[p * C + c0 + j]
        for j in range(width):
            y[c0 + j] = <floating> (acc[j] / P)

# Included by _kernels.pyx (one extension module; see its header).
# Depthwise convolution, forward and backward (_depthwise_template.h)

# ---------------------------------------------------------------------------------
# Depthwise convolution (_depthwise_template.h: vectorised over channels)
# ---------------------------------------------------------------------------------

cdef enum:
    DW_CHUNK = 4      # samples per partial of the kernel gradient: set by the shape alone


def depthwise_conv2d(const floating[:, :, :, ::1] x, const floating[:, :, ::1] kernel,
                     const floating[::1] bias, floating[:, :, :, ::1] y,
                     int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw,
                     bint relu, int nthreads):
    """y[n, oh, ow, c] = bias[c] + sum over taps of x[n, ih, iw, c] * kernel[i, j, c]
    (then max(y, 0) when relu, NaN passing), one output row per work item."""
    cdef Geometry g
    if x.shape[0] * y.shape[1] == 0 or x.shape[3] == 0:
        return
    g = _geometry(x.shape[1], x.shape[2], x.shape[3], y.shape[1], y.shape[2],
                  kernel.shape[0], kernel.shape[1], sh, sw, ph, pw, dh, dw)
    with nogil:
        _depthwise_forward(&g, &x[0, 0, 0, 0], &kernel[0, 0, 0],
                           &bias[0] if bias is not None else NULL, &y[0, 0, 0, 0],
                           x.shape[0], relu, nthreads)


cdef void _depthwise_forward(const Geometry *g, const floating *x, const floating *kernel,
                             const floating *b, floating *y, int64_t N, bint relu,
                             int nthreads) noexcept nogil:
    """depthwise_conv2d on raw arrays (kernel KH x KW x C: one filter per channel). The
    ReLU goes over each output row just written, while it is in L1."""
    cdef int64_t row, n, oh, e
    cdef int64_t in_sample = g.H * g.W * g.C, out_row = g.OW * g.C
    cdef floating v
    cdef floating *yr
    for row in prange(N * g.OH, num_threads=nthreads, schedule="static"):
        n = row // g.OH
        oh = row - n * g.OH
        if floating is float:
            cnnx_k.dw_fwd_f32(x + n * in_sample, g.H, g.W, g.C, kernel, g.KH, g.KW, g.sh,
                              g.sw, g.ph, g.pw, g.dh, g.dw, oh, g.OW, b, y + row * out_row)
        else:
            cnnx_k.dw_fwd_f64(x + n * in_sample, g.H, g.W, g.C, kernel, g.KH, g.KW, g.sh,
                              g.sw, g.ph, g.pw, g.dh, g.dw, oh, g.OW, b, y + row * out_row)
        if relu:
            yr = y + row * out_row
            for e in range(out_row):
                v = yr[e]
                yr[e] = 0 if v <= 0 else v


def depthwise_conv2d_grad(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] dy,
                          const floating[:, :, ::1] kernel, floating[:, :, ::1] dkernel,
                          floating[::1] dbias, floating[:, :, :, ::1] dx, int64_t sh,
                          int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw,
                          int nthreads, workspace):
    """The gradients of depthwise_conv2d given dy: dkernel[i, j, c] = sum over n, oh, ow
    of dy * x at the tap; dbias[c] = sum of dy (skipped when dbias is None); dx = dy
    scattered back through the taps (skipped when dx is None).

    The kernel and bias sums cut the batch into chunks of DW_CHUNK samples, each summed
    in sample order into its own partial, the partials added in chunk order: the same
    bits for any thread count. dx at stride 1 is the forward pass over dy with the
    kernel flipped, padded by its reach less the forward's padding (each element summed
    in the scatter's order: the same bits), which keeps its sums in registers (32 x 32 x
    32 images, 3 x 3: 0.62 -> 0.27 ms for a batch of 32); other strides scatter, a
    sample at a time. Where the chunks give each thread two or more, a chunk's samples
    get their dx right after their kernel-gradient share, while dy's sample is still in
    cache (W6's depthwise backward otherwise read dy from memory twice); otherwise dx
    has its own pass, cut finer. dx is the same either way."""
    cdef int64_t N = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef int64_t OH = dy.shape[1], OW = dy.shape[2]
    cdef int64_t KH = dkernel.shape[0], KW = dkernel.shape[1]
    cdef int64_t K = KH * KW * C, stride = K + C
    cdef int64_t nchunks = _cdiv(N, DW_CHUNK)
    cdef int64_t ch, n, i, j, c
    cdef bint with_bias = dbias is not None, with_dx = dx is not None
    cdef bint fused = with_dx and nchunks >= 2 * nthreads
    # dx's pass: dy (OH x OW) to dx (H x W); its padding is the flipped kernel's
    cdef Geometry g = _geometry(OH, OW, C, H, W, KH, KW, sh, sw, (KH - 1) * dh - ph,
                                (KW - 1) * dw - pw, dh, dw)
    cdef floating *part
    cdef floating *partial
    cdef floating *flipped = NULL
    if nchunks == 0 or OH * OW == 0 or C == 0:
        dkernel[...] = 0
        if with_bias:
            dbias[...] = 0
        if with_dx:
            dx[...] = 0
        return
    if with_dx and sh == 1 and sw == 1 and ph <= (KH - 1) * dh and pw <= (KW - 1) * dw:
        flipped = <floating *> calloc(K, sizeof(floating))
        if flipped == NULL:
            raise MemoryError()
        for i in range(KH):
            for j in range(KW):
                for c in range(C):
                    flipped[((KH - 1 - i) * KW + KW - 1 - j) * C + c] = kernel[i, j, c]
    partial = <floating *> _aligned(_scratch(workspace, nchunks * stride * sizeof(floating)
                                             + ALIGN))
    with nogil:
        for ch in prange(nchunks, num_threads=nthreads, schedule="static"):
            part = partial + ch * stride
            for i in range(stride):
                part[i] = 0
            for n in range(ch * DW_CHUNK, min(N, (ch + 1) * DW_CHUNK)):
                if floating is float:
                    cnnx_k.dw_dk_f32(&x[n, 0, 0, 0], H, W, C, &dy[n, 0, 0, 0], OH, OW, KH,
                                     KW, sh, sw, ph, pw, dh, dw, part,
                                     part + K if with_bias else NULL)
                else:
                    cnnx_k.dw_dk_f64(&x[n, 0, 0, 0], H, W, C, &dy[n, 0, 0, 0], OH, OW, KH,
                                     KW, sh, sw, ph, pw, dh, dw, part,
                                     part + K if with_bias else NULL)
                if fused:
                    _dw_dx_sample(&g, flipped, &dy[0, 0, 0, 0], &kernel[0, 0, 0],
                                  &dx[0, 0, 0, 0], n, ph, pw)
        if with_dx and not fused:
            if flipped != NULL:
                _depthwise_forward(&g, &dy[0, 0, 0, 0], flipped, NULL, &dx[0, 0, 0, 0], N, 0,
                                   nthreads)
            else:
                for n in prange(N, num_threads=nthreads, schedule="static"):
                    _dw_dx_sample(&g, flipped, &dy[0, 0, 0, 0], &kernel[0, 0, 0],
                                  &dx[0, 0, 0, 0], n, ph, pw)
    free(flipped)
    if K:
        _sum_chunks(partial, nchunks, stride, 1, K, K, &dkernel[0, 0, 0], nthreads)
    if with_bias:
        _sum_chunks(partial + K, nchunks, stride, 1, C, C, &dbias[0], nthreads)


cdef void _dw_dx_sample(const Geometry *g, const floating *flipped, const floating *dy,
                        const floating *kernel, floating *dx, int64_t n, int64_t ph,
                        int64_t pw) noexcept nogil:
    """Sample n's input gradient (g: dy to dx, as in depthwise_conv2d_grad): the flipped
    kernel's forward over dy, row by row, when `flipped` is given, else the scatter
    (ph, pw: the forward's padding)."""
    cdef int64_t oh
    cdef const floating *d = dy + n * g.H * g.W * g.C
    cdef floating *out = dx + n * g.OH * g.OW * g.C
    if flipped == NULL:
        if floating is float:
            cnnx_k.dw_dx_f32(d, g.H, g.W, g.C, kernel, g.KH, g.KW, g.sh, g.sw, ph, pw, g.dh,
                             g.dw, g.OH, g.OW, out)
        else:
            cnnx_k.dw_dx_f64(d, g.H, g.W, g.C, kernel, g.KH, g.KW, g.sh, g.sw, ph, pw, g.dh,
                             g.dw, g.OH, g.OW, out)
        return
    for oh in range(g.OH):
        if floating is float:
            cnnx_k.dw_fwd_f32(d, g.H, g.W, g.C, flipped, g.KH, g.KW, 1, 1, g.ph, g.pw, g.dh,
                              g.dw, oh, g.OW, NULL, out + oh * g.OW * g.C)
        else:
            cnnx_k.dw_fwd_f64(d, g.H, g.W, g.C, flipped, g.KH, g.KW, 1, 1, g.ph, g.pw, g.dh,
                              g.dw, oh, g.OW, NULL, out + oh * g.OW * g.C)

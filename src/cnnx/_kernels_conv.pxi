# Included by _kernels.pyx (one extension module; see its header).
# Convolutions as matrix products: forward through an implicit im2col, input and kernel gradients, bias sums

# ---------------------------------------------------------------------------------
# Convolution
# ---------------------------------------------------------------------------------

cdef Geometry _geometry(int64_t H, int64_t W, int64_t C, int64_t OH, int64_t OW,
                        int64_t KH, int64_t KW, int64_t sh, int64_t sw, int64_t ph, int64_t pw,
                        int64_t dh, int64_t dw) noexcept nogil:
    """Strides, then padding (before), then dilation: the order of every kernel's
    arguments, and of ops.conv2d's."""
    cdef Geometry g
    g.H = H; g.W = W; g.C = C; g.OH = OH; g.OW = OW; g.KH = KH; g.KW = KW
    g.sh = sh; g.sw = sw; g.dh = dh; g.dw = dw; g.ph = ph; g.pw = pw
    return g


cdef enum:
    FWD_GEMM = 0      # implicit-im2col product
    FWD_NHWC = 1      # channel-vectorised direct kernel
    FWD_PLANAR = 2    # pixel-vectorised direct kernel
    FWD_WINOGRAD = 3  # Winograd F(2x2, 3x3)
    FWD_POINTWISE = 4 # 1x1, stride 1: the dense product over pixels


cdef bint _direct_fits(const Geometry *g) noexcept nogil:
    """Whether the direct kernels' padded copies stay near the input's size. They pad
    each sample to the extent the windows span and split columns into sw stride phases:
    a dilated kernel far larger than the image, or a stride beyond it, would make those
    copies (and loops) huge. The im2col products read such geometry in place."""
    return (g.sh <= g.H + 1 and g.sw <= g.W + 1
            and (g.KH - 1) * g.dh <= 2 * g.H + 64 and (g.KW - 1) * g.dw <= 2 * g.W + 64)


cdef bint _pointwise_wanted(const Geometry *g) noexcept nogil:
    """A 1x1 convolution at stride 1 without padding, under the "auto" algorithm: a
    dense layer over the pixels (on the dense kernels, its forward pass and input
    gradient ran 1.05-1.2x the im2col product at W6's layers; one 8 x 8 256 -> 256
    image's input gradient 0.22 -> 0.07 ms)."""
    return (_conv_algorithm == 0 and g.KH == 1 and g.KW == 1 and g.sh == 1 and g.sw == 1
            and g.ph == 0 and g.pw == 0)


def pointwise_wanted(int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph,
                     int64_t pw):
    """Whether a convolution of this kernel, stride and padding (before) runs as a dense
    product over its pixels now: the forward pass does (FWD_POINTWISE), and ops runs
    its input gradient so too."""
    cdef Geometry g = _geometry(1, 1, 1, 1, 1, kh, kw, sh, sw, ph, pw, 1, 1)
    return _pointwise_wanted(&g)


def winograd_wanted(int64_t n, int64_t h, int64_t w, int64_t c, int64_t oh, int64_t ow,
                    int64_t f, int64_t kh, int64_t kw, int64_t ph, int64_t pw, int64_t dh,
                    int64_t dw, bint is_f32):
    """Whether the stride-1 convolution of n samples of h x w x c into oh x ow x f
    (padding ph, pw before) runs as Winograd now: ops runs an input gradient as the
    flipped kernel's forward pass when that one does."""
    cdef Geometry g = _geometry(h, w, c, oh, ow, kh, kw, 1, 1, ph, pw, dh, dw)
    return _winograd_side(&g, n, f, is_f32) != 0


cdef int _forward_kind(const Geometry *g, int64_t N, int64_t F, int is_f32) noexcept nogil:
    if _pointwise_wanted(g):
        return FWD_POINTWISE
    if _winograd_side(g, N, F, is_f32):
        return FWD_WINOGRAD
    if not _direct_fits(g):
        return FWD_GEMM
    if _nhwc_wanted(g, N, F, is_f32, 0):
        return FWD_NHWC
    if _direct_wanted(g, F, 0):
        return FWD_PLANAR
    return FWD_GEMM


cdef int64_t _forward_scratch_bytes(const Geometry *g, int64_t N, int64_t F, int64_t itemsize,
                                 int nthreads, int is_f32) noexcept nogil:
    cdef Direct d
    cdef Nhwc nd
    cdef Wino w
    cdef int kind = _forward_kind(g, N, F, is_f32)
    if kind == FWD_POINTWISE:
        return _dense_scratch_bytes(N * g.OH * g.OW, g.C, F, itemsize, nthreads, is_f32)
    if kind == FWD_WINOGRAD:
        _wino_forward_plan(&w, g, N, F, is_f32)
        return _wino_scratch_bytes(&w, itemsize, nthreads)
    if kind == FWD_NHWC:
        _nhwc_plan(&nd, g, F, is_f32)
        return _nhwc_scratch_bytes(&nd, N, itemsize, nthreads, 0)
    if kind == FWD_PLANAR:
        _direct_plan(&d, g, F, is_f32)
        return _direct_scratch_bytes(&d, N, itemsize, nthreads, 0)
    return _gemm_scratch_bytes(N * g.OH * g.OW, F, g.KH * g.KW * g.C, 1, nthreads, itemsize,
                               is_f32)


cdef void _conv_forward(const Geometry *g, const floating *x, const floating *kernel, int64_t F,
                        const floating *bias, floating *y, int64_t N, int relu, char *s,
                        int nthreads, const void *wino_u=NULL) noexcept nogil:
    """y = conv(x, kernel) (+ bias, ReLU) by the path _forward_kind picks; s holds
    _forward_scratch_bytes. wino_u: where Winograd runs, the kernel's transform made
    beforehand (_wino_kernel_transform), or NULL to make it here."""
    cdef Source a, bt
    cdef Direct d
    cdef Nhwc nd
    cdef Wino w
    cdef int kind = _forward_kind(g, N, F, floating is float)
    if kind == FWD_POINTWISE:
        _dense_forward(x, kernel, bias, y, N * g.OH * g.OW, g.C, F, relu, s, nthreads)
    elif kind == FWD_WINOGRAD:
        _wino_forward_plan(&w, g, N, F, floating is float)
        _wino_conv(&w, x, kernel, bias, y, relu, s, nthreads, <const floating *> wino_u)
    elif kind == FWD_NHWC:
        _nhwc_plan(&nd, g, F, floating is float)
        _nhwc_conv(&nd, x, kernel, bias, y, N, relu, s, nthreads)
    elif kind == FWD_PLANAR:
        _direct_plan(&d, g, F, floating is float)
        _direct_conv(&d, x, kernel, bias, y, N, relu, s, nthreads)
    else:
        a.kind = SRC_IM2COL
        a.data = x
        a.g = g[0]
        bt = _matrix(SRC_COLS, kernel, F)
        _gemm(&a, &bt, y, F, N * g.OH * g.OW, F, g.KH * g.KW * g.C, bias, relu, 0, s,
              nthreads)


def conv2d(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] kernel,
           const floating[::1] bias, floating[:, :, :, ::1] y,
           int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw,
           bint relu, int nthreads, workspace):
    """y = conv(x, kernel) (+ bias, ReLU). x: (N,H,W,C), kernel: (KH,KW,C,F),
    y: (N,OH,OW,F). ph, pw: padding before (top, left); after is implied by y."""
    cdef int64_t N = x.shape[0], F = kernel.shape[3]
    cdef Geometry g = _geometry(x.shape[1], x.shape[2], x.shape[3], y.shape[1], y.shape[2],
                                kernel.shape[0], kernel.shape[1], sh, sw, ph, pw, dh, dw)
    cdef char *s = _scratch(workspace, _forward_scratch_bytes(&g, N, F, sizeof(floating),
                                                              nthreads, floating is float))
    with nogil:
        _conv_forward(&g, &x[0, 0, 0, 0], &kernel[0, 0, 0, 0], F,
                      &bias[0] if bias is not None else NULL, &y[0, 0, 0, 0], N, relu, s,
                      nthreads)


def conv2d_input_grad(const floating[:, :, :, ::1] dy, const floating[:, :, :, ::1] kernel,
                      floating[:, :, :, ::1] dx,
                      int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw,
                      int nthreads, workspace):
    """dx = col2im(dy @ kernel^T), one tile of rows at a time.

    Each work item owns whole samples: it multiplies a tile of their dy rows by the
    kernel (transposed) into a thread-local column tile, then adds the tile's rows into
    its own samples' dx, in row order. Each dx element thus gets the same sums in the
    same order whatever the threads, and no whole-batch column buffer exists.
    At stride 1, ops uses the forward convolution with the flipped kernel instead where
    that is faster (few channels: see ops._input_grad)."""
    cdef int64_t N = dx.shape[0], F = dy.shape[3]
    cdef int64_t OHW = dy.shape[1] * dy.shape[2]
    cdef int64_t K = kernel.shape[0] * kernel.shape[1] * kernel.shape[2]
    cdef Source a, bt
    cdef Plan p
    a = _matrix(SRC_ROWS, &dy[0, 0, 0, 0], F)
    bt = _matrix(SRC_ROWS, &kernel[0, 0, 0, 0], F)  # B = kernel^T: B^T is the kernel, K x F
    _plan(&p, &a, &bt, N * OHW, K, F, NULL, 0, 0, floating is float, nthreads)
    cdef int64_t apack_bytes = _align(p.mc * KC * sizeof(floating))
    cdef int64_t tile_bytes = _align(p.mc * K * sizeof(floating))
    cdef char *s = _scratch(workspace, _bpack_bytes(&p, sizeof(floating))
                            + nthreads * (apack_bytes + tile_bytes))
    cdef char *per_thread = s + _bpack_bytes(&p, sizeof(floating))
    cdef Geometry g = _geometry(dx.shape[1], dx.shape[2], dx.shape[3], dy.shape[1],
                                dy.shape[2], kernel.shape[0], kernel.shape[1],
                                sh, sw, ph, pw, dh, dw)
    # Samples per item: enough items to balance the threads (no effect on the sums).
    cdef int64_t group = max(1, N // (4 * nthreads))
    cdef int64_t n_items = _cdiv(N, group)
    cdef int64_t item, r0, r1
    cdef floating *apack
    cdef floating *tile
    cdef floating *bpack
    with nogil:
        bpack = <floating *> _aligned(s)
        _pack_b(&p, &bt, bpack, nthreads)
        with parallel(num_threads=nthreads):
            apack = <floating *> (per_thread + threadid() * (apack_bytes + tile_bytes))
            tile = <floating *> (<char *> apack + apack_bytes)
            for item in prange(n_items, schedule="static"):
                r0 = item * group
                r1 = min(r0 + group, N)
                _input_grad_samples(&p, &g, r0, r1, apack, bpack, tile, &dx[0, 0, 0, 0])


cdef void _input_grad_samples(const Plan *p, const Geometry *g, int64_t n0, int64_t n1,
                              floating *apack, const floating *bpack, floating *tile,
                              floating *dx) noexcept nogil:
    """dx of samples n0 : n1: zero them, then add each column tile of theirs in order."""
    cdef int64_t per_sample = g.H * g.W * g.C
    cdef int64_t K = p.N
    cdef int64_t m0 = n0 * g.OH * g.OW
    cdef int64_t m1 = n1 * g.OH * g.OW
    cdef int64_t rows
    memset(dx + n0 * per_sample, 0, (n1 - n0) * per_sample * sizeof(floating))
    while m0 < m1:
        rows = min(m1 - m0, p.mc)
        _gemm_block(p, 0, m0, rows, 0, _cdiv(K, p.nr), apack, bpack, tile, K)
        _col2im_rows(g, tile, m0, rows, dx)
        m0 += rows


cdef void _col2im_rows(const Geometry *g, const floating *tile, int64_t p0, int64_t rows,
                       floating *dx) noexcept nogil:
    """Adds rows p0 : p0+rows of the column matrix (tile, row-major, K wide) into dx."""
    cdef int64_t K = g.KH * g.KW * g.C
    cdef int64_t r, p, n, oh, ow, i, j, h, w, c
    cdef const floating *src
    cdef floating *dst
    for r in range(rows):
        p = p0 + r
        ow = p % g.OW
        oh = (p // g.OW) % g.OH
        n = p // (g.OW * g.OH)
        for i in range(g.KH):
            h = oh * g.sh + i * g.dh - g.ph
            if h < 0 or h >= g.H:
                continue
            for j in range(g.KW):
                w = ow * g.sw + j * g.dw - g.pw
                if w < 0 or w >= g.W:
                    continue
                src = tile + r * K + (i * g.KW + j) * g.C
                dst = dx + ((n * g.H + h) * g.W + w) * g.C
                for c in range(g.C):
                    dst[c] = dst[c] + src[c]


def conv2d_kernel_grad(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] dy,
                       floating[:, :, :, ::1] dkernel, floating[::1] dbias,
                       const floating[:, :, :, ::1] relu_output,
                       int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw,
                       int nthreads, workspace):
    """dkernel = im2col(x)^T @ g, reduced over the batch in fixed chunks; dbias = g summed
    over N, OH, OW (skipped when dbias is None). g = dy, or, when relu_output (the layer's ReLU
    output) is given, dy where relu_output > 0: ReLU's backward pass, fused where the kernel
    can (the direct paths), else done first into scratch."""
    cdef int64_t N = dy.shape[0], F = dy.shape[3]
    cdef int64_t P = dy.shape[0] * dy.shape[1] * dy.shape[2]
    cdef int64_t K = dkernel.shape[0] * dkernel.shape[1] * dkernel.shape[2]
    cdef Source a, bt
    cdef Direct d
    cdef Nhwc nd
    cdef char *s
    cdef const floating *g = &dy[0, 0, 0, 0]
    cdef const floating *mask = &relu_output[0, 0, 0, 0] if relu_output is not None else NULL
    cdef floating *masked
    cdef int64_t g_bytes, product_bytes
    cdef Wino w
    cdef int side
    a.kind = SRC_IM2COL_T
    a.data = &x[0, 0, 0, 0]
    a.g = _geometry(x.shape[1], x.shape[2], x.shape[3], dy.shape[1], dy.shape[2],
                    dkernel.shape[0], dkernel.shape[1], sh, sw, ph, pw, dh, dw)
    side = _winograd_kgrad_side(&a.g, N, F, floating is float)
    if not side and _direct_fits(&a.g) and _nhwc_wanted(&a.g, N, F, floating is float, 1):
        _nhwc_plan(&nd, &a.g, F, floating is float)
        s = _scratch(workspace, _nhwc_scratch_bytes(&nd, N, sizeof(floating), nthreads, 1))
        with nogil:
            _nhwc_kernel_grad(&nd, &x[0, 0, 0, 0], g, mask, &dkernel[0, 0, 0, 0],
                              &dbias[0] if dbias is not None else NULL, N, s, nthreads)
        return
    if not side and _direct_fits(&a.g) and _direct_wanted(&a.g, F, 1):
        _direct_plan(&d, &a.g, F, floating is float)
        s = _scratch(workspace, _direct_scratch_bytes(&d, N, sizeof(floating), nthreads, 1))
        with nogil:
            _direct_kernel_grad(&d, &x[0, 0, 0, 0], g, mask, &dkernel[0, 0, 0, 0],
                                &dbias[0] if dbias is not None else NULL, N, s, nthreads)
        return
    if side:
        _wino_kgrad_plan(&w, &a.g, N, F, floating is float, side, sizeof(floating))
        product_bytes = _wino_kgrad_scratch_bytes(&w, sizeof(floating), nthreads)
    else:
        product_bytes = _gemm_scratch_bytes(K, F, P, _split_k(K, F, P), nthreads,
                                            sizeof(floating), floating is float)
    g_bytes = _align(P * F * sizeof(floating)) + ALIGN if mask != NULL else 0
    s = _scratch(workspace, g_bytes + max(product_bytes,
                                          _column_sums_scratch_bytes(P, F, sizeof(floating))))
    if mask != NULL:   # ReLU's backward pass, before the product
        masked = <floating *> _aligned(s)
        s += g_bytes
        with nogil:
            _relu_grad(g, mask, masked, P * F, nthreads)
        g = masked
    if side:
        with nogil:
            _wino_kgrad(&w, &x[0, 0, 0, 0], g, &dkernel[0, 0, 0, 0], s, nthreads)
    else:
        bt = _matrix(SRC_COLS, g, F)
        with nogil:
            _gemm(&a, &bt, &dkernel[0, 0, 0, 0], F, K, F, P, NULL, 0, 1, s, nthreads)
    if dbias is not None:
        _column_sums(g, P, F, &dbias[0], s, nthreads)


cdef void _column_sums(const floating *m, int64_t rows, int64_t cols, floating *out,
                       char *scratch, int nthreads) except *:
    """out[j] = sum_i m[i, j], in fixed chunks of rows summed in order."""
    cdef int64_t split = _split_k(cols, 1, rows)
    cdef int64_t chunk = _cdiv(rows, split)
    cdef floating *partial = <floating *> _aligned(scratch)
    cdef int64_t ci, i, j, r1
    cdef floating *acc
    with nogil, parallel(num_threads=nthreads):
        for ci in prange(split, schedule="static"):
            acc = partial + ci * cols
            for j in range(cols):
                acc[j] = 0
            r1 = (ci + 1) * chunk if (ci + 1) * chunk < rows else rows
            for i in range(ci * chunk, r1):
                for j in range(cols):
                    acc[j] = acc[j] + m[i * cols + j]
    _sum_chunks(partial, split, cols, 1, cols, cols, out, nthreads)


cdef void _sum_chunks(const floating *partial, int64_t nchunks, int64_t stride, int64_t rows, int64_t ld,
                      int64_t cols, floating *out, int nthreads) noexcept nogil:
    """out[r, c] (rows x cols) = the sum over chunks ch = 0, 1, ... in that order of
    partial[ch * stride + r * ld + c]: the fixed-order end of every chunked reduction."""
    cdef int64_t e, ch
    cdef floating v
    with parallel(num_threads=nthreads):
        for e in prange(rows * cols, schedule="static"):
            v = partial[(e // cols) * ld + e % cols]
            for ch in range(1, nchunks):
                v = v + partial[ch * stride + (e // cols) * ld + e % cols]
            out[e] = v


cdef int64_t _column_sums_scratch_bytes(int64_t rows, int64_t cols, int64_t itemsize) noexcept nogil:
    return _split_k(cols, 1, rows) * cols * itemsize + ALIGN

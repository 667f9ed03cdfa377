# Included by _kernels.pyx (one extension module; see its header).
# Direct convolutions, for layers with few channels (_direct_template.h, _nhwc_template.h)

# ---------------------------------------------------------------------------------
# Direct convolution, for layers with few channels
# ---------------------------------------------------------------------------------
# An im2col product vectorises along output channels: with 6 or 16 of them it fills a
# fraction of each vector, and with 1 to 4 input channels its time goes into packing
# short runs. Two direct families take those layers (which one: _forward_kind and
# conv2d_kernel_grad): the pixel-vectorised kernels of _direct_template.h, over a
# per-sample planar copy of the input (see that file for its layout), and further down
# the channel-vectorised kernels of _nhwc_template.h, over a padded NHWC copy.

cdef enum:
    # Samples per partial sum of a direct kernel gradient: fixed, so the order of the
    # batch reduction never depends on the thread count.
    DIRECT_CHUNK = 4
    # When the direct kernels beat the im2col products (measured at the layer shapes of
    # benchmarks/run.py): the forward pass for at most DIRECT_MAX_C input channels or
    # DIRECT_MAX_F output channels; the kernel gradient, which sweeps the sample once
    # per block of filters, for at most DIRECT_KGRAD_MAX_F output channels.
    DIRECT_MAX_C = 4
    DIRECT_MAX_F = 16
    # The channel-vectorised forward also beat both for up to 32 output channels (a
    # multiple of the vector) from at most 32 input channels: W2's and W5's 32 -> 32 and
    # 16 -> 32 layers 1.19-1.38x on the AVX-512 and AVX2 paths; with 28-pixel tiles on
    # AVX-512, W5's 16 -> 16 layers 1.14-1.19x (AVX2 1.24-1.37x) and LeNet's 6 -> 16 5x5
    # layer 1.6-2.0x against the planar kernel. 1x1 kernels (pointwise) stay on the
    # product (not measured).
    NHWC_MAX_C = 32
    NHWC_MAX_F = 32
    # And for up to 128 inputs and outputs while the layer has few output pixels
    # (packing the kernel and the im2col rows then dominates the product): one image
    # through W1's 32 -> 64 layer 1.44x (AVX2 1.68x), W5's 32 -> 64 stride-2 layer 1.16x
    # (1.32x), 24 -> 48 1.58x (1.57x); 3x3 "same" 64 -> 64 at 8x8 1.16x (1.29x), at 16x16
    # 1.16x (1.15x), 128 -> 128 at 8x8 1.13x (1.11x), 8 images of 8x8 64 -> 64 1.17x
    # (1.26x). At batch 64-256 the 32 -> 64 layers measured 0.90-1.19x, level: the
    # product stays (and Winograd, whose rule comes first, takes most such layers).
    NHWC_SMALL_MAX_C = 128
    NHWC_SMALL_MAX_F = 128
    NHWC_SMALL_PIXELS = 4096
    DIRECT_KGRAD_MAX_F = 8

# 0: choose per layer; 1: always im2col products; 2: direct wherever the SIMD path has it;
# 3, 4: Winograd F(2x2, 3x3), F(4x4, 3x3) wherever it applies (3x3, stride 1), else as 0.
cdef int _conv_algorithm = 0
_CONV_ALGORITHMS = ("auto", "gemm", "direct", "winograd", "winograd4")


def set_conv_algorithm(str name):
    """Force how convolutions run: "gemm" (im2col products only), "direct" (the direct
    kernels wherever the SIMD path has them), "winograd" (F(2x2, 3x3) for every 3x3
    stride-1 forward pass, the rest as "auto"), "winograd4" (F(4x4, 3x3) so) or "auto"
    (per layer, the default). For the tests and benchmarks; results agree to rounding,
    not bitwise."""
    global _conv_algorithm
    if name not in _CONV_ALGORITHMS:
        raise ValueError(f"conv algorithm must be one of {_CONV_ALGORITHMS}, received {name!r}")
    _conv_algorithm = _CONV_ALGORITHMS.index(name)


def conv_algorithm():
    return _CONV_ALGORITHMS[_conv_algorithm]


cdef inline int64_t _parts_per_sample(int64_t N, int64_t tiles, int nthreads) noexcept nogil:
    """How many work items to cut each sample's output tiles into: 1 when the batch alone
    feeds the threads (4 items each), more for small batches (a single image). The
    outputs, each one fixed-order sum, do not depend on it. (The drivers compute each
    item's tile range inline: variables a prange body sets only through pointers would
    be shared between threads, not private.)"""
    cdef int64_t parts = max(1, min(_cdiv(4 * nthreads, N), tiles))
    # Parts of cdiv(tiles, parts) tiles leave no part empty: 11 tiles in 8 parts of 2
    # gave 6 items and 2 empty ones, and the static schedule 8 tiles to one thread and 3
    # to the other (W1's second convolution at batch 1: 46 us on 2 threads, 53 on 1).
    return _cdiv(tiles, _cdiv(tiles, parts))


cdef struct Direct:
    Geometry g
    int64_t F, K               # output channels; taps = KH * KW * C, in the kernel's order
    int fbi                 # kernel variant: 0 for blocks of 2 filters, 1 for blocks of 4
    int64_t fb, nfb, fpad      # filters per block, blocks, nfb * fb
    int64_t np, nkoff          # vectors or taps per tile; taps rounded up to whole tiles
    int64_t vw, nvr, nvec      # lanes; pixel vectors per output row and per sample
    int64_t Hp, L              # planar input: padded rows, values per (row, phase) plane
    int64_t rowstep, cstride, xp_len
    int64_t fs, dyp_len        # planar dy: values per filter plane, in all


cdef bint _direct_wanted(const Geometry *g, int64_t F, bint kgrad) noexcept nogil:
    if not cnnx_k.direct or _conv_algorithm == 1:
        return False
    if _conv_algorithm == 2:
        return True
    if kgrad:
        return F <= DIRECT_KGRAD_MAX_F
    return g.C <= DIRECT_MAX_C or F <= DIRECT_MAX_F


cdef void _direct_plan(Direct *d, const Geometry *g, int64_t F, int is_f32) noexcept nogil:
    d.g = g[0]
    d.F = F
    d.K = g.KH * g.KW * g.C
    d.fbi = 1 if F % 4 == 0 else 0
    d.fb = 4 if d.fbi else 2
    d.nfb = _cdiv(F, d.fb)
    d.fpad = d.nfb * d.fb
    d.np = cnnx_k.dk_np[d.fbi]
    d.nkoff = _cdiv(d.K, d.np) * d.np
    d.vw = cnnx_k.vw_f32 if is_f32 else cnnx_k.vw_f64
    d.nvr = _cdiv(g.OW, d.vw)
    d.nvec = g.OH * d.nvr
    d.Hp = (g.OH - 1) * g.sh + (g.KH - 1) * g.dh + 1
    # Long enough for the last lane of the last vector of a row, at the widest tap.
    d.L = d.nvr * d.vw + (g.KW - 1) * g.dw // g.sw
    d.rowstep = g.sh * g.sw * d.L
    d.cstride = d.Hp * g.sw * d.L
    d.xp_len = g.C * d.cstride
    d.fs = g.OH * d.nvr * d.vw
    d.dyp_len = d.fpad * d.fs


cdef int64_t _direct_scratch_bytes(const Direct *d, int64_t N, int64_t itemsize, int nthreads,
                                bint kgrad) noexcept nogil:
    """koff, packed weights and bias, then per thread a planar x (and dy); then the
    kernel gradient's per-chunk partial sums."""
    cdef int64_t shared = (_align(d.nkoff * sizeof(int64_t)) + _align(d.nfb * d.K * d.fb * itemsize)
                        + _align(d.fpad * itemsize))
    cdef int64_t per_thread = _align(d.xp_len * itemsize)
    cdef int64_t partial = 0
    if kgrad:
        per_thread += _align(d.dyp_len * itemsize)
        partial = _align(_cdiv(N, DIRECT_CHUNK) * (d.K + 1) * d.fpad * itemsize)
    return ALIGN + shared + nthreads * per_thread + partial


cdef void _direct_taps(const Direct *d, int64_t *koff) noexcept nogil:
    """koff[k]: offset in the planar input of tap k = (i, t, c), the kernel's own order;
    the padding taps of the last tile repeat tap 0 (their sums are dropped)."""
    cdef const Geometry *g = &d.g
    cdef int64_t c, i, t, k = 0
    for i in range(g.KH):
        for t in range(g.KW):
            for c in range(g.C):
                koff[k] = (((c * d.Hp + i * g.dh) * g.sw + (t * g.dw) % g.sw) * d.L
                           + (t * g.dw) // g.sw)
                k += 1
    for k in range(d.K, d.nkoff):
        koff[k] = koff[0]


cdef void _direct_pack_weights(const Direct *d, const floating *kernel, const floating *bias,
                               floating *wpack, floating *bpack) noexcept nogil:
    """wpack[b, k, f] = kernel[k, b*fb + f] (the kernel as K x F); zero past F."""
    cdef int64_t b, f, fo, k
    for b in range(d.nfb):
        for k in range(d.K):
            for f in range(d.fb):
                fo = b * d.fb + f
                wpack[(b * d.K + k) * d.fb + f] = kernel[k * d.F + fo] if fo < d.F else 0
    if bias != NULL:
        for f in range(d.fpad):
            bpack[f] = bias[f] if f < d.F else 0


cdef void _direct_pack_x(const Direct *d, const floating *x, floating *xp, int64_t hp0,
                         int64_t hp1) noexcept nogil:
    """Rows hp0 : hp1 of the planar, zero-padded, phase-split copy of one NHWC sample."""
    cdef const Geometry *g = &d.g
    cdef int64_t hp, h, w, wp, pos, c
    cdef const floating *src
    cdef floating *dst
    for c in range(g.C):
        memset(xp + c * d.cstride + hp0 * g.sw * d.L, 0,
               (hp1 - hp0) * g.sw * d.L * sizeof(floating))
    cdef int64_t wn = min(g.W, d.L - g.pw)   # stride 1: the columns that fit the rows
    for hp in range(hp0, hp1):
        h = hp - g.ph
        if h < 0 or h >= g.H:
            continue
        # Stride 1, one phase: a row of each plane is a run of the input's columns (an
        # element at a time, the copy took a quarter of LeNet's first layer: 256 images
        # on one thread 1.94 -> 1.44 ms).
        if g.sw == 1:
            for c in range(g.C):
                src = x + h * g.W * g.C + c
                dst = xp + c * d.cstride + hp * d.L + g.pw
                if g.C == 1:
                    memcpy(dst, src, max(wn, 0) * sizeof(floating))
                else:
                    for w in range(wn):
                        dst[w] = src[w * g.C]
            continue
        for w in range(g.W):
            wp = w + g.pw
            pos = wp // g.sw
            if pos >= d.L:
                break
            src = x + (h * g.W + w) * g.C
            dst = xp + (hp * g.sw + wp - pos * g.sw) * d.L + pos
            for c in range(g.C):
                dst[c * d.cstride] = src[c]


cdef inline int64_t _rows_end(int64_t oh_last, const Geometry *g) noexcept nogil:
    """End of the padded input rows that output rows up to oh_last read."""
    return oh_last * g.sh + (g.KH - 1) * g.dh + 1


cdef void _direct_pack_dy(const Direct *d, const floating *dy, const floating *relu_output,
                          floating *dyp, floating *dbias) noexcept nogil:
    """dy of one sample, one plane per filter, rows padded with zeros to whole vectors;
    masked where relu_output <= 0 when relu_output is given (ReLU's backward pass, fused); added
    into dbias[F] when that is not NULL."""
    cdef const Geometry *g = &d.g
    cdef int64_t oh, ow, f, i, rw = d.nvr * d.vw
    cdef floating v
    cdef floating *dst
    memset(dyp, 0, d.dyp_len * sizeof(floating))
    for oh in range(g.OH):
        for ow in range(g.OW):
            i = (oh * g.OW + ow) * d.F
            dst = dyp + oh * rw + ow
            for f in range(d.F):
                v = dy[i + f]
                if relu_output != NULL and not (relu_output[i + f] > 0):
                    v = 0
                dst[f * d.fs] = v
                if dbias != NULL:
                    dbias[f] += v


cdef inline void _dk_fwd(int fbi, int64_t K, const floating *xp, const int64_t *koff, int64_t rowstep,
                         const floating *w, int64_t j0, int nv, int64_t nvr, int64_t OW, floating *y,
                         int64_t F, int nf, const floating *bias, int relu) noexcept nogil:
    if floating is float:
        cnnx_k.dk_fwd_f32[fbi](K, xp, koff, rowstep, w, j0, nv, nvr, OW, y, F, nf, bias, relu)
    else:
        cnnx_k.dk_fwd_f64[fbi](K, xp, koff, rowstep, w, j0, nv, nvr, OW, y, F, nf, bias, relu)


cdef inline void _dk_kgrad(int fbi, int64_t OH, int64_t nvr, int ntail, const floating *xp,
                           int64_t rowstep, const int64_t *koff, int nk, const floating *dyp,
                           int64_t fs, floating *dw, int64_t ldw, int nf) noexcept nogil:
    if floating is float:
        cnnx_k.dk_kgrad_f32[fbi](OH, nvr, ntail, xp, rowstep, koff, nk, dyp, fs, dw, ldw, nf)
    else:
        cnnx_k.dk_kgrad_f64[fbi](OH, nvr, ntail, xp, rowstep, koff, nk, dyp, fs, dw, ldw, nf)


cdef void _direct_conv(const Direct *d, const floating *x, const floating *kernel,
                       const floating *bias, floating *y, int64_t N, int relu, char *scratch,
                       int nthreads) noexcept nogil:
    """y = conv(x, kernel) (+ bias, ReLU); a work item is a sample, or part of one when
    samples are fewer than the threads want (each item packs only the rows it reads)."""
    cdef const Geometry *g = &d.g
    cdef int64_t *koff = <int64_t *> _aligned(scratch)
    cdef floating *wpack = <floating *> (<char *> koff + _align(d.nkoff * sizeof(int64_t)))
    cdef floating *bpack = <floating *> (<char *> wpack
                                         + _align(d.nfb * d.K * d.fb * sizeof(floating)))
    cdef char *per_thread = <char *> bpack + _align(d.fpad * sizeof(floating))
    cdef int64_t xp_bytes = _align(d.xp_len * sizeof(floating))
    cdef int64_t tiles = _cdiv(d.nvec, d.np)
    cdef int64_t parts = _parts_per_sample(N, tiles, nthreads)
    cdef int64_t per_part = _cdiv(tiles, parts)
    cdef int64_t item, n, jb, jb0, jb1, b
    cdef floating *xp = NULL   # set per thread below
    _direct_taps(d, koff)
    _direct_pack_weights(d, kernel, bias, wpack, bpack)
    with parallel(num_threads=nthreads):
        xp = <floating *> (per_thread + threadid() * xp_bytes)
        for item in prange(N * parts, schedule="static"):
            n = item // parts
            jb0 = (item % parts) * per_part
            jb1 = min(tiles, jb0 + per_part)
            if jb0 >= jb1:
                continue
            # only the input rows under this item's output rows
            _direct_pack_x(d, x + n * g.H * g.W * g.C, xp, (jb0 * d.np // d.nvr) * g.sh,
                           _rows_end((min(d.nvec, jb1 * d.np) - 1) // d.nvr, g))
            for jb in range(jb0, jb1):
                for b in range(d.nfb):
                    _dk_fwd(d.fbi, d.K, xp, koff, d.rowstep, wpack + b * d.K * d.fb,
                            jb * d.np, <int> min(d.np, d.nvec - jb * d.np), d.nvr, g.OW,
                            y + n * g.OH * g.OW * d.F + b * d.fb, d.F,
                            <int> min(d.fb, d.F - b * d.fb),
                            bpack + b * d.fb if bias != NULL else NULL, relu)


cdef void _direct_kernel_grad(const Direct *d, const floating *x, const floating *dy,
                              const floating *relu_output, floating *dkernel, floating *dbias,
                              int64_t N, char *scratch, int nthreads) noexcept nogil:
    """dkernel (and dbias, when not NULL) = sums over samples and pixels of x(tap) * g and
    of g, g = dy masked where relu_output <= 0 when relu_output is given. Partial sums over fixed
    chunks of DIRECT_CHUNK samples, added in chunk order."""
    cdef const Geometry *g = &d.g
    cdef int64_t *koff = <int64_t *> _aligned(scratch)
    cdef char *per_thread = (<char *> koff + _align(d.nkoff * sizeof(int64_t))
                             + _align(d.nfb * d.K * d.fb * sizeof(floating))
                             + _align(d.fpad * sizeof(floating)))
    cdef int64_t xp_bytes = _align(d.xp_len * sizeof(floating))
    cdef int64_t thread_bytes = xp_bytes + _align(d.dyp_len * sizeof(floating))
    cdef int64_t nchunks = _cdiv(N, DIRECT_CHUNK)
    cdef int64_t per_chunk = (d.K + 1) * d.fpad    # kernel rows, then the bias row
    cdef floating *partial = <floating *> (per_thread + nthreads * thread_bytes)
    cdef int ntail = <int> (g.OW - (d.nvr - 1) * d.vw)
    cdef int64_t ch, n, b, kb
    cdef floating *xp = NULL   # set per thread below
    cdef floating *dyp = NULL
    cdef floating *acc
    _direct_taps(d, koff)
    with parallel(num_threads=nthreads):
        xp = <floating *> (per_thread + threadid() * thread_bytes)
        dyp = <floating *> (<char *> xp + xp_bytes)
        for ch in prange(nchunks, schedule="static"):
            acc = partial + ch * per_chunk
            memset(acc, 0, per_chunk * sizeof(floating))
            for n in range(ch * DIRECT_CHUNK, min(N, (ch + 1) * DIRECT_CHUNK)):
                _direct_pack_x(d, x + n * g.H * g.W * g.C, xp, 0, d.Hp)
                _direct_pack_dy(d, dy + n * g.OH * g.OW * d.F,
                                relu_output + n * g.OH * g.OW * d.F if relu_output != NULL else NULL,
                                dyp, acc + d.K * d.fpad if dbias != NULL else NULL)
                for b in range(d.nfb):
                    for kb in range(d.nkoff // d.np):
                        _dk_kgrad(d.fbi, g.OH, d.nvr, ntail, xp, d.rowstep,
                                  koff + kb * d.np, <int> min(d.np, d.K - kb * d.np),
                                  dyp + b * d.fb * d.fs, d.fs,
                                  acc + kb * d.np * d.fpad + b * d.fb, d.fpad,
                                  <int> min(d.fb, d.F - b * d.fb))
    _sum_chunks(partial, nchunks, per_chunk, d.K, d.fpad, d.F, dkernel, nthreads)
    if dbias != NULL:
        _sum_chunks(partial + d.K * d.fpad, nchunks, per_chunk, 1, d.fpad, d.F, dbias,
                    nthreads)


# Channel-vectorised direct kernels (_nhwc_template.h), for first layers: they read the
# taps from a zero-padded copy of each sample, and their kernel gradient fuses ReLU's
# backward pass and the bias gradient into its one sweep over dy.

cdef struct Nhwc:
    Geometry g
    int nvi                 # kernel variant: tiles 1, 2 or 4 vectors of channels wide
    int64_t F, K               # output channels; taps = KH * KW * C, in the kernel's order
    int64_t Hp, Wp             # the padded sample
    int64_t rowstep, colstep, xpad_len
    int64_t mr                 # pixels per forward tile
    int64_t kr, nkoff          # taps per kernel gradient tile; taps rounded up to whole tiles
    int64_t fblk, nfb          # channels per tile (1, 2 or 4 vectors) and tiles across F


cdef bint _nhwc_wanted(const Geometry *g, int64_t N, int64_t F, int is_f32,
                       bint kgrad) noexcept nogil:
    cdef int64_t vw = cnnx_k.vw_f32 if is_f32 else cnnx_k.vw_f64
    if not cnnx_k.direct or _conv_algorithm == 1 or F % vw != 0:
        return False
    # Its kernel gradient keeps a tile of taps in registers through a whole sample: it
    # beat the im2col product at every layer measured (1.2-2.1x), unless its partial
    # sums outweigh the data (_kgrad_partials_dominate), or the layer is pointwise on a
    # path of at most 8 floats a vector (one tap: the product, its A block packed in one
    # walk over the pixels, ran W6's 1x1 layers 1.2-1.7x on AVX2; AVX-512, not measured
    # since, keeps the direct kernel). Its forward pass wins only where packing would
    # dominate the product.
    if kgrad and _conv_algorithm != 2:
        return (not (_pointwise_wanted(g) and cnnx_k.vw_f32 <= 8)
                and not _kgrad_partials_dominate(g, N, F))
    return (_conv_algorithm == 2 or g.C <= DIRECT_MAX_C
            or (g.KH * g.KW > 1
                and ((g.C <= NHWC_MAX_C and F <= NHWC_MAX_F)
                     or (g.C <= NHWC_SMALL_MAX_C and F <= NHWC_SMALL_MAX_F
                         and N * g.OH * g.OW <= NHWC_SMALL_PIXELS))))


cdef bint _kgrad_partials_dominate(const Geometry *g, int64_t N, int64_t F) noexcept nogil:
    """Whether the direct kernel gradient's partial sums (the whole kernel and bias for
    each chunk of DIRECT_CHUNK samples, summed after) would be over twice the data they
    sum: small images through wide layers, where the im2col product, split over rows,
    ran faster (a batch of 32, 2 threads: 4 x 4 256 -> 512 1x1 1.79 -> 0.92 ms, one 8 x 8
    256 -> 256 image 0.18 -> 0.08, 64 images of 4 x 4 128 -> 128 3x3 1.53 -> 0.41; at 1.4
    times, 8 x 8 64 -> 64 3x3, the direct kernel still won, 1.07 against 1.31)."""
    cdef int64_t partials = _cdiv(N, DIRECT_CHUNK) * (g.KH * g.KW * g.C + 1) * F
    return partials > 2 * N * (g.H * g.W * g.C + g.OH * g.OW * F)


cdef void _nhwc_plan(Nhwc *d, const Geometry *g, int64_t F, int is_f32) noexcept nogil:
    d.g = g[0]
    d.F = F
    d.K = g.KH * g.KW * g.C
    d.Hp = (g.OH - 1) * g.sh + (g.KH - 1) * g.dh + 1
    d.Wp = (g.OW - 1) * g.sw + (g.KW - 1) * g.dw + 1
    d.rowstep = g.sh * d.Wp * g.C
    d.colstep = g.sw * g.C
    d.xpad_len = d.Hp * d.Wp * g.C
    cdef int64_t vw = cnnx_k.vw_f32 if is_f32 else cnnx_k.vw_f64
    d.nvi = (2 if cnnx_k.nk_mr[2] and F % (4 * vw) == 0 else
             1 if F % (2 * vw) == 0 else 0)
    d.mr = cnnx_k.nk_mr[d.nvi]
    d.kr = cnnx_k.nk_kr[d.nvi]
    d.nkoff = _cdiv(d.K, d.kr) * d.kr
    d.fblk = (1 << d.nvi) * vw
    d.nfb = F // d.fblk


cdef int64_t _nhwc_scratch_bytes(const Nhwc *d, int64_t N, int64_t itemsize, int nthreads,
                              bint kgrad) noexcept nogil:
    """koff; per thread a padded sample; the kernel gradient's per-chunk partial sums
    (kernel, then bias)."""
    cdef int64_t partial = (_align(_cdiv(N, DIRECT_CHUNK) * (d.K + 1) * d.F * itemsize)
                         if kgrad else 0)
    return (ALIGN + _align(d.nkoff * sizeof(int64_t))
            + nthreads * _align(d.xpad_len * itemsize) + partial)


cdef void _nhwc_taps(const Nhwc *d, int64_t *koff) noexcept nogil:
    cdef const Geometry *g = &d.g
    cdef int64_t i, t, c, k = 0
    for i in range(g.KH):
        for t in range(g.KW):
            for c in range(g.C):
                koff[k] = (i * g.dh * d.Wp + t * g.dw) * g.C + c
                k += 1
    for k in range(d.K, d.nkoff):
        koff[k] = koff[0]


cdef void _nhwc_pad(const Nhwc *d, const floating *x, floating *xpad, int64_t hp0,
                    int64_t hp1) noexcept nogil:
    """Rows hp0 : hp1 of one sample, zero-padded: row hp of xpad is image row hp - ph."""
    cdef const Geometry *g = &d.g
    cdef int64_t hp, h, w0, w1
    memset(xpad + hp0 * d.Wp * g.C, 0, (hp1 - hp0) * d.Wp * g.C * sizeof(floating))
    w0 = g.pw                              # first padded column holding image column 0
    w1 = min(g.W + g.pw, d.Wp)             # end of the image columns that are read
    if w1 <= w0:
        return
    for hp in range(hp0, hp1):
        h = hp - g.ph
        if 0 <= h < g.H:
            memcpy(xpad + (hp * d.Wp + w0) * g.C, x + h * g.W * g.C,
                   (w1 - w0) * g.C * sizeof(floating))


cdef void _nhwc_sample_fwd(const Nhwc *d, const floating *xpad, const int64_t *koff,
                           const floating *kernel, const floating *bias, floating *y,
                           int relu, int64_t tile0, int64_t tile1) noexcept nogil:
    """Tiles tile0 : tile1 of one sample's output pixels (y at the sample)."""
    cdef const Geometry *g = &d.g
    cdef int64_t xb[32]   # >= cnnx_k.nk_mr
    cdef int64_t P = g.OH * g.OW
    cdef int64_t tile, p0, i, b
    # The next pixel's row and column, carried from tile to tile (two divisions a pixel
    # cost W1's first layer 5-7% at batch 128, 1-3% for one image; AVX2).
    cdef int64_t oh = tile0 * d.mr // g.OW, ow = tile0 * d.mr - oh * g.OW
    cdef int np
    for tile in range(tile0, tile1):
        p0 = tile * d.mr
        np = <int> min(d.mr, P - p0)
        for i in range(np):
            xb[i] = oh * d.rowstep + ow * d.colstep
            ow += 1
            if ow == g.OW:
                ow = 0
                oh += 1
        for i in range(np, d.mr):
            xb[i] = xb[0]
        for b in range(d.nfb):
            if floating is float:
                cnnx_k.nk_fwd_f32[d.nvi](d.K, xpad, koff, xb, np, kernel + b * d.fblk, d.F,
                                y + p0 * d.F + b * d.fblk,
                                bias + b * d.fblk if bias != NULL else NULL, relu)
            else:
                cnnx_k.nk_fwd_f64[d.nvi](d.K, xpad, koff, xb, np, kernel + b * d.fblk, d.F,
                                y + p0 * d.F + b * d.fblk,
                                bias + b * d.fblk if bias != NULL else NULL, relu)


cdef void _nhwc_conv(const Nhwc *d, const floating *x, const floating *kernel,
                     const floating *bias, floating *y, int64_t N, int relu, char *scratch,
                     int nthreads) noexcept nogil:
    """Work items as in _direct_conv. A layer without padding whose padded rows are the
    image's ("valid", stride 1 across) reads the image in place: no rows copied (one
    image through W1's 32 -> 64 layer 46.5 -> 45.1 us, W2's first 77.7 -> 75.3, medians
    of 60 in turns, AVX2). (One tile an item, to split one image more evenly, was
    slower: 49.1 us.)"""
    cdef const Geometry *g = &d.g
    cdef int64_t *koff = <int64_t *> _aligned(scratch)
    cdef char *per_thread = <char *> koff + _align(d.nkoff * sizeof(int64_t))
    cdef int64_t xpad_bytes = _align(d.xpad_len * sizeof(floating))
    cdef int64_t tiles = _cdiv(g.OH * g.OW, d.mr)
    cdef bint in_place = g.ph == 0 and g.pw == 0 and d.Wp == g.W and d.Hp <= g.H
    cdef int64_t parts = _parts_per_sample(N, tiles, nthreads)
    cdef int64_t per_part = _cdiv(tiles, parts)
    cdef floating *xpad = NULL   # set per thread below
    cdef const floating *xs
    cdef int64_t item, n, t0, t1
    _nhwc_taps(d, koff)
    with parallel(num_threads=nthreads):
        xpad = <floating *> (per_thread + threadid() * xpad_bytes)
        for item in prange(N * parts, schedule="static"):
            n = item // parts
            t0 = (item % parts) * per_part
            t1 = min(tiles, t0 + per_part)
            if t0 >= t1:
                continue
            xs = x + n * g.H * g.W * g.C
            if not in_place:   # only the input rows under this item's output rows
                _nhwc_pad(d, xs, xpad, (t0 * d.mr // g.OW) * g.sh,
                          _rows_end((min(g.OH * g.OW, t1 * d.mr) - 1) // g.OW, g))
                xs = xpad
            _nhwc_sample_fwd(d, xs, koff, kernel, bias, y + n * g.OH * g.OW * d.F, relu,
                             t0, t1)


cdef void _nhwc_kernel_grad(const Nhwc *d, const floating *x, const floating *dy,
                            const floating *relu_output, floating *dkernel, floating *dbias,
                            int64_t N, char *scratch, int nthreads) noexcept nogil:
    """dkernel (and dbias, when not NULL) from dy, masked where relu_output <= 0 when relu_output
    is given; partial sums over fixed chunks of DIRECT_CHUNK samples, added in order."""
    cdef const Geometry *g = &d.g
    cdef int64_t *koff = <int64_t *> _aligned(scratch)
    cdef char *per_thread = <char *> koff + _align(d.nkoff * sizeof(int64_t))
    cdef int64_t xpad_bytes = _align(d.xpad_len * sizeof(floating))
    cdef int64_t nchunks = _cdiv(N, DIRECT_CHUNK)
    cdef int64_t per_chunk = (d.K + 1) * d.F    # kernel rows, then the bias row
    cdef floating *partial = <floating *> (per_thread + nthreads * xpad_bytes)
    cdef int64_t P = g.OH * g.OW
    cdef int64_t ch, n, b, kb
    cdef floating *xpad = NULL   # set per thread below
    cdef floating *acc
    _nhwc_taps(d, koff)
    with parallel(num_threads=nthreads):
        xpad = <floating *> (per_thread + threadid() * xpad_bytes)
        for ch in prange(nchunks, schedule="static"):
            acc = partial + ch * per_chunk
            memset(acc, 0, per_chunk * sizeof(floating))
            for n in range(ch * DIRECT_CHUNK, min(N, (ch + 1) * DIRECT_CHUNK)):
                _nhwc_pad(d, x + n * g.H * g.W * g.C, xpad, 0, d.Hp)
                for b in range(d.nfb):
                    for kb in range(d.nkoff // d.kr):
                        _nk_kgrad(d.nvi, g.OH, g.OW, d.rowstep, d.colstep, xpad,
                                  koff + kb * d.kr,
                                  <int> min(d.kr, d.K - kb * d.kr),
                                  dy + n * P * d.F + b * d.fblk,
                                  relu_output + n * P * d.F + b * d.fblk if relu_output != NULL else NULL,
                                  d.F, acc + kb * d.kr * d.F + b * d.fblk,
                                  acc + d.K * d.F + b * d.fblk
                                  if (dbias != NULL and kb == 0) else NULL)
    _sum_chunks(partial, nchunks, per_chunk, d.K, d.F, d.F, dkernel, nthreads)
    if dbias != NULL:
        _sum_chunks(partial + d.K * d.F, nchunks, per_chunk, 1, d.F, d.F, dbias, nthreads)


cdef inline void _nk_kgrad(int nvi, int64_t OH, int64_t OW, int64_t rowstep, int64_t colstep,
                           const floating *xpad,
                           const int64_t *koff, int nk, const floating *dy,
                           const floating *relu_output, int64_t F, floating *dw,
                           floating *db) noexcept nogil:
    if floating is float:
        cnnx_k.nk_kgrad_f32[nvi](OH, OW, rowstep, colstep, xpad, koff, nk, dy, relu_output, F, dw,
                               db)
    else:
        cnnx_k.nk_kgrad_f64[nvi](OH, OW, rowstep, colstep, xpad, koff, nk, dy, relu_output, F, dw,
                               db)

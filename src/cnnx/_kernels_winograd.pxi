# Included by _kernels.pyx (one extension module; see its header).
# Winograd F(2x2, 3x3) and F(4x4, 3x3) forward for 3x3 stride-1 convolutions
# (_winograd_template.h)

# ---------------------------------------------------------------------------------
# Winograd convolution
# ---------------------------------------------------------------------------------
# Output tiles of m x m pixels (m = 2 or 4), numbered over the batch (sample, tile row,
# tile column). A work item takes a block of `tb` tiles: it transforms their (m + 2) x
# (m + 2) input patches into V (P = (m + 2)^2 positions x tb tiles x C), multiplies each
# position's tb x C matrix by the transformed kernel U[p] (C x F) with the GEMM
# microkernel into M (P x tb x F), and transforms M into the tiles' outputs. Each output
# is computed by one item in one fixed order, whatever the threads. F(2x2, 3x3)
# multiplies 16 C F times a tile of 4 outputs, F(4x4, 3x3) 36 C F times a tile of 16,
# where the direct product multiplies 9 C F times an output; the transforms and the
# rounding they add (within float32's tolerance of the reference, tested) are the price.

cdef enum:
    # F(2x2, 3x3), when it beats the direct and im2col kernels (measured at W5's 3x3
    # layers on the AVX-512 and AVX2 paths, benchmarks/bench_kernels.py, while its
    # transforms were still scalar code): at least this many input and output channels,
    # and work items (blocks of tb tiles). Up to WINO_MAX_C input channels: one GEMM call
    # runs over all of them, and its B panel (C x NR) should stay near L1. Under "auto"
    # only layers of more than WINO4_MAX_C channels reach it now (below, F(4x4) takes
    # every layer with the tiles this rule asks). 32 x 32 64 -> 64, 2 threads, Winograd /
    # direct on AVX-512 (AVX2): one image (256 tiles, 4.3 blocks; W4 at batch 1) 0.48 /
    # 0.37 ms (0.46 / 0.39), two 0.71 / 0.72 (0.68 / 0.71), three 1.07 / 1.20 (0.90 /
    # 1.18); 16 x 16 64 -> 64 on AVX-512, 8 images (512 tiles) 0.71 / 0.73, 16 images
    # 1.21 / 1.56.
    WINO_MIN_C = 32
    WINO_MIN_F = 64
    WINO_MIN_BLOCKS = 8
    WINO_MAX_C = 256
    # F(4x4, 3x3) (36 C F multiplications for 16 outputs: 2.25 an output against F(2x2,
    # 3x3)'s 4 and the direct 9; more rounding, about 1e-5 of the largest output in float32
    # against 3-7e-7) wins once its products (tiles x C x F) reach WINO4_MIN_WORK (a
    # single block counts: the threads share it, see _wino_conv; one image, AVX2, F(4x4)
    # / direct, us, 1 and 2 threads: 16 x 16 64 -> 128 576 / 821 and 308 / 480, 8 x 8
    # 128 -> 128 304 / 424 and 174 / 254). AVX-512, 2 threads, F(4x4) / direct, ms: W5's
    # 16 -> 16, 32 -> 32 and 64 -> 64 layers (64 images) 0.93 / 1.61, 0.67 / 1.43,
    # 0.57 / 1.41; 32 x 32 64 -> 64, one image (64 tiles) 0.47 / 0.73; at 65536
    # products level or better (16 -> 16 on 256 tiles 1.09-1.18x, 32 -> 32 on 64 tiles
    # 1.0-1.13x), below it slower (16 -> 16 on 64 tiles 0.95x, 16 -> 32 0.91-0.93x,
    # 32 -> 32 on 32 tiles 0.7x). From 16 output channels: with 8, half of the narrow
    # microkernel's 16 columns idle, it lost on up to 256 tiles (0.65-0.76x). Above 128
    # input channels the transformed kernel (36 C F values, 9.4 MB at 256 -> 256)
    # outgrows L2 and F(2x2) won up to 32-64 tiles, so those keep F(2x2)'s rule.
    # The threshold was 65536 while the transformed kernel was made at every call. A
    # compiled inference program keeps it (Program.transform_kernels), and there F(4x4)
    # won from 8192 products: one image, AVX2, 2 threads, F(4x4) / direct in three runs:
    # W1's 13 x 13 32 -> 64 (valid; 18432) 0.65-0.83, 8 x 8 64 -> 64 0.60-0.66, 16 x 16
    # 32 -> 32 0.62-0.74, 8 x 8 32 -> 64 (8192) 0.70-0.77, 32 x 32 16 -> 16 0.92-1.01.
    # Made per call (ops.conv2d: training, a plan run step by step) those sizes lose
    # 5-18% (W1's layer 48-53 against 44-45 us): rare at small batches, where inference
    # runs compiled, so the rule follows the programs from 16384.
    WINO4_MIN_C = 16
    WINO4_MAX_C = 128
    WINO4_MIN_F = 16
    WINO4_MIN_WORK = 16384
    # V and M of a work item hold about 16 x WINO_BLOCK values: 256 KB in float32, half
    # of a 512 KB L2, which the image's rows and U share with them (against 8192, the
    # whole L2: W5's layers at batch 64 0.84-0.99x the time, W4's 0.90-0.98x, on such a
    # machine, AVX2; 2048 was level with 4096).
    WINO_BLOCK = 4096


cdef struct Wino:
    Geometry g
    int64_t F, Fp              # output channels; rounded up to whole microkernel columns
    const cnnx_kernel_table *uk  # whose GEMM microkernel: cnnx_k's, or cnnx_narrow's
    int64_t mr, nr             # its tile
    int m, P                   # the tile's side (2 or 4) and positions ((m + 2) ** 2)
    int64_t th, tw, tiles      # tile rows and columns of a sample; tiles of the batch
    int64_t tb                 # tiles per work item, a multiple of mr (forward); per
                               # chunk (kernel gradients)
    int64_t Cr                 # kernel gradients: C rounded up to whole microkernel rows


cdef bint _winograd_fits(const Geometry *g) noexcept nogil:
    return (g.KH == 3 and g.KW == 3 and g.sh == 1 and g.sw == 1 and g.dh == 1
            and g.dw == 1 and g.C <= WINO_MAX_C)


cdef int _winograd_side(const Geometry *g, int64_t N, int64_t F, int is_f32) noexcept nogil:
    """The tile side this layer runs Winograd with: 4 (F(4x4, 3x3)), 2 (F(2x2, 3x3)) or 0
    (not Winograd). A rule on the shape alone: the algorithm, and so the bits, never
    depend on the thread count."""
    if _conv_algorithm == 1 or _conv_algorithm == 2 or not _winograd_fits(g):
        return 0
    if _conv_algorithm == 3:
        return 2
    if _conv_algorithm == 4:
        return 4
    cdef Wino w
    _wino_plan(&w, g, N, F, is_f32, 4)
    if (WINO4_MIN_C <= g.C <= WINO4_MAX_C and F >= WINO4_MIN_F
            and w.tiles * g.C * F >= WINO4_MIN_WORK):
        return 4
    _wino_plan(&w, g, N, F, is_f32, 2)
    if g.C >= WINO_MIN_C and F >= WINO_MIN_F and w.tiles >= WINO_MIN_BLOCKS * w.tb:
        return 2
    return 0


cdef void _wino_plan(Wino *w, const Geometry *g, int64_t N, int64_t F, int is_f32,
                     int m) noexcept nogil:
    w.g = g[0]
    w.F = F
    w.uk = cnnx_k
    _tile_shape(is_f32, &w.mr, &w.nr)
    cdef int64_t narrow = cnnx_narrow.nr_f32 if is_f32 else cnnx_narrow.nr_f64
    if F <= narrow < w.nr:   # the narrower microkernel's columns hold all F
        w.uk = cnnx_narrow
        w.mr = cnnx_narrow.mr_f32 if is_f32 else cnnx_narrow.mr_f64
        w.nr = narrow
    w.Fp = _cdiv(F, w.nr) * w.nr
    w.m = m
    w.P = (m + 2) * (m + 2)
    w.th = _cdiv(g.OH, m)
    w.tw = _cdiv(g.OW, m)
    w.tiles = N * w.th * w.tw
    w.tb = max(1, 16 * WINO_BLOCK // w.P // (g.C + w.Fp) // w.mr) * w.mr


cdef inline void _wino_forward_plan(Wino *w, const Geometry *g, int64_t N, int64_t F,
                                    int is_f32) noexcept nogil:
    """The plan of a forward pass that runs Winograd, at the tile side the rule gives."""
    _wino_plan(w, g, N, F, is_f32, _winograd_side(g, N, F, is_f32))


cdef int64_t _wino_scratch_bytes(const Wino *w, int64_t itemsize, int nthreads) noexcept nogil:
    """U (P x C x Fp, in strips: the template's _strip), then per thread V (P x tb x C),
    M (P x tb x Fp) and max(C, F) zeros (the input's padding, the bias when there is
    none)."""
    cdef int64_t C = w.g.C
    return (ALIGN + _wino_u_bytes(w, itemsize)
            + nthreads * (_align(w.P * w.tb * C * itemsize) + _align(w.P * w.tb * w.Fp * itemsize)
                          + _align(max(C, w.F) * itemsize)))


cdef inline void _wino_ukernel(const Wino *w, bint a_rows, int64_t kc, const floating *a,
                               const floating *b, int64_t ldb, floating *c, int mr,
                               int accumulate) noexcept nogil:
    """The plan's GEMM microkernel (w.uk's), its C tile Fp values a row (A by rows: kc
    values a row)."""
    if floating is float:
        w.uk.uk_f32[a_rows](kc, a, kc, b, ldb, c, w.Fp, mr, <int> w.nr, accumulate, NULL, 0)
    else:
        w.uk.uk_f64[a_rows](kc, a, kc, b, ldb, c, w.Fp, mr, <int> w.nr, accumulate, NULL, 0)


cdef inline int64_t _wino_tile(const Wino *w, int64_t tile, int64_t *ti,
                               int64_t *tj) noexcept nogil:
    """The sample of a tile of the batch; its tile row and column in *ti, *tj."""
    cdef int64_t per_sample = w.th * w.tw
    cdef int64_t n = tile // per_sample
    cdef int64_t r = tile - n * per_sample
    ti[0] = r // w.tw
    tj[0] = r - ti[0] * w.tw
    return n


cdef inline void _wino_in(const Wino *w, const floating *x, int64_t tile, floating *v,
                          const floating *zeros) noexcept nogil:
    """A tile's input patch, transformed, into v (its row of V; positions tb * C
    apart)."""
    cdef const Geometry *g = &w.g
    cdef int64_t ti, tj, n = _wino_tile(w, tile, &ti, &tj)
    if floating is float:
        cnnx_k.wg_input_f32(w.m, x + n * g.H * g.W * g.C, g.H, g.W, g.C, w.m * ti - g.ph,
                            w.m * tj - g.pw, zeros, v, w.tb * g.C)
    else:
        cnnx_k.wg_input_f64(w.m, x + n * g.H * g.W * g.C, g.H, g.W, g.C, w.m * ti - g.ph,
                            w.m * tj - g.pw, zeros, v, w.tb * g.C)


cdef inline void _wino_out(const Wino *w, const floating *mt, int64_t tile,
                           const floating *bias, int relu, floating *y, int64_t f0,
                           int64_t nf) noexcept nogil:
    """A tile's output channels f0 : f0 + nf from its row of M (mt; positions tb * Fp
    apart)."""
    cdef const Geometry *g = &w.g
    cdef int64_t ti, tj, n = _wino_tile(w, tile, &ti, &tj)
    cdef int oh = <int> min(w.m, g.OH - w.m * ti), ow = <int> min(w.m, g.OW - w.m * tj)
    cdef floating *out = y + ((n * g.OH + w.m * ti) * g.OW + w.m * tj) * w.F + f0
    if floating is float:
        cnnx_k.wg_output_f32(w.m, mt + f0, w.tb * w.Fp, nf, bias + f0, relu, oh, ow, out, w.F,
                             g.OW * w.F)
    else:
        cnnx_k.wg_output_f64(w.m, mt + f0, w.tb * w.Fp, nf, bias + f0, relu, oh, ow, out, w.F,
                             g.OW * w.F)


cdef inline void _wino_product(const Wino *w, const floating *U, const floating *V,
                               floating *M, int64_t p, int64_t s, int64_t jp) noexcept nogil:
    """One of a block's products at position p: M[p]'s strip s of mr tiles and strip jp of
    nr output channels = V[p]'s strip s x U[p]'s strip jp."""
    _wino_ukernel(w, True, w.g.C, V + (p * w.tb + s * w.mr) * w.g.C,
                  U + (p * w.Fp + jp * w.nr) * w.g.C, w.nr,
                  M + (p * w.tb + s * w.mr) * w.Fp + jp * w.nr, <int> w.mr, 0)


cdef inline void _wino_pad_rows(const Wino *w, floating *V, int64_t nt) noexcept nogil:
    """The last strip's rows past a block of nt tiles: zeros, not stale values."""
    cdef int64_t p, rows_used = _cdiv(nt, w.mr) * w.mr
    if rows_used > nt:
        for p in range(w.P):
            memset(V + (p * w.tb + nt) * w.g.C, 0,
                   (rows_used - nt) * w.g.C * sizeof(floating))


cdef void _wino_channels(const Wino *w, const floating *U, const floating *bias, floating *y,
                         int relu, int64_t t0, int64_t nt, const floating *V, floating *M,
                         int64_t j0, int64_t j1) noexcept nogil:
    """Output channels of strips j0 : j1 (nr channels each) of tiles t0 : t0 + nt, their
    inputs transformed in V: the products into M, then the outputs."""
    cdef int64_t p, s, jp, t, strips = _cdiv(nt, w.mr), f0 = j0 * w.nr
    for p in range(w.P):
        for s in range(strips):
            for jp in range(j0, j1):
                _wino_product(w, U, V, M, p, s, jp)
    for t in range(nt):
        _wino_out(w, M + t * w.Fp, t0 + t, bias, relu, y, f0, min(w.F, j1 * w.nr) - f0)


cdef void _wino_lane(const Wino *w, const floating *x, const floating *U,
                     const floating *bias, floating *y, int relu, int64_t i0, int64_t i1,
                     int64_t groups, floating *V, floating *M,
                     const floating *zeros) noexcept nogil:
    """Work items i0 : i1 on one thread: item = (block of tb tiles, one of `groups`
    ranges of output channel strips), numbered in that order. A block's inputs are
    transformed once for its items in a row."""
    cdef int64_t item, blk, g, t, t0, nt, done = -1, jn = w.Fp // w.nr
    for item in range(i0, i1):
        blk = item // groups
        g = item - blk * groups
        t0 = blk * w.tb
        nt = min(w.tb, w.tiles - t0)
        if blk != done:
            for t in range(nt):
                _wino_in(w, x, t0 + t, V + t * w.g.C, zeros)
            _wino_pad_rows(w, V, nt)
            done = blk
        _wino_channels(w, U, bias, y, relu, t0, nt, V, M, g * jn // groups,
                       (g + 1) * jn // groups)


cdef void _wino_kernel_transform(const Wino *w, const floating *kernel, floating *U,
                                 int nthreads) noexcept nogil:
    """U (P x C x Fp, each position's in strips of nr channels: the template's _strip) =
    G kernel G^T, one input channel a work item."""
    cdef int64_t c
    with parallel(num_threads=nthreads):
        for c in prange(w.g.C, schedule="static"):
            if floating is float:
                cnnx_k.wg_kernel_f32(w.m, kernel, w.g.C, w.F, w.Fp, w.nr, c, U)
            else:
                cnnx_k.wg_kernel_f64(w.m, kernel, w.g.C, w.F, w.Fp, w.nr, c, U)


cdef int64_t _wino_u_bytes(const Wino *w, int64_t itemsize) noexcept nogil:
    return _align(w.P * w.g.C * w.Fp * itemsize)


cdef void _wino_conv(const Wino *w, const floating *x, const floating *kernel,
                     const floating *bias, floating *y, int relu, char *scratch,
                     int nthreads, const floating *cached_u) noexcept nogil:
    """y = conv(x, kernel) (+ bias, ReLU); scratch holds _wino_scratch_bytes. cached_u:
    the kernel's transform made beforehand (a compiled program keeps it), or NULL. With
    blocks enough for the threads (two a thread), each thread runs whole blocks. With
    fewer, where the strips of output channels divide among the threads (one image
    through W1's 13 x 13 32 -> 64 layer: 9 tiles, one block, 4 strips of 16), each thread
    takes its strips of every block: it transforms the block's inputs itself (a small
    part of the work) and then needs nothing from the others, neither barriers nor their
    products. Otherwise (one image through W4's 16 x 16 64 -> 128 layer on 3 threads)
    the threads share each block's transforms and products, phase by phase. Each value
    is computed the same way in every case."""
    cdef int64_t C = w.g.C, jn = w.Fp // w.nr
    cdef floating *U = <floating *> _aligned(scratch)
    cdef char *per_thread = <char *> U + _wino_u_bytes(w, sizeof(floating))
    cdef int64_t v_bytes = _align(w.P * w.tb * C * sizeof(floating))
    cdef int64_t m_bytes = _align(w.P * w.tb * w.Fp * sizeof(floating))
    cdef int64_t thread_bytes = v_bytes + m_bytes + _align(max(C, w.F) * sizeof(floating))
    cdef int64_t blk, t0, nt, t, item, strips, lane, n_blocks = _cdiv(w.tiles, w.tb)
    cdef int64_t groups = 1, n_items
    cdef floating *V = NULL   # set per thread below
    cdef floating *M = NULL
    cdef floating *zeros = NULL
    cdef const floating *b
    if cached_u != NULL:
        U = <floating *> cached_u
    else:
        _wino_kernel_transform(w, kernel, U, nthreads)
    if nthreads > 1 and n_blocks < 2 * nthreads and jn % nthreads == 0:
        groups = nthreads
    elif nthreads > 1 and n_blocks < 2 * nthreads:
        # Shared blocks: one V, M and zeros (the first thread's), each phase split.
        V = <floating *> per_thread
        M = <floating *> (<char *> V + v_bytes)
        zeros = <floating *> (<char *> M + m_bytes)
        memset(zeros, 0, max(C, w.F) * sizeof(floating))
        b = bias if bias != NULL else zeros
        for blk in range(n_blocks):
            t0 = blk * w.tb
            nt = min(w.tb, w.tiles - t0)
            strips = _cdiv(nt, w.mr)
            _wino_pad_rows(w, V, nt)
            with parallel(num_threads=nthreads):   # (each prange ends in a barrier)
                for t in prange(nt, schedule="static"):
                    _wino_in(w, x, t0 + t, V + t * C, zeros)
                for item in prange(w.P * strips * jn, schedule="static"):
                    # item = (position, strip of tiles, strip of channels)
                    _wino_product(w, U, V, M, item // (strips * jn), item // jn % strips,
                                  item % jn)
                for t in prange(nt, schedule="static"):
                    _wino_out(w, M + t * w.Fp, t0 + t, b, relu, y, 0, w.F)
        return
    n_items = n_blocks * groups
    with parallel(num_threads=nthreads):
        V = <floating *> (per_thread + threadid() * thread_bytes)
        M = <floating *> (<char *> V + v_bytes)
        zeros = <floating *> (<char *> M + m_bytes)
        memset(zeros, 0, max(C, w.F) * sizeof(floating))
        for lane in prange(nthreads, schedule="static"):
            _wino_lane(w, x, U, bias if bias != NULL else zeros, y, relu,
                       lane * n_items // nthreads, (lane + 1) * n_items // nthreads, groups,
                       V, M, zeros)


# ---------------------------------------------------------------------------------
# Winograd kernel gradient
# ---------------------------------------------------------------------------------
# dU[p] (C x F) = the sum over tiles of V[p]^T dM[p], then dkernel = G^T dU G per input
# channel (the template's header). The tiles go in chunks whose V and dM (P x tiles x C
# and x F) fit a few MB of L3: the threads first transform a chunk's tiles, then take
# its (position, strip of mr channels) pairs, each one GEMM microkernel sweep over all
# the chunk's tiles added into its block of dU. Every value of dU is summed by one item,
# over the tiles in order, chunk after chunk: the bits do not depend on the threads, and
# no partial sums are kept (ranges of tiles summed apart, each into a dU of its own,
# spent more time moving those than multiplying: 8 x 8 64 -> 64 at 64 images 1.9-3.3
# ms on one thread).

cdef enum:
    # A chunk's V and dM: at most this many bytes (L3 holds them between the passes).
    WINO_KGRAD_CHUNK_BYTES = 8 << 20
    # Fewer channels: the transforms of each tile's V and dM outweigh the products saved
    # (W5's 16 -> 16 layer, 64 images: 2.8 ms against the direct kernel's 1.6).
    WINO_KGRAD_MIN_C = 32


cdef int _winograd_kgrad_side(const Geometry *g, int64_t N, int64_t F,
                              int is_f32) noexcept nogil:
    """The tile side of a Winograd kernel gradient for this layer, or 0: as the forward
    pass's rule, from WINO_KGRAD_MIN_C channels in and out under "auto"."""
    if _conv_algorithm == 0 and (g.C < WINO_KGRAD_MIN_C or F < WINO_KGRAD_MIN_C):
        return 0
    return _winograd_side(g, N, F, is_f32)


cdef void _wino_kgrad_plan(Wino *w, const Geometry *g, int64_t N, int64_t F, int is_f32,
                           int m, int64_t itemsize) noexcept nogil:
    _wino_plan(w, g, N, F, is_f32, m)
    w.Cr = _cdiv(g.C, w.mr) * w.mr
    w.tb = min(w.tiles, max(1, WINO_KGRAD_CHUNK_BYTES // (w.P * (g.C + w.Fp) * itemsize)))


cdef int64_t _wino_kgrad_scratch_bytes(const Wino *w, int64_t itemsize,
                                       int nthreads) noexcept nogil:
    """dU (P x Cr x Fp), a chunk's V (P x tb x C) and dM (P x tb x Fp), then per thread a
    packed strip (tb x mr) and C zeros."""
    return (ALIGN + _align(w.P * w.Cr * w.Fp * itemsize) + _align(w.P * w.tb * w.g.C * itemsize)
            + _align(w.P * w.tb * w.Fp * itemsize)
            + nthreads * (_align(w.tb * w.mr * itemsize) + _align(w.g.C * itemsize)))


cdef void _wino_kgrad_tile(const Wino *w, const floating *x, const floating *dy,
                           int64_t tile, floating *v, floating *dm,
                           const floating *zeros) noexcept nogil:
    """A tile's V (position p at v + p * tb * C) and dM (at dm + p * tb * Fp). (A function
    of its own: prange would share ti and tj, set through pointers, between threads.)"""
    cdef const Geometry *g = &w.g
    cdef int64_t F = w.F, m = w.m, ti, tj
    cdef int64_t n = _wino_tile(w, tile, &ti, &tj)
    _wino_in(w, x, tile, v, zeros)
    if floating is float:
        cnnx_k.wg_dy_f32(w.m, dy + ((n * g.OH + m * ti) * g.OW + m * tj) * F, g.OW * F, F,
                         <int> min(m, g.OH - m * ti), <int> min(m, g.OW - m * tj), dm,
                         w.tb * w.Fp)
    else:
        cnnx_k.wg_dy_f64(w.m, dy + ((n * g.OH + m * ti) * g.OW + m * tj) * F, g.OW * F, F,
                         <int> min(m, g.OH - m * ti), <int> min(m, g.OW - m * tj), dm,
                         w.tb * w.Fp)


cdef void _wino_kgrad_item(const Wino *w, const floating *V, const floating *M, int64_t nt,
                           int64_t item, floating *strip, floating *dU,
                           int accumulate) noexcept nogil:
    """Item (position p, strip s) of a chunk of nt tiles: dU[p][s mr : s mr + mr] (+)=
    V[p][:, strip]^T dM[p]."""
    cdef int64_t strips = w.Cr // w.mr
    cdef int64_t p = item // strips
    cdef int64_t c0 = (item - p * strips) * w.mr
    cdef int64_t C = w.g.C, mr = w.mr
    cdef int64_t cw = min(mr, C - c0)
    cdef int64_t t, jp
    cdef const floating *src = V + p * w.tb * C + c0
    for t in range(nt):   # k-major: the microkernel's A panel
        _copy_run(strip + t * mr, src + t * C, cw)
        if cw < mr:
            memset(strip + t * mr + cw, 0, (mr - cw) * sizeof(floating))
    for jp in range(w.Fp // w.nr):
        _wino_ukernel(w, False, nt, strip, M + p * w.tb * w.Fp + jp * w.nr, w.Fp,
                      dU + (p * w.Cr + c0) * w.Fp + jp * w.nr, <int> cw, accumulate)


cdef void _wino_kgrad(const Wino *w, const floating *x, const floating *dy,
                      floating *dkernel, char *scratch, int nthreads) noexcept nogil:
    """dkernel = the kernel gradient of y = conv(x, kernel) for dy; scratch holds
    _wino_kgrad_scratch_bytes."""
    cdef int64_t C = w.g.C, F = w.F, tb = w.tb
    cdef floating *dU = <floating *> _aligned(scratch)
    cdef floating *V = <floating *> (<char *> dU + _align(w.P * w.Cr * w.Fp * sizeof(floating)))
    cdef floating *M = <floating *> (<char *> V + _align(w.P * tb * C * sizeof(floating)))
    cdef char *per_thread = <char *> M + _align(w.P * tb * w.Fp * sizeof(floating))
    cdef int64_t strip_bytes = _align(tb * w.mr * sizeof(floating))
    cdef int64_t thread_bytes = strip_bytes + _align(C * sizeof(floating))
    cdef floating *strip = NULL   # set per thread below
    cdef floating *zeros = NULL
    cdef int64_t chunk, t0, nt, t, item, c
    if F < w.Fp:   # dM's columns F : Fp, which no tile writes, stay zero
        memset(M, 0, w.P * tb * w.Fp * sizeof(floating))
    for t in range(nthreads):
        memset(per_thread + t * thread_bytes + strip_bytes, 0, C * sizeof(floating))
    for chunk in range(_cdiv(w.tiles, tb)):
        t0 = chunk * tb
        nt = min(tb, w.tiles - t0)
        with parallel(num_threads=nthreads):
            zeros = <floating *> (per_thread + threadid() * thread_bytes + strip_bytes)
            for t in prange(nt, schedule="static"):
                _wino_kgrad_tile(w, x, dy, t0 + t, V + t * C, M + t * w.Fp, zeros)
        with parallel(num_threads=nthreads):
            strip = <floating *> (per_thread + threadid() * thread_bytes)
            for item in prange(w.P * (w.Cr // w.mr), schedule="static"):
                _wino_kgrad_item(w, V, M, nt, item, strip, dU, t0 > 0)
    with parallel(num_threads=nthreads):
        for c in prange(C, schedule="static"):
            if floating is float:
                cnnx_k.wg_kgrad_f32(w.m, dU, w.Cr * w.Fp, w.Fp, C, F, c, dkernel)
            else:
                cnnx_k.wg_kgrad_f64(w.m, dU, w.Cr * w.Fp, w.Fp, C, F, c, dkernel)

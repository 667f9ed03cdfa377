# Included by _kernels.pyx (one extension module; see its header).
# GEMM: the operand sources and their packing, the blocked driver, and the dense layers (a dense layer is one product)

# ---------------------------------------------------------------------------------
# Operand sources and packing
# ---------------------------------------------------------------------------------

cdef enum:
    SRC_ROWS = 0      # element (r, k) = data[r * ld + k]
    SRC_COLS = 1      # element (r, k) = data[k * ld + r]   (transpose of a row-major matrix)
    SRC_IM2COL = 2    # element (r, k) = im2col(image)[r, k]
    SRC_IM2COL_T = 3  # element (r, k) = im2col(image)[k, r]

cdef enum:
    # Blocking. KC keeps a B micro-panel (KC x NR) in L1; MC keeps an A block in L2.
    KC = 256
    MC_TARGET = 96
    SPLIT_A_BYTES = 256 * 1024   # the largest A block of a split-K product (see _mc)
    # Fixed chunk of the reduction dimension for split-K products (kernel gradients).
    SPLIT_K_CHUNK = 2048
    MAX_SPLIT_K = 64
    ALIGN = 64


cdef struct Geometry:
    # Conv windows over an NHWC image of size H x W x C. Row r of im2col is output pixel
    # (n, oh, ow) of an OH x OW grid; column k is tap (i, j), channel c, in the kernel's
    # (KH, KW, C) order, reading image row oh*sh + i*dh - ph (zero outside the image).
    int64_t H, W, C, OH, OW, KH, KW
    int64_t sh, sw, ph, pw, dh, dw


cdef struct Source:
    int kind
    const void *data
    int64_t ld
    Geometry g


cdef inline Source _matrix(int kind, const void *data, int64_t ld) noexcept nogil:
    """A row-major matrix (SRC_ROWS) or its transpose (SRC_COLS), ld elements a row."""
    cdef Source s
    s.kind = kind
    s.data = data
    s.ld = ld
    return s


cdef inline void _im2col_run(const Geometry *g, const floating *x, int64_t p, int64_t k,
                             int64_t count, floating *dst, int64_t stride) noexcept nogil:
    """Writes im2col[p, k : k+count] to dst[0], dst[stride], ..."""
    cdef int64_t ow = p % g.OW
    cdef int64_t t = p // g.OW
    cdef int64_t oh = t % g.OH
    cdef int64_t n = t // g.OH
    cdef int64_t tap = k // g.C
    cdef int64_t c = k - tap * g.C
    cdef int64_t base_h = oh * g.sh - g.ph
    cdef int64_t base_w = ow * g.sw - g.pw
    cdef int64_t i, j, hu, wu, run, q
    cdef const floating *src
    while count > 0:
        i = tap // g.KW
        j = tap - i * g.KW
        run = g.C - c
        if run > count:
            run = count
        hu = base_h + i * g.dh
        wu = base_w + j * g.dw
        if 0 <= hu < g.H and 0 <= wu < g.W:
            src = x + ((n * g.H + hu) * g.W + wu) * g.C + c
            if stride == 1:
                for q in range(run):
                    dst[q] = src[q]
            else:
                for q in range(run):
                    dst[q * stride] = src[q]
        else:
            for q in range(run):
                dst[q * stride] = 0
        dst += run * stride
        count -= run
        tap += 1
        c = 0


cdef inline void _copy_run(floating *d, const floating *s, int64_t n) noexcept nogil:
    """d[:n] = s[:n]. A whole strip (6 or 12 values: the MR of the SIMD paths) is a
    fixed-size copy, a few vector moves (memcpy of a run-time size is a library call:
    it made a packing loop slower than copying value by value)."""
    cdef int64_t i
    if n == 12:
        memcpy(d, s, 12 * sizeof(floating))
    elif n == 6:
        memcpy(d, s, 6 * sizeof(floating))
    else:
        for i in range(n):
            d[i] = s[i]


cdef enum:
    PACK_PIECES = 128   # pieces _pack_im2col_t cuts at once (more rows: in groups)


cdef void _pack_im2col_t(const Geometry *g, const floating *x, floating *dst, int64_t r0,
                         int64_t rows, int64_t R, int64_t p0, int64_t count) noexcept nogil:
    """Rows r0 : r0+rows of im2col(x)^T, columns p0 : p0+count, packed k-major in strips of
    R rows: strip s at dst + s*count*R, its element (column kk, row s*R + i) at kk*R + i;
    the last strip's rows past `rows` are zero. The rows are cut once into pieces, each
    within one tap and one strip; then one walk over the pixels, without division, copies
    every piece: a pixel's channels are read once for all the strips of an A block (strip
    by strip, a kernel gradient's A packing re-walked the pixels per strip: 20% of its
    time on a 1x1 layer)."""
    cdef int64_t p_c[PACK_PIECES]     # a piece: its first channel, length, place in dst
    cdef int64_t p_len[PACK_PIECES]
    cdef int64_t p_dst[PACK_PIECES]
    cdef int64_t t_h[PACK_PIECES]     # a tap: its offsets, the end of its pieces
    cdef int64_t t_w[PACK_PIECES]
    cdef int64_t t_end[PACK_PIECES]
    cdef int64_t group = (PACK_PIECES // R) * R   # rows cut at once: whole strips
    cdef int64_t n_pieces = 0, n_taps = 0, r = 0, tap, c, length
    cdef int64_t kk, q, ti, i, h, w, hb, wb, ow, oh, img, t
    cdef const floating *src
    cdef floating *d
    if rows > group:   # more pieces than fit: whole strips at a time
        while r < rows:
            _pack_im2col_t(g, x, dst + (r // R) * count * R, r0 + r, min(group, rows - r), R,
                           p0, count)
            r += group
        return
    tap = r0 // g.C
    c = r0 - tap * g.C
    while r < rows:   # each piece has at least one row: at most `rows` pieces and taps
        length = min(g.C - c, R - r % R, rows - r)
        p_c[n_pieces] = c
        p_len[n_pieces] = length
        p_dst[n_pieces] = (r // R) * count * R + r % R
        n_pieces += 1
        r += length
        c += length
        if c == g.C or r == rows:   # the tap's last piece here
            t_h[n_taps] = (tap // g.KW) * g.dh
            t_w[n_taps] = (tap % g.KW) * g.dw
            t_end[n_taps] = n_pieces
            n_taps += 1
            c = 0
            tap += 1
    ow = p0 % g.OW
    t = p0 // g.OW
    oh = t % g.OH
    img = t // g.OH
    for kk in range(count):
        hb = oh * g.sh - g.ph
        wb = ow * g.sw - g.pw
        q = 0
        for ti in range(n_taps):
            h = hb + t_h[ti]
            w = wb + t_w[ti]
            if 0 <= h < g.H and 0 <= w < g.W:
                src = x + ((img * g.H + h) * g.W + w) * g.C
                while q < t_end[ti]:
                    _copy_run(dst + p_dst[q] + kk * R, src + p_c[q], p_len[q])
                    q += 1
            else:
                while q < t_end[ti]:
                    d = dst + p_dst[q] + kk * R
                    for i in range(p_len[q]):
                        d[i] = 0
                    q += 1
        ow += 1
        if ow == g.OW:
            ow = 0
            oh += 1
            if oh == g.OH:
                oh = 0
                img += 1
    if rows % R:
        d = dst + (rows // R) * count * R
        for kk in range(count):
            for i in range(rows % R, R):
                d[kk * R + i] = 0


cdef void _pack(const Source *s, floating *dst, int64_t r0, int64_t rows, int64_t R,
                int64_t k0, int64_t kc) noexcept nogil:
    """Packs the block (r0 : r0+rows, k0 : k0+kc) k-major: dst[k*R + r].
    Rows rows..R-1 are zero, so partial tiles compute on zeros. (A transposed im2col,
    only ever an A operand, is packed a whole A block at a time: _pack_im2col_t.)"""
    cdef const floating *m = <const floating *> s.data
    cdef int64_t r, k
    if s.kind == SRC_ROWS:
        for r in range(rows):
            for k in range(kc):
                dst[k * R + r] = m[(r0 + r) * s.ld + k0 + k]
    elif s.kind == SRC_COLS:
        for k in range(kc):
            for r in range(rows):
                dst[k * R + r] = m[(k0 + k) * s.ld + r0 + r]
    else:
        for r in range(rows):
            _im2col_run(&s.g, m, r0 + r, k0, kc, dst + r, R)
    if rows < R:
        for k in range(kc):
            for r in range(rows, R):
                dst[k * R + r] = 0


cdef inline bint _rows_layout(const Source *s) noexcept nogil:
    """Whether A from this source is packed row by row (contiguous copies) rather than
    k-major: for sources whose rows are contiguous runs in memory."""
    return s.kind == SRC_ROWS or s.kind == SRC_IM2COL


cdef void _pack_rows(const Source *s, floating *dst, int64_t r0, int64_t rows, int64_t R,
                     int64_t k0, int64_t kc) noexcept nogil:
    """Packs the block (r0 : r0+rows, k0 : k0+kc) row by row: dst[r*kc + k], by
    contiguous copies. Rows rows..R-1 are zero. For ROWS and IM2COL sources only."""
    cdef const floating *m = <const floating *> s.data
    cdef int64_t r
    if s.kind == SRC_ROWS:
        for r in range(rows):
            memcpy(dst + r * kc, m + (r0 + r) * s.ld + k0, kc * sizeof(floating))
    else:
        for r in range(rows):
            _im2col_run(&s.g, m, r0 + r, k0, kc, dst + r * kc, 1)
    if rows < R:
        memset(dst + rows * kc, 0, (R - rows) * kc * sizeof(floating))


# ---------------------------------------------------------------------------------
# The GEMM driver:  C[M, N] = A[M, K] @ B[K, N] (+ bias, ReLU)
# ---------------------------------------------------------------------------------

cdef inline int64_t _cdiv(int64_t a, int64_t b) noexcept nogil:
    return (a + b - 1) // b


cdef inline int64_t _align(int64_t nbytes) noexcept nogil:
    return _cdiv(nbytes, ALIGN) * ALIGN


cdef inline void _tile_shape(int is_f32, int64_t *mr, int64_t *nr) noexcept nogil:
    if is_f32:
        mr[0] = cnnx_k.mr_f32
        nr[0] = cnnx_k.nr_f32
    else:
        mr[0] = cnnx_k.mr_f64
        nr[0] = cnnx_k.nr_f64


cdef int64_t _split_k(int64_t M, int64_t N, int64_t K) noexcept nogil:
    """Chunks of the reduction dimension: a function of the shape alone, never of the
    thread count, so the summation order (and the result) is the same for any threads."""
    cdef int64_t s = K // SPLIT_K_CHUNK
    if s > MAX_SPLIT_K:
        s = MAX_SPLIT_K
    return s if s > 1 else 1


cdef int64_t _gemm_scratch_bytes(int64_t M, int64_t N, int64_t K, int64_t split, int nthreads,
                              int64_t itemsize, int is_f32) noexcept nogil:
    cdef int64_t mr, nr
    _tile_shape(is_f32, &mr, &nr)
    cdef int64_t mc = max(_mc(M, 1, mr, itemsize), _mc(M, 0, mr, itemsize))   # either plan
    cdef int64_t bpack = _align(K * _cdiv(N, nr) * nr * itemsize) + ALIGN
    cdef int64_t apack = _align(mc * KC * itemsize)
    cdef int64_t partial = _align(split * M * N * itemsize) if split > 1 else 0
    return bpack + nthreads * apack + partial


cdef inline void _ukernel(bint a_rows, int64_t kc, const floating *a, int64_t lda,
                          const floating *b, int64_t ldb, floating *c, int64_t ldc, int mr,
                          int nr, int accumulate, const floating *bias,
                          int relu) noexcept nogil:
    if floating is float:
        cnnx_k.uk_f32[a_rows](kc, a, lda, b, ldb, c, ldc, mr, nr, accumulate, bias, relu)
    else:
        cnnx_k.uk_f64[a_rows](kc, a, lda, b, ldb, c, ldc, mr, nr, accumulate, bias, relu)


cdef inline floating *_bpanel(floating *bpack, int64_t n_pad, int64_t nr, int64_t K, int64_t k0,
                              int64_t jp) noexcept nogil:
    """Start of packed B for the k block at k0 and column panel jp."""
    cdef int64_t kc = K - k0 if K - k0 < KC else KC
    return bpack + k0 * n_pad + jp * kc * nr


cdef struct Plan:
    # One product C = A @ B, as cut into blocks by _gemm.
    const Source *A
    int64_t M, N, K, mr, nr, mc, n_pad
    int64_t split, chunk, m_blocks, n_blocks, panels_per_block
    const void *bias
    int relu
    # B read in place (a row-major K x N matrix, N a multiple of nr): its data and row
    # length; NULL when B is packed.
    const void *b_direct
    int64_t ldb


cdef void _gemm_block(const Plan *p, int64_t ci, int64_t m0, int64_t rows, int64_t jp0, int64_t jp1,
                     floating *apack, const floating *bpack, floating *dst,
                     int64_t ldd) noexcept nogil:
    """Rows m0 : m0+rows (at most mc) and column panels jp0 : jp1 of chunk ci of the
    product: pack the A block, then sweep it against the packed B panels. A row-major A
    (SRC_ROWS) is read in place, but for a last strip of fewer than mr rows (the
    microkernel reads mr rows: packed, those past the matrix are zeros)."""
    cdef int64_t kbeg = ci * p.chunk
    cdef int64_t kend = min(kbeg + p.chunk, p.K)
    cdef int64_t mr = p.mr, nr = p.nr
    cdef int64_t k0, kc, jp, strip, lda
    cdef int fuse
    cdef bint a_rows = _rows_layout(p.A)
    cdef int64_t whole = rows // mr if p.A.kind == SRC_ROWS else 0   # strips read in place
    cdef const floating *bias = <const floating *> p.bias
    cdef const floating *a
    k0 = kbeg
    while k0 < kend:
        kc = min(kend - k0, KC)
        fuse = k0 + kc == kend and p.split == 1   # last block: bias and ReLU
        if p.A.kind == SRC_IM2COL_T:   # every strip in one walk over the pixels
            _pack_im2col_t(&p.A.g, <const floating *> p.A.data, apack, m0, rows, mr, k0, kc)
        else:
            for strip in range(whole, _cdiv(rows, mr)):
                if a_rows:
                    _pack_rows(p.A, apack + strip * kc * mr, m0 + strip * mr,
                               min(rows - strip * mr, mr), mr, k0, kc)
                else:
                    _pack(p.A, apack + strip * kc * mr, m0 + strip * mr,
                          min(rows - strip * mr, mr), mr, k0, kc)
        for jp in range(jp0, jp1):
            for strip in range(_cdiv(rows, mr)):
                if strip < whole:
                    a = <const floating *> p.A.data + (m0 + strip * mr) * p.A.ld + k0
                    lda = p.A.ld
                else:
                    a = apack + strip * kc * mr
                    lda = kc
                _ukernel(a_rows, kc, a, lda,
                         (<const floating *> p.b_direct) + k0 * p.ldb + jp * nr
                         if p.b_direct != NULL
                         else _bpanel(<floating *> bpack, p.n_pad, nr, p.K, k0, jp),
                         p.ldb,
                         dst + strip * mr * ldd + jp * nr, ldd,
                         min(rows - strip * mr, mr), min(p.N - jp * nr, nr),
                         k0 != kbeg,
                         bias + jp * nr if (fuse and bias != NULL) else NULL,
                         p.relu and fuse)
        k0 += kc


cdef void _gemm_item(const Plan *p, int64_t item, floating *apack, const floating *bpack,
                     floating *C, int64_t ldc, floating *partial) noexcept nogil:
    """Work item = (chunk ci, row block ib, column block)."""
    cdef int64_t ci = item // (p.m_blocks * p.n_blocks)
    cdef int64_t ib = (item // p.n_blocks) % p.m_blocks
    cdef int64_t jp0 = (item % p.n_blocks) * p.panels_per_block
    cdef int64_t jp1 = min(jp0 + p.panels_per_block, _cdiv(p.N, p.nr))
    cdef int64_t m0 = ib * p.mc
    if p.split > 1:
        _gemm_block(p, ci, m0, min(p.M - m0, p.mc), jp0, jp1, apack, bpack,
                    partial + ci * p.M * p.N + m0 * p.N, p.N)
    else:
        _gemm_block(p, ci, m0, min(p.M - m0, p.mc), jp0, jp1, apack, bpack,
                    C + m0 * ldc, ldc)


cdef inline int64_t _mc(int64_t M, int split_k, int64_t mr, int64_t itemsize) noexcept nogil:
    """Rows of an A block. A split-K product (a kernel gradient: few rows, a long
    reduction) takes all its rows in one block when they fit in SPLIT_A_BYTES: each
    reduction chunk's A then is packed once, not once per row block (the packing of a 1x1
    layer's kernel gradient reads every pixel of the image: 8192 x 128 x 128, 28 -> 32
    GMAC/s)."""
    if split_k and M * KC * itemsize <= SPLIT_A_BYTES:
        return _cdiv(M, mr) * mr
    return _cdiv(MC_TARGET, mr) * mr


cdef inline bint _enough_items(int64_t items, bint split_k, int nthreads) noexcept nogil:
    """Whether a product's work items are enough for the threads: 4 a thread, or for a
    split-K product 2 a thread when they divide evenly (see _plan)."""
    return items >= 4 * nthreads or (split_k and items >= 2 * nthreads
                                     and items % nthreads == 0)


cdef void _plan(Plan *p, const Source *A, const Source *Bt, int64_t M, int64_t N, int64_t K,
               const void *bias, int relu, int split_k, int is_f32,
               int nthreads) noexcept nogil:
    _tile_shape(is_f32, &p.mr, &p.nr)
    p.A = A
    p.M = M
    p.N = N
    p.K = K
    p.split = _split_k(M, N, K) if split_k else 1
    # Chunks of whole KC blocks: _pack_b cuts B into KC blocks from k = 0, and a chunk
    # must start at one (a chunk of 2592 of 5184 read packed B at the wrong offsets).
    p.chunk = max(KC, _cdiv(_cdiv(K, p.split), KC) * KC)
    p.split = max(1, _cdiv(K, p.chunk))
    # As many row blocks as _mc asks for, their rows spread evenly: a block of 96 rows
    # beside one of 25 (121 rows: a 13x13 convolution's output at batch 1) would leave
    # one of two threads idle. Blocks change no sum.
    cdef int64_t target = _mc(M, split_k, p.mr, 4 if is_f32 else 8)
    cdef int64_t blocks = max(1, _cdiv(M, target))
    # A split-K product short of work items for the threads (few chunks: a reduction
    # under 4096) takes more row blocks before column blocks: A is packed once whatever
    # its row blocks, but once per column block (W6's 8 x 8 128 -> 256 1x1 kernel
    # gradient re-packed the whole image four times: 0.79x the time now).
    while (split_k and blocks < _cdiv(M, p.mr)
           and not _enough_items(p.split * blocks, True, nthreads)):
        blocks += 1
    p.mc = _cdiv(_cdiv(M, blocks), p.mr) * p.mr
    p.n_pad = _cdiv(N, p.nr) * p.nr
    p.m_blocks = _cdiv(M, p.mc)
    # B^T as SRC_COLS is B row-major: with whole panels, in a split-K product (a kernel
    # gradient's dy: as large as the image) or read by at most two row blocks (a small
    # batch's dense kernel), read in place; packing would copy it for little reuse. Read
    # by more (a pointwise convolution's kernel, 32 images), packed panels, contiguous,
    # ran faster: W6's 1x1 layers' forward 0.90x the time.
    if Bt.kind == SRC_COLS and N % p.nr == 0 and (split_k or p.m_blocks <= 2):
        p.b_direct = Bt.data
        p.ldb = Bt.ld
    else:
        p.b_direct = NULL
        p.ldb = p.nr
    p.bias = bias
    p.relu = relu
    cdef int64_t n_panels = _cdiv(N, p.nr)
    # Column blocks only spread work over threads; they change no sum. Each re-packs its
    # A block, so a split-K product stops at two items a thread when they divide evenly
    # (2048 x 128 x 256 kernel gradient: 23 -> 30 GMAC/s with 4 items, not 8).
    p.n_blocks = 1
    while p.n_blocks < n_panels and not _enough_items(p.split * p.m_blocks * p.n_blocks,
                                                      split_k, nthreads):
        p.n_blocks += 1
    p.panels_per_block = _cdiv(n_panels, p.n_blocks)
    p.n_blocks = _cdiv(n_panels, p.panels_per_block)


cdef inline char *_aligned(char *ptr) noexcept nogil:
    return <char *> ((<uintptr_t> ptr + ALIGN - 1) // ALIGN * ALIGN)


cdef void _pack_b(const Plan *p, const Source *Bt, floating *bpack,
                  int nthreads) noexcept nogil:
    """Packs all of B into bpack: k block at k0, column panel jp at _bpanel(k0, jp).
    Nothing to do when B is read in place."""
    cdef int64_t n_panels = _cdiv(p.N, p.nr)
    cdef int64_t item, kb, jp, k0
    if p.b_direct != NULL:
        return
    with parallel(num_threads=nthreads):
        for item in prange(_cdiv(p.K, KC) * n_panels, schedule="static"):
            kb = item // n_panels
            jp = item - kb * n_panels
            k0 = kb * KC
            _pack(Bt, _bpanel(bpack, p.n_pad, p.nr, p.K, k0, jp), jp * p.nr,
                  min(p.N - jp * p.nr, p.nr), p.nr, k0, min(p.K - k0, KC))


cdef inline int64_t _bpack_bytes(const Plan *p, int64_t itemsize) noexcept nogil:
    return _align(p.K * p.n_pad * itemsize) + ALIGN


cdef void _gemm(const Source *A, const Source *Bt, floating *C, int64_t ldc,
                int64_t M, int64_t N, int64_t K, const floating *bias, int relu, int split_k,
                char *scratch, int nthreads) noexcept nogil:
    """C = A @ B (+ bias per column, then ReLU). Bt describes B transposed (N x K).
    With split_k, the K dimension is cut into fixed chunks summed in order.
    Scratch: packed B, then one A block per thread, then the split-K partials."""
    cdef Plan p
    _plan(&p, A, Bt, M, N, K, bias, relu, split_k, floating is float, nthreads)
    cdef floating *bpack = <floating *> _aligned(scratch)
    _pack_b(&p, Bt, bpack, nthreads)
    cdef char *apack_base = scratch + _bpack_bytes(&p, sizeof(floating))
    cdef int64_t apack_bytes = _align(p.mc * KC * sizeof(floating))
    cdef floating *partial = <floating *> (apack_base + nthreads * apack_bytes)
    cdef int64_t item, i, j, ci
    cdef floating v

    with parallel(num_threads=nthreads):
        for item in prange(p.split * p.m_blocks * p.n_blocks, schedule="static"):
            _gemm_item(&p, item, <floating *> (apack_base + threadid() * apack_bytes),
                       bpack, C, ldc, partial)

    # Split-K: sum the chunks in order, then bias and ReLU.
    if p.split > 1:
        with parallel(num_threads=nthreads):
            for i in prange(M, schedule="static"):
                for j in range(N):
                    v = partial[i * N + j]
                    for ci in range(1, p.split):
                        v = v + partial[(ci * M + i) * N + j]
                    if bias != NULL:
                        v = v + bias[j]
                    if relu and v <= 0:
                        v = 0
                    C[i * ldc + j] = v


cdef char *_scratch(workspace, int64_t nbytes) except NULL:
    cdef unsigned char[::1] buf = workspace(nbytes)
    if buf.shape[0] < nbytes:
        raise RuntimeError(f"workspace gave {buf.shape[0]} bytes, {nbytes} needed")
    return <char *> &buf[0]



# ---------------------------------------------------------------------------------
# Dense
# ---------------------------------------------------------------------------------

cdef enum:
    # The row path's work items: blocks of kernel rows, each summed by one item (which
    # streams them) and the blocks' sums added in order, by columns of whole blocks of
    # the kernel's widest width (128 floats, 2 x 64 doubles). Shape alone sets the sums'
    # order. One row through ops.dense, AVX-512: 6272 x 128 (W2's dense layer, 3.2 MB)
    # 69 -> 29 us on 2 threads (1 thread 118 -> 44); 4096 x 1000 617 -> 146 us. The
    # widest block keeps 8 vectors of multiply-adds in flight, where one of 32 columns
    # waited on their latency (400 x 120: 9.0 -> 7.5 us, most of it the call's Python).
    GEMV_ROWS = 256
    GEMV_COLS = 128
    # Fewer multiply-adds run on one thread (opening a parallel region costs more):
    # 1600 x 10, one row, 8.3 us on one thread against 11.7 in 7 items on two.
    GEMV_PARALLEL = 1 << 17

# 0: choose by shape; 1: always the GEMM; 2: always rows of multiply-adds.
cdef int _dense_path = 0
_DENSE_PATHS = ("auto", "gemm", "gemv")


def set_dense_path(str name):
    """Force how dense products run: "gemm", "gemv" (rows of multiply-adds) or "auto"
    (by shape, the default). For the tests and benchmarks; results agree to rounding,
    not bitwise."""
    global _dense_path
    if name not in _DENSE_PATHS:
        raise ValueError(f"dense path must be one of {_DENSE_PATHS}, received {name!r}")
    _dense_path = _DENSE_PATHS.index(name)


def dense_path():
    return _DENSE_PATHS[_dense_path]


def dense_path_for(int64_t rows, int64_t inputs, int64_t outputs, size_t itemsize):
    """The path a dense product of this shape takes now: "gemv" or "gemm"."""
    return "gemv" if _gemv_wanted(rows, inputs, outputs, itemsize) else "gemm"


cdef bint _gemv_wanted(int64_t B, int64_t I, int64_t O, size_t itemsize) noexcept nogil:
    """Whether a dense product runs as rows of multiply-adds (the path's gemv kernel,
    reading the kernel in place, once per row) rather than the GEMM, which pads the rows
    to a tile of PATH_MR and packs the whole kernel on every call. Measured on the
    AVX-512 path, 84 to 8192 inputs and 10 to 256 outputs: at 1 and 2 rows 1.4-5x the
    GEMM's speed; at 4 rows 1.4-3.8x while the kernel is at most 1 MiB, level or slower
    beyond."""
    if _dense_path:
        return _dense_path == 2
    return B <= 2 or (B <= 4 and I * O * <int64_t>itemsize <= 1 << 20)


cdef void _gemv(const floating *x, const floating *w, floating *out, int64_t ldo,
                int64_t B, int64_t I, int64_t O, int64_t k0, int64_t k1, int64_t j0,
                int64_t j1) noexcept nogil:
    """out[:, j0:j1] = x[:, k0:k1] @ w[k0:k1, j0:j1] on the path's kernel: each output
    summed over those kernel rows in order."""
    if floating is float:
        cnnx_k.gemv_f32(x, B, I, w, O, k0, k1, j0, j1, out, ldo)
    else:
        cnnx_k.gemv_f64(x, B, I, w, O, k0, k1, j0, j1, out, ldo)


cdef inline void _gemv_item(const floating *x, const floating *w, floating *part,
                            int64_t B, int64_t I, int64_t O, int64_t ncb,
                            int64_t item) noexcept nogil:
    """Work item (block of kernel rows kb, block of columns cb) of _gemv_rows."""
    cdef int64_t kb = item // ncb, cb = item % ncb
    _gemv(x, w, part + kb * B * O, O, B, I, O, kb * GEMV_ROWS, min(I, (kb + 1) * GEMV_ROWS),
          cb * GEMV_COLS, min(O, (cb + 1) * GEMV_COLS))


cdef void _gemv_rows(const floating *x, const floating *w, const floating *bias, floating *y,
                     int64_t B, int64_t I, int64_t O, bint relu, char *s,
                     int nthreads) noexcept nogil:
    """y = x @ w (+ bias, ReLU) by the row path: work items of GEMV_ROWS kernel rows by
    GEMV_COLS columns, each block of rows summed into its own slice of s (into y when
    there is one block), then the blocks added in order."""
    cdef int64_t nkb = _cdiv(I, GEMV_ROWS), ncb = _cdiv(O, GEMV_COLS)
    cdef floating *part = <floating *> _aligned(s) if nkb > 1 else y
    cdef int64_t item, kb, r, j, ld = B * O
    cdef floating v
    if nkb * ncb == 1 or nthreads == 1 or B * I * O < GEMV_PARALLEL:
        for item in range(nkb * ncb):
            _gemv_item(x, w, part, B, I, O, ncb, item)
    else:
        for item in prange(nkb * ncb, num_threads=nthreads, schedule="static"):
            _gemv_item(x, w, part, B, I, O, ncb, item)
    for r in range(B):
        for j in range(O):
            v = part[r * O + j]
            for kb in range(1, nkb):
                v = v + part[kb * ld + r * O + j]
            if bias != NULL:
                v = v + bias[j]
            if relu and v <= 0:     # NaN passes, as the GEMM's epilogue
                v = 0
            y[r * O + j] = v


def dense(const floating[:, ::1] x, const floating[:, ::1] kernel, const floating[::1] bias,
          floating[:, ::1] y, bint relu, int nthreads, workspace):
    """y = x @ kernel (+ bias, ReLU). x: (B, I), kernel: (I, O), y: (B, O)."""
    cdef int64_t B = x.shape[0], I = x.shape[1], O = kernel.shape[1]
    cdef char *s = _scratch(workspace, _dense_scratch_bytes(B, I, O, sizeof(floating),
                                                            nthreads, floating is float))
    with nogil:
        _dense_forward(&x[0, 0], &kernel[0, 0], &bias[0] if bias is not None else NULL,
                       &y[0, 0], B, I, O, relu, s, nthreads)


cdef int64_t _dense_scratch_bytes(int64_t B, int64_t I, int64_t O, int64_t itemsize,
                                  int nthreads, int is_f32) noexcept nogil:
    if _gemv_wanted(B, I, O, itemsize):   # each block of kernel rows' sums
        return ALIGN + _align(_cdiv(I, GEMV_ROWS) * B * O * itemsize) if I > GEMV_ROWS else 0
    return _gemm_scratch_bytes(B, O, I, 1, nthreads, itemsize, is_f32)


cdef void _dense_forward(const floating *x, const floating *kernel, const floating *b,
                         floating *y, int64_t B, int64_t I, int64_t O, bint relu, char *s,
                         int nthreads) noexcept nogil:
    """dense on raw arrays; s holds _dense_scratch_bytes."""
    cdef Source a, bt
    if _gemv_wanted(B, I, O, sizeof(floating)):
        _gemv_rows(x, kernel, b, y, B, I, O, relu, s, nthreads)
        return
    a = _matrix(SRC_ROWS, x, I)
    bt = _matrix(SRC_COLS, kernel, O)
    _gemm(&a, &bt, y, O, B, O, I, b, relu, 0, s, nthreads)


def dense_input_grad(const floating[:, ::1] dy, const floating[:, ::1] kernel,
                     floating[:, ::1] dx, int nthreads, workspace):
    """dx = dy @ kernel^T."""
    cdef int64_t B = dy.shape[0], I = kernel.shape[0], O = kernel.shape[1]
    cdef Source a = _matrix(SRC_ROWS, &dy[0, 0], O)
    cdef Source bt = _matrix(SRC_ROWS, &kernel[0, 0], O)   # B = kernel^T
    cdef char *s = _scratch(workspace, _gemm_scratch_bytes(B, I, O, 1, nthreads,
                                                           sizeof(floating), floating is float))
    with nogil:
        _gemm(&a, &bt, &dx[0, 0], I, B, I, O, NULL, 0, 0, s, nthreads)


def dense_kernel_grad(const floating[:, ::1] x, const floating[:, ::1] dy,
                      floating[:, ::1] dkernel, floating[::1] dbias, int nthreads, workspace):
    """dkernel = x^T @ dy and dbias = dy summed over the batch, in fixed chunks."""
    cdef int64_t B = x.shape[0], I = x.shape[1], O = dy.shape[1]
    cdef Source a = _matrix(SRC_COLS, &x[0, 0], I)          # A = x^T
    cdef Source bt = _matrix(SRC_COLS, &dy[0, 0], O)
    cdef char *s = _scratch(workspace, max(
        _gemm_scratch_bytes(I, O, B, _split_k(I, O, B), nthreads, sizeof(floating),
                            floating is float),
        _column_sums_scratch_bytes(B, O, sizeof(floating))))
    with nogil:
        _gemm(&a, &bt, &dkernel[0, 0], O, I, O, B, NULL, 0, 1, s, nthreads)
    if dbias is not None:
        _column_sums(&dy[0, 0], B, O, &dbias[0], s, nthreads)

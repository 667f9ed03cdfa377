# cython: freethreading_compatible = True
# Compiled kernels of cnnx: convolution, pooling, ReLU, dense, softmax and the
# cross-entropies, forward and backward, for float32 and float64.
#
# This module knows arrays, shapes and thread counts, nothing else. It does not
# validate: cnnx.ops is the only caller, and checks every argument first. Outputs are
# allocated by the caller; scratch memory comes from the caller's `workspace(nbytes)`
# callable, so that buffers live across calls.
#
# Every matrix product runs through one blocked GEMM driver (`_gemm`): operands are
# described by a `Source` (a plain matrix, its transpose, or an implicit im2col of an
# NHWC image) and packed tile by tile into thread-local panels, so no im2col buffer
# for the whole batch ever exists. The inner tile is a SIMD microkernel from _simd.h.
# Convolutions with few channels run on direct kernels instead (see "Direct
# convolution"), and ReLU's backward pass can be fused into the kernel gradient and
# into max-pool backward (their `relu_output` argument: the ReLU's output, whose sign is the mask).
#
# Free-threaded Python: the module declares itself safe without the GIL. Its only
# process-wide state is the SIMD table pointer (set at import; select_simd swaps it whole)
# and the algorithm knob of the tests; scratch memory comes from the caller's
# per-thread workspace.
#
# Determinism: work is split into items whose arithmetic does not depend on the
# thread count. Reductions over the batch (kernel and bias gradients) use a fixed
# number of chunks, set by the shape alone, summed in a fixed order.

from cython.parallel cimport prange, parallel, threadid
from cython cimport floating
from libc.string cimport memcpy, memset
from libc.math cimport exp, log, log1p, fabs, sqrt, pow, INFINITY
from libc.stdint cimport int32_t, int64_t, uintptr_t

cdef extern from "_simd.h" nogil:
    # Declared in _simd.h; Cython needs the signatures it calls and the fields it reads.
    ctypedef void (*cnnx_ukernel_f32)(int64_t, const float *, const float *, int64_t,
                                      float *, int64_t, int, int, int, const float *, int)
    ctypedef void (*cnnx_ukernel_f64)(int64_t, const double *, const double *, int64_t,
                                      double *, int64_t, int, int, int, const double *, int)
    ctypedef void (*cnnx_dfwd_f32)(int64_t, const float *, const int64_t *, int64_t,
                                   const float *, int64_t, int, int64_t, int64_t, float *,
                                   int64_t, int, const float *, int)
    ctypedef void (*cnnx_dfwd_f64)(int64_t, const double *, const int64_t *, int64_t,
                                   const double *, int64_t, int, int64_t, int64_t, double *,
                                   int64_t, int, const double *, int)
    ctypedef void (*cnnx_dkgrad_f32)(int64_t, int64_t, int, const float *, int64_t,
                                     const int64_t *, int, const float *, int64_t, float *,
                                     int64_t, int)
    ctypedef void (*cnnx_dkgrad_f64)(int64_t, int64_t, int, const double *, int64_t,
                                     const int64_t *, int, const double *, int64_t,
                                     double *, int64_t, int)
    ctypedef void (*cnnx_nfwd_f32)(int64_t, const float *, const int64_t *, const int64_t *,
                                   int, const float *, int64_t, float *, const float *, int)
    ctypedef void (*cnnx_nfwd_f64)(int64_t, const double *, const int64_t *,
                                   const int64_t *, int, const double *, int64_t, double *,
                                   const double *, int)
    ctypedef void (*cnnx_nkgrad_f32)(int64_t, int64_t, int64_t, int64_t, const float *,
                                     const int64_t *, int, const float *, const float *,
                                     int64_t, float *, float *)
    ctypedef void (*cnnx_nkgrad_f64)(int64_t, int64_t, int64_t, int64_t, const double *,
                                     const int64_t *, int, const double *, const double *,
                                     int64_t, double *, double *)
    ctypedef void (*cnnx_maxpool_f32)(const float *, int64_t, int64_t, int64_t, int64_t,
                                      int64_t, int64_t, int64_t, int64_t, float *,
                                      int32_t *, int64_t)
    ctypedef void (*cnnx_maxpool_f64)(const double *, int64_t, int64_t, int64_t, int64_t,
                                      int64_t, int64_t, int64_t, int64_t, double *,
                                      int32_t *, int64_t)
    ctypedef void (*cnnx_dw_fwd_f32)(const float *, int64_t, int64_t, int64_t, const float *,
                                     int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                                     int64_t, int64_t, int64_t, int64_t, const float *,
                                     float *)
    ctypedef void (*cnnx_dw_fwd_f64)(const double *, int64_t, int64_t, int64_t,
                                     const double *, int64_t, int64_t, int64_t, int64_t,
                                     int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                                     const double *, double *)
    ctypedef void (*cnnx_dw_dx_f32)(const float *, int64_t, int64_t, int64_t, const float *,
                                    int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                                    int64_t, int64_t, int64_t, int64_t, float *)
    ctypedef void (*cnnx_dw_dx_f64)(const double *, int64_t, int64_t, int64_t,
                                    const double *, int64_t, int64_t, int64_t, int64_t,
                                    int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                                    double *)
    ctypedef void (*cnnx_dw_dk_f32)(const float *, int64_t, int64_t, int64_t, const float *,
                                    int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                                    int64_t, int64_t, int64_t, int64_t, float *, float *)
    ctypedef void (*cnnx_dw_dk_f64)(const double *, int64_t, int64_t, int64_t,
                                    const double *, int64_t, int64_t, int64_t, int64_t,
                                    int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                                    double *, double *)
    ctypedef struct cnnx_kernel_table:
        const char *name
        cnnx_ukernel_f32 uk_f32[2]
        cnnx_ukernel_f64 uk_f64[2]
        int mr_f32, nr_f32, mr_f64, nr_f64
        int direct
        int vw_f32, vw_f64
        cnnx_dfwd_f32 dk_fwd_f32[2]
        cnnx_dfwd_f64 dk_fwd_f64[2]
        cnnx_dkgrad_f32 dk_kgrad_f32[2]
        cnnx_dkgrad_f64 dk_kgrad_f64[2]
        int dk_np[2]
        cnnx_nfwd_f32 nk_fwd_f32[2]
        cnnx_nfwd_f64 nk_fwd_f64[2]
        cnnx_nkgrad_f32 nk_kgrad_f32[2]
        cnnx_nkgrad_f64 nk_kgrad_f64[2]
        int nk_mr[2]
        cnnx_maxpool_f32 mp_f32
        cnnx_maxpool_f64 mp_f64
        cnnx_dw_fwd_f32 dw_fwd_f32
        cnnx_dw_fwd_f64 dw_fwd_f64
        cnnx_dw_dx_f32 dw_dx_f32
        cnnx_dw_dx_f64 dw_dx_f64
        cnnx_dw_dk_f32 dw_dk_f32
        cnnx_dw_dk_f64 dw_dk_f64

cdef extern from "_dispatch.h" nogil:
    const cnnx_kernel_table *cnnx_k
    int cnnx_simd_available(const char *name)
    int cnnx_simd_select(const char *name)
    const char *CNNX_COMPILER
    int CNNX_OPENMP


# ---------------------------------------------------------------------------------
# Build facts and the SIMD path
# ---------------------------------------------------------------------------------

def compiler():
    """The compiler that built this module, as it names itself."""
    return CNNX_COMPILER.decode()


def openmp_version():
    """The _OPENMP date macro (e.g. 201511) this module was built with; 0 without OpenMP."""
    return CNNX_OPENMP


def openmp_threads_used(int nthreads):
    """How many threads a parallel region asked for `nthreads` really runs."""
    cdef int i, used = 0
    cdef int seen[1024]
    memset(seen, 0, sizeof(seen))
    with nogil, parallel(num_threads=nthreads):
        seen[threadid() % 1024] = 1
    for i in range(1024):
        used += seen[i]
    return used


def simd_available(str name):
    return bool(cnnx_simd_available(name.encode()))


def select_simd(str name=""):
    """Select a microkernel path by name ("" for the best available)."""
    if cnnx_simd_select(name.encode()) != 0:
        raise ValueError(f"SIMD path {name!r} is not available on this CPU or build")
    return cnnx_k.name.decode()


def simd_path():
    return cnnx_k.name.decode()


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


cdef void _pack_im2col_t(const Geometry *g, const floating *x, floating *dst, int64_t r0,
                         int64_t rows, int64_t R, int64_t p0, int64_t count) noexcept nogil:
    """dst[kk*R + r] = im2col(x)[p0 + kk, r0 + r]: for each of `count` pixels, the same
    `rows` columns. The columns are cut once into runs within a tap; the pixels are
    walked incrementally, so the loop does no division."""
    cdef int64_t run_h[64]
    cdef int64_t run_w[64]
    cdef int64_t run_c[64]
    cdef int64_t run_len[64]
    cdef int64_t run_dst[64]
    cdef int64_t n_runs = 0, r = 0, tap = r0 // g.C, c = r0 - tap * g.C
    cdef int64_t kk, q, length
    while r < rows:  # rows <= R <= 64, so at most 64 runs
        length = min(g.C - c, rows - r)
        run_h[n_runs] = (tap // g.KW) * g.dh
        run_w[n_runs] = (tap % g.KW) * g.dw
        run_c[n_runs] = c
        run_len[n_runs] = length
        run_dst[n_runs] = r
        n_runs += 1
        r += length
        tap += 1
        c = 0
    for q in range(n_runs):
        _gather_run(g, x, dst + run_dst[q], R, run_h[q], run_w[q], run_c[q], run_len[q],
                    p0, count)
    if rows < R:
        for kk in range(count):
            for r in range(rows, R):
                dst[kk * R + r] = 0


cdef inline void _gather_run(const Geometry *g, const floating *x, floating *dst, int64_t R,
                             int64_t off_h, int64_t off_w, int64_t c, int64_t length, int64_t p0,
                             int64_t count) noexcept nogil:
    """dst[kk*R : kk*R + length] = x[pixel (p0 + kk) of tap offset (off_h, off_w), c : c+length]
    for kk < count, walking the pixels without division. Runs as wide as a tile (12 or 6,
    the MR of the SIMD paths) get a fixed-size copy the compiler unrolls."""
    cdef int64_t ow = p0 % g.OW, t = p0 // g.OW
    cdef int64_t oh = t % g.OH, n = t // g.OH
    cdef int64_t kk, r, h, w
    cdef const floating *src
    cdef floating *d
    for kk in range(count):
        d = dst + kk * R
        h = oh * g.sh - g.ph + off_h
        w = ow * g.sw - g.pw + off_w
        if 0 <= h < g.H and 0 <= w < g.W:
            src = x + ((n * g.H + h) * g.W + w) * g.C + c
            if length == 12:
                for r in range(12):
                    d[r] = src[r]
            elif length == 6:
                for r in range(6):
                    d[r] = src[r]
            else:
                for r in range(length):
                    d[r] = src[r]
        else:
            for r in range(length):
                d[r] = 0
        ow += 1
        if ow == g.OW:
            ow = 0
            oh += 1
            if oh == g.OH:
                oh = 0
                n += 1


cdef void _pack(const Source *s, floating *dst, int64_t r0, int64_t rows, int64_t R,
                int64_t k0, int64_t kc) noexcept nogil:
    """Packs the block (r0 : r0+rows, k0 : k0+kc) k-major: dst[k*R + r].
    Rows rows..R-1 are zero, so partial tiles compute on zeros."""
    cdef const floating *m = <const floating *> s.data
    cdef int64_t r, k
    if s.kind == SRC_IM2COL_T:
        _pack_im2col_t(&s.g, m, dst, r0, rows, R, k0, kc)
        return
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
    cdef int64_t mc = _cdiv(MC_TARGET, mr) * mr
    cdef int64_t bpack = _align(K * _cdiv(N, nr) * nr * itemsize) + ALIGN
    cdef int64_t apack = _align(mc * KC * itemsize)
    cdef int64_t partial = _align(split * M * N * itemsize) if split > 1 else 0
    return bpack + nthreads * apack + partial


cdef inline void _ukernel(bint a_rows, int64_t kc, const floating *a, const floating *b,
                          int64_t ldb, floating *c, int64_t ldc, int mr, int nr, int accumulate,
                          const floating *bias, int relu) noexcept nogil:
    if floating is float:
        cnnx_k.uk_f32[a_rows](kc, a, b, ldb, c, ldc, mr, nr, accumulate, bias, relu)
    else:
        cnnx_k.uk_f64[a_rows](kc, a, b, ldb, c, ldc, mr, nr, accumulate, bias, relu)


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
    product: pack the A block, then sweep it against the packed B panels."""
    cdef int64_t kbeg = ci * p.chunk
    cdef int64_t kend = min(kbeg + p.chunk, p.K)
    cdef int64_t mr = p.mr, nr = p.nr
    cdef int64_t k0, kc, jp, strip
    cdef int fuse
    cdef bint a_rows = _rows_layout(p.A)
    cdef const floating *bias = <const floating *> p.bias
    k0 = kbeg
    while k0 < kend:
        kc = min(kend - k0, KC)
        fuse = k0 + kc == kend and p.split == 1   # last block: bias and ReLU
        for strip in range(_cdiv(rows, mr)):
            if a_rows:
                _pack_rows(p.A, apack + strip * kc * mr, m0 + strip * mr,
                           min(rows - strip * mr, mr), mr, k0, kc)
            else:
                _pack(p.A, apack + strip * kc * mr, m0 + strip * mr,
                      min(rows - strip * mr, mr), mr, k0, kc)
        for jp in range(jp0, jp1):
            for strip in range(_cdiv(rows, mr)):
                _ukernel(a_rows, kc, apack + strip * kc * mr,
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


cdef void _plan(Plan *p, const Source *A, const Source *Bt, int64_t M, int64_t N, int64_t K,
               const void *bias, int relu, int split_k, int is_f32,
               int nthreads) noexcept nogil:
    _tile_shape(is_f32, &p.mr, &p.nr)
    # B^T as SRC_COLS is B row-major: with whole panels, read it in place, unpacked.
    if Bt.kind == SRC_COLS and N % p.nr == 0:
        p.b_direct = Bt.data
        p.ldb = Bt.ld
    else:
        p.b_direct = NULL
        p.ldb = p.nr
    p.A = A
    p.M = M
    p.N = N
    p.K = K
    p.mc = _cdiv(MC_TARGET, p.mr) * p.mr
    p.n_pad = _cdiv(N, p.nr) * p.nr
    p.split = _split_k(M, N, K) if split_k else 1
    p.chunk = _cdiv(K, p.split)
    p.m_blocks = _cdiv(M, p.mc)
    p.bias = bias
    p.relu = relu
    cdef int64_t n_panels = _cdiv(N, p.nr)
    # Column blocks only spread work over threads; they change no sum.
    p.n_blocks = 1
    while p.n_blocks < n_panels and p.split * p.m_blocks * p.n_blocks < 4 * nthreads:
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


cdef bint _direct_fits(const Geometry *g) noexcept nogil:
    """Whether the direct kernels' padded copies stay near the input's size. They pad
    each sample to the extent the windows span and split columns into sw stride phases:
    a dilated kernel far larger than the image, or a stride beyond it, would make those
    copies (and loops) huge. The im2col products read such geometry in place."""
    return (g.sh <= g.H + 1 and g.sw <= g.W + 1
            and (g.KH - 1) * g.dh <= 2 * g.H + 64 and (g.KW - 1) * g.dw <= 2 * g.W + 64)


cdef int _forward_kind(const Geometry *g, int64_t F, int is_f32) noexcept nogil:
    if not _direct_fits(g):
        return FWD_GEMM
    if _nhwc_wanted(g, F, is_f32, 0):
        return FWD_NHWC
    if _direct_wanted(g, F, 0):
        return FWD_PLANAR
    return FWD_GEMM


cdef int64_t _forward_scratch_bytes(const Geometry *g, int64_t N, int64_t F, int64_t itemsize,
                                 int nthreads, int is_f32) noexcept nogil:
    cdef Direct d
    cdef Nhwc nd
    cdef int kind = _forward_kind(g, F, is_f32)
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
                        int nthreads) noexcept nogil:
    """y = conv(x, kernel) (+ bias, ReLU) by the path _forward_kind picks; s holds
    _forward_scratch_bytes."""
    cdef Source a, bt
    cdef Direct d
    cdef Nhwc nd
    cdef int kind = _forward_kind(g, F, floating is float)
    if kind == FWD_NHWC:
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
    cdef int64_t g_bytes
    a.kind = SRC_IM2COL_T
    a.data = &x[0, 0, 0, 0]
    a.g = _geometry(x.shape[1], x.shape[2], x.shape[3], dy.shape[1], dy.shape[2],
                    dkernel.shape[0], dkernel.shape[1], sh, sw, ph, pw, dh, dw)
    if _direct_fits(&a.g) and _nhwc_wanted(&a.g, F, floating is float, 1):
        _nhwc_plan(&nd, &a.g, F, floating is float)
        s = _scratch(workspace, _nhwc_scratch_bytes(&nd, N, sizeof(floating), nthreads, 1))
        with nogil:
            _nhwc_kernel_grad(&nd, &x[0, 0, 0, 0], g, mask, &dkernel[0, 0, 0, 0],
                              &dbias[0] if dbias is not None else NULL, N, s, nthreads)
        return
    if _direct_fits(&a.g) and _direct_wanted(&a.g, F, 1):
        _direct_plan(&d, &a.g, F, floating is float)
        s = _scratch(workspace, _direct_scratch_bytes(&d, N, sizeof(floating), nthreads, 1))
        with nogil:
            _direct_kernel_grad(&d, &x[0, 0, 0, 0], g, mask, &dkernel[0, 0, 0, 0],
                                &dbias[0] if dbias is not None else NULL, N, s, nthreads)
        return
    g_bytes = _align(P * F * sizeof(floating)) + ALIGN if mask != NULL else 0
    s = _scratch(workspace, g_bytes + max(
        _gemm_scratch_bytes(K, F, P, _split_k(K, F, P), nthreads, sizeof(floating),
                            floating is float),
        _column_sums_scratch_bytes(P, F, sizeof(floating))))
    if mask != NULL:   # ReLU's backward pass, before the product
        masked = <floating *> _aligned(s)
        s += g_bytes
        with nogil:
            _relu_grad(g, mask, masked, P * F, nthreads)
        g = masked
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
    DIRECT_KGRAD_MAX_F = 8

# 0: choose per layer; 1: always im2col products; 2: direct wherever the SIMD path has it.
cdef int _conv_algorithm = 0
_CONV_ALGORITHMS = ("auto", "gemm", "direct")


def set_conv_algorithm(str name):
    """Force how convolutions run: "gemm" (im2col products only), "direct" (the direct
    kernels wherever the SIMD path has them) or "auto" (per layer, the default). For
    the tests and benchmarks; results agree to rounding, not bitwise."""
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
    cdef int64_t parts = _cdiv(4 * nthreads, N)
    return max(1, min(parts, tiles))


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
    for hp in range(hp0, hp1):
        h = hp - g.ph
        if h < 0 or h >= g.H:
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
    int nvi                 # kernel variant: 0 for tiles 1 vector of channels wide, 1 for 2
    int64_t F, K               # output channels; taps = KH * KW * C, in the kernel's order
    int64_t Hp, Wp             # the padded sample
    int64_t rowstep, colstep, xpad_len
    int64_t mr, nkoff          # pixels or taps per tile; taps rounded up to whole tiles
    int64_t fblk, nfb          # channels per tile (1 or 2 vectors) and tiles across F


cdef bint _nhwc_wanted(const Geometry *g, int64_t F, int is_f32, bint kgrad) noexcept nogil:
    cdef int64_t vw = cnnx_k.vw_f32 if is_f32 else cnnx_k.vw_f64
    if not cnnx_k.direct or _conv_algorithm == 1 or F % vw != 0:
        return False
    # Its kernel gradient keeps a tile of taps in registers through a whole sample: it
    # beat the im2col product at every layer measured (1.2-2.1x). Its forward pass wins
    # only where packing would dominate the product.
    return _conv_algorithm == 2 or kgrad or g.C <= DIRECT_MAX_C


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
    d.nvi = 1 if F % (2 * vw) == 0 else 0
    d.mr = cnnx_k.nk_mr[d.nvi]
    d.nkoff = _cdiv(d.K, d.mr) * d.mr
    d.fblk = (d.nvi + 1) * vw
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
    cdef int64_t tile, p0, i, p, b
    cdef int np
    for tile in range(tile0, tile1):
        p0 = tile * d.mr
        np = <int> min(d.mr, P - p0)
        for i in range(d.mr):
            p = p0 + (i if i < np else 0)
            xb[i] = (p // g.OW) * d.rowstep + (p % g.OW) * d.colstep
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
    """Work items as in _direct_conv."""
    cdef const Geometry *g = &d.g
    cdef int64_t *koff = <int64_t *> _aligned(scratch)
    cdef char *per_thread = <char *> koff + _align(d.nkoff * sizeof(int64_t))
    cdef int64_t xpad_bytes = _align(d.xpad_len * sizeof(floating))
    cdef int64_t tiles = _cdiv(g.OH * g.OW, d.mr)
    cdef int64_t parts = _parts_per_sample(N, tiles, nthreads)
    cdef int64_t per_part = _cdiv(tiles, parts)
    cdef floating *xpad = NULL   # set per thread below
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
            # only the input rows under this item's output rows
            _nhwc_pad(d, x + n * g.H * g.W * g.C, xpad, (t0 * d.mr // g.OW) * g.sh,
                      _rows_end((min(g.OH * g.OW, t1 * d.mr) - 1) // g.OW, g))
            _nhwc_sample_fwd(d, xpad, koff, kernel, bias, y + n * g.OH * g.OW * d.F, relu,
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
                    for kb in range(d.nkoff // d.mr):
                        _nk_kgrad(d.nvi, g.OH, g.OW, d.rowstep, d.colstep, xpad,
                                  koff + kb * d.mr,
                                  <int> min(d.mr, d.K - kb * d.mr),
                                  dy + n * P * d.F + b * d.fblk,
                                  relu_output + n * P * d.F + b * d.fblk if relu_output != NULL else NULL,
                                  d.F, acc + kb * d.mr * d.F + b * d.fblk,
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


# ---------------------------------------------------------------------------------
# Dense
# ---------------------------------------------------------------------------------

def dense(const floating[:, ::1] x, const floating[:, ::1] kernel, const floating[::1] bias,
          floating[:, ::1] y, bint relu, int nthreads, workspace):
    """y = x @ kernel (+ bias, ReLU). x: (B, I), kernel: (I, O), y: (B, O)."""
    cdef int64_t B = x.shape[0], I = x.shape[1], O = kernel.shape[1]
    cdef Source a = _matrix(SRC_ROWS, &x[0, 0], I)
    cdef Source bt = _matrix(SRC_COLS, &kernel[0, 0], O)
    cdef char *s = _scratch(workspace, _gemm_scratch_bytes(B, O, I, 1, nthreads,
                                                           sizeof(floating), floating is float))
    cdef const floating *b = &bias[0] if bias is not None else NULL
    with nogil:
        _gemm(&a, &bt, &y[0, 0], O, B, O, I, b, relu, 0, s, nthreads)


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


# ---------------------------------------------------------------------------------
# Elementwise
# ---------------------------------------------------------------------------------

def relu(const floating[::1] x, floating[::1] y, int nthreads):
    """y = x where x > 0, else 0 (NaN passes through). y may be x."""
    cdef Py_ssize_t i
    cdef floating v
    with nogil:
        for i in prange(x.shape[0], num_threads=nthreads, schedule="static"):
            v = x[i]
            y[i] = 0 if v <= 0 else v


def relu_grad(const floating[::1] dy, const floating[::1] x, floating[::1] dx, int nthreads):
    """dx = dy where x > 0, else 0. x may be ReLU's input or its output."""
    if dy.shape[0] == 0:
        return
    with nogil:
        _relu_grad(&dy[0], &x[0], &dx[0], dy.shape[0], nthreads)


cdef void _relu_grad(const floating *dy, const floating *x, floating *dx, int64_t n,
                     int nthreads) noexcept nogil:
    cdef int64_t i
    cdef floating g
    for i in prange(n, num_threads=nthreads, schedule="static"):
        g = dy[i]  # loaded unconditionally, so the select needs no branch
        dx[i] = g if x[i] > 0 else 0


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
    cdef int64_t N = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef int64_t OH = y.shape[1], OW = y.shape[2]
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
    with nogil:
        for row in prange(N * OH, num_threads=nthreads, schedule="static"):
            n = row // OH
            oh = row - n * OH
            h0 = max(oh * sh - ph, 0)
            h1 = min(oh * sh - ph + KH, H)
            if vector_path:   # the SIMD row kernel of _pool_template.h
                if floating is float:
                    cnnx_k.mp_f32(&x[n, 0, 0, 0], W, C, h0, h1, OW, KW, sw, pw,
                                &y[n, oh, 0, 0], &argmax[n, oh, 0, 0], (N - n) * H * W * C)
                else:
                    cnnx_k.mp_f64(&x[n, 0, 0, 0], W, C, h0, h1, OW, KW, sw, pw,
                                &y[n, oh, 0, 0], &argmax[n, oh, 0, 0], (N - n) * H * W * C)
                continue
            for ow in range(OW):
                w0 = max(ow * sw - pw, 0)
                w1 = min(ow * sw - pw + KW, W)
                best = &y[n, oh, ow, 0]
                arg = &argmax[n, oh, ow, 0]
                base = (h0 * W + w0) * C
                src = &x[n, h0, w0, 0]
                for c in range(C):
                    best[c] = src[c]
                    arg[c] = <int32_t> (base + c)
                for h in range(h0, h1):
                    for w in range(w0, w1):
                        base = (h * W + w) * C
                        src = &x[n, h, w, 0]
                        for c in range(C):
                            v = src[c]
                            b = best[c]
                            # Branch-free select (random data mispredicts a branch half
                            # the time). The first NaN wins and stays, as in np.max.
                            take = (v > b) | ((v != v) & (b == b))
                            best[c] = v if take else b
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


# ---------------------------------------------------------------------------------
# Softmax and the cross-entropies, from logits
# ---------------------------------------------------------------------------------

cdef inline floating _softmax_row(const floating *z, floating *p, int64_t K) noexcept nogil:
    """p = softmax(z); returns log(sum(exp(z - max))) + max, the log-sum-exp."""
    cdef int64_t j
    cdef floating m = z[0], s = 0
    for j in range(1, K):
        if z[j] > m or z[j] != z[j]:
            m = z[j]
    for j in range(K):
        p[j] = exp(z[j] - m)
        s = s + p[j]
    for j in range(K):
        p[j] = p[j] / s
    return m + log(s)


def softmax(const floating[:, ::1] z, floating[:, ::1] p, int nthreads):
    """Row-wise softmax, shifted by the row maximum for stability."""
    cdef int64_t i
    with nogil:
        for i in prange(z.shape[0], num_threads=nthreads, schedule="static"):
            _softmax_row(&z[i, 0], &p[i, 0], z.shape[1])


def softmax_cross_entropy(const floating[:, ::1] logits, const floating[:, ::1] targets,
                          floating[::1] loss, floating[:, ::1] grad, int nthreads):
    """loss[i] = logsumexp(z_i) - sum_j t_ij z_ij  (= -sum t log softmax(z) when the
    targets sum to 1); grad = softmax(z) - t, per sample (unscaled by the batch)."""
    cdef int64_t i, j, K = logits.shape[1]
    cdef floating lse, tsum, dot
    with nogil:
        for i in prange(logits.shape[0], num_threads=nthreads, schedule="static"):
            lse = _softmax_row(&logits[i, 0], &grad[i, 0], K)
            tsum = 0
            dot = 0
            for j in range(K):
                tsum = tsum + targets[i, j]
                dot = dot + targets[i, j] * logits[i, j]
                grad[i, j] = grad[i, j] - targets[i, j]
            loss[i] = tsum * lse - dot


def sigmoid_cross_entropy(const floating[::1] logits, const floating[::1] targets,
                          floating[::1] loss, floating[::1] grad, int nthreads):
    """Elementwise: loss = max(z, 0) - z t + log1p(exp(-|z|)); grad = sigmoid(z) - t."""
    cdef Py_ssize_t i
    cdef floating z, e
    with nogil:
        for i in prange(logits.shape[0], num_threads=nthreads, schedule="static"):
            z = logits[i]
            e = exp(-fabs(z))
            loss[i] = (z if z > 0 else 0) - z * targets[i] + log1p(e)
            grad[i] = (1 / (1 + e) if z >= 0 else e / (1 + e)) - targets[i]


def sigmoid(const floating[::1] x, floating[::1] y, int nthreads):
    """y = 1 / (1 + exp(-x)), computed without overflow for either sign."""
    cdef Py_ssize_t i
    cdef floating e, v
    with nogil:
        for i in prange(x.shape[0], num_threads=nthreads, schedule="static"):
            v = x[i]
            e = exp(-fabs(v))
            y[i] = 1 / (1 + e) if v >= 0 else e / (1 + e)


if cnnx_simd_select(NULL) != 0:  # pragma: no cover - the generic path always exists
    raise ImportError("cnnx: no SIMD path could be selected")


# ---------------------------------------------------------------------------------
# Optimizer updates, in place, with Keras's update rules. Scalars arrive resolved
# (learning rate of this step, bias corrections); `g` is the gradient.
# ---------------------------------------------------------------------------------

def sgd_update(floating[::1] w, const floating[::1] g, floating[::1] m, double lr,
               double momentum, bint nesterov, int nthreads):
    """momentum == 0: w -= lr g. Otherwise m = momentum m - lr g, then
    w += m, or w += momentum m - lr g with nesterov."""
    cdef Py_ssize_t i
    cdef floating mi
    with nogil:
        if momentum == 0:
            for i in prange(w.shape[0], num_threads=nthreads, schedule="static"):
                w[i] = w[i] - <floating> lr * g[i]
        else:
            for i in prange(w.shape[0], num_threads=nthreads, schedule="static"):
                mi = <floating> momentum * m[i] - <floating> lr * g[i]
                m[i] = mi
                if nesterov:
                    w[i] = w[i] + <floating> momentum * mi - <floating> lr * g[i]
                else:
                    w[i] = w[i] + mi


def adam_update(floating[::1] w, const floating[::1] g, floating[::1] m, floating[::1] v,
                double lr_t, double beta1, double beta2, double epsilon,
                double decay, int nthreads):
    """Keras's Adam: m += (g - m)(1 - beta1); v += (g^2 - v)(1 - beta2);
    w -= lr_t m / (sqrt(v) + epsilon), where lr_t carries the bias corrections.
    decay > 0 (AdamW) first scales w by (1 - decay), decay = weight_decay * lr."""
    cdef Py_ssize_t i
    cdef floating gi, mi, vi
    with nogil:
        for i in prange(w.shape[0], num_threads=nthreads, schedule="static"):
            gi = g[i]
            if decay != 0:
                w[i] = w[i] - w[i] * <floating> decay
            mi = m[i] + (gi - m[i]) * <floating> (1 - beta1)
            vi = v[i] + (gi * gi - v[i]) * <floating> (1 - beta2)
            m[i] = mi
            v[i] = vi
            w[i] = w[i] - <floating> lr_t * mi / (sqrt(vi) + <floating> epsilon)


def rmsprop_update(floating[::1] w, const floating[::1] g, floating[::1] v, floating[::1] m,
                   double lr, double rho, double momentum, double epsilon, int nthreads):
    """Keras's RMSprop: v = rho v + (1 - rho) g^2; step = lr g / sqrt(v + epsilon)
    (epsilon inside the root); with momentum m = momentum m + step, w -= m; else w -= step."""
    cdef Py_ssize_t i
    cdef floating gi, vi, step
    with nogil:
        for i in prange(w.shape[0], num_threads=nthreads, schedule="static"):
            gi = g[i]
            vi = <floating> rho * v[i] + <floating> (1 - rho) * gi * gi
            v[i] = vi
            step = <floating> lr * gi / sqrt(vi + <floating> epsilon)
            if momentum != 0:
                step = <floating> momentum * m[i] + step
                m[i] = step
            w[i] = w[i] - step


def adagrad_update(floating[::1] w, const floating[::1] g, floating[::1] acc, double lr,
                   double epsilon, int nthreads):
    """Keras's Adagrad: acc += g^2; w -= lr g / sqrt(acc + epsilon)."""
    cdef Py_ssize_t i
    cdef floating gi, ai
    with nogil:
        for i in prange(w.shape[0], num_threads=nthreads, schedule="static"):
            gi = g[i]
            ai = acc[i] + gi * gi
            acc[i] = ai
            w[i] = w[i] - <floating> lr * gi / sqrt(ai + <floating> epsilon)


def adamax_update(floating[::1] w, const floating[::1] g, floating[::1] m, floating[::1] u,
                  double lr_t, double beta1, double beta2, double epsilon, int nthreads):
    """Keras's Adamax: m += (g - m)(1 - beta1); u = max(beta2 u, |g|);
    w -= lr_t m / (u + epsilon), where lr_t = lr / (1 - beta1^t)."""
    cdef Py_ssize_t i
    cdef floating gi, mi, ui
    with nogil:
        for i in prange(w.shape[0], num_threads=nthreads, schedule="static"):
            gi = g[i]
            mi = m[i] + (gi - m[i]) * <floating> (1 - beta1)
            ui = u[i] * <floating> beta2
            if fabs(gi) > ui:
                ui = fabs(gi)
            m[i] = mi
            u[i] = ui
            w[i] = w[i] - <floating> lr_t * mi / (ui + <floating> epsilon)


def adadelta_update(floating[::1] w, const floating[::1] g, floating[::1] acc_grad,
                    floating[::1] acc_delta, double lr, double rho, double epsilon,
                    int nthreads):
    """Keras's Adadelta: acc_grad = rho acc_grad + (1 - rho) g^2;
    delta = -sqrt(acc_delta + eps) / sqrt(acc_grad + eps) g;
    acc_delta = rho acc_delta + (1 - rho) delta^2; w += lr delta."""
    cdef Py_ssize_t i
    cdef floating gi, ag, delta
    with nogil:
        for i in prange(w.shape[0], num_threads=nthreads, schedule="static"):
            gi = g[i]
            ag = <floating> rho * acc_grad[i] + <floating> (1 - rho) * gi * gi
            delta = -sqrt(acc_delta[i] + <floating> epsilon) / sqrt(ag + <floating> epsilon) * gi
            acc_grad[i] = ag
            acc_delta[i] = <floating> rho * acc_delta[i] + <floating> (1 - rho) * delta * delta
            w[i] = w[i] + <floating> lr * delta


def lion_update(floating[::1] w, const floating[::1] g, floating[::1] m, double lr,
                double beta1, double beta2, int nthreads):
    """Keras's Lion: w -= lr sign(beta1 m + (1 - beta1) g); m = beta2 m + (1 - beta2) g."""
    cdef Py_ssize_t i
    cdef floating gi, c, s
    with nogil:
        for i in prange(w.shape[0], num_threads=nthreads, schedule="static"):
            gi = g[i]
            c = m[i] * <floating> beta1 + gi * <floating> (1 - beta1)
            s = 1 if c > 0 else (-1 if c < 0 else 0)
            w[i] = w[i] - <floating> lr * s
            m[i] = m[i] * <floating> beta2 + gi * <floating> (1 - beta2)


def nadam_update(floating[::1] w, const floating[::1] g, floating[::1] m, floating[::1] v,
                 double lr, double beta1, double beta2, double epsilon, double u_t,
                 double u_t_1, double u_product_t, double u_product_t_1,
                 double beta2_power, int nthreads):
    """Keras's Nadam, with the step's momentum-schedule scalars computed by the caller:
    m += (g - m)(1 - beta1); v += (g^2 - v)(1 - beta2);
    m_hat = u_t_1 m / (1 - u_product_t_1) + (1 - u_t) g / (1 - u_product_t);
    w -= lr m_hat / (sqrt(v / (1 - beta2_power)) + epsilon)."""
    cdef Py_ssize_t i
    cdef floating gi, mi, vi, m_hat
    with nogil:
        for i in prange(w.shape[0], num_threads=nthreads, schedule="static"):
            gi = g[i]
            mi = m[i] + (gi - m[i]) * <floating> (1 - beta1)
            vi = v[i] + (gi * gi - v[i]) * <floating> (1 - beta2)
            m[i] = mi
            v[i] = vi
            m_hat = (<floating> u_t_1 * mi / <floating> (1 - u_product_t_1)
                     + <floating> (1 - u_t) * gi / <floating> (1 - u_product_t))
            w[i] = w[i] - <floating> lr * m_hat / (
                sqrt(vi / <floating> (1 - beta2_power)) + <floating> epsilon)


# ---------------------------------------------------------------------------------
# Depthwise convolution (_depthwise_template.h: vectorised over channels)
# ---------------------------------------------------------------------------------

cdef enum:
    DW_CHUNK = 4      # samples per partial of the kernel gradient: set by the shape alone


def depthwise_conv2d(const floating[:, :, :, ::1] x, const floating[:, :, ::1] kernel,
                     const floating[::1] bias, floating[:, :, :, ::1] y,
                     int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw,
                     int nthreads):
    """y[n, oh, ow, c] = bias[c] + sum over taps of x[n, ih, iw, c] * kernel[i, j, c],
    one output row per work item."""
    cdef int64_t N = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef int64_t KH = kernel.shape[0], KW = kernel.shape[1]
    cdef int64_t OH = y.shape[1], OW = y.shape[2]
    cdef int64_t row, n
    cdef const floating *b = &bias[0] if bias is not None else NULL
    if N * OH == 0 or C == 0:
        return
    with nogil:
        for row in prange(N * OH, num_threads=nthreads, schedule="static"):
            n = row // OH
            if floating is float:
                cnnx_k.dw_fwd_f32(&x[n, 0, 0, 0], H, W, C, &kernel[0, 0, 0], KH, KW, sh, sw,
                                  ph, pw, dh, dw, row - n * OH, OW, b, &y[n, row - n * OH, 0, 0])
            else:
                cnnx_k.dw_fwd_f64(&x[n, 0, 0, 0], H, W, C, &kernel[0, 0, 0], KH, KW, sh, sw,
                                  ph, pw, dh, dw, row - n * OH, OW, b, &y[n, row - n * OH, 0, 0])


def depthwise_conv2d_input_grad(const floating[:, :, :, ::1] dy,
                                const floating[:, :, ::1] kernel,
                                floating[:, :, :, ::1] dx, int64_t sh, int64_t sw,
                                int64_t ph, int64_t pw, int64_t dh, int64_t dw, int nthreads):
    """dx = dy scattered back through the taps, one sample per work item (no two items
    write the same element)."""
    cdef int64_t N = dx.shape[0], H = dx.shape[1], W = dx.shape[2], C = dx.shape[3]
    cdef int64_t OH = dy.shape[1], OW = dy.shape[2]
    cdef int64_t KH = kernel.shape[0], KW = kernel.shape[1]
    cdef int64_t n
    if N * H * W * C == 0:
        return
    if OH * OW == 0:
        dx[...] = 0
        return
    with nogil:
        for n in prange(N, num_threads=nthreads, schedule="static"):
            if floating is float:
                cnnx_k.dw_dx_f32(&dy[n, 0, 0, 0], OH, OW, C, &kernel[0, 0, 0], KH, KW, sh, sw,
                                 ph, pw, dh, dw, H, W, &dx[n, 0, 0, 0])
            else:
                cnnx_k.dw_dx_f64(&dy[n, 0, 0, 0], OH, OW, C, &kernel[0, 0, 0], KH, KW, sh, sw,
                                 ph, pw, dh, dw, H, W, &dx[n, 0, 0, 0])


def depthwise_conv2d_kernel_grad(const floating[:, :, :, ::1] x,
                                 const floating[:, :, :, ::1] dy,
                                 floating[:, :, ::1] dkernel, floating[::1] dbias,
                                 int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh,
                                 int64_t dw, int nthreads, workspace):
    """dkernel[i, j, c] = sum over n, oh, ow of dy * x at the tap; dbias[c] = sum of dy
    (skipped when dbias is None). The batch is cut into chunks of DW_CHUNK samples, each
    summed in sample order into its own partial; the partials are added in chunk order:
    the same bits for any thread count."""
    cdef int64_t N = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef int64_t OH = dy.shape[1], OW = dy.shape[2]
    cdef int64_t KH = dkernel.shape[0], KW = dkernel.shape[1]
    cdef int64_t K = KH * KW * C, stride = K + C
    cdef int64_t nchunks = _cdiv(N, DW_CHUNK)
    cdef int64_t ch, n, e
    cdef bint with_bias = dbias is not None
    cdef floating *part
    cdef floating *partial
    if nchunks == 0 or OH * OW == 0:
        dkernel[...] = 0
        if with_bias:
            dbias[...] = 0
        return
    partial = <floating *> _aligned(_scratch(workspace, nchunks * stride * sizeof(floating)
                                             + ALIGN))
    with nogil:
        for ch in prange(nchunks, num_threads=nthreads, schedule="static"):
            part = partial + ch * stride
            for e in range(stride):
                part[e] = 0
            for n in range(ch * DW_CHUNK, min(N, (ch + 1) * DW_CHUNK)):
                if floating is float:
                    cnnx_k.dw_dk_f32(&x[n, 0, 0, 0], H, W, C, &dy[n, 0, 0, 0], OH, OW, KH,
                                     KW, sh, sw, ph, pw, dh, dw, part,
                                     part + K if with_bias else NULL)
                else:
                    cnnx_k.dw_dk_f64(&x[n, 0, 0, 0], H, W, C, &dy[n, 0, 0, 0], OH, OW, KH,
                                     KW, sh, sw, ph, pw, dh, dw, part,
                                     part + K if with_bias else NULL)
    if K:
        _sum_chunks(partial, nchunks, stride, 1, K, K, &dkernel[0, 0, 0], nthreads)
    if with_bias and C:
        _sum_chunks(partial + K, nchunks, stride, 1, C, C, &dbias[0], nthreads)


# ---------------------------------------------------------------------------------
# Group statistics normalization (LayerNormalization, GroupNormalization)
# ---------------------------------------------------------------------------------
# x is seen as (N, P, G, K): N independent samples (rows), P positions, G groups of K
# channels; each (n, g) is normalized over its P * K values, then channel c = g * K + k
# is scaled by gamma[c] and shifted by beta[c]. LayerNormalization is P = G = 1;
# GroupNormalization is P = height * width.

cdef enum:
    NORM_CHUNK = 16     # samples per partial of the gamma / beta gradients


def group_norm(const floating[:, :, :, ::1] x, const floating[::1] gamma,
               const floating[::1] beta, double epsilon, floating[:, :, :, ::1] y,
               floating[:, ::1] mean, floating[:, ::1] rstd, int nthreads):
    """y = (x - mean) * rstd * gamma + beta per (sample, group); mean and rstd =
    1 / sqrt(var + epsilon) (N x G) are kept for the backward pass. Two passes (the mean,
    then the centred squares), in a fixed order per (sample, group)."""
    cdef int64_t N = x.shape[0], P = x.shape[1], G = x.shape[2], K = x.shape[3]
    cdef int64_t item, n, g, p, k
    cdef double s, d, m, r
    cdef floating mf, rf
    cdef const floating *row
    cdef floating *out
    cdef bint has_gamma = gamma is not None, has_beta = beta is not None
    if N * G == 0:
        return
    with nogil:
        for item in prange(N * G, num_threads=nthreads, schedule="static"):
            n = item // G
            g = item - n * G
            s = 0
            for p in range(P):
                row = &x[n, p, g, 0]
                for k in range(K):
                    s = s + row[k]
            m = s / (P * K) if P * K else 0.0
            s = 0
            for p in range(P):
                row = &x[n, p, g, 0]
                for k in range(K):
                    d = row[k] - m
                    s = s + d * d
            r = 1.0 / sqrt(s / (P * K) + epsilon) if P * K else 0.0
            mf = <floating> m
            rf = <floating> r
            mean[n, g] = mf
            rstd[n, g] = rf
            for p in range(P):
                row = &x[n, p, g, 0]
                out = &y[n, p, g, 0]
                for k in range(K):
                    out[k] = (row[k] - mf) * rf
                    if has_gamma:
                        out[k] = out[k] * gamma[g * K + k]
                    if has_beta:
                        out[k] = out[k] + beta[g * K + k]


def group_norm_grad(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] dy,
                    const floating[::1] gamma, const floating[:, ::1] mean,
                    const floating[:, ::1] rstd, floating[:, :, :, ::1] dx,
                    floating[::1] dgamma, floating[::1] dbeta, int nthreads, workspace):
    """dx per (sample, group): rstd / M * (M g - sum g - xhat sum g xhat), g = dy * gamma,
    M = P * K (skipped when dx is None); dgamma = sum of dy * xhat and dbeta = sum of dy
    over samples and positions, in fixed chunks of NORM_CHUNK samples added in order
    (skipped when None)."""
    cdef int64_t N = x.shape[0], P = x.shape[1], G = x.shape[2], K = x.shape[3]
    cdef int64_t C = G * K, M = P * K
    cdef int64_t item, n, g, p, k, ch, e, nchunks
    cdef double s1, s2, xh, gk
    cdef floating m, r
    cdef floating *part
    cdef floating *partial
    cdef bint has_gamma = gamma is not None
    if dx is not None and N * G > 0 and M > 0:
        with nogil:
            for item in prange(N * G, num_threads=nthreads, schedule="static"):
                n = item // G
                g = item - n * G
                m = mean[n, g]
                r = rstd[n, g]
                s1 = 0
                s2 = 0
                for p in range(P):
                    for k in range(K):
                        gk = dy[n, p, g, k] * (gamma[g * K + k] if has_gamma else 1)
                        s1 = s1 + gk
                        s2 = s2 + gk * (x[n, p, g, k] - m) * r
                for p in range(P):
                    for k in range(K):
                        gk = dy[n, p, g, k] * (gamma[g * K + k] if has_gamma else 1)
                        xh = (x[n, p, g, k] - m) * r
                        dx[n, p, g, k] = <floating> (r * (gk - s1 / M - xh * s2 / M))
    if dgamma is None and dbeta is None:
        return
    nchunks = _cdiv(N, NORM_CHUNK)
    if nchunks == 0 or C == 0:
        if dgamma is not None:
            dgamma[...] = 0
        if dbeta is not None:
            dbeta[...] = 0
        return
    partial = <floating *> _aligned(_scratch(workspace, nchunks * 2 * C * sizeof(floating)
                                             + ALIGN))
    with nogil:
        for ch in prange(nchunks, num_threads=nthreads, schedule="static"):
            part = partial + ch * 2 * C
            for e in range(2 * C):
                part[e] = 0
            for n in range(ch * NORM_CHUNK, min(N, (ch + 1) * NORM_CHUNK)):
                for p in range(P):
                    for g in range(G):
                        m = mean[n, g]
                        r = rstd[n, g]
                        for k in range(K):
                            part[g * K + k] = part[g * K + k] + dy[n, p, g, k] * (
                                x[n, p, g, k] - m) * r
                            part[C + g * K + k] = part[C + g * K + k] + dy[n, p, g, k]
    if dgamma is not None:
        _sum_chunks(partial, nchunks, 2 * C, 1, C, C, &dgamma[0], nthreads)
    if dbeta is not None:
        _sum_chunks(partial + C, nchunks, 2 * C, 1, C, C, &dbeta[0], nthreads)


# ---------------------------------------------------------------------------------
# Batch normalization over rows (BatchNormalization: statistics per channel)
# ---------------------------------------------------------------------------------
# x is seen as (R, C): R rows (samples x positions), C channels. The per-channel sums
# over rows are cut into chunks of BN_CHUNK rows, each summed in double precision in row
# order into its own partial, and the partials added in chunk order: the same bits for
# any thread count.

cdef enum:
    BN_CHUNK = 256


cdef void _bn_partial_sums(const floating *x, const double *centre, int64_t R, int64_t C,
                           bint square, double *partial, int nthreads) noexcept nogil:
    """partial[ch, c] = sum over the chunk's rows of x (or of (x - centre)^2)."""
    cdef int64_t nchunks = _cdiv(R, BN_CHUNK), ch, i, c
    cdef double *part
    cdef double d
    with parallel(num_threads=nthreads):
        for ch in prange(nchunks, schedule="static"):
            part = partial + ch * C
            for c in range(C):
                part[c] = 0
            for i in range(ch * BN_CHUNK, min(R, (ch + 1) * BN_CHUNK)):
                if square:
                    for c in range(C):
                        d = x[i * C + c] - centre[c]
                        part[c] = part[c] + d * d
                else:
                    for c in range(C):
                        part[c] = part[c] + x[i * C + c]


cdef void _bn_chunk_total(const double *partial, int64_t nchunks, int64_t C,
                          double *out) noexcept nogil:
    cdef int64_t ch, c
    for c in range(C):
        out[c] = 0
    for ch in range(nchunks):
        for c in range(C):
            out[c] = out[c] + partial[ch * C + c]


def batch_norm_moments(const floating[:, ::1] x, floating[::1] mean, floating[::1] var,
                       int nthreads, workspace):
    """The mean and (biased) variance of each column of x, in two passes."""
    cdef int64_t R = x.shape[0], C = x.shape[1], c
    cdef int64_t nchunks = _cdiv(R, BN_CHUNK)
    cdef double *partial
    cdef double *total
    if C == 0:
        return
    if R == 0:
        mean[...] = 0
        var[...] = 0
        return
    partial = <double *> _aligned(_scratch(workspace, (nchunks + 2) * C * sizeof(double)
                                           + ALIGN))
    total = partial + nchunks * C
    with nogil:
        _bn_partial_sums(&x[0, 0], NULL, R, C, False, partial, nthreads)
        _bn_chunk_total(partial, nchunks, C, total)
        for c in range(C):
            total[c] = total[c] / R
            mean[c] = <floating> total[c]
        _bn_partial_sums(&x[0, 0], total, R, C, True, partial, nthreads)
        _bn_chunk_total(partial, nchunks, C, total + C)
        for c in range(C):
            var[c] = <floating> (total[C + c] / R)


def batch_norm_apply(const floating[:, ::1] x, const floating[::1] scale,
                     const floating[::1] shift, floating[:, ::1] y, int nthreads):
    """y = x * scale + shift per column (the normalization and its affine map, folded)."""
    cdef int64_t R = x.shape[0], C = x.shape[1], i, c
    with nogil:
        for i in prange(R, num_threads=nthreads, schedule="static"):
            for c in range(C):
                y[i, c] = x[i, c] * scale[c] + shift[c]


def batch_norm_grad(const floating[:, ::1] x, const floating[:, ::1] dy,
                    const floating[::1] mean, const floating[::1] rstd,
                    const floating[::1] gamma, bint training, floating[:, ::1] dx,
                    floating[::1] dgamma, floating[::1] dbeta, int nthreads, workspace):
    """dbeta = sum dy, dgamma = sum dy * xhat (xhat = (x - mean) * rstd), per column;
    dx = gamma * rstd * (dy - (dbeta + xhat * dgamma) / R) with batch statistics
    (training), or gamma * rstd * dy with fixed ones. Any output may be None."""
    cdef int64_t R = x.shape[0], C = x.shape[1], i, c, ch
    cdef int64_t nchunks = _cdiv(R, BN_CHUNK)
    cdef double *partial
    cdef double *s1
    cdef double *s2
    cdef double *part
    cdef double g
    cdef floating a, xh
    cdef bint has_gamma = gamma is not None
    if C == 0:
        return
    if R == 0:
        if dgamma is not None:
            dgamma[...] = 0
        if dbeta is not None:
            dbeta[...] = 0
        return
    partial = <double *> _aligned(_scratch(workspace, (2 * nchunks + 2) * C * sizeof(double)
                                           + ALIGN))
    s1 = partial + 2 * nchunks * C
    s2 = s1 + C
    with nogil:
        with parallel(num_threads=nthreads):
            for ch in prange(nchunks, schedule="static"):
                part = partial + 2 * ch * C
                for c in range(2 * C):
                    part[c] = 0
                for i in range(ch * BN_CHUNK, min(R, (ch + 1) * BN_CHUNK)):
                    for c in range(C):
                        g = dy[i, c]
                        part[c] = part[c] + g
                        part[C + c] = part[C + c] + g * (x[i, c] - mean[c]) * rstd[c]
        for c in range(C):
            s1[c] = 0
            s2[c] = 0
        for ch in range(nchunks):
            for c in range(C):
                s1[c] = s1[c] + partial[2 * ch * C + c]
                s2[c] = s2[c] + partial[2 * ch * C + C + c]
    if dbeta is not None:
        for c in range(C):
            dbeta[c] = <floating> s1[c]
    if dgamma is not None:
        for c in range(C):
            dgamma[c] = <floating> s2[c]
    if dx is None:
        return
    with nogil:
        for i in prange(R, num_threads=nthreads, schedule="static"):
            for c in range(C):
                a = (gamma[c] if has_gamma else 1) * rstd[c]
                if training:
                    xh = (x[i, c] - mean[c]) * rstd[c]
                    dx[i, c] = a * (dy[i, c] - <floating> ((s1[c] + xh * s2[c]) / R))
                else:
                    dx[i, c] = a * dy[i, c]


def ftrl_update(floating[::1] w, const floating[::1] g, floating[::1] accum,
                floating[::1] linear, double lr, double lr_power, double l1, double l2,
                double l2_shrinkage, int nthreads):
    """Keras 3's FTRL-proximal step: n' = n + g^2; z += g + 2 l2_shrinkage w
    - (n'^-p - n^-p) / lr * w; w = (clip(z, -l1, l1) - z) / (n'^-p / lr + 2 l2); n = n'
    (p = lr_power; l2 already holds beta / (2 lr))."""
    cdef Py_ssize_t i
    cdef double gi, wi, ni, nn, zi, pn
    with nogil:
        for i in prange(w.shape[0], num_threads=nthreads, schedule="static"):
            gi = g[i]
            wi = w[i]
            ni = accum[i]
            nn = ni + gi * gi
            pn = pow(nn, -lr_power)
            zi = linear[i] + gi + 2 * l2_shrinkage * wi - (pn - pow(ni, -lr_power)) / lr * wi
            linear[i] = <floating> zi
            w[i] = <floating> ((min(max(zi, -l1), l1) - zi) / (pn / lr + 2 * l2))
            accum[i] = <floating> nn

/* Batch normalization over rows of C channels (x seen as R x C), instantiated once per
 * (dtype, ISA): the per-column sums of one chunk of rows, in double, and the two
 * elementwise passes. Plain C loops over the columns, contiguous and `restrict`, which
 * the compiler vectorises under the path's flags (the Cython module itself is compiled
 * for the baseline ISA). Each column's sum runs over the chunk's rows in order: the
 * Cython drivers cut the rows into fixed chunks and add the chunks in order, so the
 * bits do not depend on the thread count.
 *
 * A fused ReLU's mask zeroes dy where the ReLU's output was not > 0 (NaN in dy
 * included), as relu_grad does: relu_affine (or NULL) holds the forward's scale, then
 * shift (2 x C), and the mask is recomputed from x by _apply's own multiply-add, which
 * saves reading a third array in each pass. Every load is unconditional, so the select
 * needs no branch.
 *
 * Include after defining BN_NAME and BN_T.
 */
#ifndef BN_CB
#  define BN_CB 16                  /* columns whose sums stay in registers */
#  define BN_GROUP CNNX_BN_GROUP    /* rows masked at a time, into _grad_sums' scratch */
#endif

/* s1[c] = sum over the rows of d = x[., c] - shift[c], s2[c] = sum of d^2: a chunk's
 * share of the mean and variance in one pass (shift is one row of x, so d is of the
 * data's spread and s2 / n - (s1 / n)^2 loses no digits a float32 or float64 keeps).
 * Blocks of BN_CB columns keep their sums in registers across the rows (a sum kept in
 * memory is a store-to-load chain per row); every sum still runs in row order. */
static void CNNX_CAT(BN_NAME, _sums)(const BN_T *restrict x, int64_t rows, int64_t C,
                                      const double *restrict shift, double *restrict s1,
                                      double *restrict s2)
{
    int64_t c0 = 0;
    for (; c0 + BN_CB <= C; c0 += BN_CB) {
        double a1[BN_CB] = {0}, a2[BN_CB] = {0}, m[BN_CB];
        for (int c = 0; c < BN_CB; ++c) m[c] = shift[c0 + c];
        for (int64_t i = 0; i < rows; ++i) {
            const BN_T *restrict row = x + i * C + c0;
            for (int c = 0; c < BN_CB; ++c) {
                const double d = (double)row[c] - m[c];
                a1[c] += d;
                a2[c] += d * d;
            }
        }
        for (int c = 0; c < BN_CB; ++c) {
            s1[c0 + c] = a1[c];
            s2[c0 + c] = a2[c];
        }
    }
    for (int64_t c = c0; c < C; ++c) s1[c] = s2[c] = 0;
    for (int64_t i = 0; i < rows && c0 < C; ++i) {
        const BN_T *restrict row = x + i * C;
        for (int64_t c = c0; c < C; ++c) {
            const double d = (double)row[c] - shift[c];
            s1[c] += d;
            s2[c] += d * d;
        }
    }
}

/* Adds sum of g and of g * (x - mean) over n rows into s1, s2 (g: n x C, as dy): blocks
 * of BN_CB columns in registers, as in _sums. */
static inline void CNNX_CAT(BN_NAME, _add_grad_sums)(const BN_T *restrict x,
                                                      const BN_T *restrict g,
                                                      const BN_T *restrict mean, int64_t n,
                                                      int64_t C, double *restrict s1,
                                                      double *restrict s2)
{
    int64_t c0 = 0;
    for (; c0 + BN_CB <= C; c0 += BN_CB) {
        double a1[BN_CB], a2[BN_CB], m[BN_CB];
        for (int c = 0; c < BN_CB; ++c) {
            a1[c] = s1[c0 + c];
            a2[c] = s2[c0 + c];
            m[c] = mean[c0 + c];
        }
        for (int64_t i = 0; i < n; ++i) {
            const BN_T *restrict xr = x + i * C + c0;
            const BN_T *restrict gr = g + i * C + c0;
            for (int c = 0; c < BN_CB; ++c) {
                a1[c] += (double)gr[c];
                a2[c] += (double)gr[c] * ((double)xr[c] - m[c]);
            }
        }
        for (int c = 0; c < BN_CB; ++c) {
            s1[c0 + c] = a1[c];
            s2[c0 + c] = a2[c];
        }
    }
    for (int64_t i = 0; i < n && c0 < C; ++i)
        for (int64_t c = c0; c < C; ++c) {
            s1[c] += (double)g[i * C + c];
            s2[c] += (double)g[i * C + c] * ((double)x[i * C + c] - (double)mean[c]);
        }
}

/* s1[c] = sum of g, s2[c] = sum of g * (x - mean) over the rows, g = dy (masked), each in
 * row order. The mask goes first into `scratch` (BN_GROUP x C values), BN_GROUP rows at
 * a time, in one flat loop: with the select inside the sums' loop, gcc compiled a
 * scalar loop with a (mispredicted) branch. */
static void CNNX_CAT(BN_NAME, _grad_sums)(const BN_T *restrict x, const BN_T *restrict dy,
                                           const BN_T *restrict relu_affine,
                                           const BN_T *restrict mean, int64_t rows,
                                           int64_t C, double *restrict s1,
                                           double *restrict s2, BN_T *restrict scratch)
{
    for (int64_t c = 0; c < C; ++c) s1[c] = s2[c] = 0;
    if (!relu_affine) {
        CNNX_CAT(BN_NAME, _add_grad_sums)(x, dy, mean, rows, C, s1, s2);
        return;
    }
    const BN_T *restrict scale = relu_affine, *restrict shift = relu_affine + C;
    for (int64_t r0 = 0; r0 < rows; r0 += BN_GROUP) {
        const int64_t n = rows - r0 < BN_GROUP ? rows - r0 : BN_GROUP;
        for (int64_t i = 0; i < n; ++i) {
            const BN_T *restrict xr = x + (r0 + i) * C;
            const BN_T *restrict dr = dy + (r0 + i) * C;
            for (int64_t c = 0; c < C; ++c) {
                const BN_T v = dr[c];
                scratch[i * C + c] = xr[c] * scale[c] + shift[c] > 0 ? v : (BN_T)0;
            }
        }
        CNNX_CAT(BN_NAME, _add_grad_sums)(x + r0 * C, scratch, mean, n, C, s1, s2);
    }
}

/* y = x * scale + shift per column, then max(y, 0) when relu (NaN passes). */
static void CNNX_CAT(BN_NAME, _apply)(const BN_T *restrict x, const BN_T *restrict scale,
                                       const BN_T *restrict shift, int64_t rows, int64_t C,
                                       int relu, BN_T *restrict y)
{
    for (int64_t i = 0; i < rows; ++i) {
        const BN_T *restrict xr = x + i * C;
        BN_T *restrict yr = y + i * C;
        if (relu) {
            for (int64_t c = 0; c < C; ++c) {
                const BN_T v = xr[c] * scale[c] + shift[c];
                yr[c] = v <= 0 ? (BN_T)0 : v;
            }
        } else {
            for (int64_t c = 0; c < C; ++c) yr[c] = xr[c] * scale[c] + shift[c];
        }
    }
}

/* dx = a * g + b * (x - mean) + d per column, g = dy (masked). */
static void CNNX_CAT(BN_NAME, _dx)(const BN_T *restrict x, const BN_T *restrict dy,
                                    const BN_T *restrict relu_affine,
                                    const BN_T *restrict mean, const BN_T *restrict a,
                                    const BN_T *restrict b, const BN_T *restrict d,
                                    int64_t rows, int64_t C, BN_T *restrict dx)
{
    for (int64_t i = 0; i < rows; ++i) {
        const BN_T *restrict xr = x + i * C;
        const BN_T *restrict dr = dy + i * C;
        BN_T *restrict out = dx + i * C;
        if (relu_affine) {
            const BN_T *restrict scale = relu_affine, *restrict shift = relu_affine + C;
            for (int64_t c = 0; c < C; ++c) {
                const BN_T v = dr[c];
                const BN_T g = xr[c] * scale[c] + shift[c] > 0 ? v : (BN_T)0;
                out[c] = a[c] * g + b[c] * (xr[c] - mean[c]) + d[c];
            }
        } else {
            for (int64_t c = 0; c < C; ++c)
                out[c] = a[c] * dr[c] + b[c] * (xr[c] - mean[c]) + d[c];
        }
    }
}

#undef BN_NAME
#undef BN_T

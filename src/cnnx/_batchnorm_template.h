/* Batch normalization over rows of C channels (x seen as R x C), instantiated once per
 * (dtype, ISA): the per-column sums of one chunk of rows (runs of 8 rows summed in the
 * dtype, the runs added up in double), and the two elementwise passes. Plain C loops
 * over the columns, contiguous and `restrict`, which the compiler vectorises under the
 * path's flags (the Cython module itself is compiled for the baseline ISA). Each
 * column's sum runs over the chunk's rows in a fixed order: the Cython drivers cut the
 * rows into fixed chunks and add the chunks in order, so the bits do not depend on the
 * thread count.
 *
 * A fused ReLU's mask zeroes dy where the ReLU's output was not > 0 (NaN in dy
 * included), as relu_grad does: relu_affine (or NULL) holds the forward's scale, then
 * shift (2 x C), and the mask is recomputed from `mx` (x, or the ReLU's output with
 * scale 1 and shift 0) by _apply's own multiply-add, which saves reading a third array
 * in each pass. Either way the same code runs, so the two give the same bits (the
 * compiler's multiply-add fusing can differ between a masked and an unmasked loop).
 * Every load is unconditional, so the select needs no branch (and, with the sums in
 * the dtype, vectorises inside the sums' loop; with each value converted to double it
 * did not, and the mask went through a scratch).
 *
 * Include after defining BN_NAME and BN_T.
 */

/* The sum of 8 values in a fixed order: a tree, with no chain of 8 dependent adds. */
#define BN_SUM8(v) ((((v)[0] + (v)[1]) + ((v)[2] + (v)[3])) + (((v)[4] + (v)[5]) + ((v)[6] + (v)[7])))

/* s1[c] = sum over the rows of d = x[., c] - shift[c], s2[c] = sum of d^2: a chunk's
 * share of the mean and variance in one pass (shift is one row of x, so d is of the
 * data's spread and s2 / n - (s1 / n)^2 loses no digits a float32 or float64 keeps).
 * Each run of 8 rows is summed in the dtype, as a tree, then added to the double sums;
 * a last run of fewer rows in row order. Converting every value to double bound the
 * float32 loop (twice the instructions, and their chains); a run's rounding (8 terms of
 * the spread's size) stays far under float32's tolerance. A run is 8 whole rows read
 * side by side, so the reads sweep forward through memory (a chunk walked one block of
 * columns at a time, rows C apart, left the hardware prefetchers behind once the data
 * came from DRAM), and each column's run sum needs no value kept from one row to the
 * next. */
static void CNNX_CAT(BN_NAME, _sums)(const BN_T *restrict x, int64_t rows, int64_t C,
                                      const BN_T *restrict shift, double *restrict s1,
                                      double *restrict s2)
{
    int64_t i0 = 0;
    for (int64_t c = 0; c < C; ++c) s1[c] = s2[c] = 0;
    for (; i0 + 8 <= rows; i0 += 8) {
        const BN_T *restrict r = x + i0 * C;
        for (int64_t c = 0; c < C; ++c) {
            BN_T d[8], q[8];
            for (int k = 0; k < 8; ++k) {
                d[k] = r[k * C + c] - shift[c];
                q[k] = d[k] * d[k];
            }
            s1[c] += (double)BN_SUM8(d);
            s2[c] += (double)BN_SUM8(q);
        }
    }
    for (int64_t c = 0; c < C && i0 < rows; ++c) {
        BN_T a1 = 0, a2 = 0;
        for (int64_t i = i0; i < rows; ++i) {
            const BN_T d = x[i * C + c] - shift[c];
            a1 += d;
            a2 += d * d;
        }
        s1[c] += (double)a1;
        s2[c] += (double)a2;
    }
}

/* s1[c] = sum of g, s2[c] = sum of g * (x - mean) over the rows, g = dy, masked where
 * `masked` by the ReLU that mx * scale + shift gave (scale and shift: relu_affine's
 * rows). Runs of 8 rows are summed in the dtype into p (2 x C, the caller's), row by
 * row, then added to the double sums (a last run of fewer rows too). Not 8 rows side by
 * side as in _sums: with two arrays read, those 16 streams ran W6's training step's
 * gradients 1.3-1.5x slower than two, once the data came from DRAM. */
CNNX_INLINE void CNNX_CAT(BN_NAME, _grad_sums_body)(
    const int masked, const BN_T *restrict x, const BN_T *restrict dy,
    const BN_T *restrict mx, const BN_T *restrict scale, const BN_T *restrict shift,
    const BN_T *restrict mean, int64_t rows, int64_t C, double *restrict s1,
    double *restrict s2, BN_T *restrict p)
{
    BN_T *restrict p1 = p, *restrict p2 = p + C;
    for (int64_t c = 0; c < C; ++c) s1[c] = s2[c] = 0;
    for (int64_t i0 = 0; i0 < rows; i0 += 8) {
        const int64_t i1 = rows - i0 < 8 ? rows : i0 + 8;
        for (int64_t c = 0; c < C; ++c) p1[c] = p2[c] = 0;
        for (int64_t i = i0; i < i1; ++i) {
            const BN_T *restrict xr = x + i * C;
            const BN_T *restrict gr = dy + i * C;
            const BN_T *restrict mr = mx + i * C;
            for (int64_t c = 0; c < C; ++c) {
                const BN_T v = gr[c];
                const BN_T g = !masked || mr[c] * scale[c] + shift[c] > 0 ? v : (BN_T)0;
                p1[c] += g;
                p2[c] += g * (xr[c] - mean[c]);
            }
        }
        for (int64_t c = 0; c < C; ++c) {
            s1[c] += (double)p1[c];
            s2[c] += (double)p2[c];
        }
    }
}

static void CNNX_CAT(BN_NAME, _grad_sums)(const BN_T *restrict x, const BN_T *restrict dy,
                                           const BN_T *restrict mx,
                                           const BN_T *restrict relu_affine,
                                           const BN_T *restrict mean, int64_t rows,
                                           int64_t C, double *restrict s1,
                                           double *restrict s2, BN_T *restrict p)
{
    if (relu_affine)
        CNNX_CAT(BN_NAME, _grad_sums_body)(1, x, dy, mx, relu_affine, relu_affine + C, mean,
                                           rows, C, s1, s2, p);
    else   /* (mx, scale and shift unread) */
        CNNX_CAT(BN_NAME, _grad_sums_body)(0, x, dy, x, mean, mean, mean, rows, C, s1, s2, p);
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

/* dx = a * g + b * (x - mean) + d per column, g = dy (masked by mx). */
static void CNNX_CAT(BN_NAME, _dx)(const BN_T *restrict x, const BN_T *restrict dy,
                                    const BN_T *restrict mx,
                                    const BN_T *restrict relu_affine,
                                    const BN_T *restrict mean, const BN_T *restrict a,
                                    const BN_T *restrict b, const BN_T *restrict d,
                                    int64_t rows, int64_t C, BN_T *restrict dx)
{
    for (int64_t i = 0; i < rows; ++i) {
        const BN_T *restrict xr = x + i * C;
        const BN_T *restrict dr = dy + i * C;
        const BN_T *restrict mr = mx + i * C;
        BN_T *restrict out = dx + i * C;
        if (relu_affine) {
            const BN_T *restrict scale = relu_affine, *restrict shift = relu_affine + C;
            for (int64_t c = 0; c < C; ++c) {
                const BN_T v = dr[c];
                const BN_T g = mr[c] * scale[c] + shift[c] > 0 ? v : (BN_T)0;
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
#undef BN_SUM8

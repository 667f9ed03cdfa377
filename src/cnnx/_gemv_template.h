/* A dense layer's product for a few rows (inference on one image), a share of it:
 *     out[r * ldo + j] = sum over k0 <= k < k1 of x[r, k] * w[k, j],   j0 <= j < j1,
 * reading the kernel w (I x O, row-major) in place, row after row, instead of packing it
 * for the GEMM (which pads one row to a tile of PATH_MR and packs the whole kernel on
 * every call). The caller cuts the kernel's rows into blocks (work items for the threads,
 * each streaming its rows) and adds the blocks' sums in order, then the bias.
 * Blocks of 4 * GV_CB columns, then one of 1-3 x GV_CB and one of 2-3 x GV_CB / 4, sum
 * each output over k in order, in registers (the widest keeps 8 vectors of multiply-adds
 * in flight); a block of GV_CB / 4 columns, too narrow to keep the multiply-adds busy,
 * in four partial sums over k mod 4; the last columns (fewer than GV_CB / 4) one at a
 * time, in four partial sums. The order depends on the shape alone.
 * Plain C over contiguous columns, vectorised by the compiler under the path's flags.
 *
 * Include after defining GV_NAME, GV_T and GV_CB.
 */
#define GV_BLOCK(SUFFIX, WIDTH)                                                            \
    static inline void CNNX_CAT(GV_NAME, SUFFIX)(                                          \
        const GV_T *restrict x, int64_t k0, int64_t k1, const GV_T *restrict w, int64_t O, \
        GV_T *restrict out)                                                                \
    {                                                                                      \
        GV_T acc[WIDTH] = {0};                                                             \
        for (int64_t k = k0; k < k1; ++k) {                                                \
            const GV_T s = x[k];                                                           \
            const GV_T *restrict wk = w + k * O;                                           \
            for (int c = 0; c < WIDTH; ++c) acc[c] += s * wk[c];                           \
        }                                                                                  \
        for (int c = 0; c < WIDTH; ++c) out[c] = acc[c];                                   \
    }
GV_BLOCK(_w4, 4 * GV_CB)
GV_BLOCK(_w3, 3 * GV_CB)
GV_BLOCK(_w2, 2 * GV_CB)
GV_BLOCK(_w1, GV_CB)
GV_BLOCK(_n3, 3 * GV_CB / 4)
GV_BLOCK(_n2, 2 * GV_CB / 4)
#undef GV_BLOCK

/* Four partial sums over k mod 4 (the rows past a multiple of 4 into the first), added
 * as (s0 + s1) + (s2 + s3): one sum in order waited on each multiply-add's latency (W1's
 * 1600 -> 10 layer on one image, 8 columns in such a block: 3.4-3.9 -> 2.2-2.9 us). Only
 * the narrowest block: the wider ones have 2-3 sums in flight, and each split block
 * added 1-3 KB of code a path to a wheel near its 1 MB limit. */
#define GV_SPLIT(SUFFIX, WIDTH)                                                            \
    static inline void CNNX_CAT(GV_NAME, SUFFIX)(                                          \
        const GV_T *restrict x, int64_t k0, int64_t k1, const GV_T *restrict w, int64_t O, \
        GV_T *restrict out)                                                                \
    {                                                                                      \
        GV_T acc[4][WIDTH] = {{0}};                                                        \
        int64_t k = k0;                                                                    \
        for (; k + 4 <= k1; k += 4)                                                        \
            for (int u = 0; u < 4; ++u) {                                                  \
                const GV_T s = x[k + u];                                                   \
                const GV_T *restrict wk = w + (k + u) * O;                                 \
                for (int c = 0; c < WIDTH; ++c) acc[u][c] += s * wk[c];                    \
            }                                                                              \
        for (; k < k1; ++k) {                                                              \
            const GV_T s = x[k];                                                           \
            const GV_T *restrict wk = w + k * O;                                           \
            for (int c = 0; c < WIDTH; ++c) acc[0][c] += s * wk[c];                        \
        }                                                                                  \
        for (int c = 0; c < WIDTH; ++c)                                                    \
            out[c] = (acc[0][c] + acc[1][c]) + (acc[2][c] + acc[3][c]);                    \
    }
GV_SPLIT(_n1, GV_CB / 4)
#undef GV_SPLIT

/* One column: four partial sums over k mod 4 (one sum in order would wait on each
 * multiply-add's latency), added as (s0 + s1) + (s2 + s3). */
static inline void CNNX_CAT(GV_NAME, _one)(const GV_T *restrict x, int64_t k0, int64_t k1,
                                           const GV_T *restrict w, int64_t O,
                                           GV_T *restrict out)
{
    GV_T s[4] = {0};
    int64_t k = k0;
    for (; k + 4 <= k1; k += 4)
        for (int u = 0; u < 4; ++u) s[u] += x[k + u] * w[(k + u) * O];
    for (; k < k1; ++k) s[(k - k0) & 3] += x[k] * w[k * O];
    *out = (s[0] + s[1]) + (s[2] + s[3]);
}

static void GV_NAME(const GV_T *restrict x, int64_t rows, int64_t I,
                    const GV_T *restrict w, int64_t O, int64_t k0, int64_t k1, int64_t j0,
                    int64_t j1, GV_T *restrict out, int64_t ldo)
{
    for (int64_t r = 0; r < rows; ++r) {
        const GV_T *restrict xr = x + r * I;
        GV_T *restrict o = out + r * ldo;
        int64_t j = j0;
        for (; j + 4 * GV_CB <= j1; j += 4 * GV_CB)
            CNNX_CAT(GV_NAME, _w4)(xr, k0, k1, w + j, O, o + j);
        /* the rest in as few sweeps as the blocks allow (a sweep of GV_CB columns alone
           waits on its multiply-adds' latency) */
        if (j + 3 * GV_CB <= j1) {
            CNNX_CAT(GV_NAME, _w3)(xr, k0, k1, w + j, O, o + j); j += 3 * GV_CB;
        } else if (j + 2 * GV_CB <= j1) {
            CNNX_CAT(GV_NAME, _w2)(xr, k0, k1, w + j, O, o + j); j += 2 * GV_CB;
        } else if (j + GV_CB <= j1) {
            CNNX_CAT(GV_NAME, _w1)(xr, k0, k1, w + j, O, o + j); j += GV_CB;
        }
        if (j + 3 * GV_CB / 4 <= j1) {
            CNNX_CAT(GV_NAME, _n3)(xr, k0, k1, w + j, O, o + j); j += 3 * GV_CB / 4;
        } else if (j + 2 * GV_CB / 4 <= j1) {
            CNNX_CAT(GV_NAME, _n2)(xr, k0, k1, w + j, O, o + j); j += 2 * GV_CB / 4;
        } else if (j + GV_CB / 4 <= j1) {
            CNNX_CAT(GV_NAME, _n1)(xr, k0, k1, w + j, O, o + j); j += GV_CB / 4;
        }
        for (; j < j1; ++j)
            CNNX_CAT(GV_NAME, _one)(xr, k0, k1, w + j, O, o + j);
    }
}

#undef GV_NAME
#undef GV_T
#undef GV_CB

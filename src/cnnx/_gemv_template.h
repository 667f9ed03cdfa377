/* A dense layer's product for a few rows (inference on one image): y[r, j0:j1] =
 * x[r, :] @ w[:, j0:j1] (+ bias, ReLU), reading the kernel w (I x O, row-major) in place,
 * row after row, instead of packing it for the GEMM (which pads one row to a tile of
 * PATH_MR and packs the whole kernel on every call). Blocks of GV_CB columns, then of
 * GV_CB / 4, sum each output over the kernel's rows in order, in registers; the last
 * columns one at a time, in four partial sums. The order depends on the shape alone. Plain C over contiguous columns, vectorised by the compiler under
 * the path's flags.
 *
 * Include after defining GV_NAME, GV_T and GV_CB.
 */
#define GV_BLOCK(SUFFIX, WIDTH)                                                            \
    static inline void CNNX_CAT(GV_NAME, SUFFIX)(                                          \
        const GV_T *restrict x, int64_t I, const GV_T *restrict w, int64_t O,              \
        const GV_T *restrict bias, int relu, GV_T *restrict y)                             \
    {                                                                                      \
        GV_T acc[WIDTH] = {0};                                                             \
        for (int64_t k = 0; k < I; ++k) {                                                  \
            const GV_T s = x[k];                                                           \
            const GV_T *restrict wk = w + k * O;                                           \
            for (int c = 0; c < WIDTH; ++c) acc[c] += s * wk[c];                           \
        }                                                                                  \
        for (int c = 0; c < WIDTH; ++c) {                                                  \
            GV_T v = bias ? acc[c] + bias[c] : acc[c];                                     \
            y[c] = relu && v <= 0 ? 0 : v;  /* NaN passes, as the GEMM's epilogue */       \
        }                                                                                  \
    }
GV_BLOCK(_wide, GV_CB)
GV_BLOCK(_narrow, GV_CB / 4)
#undef GV_BLOCK

/* One column: four partial sums over k mod 4 (one sum in order would wait on each
 * multiply-add's latency), added as (s0 + s1) + (s2 + s3). */
static inline void CNNX_CAT(GV_NAME, _one)(const GV_T *restrict x, int64_t I,
                                           const GV_T *restrict w, int64_t O,
                                           const GV_T *restrict bias, int relu,
                                           GV_T *restrict y)
{
    GV_T s[4] = {0};
    int64_t k = 0;
    for (; k + 4 <= I; k += 4)
        for (int u = 0; u < 4; ++u) s[u] += x[k + u] * w[(k + u) * O];
    for (; k < I; ++k) s[k & 3] += x[k] * w[k * O];
    GV_T v = (s[0] + s[1]) + (s[2] + s[3]);
    if (bias) v += *bias;
    *y = relu && v <= 0 ? 0 : v;
}

static void GV_NAME(const GV_T *restrict x, int64_t rows, int64_t I,
                    const GV_T *restrict w, int64_t O, int64_t j0, int64_t j1,
                    const GV_T *restrict bias, int relu, GV_T *restrict y)
{
    for (int64_t r = 0; r < rows; ++r) {
        const GV_T *restrict xr = x + r * I;
        GV_T *restrict yr = y + r * O;
        int64_t j = j0;
        for (; j + GV_CB <= j1; j += GV_CB)
            CNNX_CAT(GV_NAME, _wide)(xr, I, w + j, O, bias ? bias + j : 0, relu, yr + j);
        for (; j + GV_CB / 4 <= j1; j += GV_CB / 4)
            CNNX_CAT(GV_NAME, _narrow)(xr, I, w + j, O, bias ? bias + j : 0, relu, yr + j);
        for (; j < j1; ++j)
            CNNX_CAT(GV_NAME, _one)(xr, I, w + j, O, bias ? bias + j : 0, relu, yr + j);
    }
}

#undef GV_NAME
#undef GV_T
#undef GV_CB

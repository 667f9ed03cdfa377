/* Direct convolution microkernels for first layers (one to four input channels and
 * output channels in whole vectors), instantiated once per (dtype, ISA). They vectorise
 * along output channels, as a GEMM microkernel does, but read the input taps straight
 * from a zero-padded NHWC copy of the sample through an offset table: nothing is packed.
 *
 * The caller's padded sample is Hp x Wp x C; output pixel (oh, ow) reads its taps at
 * xpad + oh * rowstep + ow * colstep + koff[k] (rowstep = sh * Wp * C, colstep = sw * C,
 * koff[k] = (i * dh * Wp + t * dw) * C + c for tap k = (i, t, c), the kernel's own order),
 * so the kernel, viewed as a K x F matrix, is used as it is.
 *
 * Include after defining NK_NAME, NK_T, NK_IT, NK_VBYTES, NK_MR, NK_KR, NK_RUNS, NK_NV.
 */
#define NK_VW (NK_VBYTES / (int)sizeof(NK_T))

typedef NK_T CNNX_CAT(NK_NAME, _vec) __attribute__((vector_size(NK_VBYTES), aligned(sizeof(NK_T))));
typedef NK_IT CNNX_CAT(NK_NAME, _ivec) __attribute__((vector_size(NK_VBYTES), aligned(sizeof(NK_T))));

/* Forward: np <= NK_MR pixels, whose tap 0 sits at xpad + xb[i] (xb holds NK_MR entries;
 * a partial tile repeats one), times output channels f0 : f0 + NK_NV * NK_VW, where w and
 * y (pixel i at y + i * F) and bias (or NULL) already point at f0. */
static void CNNX_CAT(NK_NAME, _fwd)(
    int64_t K, const NK_T *restrict xpad, const int64_t *restrict koff, const int64_t *restrict xb,
    int np, const NK_T *restrict w, int64_t F, NK_T *restrict y, const NK_T *restrict bias,
    int relu)
{
    typedef CNNX_CAT(NK_NAME, _vec) vec;
    typedef CNNX_CAT(NK_NAME, _ivec) ivec;
    const vec zero = {0};
    vec acc[NK_MR][NK_NV];
    const NK_T *base[NK_MR];

    CNNX_UNROLL
    for (int i = 0; i < NK_MR; ++i) {
        base[i] = xpad + xb[i];
        CNNX_UNROLL
        for (int v = 0; v < NK_NV; ++v) acc[i][v] = zero;
    }
    for (int64_t k = 0; k < K; ++k, w += F) {
        const int64_t o = koff[k];
        vec wv[NK_NV];
        CNNX_UNROLL
        for (int v = 0; v < NK_NV; ++v) wv[v] = *(const vec *)(w + v * NK_VW);
        CNNX_UNROLL
        for (int i = 0; i < NK_MR; ++i) {
            const NK_T s = base[i][o];
            CNNX_UNROLL
            for (int v = 0; v < NK_NV; ++v) acc[i][v] += s * wv[v];
        }
    }
    for (int i = 0; i < np; ++i) {
        CNNX_UNROLL
        for (int v = 0; v < NK_NV; ++v) {
            vec r = acc[i][v];
            if (bias) r += *(const vec *)(bias + v * NK_VW);
            /* keep r where !(r <= 0): zeroes negatives, lets NaN through */
            if (relu) r = (vec)((ivec)r & ~(ivec)(r <= zero));
            *(vec *)(y + i * F + v * NK_VW) = r;
        }
    }
}

/* Kernel gradient of one sample: taps koff[0 : nk] (nk <= NK_KR; koff holds NK_KR
 * entries) times channels f0 : f0 + NK_NV * NK_VW, summed over the OH x OW pixels:
 *     dw[k * F + f] += sum_p x(p, tap k) * g(p, f),   db[f] += sum_p g(p, f) (db may be NULL),
 * where g = dy, or dy where relu_output > 0 when relu_output (ReLU's output) is given: the ReLU
 * backward pass fused in. dy, relu_output, dw and db already point at f0.
 * Where NK_RUNS, a full tile of taps that are consecutive in memory (a run of channels and
 * kernel columns in one kernel row) reads them at one base pointer plus constants; other
 * tiles keep their NK_KR offsets, which spill (24 of them on AVX-512). */
static inline __attribute__((always_inline)) void CNNX_CAT(NK_NAME, _kgrad_body)(
    const int run, int64_t OH, int64_t OW, int64_t rowstep, int64_t colstep,
    const NK_T *restrict xpad, const int64_t *restrict koff, int nk, const NK_T *restrict dy,
    const NK_T *restrict relu_output, int64_t F, NK_T *restrict dw, NK_T *restrict db)
{
    typedef CNNX_CAT(NK_NAME, _vec) vec;
    typedef CNNX_CAT(NK_NAME, _ivec) ivec;
    const vec zero = {0};
    vec acc[NK_KR][NK_NV], bacc[NK_NV];
    int64_t o[NK_KR];

    CNNX_UNROLL
    for (int i = 0; i < NK_KR; ++i) {
        o[i] = koff[i];
        CNNX_UNROLL
        for (int v = 0; v < NK_NV; ++v) acc[i][v] = zero;
    }
    CNNX_UNROLL
    for (int v = 0; v < NK_NV; ++v) bacc[v] = zero;
    for (int64_t oh = 0; oh < OH; ++oh) {
        for (int64_t ow = 0; ow < OW; ++ow) {
            const int64_t p = (oh * OW + ow) * F;
            const NK_T *xp = xpad + oh * rowstep + ow * colstep;
            const NK_T *xr = xp + o[0];
            vec g[NK_NV];
            CNNX_UNROLL
            for (int v = 0; v < NK_NV; ++v) {
                g[v] = *(const vec *)(dy + p + v * NK_VW);
                if (relu_output)
                    g[v] = (vec)((ivec)g[v] & (ivec)(*(const vec *)(relu_output + p + v * NK_VW) > zero));
                if (db) bacc[v] += g[v];
            }
            CNNX_UNROLL
            for (int i = 0; i < NK_KR; ++i) {
                const NK_T s = run ? xr[i] : xp[o[i]];
                CNNX_UNROLL
                for (int v = 0; v < NK_NV; ++v) acc[i][v] += s * g[v];
            }
        }
    }
    for (int i = 0; i < nk; ++i) {
        CNNX_UNROLL
        for (int v = 0; v < NK_NV; ++v) *(vec *)(dw + i * F + v * NK_VW) += acc[i][v];
    }
    if (db) {
        CNNX_UNROLL
        for (int v = 0; v < NK_NV; ++v) *(vec *)(db + v * NK_VW) += bacc[v];
    }
}

static void CNNX_CAT(NK_NAME, _kgrad)(
    int64_t OH, int64_t OW, int64_t rowstep, int64_t colstep, const NK_T *restrict xpad,
    const int64_t *restrict koff, int nk, const NK_T *restrict dy, const NK_T *restrict relu_output,
    int64_t F, NK_T *restrict dw, NK_T *restrict db)
{
    int run = NK_RUNS && nk == NK_KR;
    for (int i = 1; run && i < NK_KR; ++i) run = koff[i] == koff[0] + i;
    if (run)
        CNNX_CAT(NK_NAME, _kgrad_body)(1, OH, OW, rowstep, colstep, xpad, koff, nk, dy,
                                       relu_output, F, dw, db);
    else
        CNNX_CAT(NK_NAME, _kgrad_body)(0, OH, OW, rowstep, colstep, xpad, koff, nk, dy,
                                       relu_output, F, dw, db);
}

#undef NK_VW
#undef NK_NAME
#undef NK_T
#undef NK_IT

/* Depthwise convolution, NHWC: each channel convolved with its own KH x KW filter
 * (kernel laid out KH x KW x C), instantiated once per (dtype, ISA). The channel loops
 * are innermost and contiguous in x, y and the kernel, and `restrict`: the compiler
 * vectorises them under the path's flags. Every output element is summed in the same
 * tap order whatever the thread count.
 *
 * Include after defining DW_NAME and DW_T (and DW_CB, channels per register block).
 */

/* One block of N channels c0 .. c0 + N - 1 of output pixel (oh, ow): the sums stay in
 * registers across the taps i0..i1 x j0..j1 (all inside the image). */
#define DW_BLOCK(SUFFIX, N)                                                                 \
static inline void CNNX_CAT(DW_NAME, SUFFIX)(                                               \
    const DW_T *restrict x, int64_t W, int64_t C, const DW_T *restrict k, int64_t KW,       \
    int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw, int64_t oh,     \
    int64_t ow, int64_t i0, int64_t i1, int64_t j0, int64_t j1, const DW_T *restrict bias,  \
    DW_T *restrict yo, int64_t c0)                                                          \
{                                                                                           \
    DW_T acc[N];                                                                            \
    for (int c = 0; c < (N); ++c) acc[c] = bias ? bias[c0 + c] : (DW_T)0;                   \
    for (int64_t i = i0; i < i1; ++i) {                                                     \
        const int64_t ih = oh * sh - ph + i * dh;                                           \
        for (int64_t j = j0; j < j1; ++j) {                                                 \
            const DW_T *restrict xi = x + (ih * W + ow * sw - pw + j * dw) * C + c0;        \
            const DW_T *restrict kk = k + (i * KW + j) * C + c0;                            \
            for (int c = 0; c < (N); ++c) acc[c] += xi[c] * kk[c];                          \
        }                                                                                   \
    }                                                                                       \
    for (int c = 0; c < (N); ++c) yo[c0 + c] = acc[c];                                      \
}
DW_BLOCK(_fwd_block, DW_CB)
DW_BLOCK(_fwd_half, DW_CB / 2)
#undef DW_BLOCK

/* Four neighbouring output pixels ow .. ow + 3, whose windows lie inside the image's
 * width, for channels c0 .. c0 + DW_CB - 1: each kernel vector is loaded once for the
 * four, and the 4 x DW_CB sums stay in vector registers (GNU vector extensions where
 * the compiler has them; plain loops otherwise). */
#if defined(__GNUC__) || defined(__clang__)
typedef DW_T CNNX_CAT(DW_NAME, _vec) __attribute__((vector_size(DW_CB / 2 * sizeof(DW_T)),
                                                    aligned(sizeof(DW_T))));
#endif
static inline void CNNX_CAT(DW_NAME, _fwd_quad)(
    const DW_T *restrict x, int64_t W, int64_t C, const DW_T *restrict k, int64_t KW,
    int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw, int64_t oh,
    int64_t ow, int64_t i0, int64_t i1, const DW_T *restrict bias, DW_T *restrict y,
    int64_t c0)
{
#if defined(__GNUC__) || defined(__clang__)
    typedef CNNX_CAT(DW_NAME, _vec) vec;
    enum { VW = DW_CB / 2 };
    const vec zero = {0};
    const vec b0 = bias ? *(const vec *)(bias + c0) : zero;
    const vec b1 = bias ? *(const vec *)(bias + c0 + VW) : zero;
    vec a00 = b0, a01 = b1, a10 = b0, a11 = b1, a20 = b0, a21 = b1, a30 = b0, a31 = b1;
    const int64_t step = sw * C;
    for (int64_t i = i0; i < i1; ++i) {
        const DW_T *restrict row = x + (oh * sh - ph + i * dh) * W * C + c0;
        for (int64_t j = 0; j < KW; ++j) {
            const DW_T *restrict kk = k + (i * KW + j) * C + c0;
            const DW_T *restrict xi = row + (ow * sw - pw + j * dw) * C;
            const vec k0 = *(const vec *)kk, k1 = *(const vec *)(kk + VW);
            a00 += *(const vec *)xi * k0;
            a01 += *(const vec *)(xi + VW) * k1;
            a10 += *(const vec *)(xi + step) * k0;
            a11 += *(const vec *)(xi + step + VW) * k1;
            a20 += *(const vec *)(xi + 2 * step) * k0;
            a21 += *(const vec *)(xi + 2 * step + VW) * k1;
            a30 += *(const vec *)(xi + 3 * step) * k0;
            a31 += *(const vec *)(xi + 3 * step + VW) * k1;
        }
    }
    DW_T *restrict out = y + ow * C + c0;
    *(vec *)out = a00;
    *(vec *)(out + VW) = a01;
    *(vec *)(out + C) = a10;
    *(vec *)(out + C + VW) = a11;
    *(vec *)(out + 2 * C) = a20;
    *(vec *)(out + 2 * C + VW) = a21;
    *(vec *)(out + 3 * C) = a30;
    *(vec *)(out + 3 * C + VW) = a31;
#else
    DW_T acc[4][DW_CB];
    for (int p = 0; p < 4; ++p)
        for (int c = 0; c < DW_CB; ++c) acc[p][c] = bias ? bias[c0 + c] : (DW_T)0;
    for (int64_t i = i0; i < i1; ++i) {
        const DW_T *restrict row = x + (oh * sh - ph + i * dh) * W * C + c0;
        for (int64_t j = 0; j < KW; ++j) {
            const DW_T *restrict kk = k + (i * KW + j) * C + c0;
            const DW_T *restrict xi = row + (ow * sw - pw + j * dw) * C;
            for (int p = 0; p < 4; ++p)
                for (int c = 0; c < DW_CB; ++c) acc[p][c] += xi[p * sw * C + c] * kk[c];
        }
    }
    for (int p = 0; p < 4; ++p)
        for (int c = 0; c < DW_CB; ++c) y[(ow + p) * C + c0 + c] = acc[p][c];
#endif
}

/* One output row `oh` of one sample: y (OW x C) = bias + sum over the taps in range.
 * Channels go in blocks of DW_CB, then DW_CB / 2 (constant trip counts: unrolled and
 * vectorised), then one by one. */
static void CNNX_CAT(DW_NAME, _fwd_row)(const DW_T *restrict x, int64_t H, int64_t W,
                                        int64_t C, const DW_T *restrict k, int64_t KH,
                                        int64_t KW, int64_t sh, int64_t sw, int64_t ph,
                                        int64_t pw, int64_t dh, int64_t dw, int64_t oh,
                                        int64_t OW, const DW_T *restrict bias,
                                        DW_T *restrict y)
{
    enum { CB = DW_CB };
    int64_t i0 = 0, i1 = KH;    /* the kernel rows that land inside the image */
    while (i0 < KH && oh * sh - ph + i0 * dh < 0) ++i0;
    while (i1 > i0 && oh * sh - ph + (i1 - 1) * dh >= H) --i1;
    for (int64_t ow = 0; ow < OW; ++ow) {
        DW_T *restrict yo = y + ow * C;
        if (C >= CB && ow + 3 < OW && ow * sw - pw >= 0
                && (ow + 3) * sw - pw + (KW - 1) * dw < W) {
            /* Four pixels inside the width: whole channel blocks four at a time, the
             * rest one pixel at a time. */
            int64_t c0 = 0;
            for (; c0 + CB <= C; c0 += CB)
                CNNX_CAT(DW_NAME, _fwd_quad)(x, W, C, k, KW, sh, sw, ph, pw, dh, dw, oh, ow,
                                             i0, i1, bias, y, c0);
            for (int64_t p = 0; p < 4; ++p) {
                DW_T *restrict yp = y + (ow + p) * C;
                int64_t c = c0;
                for (; c + CB / 2 <= C; c += CB / 2)
                    CNNX_CAT(DW_NAME, _fwd_half)(x, W, C, k, KW, sh, sw, ph, pw, dh, dw, oh,
                                                 ow + p, i0, i1, 0, KW, bias, yp, c);
                for (; c < C; ++c) {
                    DW_T v = bias ? bias[c] : (DW_T)0;
                    for (int64_t i = i0; i < i1; ++i)
                        for (int64_t j = 0; j < KW; ++j)
                            v += x[((oh * sh - ph + i * dh) * W + (ow + p) * sw - pw
                                    + j * dw) * C + c] * k[(i * KW + j) * C + c];
                    yp[c] = v;
                }
            }
            ow += 3;
            continue;
        }
        int64_t j0 = 0, j1 = KW;
        while (j0 < KW && ow * sw - pw + j0 * dw < 0) ++j0;
        while (j1 > j0 && ow * sw - pw + (j1 - 1) * dw >= W) --j1;
        int64_t c0 = 0;
        for (; c0 + CB <= C; c0 += CB)
            CNNX_CAT(DW_NAME, _fwd_block)(x, W, C, k, KW, sh, sw, ph, pw, dh, dw, oh, ow,
                                          i0, i1, j0, j1, bias, yo, c0);
        for (; c0 + CB / 2 <= C; c0 += CB / 2)
            CNNX_CAT(DW_NAME, _fwd_half)(x, W, C, k, KW, sh, sw, ph, pw, dh, dw, oh, ow,
                                         i0, i1, j0, j1, bias, yo, c0);
        if (c0 < C) {    /* the last channels, fewer than a block */
            for (int64_t c = c0; c < C; ++c) yo[c] = bias ? bias[c] : (DW_T)0;
            for (int64_t i = i0; i < i1; ++i) {
                const int64_t ih = oh * sh - ph + i * dh;
                for (int64_t j = j0; j < j1; ++j) {
                    const DW_T *restrict xi = x + (ih * W + ow * sw - pw + j * dw) * C;
                    const DW_T *restrict kk = k + (i * KW + j) * C;
                    for (int64_t c = c0; c < C; ++c) yo[c] += xi[c] * kk[c];
                }
            }
        }
    }
}

/* The input gradient of one sample: dx (H x W x C) = the scatter of dy (OH x OW x C)
 * through the taps, in output order. */
static void CNNX_CAT(DW_NAME, _dx_sample)(const DW_T *restrict dy, int64_t OH, int64_t OW,
                                          int64_t C, const DW_T *restrict k, int64_t KH,
                                          int64_t KW, int64_t sh, int64_t sw, int64_t ph,
                                          int64_t pw, int64_t dh, int64_t dw, int64_t H,
                                          int64_t W, DW_T *restrict dx)
{
    for (int64_t e = 0; e < H * W * C; ++e) dx[e] = 0;
    for (int64_t oh = 0; oh < OH; ++oh) {
        for (int64_t ow = 0; ow < OW; ++ow) {
            const DW_T *restrict g = dy + (oh * OW + ow) * C;
            for (int64_t i = 0; i < KH; ++i) {
                const int64_t ih = oh * sh - ph + i * dh;
                if (ih < 0 || ih >= H) continue;
                for (int64_t j = 0; j < KW; ++j) {
                    const int64_t iw = ow * sw - pw + j * dw;
                    if (iw < 0 || iw >= W) continue;
                    DW_T *restrict d = dx + (ih * W + iw) * C;
                    const DW_T *restrict kk = k + (i * KW + j) * C;
                    for (int64_t c = 0; c < C; ++c) d[c] += g[c] * kk[c];
                }
            }
        }
    }
}

/* One sample's share of the kernel and bias gradients, added to dk (KH x KW x C) and,
 * when given, db (C). Rows of three taps at column stride 1 (3 x 3 kernels, any
 * dilation), a vector of channels at a time: the three sums of a kernel row stay in
 * registers over the sample's pixels and are added to dk once. Adding each product to
 * dk in memory, a load and a store each, ran a batch of 32 x 32 x 32 images at 0.64
 * ms, 0.34 in registers (16 x 16 x 128: 0.44 -> 0.28); at stride 2, where that walk
 * reads every other pixel a vector at a time, it measured level or slower, and keeps
 * the loop below. The rest, and other kernels: the products added to dk in pixel
 * order. */
static void CNNX_CAT(DW_NAME, _dk_sample)(const DW_T *restrict x, int64_t H, int64_t W,
                                          int64_t C, const DW_T *restrict dy, int64_t OH,
                                          int64_t OW, int64_t KH, int64_t KW, int64_t sh,
                                          int64_t sw, int64_t ph, int64_t pw, int64_t dh,
                                          int64_t dw, DW_T *restrict dk, DW_T *restrict db)
{
    int64_t c0 = 0;
#if defined(__GNUC__) || defined(__clang__)
    if (KW == 3 && sw == 1) {
        typedef CNNX_CAT(DW_NAME, _vec) vec;
        enum { VW = DW_CB / 2 };
        const vec zero = {0};
        /* Output columns whose three taps all lie inside the row: lo .. hi. */
        int64_t lo = (pw + sw - 1) / sw, hi = W - 1 + pw - 2 * dw;
        hi = hi < 0 ? -1 : hi / sw;
        if (hi > OW - 1) hi = OW - 1;
        if (lo > OW) lo = OW;
        for (; c0 + VW <= C; c0 += VW) {
            if (db) {
                vec b = zero;
                for (int64_t e = 0; e < OH * OW; ++e) b += *(const vec *)(dy + e * C + c0);
                *(vec *)(db + c0) += b;
            }
            for (int64_t i = 0; i < KH; ++i) {
                vec a0 = zero, a1 = zero, a2 = zero;
                for (int64_t oh = 0; oh < OH; ++oh) {
                    const int64_t ih = oh * sh - ph + i * dh;
                    if (ih < 0 || ih >= H) continue;
                    const DW_T *restrict xr = x + ih * W * C + c0;
                    const DW_T *restrict gr = dy + oh * OW * C + c0;
                    /* Columns before lo and after hi have taps outside the row. */
#define DW_EDGE_COLUMN                                                                      \
    {                                                                                       \
        const vec gv = *(const vec *)(gr + ow * C);                                         \
        const int64_t iw = ow * sw - pw;                                                    \
        if (iw >= 0 && iw < W) a0 += gv * *(const vec *)(xr + iw * C);                      \
        if (iw + dw >= 0 && iw + dw < W) a1 += gv * *(const vec *)(xr + (iw + dw) * C);     \
        if (iw + 2 * dw >= 0 && iw + 2 * dw < W)                                            \
            a2 += gv * *(const vec *)(xr + (iw + 2 * dw) * C);                              \
    }
                    int64_t ow = 0;
                    for (; ow < lo; ++ow) DW_EDGE_COLUMN
                    for (; ow <= hi; ++ow) {
                        const vec gv = *(const vec *)(gr + ow * C);
                        const DW_T *restrict xi = xr + (ow * sw - pw) * C;
                        a0 += gv * *(const vec *)xi;
                        a1 += gv * *(const vec *)(xi + dw * C);
                        a2 += gv * *(const vec *)(xi + 2 * dw * C);
                    }
                    for (; ow < OW; ++ow) DW_EDGE_COLUMN
#undef DW_EDGE_COLUMN
                }
                DW_T *restrict d = dk + i * 3 * C + c0;
                *(vec *)d += a0;
                *(vec *)(d + C) += a1;
                *(vec *)(d + 2 * C) += a2;
            }
        }
    }
#endif
    if (c0 == C) return;
    for (int64_t oh = 0; oh < OH; ++oh) {
        for (int64_t ow = 0; ow < OW; ++ow) {
            const DW_T *restrict g = dy + (oh * OW + ow) * C;
            if (db)
                for (int64_t c = c0; c < C; ++c) db[c] += g[c];
            for (int64_t i = 0; i < KH; ++i) {
                const int64_t ih = oh * sh - ph + i * dh;
                if (ih < 0 || ih >= H) continue;
                for (int64_t j = 0; j < KW; ++j) {
                    const int64_t iw = ow * sw - pw + j * dw;
                    if (iw < 0 || iw >= W) continue;
                    const DW_T *restrict xi = x + (ih * W + iw) * C;
                    DW_T *restrict d = dk + (i * KW + j) * C;
                    for (int64_t c = c0; c < C; ++c) d[c] += g[c] * xi[c];
                }
            }
        }
    }
}

#undef DW_NAME
#undef DW_T
#undef DW_CB

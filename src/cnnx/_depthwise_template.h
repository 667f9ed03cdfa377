/* Depthwise convolution, NHWC: each channel convolved with its own KH x KW filter
 * (kernel laid out KH x KW x C), instantiated once per (dtype, ISA). The channel loops
 * are innermost and contiguous in x, y and the kernel, and `restrict`: the compiler
 * vectorises them under the path's flags. Every output element is summed in the same
 * tap order whatever the thread count.
 *
 * Include after defining DW_NAME and DW_T.
 */

/* One output row `oh` of one sample: y (OW x C) = bias + sum over the taps in range. */
static void CNNX_CAT(DW_NAME, _fwd_row)(const DW_T *restrict x, int64_t H, int64_t W,
                                        int64_t C, const DW_T *restrict k, int64_t KH,
                                        int64_t KW, int64_t sh, int64_t sw, int64_t ph,
                                        int64_t pw, int64_t dh, int64_t dw, int64_t oh,
                                        int64_t OW, const DW_T *restrict bias,
                                        DW_T *restrict y)
{
    for (int64_t ow = 0; ow < OW; ++ow) {
        DW_T *restrict yo = y + ow * C;
        for (int64_t c = 0; c < C; ++c) yo[c] = bias ? bias[c] : (DW_T)0;
        for (int64_t i = 0; i < KH; ++i) {
            const int64_t ih = oh * sh - ph + i * dh;
            if (ih < 0 || ih >= H) continue;
            for (int64_t j = 0; j < KW; ++j) {
                const int64_t iw = ow * sw - pw + j * dw;
                if (iw < 0 || iw >= W) continue;
                const DW_T *restrict xi = x + (ih * W + iw) * C;
                const DW_T *restrict kk = k + (i * KW + j) * C;
                for (int64_t c = 0; c < C; ++c) yo[c] += xi[c] * kk[c];
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
 * when given, db (C). */
static void CNNX_CAT(DW_NAME, _dk_sample)(const DW_T *restrict x, int64_t H, int64_t W,
                                          int64_t C, const DW_T *restrict dy, int64_t OH,
                                          int64_t OW, int64_t KH, int64_t KW, int64_t sh,
                                          int64_t sw, int64_t ph, int64_t pw, int64_t dh,
                                          int64_t dw, DW_T *restrict dk, DW_T *restrict db)
{
    for (int64_t oh = 0; oh < OH; ++oh) {
        for (int64_t ow = 0; ow < OW; ++ow) {
            const DW_T *restrict g = dy + (oh * OW + ow) * C;
            if (db)
                for (int64_t c = 0; c < C; ++c) db[c] += g[c];
            for (int64_t i = 0; i < KH; ++i) {
                const int64_t ih = oh * sh - ph + i * dh;
                if (ih < 0 || ih >= H) continue;
                for (int64_t j = 0; j < KW; ++j) {
                    const int64_t iw = ow * sw - pw + j * dw;
                    if (iw < 0 || iw >= W) continue;
                    const DW_T *restrict xi = x + (ih * W + iw) * C;
                    DW_T *restrict d = dk + (i * KW + j) * C;
                    for (int64_t c = 0; c < C; ++c) d[c] += g[c] * xi[c];
                }
            }
        }
    }
}

#undef DW_NAME
#undef DW_T

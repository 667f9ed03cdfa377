/* Max-pooling forward over one output row, instantiated once per (dtype, ISA).
 * Channels are the vector lanes (NHWC keeps them contiguous); the first maximum in
 * row-major window order wins, and the first NaN wins and stays, as in np.max.
 *
 * Include after defining PK_NAME, PK_T, PK_IT (same-width int), PK_VBYTES.
 */
#define PK_VW (PK_VBYTES / (int)sizeof(PK_T))

typedef PK_T CNNX_CAT(PK_NAME, _vec) __attribute__((vector_size(PK_VBYTES), aligned(sizeof(PK_T))));
typedef PK_IT CNNX_CAT(PK_NAME, _ivec) __attribute__((vector_size(PK_VBYTES), aligned(sizeof(PK_T))));

/* Output row of OW pixels: x is the sample (H x W x C, C a multiple of the vector lanes
 * or fewer than them: the caller pools other layers itself), window rows h0 : h1 (clipped);
 * column window ow * sw - pw, KW wide, clipped to the image. y and arg point at the
 * row's first pixel. arg (or NULL) gets the flat index (h * W + w) * C + c within the
 * sample.
 * avail: how many values x has from the sample's start to the end of the batch. */
static inline __attribute__((always_inline)) void CNNX_CAT(PK_NAME, _body)(
    const int track, const PK_T *restrict x, int64_t W, int64_t C, int64_t h0, int64_t h1,
    int64_t OW, int64_t KW, int64_t sw, int64_t pw, PK_T *restrict y, int32_t *restrict arg,
    int64_t avail)
{
    typedef CNNX_CAT(PK_NAME, _vec) vec;
    typedef CNNX_CAT(PK_NAME, _ivec) ivec;
    ivec lane;
    for (int l = 0; l < PK_VW; ++l) lane[l] = l;

    for (int64_t ow = 0; ow < OW; ++ow, y += C, arg += track ? C : 0) {
        int64_t w0 = ow * sw - pw, w1 = w0 + KW;
        if (w0 < 0) w0 = 0;
        if (w1 > W) w1 = W;
        if (C < PK_VW) {
            /* Fewer channels than lanes: one vector per window pixel, whose spare lanes
             * read the next pixels' values and are dropped. Where that would read past
             * the batch (avail values from x on), one lane at a time. */
            const int64_t first = (h0 * W + w0) * C;
            if (((h1 - 1) * W + (w1 - 1)) * C + PK_VW <= avail) {
                vec best = *(const vec *)(x + first);
                ivec where = lane + (PK_IT)first;
                for (int64_t h = h0; h < h1; ++h) {
                    for (int64_t w = w0; w < w1; ++w) {
                        const int64_t at = (h * W + w) * C;
                        const vec v = *(const vec *)(x + at);
                        const ivec take = (v > best) | ((v != v) & (best == best));
                        best = (vec)(((ivec)v & take) | ((ivec)best & ~take));
                        if (track) where = ((lane + (PK_IT)at) & take) | (where & ~take);
                    }
                }
                for (int64_t c = 0; c < C; ++c) {
                    y[c] = best[c];
                    if (track) arg[c] = (int32_t)where[c];
                }
            } else {
                for (int64_t c = 0; c < C; ++c) {
                    PK_T best = x[first + c];
                    int32_t where = (int32_t)(first + c);
                    for (int64_t h = h0; h < h1; ++h) {
                        for (int64_t w = w0; w < w1; ++w) {
                            const int64_t at = (h * W + w) * C + c;
                            const PK_T v = x[at];
                            if ((v > best) | ((v != v) & (best == best))) {
                                best = v;
                                where = (int32_t)at;
                            }
                        }
                    }
                    y[c] = best;
                    if (track) arg[c] = where;
                }
            }
            continue;
        }
        for (int64_t c = 0; c < C; c += PK_VW) {
            int64_t first = (h0 * W + w0) * C + c;
            vec best = *(const vec *)(x + first);
            ivec where = lane + (PK_IT)first;
            for (int64_t h = h0; h < h1; ++h) {
                for (int64_t w = w0; w < w1; ++w) {
                    const int64_t at = (h * W + w) * C + c;
                    const vec v = *(const vec *)(x + at);
                    const ivec take = (v > best) | ((v != v) & (best == best));
                    best = (vec)(((ivec)v & take) | ((ivec)best & ~take));
                    if (track) where = ((lane + (PK_IT)at) & take) | (where & ~take);
                }
            }
            *(vec *)(y + c) = best;
            if (track)
                for (int l = 0; l < PK_VW; ++l) arg[c + l] = (int32_t)where[l];
        }
    }
}

/* The common 2 x 2 window at stride 2, wholly inside the image, with its four reads
 * written out: the same selections in the same order as the loops above, without their
 * bounds (AVX2: one image's 26 x 26 x 32 pooling in W1 4.4-4.6 -> 2.9 us, W2's 62 x 62 x
 * 32 on 2 threads 10.6-18.9 -> 7.0-7.5; with the indices, 128 images of W1's 632-722 ->
 * 333-347 us). */
static inline __attribute__((always_inline)) void CNNX_CAT(PK_NAME, _2x2)(
    const int track, const PK_T *restrict x, int64_t W, int64_t C, int64_t h0, int64_t OW,
    PK_T *restrict y, int32_t *restrict arg)
{
    typedef CNNX_CAT(PK_NAME, _vec) vec;
    typedef CNNX_CAT(PK_NAME, _ivec) ivec;
    ivec lane;
    for (int l = 0; l < PK_VW; ++l) lane[l] = l;
    const int64_t step[3] = {C, W * C, W * C + C};   /* the window's other three */
    for (int64_t ow = 0; ow < OW; ++ow, y += C, arg += track ? C : 0) {
        for (int64_t c = 0; c < C; c += PK_VW) {
            const int64_t first = (h0 * W + 2 * ow) * C + c;
            vec best = *(const vec *)(x + first);
            ivec where = lane + (PK_IT)first;
            for (int k = 0; k < 3; ++k) {
                const vec v = *(const vec *)(x + first + step[k]);
                const ivec take = (v > best) | ((v != v) & (best == best));
                best = (vec)(((ivec)v & take) | ((ivec)best & ~take));
                if (track) where = ((lane + (PK_IT)(first + step[k])) & take) | (where & ~take);
            }
            *(vec *)(y + c) = best;
            if (track)
                for (int l = 0; l < PK_VW; ++l) arg[c + l] = (int32_t)where[l];
        }
    }
}

/* arg NULL: the maxima alone (inference: no backward pass reads the indices, whose
 * scalar stores took more time than the maxima; one image's 26 x 26 x 32 pooling in W1,
 * 7 -> 5 us). */
static void PK_NAME(const PK_T *restrict x, int64_t W, int64_t C, int64_t h0, int64_t h1,
                    int64_t OW, int64_t KW, int64_t sw, int64_t pw, PK_T *restrict y,
                    int32_t *restrict arg, int64_t avail)
{
    if (KW == 2 && sw == 2 && pw == 0 && h1 - h0 == 2 && 2 * OW <= W && C % PK_VW == 0) {
        if (arg)
            CNNX_CAT(PK_NAME, _2x2)(1, x, W, C, h0, OW, y, arg);
        else
            CNNX_CAT(PK_NAME, _2x2)(0, x, W, C, h0, OW, y, arg);
        return;
    }
    if (arg)
        CNNX_CAT(PK_NAME, _body)(1, x, W, C, h0, h1, OW, KW, sw, pw, y, arg, avail);
    else
        CNNX_CAT(PK_NAME, _body)(0, x, W, C, h0, h1, OW, KW, sw, pw, y, arg, avail);
}

#undef PK_VW
#undef PK_NAME
#undef PK_T
#undef PK_IT

/* Direct convolution microkernels for layers with few channels, instantiated once per
 * (dtype, ISA, filter block). Used where an im2col product would waste its vector lanes
 * (few output channels) or spend its time packing (one to four input channels).
 *
 * Both kernels vectorise along output pixels, not channels. They read a "planar" copy of
 * one sample made by the caller: channel-major, zero-padded, and with the columns split
 * into sw phases (w mod sw), so that the input under VW consecutive output pixels is VW
 * consecutive values for any stride and dilation:
 *
 *     plane (c, row hp, phase q) of L values at xp + ((c * Hp + hp) * sw + q) * L,
 *     value at pos = padded column pos * sw + q of padded row hp.
 *
 * Output pixel vector j of a sample covers row oh = j / nvr, columns ow0 = (j % nvr) * VW
 * onward; its input for tap k (channel c, kernel row i, column t) starts at
 *     xp + oh * rowstep + ow0 + koff[k],   rowstep = sh * sw * L,
 *     koff[k] = ((c * Hp + i * dh) * sw + (t * dw) % sw) * L + (t * dw) / sw.
 * Lanes past the row's end (ow >= OW) read real or zero data and are discarded (forward)
 * or masked to zero before use (kernel gradient), so a NaN or inf there changes nothing.
 *
 * Include after defining:
 *   DK_NAME  prefix of the two functions   DK_T, DK_IT  element type and same-width int
 *   DK_VBYTES vector bytes   DK_FB filters per block   DK_NP pixel vectors (or taps) per tile
 *
 * Like every kernel template, it is compiled in its SIMD path's own translation unit
 * (_simd_<path>.c) with that path's compiler flags.
 */
#define DK_VW (DK_VBYTES / (int)sizeof(DK_T))

typedef DK_T CNNX_CAT(DK_NAME, _vec) __attribute__((vector_size(DK_VBYTES), aligned(sizeof(DK_T))));
typedef DK_IT CNNX_CAT(DK_NAME, _ivec) __attribute__((vector_size(DK_VBYTES), aligned(sizeof(DK_T))));

/* Forward: pixel vectors j0 : j0+nv (nv <= DK_NP) of one sample, filters f0 : f0+nf
 * (nf <= DK_FB) of the block whose packed weights are w (K x DK_FB, tap-major).
 * y points at the sample's output, at channel f0, F channels a pixel. Adds the bias
 * (DK_FB values, or NULL), applies ReLU when asked. */
static void CNNX_CAT(DK_NAME, _fwd)(
    int64_t K, const DK_T *restrict xp, const int64_t *restrict koff, int64_t rowstep,
    const DK_T *restrict w, int64_t j0, int nv, int64_t nvr, int64_t OW, DK_T *restrict y, int64_t F,
    int nf, const DK_T *restrict bias, int relu)
{
    typedef CNNX_CAT(DK_NAME, _vec) vec;
    typedef CNNX_CAT(DK_NAME, _ivec) ivec;
    const vec zero = {0};
    vec acc[DK_NP][DK_FB];
    const DK_T *base[DK_NP];
    int64_t oh[DK_NP], ow0[DK_NP];

    CNNX_UNROLL
    for (int p = 0; p < DK_NP; ++p) {
        int64_t j = j0 + (p < nv ? p : 0);   /* a partial tile repeats its first vector */
        oh[p] = j / nvr;
        ow0[p] = (j - oh[p] * nvr) * DK_VW;
        base[p] = xp + oh[p] * rowstep + ow0[p];
        CNNX_UNROLL
        for (int f = 0; f < DK_FB; ++f) acc[p][f] = zero;
    }
    for (int64_t k = 0; k < K; ++k, w += DK_FB) {
        const int64_t o = koff[k];
        vec xv[DK_NP];
        CNNX_UNROLL
        for (int p = 0; p < DK_NP; ++p) xv[p] = *(const vec *)(base[p] + o);
        CNNX_UNROLL
        for (int f = 0; f < DK_FB; ++f) {
            const DK_T s = w[f];
            CNNX_UNROLL
            for (int p = 0; p < DK_NP; ++p) acc[p][f] += s * xv[p];
        }
    }

    /* Epilogue: bias and ReLU on whole vectors, then the transpose to channels-last
     * (each pixel takes one value from each filter's vector), unrolled when whole. */
    for (int p = 0; p < nv; ++p) {
        DK_T t[DK_FB][DK_VW];
        CNNX_UNROLL
        for (int f = 0; f < DK_FB; ++f) {
            vec r = acc[p][f];
            if (bias) r += bias[f];
            /* keep r where !(r <= 0): zeroes negatives, lets NaN through */
            if (relu) r = (vec)((ivec)r & ~(ivec)(r <= zero));
            *(vec *)t[f] = r;
        }
        const int64_t lanes = OW - ow0[p] < DK_VW ? OW - ow0[p] : DK_VW;
        DK_T *dst = y + (oh[p] * OW + ow0[p]) * F;
        if (lanes == DK_VW && nf == DK_FB) {
            CNNX_UNROLL
            for (int l = 0; l < DK_VW; ++l) {
                CNNX_UNROLL
                for (int f = 0; f < DK_FB; ++f) dst[l * F + f] = t[f][l];
            }
        } else {
            for (int64_t l = 0; l < lanes; ++l)
                for (int f = 0; f < nf; ++f) dst[l * F + f] = t[f][l];
        }
    }
}

/* Kernel gradient of one sample for taps koff[0 : nk] (nk <= DK_NP; koff holds DK_NP
 * entries) and filters f0 : f0+nf (nf <= DK_FB): dw[k * ldw + f] += sum over pixels of
 * x(tap k) * dy(filter f). dyp points at filter f0's plane of the planar dy (OH x nvr*VW
 * per filter, fs apart, zero past each row's end). ntail: valid lanes of a row's last
 * vector. Each sum runs in one fixed order, whatever the caller's threads. */
static void CNNX_CAT(DK_NAME, _kgrad)(
    int64_t OH, int64_t nvr, int ntail, const DK_T *restrict xp, int64_t rowstep,
    const int64_t *restrict koff, int nk, const DK_T *restrict dyp, int64_t fs,
    DK_T *restrict dw, int64_t ldw, int nf)
{
    typedef CNNX_CAT(DK_NAME, _vec) vec;
    typedef CNNX_CAT(DK_NAME, _ivec) ivec;
    const vec zero = {0};
    ivec full, tail;
    vec acc[DK_FB][DK_NP];
    int64_t o[DK_NP];

    CNNX_UNROLL
    for (int l = 0; l < DK_VW; ++l) {
        full[l] = -1;
        tail[l] = l < ntail ? -1 : 0;
    }
    CNNX_UNROLL
    for (int p = 0; p < DK_NP; ++p) {
        o[p] = koff[p];
        CNNX_UNROLL
        for (int f = 0; f < DK_FB; ++f) acc[f][p] = zero;
    }
    for (int64_t oh = 0; oh < OH; ++oh) {
        const DK_T *xrow = xp + oh * rowstep;
        const DK_T *drow = dyp + oh * nvr * DK_VW;
        for (int64_t v = 0; v < nvr; ++v) {
            const ivec m = v == nvr - 1 ? tail : full;
            vec d[DK_FB];
            CNNX_UNROLL
            for (int f = 0; f < DK_FB; ++f) d[f] = *(const vec *)(drow + f * fs + v * DK_VW);
            CNNX_UNROLL
            for (int p = 0; p < DK_NP; ++p) {
                const vec xv = (vec)((ivec)(*(const vec *)(xrow + o[p] + v * DK_VW)) & m);
                CNNX_UNROLL
                for (int f = 0; f < DK_FB; ++f) acc[f][p] += d[f] * xv;
            }
        }
    }
    for (int p = 0; p < nk; ++p) {
        for (int f = 0; f < nf; ++f) {
            DK_T t[DK_VW], s = 0;
            *(vec *)t = acc[f][p];
            for (int l = 0; l < DK_VW; ++l) s += t[l];
            dw[p * ldw + f] += s;
        }
    }
}

#undef DK_VW
#undef DK_NAME
#undef DK_T
#undef DK_IT
#undef DK_FB
#undef DK_NP

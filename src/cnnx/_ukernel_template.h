/* One register-blocked GEMM microkernel, instantiated once per (dtype, ISA).
 *
 * Include this file after defining:
 *   UK_NAME   function name            UK_T     element type (float, double)
 *   UK_IT     integer type of UK_T's width (for the ReLU bit mask)
 *   UK_VBYTES vector width in bytes    UK_MR    rows of the tile
 *   UK_NV     vectors per tile row
 *   UK_AROWS  1: A is row by row (element (i, k) at a[i*lda + k]: a packed strip, lda =
 *                kc, or rows of a row-major matrix read in place);
 *             0: A is packed k-major   (element (i, k) at a[k*MR + i]; lda unused)
 *
 * The kernel computes the MR x NR tile  C = [C +] A_panel @ B_panel  over kc steps,
 * where row k of B_panel (NR values) starts at b + k*ldb: ldb = NR for a packed panel,
 * or the row length of a row-major B read in place. Then it adds the bias and applies
 * ReLU when asked. Only the first mr rows and nr columns are written, so the caller can pad
 * partial tiles with zeros in the packed panels.
 */
#define UK_VW (UK_VBYTES / (int)sizeof(UK_T))
#define UK_NR (UK_NV * UK_VW)

typedef UK_T CNNX_CAT(UK_NAME, _vec) __attribute__((vector_size(UK_VBYTES), aligned(sizeof(UK_T))));
typedef UK_IT CNNX_CAT(UK_NAME, _ivec) __attribute__((vector_size(UK_VBYTES), aligned(sizeof(UK_T))));

static void UK_NAME(int64_t kc, const UK_T *restrict a, int64_t lda, const UK_T *restrict b,
                    int64_t ldb, UK_T *restrict c, int64_t ldc, int mr, int nr,
                    int accumulate, const UK_T *restrict bias, int relu)
{
    typedef CNNX_CAT(UK_NAME, _vec) vec;
    typedef CNNX_CAT(UK_NAME, _ivec) ivec;
    vec acc[UK_MR][UK_NV];
    const vec zero = {0};

    CNNX_UNROLL
    for (int i = 0; i < UK_MR; ++i) {
        CNNX_UNROLL
        for (int v = 0; v < UK_NV; ++v) acc[i][v] = zero;
    }
    for (int64_t k = 0; k < kc; ++k) {
        vec bv[UK_NV];
        CNNX_UNROLL
        for (int v = 0; v < UK_NV; ++v) bv[v] = *(const vec *)(b + v * UK_VW);
        CNNX_UNROLL
        for (int i = 0; i < UK_MR; ++i) {
#if UK_AROWS
            const UK_T s = a[i * lda];
#else
            const UK_T s = a[i];
#endif
            CNNX_UNROLL
            for (int v = 0; v < UK_NV; ++v) acc[i][v] += s * bv[v];
        }
#if UK_AROWS
        a += 1;
#else
        a += UK_MR;
#endif
        b += ldb;
    }

    if (mr == UK_MR && nr == UK_NR) {
        CNNX_UNROLL
        for (int i = 0; i < UK_MR; ++i) {
            CNNX_UNROLL
            for (int v = 0; v < UK_NV; ++v) {
                vec *dst = (vec *)(c + i * ldc + v * UK_VW);
                vec r = acc[i][v];
                if (accumulate) r += *dst;
                if (bias) r += *(const vec *)(bias + v * UK_VW);
                /* keep r where !(r <= 0): zeroes negatives, lets NaN through */
                if (relu) r = (vec)((ivec)r & ~(ivec)(r <= zero));
                *dst = r;
            }
        }
    } else {
        UK_T tile[UK_MR * UK_NR];
        CNNX_UNROLL
        for (int i = 0; i < UK_MR; ++i) {
            CNNX_UNROLL
            for (int v = 0; v < UK_NV; ++v) *(vec *)(tile + i * UK_NR + v * UK_VW) = acc[i][v];
        }
        for (int i = 0; i < mr; ++i) {
            for (int j = 0; j < nr; ++j) {
                UK_T r = tile[i * UK_NR + j];
                if (accumulate) r += c[i * ldc + j];
                if (bias) r += bias[j];
                if (relu && r <= 0) r = 0;
                c[i * ldc + j] = r;
            }
        }
    }
}

#undef UK_VW
#undef UK_NR
#undef UK_NAME
#undef UK_T
#undef UK_IT
#undef UK_NV
#undef UK_AROWS

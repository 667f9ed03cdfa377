/* The baseline path, compiled with the platform's default flags: 128-bit vectors (SSE2
 * on x86-64, NEON on aarch64) where the compiler has GNU vector extensions, else
 * (MSVC) a plain C microkernel the compiler may vectorise, and no direct kernels. */
#if defined(__GNUC__) || defined(__clang__)

#define PATH_NAME generic
#if defined(__aarch64__)
#  define PATH_LABEL "neon"
#else
#  define PATH_LABEL "generic"
#endif
#define PATH_VBYTES 16
#define PATH_REGS 16
#define PATH_MR 6
#include "_simd_path.h"

#else

#include "_simd.h"

#define SCALAR_UKERNEL(NAME, T, AROWS)                                                  \
    static void NAME(int64_t kc, const T *a, int64_t lda, const T *b, int64_t ldb,     \
                     T *c, int64_t ldc, int mr, int nr, int accumulate, const T *bias,  \
                     int relu)                                                          \
    {                                                                                   \
        T acc[4 * 8] = {0};                                                             \
        for (int64_t k = 0; k < kc; ++k, b += ldb)                                      \
            for (int i = 0; i < 4; ++i)                                                 \
                for (int j = 0; j < 8; ++j)                                             \
                    acc[i * 8 + j] += (AROWS ? a[i * lda + k] : a[k * 4 + i]) * b[j];   \
        for (int i = 0; i < mr; ++i)                                                    \
            for (int j = 0; j < nr; ++j) {                                              \
                T r = acc[i * 8 + j];                                                   \
                if (accumulate) r += c[i * ldc + j];                                    \
                if (bias) r += bias[j];                                                 \
                if (relu && r <= 0) r = 0;                                              \
                c[i * ldc + j] = r;                                                     \
            }                                                                           \
    }
SCALAR_UKERNEL(uk_f32_k, float, 0)
SCALAR_UKERNEL(uk_f32_r, float, 1)
SCALAR_UKERNEL(uk_f64_k, double, 0)
SCALAR_UKERNEL(uk_f64_r, double, 1)

/* The depthwise, batch normalization and Winograd kernels are plain C: MSVC compiles
 * them too. */
#if defined(_MSC_VER) && !defined(restrict)
#  define restrict __restrict
#endif
#define DW_NAME dw_f32
#define DW_T float
#define DW_CB 8
#include "_depthwise_template.h"
#define DW_NAME dw_f64
#define DW_T double
#define DW_CB 4
#include "_depthwise_template.h"
#include "_plain_templates.h"

const cnnx_kernel_table cnnx_table_generic = {
    .name = "scalar", .uk_f32 = {uk_f32_k, uk_f32_r}, .uk_f64 = {uk_f64_k, uk_f64_r},
    .mr_f32 = 4, .nr_f32 = 8, .mr_f64 = 4, .nr_f64 = 8, .direct = 0, .vw_f32 = 1,
    .vw_f64 = 1, CNNX_DW_FIELDS, CNNX_BN_FIELDS,
    CNNX_WG_FIELDS, CNNX_GV_FIELDS,
};

#endif

/* GEMM microkernels for every instruction set cnnx knows, and the run-time choice
 * between them. One build carries all paths; cnnx_simd_select() picks the best one
 * the CPU supports (or the one CNNX_SIMD forces) when the module is imported.
 *
 * Paths: "avx512" (AVX-512F), "avx2" (AVX2 + FMA) and "generic" on x86-64 (SSE2 vectors),
 * "neon" on aarch64 (the generic kernel on 128-bit NEON vectors), and "scalar" where
 * the compiler has no GNU vector extensions (MSVC).
 */
#ifndef CNNX_SIMD_H
#define CNNX_SIMD_H

#include <stdint.h>
#include <string.h>

#define CNNX_CAT_(a, b) a##b
#define CNNX_CAT(a, b) CNNX_CAT_(a, b)

typedef void (*cnnx_ukernel_f32)(long, const float *, const float *, long, float *, long, int,
                                 int, int, const float *, int);
typedef void (*cnnx_ukernel_f64)(long, const double *, const double *, long, double *, long,
                                 int, int, int, const double *, int);
/* Pixel-vectorised direct convolution (_direct_template.h): forward and kernel-gradient
 * tiles. */
typedef void (*cnnx_dfwd_f32)(long, const float *, const long *, long, const float *, long,
                              int, long, long, float *, long, int, const float *, int);
typedef void (*cnnx_dfwd_f64)(long, const double *, const long *, long, const double *,
                              long, int, long, long, double *, long, int, const double *, int);
typedef void (*cnnx_dkgrad_f32)(long, long, int, const float *, long, const long *, int,
                                const float *, long, float *, long, int);
typedef void (*cnnx_dkgrad_f64)(long, long, int, const double *, long, const long *, int,
                                const double *, long, double *, long, int);
/* Channel-vectorised direct convolution (_nhwc_template.h). */
typedef void (*cnnx_nfwd_f32)(long, const float *, const long *, const long *, int,
                              const float *, long, float *, const float *, int);
typedef void (*cnnx_nfwd_f64)(long, const double *, const long *, const long *, int,
                              const double *, long, double *, const double *, int);
typedef void (*cnnx_nkgrad_f32)(long, long, long, long, const float *, const long *, int,
                                const float *, const float *, long, float *, float *);
typedef void (*cnnx_nkgrad_f64)(long, long, long, long, const double *, const long *, int,
                                const double *, const double *, long, double *, double *);
/* Max pooling's row (_pool_template.h). */
typedef void (*cnnx_maxpool_f32)(const float *, long, long, long, long, long, long, long,
                                 long, float *, int32_t *, long);
typedef void (*cnnx_maxpool_f64)(const double *, long, long, long, long, long, long, long,
                                 long, double *, int32_t *, long);

#if defined(__GNUC__) || defined(__clang__)
#  if defined(__clang__)
#    define CNNX_UNROLL _Pragma("unroll")
#  else
#    define CNNX_UNROLL _Pragma("GCC unroll 16")
#  endif

/* Baseline: 128-bit vectors (SSE2 on x86-64, NEON on aarch64). Each kernel comes in
 * two A layouts: _k (k-major panel) and _r (row-major panel). */
#define CNNX_GENERIC_ATTR
#define UK_PATH generic
#define UK_VBYTES 16
#define UK_MR 6
#define UK_ATTR_ CNNX_GENERIC_ATTR
#include "_ukernel_both.h"
#define UK_PATH generic
#define UK_VBYTES 16
#define UK_ATTR_ CNNX_GENERIC_ATTR
#define DK_REGS 16
#include "_direct_both.h"

#  if defined(__x86_64__) || defined(_M_X64)
#    define CNNX_X86 1
#define UK_PATH avx2
#define UK_VBYTES 32
#define UK_MR 6
#define UK_ATTR_ __attribute__((target("avx2,fma")))
#include "_ukernel_both.h"
#define UK_PATH avx2
#define UK_VBYTES 32
#define UK_ATTR_ __attribute__((target("avx2,fma")))
#define DK_REGS 16
#include "_direct_both.h"
#define UK_PATH avx512
#define UK_VBYTES 64
#define UK_MR 12
#define UK_ATTR_ __attribute__((target("avx512f")))
#include "_ukernel_both.h"
#define UK_PATH avx512
#define UK_VBYTES 64
#define UK_ATTR_ __attribute__((target("avx512f")))
#define DK_REGS 32
#include "_direct_both.h"
#  endif
#  if defined(__aarch64__)
#    define CNNX_GENERIC_NAME "neon"
#  else
#    define CNNX_GENERIC_NAME "generic"
#  endif

#else /* no GNU vector extensions: a plain C tile the compiler may vectorise */
#  define CNNX_GENERIC_NAME "scalar"
#  define CNNX_SCALAR_UKERNEL(NAME, T, AROWS)                                           \
    static void NAME(long kc, const T *a, const T *b, long ldb, T *c, long ldc, int mr, \
                     int nr, int accumulate, const T *bias, int relu)                   \
    {                                                                                   \
        T acc[4 * 8] = {0};                                                             \
        for (long k = 0; k < kc; ++k, b += ldb)                                         \
            for (int i = 0; i < 4; ++i)                                                 \
                for (int j = 0; j < 8; ++j)                                             \
                    acc[i * 8 + j] += (AROWS ? a[i * kc + k] : a[k * 4 + i]) * b[j];    \
        for (int i = 0; i < mr; ++i)                                                    \
            for (int j = 0; j < nr; ++j) {                                              \
                T r = acc[i * 8 + j];                                                   \
                if (accumulate) r += c[i * ldc + j];                                    \
                if (bias) r += bias[j];                                                 \
                if (relu && r <= 0) r = 0;                                              \
                c[i * ldc + j] = r;                                                     \
            }                                                                           \
    }
CNNX_SCALAR_UKERNEL(cnnx_uk_f32_generic_k, float, 0)
CNNX_SCALAR_UKERNEL(cnnx_uk_f32_generic_r, float, 1)
CNNX_SCALAR_UKERNEL(cnnx_uk_f64_generic_k, double, 0)
CNNX_SCALAR_UKERNEL(cnnx_uk_f64_generic_r, double, 1)
#endif

/* The chosen path. Written only by cnnx_simd_select (at import, or from the tests).
 * Index 0: A panel k-major; index 1: A panel row-major. */
static cnnx_ukernel_f32 cnnx_uk_f32[2] = {0, 0};
static cnnx_ukernel_f64 cnnx_uk_f64[2] = {0, 0};
static int cnnx_mr_f32 = 0, cnnx_nr_f32 = 0, cnnx_mr_f64 = 0, cnnx_nr_f64 = 0;
static const char *cnnx_simd_name = "none";
/* The other kernels of the chosen path (_direct_both.h). cnnx_dk_ok is 0 where the path
 * has none (then im2col products and the Cython pooling loop do all). cnnx_dk_vw_*:
 * vector lanes.
 * Pixel-vectorised direct convolution, index 0: blocks of 2 filters, 1: blocks of 4;
 * cnnx_dk_np: pixel vectors (forward) or taps (kernel gradient) per tile. */
static cnnx_dfwd_f32 cnnx_dk_fwd_f32[2] = {0, 0};
static cnnx_dfwd_f64 cnnx_dk_fwd_f64[2] = {0, 0};
static cnnx_dkgrad_f32 cnnx_dk_kgrad_f32[2] = {0, 0};
static cnnx_dkgrad_f64 cnnx_dk_kgrad_f64[2] = {0, 0};
static int cnnx_dk_np[2] = {0, 0};
/* Channel-vectorised direct convolution, index 0: tiles 1 vector of channels wide,
 * 1: 2 vectors; cnnx_nk_mr: pixels (forward) or taps (kernel gradient) per tile. */
static cnnx_nfwd_f32 cnnx_nk_fwd_f32[2] = {0, 0};
static cnnx_nfwd_f64 cnnx_nk_fwd_f64[2] = {0, 0};
static cnnx_nkgrad_f32 cnnx_nk_kgrad_f32[2] = {0, 0};
static cnnx_nkgrad_f64 cnnx_nk_kgrad_f64[2] = {0, 0};
static int cnnx_nk_mr[2] = {0, 0};
/* Max pooling's row. */
static cnnx_maxpool_f32 cnnx_mp_f32 = 0;
static cnnx_maxpool_f64 cnnx_mp_f64 = 0;
static int cnnx_dk_vw_f32 = 0, cnnx_dk_vw_f64 = 0, cnnx_dk_ok = 0;

/* table_f32 idx = cnnx_dk_f32_<path><name>, and the same for f64. */
#define CNNX_BOTH(table, idx, path, name)                                              \
    do {                                                                               \
        table##_f32 idx = cnnx_dk_f32_##path##name;                                    \
        table##_f64 idx = cnnx_dk_f64_##path##name;                                    \
    } while (0)

/* Points the dispatch at one path's kernels and their tile shapes. */
#define CNNX_USE(path)                                                                 \
    do {                                                                               \
        cnnx_uk_f32[0] = cnnx_uk_f32_##path##_k; cnnx_uk_f32[1] = cnnx_uk_f32_##path##_r; \
        cnnx_uk_f64[0] = cnnx_uk_f64_##path##_k; cnnx_uk_f64[1] = cnnx_uk_f64_##path##_r; \
        cnnx_mr_f32 = cnnx_uk_f32_##path##_MR; cnnx_nr_f32 = cnnx_uk_f32_##path##_NR;      \
        cnnx_mr_f64 = cnnx_uk_f64_##path##_MR; cnnx_nr_f64 = cnnx_uk_f64_##path##_NR;      \
        CNNX_BOTH(cnnx_dk_fwd, [0], path, _fb2_fwd);                                       \
        CNNX_BOTH(cnnx_dk_fwd, [1], path, _fb4_fwd);                                       \
        CNNX_BOTH(cnnx_dk_kgrad, [0], path, _fb2_kgrad);                                   \
        CNNX_BOTH(cnnx_dk_kgrad, [1], path, _fb4_kgrad);                                   \
        cnnx_dk_np[0] = cnnx_dk_any_##path##_NP2; cnnx_dk_np[1] = cnnx_dk_any_##path##_NP4; \
        CNNX_BOTH(cnnx_nk_fwd, [0], path, _nhwc1_fwd);                                     \
        CNNX_BOTH(cnnx_nk_fwd, [1], path, _nhwc2_fwd);                                     \
        CNNX_BOTH(cnnx_nk_kgrad, [0], path, _nhwc1_kgrad);                                 \
        CNNX_BOTH(cnnx_nk_kgrad, [1], path, _nhwc2_kgrad);                                 \
        cnnx_nk_mr[0] = cnnx_dk_any_##path##_NHWC1_MR;                                     \
        cnnx_nk_mr[1] = cnnx_dk_any_##path##_NHWC2_MR;                                     \
        CNNX_BOTH(cnnx_mp, , path, _maxpool);                                              \
        cnnx_dk_vw_f32 = cnnx_dk_f32_##path##_VW; cnnx_dk_vw_f64 = cnnx_dk_f64_##path##_VW; \
        cnnx_dk_ok = 1;                                                                    \
    } while (0)

static int cnnx_simd_available(const char *name)
{
    if (strcmp(name, CNNX_GENERIC_NAME) == 0) return 1;
#if defined(CNNX_X86)
    __builtin_cpu_init();
    if (strcmp(name, "avx2") == 0)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (strcmp(name, "avx512") == 0) return __builtin_cpu_supports("avx512f");
#endif
    return 0;
}

/* Selects the named path, or the best available one when name is NULL or empty.
 * Returns 0 on success, -1 when the named path is unknown or unsupported here. */
static int cnnx_simd_select(const char *name)
{
    if (name == 0 || name[0] == 0) {
        name = cnnx_simd_available("avx512") ? "avx512"
             : cnnx_simd_available("avx2")   ? "avx2" : CNNX_GENERIC_NAME;
    }
    if (!cnnx_simd_available(name)) return -1;
#if defined(CNNX_X86)
    if (strcmp(name, "avx512") == 0) {
        CNNX_USE(avx512);
        cnnx_simd_name = "avx512";
        return 0;
    }
    if (strcmp(name, "avx2") == 0) {
        CNNX_USE(avx2);
        cnnx_simd_name = "avx2";
        return 0;
    }
#endif
#if defined(__GNUC__) || defined(__clang__)
    CNNX_USE(generic);
#else
    cnnx_uk_f32[0] = cnnx_uk_f32_generic_k; cnnx_uk_f32[1] = cnnx_uk_f32_generic_r;
    cnnx_uk_f64[0] = cnnx_uk_f64_generic_k; cnnx_uk_f64[1] = cnnx_uk_f64_generic_r;
    cnnx_mr_f32 = cnnx_mr_f64 = 4;
    cnnx_nr_f32 = cnnx_nr_f64 = 8;
#endif
    cnnx_simd_name = CNNX_GENERIC_NAME;
    return 0;
}

/* What compiled this module, for show_config(). */
#if defined(__clang__)
#  define CNNX_COMPILER "clang " __clang_version__
#elif defined(__GNUC__)
#  define CNNX_COMPILER "gcc " __VERSION__
#elif defined(_MSC_VER)
#  define CNNX_STR_(x) #x
#  define CNNX_STR(x) CNNX_STR_(x)
#  define CNNX_COMPILER "msvc " CNNX_STR(_MSC_VER)
#else
#  define CNNX_COMPILER "unknown"
#endif

#if defined(_OPENMP)
#  include <omp.h>
#  define CNNX_OPENMP _OPENMP
#else
#  define CNNX_OPENMP 0
static int omp_get_thread_num(void) { return 0; }
#endif

#endif /* CNNX_SIMD_H */

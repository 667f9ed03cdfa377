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

typedef void (*cnnx_ukernel_f32)(long, const float *, const float *, float *, long, int, int,
                                 int, const float *, int);
typedef void (*cnnx_ukernel_f64)(long, const double *, const double *, double *, long, int,
                                 int, int, const double *, int);

#if defined(__GNUC__) || defined(__clang__)
#  if defined(__clang__)
#    define CNNX_UNROLL _Pragma("unroll")
#  else
#    define CNNX_UNROLL _Pragma("GCC unroll 16")
#  endif

/* Baseline: 128-bit vectors (SSE2 on x86-64, NEON on aarch64). */
#define UK_NAME cnnx_uk_f32_generic
#define UK_T float
#define UK_IT int32_t
#define UK_VBYTES 16
#define UK_MR 6
#define UK_NV 2
#define UK_ATTR
#include "_ukernel_template.h"
#define UK_NAME cnnx_uk_f64_generic
#define UK_T double
#define UK_IT int64_t
#define UK_VBYTES 16
#define UK_MR 6
#define UK_NV 2
#define UK_ATTR
#include "_ukernel_template.h"

#  if defined(__x86_64__) || defined(_M_X64)
#    define CNNX_X86 1
#define UK_NAME cnnx_uk_f32_avx2
#define UK_T float
#define UK_IT int32_t
#define UK_VBYTES 32
#define UK_MR 6
#define UK_NV 2
#define UK_ATTR __attribute__((target("avx2,fma")))
#include "_ukernel_template.h"
#define UK_NAME cnnx_uk_f64_avx2
#define UK_T double
#define UK_IT int64_t
#define UK_VBYTES 32
#define UK_MR 6
#define UK_NV 2
#define UK_ATTR __attribute__((target("avx2,fma")))
#include "_ukernel_template.h"
#define UK_NAME cnnx_uk_f32_avx512
#define UK_T float
#define UK_IT int32_t
#define UK_VBYTES 64
#define UK_MR 12
#define UK_NV 2
#define UK_ATTR __attribute__((target("avx512f")))
#include "_ukernel_template.h"
#define UK_NAME cnnx_uk_f64_avx512
#define UK_T double
#define UK_IT int64_t
#define UK_VBYTES 64
#define UK_MR 12
#define UK_NV 2
#define UK_ATTR __attribute__((target("avx512f")))
#include "_ukernel_template.h"
#  endif
#  if defined(__aarch64__)
#    define CNNX_GENERIC_NAME "neon"
#  else
#    define CNNX_GENERIC_NAME "generic"
#  endif

#else /* no GNU vector extensions: a plain C tile the compiler may vectorise */
#  define CNNX_GENERIC_NAME "scalar"
#  define CNNX_SCALAR_UKERNEL(NAME, T)                                                  \
    static void NAME(long kc, const T *a, const T *b, T *c, long ldc, int mr, int nr,   \
                     int accumulate, const T *bias, int relu)                           \
    {                                                                                   \
        T acc[4 * 8] = {0};                                                             \
        for (long k = 0; k < kc; ++k, a += 4, b += 8)                                   \
            for (int i = 0; i < 4; ++i)                                                 \
                for (int j = 0; j < 8; ++j) acc[i * 8 + j] += a[i] * b[j];              \
        for (int i = 0; i < mr; ++i)                                                    \
            for (int j = 0; j < nr; ++j) {                                              \
                T r = acc[i * 8 + j];                                                   \
                if (accumulate) r += c[i * ldc + j];                                    \
                if (bias) r += bias[j];                                                 \
                if (relu && r <= 0) r = 0;                                              \
                c[i * ldc + j] = r;                                                     \
            }                                                                           \
    }
CNNX_SCALAR_UKERNEL(cnnx_uk_f32_generic, float)
CNNX_SCALAR_UKERNEL(cnnx_uk_f64_generic, double)
#endif

/* The chosen path. Written only by cnnx_simd_select (at import, or from the tests). */
static cnnx_ukernel_f32 cnnx_uk_f32 = 0;
static cnnx_ukernel_f64 cnnx_uk_f64 = 0;
static int cnnx_mr_f32 = 0, cnnx_nr_f32 = 0, cnnx_mr_f64 = 0, cnnx_nr_f64 = 0;
static const char *cnnx_simd_name = "none";

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
        cnnx_uk_f32 = cnnx_uk_f32_avx512; cnnx_mr_f32 = 12; cnnx_nr_f32 = 32;
        cnnx_uk_f64 = cnnx_uk_f64_avx512; cnnx_mr_f64 = 12; cnnx_nr_f64 = 16;
        cnnx_simd_name = "avx512";
        return 0;
    }
    if (strcmp(name, "avx2") == 0) {
        cnnx_uk_f32 = cnnx_uk_f32_avx2; cnnx_mr_f32 = 6; cnnx_nr_f32 = 16;
        cnnx_uk_f64 = cnnx_uk_f64_avx2; cnnx_mr_f64 = 6; cnnx_nr_f64 = 8;
        cnnx_simd_name = "avx2";
        return 0;
    }
#endif
#if defined(__GNUC__) || defined(__clang__)
    cnnx_uk_f32 = cnnx_uk_f32_generic; cnnx_mr_f32 = 6; cnnx_nr_f32 = 8;
    cnnx_uk_f64 = cnnx_uk_f64_generic; cnnx_mr_f64 = 6; cnnx_nr_f64 = 4;
#else
    cnnx_uk_f32 = cnnx_uk_f32_generic; cnnx_mr_f32 = 4; cnnx_nr_f32 = 8;
    cnnx_uk_f64 = cnnx_uk_f64_generic; cnnx_mr_f64 = 4; cnnx_nr_f64 = 8;
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

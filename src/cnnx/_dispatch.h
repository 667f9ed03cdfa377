/* The run-time choice of SIMD path, for the Cython module (its only includer).
 * cnnx_k points at the chosen path's table; it is set at import (the best path the CPU
 * supports, or CNNX_SIMD's) and by select_simd() in the tests. Swapping one pointer to
 * an immutable table keeps every reader consistent: a kernel never sees half of one
 * path and half of another. */
#ifndef CNNX_DISPATCH_H
#define CNNX_DISPATCH_H

#include <string.h>
#include "_simd.h"

static const cnnx_kernel_table *cnnx_k = &cnnx_table_generic;
/* The path whose GEMM microkernel is half as wide as cnnx_k's, where there is one (AVX2
 * under AVX-512), else cnnx_k: a product of at most its columns (Winograd's at 16
 * output channels) would compute half of AVX-512's 32 columns for nothing. Set with
 * cnnx_k. */
static const cnnx_kernel_table *cnnx_narrow = &cnnx_table_generic;

#if defined(CNNX_X86_PATHS)
/* CPU features from CPUID, and whether the OS saves the vector registers (XGETBV), in
 * one way for every compiler: MSVC has no __builtin_cpu_supports. */
#  if defined(_MSC_VER)
#    include <intrin.h>
static void cnnx_cpuid(int leaf, int sub, unsigned r[4])
{
    int v[4];
    __cpuidex(v, leaf, sub);
    for (int i = 0; i < 4; ++i) r[i] = (unsigned)v[i];
}
static unsigned long long cnnx_xgetbv(void) { return _xgetbv(0); }
#  else
#    include <cpuid.h>
static void cnnx_cpuid(int leaf, int sub, unsigned r[4])
{
    __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
}
static unsigned long long cnnx_xgetbv(void)
{
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}
#  endif

/* bit tests: leaf 1 ECX (r[2]): FMA 12, OSXSAVE 27; leaf 7 EBX (r[1]): AVX2 5,
 * AVX-512F 16. XCR0: SSE|AVX state 0x6; plus opmask and ZMM state 0xE0. */
static int cnnx_x86_has(int avx512)
{
    unsigned l1[4], l7[4];
    cnnx_cpuid(0, 0, l1);
    if (l1[0] < 7) return 0;
    cnnx_cpuid(1, 0, l1);
    cnnx_cpuid(7, 0, l7);
    if (!(l1[2] >> 27 & 1)) return 0;                  /* no XGETBV */
    const unsigned long long xcr0 = cnnx_xgetbv();
    if (avx512) return (l7[1] >> 16 & 1) && (xcr0 & 0xE6) == 0xE6;
    return (l7[1] >> 5 & 1) && (l1[2] >> 12 & 1) && (xcr0 & 0x6) == 0x6;
}
#endif

static int cnnx_simd_available(const char *name)
{
    if (strcmp(name, cnnx_table_generic.name) == 0) return 1;
#if defined(CNNX_X86_PATHS)
    if (strcmp(name, "avx2") == 0) return cnnx_x86_has(0);
    if (strcmp(name, "avx512") == 0) return cnnx_x86_has(1);
#endif
    return 0;
}

/* Selects the named path, or the best available one when name is NULL or empty.
 * Returns 0 on success, -1 when the named path is unknown or unsupported here. */
static int cnnx_simd_select(const char *name)
{
    const cnnx_kernel_table *t = &cnnx_table_generic;
    if (name == 0 || name[0] == 0) {
        name = cnnx_simd_available("avx512") ? "avx512"
             : cnnx_simd_available("avx2")   ? "avx2" : cnnx_table_generic.name;
    }
    if (!cnnx_simd_available(name)) return -1;
#if defined(CNNX_X86_PATHS)
    if (strcmp(name, "avx512") == 0) t = &cnnx_table_avx512;
    if (strcmp(name, "avx2") == 0) t = &cnnx_table_avx2;
#endif
    cnnx_k = t;
#if defined(CNNX_X86_PATHS)
    cnnx_narrow = t == &cnnx_table_avx512 ? &cnnx_table_avx2 : t;
#else
    cnnx_narrow = t;
#endif
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

#endif /* CNNX_DISPATCH_H */

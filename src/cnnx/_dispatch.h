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

static int cnnx_simd_available(const char *name)
{
    if (strcmp(name, cnnx_table_generic.name) == 0) return 1;
#if defined(CNNX_X86_PATHS)
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

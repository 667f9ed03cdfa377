/* The AVX2 + FMA path, compiled with -mavx2 -mfma (setup.py: x86-64, gcc or clang). */
#define PATH_NAME avx2
#define PATH_LABEL "avx2"
#define PATH_VBYTES 32
#define PATH_REGS 16
#define PATH_MR 6
#include "_simd_path.h"

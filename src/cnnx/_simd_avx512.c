/* The AVX-512 path, compiled with -mavx512f (setup.py: x86-64, gcc or clang). */
#define PATH_NAME avx512
#define PATH_LABEL "avx512"
#define PATH_VBYTES 64
#define PATH_REGS 32
#define PATH_MR 12
#include "_simd_path.h"

/* The kernels written as plain C loops over contiguous channels, instantiated the same way
 * in every path (the SIMD paths through _simd_path.h, MSVC's scalar path directly): batch
 * normalization, the Winograd transforms and the dense layer's row product, for float and
 * double. The compiler
 * vectorises them under the including unit's flags. (The depthwise kernels are plain C
 * too, but their register block is sized per path.)
 */
#define BN_NAME bn_f32
#define BN_T float
#include "_batchnorm_template.h"
#define BN_NAME bn_f64
#define BN_T double
#include "_batchnorm_template.h"

#define WG_NAME wg_f32
#define WG_T float
#include "_winograd_template.h"
#define WG_NAME wg_f64
#define WG_T double
#include "_winograd_template.h"

/* 32 floats or 16 doubles: 128 bytes of sums, 2 AVX-512 / 4 AVX2 / 8 SSE registers. */
#define GV_NAME gv_f32
#define GV_T float
#define GV_CB 32
#include "_gemv_template.h"
#define GV_NAME gv_f64
#define GV_T double
#define GV_CB 16
#include "_gemv_template.h"

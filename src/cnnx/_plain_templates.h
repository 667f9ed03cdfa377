/* The kernels written as plain C loops over contiguous channels, instantiated the same way
 * in every path (the SIMD paths through _simd_path.h, MSVC's scalar path directly): batch
 * normalization and the Winograd transforms, for float and double. The compiler
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

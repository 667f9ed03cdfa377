/* One SIMD path's translation unit: instantiates every kernel template for float and
 * double and fills the path's cnnx_kernel_table. Included by _simd_<path>.c after it
 * defines:
 *   PATH_NAME   the table's suffix (generic, avx2, avx512)
 *   PATH_LABEL  the name show_config() prints
 *   PATH_VBYTES vector bytes (16, 32, 64)
 *   PATH_REGS   vector registers (16 or 32): sizes the register tiles
 *   PATH_MR     GEMM microkernel rows
 * The compiler flags of the including file's unit choose the instructions: the kernels
 * are written with GNU vector extensions, so gcc and clang compile them for any ISA.
 */
#include "_simd.h"

/* Every register tile's loops must unroll fully, or its accumulators live on the stack:
 * with gcc's "unroll 16" the AVX-512 tiles of 24 pixels or taps (NK_MR1, now 28) stayed
 * loops, and a 16 -> 16 channel 3x3 kernel gradient ran at 114 GFLOP/s instead of 210. */
#if defined(__clang__)
#  define CNNX_UNROLL _Pragma("unroll")
#else
#  define CNNX_UNROLL _Pragma("GCC unroll 32")
#endif

/* GEMM microkernels: k-major (_k) and row-major (_r) A panels, 2 vectors wide. Each
 * template #undefs its per-instance macros. */
#define UK_VBYTES PATH_VBYTES
#define UK_MR PATH_MR
#define UK_NAME uk_f32_k
#define UK_T float
#define UK_IT int32_t
#define UK_NV 2
#define UK_AROWS 0
#include "_ukernel_template.h"
#define UK_NAME uk_f32_r
#define UK_T float
#define UK_IT int32_t
#define UK_NV 2
#define UK_AROWS 1
#include "_ukernel_template.h"
#define UK_NAME uk_f64_k
#define UK_T double
#define UK_IT int64_t
#define UK_NV 2
#define UK_AROWS 0
#include "_ukernel_template.h"
#define UK_NAME uk_f64_r
#define UK_T double
#define UK_IT int64_t
#define UK_NV 2
#define UK_AROWS 1
#include "_ukernel_template.h"

/* Pixel-vectorised direct convolution: blocks of 2 and 4 filters, as many pixel
 * vectors per tile as the registers hold with their pointers. Blocks of 2 filters: 12
 * and 6 vectors spilled pointers and sums; 8 and 4 ran 5 x 5 1 -> 6 (LeNet's first
 * layer, 256 images, one thread) 0.73 -> 0.59 ms on AVX-512, 0.96 -> 0.66 on AVX2
 * (10 and 6, 6 and 3 measured between). */
#define DK_VBYTES PATH_VBYTES
#define DK_NP2 (PATH_REGS == 32 ? 8 : 4)
#define DK_NP4 (PATH_REGS == 32 ? 6 : 3)
#define DK_NAME dk_f32_fb2
#define DK_T float
#define DK_IT int32_t
#define DK_FB 2
#define DK_NP DK_NP2
#include "_direct_template.h"
#define DK_NAME dk_f32_fb4
#define DK_T float
#define DK_IT int32_t
#define DK_FB 4
#define DK_NP DK_NP4
#include "_direct_template.h"
#define DK_NAME dk_f64_fb2
#define DK_T double
#define DK_IT int64_t
#define DK_FB 2
#define DK_NP DK_NP2
#include "_direct_template.h"
#define DK_NAME dk_f64_fb4
#define DK_T double
#define DK_IT int64_t
#define DK_FB 4
#define DK_NP DK_NP4
#include "_direct_template.h"

/* Channel-vectorised direct convolution: tiles of 2 vectors of channels (or 1, for
 * layers with one vector's worth), as many pixels (forward, NK_MR) or taps (kernel
 * gradient, NK_KR) as the registers hold. Forward: 28 pixels of one AVX-512 vector
 * 1.13-1.16x the speed of 24 at 16 -> 16 channels, 16 was slower; 8 pixels of two
 * vectors 1.09-1.11x the speed of 12 (whose pointers spilled; 10 was slower) at W5's
 * 32 -> 32 and 16 -> 32 layers and one 31 x 31 32 -> 32 image. Kernel gradient: 24,
 * 28 or 30 taps measured the same while their offsets spilled; 24 (and 12) divide a
 * kernel row's taps (3 x C for C = 16, 32, 64...), so with 32 registers each tile is one
 * run in memory, loaded at a base pointer plus constants (NK_RUNS): W5's 16 -> 16, 32 ->
 * 32 and 64 -> 64 kernel gradients 1.16-1.20x, 1.02-1.09x, 1.03-1.19x. With 16 registers
 * the 6 or 12 offsets do not spill, and runs measured level or slower (0.92-1.15x). */
#define NK_RUNS (PATH_REGS == 32)
#define NK_VBYTES PATH_VBYTES
#define NK_MR2 (PATH_REGS == 32 ? 8 : 6)
#define NK_MR1 (PATH_REGS == 32 ? 28 : 12)
#define NK_KR2 (PATH_REGS == 32 ? 12 : 6)
#define NK_KR1 (PATH_REGS == 32 ? 24 : 12)
#define NK_NV 2
#define NK_MR NK_MR2
#define NK_KR NK_KR2
#define NK_NAME nk_f32_nhwc2
#define NK_T float
#define NK_IT int32_t
#include "_nhwc_template.h"
#define NK_NAME nk_f64_nhwc2
#define NK_T double
#define NK_IT int64_t
#include "_nhwc_template.h"
#undef NK_NV
#undef NK_MR
#undef NK_KR
#define NK_NV 1
#define NK_MR NK_MR1
#define NK_KR NK_KR1
#define NK_NAME nk_f32_nhwc1
#define NK_T float
#define NK_IT int32_t
#include "_nhwc_template.h"
#define NK_NAME nk_f64_nhwc1
#define NK_T double
#define NK_IT int64_t
#include "_nhwc_template.h"
#undef NK_NV
#undef NK_MR
#undef NK_KR
/* With 32 registers, tiles 4 vectors wide for layers with a multiple of 4 vectors of
 * output channels: 6 pixels (or taps) x 4 vectors, whose 6 pointers stay in registers,
 * and an input read once for 4 vectors of channels instead of twice. Forward against
 * 12 x 2 (AVX-512, 2 threads, alternating processes): one 32 x 32 image 64 -> 64 0.370
 * -> 0.355 ms, 16 x 16 64 -> 128 0.204 -> 0.196, 8 images of 8 x 8 64 -> 64 0.203 ->
 * 0.181, 64 images of 16 x 16 32 -> 64 3.05 -> 2.81; kernel gradients level. */
#define NK_MR4 6
#define NK_KR4 6
#if PATH_REGS == 32
#define NK4(x) x
#define NK_NV 4
#define NK_MR NK_MR4
#define NK_KR NK_KR4
#define NK_NAME nk_f32_nhwc4
#define NK_T float
#define NK_IT int32_t
#include "_nhwc_template.h"
#define NK_NAME nk_f64_nhwc4
#define NK_T double
#define NK_IT int64_t
#include "_nhwc_template.h"
#undef NK_NV
#undef NK_MR
#undef NK_KR
#else
#define NK4(x) 0   /* no 4-vector tiles: the table's third entries are 0 and NULL */
#endif

/* Max pooling's forward row, on the same vectors. */
#define PK_VBYTES PATH_VBYTES
#define PK_NAME mp_f32
#define PK_T float
#define PK_IT int32_t
#include "_pool_template.h"
#define PK_NAME mp_f64
#define PK_T double
#define PK_IT int64_t
#include "_pool_template.h"

/* Depthwise convolution. */
#define DW_NAME dw_f32
#define DW_T float
#define DW_CB (2 * PATH_VBYTES / 4)
#include "_depthwise_template.h"
#define DW_NAME dw_f64
#define DW_T double
#define DW_CB (2 * PATH_VBYTES / 8)
#include "_depthwise_template.h"

/* Batch normalization and the Winograd transforms. */
#include "_plain_templates.h"

const cnnx_kernel_table CNNX_CAT(cnnx_table_, PATH_NAME) = {
    .name = PATH_LABEL,
    .uk_f32 = {uk_f32_k, uk_f32_r},
    .uk_f64 = {uk_f64_k, uk_f64_r},
    .mr_f32 = PATH_MR, .nr_f32 = 2 * PATH_VBYTES / 4,
    .mr_f64 = PATH_MR, .nr_f64 = 2 * PATH_VBYTES / 8,
    .direct = 1,
    .vw_f32 = PATH_VBYTES / 4, .vw_f64 = PATH_VBYTES / 8,
    .dk_fwd_f32 = {dk_f32_fb2_fwd, dk_f32_fb4_fwd},
    .dk_fwd_f64 = {dk_f64_fb2_fwd, dk_f64_fb4_fwd},
    .dk_kgrad_f32 = {dk_f32_fb2_kgrad, dk_f32_fb4_kgrad},
    .dk_kgrad_f64 = {dk_f64_fb2_kgrad, dk_f64_fb4_kgrad},
    .dk_np = {DK_NP2, DK_NP4},
    .nk_fwd_f32 = {nk_f32_nhwc1_fwd, nk_f32_nhwc2_fwd, NK4(nk_f32_nhwc4_fwd)},
    .nk_fwd_f64 = {nk_f64_nhwc1_fwd, nk_f64_nhwc2_fwd, NK4(nk_f64_nhwc4_fwd)},
    .nk_kgrad_f32 = {nk_f32_nhwc1_kgrad, nk_f32_nhwc2_kgrad, NK4(nk_f32_nhwc4_kgrad)},
    .nk_kgrad_f64 = {nk_f64_nhwc1_kgrad, nk_f64_nhwc2_kgrad, NK4(nk_f64_nhwc4_kgrad)},
    .nk_mr = {NK_MR1, NK_MR2, NK4(NK_MR4)},
    .nk_kr = {NK_KR1, NK_KR2, NK4(NK_KR4)},
    .mp_f32 = mp_f32,
    .mp_f64 = mp_f64,
    CNNX_DW_FIELDS,
    CNNX_BN_FIELDS,
    CNNX_WG_FIELDS,
    CNNX_GV_FIELDS,
};

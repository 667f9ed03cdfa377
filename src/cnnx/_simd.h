/* The kernel tables: what each SIMD path provides, as seen by the Cython module.
 *
 * Every path is its own translation unit, compiled with that instruction set's flags
 * (_simd_generic.c: the baseline; _simd_avx2.c: -mavx2 -mfma; _simd_avx512.c:
 * -mavx512f), the way NumPy builds its dispatch targets. Each fills one
 * cnnx_kernel_table; _dispatch.h picks the best table the CPU supports at import.
 * Every index and size is 64-bit (int64_t), whatever `long` is on the platform.
 */
#ifndef CNNX_SIMD_H
#define CNNX_SIMD_H

#include <stdint.h>

#define CNNX_CAT_(a, b) a##b
#define CNNX_CAT(a, b) CNNX_CAT_(a, b)

/* A template's body specialised by a constant argument at each call: inlined there, so
 * the constant folds (plain C templates are compiled by MSVC too). */
#if defined(__GNUC__) || defined(__clang__)
#  define CNNX_INLINE static inline __attribute__((always_inline))
#elif defined(_MSC_VER)
#  define CNNX_INLINE static __forceinline
#else
#  define CNNX_INLINE static inline
#endif

/* GEMM microkernel (_ukernel_template.h). */
typedef void (*cnnx_ukernel_f32)(int64_t, const float *, int64_t, const float *, int64_t,
                                 float *, int64_t, int, int, int, const float *, int);
typedef void (*cnnx_ukernel_f64)(int64_t, const double *, int64_t, const double *, int64_t,
                                 double *, int64_t, int, int, int, const double *, int);
/* Pixel-vectorised direct convolution (_direct_template.h): forward and kernel-gradient
 * tiles. */
typedef void (*cnnx_dfwd_f32)(int64_t, const float *, const int64_t *, int64_t, const float *,
                              int64_t, int, int64_t, int64_t, float *, int64_t, int,
                              const float *, int);
typedef void (*cnnx_dfwd_f64)(int64_t, const double *, const int64_t *, int64_t,
                              const double *, int64_t, int, int64_t, int64_t, double *,
                              int64_t, int, const double *, int);
typedef void (*cnnx_dkgrad_f32)(int64_t, int64_t, int, const float *, int64_t,
                                const int64_t *, int, const float *, int64_t, float *,
                                int64_t, int);
typedef void (*cnnx_dkgrad_f64)(int64_t, int64_t, int, const double *, int64_t,
                                const int64_t *, int, const double *, int64_t, double *,
                                int64_t, int);
/* Channel-vectorised direct convolution (_nhwc_template.h). */
typedef void (*cnnx_nfwd_f32)(int64_t, const float *, const int64_t *, const int64_t *, int,
                              const float *, int64_t, float *, const float *, int);
typedef void (*cnnx_nfwd_f64)(int64_t, const double *, const int64_t *, const int64_t *, int,
                              const double *, int64_t, double *, const double *, int);
typedef void (*cnnx_nkgrad_f32)(int64_t, int64_t, int64_t, int64_t, const float *,
                                const int64_t *, int, const float *, const float *, int64_t,
                                float *, float *);
typedef void (*cnnx_nkgrad_f64)(int64_t, int64_t, int64_t, int64_t, const double *,
                                const int64_t *, int, const double *, const double *,
                                int64_t, double *, double *);
/* Max pooling's row (_pool_template.h). */
typedef void (*cnnx_maxpool_f32)(const float *, int64_t, int64_t, int64_t, int64_t, int64_t,
                                 int64_t, int64_t, int64_t, float *, int32_t *, int64_t);
typedef void (*cnnx_maxpool_f64)(const double *, int64_t, int64_t, int64_t, int64_t, int64_t,
                                 int64_t, int64_t, int64_t, double *, int32_t *, int64_t);

/* Depthwise convolution (_depthwise_template.h): a forward row, a sample's input
 * gradient, a sample's kernel and bias gradients. */
#define CNNX_DW_TYPES(T, S)                                                               \
    typedef void (*cnnx_dw_fwd_##S)(const T *, int64_t, int64_t, int64_t, const T *,     \
                                    int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, \
                                    int64_t, int64_t, int64_t, int64_t, const T *, T *);  \
    typedef void (*cnnx_dw_dx_##S)(const T *, int64_t, int64_t, int64_t, const T *,      \
                                   int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,  \
                                   int64_t, int64_t, int64_t, int64_t, T *);              \
    typedef void (*cnnx_dw_dk_##S)(const T *, int64_t, int64_t, int64_t, const T *,      \
                                   int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,  \
                                   int64_t, int64_t, int64_t, int64_t, T *, T *);
CNNX_DW_TYPES(float, f32)
CNNX_DW_TYPES(double, f64)

/* Batch normalization (_batchnorm_template.h): a chunk's column sums (of x's deviations
 * from a shift and of their squares; of the gradient, with a scratch of 2 x C values),
 * the normalization, the input gradient. */
#define CNNX_BN_TYPES(T, S)                                                               \
    typedef void (*cnnx_bn_sums_##S)(const T *, int64_t, int64_t, const T *,             \
                                     double *, double *);                                 \
    typedef void (*cnnx_bn_grad_sums_##S)(const T *, const T *, const T *, const T *,    \
                                          const T *, int64_t, int64_t, double *,          \
                                          double *, T *);                                 \
    typedef void (*cnnx_bn_apply_##S)(const T *, const T *, const T *, int64_t, int64_t, \
                                      int, T *);                                          \
    typedef void (*cnnx_bn_dx_##S)(const T *, const T *, const T *, const T *, const T *, \
                                   const T *, const T *, const T *, int64_t, int64_t, T *);
CNNX_BN_TYPES(float, f32)
CNNX_BN_TYPES(double, f64)

/* Winograd F(2x2, 3x3) and F(4x4, 3x3) (_winograd_template.h; the first argument is the
 * tile's side, 2 or 4): a tile's input transform, its output transform, an input
 * channel's kernel transform; for kernel gradients, a tile's output-gradient transform
 * and an input channel's kernel-gradient transform. */
#define CNNX_WG_TYPES(T, S)                                                               \
    typedef void (*cnnx_wg_input_##S)(int, const T *, int64_t, int64_t, int64_t,          \
                                      int64_t, int64_t, const T *, T *, int64_t);         \
    typedef void (*cnnx_wg_output_##S)(int, const T *, int64_t, int64_t, const T *, int,  \
                                       int, int, T *, int64_t, int64_t);                  \
    typedef void (*cnnx_wg_kernel_##S)(int, const T *, int64_t, int64_t, int64_t,         \
                                       int64_t, int64_t, T *);                            \
    typedef void (*cnnx_wg_dy_##S)(int, const T *, int64_t, int64_t, int, int, T *,       \
                                   int64_t);                                              \
    typedef void (*cnnx_wg_kgrad_##S)(int, const T *, int64_t, int64_t, int64_t, int64_t, \
                                      int64_t, T *);
CNNX_WG_TYPES(float, f32)
CNNX_WG_TYPES(double, f64)

/* A dense layer's product for a few rows: kernel rows k0 .. k1, columns j0 .. j1
 * (_gemv_template.h). */
#define CNNX_GV_TYPES(T, S)                                                               \
    typedef void (*cnnx_gemv_##S)(const T *, int64_t, int64_t, const T *, int64_t,       \
                                  int64_t, int64_t, int64_t, int64_t, T *, int64_t);
CNNX_GV_TYPES(float, f32)
CNNX_GV_TYPES(double, f64)

/* One path's kernels and tile shapes. Index [0]/[1] of the pairs:
 *   uk:        A panel k-major / row-major;
 *   dk_*:      pixel-vectorised blocks of 2 / 4 filters (dk_np: pixel vectors or taps
 *              per tile);
 *   nk_*:      channel-vectorised tiles 1 / 2 / 4 vectors wide (nk_mr: pixels per
 *              forward tile; nk_kr: taps per kernel gradient tile; 0 and NULL where a
 *              path has no 4-vector tiles).
 * direct is 0 where the path has no direct or pooling kernels (the portable scalar
 * build): im2col products and the Cython pooling loop then do all. */
typedef struct {
    const char *name;
    cnnx_ukernel_f32 uk_f32[2];
    cnnx_ukernel_f64 uk_f64[2];
    int mr_f32, nr_f32, mr_f64, nr_f64;
    int direct;
    int vw_f32, vw_f64;                      /* vector lanes */
    cnnx_dfwd_f32 dk_fwd_f32[2];
    cnnx_dfwd_f64 dk_fwd_f64[2];
    cnnx_dkgrad_f32 dk_kgrad_f32[2];
    cnnx_dkgrad_f64 dk_kgrad_f64[2];
    int dk_np[2];
    cnnx_nfwd_f32 nk_fwd_f32[3];
    cnnx_nfwd_f64 nk_fwd_f64[3];
    cnnx_nkgrad_f32 nk_kgrad_f32[3];
    cnnx_nkgrad_f64 nk_kgrad_f64[3];
    int nk_mr[3];
    int nk_kr[3];
    cnnx_maxpool_f32 mp_f32;
    cnnx_maxpool_f64 mp_f64;
    cnnx_dw_fwd_f32 dw_fwd_f32;
    cnnx_dw_fwd_f64 dw_fwd_f64;
    cnnx_dw_dx_f32 dw_dx_f32;
    cnnx_dw_dx_f64 dw_dx_f64;
    cnnx_dw_dk_f32 dw_dk_f32;
    cnnx_dw_dk_f64 dw_dk_f64;
    cnnx_bn_sums_f32 bn_sums_f32;
    cnnx_bn_sums_f64 bn_sums_f64;
    cnnx_bn_grad_sums_f32 bn_grad_sums_f32;
    cnnx_bn_grad_sums_f64 bn_grad_sums_f64;
    cnnx_bn_apply_f32 bn_apply_f32;
    cnnx_bn_apply_f64 bn_apply_f64;
    cnnx_bn_dx_f32 bn_dx_f32;
    cnnx_bn_dx_f64 bn_dx_f64;
    cnnx_wg_input_f32 wg_input_f32;
    cnnx_wg_input_f64 wg_input_f64;
    cnnx_wg_output_f32 wg_output_f32;
    cnnx_wg_output_f64 wg_output_f64;
    cnnx_wg_kernel_f32 wg_kernel_f32;
    cnnx_wg_kernel_f64 wg_kernel_f64;
    cnnx_wg_dy_f32 wg_dy_f32;
    cnnx_wg_dy_f64 wg_dy_f64;
    cnnx_wg_kgrad_f32 wg_kgrad_f32;
    cnnx_wg_kgrad_f64 wg_kgrad_f64;
    cnnx_gemv_f32 gemv_f32;
    cnnx_gemv_f64 gemv_f64;
} cnnx_kernel_table;

/* The depthwise kernels' instances, in the table's field order (every path has them:
 * plain C loops, vectorised by the compiler under the path's flags). */
#define CNNX_DW_FIELDS                                                                     \
    .dw_fwd_f32 = dw_f32_fwd_row, .dw_fwd_f64 = dw_f64_fwd_row,                            \
    .dw_dx_f32 = dw_f32_dx_sample, .dw_dx_f64 = dw_f64_dx_sample,                          \
    .dw_dk_f32 = dw_f32_dk_sample, .dw_dk_f64 = dw_f64_dk_sample

/* The batch normalization kernels' instances (plain C loops too, in every path). */
#define CNNX_BN_FIELDS                                                                     \
    .bn_sums_f32 = bn_f32_sums, .bn_sums_f64 = bn_f64_sums,                                \
    .bn_grad_sums_f32 = bn_f32_grad_sums, .bn_grad_sums_f64 = bn_f64_grad_sums,            \
    .bn_apply_f32 = bn_f32_apply, .bn_apply_f64 = bn_f64_apply,                            \
    .bn_dx_f32 = bn_f32_dx, .bn_dx_f64 = bn_f64_dx

/* The Winograd transforms' instances (plain C loops too, in every path). */
#define CNNX_WG_FIELDS                                                                     \
    .wg_input_f32 = wg_f32_input, .wg_input_f64 = wg_f64_input,                            \
    .wg_output_f32 = wg_f32_output, .wg_output_f64 = wg_f64_output,                        \
    .wg_kernel_f32 = wg_f32_kernel, .wg_kernel_f64 = wg_f64_kernel,                        \
    .wg_dy_f32 = wg_f32_dy, .wg_dy_f64 = wg_f64_dy,                                        \
    .wg_kgrad_f32 = wg_f32_kgrad, .wg_kgrad_f64 = wg_f64_kgrad

/* The row product's instances (plain C too, in every path). */
#define CNNX_GV_FIELDS .gemv_f32 = gv_f32, .gemv_f64 = gv_f64

extern const cnnx_kernel_table cnnx_table_generic;
/* Set by setup.py where it compiles the x86 units (x86-64 with gcc or clang). */
#if defined(CNNX_X86_PATHS)
extern const cnnx_kernel_table cnnx_table_avx2;
extern const cnnx_kernel_table cnnx_table_avx512;
#endif

#endif /* CNNX_SIMD_H */

/* Instantiates one SIMD path's kernels besides the GEMM microkernel, for float and
 * double: the pixel-vectorised direct convolution (filter blocks of 2 and 4), the
 * channel-vectorised one (tiles of 1 and 2 vectors) and max pooling's row. Tiles are
 * sized to the path's vector registers (DK_REGS: 32 or 16) and recorded as enum
 * constants. Define UK_PATH, UK_VBYTES, UK_ATTR_ and DK_REGS before including. */
#define DK_BOTH_NAME(t, fb) CNNX_CAT(CNNX_CAT(CNNX_CAT(cnnx_dk_, t), CNNX_CAT(_, UK_PATH)), fb)
#define DK_NP2 (DK_REGS == 32 ? 12 : 6)
#define DK_NP4 (DK_REGS == 32 ? 6 : 3)

#define DK_NAME DK_BOTH_NAME(f32, _fb2)
#define DK_T float
#define DK_IT int32_t
#define DK_VBYTES UK_VBYTES
#define DK_FB 2
#define DK_NP DK_NP2
#define DK_ATTR UK_ATTR_
#include "_direct_template.h"
#define DK_NAME DK_BOTH_NAME(f32, _fb4)
#define DK_T float
#define DK_IT int32_t
#define DK_FB 4
#define DK_NP DK_NP4
#include "_direct_template.h"
#define DK_NAME DK_BOTH_NAME(f64, _fb2)
#define DK_T double
#define DK_IT int64_t
#define DK_FB 2
#define DK_NP DK_NP2
#include "_direct_template.h"
#define DK_NAME DK_BOTH_NAME(f64, _fb4)
#define DK_T double
#define DK_IT int64_t
#define DK_FB 4
#define DK_NP DK_NP4
#include "_direct_template.h"

/* Channel-vectorised direct kernels: 2 vectors of channels (or 1, for layers with one
 * vector's worth), as many pixels (forward) or taps (kernel gradient) as the registers
 * hold. */
#define NK_VBYTES UK_VBYTES
#define NK_ATTR UK_ATTR_
#define NK_NV 2
#define NK_MR (DK_REGS == 32 ? 12 : 6)
#define NK_NAME DK_BOTH_NAME(f32, _nhwc2)
#define NK_T float
#define NK_IT int32_t
#include "_nhwc_template.h"
#define NK_NAME DK_BOTH_NAME(f64, _nhwc2)
#define NK_T double
#define NK_IT int64_t
#include "_nhwc_template.h"
#undef NK_NV
#undef NK_MR
#define NK_NV 1
#define NK_MR (DK_REGS == 32 ? 24 : 12)
#define NK_NAME DK_BOTH_NAME(f32, _nhwc1)
#define NK_T float
#define NK_IT int32_t
#include "_nhwc_template.h"
#define NK_NAME DK_BOTH_NAME(f64, _nhwc1)
#define NK_T double
#define NK_IT int64_t
#include "_nhwc_template.h"
#undef NK_NV
#undef NK_MR
#undef NK_VBYTES
#undef NK_ATTR

/* Max pooling's forward row, on the same vectors. */
#define PK_VBYTES UK_VBYTES
#define PK_ATTR UK_ATTR_
#define PK_NAME DK_BOTH_NAME(f32, _maxpool)
#define PK_T float
#define PK_IT int32_t
#include "_pool_template.h"
#define PK_NAME DK_BOTH_NAME(f64, _maxpool)
#define PK_T double
#define PK_IT int64_t
#include "_pool_template.h"
#undef PK_VBYTES
#undef PK_ATTR

enum {
    DK_BOTH_NAME(any, _NP2) = DK_NP2, DK_BOTH_NAME(any, _NP4) = DK_NP4,
    DK_BOTH_NAME(any, _NHWC1_MR) = DK_REGS == 32 ? 24 : 12,
    DK_BOTH_NAME(any, _NHWC2_MR) = DK_REGS == 32 ? 12 : 6,
    DK_BOTH_NAME(f32, _VW) = UK_VBYTES / 4, DK_BOTH_NAME(f64, _VW) = UK_VBYTES / 8,
};

#undef DK_BOTH_NAME
#undef DK_NP2
#undef DK_NP4
#undef DK_VBYTES
#undef DK_ATTR
#undef DK_REGS
#undef UK_PATH
#undef UK_VBYTES
#undef UK_ATTR_

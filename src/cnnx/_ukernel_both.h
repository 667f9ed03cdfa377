/* Instantiates one SIMD path's microkernels: float and double, each with a k-major and
 * a row-major A panel, and records their tile shapes as enum constants.
 * Define UK_PATH (name), UK_VBYTES, UK_MR and UK_ATTR_ before including. */
#define UK_BOTH_NAME(t, layout) CNNX_CAT(CNNX_CAT(CNNX_CAT(cnnx_uk_, t), CNNX_CAT(_, UK_PATH)), layout)

#define UK_NAME UK_BOTH_NAME(f32, _k)
#define UK_T float
#define UK_IT int32_t
#define UK_NV 2
#define UK_AROWS 0
#define UK_ATTR UK_ATTR_
#include "_ukernel_template.h"
#define UK_NAME UK_BOTH_NAME(f32, _r)
#define UK_T float
#define UK_IT int32_t
#define UK_NV 2
#define UK_AROWS 1
#define UK_ATTR UK_ATTR_
#include "_ukernel_template.h"
#define UK_NAME UK_BOTH_NAME(f64, _k)
#define UK_T double
#define UK_IT int64_t
#define UK_NV 2
#define UK_AROWS 0
#define UK_ATTR UK_ATTR_
#include "_ukernel_template.h"
#define UK_NAME UK_BOTH_NAME(f64, _r)
#define UK_T double
#define UK_IT int64_t
#define UK_NV 2
#define UK_AROWS 1
#define UK_ATTR UK_ATTR_
#include "_ukernel_template.h"

enum {
    UK_BOTH_NAME(f32, _MR) = UK_MR, UK_BOTH_NAME(f32, _NR) = 2 * UK_VBYTES / 4,
    UK_BOTH_NAME(f64, _MR) = UK_MR, UK_BOTH_NAME(f64, _NR) = 2 * UK_VBYTES / 8,
};

#undef UK_BOTH_NAME
#undef UK_PATH
#undef UK_VBYTES
#undef UK_MR
#undef UK_ATTR_

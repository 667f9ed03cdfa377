# The C side of cnnx's kernels, declared for Cython once: the SIMD kernel table of
# _simd.h (each path fills it) and the run-time dispatch of _dispatch.h. Cython reads
# this file with _kernels.pyx; tests/test_build.py checks it against _simd.h.
from libc.stdint cimport int32_t, int64_t

cdef extern from "_simd.h" nogil:
    # Declared in _simd.h; Cython needs the signatures it calls and the fields it reads.
    ctypedef void (*cnnx_ukernel_f32)(int64_t, const float *, int64_t, const float *, int64_t,
                                      float *, int64_t, int, int, int, const float *, int)
    ctypedef void (*cnnx_ukernel_f64)(int64_t, const double *, int64_t, const double *,
                                      int64_t, double *, int64_t, int, int, int, const double *,
                                      int)
    ctypedef void (*cnnx_dfwd_f32)(int64_t, const float *, const int64_t *, int64_t,
                                   const float *, int64_t, int, int64_t, int64_t, float *,
                                   int64_t, int, const float *, int)
    ctypedef void (*cnnx_dfwd_f64)(int64_t, const double *, const int64_t *, int64_t,
                                   const double *, int64_t, int, int64_t, int64_t, double *,
                                   int64_t, int, const double *, int)
    ctypedef void (*cnnx_dkgrad_f32)(int64_t, int64_t, int, const float *, int64_t,
                                     const int64_t *, int, const float *, int64_t, float *,
                                     int64_t, int)
    ctypedef void (*cnnx_dkgrad_f64)(int64_t, int64_t, int, const double *, int64_t,
                                     const int64_t *, int, const double *, int64_t,
                                     double *, int64_t, int)
    ctypedef void (*cnnx_nfwd_f32)(int64_t, const float *, const int64_t *, const int64_t *,
                                   int, const float *, int64_t, float *, const float *, int)
    ctypedef void (*cnnx_nfwd_f64)(int64_t, const double *, const int64_t *,
                                   const int64_t *, int, const double *, int64_t, double *,
                                   const double *, int)
    ctypedef void (*cnnx_nkgrad_f32)(int64_t, int64_t, int64_t, int64_t, const float *,
                                     const int64_t *, int, const float *, const float *,
                                     int64_t, float *, float *)
    ctypedef void (*cnnx_nkgrad_f64)(int64_t, int64_t, int64_t, int64_t, const double *,
                                     const int64_t *, int, const double *, const double *,
                                     int64_t, double *, double *)
    ctypedef void (*cnnx_maxpool_f32)(const float *, int64_t, int64_t, int64_t, int64_t,
                                      int64_t, int64_t, int64_t, int64_t, float *,
                                      int32_t *, int64_t)
    ctypedef void (*cnnx_maxpool_f64)(const double *, int64_t, int64_t, int64_t, int64_t,
                                      int64_t, int64_t, int64_t, int64_t, double *,
                                      int32_t *, int64_t)
    ctypedef void (*cnnx_dw_fwd_f32)(const float *, int64_t, int64_t, int64_t, const float *,
                                     int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                                     int64_t, int64_t, int64_t, int64_t, const float *,
                                     float *)
    ctypedef void (*cnnx_dw_fwd_f64)(const double *, int64_t, int64_t, int64_t,
                                     const double *, int64_t, int64_t, int64_t, int64_t,
                                     int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                                     const double *, double *)
    ctypedef void (*cnnx_dw_dx_f32)(const float *, int64_t, int64_t, int64_t, const float *,
                                    int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                                    int64_t, int64_t, int64_t, int64_t, float *)
    ctypedef void (*cnnx_dw_dx_f64)(const double *, int64_t, int64_t, int64_t,
                                    const double *, int64_t, int64_t, int64_t, int64_t,
                                    int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                                    double *)
    ctypedef void (*cnnx_dw_dk_f32)(const float *, int64_t, int64_t, int64_t, const float *,
                                    int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                                    int64_t, int64_t, int64_t, int64_t, float *, float *)
    ctypedef void (*cnnx_dw_dk_f64)(const double *, int64_t, int64_t, int64_t,
                                    const double *, int64_t, int64_t, int64_t, int64_t,
                                    int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                                    double *, double *)
    ctypedef void (*cnnx_bn_sums_f32)(const float *, int64_t, int64_t, const float *,
                                      double *, double *)
    ctypedef void (*cnnx_bn_sums_f64)(const double *, int64_t, int64_t, const double *,
                                      double *, double *)
    ctypedef void (*cnnx_bn_grad_sums_f32)(const float *, const float *, const float *,
                                           const float *, const float *, int64_t, int64_t,
                                           double *, double *, float *)
    ctypedef void (*cnnx_bn_grad_sums_f64)(const double *, const double *, const double *,
                                           const double *, const double *, int64_t, int64_t,
                                           double *, double *, double *)
    ctypedef void (*cnnx_bn_apply_f32)(const float *, const float *, const float *, int64_t,
                                       int64_t, int, float *)
    ctypedef void (*cnnx_bn_apply_f64)(const double *, const double *, const double *,
                                       int64_t, int64_t, int, double *)
    ctypedef void (*cnnx_bn_dx_f32)(const float *, const float *, const float *,
                                    const float *, const float *, const float *,
                                    const float *, const float *, int64_t, int64_t, float *)
    ctypedef void (*cnnx_bn_dx_f64)(const double *, const double *, const double *,
                                    const double *, const double *, const double *,
                                    const double *, const double *, int64_t, int64_t, double *)
    ctypedef void (*cnnx_wg_input_f32)(int, const float *, int64_t, int64_t, int64_t, int64_t,
                                       int64_t, const float *, float *, int64_t)
    ctypedef void (*cnnx_wg_input_f64)(int, const double *, int64_t, int64_t, int64_t, int64_t,
                                       int64_t, const double *, double *, int64_t)
    ctypedef void (*cnnx_wg_output_f32)(int, const float *, int64_t, int64_t, const float *, int,
                                        int, int, float *, int64_t, int64_t)
    ctypedef void (*cnnx_wg_output_f64)(int, const double *, int64_t, int64_t, const double *,
                                        int, int, int, double *, int64_t, int64_t)
    ctypedef void (*cnnx_wg_kernel_f32)(int, const float *, int64_t, int64_t, int64_t, int64_t,
                                        int64_t, float *)
    ctypedef void (*cnnx_wg_kernel_f64)(int, const double *, int64_t, int64_t, int64_t, int64_t,
                                        int64_t, double *)
    ctypedef void (*cnnx_wg_dy_f32)(int, const float *, int64_t, int64_t, int, int, float *,
                                    int64_t)
    ctypedef void (*cnnx_wg_dy_f64)(int, const double *, int64_t, int64_t, int, int,
                                    double *, int64_t)
    ctypedef void (*cnnx_wg_kgrad_f32)(int, const float *, int64_t, int64_t, int64_t, int64_t,
                                       int64_t, float *)
    ctypedef void (*cnnx_wg_kgrad_f64)(int, const double *, int64_t, int64_t, int64_t,
                                       int64_t, int64_t, double *)
    ctypedef void (*cnnx_gemv_f32)(const float *, int64_t, int64_t, const float *, int64_t,
                                   int64_t, int64_t, int64_t, int64_t, float *, int64_t)
    ctypedef void (*cnnx_gemv_f64)(const double *, int64_t, int64_t, const double *,
                                   int64_t, int64_t, int64_t, int64_t, int64_t, double *,
                                   int64_t)
    ctypedef struct cnnx_kernel_table:
        const char *name
        cnnx_ukernel_f32 uk_f32[2]
        cnnx_ukernel_f64 uk_f64[2]
        int mr_f32, nr_f32, mr_f64, nr_f64
        int direct
        int vw_f32, vw_f64
        cnnx_dfwd_f32 dk_fwd_f32[2]
        cnnx_dfwd_f64 dk_fwd_f64[2]
        cnnx_dkgrad_f32 dk_kgrad_f32[2]
        cnnx_dkgrad_f64 dk_kgrad_f64[2]
        int dk_np[2]
        cnnx_nfwd_f32 nk_fwd_f32[3]
        cnnx_nfwd_f64 nk_fwd_f64[3]
        cnnx_nkgrad_f32 nk_kgrad_f32[3]
        cnnx_nkgrad_f64 nk_kgrad_f64[3]
        int nk_mr[3]
        int nk_kr[3]
        cnnx_maxpool_f32 mp_f32
        cnnx_maxpool_f64 mp_f64
        cnnx_dw_fwd_f32 dw_fwd_f32
        cnnx_dw_fwd_f64 dw_fwd_f64
        cnnx_dw_dx_f32 dw_dx_f32
        cnnx_dw_dx_f64 dw_dx_f64
        cnnx_dw_dk_f32 dw_dk_f32
        cnnx_dw_dk_f64 dw_dk_f64
        cnnx_bn_sums_f32 bn_sums_f32
        cnnx_bn_sums_f64 bn_sums_f64
        cnnx_bn_grad_sums_f32 bn_grad_sums_f32
        cnnx_bn_grad_sums_f64 bn_grad_sums_f64
        cnnx_bn_apply_f32 bn_apply_f32
        cnnx_bn_apply_f64 bn_apply_f64
        cnnx_bn_dx_f32 bn_dx_f32
        cnnx_bn_dx_f64 bn_dx_f64
        cnnx_wg_input_f32 wg_input_f32
        cnnx_wg_input_f64 wg_input_f64
        cnnx_wg_output_f32 wg_output_f32
        cnnx_wg_output_f64 wg_output_f64
        cnnx_wg_kernel_f32 wg_kernel_f32
        cnnx_wg_kernel_f64 wg_kernel_f64
        cnnx_wg_dy_f32 wg_dy_f32
        cnnx_wg_dy_f64 wg_dy_f64
        cnnx_wg_kgrad_f32 wg_kgrad_f32
        cnnx_wg_kgrad_f64 wg_kgrad_f64
        cnnx_gemv_f32 gemv_f32
        cnnx_gemv_f64 gemv_f64

cdef extern from "_dispatch.h" nogil:
    const cnnx_kernel_table *cnnx_k
    const cnnx_kernel_table *cnnx_narrow
    int cnnx_simd_available(const char *name)
    int cnnx_simd_select(const char *name)
    const char *CNNX_COMPILER
    int CNNX_OPENMP

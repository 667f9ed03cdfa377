# cython: freethreading_compatible = True
# Compiled kernels of cnnx: convolution, pooling, ReLU, dense, softmax and the
# cross-entropies, normalization statistics and optimizer updates, forward and backward,
# for float32 and float64.
#
# One extension module in several files: this root (build facts, the SIMD path), the
# C declarations in _kernels.pxd, and one _kernels_<family>.pxi per family, included
# at the end in dependency order.
#
# This module knows arrays, shapes and thread counts, nothing else. It does not
# validate: cnnx.ops is the only caller, and checks every argument first. Outputs are
# allocated by the caller; scratch memory comes from the caller's `workspace(nbytes)`
# callable, so that buffers live across calls.
#
# Every matrix product runs through one blocked GEMM driver (`_gemm`): operands are
# described by a `Source` (a plain matrix, its transpose, or an implicit im2col of an
# NHWC image) and packed tile by tile into thread-local panels, so no im2col buffer
# for the whole batch ever exists. The inner tile is a SIMD microkernel from _simd.h.
# Convolutions with few channels run on direct kernels instead (see "Direct
# convolution"), and ReLU's backward pass can be fused into the kernel gradient and
# into max-pool backward (their `relu_output` argument: the ReLU's output, whose sign is the mask).
#
# Free-threaded Python: the module declares itself safe without the GIL. Its only
# process-wide state is the SIMD table pointer (set at import; select_simd swaps it whole)
# and the algorithm knob of the tests; scratch memory comes from the caller's
# per-thread workspace.
#
# Determinism: work is split into items whose arithmetic does not depend on the
# thread count. Reductions over the batch (kernel and bias gradients) use a fixed
# number of chunks, set by the shape alone, summed in a fixed order.

from cython.parallel cimport prange, parallel, threadid
from cython cimport floating
from libc.string cimport memcpy, memset
from libc.stdlib cimport calloc, free
from libc.math cimport exp, log, log1p, fabs, sqrt, pow, INFINITY
from libc.stdint cimport int32_t, int64_t, uintptr_t
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_C_CONTIGUOUS, \
    PyBUF_FORMAT, PyBUF_WRITABLE

# ---------------------------------------------------------------------------------
# Build facts and the SIMD path
# ---------------------------------------------------------------------------------

def compiler():
    """The compiler that built this module, as it names itself."""
    return CNNX_COMPILER.decode()


def openmp_version():
    """The _OPENMP date macro (e.g. 201511) this module was built with; 0 without OpenMP."""
    return CNNX_OPENMP


def openmp_threads_used(int nthreads):
    """How many threads a parallel region asked for `nthreads` really runs."""
    cdef int i, used = 0
    cdef int seen[1024]
    memset(seen, 0, sizeof(seen))
    with nogil, parallel(num_threads=nthreads):
        seen[threadid() % 1024] = 1
    for i in range(1024):
        used += seen[i]
    return used


def simd_available(str name):
    return bool(cnnx_simd_available(name.encode()))


def select_simd(str name=""):
    """Select a microkernel path by name ("" for the best available)."""
    if cnnx_simd_select(name.encode()) != 0:
        raise ValueError(f"SIMD path {name!r} is not available on this CPU or build")
    return cnnx_k.name.decode()


def simd_path():
    return cnnx_k.name.decode()


# The kernels, by family (each file is part of this module: one extension keeps one
# SIMD table and one copy of Cython's runtime; see docs/ARCHITECTURE.md).
include "_kernels_gemm.pxi"
include "_kernels_conv.pxi"
include "_kernels_direct.pxi"
include "_kernels_winograd.pxi"
include "_kernels_elementwise.pxi"
include "_kernels_pool.pxi"
include "_kernels_optim.pxi"
include "_kernels_depthwise.pxi"
include "_kernels_norm.pxi"
include "_kernels_program.pxi"

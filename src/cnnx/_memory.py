"""Arrays that start on a cache line: the buffers cnnx keeps from call to call.

NumPy aligns an array's data to 16 bytes. The kernels read and write 32-byte (AVX2) or
64-byte (AVX-512) vectors, and from data that starts 16 bytes into a 64-byte line every
other 32-byte access spans two lines (two loads, or a split store). W6's training step,
each layer's buffers 64-byte aligned against NumPy's: about 0.98x the time (one process,
two models in turns, in both build orders; the AVX2 VM).
"""
import math

import numpy as np

ALIGN = 64   # a cache line, and an AVX-512 vector


def empty(shape, dtype):
    """np.empty(shape, dtype) with its data at a multiple of ALIGN bytes: a C-contiguous
    view into a byte array ALIGN bytes longer, which the view keeps alive."""
    dtype = np.dtype(dtype)
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    nbytes = math.prod(shape) * dtype.itemsize
    raw = np.empty(nbytes + ALIGN, np.uint8)
    start = -raw.ctypes.data % ALIGN
    return raw[start:start + nbytes].view(dtype).reshape(shape)

"""cnnx: Keras-shaped convolutional networks on the CPU, with Cython + OpenMP kernels.

    import cnnx
    cnnx.show_config()            # build, OpenMP runtime, threads, SIMD path
    cnnx.ops.conv(x, kernel)      # validated functional API (keras.ops-like)
"""
__version__ = "0.1.0"

from . import ops
from ._config import get_num_threads, set_num_threads, show_config

__all__ = ["ops", "get_num_threads", "set_num_threads", "show_config", "__version__"]

"""cnnx: Keras-shaped convolutional networks on the CPU, with Cython + OpenMP kernels.

    import cnnx as keras          # typical Keras code runs with only this import changed
    cnnx.show_config()            # build, OpenMP runtime, threads, SIMD path
    cnnx.ops.conv(x, kernel)      # validated functional API (keras.ops-like)
"""
__version__ = "0.1.0"

from . import (activations, callbacks, initializers, layers, losses, metrics, models, ops,
               optimizers, regularizers, utils)
from ._config import get_num_threads, set_num_threads, show_config
from .layers import Input
from .models import Sequential

__all__ = ["Sequential", "Input", "layers", "models", "activations", "losses", "metrics",
           "optimizers", "initializers", "regularizers", "callbacks", "utils", "ops",
           "get_num_threads", "set_num_threads", "show_config", "__version__"]

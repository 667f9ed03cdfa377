"""cnnx: Keras-shaped convolutional networks on the CPU, with Cython + OpenMP kernels.

    import cnnx as keras          # typical Keras code runs with only this import changed
    cnnx.show_config()            # build, OpenMP runtime, threads, SIMD path
    cnnx.ops.conv(x, kernel)      # validated functional API (keras.ops-like)

Submodules load on first use (PEP 562), so `import cnnx` stays fast.
"""
import importlib as _importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

from ._config import get_num_threads, set_num_threads, show_config  # noqa: E402

_SUBMODULES = {"activations", "backend", "callbacks", "datasets", "distributed", "export",
               "filters", "initializers", "layers", "losses", "metrics", "models", "ops",
               "optimizers", "preprocessing", "regularizers", "testing", "utils", "viz"}
_NAMES = {"Sequential": "models", "Model": "models", "Input": "layers"}

# Spelled out (not built from the sets above) so that linters and type checkers read it.
__all__ = ["Sequential", "Model", "Input", "activations", "backend", "callbacks", "datasets",
           "distributed", "export", "filters", "initializers", "layers", "losses", "metrics",
           "models", "ops", "optimizers", "preprocessing", "regularizers", "testing", "utils",
           "viz", "get_num_threads", "set_num_threads", "show_config", "__version__"]
assert set(__all__) >= _SUBMODULES | set(_NAMES)


if TYPE_CHECKING:   # what the lazy __getattr__ gives, spelled out for type checkers
    from . import (
        activations,
        backend,
        callbacks,
        datasets,
        distributed,
        export,
        filters,
        initializers,
        layers,
        losses,
        metrics,
        models,
        ops,
        optimizers,
        preprocessing,
        regularizers,
        testing,
        utils,
        viz,
    )
    from .layers import Input
    from .models import Model, Sequential


def __getattr__(name):
    if name in _SUBMODULES:
        return _importlib.import_module(f"{__name__}.{name}")
    if name in _NAMES:
        return getattr(_importlib.import_module(f"{__name__}.{_NAMES[name]}"), name)
    raise AttributeError(f"module 'cnnx' has no attribute {name!r}")


def __dir__():
    return sorted({n for n in globals() if not n.startswith("_")} | set(__all__)
                  | {"__version__"})

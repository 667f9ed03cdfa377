"""cnnx.activations: elementwise activations, each with its derivative.

`get(identifier)` returns the activation function; layers use `forward`/`backward`.
relu is computed by the compiled kernels (and fused into Conv2D/Dense); the others are
vectorised NumPy, with the derivative expressed through the saved input or output.
"""
import math

import numpy as np

from . import ops

__all__ = ["relu", "sigmoid", "tanh", "softmax", "leaky_relu", "elu", "selu", "gelu",
           "softplus", "linear", "get", "serialize"]

_SELU_ALPHA = 1.6732632423543772
_SELU_SCALE = 1.0507009873554805


def relu(x):
    return ops.relu(x)


def sigmoid(x):
    return ops.sigmoid(x)


def tanh(x):
    return np.tanh(x)


def softmax(x, axis=-1):
    return ops.softmax(x, axis=axis)


def leaky_relu(x, negative_slope=0.2):
    return np.where(x > 0, x, x * x.dtype.type(negative_slope))


def elu(x, alpha=1.0):
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0))).astype(x.dtype)


def selu(x):
    return (_SELU_SCALE * elu(x, _SELU_ALPHA)).astype(x.dtype)


_erf = np.vectorize(math.erf, otypes=[np.float64])


def _erf_array(x):
    try:  # SciPy is optional; math.erf per element is the exact fallback
        from scipy.special import erf
        return erf(x)
    except ImportError:
        return _erf(x)


def gelu(x):
    """The exact GELU, x * Phi(x), as Keras's default (approximate=False)."""
    return (0.5 * x * (1 + _erf_array(x / np.sqrt(2)))).astype(x.dtype)


def softplus(x):
    return (np.logaddexp(0, x)).astype(x.dtype)


def linear(x):
    return x


def _grad(name, dy, x, y):
    """dL/dx given dL/dy, the input x and the output y of the named activation."""
    if name == "linear":
        return dy
    if name == "relu":
        return ops.relu_backward(dy, y)
    if name == "sigmoid":
        return dy * y * (1 - y)
    if name == "tanh":
        return dy * (1 - y * y)
    if name == "softmax":
        return y * (dy - np.sum(dy * y, axis=-1, keepdims=True))
    if name == "leaky_relu":
        return np.where(x > 0, dy, dy * dy.dtype.type(0.2))
    if name == "elu":
        return np.where(x > 0, dy, dy * (y + 1))
    if name == "selu":
        return np.where(x > 0, dy * _SELU_SCALE, dy * (y + _SELU_SCALE * _SELU_ALPHA))
    if name == "gelu":
        pdf = np.exp(-0.5 * x * x) / np.sqrt(2 * np.pi)
        cdf = 0.5 * (1 + _erf_array(x / np.sqrt(2)))
        return (dy * (cdf + x * pdf)).astype(dy.dtype)
    if name == "softplus":
        return dy * ops.sigmoid(x)
    raise ValueError(f"no derivative for activation {name!r}")


_BY_NAME = {f.__name__: f for f in (relu, sigmoid, tanh, softmax, leaky_relu, elu, selu,
                                    gelu, softplus, linear)}


def get(identifier):
    """An activation by name (or None -> linear); callables pass through unchanged."""
    if identifier is None:
        return linear
    if isinstance(identifier, str):
        try:
            return _BY_NAME[identifier.lower()]
        except KeyError:
            raise ValueError(f"Unknown activation {identifier!r}; expected one of "
                             f"{sorted(_BY_NAME)}") from None
    if callable(identifier) and getattr(identifier, "__name__", None) in _BY_NAME:
        return identifier
    raise ValueError(f"Unsupported activation {identifier!r}: cnnx computes the gradients "
                     f"of its named activations {sorted(_BY_NAME)}")


def serialize(activation):
    return activation.__name__

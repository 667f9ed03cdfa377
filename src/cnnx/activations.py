"""cnnx.activations: elementwise activations, each one object holding its function and
its derivative.

`relu`, `sigmoid`, ... are called as Keras's functions are (`relu(x)`); each also has
`grad(dy, x, y)`, dL/dx from dL/dy, its input x and its output y, which the layers use
in their backward pass. `get(identifier)` returns one by name. relu is computed by the
compiled kernels (and fused into Conv2D/Dense); the others are vectorised NumPy.
"""
import math

import numpy as np

from . import ops
from ._registry import Registry

__all__ = ["relu", "sigmoid", "tanh", "softmax", "leaky_relu", "elu", "selu", "gelu",
           "softplus", "linear", "silu", "swish", "hard_sigmoid", "hard_silu", "hard_swish",
           "mish", "log_softmax", "get", "serialize", "ActivationFunction", "REGISTRY"]

_SELU_ALPHA = 1.6732632423543772
_SELU_SCALE = 1.0507009873554805


REGISTRY = Registry("activation")


class ActivationFunction:
    """An activation: callable as its Keras function, with its derivative as grad.

    >>> relu = cnnx.activations.relu
    >>> isinstance(relu, cnnx.activations.ActivationFunction)
    True
    >>> relu.grad(np.ones(2), np.array([-1.0, 2.0]), relu(np.array([-1.0, 2.0])))   # its derivative
    array([0., 1.])
    """

    def __init__(self, function):
        self.function = function
        self.__name__ = function.__name__
        self.__doc__ = function.__doc__
        self._grad = None

    def __call__(self, x, *args, **kwargs):
        return self.function(x, *args, **kwargs)

    def derivative(self, grad):
        """Decorator: grad(dy, x, y) -> dL/dx is this activation's derivative."""
        self._grad = grad
        return grad

    def grad(self, dy, x, y):
        return self._grad(dy, x, y)

    def __repr__(self):
        return f"<activation {self.__name__}>"


def activation(function):
    """Decorator: the function becomes a registered activation (give it a derivative
    with @<name>.derivative)."""
    return REGISTRY.register(function.__name__)(ActivationFunction(function))


@activation
def relu(x):
    """max(x, 0), elementwise (compiled; NaN passes through).

    >>> cnnx.activations.relu(np.array([-1.0, 2.0]))
    array([0., 2.])
    """
    return ops.relu(x)


@relu.derivative
def _relu_grad(dy, _x, y):
    return ops.relu_backward(dy, y)


@activation
def sigmoid(x):
    """1 / (1 + exp(-x)), elementwise, without overflow.

    >>> cnnx.activations.sigmoid(np.array([0.0]))
    array([0.5])
    """
    return ops.sigmoid(x)


@sigmoid.derivative
def _sigmoid_grad(dy, _x, y):
    return dy * y * (1 - y)


@activation
def tanh(x):
    """The hyperbolic tangent, elementwise.

    >>> cnnx.activations.tanh(np.array([0.0, 100.0]))
    array([0., 1.])
    """
    return np.tanh(x)


@tanh.derivative
def _tanh_grad(dy, _x, y):
    return dy * (1 - y * y)


@activation
def softmax(x, axis=-1):
    """exp(x) / sum(exp(x)) along `axis` (the last), shifted by the maximum for
    stability.

    >>> cnnx.activations.softmax(np.array([[0.0, 0.0]]))
    array([[0.5, 0.5]])
    """
    return ops.softmax(x, axis=axis)


@softmax.derivative
def _softmax_grad(dy, _x, y):
    return y * (dy - np.sum(dy * y, axis=-1, keepdims=True))


@activation
def leaky_relu(x, negative_slope=0.2):
    """x for x > 0, negative_slope * x otherwise (default 0.2, Keras's function).

    >>> cnnx.activations.leaky_relu(np.array([-10.0, 2.0]))
    array([-2.,  2.])
    """
    return np.where(x > 0, x, x * x.dtype.type(negative_slope))


@leaky_relu.derivative
def _leaky_relu_grad(dy, x, _y):
    return np.where(x > 0, dy, dy * dy.dtype.type(0.2))


@activation
def elu(x, alpha=1.0):
    """x for x > 0, alpha * (exp(x) - 1) otherwise.

    >>> cnnx.activations.elu(np.array([0.0, 2.0]))
    array([0., 2.])
    """
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0))).astype(x.dtype)


@elu.derivative
def _elu_grad(dy, x, y):
    return np.where(x > 0, dy, dy * (y + 1))


@activation
def selu(x):
    """scale * elu(x, alpha) with SELU's fixed alpha and scale (self-normalising).

    >>> cnnx.activations.selu(np.array([0.0, 1.0])).round(4)
    array([0.    , 1.0507])
    """
    return (_SELU_SCALE * elu(x, _SELU_ALPHA)).astype(x.dtype)


@selu.derivative
def _selu_grad(dy, x, y):
    return np.where(x > 0, dy * _SELU_SCALE, dy * (y + _SELU_SCALE * _SELU_ALPHA))


_erf = np.vectorize(math.erf, otypes=[np.float64])


def _erf_array(x):
    try:  # SciPy is optional; math.erf per element is the exact fallback
        from scipy.special import erf
        return erf(x)
    except ImportError:
        return _erf(x)


@activation
def gelu(x):
    """The exact GELU, x * Phi(x), as Keras's default (approximate=False).

    >>> cnnx.activations.gelu(np.array([0.0, 1.0])).round(4)
    array([0.    , 0.8413])
    """
    return (0.5 * x * (1 + _erf_array(x / np.sqrt(2)))).astype(x.dtype)


@gelu.derivative
def _gelu_grad(dy, x, _y):
    pdf = np.exp(-0.5 * x * x) / np.sqrt(2 * np.pi)
    cdf = 0.5 * (1 + _erf_array(x / np.sqrt(2)))
    return (dy * (cdf + x * pdf)).astype(dy.dtype)


@activation
def softplus(x):
    """log(1 + exp(x)), computed without overflow.

    >>> cnnx.activations.softplus(np.array([0.0])).round(4)   # log 2
    array([0.6931])
    """
    return (np.logaddexp(0, x)).astype(x.dtype)


@softplus.derivative
def _softplus_grad(dy, x, _y):
    return dy * ops.sigmoid(x)


@activation
def silu(x):
    """x * sigmoid(x) (Keras 3's silu; swish is its other name).

    >>> cnnx.activations.silu(np.array([0.0, 1.0])).round(4)   # x * sigmoid(x)
    array([0.    , 0.7311])
    """
    return (x * ops.sigmoid(x)).astype(x.dtype)


@silu.derivative
def _silu_grad(dy, x, _y):
    s = ops.sigmoid(x)
    return (dy * (s + x * s * (1 - s))).astype(dy.dtype)


swish = REGISTRY.register("swish")(silu)


@activation
def hard_sigmoid(x):
    """Keras 3's hard sigmoid: relu6(x + 3) / 6, i.e. clip(x / 6 + 1/2, 0, 1).

    >>> cnnx.activations.hard_sigmoid(np.array([-4.0, 0.0, 4.0])).round(4)
    array([0. , 0.5, 1. ])
    """
    return np.clip(x / x.dtype.type(6) + x.dtype.type(0.5), 0, 1).astype(x.dtype)


@hard_sigmoid.derivative
def _hard_sigmoid_grad(dy, x, _y):
    return np.where((x > -3) & (x < 3), dy / dy.dtype.type(6), 0).astype(dy.dtype)


@activation
def hard_silu(x):
    """x * hard_sigmoid(x) (hard_swish is its other name).

    >>> cnnx.activations.hard_silu(np.array([-1.0, 0.0, 4.0])).round(4)   # x * hard_sigmoid(x)
    array([-0.3333,  0.    ,  4.    ])
    """
    return (x * hard_sigmoid(x)).astype(x.dtype)


@hard_silu.derivative
def _hard_silu_grad(dy, x, _y):
    inside = (x > -3) & (x < 3)
    return (dy * (hard_sigmoid(x) + np.where(inside, x / 6, 0))).astype(dy.dtype)


hard_swish = REGISTRY.register("hard_swish")(hard_silu)


@activation
def mish(x):
    """x * tanh(softplus(x)).

    >>> cnnx.activations.mish(np.array([0.0, 1.0])).round(4)
    array([0.    , 0.8651])
    """
    return (x * np.tanh(np.logaddexp(0, x))).astype(x.dtype)


@mish.derivative
def _mish_grad(dy, x, _y):
    t = np.tanh(np.logaddexp(0, x))
    return (dy * (t + x * (1 - t * t) * ops.sigmoid(x))).astype(dy.dtype)


@activation
def log_softmax(x, axis=-1):
    """x - logsumexp(x) along axis, computed shifted by the maximum.

    >>> cnnx.activations.log_softmax(np.array([[0.0, 0.0]])).round(4)   # log 1/2
    array([[-0.6931, -0.6931]])
    """
    shifted = x - np.max(x, axis=axis, keepdims=True)
    return (shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))).astype(
        x.dtype)


@log_softmax.derivative
def _log_softmax_grad(dy, _x, y):
    return (dy - np.exp(y) * np.sum(dy, axis=-1, keepdims=True)).astype(dy.dtype)


@activation
def linear(x):
    """The identity (no activation).

    >>> cnnx.activations.linear(np.array([-3.0, 3.0]))
    array([-3.,  3.])
    """
    return x


@linear.derivative
def _linear_grad(dy, _x, _y):
    return dy


def get(identifier):
    """An activation by name (or None -> linear); a registered activation passes through,
    and so does a function of the same name (np.tanh is tanh).

    >>> cnnx.activations.get("relu") is cnnx.activations.relu
    True
    """
    if identifier is None:
        return linear
    if isinstance(identifier, ActivationFunction):
        return identifier
    if isinstance(identifier, str):
        return REGISTRY.by_name(identifier)
    name = getattr(identifier, "__name__", None)
    if callable(identifier) and isinstance(name, str) and name in REGISTRY:
        return REGISTRY.by_name(name)
    raise ValueError(f"Unsupported activation {identifier!r}: cnnx computes the gradients "
                     f"of its named activations {sorted(REGISTRY._by_name)}")


def serialize(activation):
    """The activation's name (what configs hold).

    >>> cnnx.activations.serialize(cnnx.activations.relu)
    'relu'
    """
    return activation.__name__

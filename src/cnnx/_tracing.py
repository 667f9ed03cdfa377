"""Tracing for the Lambda layer: a function of arithmetic and `cnnx.ops` calls, recorded
once on symbolic inputs, then run forward and differentiated backward.

`trace(function, shapes)` calls the function on `Symbol`s. Arithmetic (+, -, *, /, unary
minus, ** by a number) on a Symbol records a step, and so do the differentiable
`cnnx.ops` functions (relu, sigmoid, softmax, flatten, conv, max_pool, average_pool),
which hand a Symbol argument to `record` instead of computing. Anything else (a NumPy
function, a comparison) raises TypeError on a Symbol; the Lambda is then
inference-only, and says why when a model would train through it.

A Trace runs forward on arrays keeping each step's values, and backward gives the
gradient of each input from the gradient of the output, step by step in reverse.
"""
import numbers

import numpy as np

__all__ = ["Symbol", "trace", "Trace", "record"]


class Symbol:
    """A tensor during tracing: its shape (batch as None) and the step that makes it."""

    __array_ufunc__ = None    # NumPy's functions refuse it (they have no gradient here)

    def __init__(self, shape, step=None):
        self.shape = tuple(shape)
        self.step = step

    @property
    def ndim(self):
        return len(self.shape)

    def _binary(self, other, op, reverse=False):
        if not isinstance(other, (Symbol, numbers.Real, np.ndarray)):
            return NotImplemented
        if isinstance(other, np.ndarray) and other.dtype.kind not in "biuf":
            return NotImplemented
        args = (other, self) if reverse else (self, other)
        shapes = [a.shape if isinstance(a, Symbol) else np.shape(a) for a in args]
        return record(op, args, {}, _broadcast_shape(shapes, op))

    def __add__(self, other):
        return self._binary(other, "add")

    def __radd__(self, other):
        return self._binary(other, "add", True)

    def __sub__(self, other):
        return self._binary(other, "subtract")

    def __rsub__(self, other):
        return self._binary(other, "subtract", True)

    def __mul__(self, other):
        return self._binary(other, "multiply")

    def __rmul__(self, other):
        return self._binary(other, "multiply", True)

    def __truediv__(self, other):
        return self._binary(other, "divide")

    def __rtruediv__(self, other):
        return self._binary(other, "divide", True)

    def __neg__(self):
        return record("negative", (self,), {}, self.shape)

    def __pow__(self, exponent):
        if not isinstance(exponent, numbers.Real) or isinstance(exponent, bool):
            return NotImplemented
        return record("power", (self,), {"exponent": float(exponent)}, self.shape)

    def __bool__(self):
        raise TypeError("a traced tensor has no truth value (a comparison or an `if` on "
                        "the data has no gradient)")

    def __repr__(self):
        return f"<Symbol shape={self.shape}>"


def _broadcast_shape(shapes, op):
    ndim = max(len(s) for s in shapes)
    out = []
    for axis in range(ndim):
        sizes = {s[axis - ndim + len(s)] for s in shapes if axis - ndim + len(s) >= 0}
        sizes.discard(1)
        if None in sizes:
            out.append(None)
            continue
        if len(sizes) > 1:
            raise ValueError(f"{op}: shapes {shapes} do not broadcast")
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


class _Step:
    __slots__ = ("op", "args", "params", "out")

    def __init__(self, op, args, params):
        self.op, self.args, self.params = op, args, params


def record(op, args, params, shape):
    """A Symbol for op(*args, **params): the hook the traceable ops call."""
    step = _Step(op, tuple(args), dict(params))
    step.out = Symbol(shape, step)
    return step.out


def is_symbol(x):
    return isinstance(x, Symbol)


def trace(function, shapes, multi, arguments):
    """The Trace of function on inputs of the given shapes, or raise what stopped it."""
    inputs = [Symbol(s) for s in shapes]
    out = function(inputs if multi else inputs[0], **arguments)
    if not isinstance(out, Symbol):
        raise TypeError(f"it returned {type(out).__name__}, not a tensor computed from "
                        f"its input")
    return Trace(inputs, out)


class Trace:
    """A recorded function: its steps in order, from inputs to output."""

    def __init__(self, inputs, output):
        self.inputs, self.output = inputs, output
        order, seen = [], set()
        stack = [(output, False)]
        while stack:          # depth-first, iterative: a step after the steps it reads
            sym, expanded = stack.pop()
            step = sym.step
            if step is None or id(step) in seen:
                continue
            if expanded:
                seen.add(id(step))
                order.append(step)
                continue
            stack.append((sym, True))
            stack.extend((a, False) for a in step.args if isinstance(a, Symbol))
        self.steps = order

    @property
    def output_shape(self):
        return self.output.shape

    def forward(self, arrays):
        """The output for the input arrays, and every step's value (for backward)."""
        values = {id(s): a for s, a in zip(self.inputs, arrays)}
        dtype = arrays[0].dtype
        for step in self.steps:
            args = [values[id(a)] if isinstance(a, Symbol) else _constant(a, dtype)
                    for a in step.args]
            values[id(step.out)] = _FORWARD[step.op](*args, **step.params)
        return values[id(self.output)], values

    def backward(self, values, grad):
        """dL/d(input) for each input, from dL/d(output)."""
        grads = {id(self.output): grad}
        for step in reversed(self.steps):
            g = grads.pop(id(step.out), None)
            if g is None:
                continue
            args = [values[id(a)] if isinstance(a, Symbol) else _constant(a, g.dtype)
                    for a in step.args]
            parts = _BACKWARD[step.op](g, values[id(step.out)], *args, **step.params)
            for a, d in zip(step.args, parts):
                if isinstance(a, Symbol) and d is not None:
                    d = _unbroadcast(d, values[id(a)].shape)
                    grads[id(a)] = d if id(a) not in grads else grads[id(a)] + d
        return [grads.get(id(s), np.zeros_like(values[id(s)])) for s in self.inputs]


def _constant(a, dtype):
    return np.asarray(a, dtype=dtype)


def _unbroadcast(grad, shape):
    if grad.shape == tuple(shape):
        return grad
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, s in enumerate(shape) if s == 1 and grad.shape[lead + i] != 1)
    return grad.sum(axis=axes, keepdims=True).reshape(shape).astype(grad.dtype, copy=False)


def _ops():
    from . import ops
    return ops


def _softmax_grad(g, y, x, axis=-1):  # noqa: ARG001
    return [y * (g - np.sum(g * y, axis=axis, keepdims=True))]


def _conv_grad(g, y, x, kernel, **params):  # noqa: ARG001
    dx, _, _ = _ops().conv2d_backward(x, kernel, g, params["strides"], params["padding"],
                                      params["dilation_rate"], use_bias=False)
    return [dx, None]


def _max_pool_forward(x, **params):
    y, _ = _ops().max_pool2d(x, params["pool_size"], params["strides"], params["padding"])
    return y


def _max_pool_grad(g, y, x, **params):  # noqa: ARG001
    _, argmax = _ops().max_pool2d(x, params["pool_size"], params["strides"],
                                  params["padding"])
    return [_ops().max_pool2d_backward(g, argmax, x.shape)]


def _average_pool_grad(g, y, x, **params):  # noqa: ARG001
    return [_ops().average_pool2d_backward(g, x.shape, params["pool_size"],
                                           params["strides"], params["padding"])]


_FORWARD = {
    "add": np.add, "subtract": np.subtract, "multiply": np.multiply, "divide": np.divide,
    "negative": np.negative,
    "power": lambda x, exponent: np.power(x, x.dtype.type(exponent)),
    "relu": lambda x: _ops().relu(x),
    "sigmoid": lambda x: _ops().sigmoid(x),
    "softmax": lambda x, axis=-1: _ops().softmax(x, axis),
    "flatten": lambda x: x.reshape(x.shape[0], -1),
    "conv": lambda x, kernel, **p: _ops().conv2d(x, kernel, None, p["strides"], p["padding"],
                                                 p["dilation_rate"]),
    "max_pool": _max_pool_forward,
    "average_pool": lambda x, **p: _ops().average_pool2d(x, p["pool_size"], p["strides"],
                                                         p["padding"]),
}

# Each rule: (dL/d(output), output, *arguments, **params) -> dL/d(each argument).
_BACKWARD = {
    "add": lambda g, _y, _a, _b: [g, g],
    "subtract": lambda g, _y, _a, _b: [g, -g],
    "multiply": lambda g, _y, a, b: [g * b, g * a],
    "divide": lambda g, _y, a, b: [g / b, -g * a / (b * b)],
    "negative": lambda g, _y, _x: [-g],
    "power": lambda g, _y, x, exponent: [
        g * x.dtype.type(exponent) * np.power(x, x.dtype.type(exponent - 1))],
    "relu": lambda g, y, _x: [_ops().relu_backward(g, y)],
    "sigmoid": lambda g, y, _x: [g * y * (1 - y)],
    "softmax": _softmax_grad,
    "flatten": lambda g, _y, x: [g.reshape(x.shape)],
    "conv": _conv_grad,
    "max_pool": _max_pool_grad,
    "average_pool": _average_pool_grad,
}

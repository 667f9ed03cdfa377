"""Merge layers: Add, Subtract, Multiply, Average, Maximum, Minimum and Concatenate, with
Keras's functional forms (layers.add([a, b]), layers.concatenate([a, b]), ...).

Each takes a list of tensors. The elementwise ones broadcast as Keras does (sizes equal
or 1, per axis after the batch); their backward sums each gradient back to its input's
shape.
"""
import numbers

import numpy as np

from .. import ops
from .base import REGISTRY, CompiledOp, Layer

__all__ = ["Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate",
           "add", "subtract", "multiply", "average", "maximum", "minimum", "concatenate"]


def _unbroadcast(grad, shape):
    """Sum grad (of a broadcast result) back to an input of the given shape."""
    if grad.shape == tuple(shape):
        return grad
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, s in enumerate(shape) if s == 1 and grad.shape[lead + i] != 1)
    return grad.sum(axis=axes, keepdims=True).reshape(shape).astype(grad.dtype, copy=False)


class _Merge(Layer):
    """Base of the elementwise merges: checks the list of input shapes."""

    _min_inputs = 2

    def _shapes(self, input_shape, what="input"):
        where = f"{type(self).__name__} {self.name!r}"
        if not isinstance(input_shape, list) or len(input_shape) < self._min_inputs:
            raise ValueError(f"{where}: expects a list of at least {self._min_inputs} "
                             f"tensors, received {what} of shape {input_shape}")
        return [tuple(s) for s in input_shape]

    def build(self, input_shape):
        self._shapes(input_shape)

    def compute_output_shape(self, input_shape):
        shapes = self._shapes(input_shape)
        ndim = max(len(s) for s in shapes)
        out = [None]
        for axis in range(1, ndim):
            sizes = {s[axis - ndim + len(s)] for s in shapes if axis - ndim + len(s) >= 1}
            sizes.discard(1)
            if None in sizes:
                sizes.discard(None)
                if not sizes:
                    sizes = {None}
            if len(sizes) > 1:
                raise ValueError(f"{type(self).__name__} {self.name!r}: the input shapes "
                                 f"{shapes} do not match: axis {axis} has sizes "
                                 f"{sorted(sizes)} (each must be equal, or 1 to broadcast)")
            out.append(sizes.pop() if sizes else 1)
        return tuple(out)

    def forward(self, ctx, inputs, training=False):  # noqa: ARG002
        ctx.saved["shapes"] = [x.shape for x in inputs]
        return self._merge(ctx, inputs).astype(inputs[0].dtype, copy=False)

    def backward(self, ctx, grad):
        return [_unbroadcast(g, s) for g, s in zip(self._grads(ctx, grad),
                                                   ctx.saved["shapes"])]


@REGISTRY.register()
class Add(_Merge):
    """The sum of its inputs (the residual connection of ResNets).

    >>> cnnx.layers.Add()([np.array([[1.0, 2.0]]), np.array([[10.0, 20.0]])])
    array([[11., 22.]], dtype=float32)
    """

    def can_fuse_relu(self, training):  # noqa: ARG002
        return True

    def compiled_ops(self, ctx, dtype):  # noqa: ARG002
        # Two inputs of one shape (the builder checks): the compiled sum _merge runs.
        return [CompiledOp("add", relu=ctx.fused_relu)]

    compiled_methods = ("forward", "_merge")

    def _merge(self, ctx, inputs):
        first, relu = inputs[0], "relu" if ctx.fused_relu else None
        if all(x.shape == first.shape and x.dtype == first.dtype for x in inputs) \
                and first.dtype in (np.float32, np.float64):
            # the compiled sum (the last with the fused ReLU), into a kept buffer
            buf = ctx.buffer("y", first.shape, first.dtype)
            out = first
            for i, x in enumerate(inputs[1:], 2):
                # (the returned array: under testing.reference_kernels, not `buf`)
                out = ops.add(out, x, relu if i == len(inputs) else None, out=buf)
        else:
            out = first + inputs[1]
            for x in inputs[2:]:
                out = out + x
            if relu:
                out = ops.relu(out, out=out)
        if relu:
            ctx.saved["y"] = out
        return out

    def _grads(self, ctx, grad):
        if ctx.fused_relu:
            grad = ops.relu_backward(grad, ctx.saved["y"],
                                     out=ctx.buffer("dy", grad.shape, grad.dtype))
        return [grad] * len(ctx.saved["shapes"])


@REGISTRY.register()
class Subtract(_Merge):
    """inputs[0] - inputs[1] (exactly two inputs).

    >>> cnnx.layers.Subtract()([np.array([[1.0, 2.0]]), np.array([[10.0, 20.0]])])
    array([[ -9., -18.]], dtype=float32)
    """

    def _shapes(self, input_shape, what="input"):
        shapes = super()._shapes(input_shape, what)
        if len(shapes) != 2:
            raise ValueError(f"Subtract {self.name!r}: expects exactly 2 inputs, received "
                             f"{len(shapes)}")
        return shapes

    def _merge(self, ctx, inputs):  # noqa: ARG002
        return inputs[0] - inputs[1]

    def _grads(self, ctx, grad):  # noqa: ARG002
        return [grad, -grad]


@REGISTRY.register()
class Multiply(_Merge):
    """The elementwise product of its inputs.

    >>> cnnx.layers.Multiply()([np.array([[1.0, 2.0]]), np.array([[10.0, 20.0]])])
    array([[10., 40.]], dtype=float32)
    """

    def _merge(self, ctx, inputs):
        ctx.saved["inputs"] = inputs
        out = inputs[0] * inputs[1]
        for x in inputs[2:]:
            out = out * x
        return out

    def _grads(self, ctx, grad):
        inputs = ctx.saved["inputs"]
        grads = []
        for i in range(len(inputs)):
            g = grad
            for j, x in enumerate(inputs):
                if j != i:
                    g = g * x
            grads.append(g)
        return grads


@REGISTRY.register()
class Average(_Merge):
    """The mean of its inputs.

    >>> cnnx.layers.Average()([np.array([[1.0, 2.0]]), np.array([[10.0, 20.0]])])
    array([[ 5.5, 11. ]], dtype=float32)
    """

    def _merge(self, ctx, inputs):  # noqa: ARG002
        return Add._merge(self, ctx, inputs) / inputs[0].dtype.type(len(inputs))

    def _grads(self, ctx, grad):
        n = len(ctx.saved["shapes"])
        return [grad / grad.dtype.type(n)] * n


class _Extremum(_Merge):
    """Maximum or Minimum: the gradient goes to the input that won (the first one, on a
    tie), as an argmax would send it."""

    _pick = None

    def _merge(self, ctx, inputs):
        shape = np.broadcast_shapes(*(x.shape for x in inputs))
        stacked = np.stack([np.broadcast_to(x, shape) for x in inputs])
        winner = ctx.saved["winner"] = type(self)._pick(stacked, axis=0)
        return np.take_along_axis(stacked, winner[None], axis=0)[0]

    def _grads(self, ctx, grad):
        winner = ctx.saved["winner"]
        return [np.where(winner == i, grad, 0).astype(grad.dtype)
                for i in range(len(ctx.saved["shapes"]))]


@REGISTRY.register()
class Maximum(_Extremum):
    """The elementwise maximum of its inputs.

    >>> cnnx.layers.Maximum()([np.array([[1.0, 20.0]]), np.array([[10.0, 2.0]])])
    array([[10., 20.]], dtype=float32)
    """
    _pick = np.argmax


@REGISTRY.register()
class Minimum(_Extremum):
    """The elementwise minimum of its inputs.

    >>> cnnx.layers.Minimum()([np.array([[1.0, 20.0]]), np.array([[10.0, 2.0]])])
    array([[1., 2.]], dtype=float32)
    """
    _pick = np.argmin


@REGISTRY.register()
class Concatenate(Layer):
    """Its inputs joined along `axis` (default -1, the channels); every other axis must
    match.

    >>> a, b = cnnx.Input((8, 8, 3)), cnnx.Input((8, 8, 5))
    >>> cnnx.layers.Concatenate()([a, b]).shape
    (None, 8, 8, 8)
    """

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, numbers.Integral) or axis == 0:
            raise ValueError(f"Concatenate {self.name!r}: `axis` must be a nonzero int "
                             f"(axis 0 is the batch), received {axis!r}")
        self.axis = int(axis)

    def build(self, input_shape):
        self.compute_output_shape(input_shape)

    def compute_output_shape(self, input_shape):
        where = f"Concatenate {self.name!r}"
        if not isinstance(input_shape, list) or len(input_shape) < 2:
            raise ValueError(f"{where}: expects a list of at least 2 tensors, received "
                             f"input of shape {input_shape}")
        shapes = [tuple(s) for s in input_shape]
        ndim = len(shapes[0])
        axis = self.axis % ndim if -ndim <= self.axis < ndim else None
        if axis in (None, 0) or any(len(s) != ndim for s in shapes):
            raise ValueError(f"{where}: cannot join shapes {shapes} along axis {self.axis}")
        for s in shapes:
            if any(a != b and None not in (a, b) for i, (a, b) in enumerate(zip(s, shapes[0]))
                   if i not in (0, axis)):
                raise ValueError(f"{where}: the shapes {shapes} must match on every axis "
                                 f"but {self.axis}")
        sizes = [s[axis] for s in shapes]
        joined = None if None in sizes else sum(sizes)
        return shapes[0][:axis] + (joined,) + shapes[0][axis + 1:]

    def forward(self, ctx, inputs, training=False):  # noqa: ARG002
        ctx.saved["sizes"] = [x.shape[self.axis] for x in inputs]
        return np.concatenate(inputs, axis=self.axis)

    def backward(self, ctx, grad):
        cuts = np.cumsum(ctx.saved["sizes"])[:-1]
        return np.split(grad, cuts, axis=self.axis)


def _functional(cls):
    def merge(inputs, **kwargs):
        return cls(**kwargs)(inputs)
    merge.__name__ = cls.__name__.lower()
    width = 8 if cls is Concatenate else 4
    merge.__doc__ = (f"Functional form of {cls.__name__}: ``{cls.__name__}(**kwargs)(inputs)``."
                     f"\n\n    >>> a, b = cnnx.Input((4,)), cnnx.Input((4,))"
                     f"\n    >>> cnnx.layers.{merge.__name__}([a, b]).shape"
                     f"\n    (None, {width})\n    ")
    return merge


add, subtract, multiply, average = (_functional(c) for c in (Add, Subtract, Multiply, Average))
maximum, minimum, concatenate = (_functional(c) for c in (Maximum, Minimum, Concatenate))

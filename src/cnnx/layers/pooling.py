"""MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D, GlobalMaxPooling2D (NHWC), and
their 1-D forms over (batch, steps, channels), run as the 2-D kernels on images one row
high."""
import numpy as np

from .. import ops
from .._geometry import conv_output_length, normalize_padding, normalize_tuple
from .base import REGISTRY, CompiledOp, Layer

__all__ = ["MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D",
           "GlobalMaxPooling2D", "MaxPool2D", "AvgPool2D", "MaxPooling1D", "AveragePooling1D",
           "GlobalAveragePooling1D", "GlobalMaxPooling1D", "MaxPool1D", "AvgPool1D"]


class _Pooling2D(Layer):
    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None,
                 **kwargs):
        super().__init__(**kwargs)
        where = f"{type(self).__name__} {self.name!r}"
        self.pool_size = normalize_tuple(pool_size, 2, "pool_size", where)
        self.strides = (self.pool_size if strides is None
                        else normalize_tuple(strides, 2, "strides", where))
        self.padding = normalize_padding(padding, where)
        if data_format not in (None, "channels_last"):
            raise ValueError(f"{where}: only data_format='channels_last' is supported, "
                             f"received {data_format!r}")
        self.data_format = "channels_last"

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"{type(self).__name__} {self.name!r} expects 4-D input "
                             f"(batch, height, width, channels), received shape "
                             f"{tuple(input_shape)}")

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        oh, ow = (conv_output_length(size, k, self.padding, s) for size, k, s in
                  zip((h, w), self.pool_size, self.strides))
        if oh < 1 or ow < 1:
            raise ValueError(f"{type(self).__name__} {self.name!r}: pool_size "
                             f"{self.pool_size} does not fit the input's height and width "
                             f"{(h, w)} under padding='valid'")
        return (n, oh, ow, c)



@REGISTRY.register()
class MaxPooling2D(_Pooling2D):
    # The max of ReLU outputs is a ReLU output: the scatter of the backward pass can
    # apply the producer's ReLU mask (ctx.fuse_relu_backward), saving it a pass.
    """The maximum over each pool_size window of each channel, every `strides` pixels
    (default: the pool size), padding "valid" or "same" (padding never wins). The
    backward pass sends each gradient to its window's first maximum, and applies a
    ReLU mask of the layer below when the model's plan fuses it.

    Input (N, H, W, C); output (N, OH, OW, C): with "valid" padding
    OH = (H - pool_h) // stride_h + 1, with "same" OH = ceil(H / stride_h).

    >>> cnnx.layers.MaxPooling2D(2)(np.zeros((1, 5, 5, 3), np.float32)).shape
    (1, 2, 2, 3)
    >>> cnnx.layers.MaxPooling2D(2, padding="same")(np.zeros((1, 5, 5, 3), np.float32)).shape
    (1, 3, 3, 3)
    """
    absorbs_relu_backward = True

    def compiled_ops(self, ctx, dtype):  # noqa: ARG002
        return [CompiledOp("max_pool2d", pool=self.pool_size, strides=self.strides,
                           padding=self.padding)]

    def forward(self, ctx, inputs, training=False):  # noqa: ARG002
        shape = (inputs.shape[0],) + self.output_shape[1:]
        y, argmax = ops.max_pool2d(
            inputs, self.pool_size, self.strides, self.padding,
            out=(ctx.buffer("y", shape, inputs.dtype), ctx.buffer("argmax", shape, np.int32)))
        ctx.saved.update(argmax=argmax, x_shape=inputs.shape, y=y)
        return y

    def backward(self, ctx, grad):
        saved = ctx.saved
        return ops.max_pool2d_backward(
            grad, saved["argmax"], saved["x_shape"],
            out=ctx.buffer("dx", saved["x_shape"], grad.dtype),
            relu_output=saved["y"] if ctx.fuse_relu_backward else None)


@REGISTRY.register()
class AveragePooling2D(_Pooling2D):
    """The mean over each pool_size window of each channel, every `strides` pixels; under
    "same" the padding is left out of the divisor, as in Keras.

    >>> x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    >>> cnnx.layers.AveragePooling2D(2)(x)[0, :, :, 0]
    array([[ 2.5,  4.5],
           [10.5, 12.5]], dtype=float32)
    """
    def forward(self, ctx, inputs, training=False):  # noqa: ARG002
        ctx.saved["x_shape"] = inputs.shape
        return ops.average_pool2d(inputs, self.pool_size, self.strides, self.padding,
                                  out=ctx.buffer("y", (inputs.shape[0],)
                                                 + self.output_shape[1:], inputs.dtype))

    def backward(self, ctx, grad):
        x_shape = ctx.saved["x_shape"]
        return ops.average_pool2d_backward(grad, x_shape, self.pool_size, self.strides,
                                           self.padding,
                                           out=ctx.buffer("dx", x_shape, grad.dtype))


MaxPool2D = MaxPooling2D
AvgPool2D = AveragePooling2D


class _GlobalPooling2D(Layer):
    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last"):
            raise ValueError(f"{type(self).__name__} {self.name!r}: only "
                             f"data_format='channels_last' is supported")
        self.data_format = "channels_last"
        self.keepdims = bool(keepdims)

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"{type(self).__name__} {self.name!r} expects 4-D input, "
                             f"received shape {tuple(input_shape)}")

    def compute_output_shape(self, input_shape):
        n, _, _, c = input_shape
        return (n, 1, 1, c) if self.keepdims else (n, c)



@REGISTRY.register()
class GlobalAveragePooling2D(_GlobalPooling2D):
    """The mean over height and width, per channel: (N, H, W, C) -> (N, C), or (N, 1, 1,
    C) with keepdims.

    >>> x = np.arange(8, dtype=np.float32).reshape(1, 2, 2, 2)
    >>> cnnx.layers.GlobalAveragePooling2D()(x)
    array([[3., 4.]], dtype=float32)
    """
    def compiled_ops(self, ctx, dtype):  # noqa: ARG002
        return [CompiledOp("global_average_pool2d", keepdims=self.keepdims)]

    def forward(self, ctx, inputs, training=False):  # noqa: ARG002
        ctx.saved["x_shape"] = inputs.shape
        n, _, _, c = inputs.shape
        y = ops.global_average_pool2d(inputs, out=ctx.buffer("y", (n, c), inputs.dtype))
        return y.reshape(n, 1, 1, c) if self.keepdims else y

    def backward(self, ctx, grad):
        n, h, w, c = ctx.saved["x_shape"]
        dx = ctx.buffer("dx", (n, h, w, c), grad.dtype)   # (a new array each step: fresh
        np.copyto(dx, grad.reshape(n, 1, 1, c) / (h * w))  # pages, a fault each)
        return dx


@REGISTRY.register()
class GlobalMaxPooling2D(_GlobalPooling2D):
    """The maximum over height and width, per channel: (N, H, W, C) -> (N, C), or (N, 1,
    1, C) with keepdims.

    >>> x = np.arange(8, dtype=np.float32).reshape(1, 2, 2, 2)
    >>> cnnx.layers.GlobalMaxPooling2D()(x)
    array([[6., 7.]], dtype=float32)
    """
    def forward(self, ctx, inputs, training=False):  # noqa: ARG002
        n, h, w, c = inputs.shape
        ctx.saved["x_shape"] = inputs.shape
        ctx.saved["argmax"] = inputs.reshape(n, h * w, c).argmax(axis=1)
        return inputs.max(axis=(1, 2), keepdims=self.keepdims)

    def backward(self, ctx, grad):
        n, h, w, c = ctx.saved["x_shape"]
        dx = np.zeros((n, h * w, c), grad.dtype)
        np.put_along_axis(dx, ctx.saved["argmax"][:, None, :], grad.reshape(n, 1, c),
                          axis=1)
        return dx.reshape(n, h, w, c)


class _Pooling1D(Layer):
    """A 1-D pooling as its 2-D layer on an image one row high."""

    _pool2d = None

    def __init__(self, pool_size=2, strides=None, padding="valid", data_format=None,
                 **kwargs):
        super().__init__(**kwargs)
        where = f"{type(self).__name__} {self.name!r}"
        self.pool_size = normalize_tuple(pool_size, 1, "pool_size", where)
        self.strides = (self.pool_size if strides is None
                        else normalize_tuple(strides, 1, "strides", where))
        self.padding = normalize_padding(padding, where)
        if data_format not in (None, "channels_last"):
            raise ValueError(f"{where}: only data_format='channels_last' is supported")
        self.data_format = "channels_last"
        self._pool = type(self)._pool2d((1,) + self.pool_size, (1,) + self.strides,
                                        self.padding, dtype=self.dtype,
                                        name=f"{self.name}_2d")

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"{type(self).__name__} {self.name!r} expects 3-D input "
                             f"(batch, steps, channels), received shape "
                             f"{tuple(input_shape)}")
        self._pool._build_once((input_shape[0], 1, input_shape[1], input_shape[2]))

    def compute_output_shape(self, input_shape):
        n, _, steps, c = self._pool.compute_output_shape(
            (input_shape[0], 1, input_shape[1], input_shape[2]))
        return (n, steps, c)

    def forward(self, ctx, inputs, training=False):
        n, steps, c = inputs.shape
        y = self._pool.forward(ctx, inputs.reshape(n, 1, steps, c), training)
        return y.reshape(n, y.shape[2], c)

    def backward(self, ctx, grad):
        n, steps, c = grad.shape
        dx = self._pool.backward(ctx, grad.reshape(n, 1, steps, c))
        return dx.reshape(n, dx.shape[2], c)


@REGISTRY.register()
class MaxPooling1D(_Pooling1D):
    """The maximum over windows of pool_size steps, every `strides` steps (padding
    "valid" or "same").

    >>> cnnx.layers.MaxPooling1D(2)(np.array([[[1.0], [3.0], [2.0], [0.0]]]))[0, :, 0]
    array([3., 2.], dtype=float32)
    """
    _pool2d = MaxPooling2D


@REGISTRY.register()
class AveragePooling1D(_Pooling1D):
    """The mean over windows of pool_size steps, every `strides` steps (padding left out
    of the mean).

    >>> cnnx.layers.AveragePooling1D(2)(np.array([[[1.0], [3.0], [2.0], [0.0]]]))[0, :, 0]
    array([2., 1.], dtype=float32)
    """
    _pool2d = AveragePooling2D


MaxPool1D = MaxPooling1D
AvgPool1D = AveragePooling1D


class _GlobalPooling1D(Layer):
    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last"):
            raise ValueError(f"{type(self).__name__} {self.name!r}: only "
                             f"data_format='channels_last' is supported")
        self.data_format = "channels_last"
        self.keepdims = bool(keepdims)

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"{type(self).__name__} {self.name!r} expects 3-D input, "
                             f"received shape {tuple(input_shape)}")

    def compute_output_shape(self, input_shape):
        n, _, c = input_shape
        return (n, 1, c) if self.keepdims else (n, c)


@REGISTRY.register()
class GlobalAveragePooling1D(_GlobalPooling1D):
    """The mean over all steps, per channel: (batch, steps, channels) -> (batch,
    channels), or (batch, 1, channels) with keepdims.

    >>> cnnx.layers.GlobalAveragePooling1D()(np.array([[[1.0], [3.0], [2.0], [0.0]]]))
    array([[1.5]], dtype=float32)
    """
    def forward(self, ctx, inputs, training=False):  # noqa: ARG002
        ctx.saved["x_shape"] = inputs.shape
        return inputs.mean(axis=1, keepdims=self.keepdims, dtype=inputs.dtype)

    def backward(self, ctx, grad):
        n, steps, c = ctx.saved["x_shape"]
        share = grad.reshape(n, 1, c) / grad.dtype.type(steps)
        return np.broadcast_to(share, (n, steps, c)).astype(grad.dtype)


@REGISTRY.register()
class GlobalMaxPooling1D(_GlobalPooling1D):
    """The maximum over all steps, per channel: (batch, steps, channels) -> (batch,
    channels), or (batch, 1, channels) with keepdims.

    >>> cnnx.layers.GlobalMaxPooling1D()(np.array([[[1.0], [3.0], [2.0], [0.0]]]))
    array([[3.]], dtype=float32)
    """
    def forward(self, ctx, inputs, training=False):  # noqa: ARG002
        ctx.saved["x_shape"] = inputs.shape
        ctx.saved["argmax"] = inputs.argmax(axis=1)
        return inputs.max(axis=1, keepdims=self.keepdims)

    def backward(self, ctx, grad):
        n, steps, c = ctx.saved["x_shape"]
        dx = np.zeros((n, steps, c), grad.dtype)
        np.put_along_axis(dx, ctx.saved["argmax"][:, None, :], grad.reshape(n, 1, c), axis=1)
        return dx

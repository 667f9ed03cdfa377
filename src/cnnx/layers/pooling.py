"""MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D, GlobalMaxPooling2D (NHWC)."""
import numpy as np

from .. import ops
from .._geometry import conv_output_length, normalize_padding, normalize_tuple
from .base import REGISTRY, Layer

__all__ = ["MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D",
           "GlobalMaxPooling2D", "MaxPool2D", "AvgPool2D"]


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
    def call(self, inputs, training=False):  # noqa: ARG002 (Keras's signature)
        shape = (inputs.shape[0],) + self.output_shape[1:]
        y, self._argmax = ops.max_pool2d(
            inputs, self.pool_size, self.strides, self.padding,
            out=(self._buffer("y", shape), self._buffer("argmax", shape, np.int32)))
        self._x_shape, self._y = inputs.shape, y
        return y

    def backward(self, grad, fuse_relu_backward=False):
        """fuse_relu_backward: the input came from a ReLU whose backward pass is done here,
        fused into the scatter (the model asks for it; the ReLU's layer then skips its
        own)."""
        return ops.max_pool2d_backward(grad, self._argmax, self._x_shape,
                                       out=self._buffer("dx", self._x_shape),
                                       relu_output=self._y if fuse_relu_backward else None)


@REGISTRY.register()
class AveragePooling2D(_Pooling2D):
    def call(self, inputs, training=False):  # noqa: ARG002 (Keras's signature)
        self._x_shape = inputs.shape
        return ops.average_pool2d(inputs, self.pool_size, self.strides, self.padding,
                                  out=self._buffer("y", (inputs.shape[0],)
                                                   + self.output_shape[1:]))

    def backward(self, grad):
        return ops.average_pool2d_backward(grad, self._x_shape, self.pool_size, self.strides,
                                           self.padding, out=self._buffer("dx", self._x_shape))


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
    def call(self, inputs, training=False):  # noqa: ARG002 (Keras's signature)
        self._x_shape = inputs.shape
        return inputs.mean(axis=(1, 2), keepdims=self.keepdims, dtype=inputs.dtype)

    def backward(self, grad):
        n, h, w, c = self._x_shape
        share = grad.reshape(n, 1, 1, c) / (h * w)
        return np.broadcast_to(share, self._x_shape).astype(grad.dtype)


@REGISTRY.register()
class GlobalMaxPooling2D(_GlobalPooling2D):
    def call(self, inputs, training=False):  # noqa: ARG002 (Keras's signature)
        n, h, w, c = inputs.shape
        self._x_shape = inputs.shape
        self._argmax = inputs.reshape(n, h * w, c).argmax(axis=1)
        y = inputs.max(axis=(1, 2), keepdims=self.keepdims)
        return y

    def backward(self, grad):
        n, h, w, c = self._x_shape
        dx = np.zeros((n, h * w, c), grad.dtype)
        np.put_along_axis(dx, self._argmax[:, None, :], grad.reshape(n, 1, c), axis=1)
        return dx.reshape(self._x_shape)

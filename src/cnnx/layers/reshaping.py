"""Layers that move values without arithmetic, or with a fixed interpolation:
UpSampling2D, ZeroPadding2D, Cropping2D, Permute, RepeatVector. NumPy's copies are the
right tool for them (memory-bound); each backward is the exact adjoint."""
import numbers

import numpy as np

from .._geometry import normalize_tuple
from .base import REGISTRY, Layer

__all__ = ["UpSampling2D", "ZeroPadding2D", "Cropping2D", "Permute", "RepeatVector"]


def _images(layer, input_shape):
    if len(input_shape) != 4:
        raise ValueError(f"{type(layer).__name__} {layer.name!r} expects 4-D input "
                         f"(batch, height, width, channels), received shape "
                         f"{tuple(input_shape)}")


def _pairs(value, name, where):
    """Keras's padding/cropping argument: n, (h, w) or ((top, bottom), (left, right))."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = ((value, value), (value, value))
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value):
        value = ((value[0], value[0]), (value[1], value[1]))
    try:
        pairs = tuple(normalize_tuple(v, 2, name, where, allow_zero=True) for v in value)
    except (TypeError, ValueError):
        pairs = ()
    if len(pairs) != 2:
        raise ValueError(f"{where}: `{name}` must be an int, (rows, cols) or ((top, bottom), "
                         f"(left, right)) of non-negative ints, received {value!r}")
    return pairs


def _nearest_matrix(n_in, n_out, dtype):
    """(n_out, n_in) selection of nearest-neighbour resizing along one axis, with
    half-pixel centres as TensorFlow's (source = floor((i + 0.5) * n_in / n_out))."""
    src = np.minimum(np.floor((np.arange(n_out) + 0.5) * (n_in / n_out)).astype(np.int64),
                     n_in - 1)
    m = np.zeros((n_out, n_in), dtype)
    m[np.arange(n_out), src] = 1
    return m


def _interpolation_matrix(n_in, n_out, dtype):
    """(n_out, n_in) weights of bilinear resizing along one axis, with half-pixel
    centres as TensorFlow's resize (source = (i + 0.5) * n_in / n_out - 0.5, clamped)."""
    src = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    low = np.floor(src)
    frac = src - low
    lo = np.clip(low, 0, n_in - 1).astype(np.int64)
    hi = np.clip(low + 1, 0, n_in - 1).astype(np.int64)
    m = np.zeros((n_out, n_in), dtype)
    np.add.at(m, (np.arange(n_out), lo), 1 - frac)
    np.add.at(m, (np.arange(n_out), hi), frac)
    return m


def _keys_cubic(x, a=-0.5):
    """Keys's cubic convolution kernel (a = -0.5, as TensorFlow's half-pixel bicubic)."""
    x = np.abs(x)
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return np.where(x <= 1, near, np.where(x < 2, far, 0.0))


def _bicubic_matrix(n_in, n_out, dtype):
    """(n_out, n_in) weights of bicubic resizing along one axis, as TensorFlow's resize
    (antialias off): half-pixel centres, Keys's kernel with a = -0.5 at the four nearest
    inputs, the offset rounded to 1/1024 (TensorFlow reads the weights from a table of
    1024 entries), and the taps that fall outside the image dropped, the rest
    renormalised."""
    src = ((np.arange(n_out) + 0.5) * np.float32(n_in / n_out) - 0.5).astype(np.float32)
    low = np.floor(src)
    frac = np.rint((src - low) * 1024) / 1024
    m = np.zeros((n_out, n_in), np.float64)
    for k in range(-1, 3):
        j = (low + k).astype(np.int64)
        inside = (j >= 0) & (j < n_in)
        m[np.arange(n_out)[inside], j[inside]] += _keys_cubic(k - frac)[inside]
    return (m / m.sum(axis=1, keepdims=True)).astype(dtype)


def _area_matrix(n_in, n_out, dtype):
    """(n_out, n_in) weights of area resizing along one axis, as TensorFlow's: each
    output is the mean of the inputs its cell covers, partly covered ones in proportion."""
    scale = n_in / n_out
    lo, hi = np.arange(n_out) * scale, (np.arange(n_out) + 1) * scale
    edges = np.arange(n_in)
    cover = np.clip(np.minimum(hi[:, None], edges + 1) - np.maximum(lo[:, None], edges),
                    0, None)
    return (cover / scale).astype(dtype)


# The per-axis weight matrices of each interpolation: a resize is one per axis.
INTERPOLATIONS = {"nearest": _nearest_matrix, "bilinear": _interpolation_matrix,
                  "bicubic": _bicubic_matrix, "area": _area_matrix}


@REGISTRY.register()
class UpSampling2D(Layer):
    """Each image size[0] times taller and size[1] times wider: every pixel repeated
    ("nearest"), or resized bilinearly or bicubically ("bilinear", "bicubic": half-pixel
    centres, as TensorFlow's resize).

    >>> x = np.array([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 2, 2, 1)
    >>> cnnx.layers.UpSampling2D(2)(x)[0, :, :, 0]
    array([[1., 1., 2., 2.],
           [1., 1., 2., 2.],
           [3., 3., 4., 4.],
           [3., 3., 4., 4.]], dtype=float32)
    """

    def __init__(self, size=(2, 2), data_format=None, interpolation="nearest", **kwargs):
        super().__init__(**kwargs)
        where = f"UpSampling2D {self.name!r}"
        self.size = normalize_tuple(size, 2, "size", where)
        if interpolation not in ("nearest", "bilinear", "bicubic"):
            raise ValueError(f"{where}: `interpolation` must be 'nearest', 'bilinear' or "
                             f"'bicubic', received {interpolation!r}")
        if data_format not in (None, "channels_last"):
            raise ValueError(f"{where}: only data_format='channels_last' is supported")
        self.data_format, self.interpolation = "channels_last", interpolation

    def build(self, input_shape):
        _images(self, input_shape)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        return (n, None if h is None else h * self.size[0],
                None if w is None else w * self.size[1], c)

    def _matrices(self, shape, dtype):
        h, w = shape[1:3]
        make = INTERPOLATIONS[self.interpolation]
        return make(h, h * self.size[0], dtype), make(w, w * self.size[1], dtype)

    def forward(self, ctx, inputs, training=False):  # noqa: ARG002
        ctx.saved["shape"] = inputs.shape
        if self.interpolation == "nearest":
            return np.repeat(np.repeat(inputs, self.size[0], axis=1), self.size[1], axis=2)
        mh, mw = self._matrices(inputs.shape, inputs.dtype)
        return np.einsum("ph,nhwc,qw->npqc", mh, inputs, mw, optimize=True)

    def backward(self, ctx, grad):
        n, h, w, c = ctx.saved["shape"]
        if self.interpolation == "nearest":
            return grad.reshape(n, h, self.size[0], w, self.size[1], c).sum(axis=(2, 4))
        mh, mw = self._matrices(ctx.saved["shape"], grad.dtype)
        return np.einsum("ph,npqc,qw->nhwc", mh, grad, mw, optimize=True)


@REGISTRY.register()
class ZeroPadding2D(Layer):
    """Zeros around each image: padding n, (rows, cols) or ((top, bottom), (left,
    right)).

    >>> x = np.ones((1, 2, 2, 1))
    >>> cnnx.layers.ZeroPadding2D(1)(x)[0, :, :, 0]
    array([[0., 0., 0., 0.],
           [0., 1., 1., 0.],
           [0., 1., 1., 0.],
           [0., 0., 0., 0.]], dtype=float32)
    """

    def __init__(self, padding=(1, 1), data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.padding = _pairs(padding, "padding", f"ZeroPadding2D {self.name!r}")
        if data_format not in (None, "channels_last"):
            raise ValueError(f"ZeroPadding2D {self.name!r}: only channels_last")
        self.data_format = "channels_last"

    def build(self, input_shape):
        _images(self, input_shape)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        (top, bottom), (left, right) = self.padding
        return (n, None if h is None else h + top + bottom,
                None if w is None else w + left + right, c)

    def forward(self, ctx, inputs, training=False):  # noqa: ARG002
        return np.pad(inputs, ((0, 0),) + self.padding + ((0, 0),))

    def backward(self, ctx, grad):  # noqa: ARG002
        (top, bottom), (left, right) = self.padding
        return np.ascontiguousarray(grad[:, top:grad.shape[1] - bottom,
                                         left:grad.shape[2] - right])


@REGISTRY.register()
class Cropping2D(Layer):
    """Rows and columns cut off each image's edges: cropping n, (rows, cols) or ((top,
    bottom), (left, right)).

    >>> x = np.arange(16.0).reshape(1, 4, 4, 1)
    >>> cnnx.layers.Cropping2D(1)(x)[0, :, :, 0]
    array([[ 5.,  6.],
           [ 9., 10.]], dtype=float32)
    """

    def __init__(self, cropping=((0, 0), (0, 0)), data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.cropping = _pairs(cropping, "cropping", f"Cropping2D {self.name!r}")
        if data_format not in (None, "channels_last"):
            raise ValueError(f"Cropping2D {self.name!r}: only channels_last")
        self.data_format = "channels_last"

    def build(self, input_shape):
        _images(self, input_shape)
        (top, bottom), (left, right) = self.cropping
        h, w = input_shape[1:3]
        if (h is not None and top + bottom >= h) or (w is not None and left + right >= w):
            raise ValueError(f"Cropping2D {self.name!r}: cropping {self.cropping} leaves "
                             f"nothing of {h} x {w} images")

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        (top, bottom), (left, right) = self.cropping
        return (n, None if h is None else h - top - bottom,
                None if w is None else w - left - right, c)

    def forward(self, ctx, inputs, training=False):  # noqa: ARG002
        (top, bottom), (left, right) = self.cropping
        ctx.saved["shape"] = inputs.shape
        return np.ascontiguousarray(inputs[:, top:inputs.shape[1] - bottom,
                                           left:inputs.shape[2] - right])

    def backward(self, ctx, grad):  # noqa: ARG002
        (top, bottom), (left, right) = self.cropping
        return np.pad(grad, ((0, 0), (top, bottom), (left, right), (0, 0)))


@REGISTRY.register()
class Permute(Layer):
    """The axes after the batch reordered: dims is a permutation of 1 .. ndim - 1.

    >>> cnnx.layers.Permute((2, 1))(np.zeros((1, 3, 5))).shape
    (1, 5, 3)
    """

    def __init__(self, dims, **kwargs):
        super().__init__(**kwargs)
        dims = tuple(dims)
        if sorted(dims) != list(range(1, len(dims) + 1)):
            raise ValueError(f"Permute {self.name!r}: `dims` must be a permutation of "
                             f"1 .. {len(dims)} (axis 0 is the batch), received {dims!r}")
        self.dims = dims

    def build(self, input_shape):
        if len(input_shape) != len(self.dims) + 1:
            raise ValueError(f"Permute {self.name!r}: dims {self.dims} need inputs of "
                             f"{len(self.dims) + 1} axes, received shape {input_shape}")

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + tuple(input_shape[d] for d in self.dims)

    def forward(self, ctx, inputs, training=False):  # noqa: ARG002
        return np.ascontiguousarray(np.transpose(inputs, (0,) + self.dims))

    def backward(self, ctx, grad):  # noqa: ARG002
        return np.ascontiguousarray(np.transpose(grad, np.argsort((0,) + self.dims)))


@REGISTRY.register()
class RepeatVector(Layer):
    """(batch, features) -> (batch, n, features): each sample repeated n times.

    >>> cnnx.layers.RepeatVector(3)(np.array([[1.0, 2.0]]))
    array([[[1., 2.],
            [1., 2.],
            [1., 2.]]], dtype=float32)
    """

    def __init__(self, n, **kwargs):
        super().__init__(**kwargs)
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
            raise ValueError(f"RepeatVector {self.name!r}: `n` must be a positive int, "
                             f"received {n!r}")
        self.n = int(n)

    def build(self, input_shape):
        if len(input_shape) != 2:
            raise ValueError(f"RepeatVector {self.name!r} expects (batch, features), "
                             f"received shape {tuple(input_shape)}")

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.n, input_shape[1])

    def forward(self, ctx, inputs, training=False):  # noqa: ARG002
        return np.repeat(inputs[:, None, :], self.n, axis=1)

    def backward(self, ctx, grad):  # noqa: ARG002
        return grad.sum(axis=1)

"""Preprocessing and augmentation layers, with Keras 3's arguments and meanings:
Rescaling, Normalization (with adapt), CenterCrop, and the random augmentations
RandomFlip, RandomRotation, RandomZoom, RandomTranslation, RandomContrast and
RandomBrightness.

The random layers act only in training (in inference they pass their input through),
draw from cnnx's seeded generator (or their own, given `seed`), and transform the whole
batch at once. The geometric ones warp through cnnx._warp, the code ImageDataGenerator
uses too.
"""
import numbers

import numpy as np

from .. import _args, _random, _warp
from .base import REGISTRY, Layer
from .reshaping import INTERPOLATIONS, _interpolation_matrix

__all__ = ["Rescaling", "Normalization", "CenterCrop", "Resizing", "RandomFlip",
           "RandomRotation",
           "RandomZoom", "RandomTranslation", "RandomContrast", "RandomBrightness"]


def _number(value, name, where):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) \
            or not np.isfinite(value):
        raise ValueError(f"{where}: `{name}` must be a finite number, received {value!r}")
    return float(value)


def _range(factor, name, where, low=None, high=None, symmetric=True):
    """A factor as Keras reads it: a number f gives (-f, f) (or (f, f) when not
    symmetric), a pair gives itself; each bound within [low, high]."""
    if isinstance(factor, (tuple, list)):
        if len(factor) != 2:
            raise ValueError(f"{where}: `{name}` must be a number or a pair, received "
                             f"{factor!r}")
        lower, upper = (_number(f, name, where) for f in factor)
    else:
        f = _number(factor, name, where)
        lower, upper = (-abs(f), abs(f)) if symmetric else (f, f)
    if lower > upper:
        raise ValueError(f"{where}: `{name}` must have lower <= upper, received {factor!r}")
    if (low is not None and lower < low) or (high is not None and upper > high):
        raise ValueError(f"{where}: `{name}` must lie in [{low}, {high}], received "
                         f"{factor!r}")
    return lower, upper


def _check_images(layer, input_shape):
    if len(input_shape) != 4:
        raise ValueError(f"{type(layer).__name__} {layer.name!r} expects images (batch, "
                         f"height, width, channels), received shape {tuple(input_shape)}")


@REGISTRY.register()
class Rescaling(Layer):
    """y = x * scale + offset (Rescaling(1 / 255) maps bytes to [0, 1]).

    >>> cnnx.layers.Rescaling(1 / 255)(np.array([[0.0, 51.0, 255.0]]))
    array([[0.        , 0.20000002, 1.        ]], dtype=float32)
    """

    def __init__(self, scale, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        where = f"Rescaling {self.name!r}"
        self.scale, self.offset = _number(scale, "scale", where), _number(offset, "offset",
                                                                           where)

    def forward(self, ctx, inputs, training=False):  # noqa: ARG002
        t = inputs.dtype.type
        y = np.multiply(inputs, t(self.scale), out=ctx.buffer("y", inputs.shape, inputs.dtype))
        if self.offset:
            y += t(self.offset)
        return y

    def backward(self, ctx, grad):  # noqa: ARG002
        return grad * grad.dtype.type(self.scale)


@REGISTRY.register()
class Normalization(Layer):
    """(x - mean) / sqrt(variance) per feature along `axis` (the channels by default),
    with mean and variance given or learned by adapt(data); invert=True undoes it.

    >>> norm = cnnx.layers.Normalization()
    >>> norm.adapt(np.array([[1.0], [3.0]]))
    >>> norm(np.array([[1.0], [2.0], [5.0]]))
    array([[-1.],
           [ 0.],
           [ 3.]], dtype=float32)
    """

    def __init__(self, axis=-1, mean=None, variance=None, invert=False, **kwargs):
        super().__init__(**kwargs)
        where = f"Normalization {self.name!r}"
        if isinstance(axis, (list, tuple)) and len(axis) == 1:
            axis = axis[0]   # Keras 3 writes the axis as a list
        if axis != -1:
            raise ValueError(f"{where}: only axis=-1 (the last axis) is supported, "
                             f"received {axis!r}")
        if (mean is None) != (variance is None):
            raise ValueError(f"{where}: give both `mean` and `variance`, or neither (and "
                             f"call adapt)")
        self.axis, self.invert = axis, bool(invert)
        self.mean = None if mean is None else np.asarray(mean, np.float64).tolist()
        self.variance = None if variance is None else np.asarray(variance,
                                                                 np.float64).tolist()
        if self.variance is not None and np.any(np.asarray(self.variance) < 0):
            raise ValueError(f"{where}: `variance` must be >= 0, received {variance!r}")

    def build(self, input_shape):
        features = (input_shape[-1],)
        self.adapt_mean = self.add_weight("mean", features, "zeros", trainable=False)
        self.adapt_variance = self.add_weight("variance", features, "ones", trainable=False)
        if self.mean is not None:
            self.adapt_mean.assign(np.broadcast_to(np.asarray(self.mean), features))
            self.adapt_variance.assign(np.broadcast_to(np.asarray(self.variance), features))

    def adapt(self, data, batch_size=None, steps=None):  # noqa: ARG002 (Keras's signature)
        """Learn the mean and variance of each feature from data (an array of samples)."""
        data = np.asarray(data, np.float64)
        if data.ndim < 2 or not np.isfinite(data).all():
            raise ValueError(f"Normalization {self.name!r}: adapt needs finite samples with "
                             f"a batch axis, received shape {data.shape}")
        self._build_once((None,) + data.shape[1:])
        axes = tuple(range(data.ndim - 1))
        self.adapt_mean.assign(data.mean(axis=axes))
        self.adapt_variance.assign(data.var(axis=axes))

    def _scale(self, dtype):
        return np.maximum(np.sqrt(self.adapt_variance.value), 1e-7).astype(dtype)

    def forward(self, ctx, inputs, training=False):  # noqa: ARG002
        mean = self.adapt_mean.value.astype(inputs.dtype)
        if self.invert:
            return inputs * self._scale(inputs.dtype) + mean
        return (inputs - mean) / self._scale(inputs.dtype)

    def backward(self, ctx, grad):  # noqa: ARG002
        return grad * self._scale(grad.dtype) if self.invert else grad / self._scale(
            grad.dtype)


@REGISTRY.register()
class CenterCrop(Layer):
    """The central height x width region of each image (the input must be at least as
    large).

    >>> x = np.arange(16.0).reshape(1, 4, 4, 1)
    >>> cnnx.layers.CenterCrop(2, 2)(x)[0, :, :, 0]
    array([[ 5.,  6.],
           [ 9., 10.]], dtype=float32)
    """

    def __init__(self, height, width, **kwargs):
        super().__init__(**kwargs)
        where = f"CenterCrop {self.name!r}"
        height = _args.positive_int(height, "height", where, optional=False)
        width = _args.positive_int(width, "width", where, optional=False)
        self.height, self.width = int(height), int(width)

    def build(self, input_shape):
        _check_images(self, input_shape)
        h, w = input_shape[1:3]
        if h < self.height or w < self.width:
            raise ValueError(f"CenterCrop {self.name!r}: images of {h} x {w} are smaller "
                             f"than the crop {self.height} x {self.width}; resize them first")

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.height, self.width, input_shape[3])

    def _box(self, shape):
        top, left = (shape[1] - self.height) // 2, (shape[2] - self.width) // 2
        return slice(top, top + self.height), slice(left, left + self.width)

    def forward(self, ctx, inputs, training=False):  # noqa: ARG002
        ctx.saved["shape"] = inputs.shape
        rows, cols = self._box(inputs.shape)
        return np.ascontiguousarray(inputs[:, rows, cols])

    def backward(self, ctx, grad):
        dx = np.zeros(ctx.saved["shape"], grad.dtype)
        rows, cols = self._box(dx.shape)
        dx[:, rows, cols] = grad
        return dx


@REGISTRY.register()
class Resizing(Layer):
    """Each image resized to height x width, bilinearly, bicubically, by area or by
    nearest neighbour, with TensorFlow's half-pixel centres (Keras 3's Resizing,
    antialias off);
    crop_to_aspect_ratio first takes the largest centred crop of the target's aspect
    ratio. Differentiable: the resize is a fixed linear map per axis.

    >>> x = np.arange(4.0).reshape(1, 2, 2, 1)
    >>> cnnx.layers.Resizing(4, 4)(x)[0, :, :, 0]
    array([[0.  , 0.25, 0.75, 1.  ],
           [0.5 , 0.75, 1.25, 1.5 ],
           [1.5 , 1.75, 2.25, 2.5 ],
           [2.  , 2.25, 2.75, 3.  ]], dtype=float32)
    """

    def __init__(self, height, width, interpolation="bilinear", crop_to_aspect_ratio=False,
                 pad_to_aspect_ratio=False, fill_mode="constant", fill_value=0.0,
                 data_format=None, **kwargs):
        super().__init__(**kwargs)
        where = f"Resizing {self.name!r}"
        from .._compat import refuse_unimplemented
        refuse_unimplemented(where, pad_to_aspect_ratio=(pad_to_aspect_ratio, False))
        height = _args.positive_int(height, "height", where, optional=False)
        width = _args.positive_int(width, "width", where, optional=False)
        if interpolation not in INTERPOLATIONS:
            raise NotImplementedError(f"{where}: interpolation {interpolation!r} is not "
                                      f"implemented in cnnx; use one of "
                                      f"{sorted(INTERPOLATIONS)}")
        if data_format not in (None, "channels_last"):
            raise ValueError(f"{where}: only data_format='channels_last' is supported")
        self.height, self.width = int(height), int(width)
        self.interpolation = interpolation
        self.crop_to_aspect_ratio = bool(crop_to_aspect_ratio)
        self.pad_to_aspect_ratio, self.fill_mode = False, fill_mode
        self.fill_value, self.data_format = fill_value, "channels_last"

    def build(self, input_shape):
        _check_images(self, input_shape)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.height, self.width, input_shape[3])

    def _crop(self, h, w):
        """The centred box of the target's aspect ratio (all of it, without cropping)."""
        if not self.crop_to_aspect_ratio:
            return slice(0, h), slice(0, w)
        ch = min(h, int(round(w * self.height / self.width)))
        cw = min(w, int(round(h * self.width / self.height)))
        top, left = (h - ch) // 2, (w - cw) // 2
        return slice(top, top + ch), slice(left, left + cw)

    def _matrices(self, h, w, dtype):
        make = INTERPOLATIONS[self.interpolation]
        return make(h, self.height, dtype), make(w, self.width, dtype)

    def forward(self, ctx, inputs, training=False):  # noqa: ARG002
        rows, cols = self._crop(*inputs.shape[1:3])
        crop = inputs[:, rows, cols]
        mh, mw = self._matrices(crop.shape[1], crop.shape[2], inputs.dtype)
        ctx.saved.update(shape=inputs.shape, box=(rows, cols), m=(mh, mw))
        return np.einsum("ph,nhwc,qw->npqc", mh, crop, mw, optimize=True)

    def backward(self, ctx, grad):
        mh, mw = ctx.saved["m"]
        dx = np.zeros(ctx.saved["shape"], grad.dtype)
        rows, cols = ctx.saved["box"]
        dx[:, rows, cols] = np.einsum("ph,npqc,qw->nhwc", mh, grad, mw, optimize=True)
        return dx


class _Random(Layer):
    """A layer that transforms images at random in training, and passes them through in
    inference. Called directly on arrays it augments unless told training=False (Keras
    3's default: augmentation in a tf.data-style map)."""

    _call_training_default = True

    def _init_random(self, seed):
        if seed is not None and (isinstance(seed, bool) or not isinstance(
                seed, numbers.Integral)):
            raise ValueError(f"{type(self).__name__} {self.name!r}: `seed` must be an int "
                             f"or None, received {seed!r}")
        self.seed = seed
        self._rng = np.random.default_rng(seed) if seed is not None else None

    def _generator(self):
        return _random.layer_generator(self._rng)

    def build(self, input_shape):
        _check_images(self, input_shape)

    def forward(self, ctx, inputs, training=False):
        ctx.saved["active"] = bool(training)
        if not training or inputs.shape[0] == 0:
            return inputs
        return self._transform(ctx, inputs, self._generator()).astype(inputs.dtype,
                                                                      copy=False)


class _Warp(_Random):
    """A random affine warp per image, sampled bilinearly (cnnx._warp)."""

    def _init_warp(self, fill_mode, interpolation, fill_value, seed):
        where = f"{type(self).__name__} {self.name!r}"
        if fill_mode not in _warp.FILL_MODES:
            raise ValueError(f"{where}: `fill_mode` must be one of {_warp.FILL_MODES}, "
                             f"received {fill_mode!r}")
        if interpolation != "bilinear":
            raise NotImplementedError(f"{where}: `interpolation` is not implemented in cnnx "
                                      f"(received {interpolation!r}); leave it at its "
                                      f"default ('bilinear')")
        self.fill_mode, self.interpolation = fill_mode, interpolation
        self.fill_value = _number(fill_value, "fill_value", where)
        self._init_random(seed)

    def _transform(self, ctx, inputs, rng):  # noqa: ARG002
        b, h, w, _ = inputs.shape
        matrices = _warp.centered(self._matrices(b, h, w, rng), h, w)
        return _warp.affine_batch(inputs, matrices, self.fill_mode, self.fill_value)

    @property
    def no_backward_reason(self):
        return (f"a random {type(self).__name__[6:].lower()} has no gradient in cnnx; put "
                f"it before the layers that train (as augmentation is)")

    @property
    def has_backward(self):
        return False


@REGISTRY.register()
class RandomCrop(_Random):
    """Crops images to height x width. In training, where the images are larger in both
    directions, at one random place for the whole batch; otherwise (in inference, or
    images not larger) the largest centred window of the target's aspect ratio, resized
    bilinearly to height x width, as Keras 3 describes it. Differentiable: the gradient
    goes back to the window it came from.

    >>> crop = cnnx.layers.RandomCrop(4, 4, seed=1)
    >>> crop(np.zeros((2, 6, 8, 3), np.float32)).shape
    (2, 4, 4, 3)
    """

    def __init__(self, height, width, seed=None, data_format=None, **kwargs):
        super().__init__(**kwargs)
        where = f"RandomCrop {self.name!r}"
        height = _args.positive_int(height, "height", where, optional=False)
        width = _args.positive_int(width, "width", where, optional=False)
        if data_format not in (None, "channels_last"):
            raise ValueError(f"{where}: only data_format='channels_last' is supported")
        self.height, self.width = int(height), int(width)
        self.data_format = "channels_last"
        self._init_random(seed)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.height, self.width, input_shape[3])

    def _window(self, h, w, rng):
        if rng is not None and h > self.height and w > self.width:
            top = int(rng.integers(0, h - self.height + 1))
            left = int(rng.integers(0, w - self.width + 1))
            return slice(top, top + self.height), slice(left, left + self.width)
        ch = max(min(h, int(w * self.height / self.width)), 1)
        cw = max(min(w, int(h * self.width / self.height)), 1)
        top, left = (h - ch) // 2, (w - cw) // 2
        return slice(top, top + ch), slice(left, left + cw)

    def forward(self, ctx, inputs, training=False):
        rng = self._generator() if training and inputs.shape[0] else None
        rows, cols = self._window(inputs.shape[1], inputs.shape[2], rng)
        crop = inputs[:, rows, cols]
        ctx.saved.update(shape=inputs.shape, box=(rows, cols), m=None)
        if crop.shape[1:3] == (self.height, self.width):
            return np.ascontiguousarray(crop)
        mh = _interpolation_matrix(crop.shape[1], self.height, inputs.dtype)
        mw = _interpolation_matrix(crop.shape[2], self.width, inputs.dtype)
        ctx.saved["m"] = (mh, mw)
        return np.einsum("ph,nhwc,qw->npqc", mh, crop, mw, optimize=True)

    def backward(self, ctx, grad):
        dx = np.zeros(ctx.saved["shape"], grad.dtype)
        rows, cols = ctx.saved["box"]
        if ctx.saved["m"] is None:
            dx[:, rows, cols] = grad
        else:
            mh, mw = ctx.saved["m"]
            dx[:, rows, cols] = np.einsum("ph,npqc,qw->nhwc", mh, grad, mw, optimize=True)
        return dx


@REGISTRY.register()
class RandomFlip(_Random):
    """Flips each image left-right ("horizontal"), up-down ("vertical") or both
    ("horizontal_and_vertical"), each with probability 1/2.

    >>> flip = cnnx.layers.RandomFlip("horizontal", seed=0)
    >>> x = np.tile(np.arange(3.0).reshape(1, 1, 3, 1), (4, 1, 1, 1))
    >>> flip(x, training=False)[:, 0, :, 0]   # inference: unchanged
    array([[0., 1., 2.],
           [0., 1., 2.],
           [0., 1., 2.],
           [0., 1., 2.]], dtype=float32)
    >>> flip(x)[:, 0, :, 0]     # called directly: each image flipped or not, at random
    array([[0., 1., 2.],
           [2., 1., 0.],
           [2., 1., 0.],
           [2., 1., 0.]], dtype=float32)
    """

    _MODES = ("horizontal", "vertical", "horizontal_and_vertical")

    def __init__(self, mode="horizontal_and_vertical", seed=None, **kwargs):
        super().__init__(**kwargs)
        if mode not in self._MODES:
            raise ValueError(f"RandomFlip {self.name!r}: `mode` must be one of "
                             f"{self._MODES}, received {mode!r}")
        self.mode = mode
        self._init_random(seed)

    def _transform(self, ctx, inputs, rng):
        b = inputs.shape[0]
        out = np.array(inputs, copy=True)
        flips = {}
        for axis, on in ((2, "horizontal" in self.mode), (1, "vertical" in self.mode)):
            if on:
                pick = flips[axis] = rng.random(b) < 0.5
                out[pick] = np.flip(out[pick], axis=axis)
        ctx.saved["flips"] = flips
        return out

    def backward(self, ctx, grad):
        if not ctx.saved["active"]:
            return grad
        grad = np.array(grad, copy=True)
        for axis, pick in reversed(list(ctx.saved["flips"].items())):
            grad[pick] = np.flip(grad[pick], axis=axis)
        return grad


@REGISTRY.register()
class RandomRotation(_Warp):
    """Rotates each image by factor x 2 pi radians, drawn uniformly from the factor's
    range (a number f: [-f, f]); positive turns counter-clockwise.

    >>> rotate = cnnx.layers.RandomRotation(0.1, seed=0)
    >>> rotate(np.ones((2, 8, 8, 3))).shape
    (2, 8, 8, 3)
    """

    def __init__(self, factor, fill_mode="reflect", interpolation="bilinear", seed=None,
                 fill_value=0.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = _range(factor, "factor", f"RandomRotation {self.name!r}")
        self._init_warp(fill_mode, interpolation, fill_value, seed)

    def _matrices(self, b, h, w, rng):  # noqa: ARG002
        return _warp.rotation(rng.uniform(*self.factor, b) * 2 * np.pi)


@REGISTRY.register()
class RandomZoom(_Warp):
    """Zooms each image by 1 + a factor drawn from height_factor's range (a number f:
    [-f, f]; positive zooms out); width_factor likewise, or the same zoom as the height
    when None (keeping the aspect ratio).

    >>> zoom = cnnx.layers.RandomZoom(0.2, seed=0)
    >>> zoom(np.ones((2, 8, 8, 3))).shape
    (2, 8, 8, 3)
    """

    def __init__(self, height_factor, width_factor=None, fill_mode="reflect",
                 interpolation="bilinear", seed=None, fill_value=0.0, **kwargs):
        super().__init__(**kwargs)
        where = f"RandomZoom {self.name!r}"
        self.height_factor = _range(height_factor, "height_factor", where, -1)
        self.width_factor = (None if width_factor is None else
                             _range(width_factor, "width_factor", where, -1))
        self._init_warp(fill_mode, interpolation, fill_value, seed)

    def _matrices(self, b, h, w, rng):  # noqa: ARG002
        zy = 1 + rng.uniform(*self.height_factor, b)
        zx = zy if self.width_factor is None else 1 + rng.uniform(*self.width_factor, b)
        return _warp.zoom(zy, zx)


@REGISTRY.register()
class RandomTranslation(_Warp):
    """Shifts each image by fractions of its height and width drawn from each factor's
    range (a number f: [-f, f]).

    >>> shift = cnnx.layers.RandomTranslation(0.1, 0.1, seed=0)
    >>> shift(np.ones((2, 8, 8, 3))).shape
    (2, 8, 8, 3)
    """

    def __init__(self, height_factor, width_factor, fill_mode="reflect",
                 interpolation="bilinear", seed=None, fill_value=0.0, **kwargs):
        super().__init__(**kwargs)
        where = f"RandomTranslation {self.name!r}"
        self.height_factor = _range(height_factor, "height_factor", where, -1, 1)
        self.width_factor = _range(width_factor, "width_factor", where, -1, 1)
        self._init_warp(fill_mode, interpolation, fill_value, seed)

    def _matrices(self, b, h, w, rng):
        return _warp.translation(rng.uniform(*self.height_factor, b) * h,
                                 rng.uniform(*self.width_factor, b) * w)


def _value_range(value_range, where):
    low, high = _range(tuple(value_range) if isinstance(value_range, (list, tuple))
                       else value_range, "value_range", where)
    if low >= high:
        raise ValueError(f"{where}: `value_range` must be (low, high) with low < high, "
                         f"received {value_range!r}")
    return low, high


@REGISTRY.register()
class RandomContrast(_Random):
    """Scales each image's deviation from its per-channel mean by a factor drawn from
    [1 - lower, 1 + upper] (factor (lower, upper); a number f: [1 - f, 1 + f]), then
    clips to value_range.

    >>> contrast = cnnx.layers.RandomContrast(0.5, seed=0)
    >>> out = contrast(np.full((1, 2, 2, 1), 7.0))
    >>> out[0, :, :, 0]    # a flat image keeps its mean whatever the factor
    array([[7., 7.],
           [7., 7.]], dtype=float32)
    """

    def __init__(self, factor, value_range=(0, 255), seed=None, **kwargs):
        super().__init__(**kwargs)
        where = f"RandomContrast {self.name!r}"
        if isinstance(factor, (tuple, list)) and len(factor) == 2:
            lower, upper = (_number(f, "factor", where) for f in factor)
        else:
            lower = upper = abs(_number(factor, "factor", where))
        if not (lower <= 1 and 1 - lower <= 1 + upper):
            raise ValueError(f"{where}: `factor` must be f or (lower, upper) giving a "
                             f"contrast range [1 - lower, 1 + upper] within [0, inf), "
                             f"received {factor!r}")
        self.factor = (lower, upper)
        self.value_range = _value_range(value_range, where)
        self._init_random(seed)

    def _transform(self, ctx, inputs, rng):  # noqa: ARG002
        b = inputs.shape[0]
        lower, upper = self.factor
        f = rng.uniform(1 - lower, 1 + upper, b)[:, None, None, None]
        mean = inputs.mean(axis=(1, 2), keepdims=True, dtype=np.float64)
        return np.clip((inputs - mean) * f + mean, *self.value_range)

    @property
    def has_backward(self):
        return False

    @property
    def no_backward_reason(self):
        return "a random contrast has no gradient in cnnx; put it before the trained layers"


@REGISTRY.register()
class RandomBrightness(_Random):
    """Adds to each image a delta drawn from the factor's range (a number f: [-f, f]) times
    the width of value_range, then clips to value_range.

    >>> brighten = cnnx.layers.RandomBrightness(0.1, seed=0)
    >>> brighten(np.full((1, 2, 2, 3), 100.0)).shape
    (1, 2, 2, 3)
    """

    def __init__(self, factor, value_range=(0, 255), seed=None, **kwargs):
        super().__init__(**kwargs)
        where = f"RandomBrightness {self.name!r}"
        self.factor = _range(factor, "factor", where, -1, 1)
        self.value_range = _value_range(value_range, where)
        self._init_random(seed)

    def _transform(self, ctx, inputs, rng):
        b = inputs.shape[0]
        low, high = self.value_range
        delta = (rng.uniform(*self.factor, b) * (high - low))[:, None, None, None]
        y = inputs + delta
        ctx.saved["inside"] = (y >= low) & (y <= high)
        return np.clip(y, low, high)

    def backward(self, ctx, grad):
        if not ctx.saved["active"]:
            return grad
        return np.where(ctx.saved["inside"], grad, 0).astype(grad.dtype)

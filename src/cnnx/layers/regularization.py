"""Noise and dropout variants, active in training only: GaussianNoise, GaussianDropout,
SpatialDropout2D. Their draws come from cnnx's seeded generator (or their own, given
`seed`), for the whole batch at once."""
import numbers

import numpy as np

from .. import _random, regularizers
from .base import REGISTRY, Layer

__all__ = ["GaussianNoise", "GaussianDropout", "SpatialDropout2D", "ActivityRegularization"]


class _Noise(Layer):
    def _init_noise(self, value, name, seed, upper=None):
        where = f"{type(self).__name__} {self.name!r}"
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or value < 0 \
                or (upper is not None and value >= upper):
            bound = f"in [0, {upper})" if upper is not None else ">= 0"
            raise ValueError(f"{where}: `{name}` must be a number {bound}, received "
                             f"{value!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(
                seed, numbers.Integral)):
            raise ValueError(f"{where}: `seed` must be an int or None, received {seed!r}")
        self.seed = seed
        self._rng = np.random.default_rng(seed) if seed is not None else None
        return float(value)

    def _generator(self):
        return _random.layer_generator(self._rng)


@REGISTRY.register()
class GaussianNoise(_Noise):
    """Adds zero-mean Gaussian noise of standard deviation `stddev` in training.

    >>> noise = cnnx.layers.GaussianNoise(0.1)
    >>> noise(np.ones((1, 3)))   # inference: unchanged
    array([[1., 1., 1.]], dtype=float32)
    """

    def __init__(self, stddev, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.stddev = self._init_noise(stddev, "stddev", seed)

    def forward(self, ctx, inputs, training=False):  # noqa: ARG002
        if not training or not self.stddev:
            return inputs
        noise = self._generator().standard_normal(inputs.shape).astype(inputs.dtype)
        return inputs + noise * inputs.dtype.type(self.stddev)

    def backward(self, ctx, grad):  # noqa: ARG002
        return grad


@REGISTRY.register()
class GaussianDropout(_Noise):
    """Multiplies by Gaussian noise of mean 1 and standard deviation
    sqrt(rate / (1 - rate)) in training.

    >>> drop = cnnx.layers.GaussianDropout(0.1)
    >>> drop(np.ones((1, 3)))    # inference: unchanged
    array([[1., 1., 1.]], dtype=float32)
    """

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = self._init_noise(rate, "rate", seed, upper=1)

    def forward(self, ctx, inputs, training=False):
        active = ctx.saved["active"] = bool(training) and self.rate > 0
        if not active:
            return inputs
        std = np.sqrt(self.rate / (1 - self.rate))
        noise = ctx.saved["noise"] = (1 + std * self._generator().standard_normal(
            inputs.shape)).astype(inputs.dtype)
        return inputs * noise

    def backward(self, ctx, grad):
        return grad * ctx.saved["noise"] if ctx.saved["active"] else grad


@REGISTRY.register()
class SpatialDropout2D(_Noise):
    """Dropout of whole feature maps: in training, each channel of each image is zeroed
    with probability `rate`, the others scaled by 1 / (1 - rate).

    >>> drop = cnnx.layers.SpatialDropout2D(0.5, seed=0)
    >>> kept = drop(np.ones((1, 2, 2, 4)), training=True)
    >>> kept[0, 0, 0], kept[0, 1, 1]   # whole channels dropped, the same at every pixel
    (array([2., 0., 0., 0.], dtype=float32), array([2., 0., 0., 0.], dtype=float32))
    """

    def __init__(self, rate, data_format=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = self._init_noise(rate, "rate", seed, upper=1)
        if data_format not in (None, "channels_last"):
            raise ValueError(f"SpatialDropout2D {self.name!r}: only channels_last")
        self.data_format = "channels_last"

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"SpatialDropout2D {self.name!r} expects 4-D input, received "
                             f"shape {tuple(input_shape)}")

    def forward(self, ctx, inputs, training=False):
        active = ctx.saved["active"] = bool(training) and self.rate > 0
        if not active:
            return inputs
        n, _, _, c = inputs.shape
        keep = (self._generator().random((n, 1, 1, c)) >= self.rate).astype(inputs.dtype)
        keep *= inputs.dtype.type(1 / (1 - self.rate))
        ctx.saved["keep"] = keep
        return inputs * keep

    def backward(self, ctx, grad):
        return grad * ctx.saved["keep"] if ctx.saved["active"] else grad


@REGISTRY.register()
class ActivityRegularization(Layer):
    """The identity, adding l1 * sum|x| + l2 * sum(x^2) of its input (over the whole
    batch, as Keras 3 adds it) to the loss: the activity_regularizer any layer takes,
    as a layer of its own.

    >>> reg = cnnx.layers.ActivityRegularization(l1=0.01)
    >>> reg(np.array([[1.0, -2.0]]))   # unchanged; the penalty joins the loss in training
    array([[ 1., -2.]], dtype=float32)
    """

    def __init__(self, l1=0.0, l2=0.0, **kwargs):
        kwargs.pop("activity_regularizer", None)
        super().__init__(**kwargs)
        for name, value in (("l1", l1), ("l2", l2)):
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or value < 0:
                raise ValueError(f"ActivityRegularization {self.name!r}: `{name}` must be a "
                                 f"number >= 0, received {value!r}")
        self.l1, self.l2 = float(l1), float(l2)
        self.activity_regularizer = regularizers.L1L2(l1=self.l1, l2=self.l2)

    def get_config(self):
        config = super().get_config()
        config.pop("activity_regularizer", None)   # l1 and l2 say it
        return config

    def forward(self, ctx, inputs, training=False):  # noqa: ARG002
        return inputs

    def backward(self, ctx, grad):  # noqa: ARG002
        return grad

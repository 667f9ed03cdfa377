"""cnnx.initializers, with Keras's defaults and fan rules.

For a conv kernel (kh, kw, in, out): fan_in = kh*kw*in, fan_out = kh*kw*out.
Every draw comes from cnnx's generator (seeded by cnnx.utils.set_random_seed), or from
the initializer's own `seed`.
"""
import numpy as np

from . import _random
from ._registry import Registry

__all__ = ["Initializer", "GlorotUniform", "GlorotNormal", "HeNormal", "HeUniform",
           "LecunNormal", "Zeros", "Ones", "Constant", "RandomNormal", "RandomUniform",
           "TruncatedNormal", "VarianceScaling", "Orthogonal", "Identity", "get"]


def compute_fans(shape):
    shape = tuple(shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = int(np.prod(shape[:-2]))
    return shape[-2] * receptive, shape[-1] * receptive


# Every initializer by name: filled by @REGISTRY.register where each class is defined.
REGISTRY = Registry("initializer")


class Initializer:
    """Base of the initializers: called with (shape, dtype), returns the starting values
    of a weight, drawn from cnnx's seeded generator.

    >>> class Twos(cnnx.initializers.Initializer):
    ...     def __call__(self, shape, dtype=None):
    ...         return np.full(shape, 2.0, dtype or "float32")
    >>> cnnx.layers.Dense(2, kernel_initializer=Twos())(np.ones((1, 3))).tolist()
    [[6.0, 6.0]]
    """
    def __init__(self, seed=None):
        self.seed = seed

    def _rng(self):
        return np.random.default_rng(self.seed) if self.seed is not None else _random.generator()

    def __call__(self, shape, dtype="float32"):
        return self.sample(tuple(shape)).astype(dtype)

    def get_config(self):
        return {"seed": self.seed} if self.seed is not None else {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@REGISTRY.register("zeros")
class Zeros(Initializer):
    """All zeros.

    >>> cnnx.initializers.Zeros()((2,))
    array([0., 0.], dtype=float32)
    """
    def sample(self, shape):
        return np.zeros(shape)


@REGISTRY.register("ones")
class Ones(Initializer):
    """All ones.

    >>> cnnx.initializers.Ones()((2,))
    array([1., 1.], dtype=float32)
    """
    def sample(self, shape):
        return np.ones(shape)


@REGISTRY.register("constant")
class Constant(Initializer):
    """All `value`.

    >>> cnnx.initializers.Constant(0.5)((2,))
    array([0.5, 0.5], dtype=float32)
    """
    def __init__(self, value=0.0):
        super().__init__()
        self.value = float(value)

    def sample(self, shape):
        return np.full(shape, self.value)

    def get_config(self):
        return {"value": self.value}


@REGISTRY.register("random_normal", "normal")
class RandomNormal(Initializer):
    """Normal with `mean` (0) and `stddev` (0.05).

    >>> w = cnnx.initializers.RandomNormal(mean=1.0, stddev=0.5, seed=0)((10000,))
    >>> round(float(w.mean()), 1), round(float(w.std()), 1)
    (1.0, 0.5)
    """
    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        super().__init__(seed)
        self.mean, self.stddev = mean, stddev

    def sample(self, shape):
        return self._rng().normal(self.mean, self.stddev, shape)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, **super().get_config()}


@REGISTRY.register("random_uniform", "uniform")
class RandomUniform(Initializer):
    """Uniform in [minval, maxval) (-0.05, 0.05).

    >>> w = cnnx.initializers.RandomUniform(-1.0, 1.0, seed=0)((1000,))
    >>> bool(w.min() >= -1.0 and w.max() < 1.0)
    True
    """
    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        super().__init__(seed)
        self.minval, self.maxval = minval, maxval

    def sample(self, shape):
        return self._rng().uniform(self.minval, self.maxval, shape)

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, **super().get_config()}


class _VarianceScaling(Initializer):
    scale, mode, distribution = 1.0, "fan_in", "truncated_normal"

    def sample(self, shape):
        fan_in, fan_out = compute_fans(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        variance = self.scale / max(1.0, n)
        rng = self._rng()
        if self.distribution == "uniform":
            limit = np.sqrt(3 * variance)
            return rng.uniform(-limit, limit, shape)
        if self.distribution == "normal":
            return rng.normal(0, np.sqrt(variance), shape)
        # Truncated at two standard deviations; .87962566 is the stddev of a unit
        # normal truncated to [-2, 2], as in Keras.
        std = np.sqrt(variance) / 0.87962566103423978
        out = rng.normal(0, 1, shape)
        bad = np.abs(out) > 2
        while bad.any():
            out[bad] = rng.normal(0, 1, int(bad.sum()))
            bad = np.abs(out) > 2
        return out * std


@REGISTRY.register("glorot_uniform")
class GlorotUniform(_VarianceScaling):
    """Uniform in [-limit, limit], limit = sqrt(6 / (fan_in + fan_out)) (Xavier); Keras's
    default kernel initializer.

    >>> w = cnnx.initializers.GlorotUniform(seed=0)((100, 100))
    >>> bool(abs(w).max() <= (6 / 200) ** 0.5)   # uniform in +-sqrt(6 / (fan_in + fan_out))
    True
    """
    mode, distribution = "fan_avg", "uniform"


@REGISTRY.register("glorot_normal")
class GlorotNormal(_VarianceScaling):
    """Truncated normal with stddev sqrt(2 / (fan_in + fan_out)).

    >>> w = cnnx.initializers.GlorotNormal(seed=0)((200, 200))
    >>> round(float(w.std()), 2)   # sqrt(2 / (fan_in + fan_out)), truncated
    0.07
    """
    mode = "fan_avg"


@REGISTRY.register("he_normal")
class HeNormal(_VarianceScaling):
    """Truncated normal with stddev sqrt(2 / fan_in): for ReLU layers.

    >>> w = cnnx.initializers.HeNormal(seed=0)((200, 200))
    >>> round(float(w.std()), 2)   # sqrt(2 / fan_in), truncated
    0.1
    """
    scale = 2.0


@REGISTRY.register("he_uniform")
class HeUniform(_VarianceScaling):
    """Uniform in [-limit, limit], limit = sqrt(6 / fan_in).

    >>> w = cnnx.initializers.HeUniform(seed=0)((50, 10))
    >>> bool(abs(w).max() <= (6 / 50) ** 0.5)
    True
    """
    scale, distribution = 2.0, "uniform"


@REGISTRY.register("lecun_normal")
class LecunNormal(_VarianceScaling):
    """Truncated normal with stddev sqrt(1 / fan_in): for SELU layers.

    >>> w = cnnx.initializers.LecunNormal(seed=0)((400, 400))
    >>> round(float(w.std()), 2)   # sqrt(1 / fan_in), truncated
    0.05
    """
    pass


@REGISTRY.register("truncated_normal")
class TruncatedNormal(RandomNormal):
    """Normal draws redrawn until within two standard deviations of the mean.

    >>> w = cnnx.initializers.TruncatedNormal(stddev=1.0, seed=0)((10000,))
    >>> bool(abs(w).max() <= 2.0)   # redrawn beyond two standard deviations
    True
    """

    def sample(self, shape):
        rng = self._rng()
        out = rng.normal(0, 1, shape)
        bad = np.abs(out) > 2
        while bad.any():
            out[bad] = rng.normal(0, 1, int(bad.sum()))
            bad = np.abs(out) > 2
        return self.mean + self.stddev * out


@REGISTRY.register("variance_scaling")
class VarianceScaling(_VarianceScaling):
    """Keras's general rule behind Glorot, He and LeCun: variance scale / n, n the
    fan_in, fan_out or their mean.

    >>> init = cnnx.initializers.VarianceScaling(2.0, mode="fan_in", distribution="uniform", seed=0)
    >>> bool(abs(init((50, 10))).max() <= (3 * 2.0 / 50) ** 0.5)
    True
    """

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal",
                 seed=None):
        super().__init__(seed)
        distribution = {"untruncated_normal": "normal"}.get(distribution, distribution)
        if not scale > 0 or mode not in ("fan_in", "fan_out", "fan_avg") or \
                distribution not in ("truncated_normal", "normal", "uniform"):
            raise ValueError(f"VarianceScaling: expected scale > 0, mode fan_in, fan_out or "
                             f"fan_avg, distribution truncated_normal, untruncated_normal or "
                             f"uniform; received {scale!r}, {mode!r}, {distribution!r}")
        self.scale, self.mode, self.distribution = float(scale), mode, distribution

    def get_config(self):
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution,
                **super().get_config()}


@REGISTRY.register("orthogonal")
class Orthogonal(Initializer):
    """An orthogonal matrix (of the kernel flattened to (prod(shape[:-1]), shape[-1])),
    times gain: the Q of the QR decomposition of a normal draw, signs fixed by R.

    >>> q = cnnx.initializers.Orthogonal(seed=0)((4, 4))
    >>> np.allclose(q @ q.T, np.eye(4), atol=1e-6)
    True
    """

    def __init__(self, gain=1.0, seed=None):
        super().__init__(seed)
        self.gain = float(gain)

    def sample(self, shape):
        if len(shape) < 2:
            raise ValueError(f"Orthogonal: needs a shape of 2 or more axes, received {shape}")
        rows, cols = int(np.prod(shape[:-1])), shape[-1]
        a = self._rng().normal(0, 1, (max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        q *= np.sign(np.diag(r))
        if rows < cols:
            q = q.T
        return self.gain * q.reshape(shape)

    def get_config(self):
        return {"gain": self.gain, **super().get_config()}


@REGISTRY.register("identity")
class Identity(Initializer):
    """gain times the identity matrix (2-D kernels).

    >>> cnnx.initializers.Identity()((2, 2))
    array([[1., 0.],
           [0., 1.]], dtype=float32)
    """

    def __init__(self, gain=1.0):
        super().__init__()
        self.gain = float(gain)

    def sample(self, shape):
        if len(shape) != 2:
            raise ValueError(f"Identity: needs a 2-D shape, received {shape}")
        return self.gain * np.eye(*shape)

    def get_config(self):
        return {"gain": self.gain}


def get(identifier):
    """An initializer by name ("glorot_uniform", "he_normal", "uniform", ...), from a
    serialized config, or the instance given.

    >>> type(cnnx.initializers.get("he_normal")).__name__
    'HeNormal'
    """
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, str):
        return REGISTRY.by_name(identifier)()
    if isinstance(identifier, dict):
        return REGISTRY.from_config(identifier)
    raise ValueError(f"Unsupported initializer {identifier!r}")


def serialize(initializer):
    return {"class_name": type(initializer).__name__, "config": initializer.get_config()}

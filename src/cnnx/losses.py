"""cnnx.losses, as functions (per-sample values) and as classes (reduced with Keras's
"sum_over_batch_size": the mean over the batch, sample weights included).

Training needs a loss's gradient too: every class has `value_and_grad(y_true, y_pred)`
returning the reduced loss and d(loss)/d(y_pred). When the model ends in softmax or
sigmoid and the loss is the matching cross-entropy, the model calls
`value_and_grad_from_logits` instead: the gradient is the stable softmax - target (or
sigmoid - target) from the fused kernels, while the value reported is Keras's, computed
from probabilities clipped to [1e-7, 1 - 1e-7]. The two agree except where a predicted
probability is below 1e-7, where Keras's reported value saturates at -log(1e-7) = 16.1.
"""
import re

import numpy as np

from . import ops
from ._registry import Registry

__all__ = ["Loss", "CategoricalCrossentropy", "SparseCategoricalCrossentropy",
           "BinaryCrossentropy", "MeanSquaredError", "MeanAbsoluteError",
           "categorical_crossentropy", "sparse_categorical_crossentropy",
           "binary_crossentropy", "mean_squared_error", "mean_absolute_error", "mse", "mae",
           "get"]

EPSILON = 1e-7


def _pair(y_true, y_pred, where):
    y_pred = np.asarray(y_pred)
    y_true = np.asarray(y_true, dtype=y_pred.dtype if y_pred.dtype.kind == "f" else None)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{where}: y_true has shape {y_true.shape} but y_pred has shape "
                         f"{y_pred.shape}; they must match")
    return y_true, y_pred


def _smooth(y_true, label_smoothing, num_classes):
    if label_smoothing:
        return y_true * (1 - label_smoothing) + label_smoothing / num_classes
    return y_true


def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0):
    """Per-sample cross-entropy, -sum(y_true * log(y_pred)) over the last axis, of one-hot
    targets and probabilities (or logits with from_logits=True); probabilities are
    clipped to [1e-7, 1 - 1e-7] as in Keras.

    >>> y_true = np.array([[0.0, 1.0], [1.0, 0.0]])
    >>> cnnx.losses.categorical_crossentropy(y_true, np.array([[0.05, 0.95], [0.8, 0.2]]))
    array([0.05129329, 0.22314355])
    """
    y_true, y_pred = _pair(y_true, y_pred, "categorical_crossentropy")
    y_true = _smooth(y_true, label_smoothing, y_pred.shape[-1])
    return ops.categorical_crossentropy(y_true, y_pred, from_logits=from_logits)


def _sparse_to_onehot(y_true, y_pred, where):
    y_true = np.asarray(y_true)
    if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1:
        y_true = y_true[..., 0]
    if y_true.shape != y_pred.shape[:-1]:
        raise ValueError(f"{where}: y_true has shape {y_true.shape}, expected class indices "
                         f"of shape {y_pred.shape[:-1]} for y_pred of shape {y_pred.shape}")
    labels = y_true.astype(np.int64)
    if y_true.size and (labels.min() < 0 or labels.max() >= y_pred.shape[-1]):
        raise ValueError(f"{where}: labels must be in [0, {y_pred.shape[-1]}), received "
                         f"values in [{labels.min()}, {labels.max()}]")
    onehot = np.zeros(y_pred.shape, y_pred.dtype)
    np.put_along_axis(onehot, labels[..., None], 1, axis=-1)
    return onehot


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False):
    """Per-sample cross-entropy of integer targets and probabilities (or logits with
    from_logits=True).

    >>> y_pred = np.array([[0.1, 0.9], [0.5, 0.5]])
    >>> cnnx.losses.sparse_categorical_crossentropy(np.array([1, 0]), y_pred).round(4)
    array([0.1054, 0.6931])
    """
    y_pred = np.asarray(y_pred)
    onehot = _sparse_to_onehot(y_true, y_pred, "sparse_categorical_crossentropy")
    return ops.categorical_crossentropy(onehot, y_pred, from_logits=from_logits)


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0):
    """Per-sample binary cross-entropy (mean over the last axis) of 0/1 targets and
    probabilities (or logits).

    >>> cnnx.losses.binary_crossentropy(np.array([[1.0]]), np.array([[0.9]])).round(4)
    array([0.1054])
    """
    y_true, y_pred = _pair(y_true, y_pred, "binary_crossentropy")
    y_true = _smooth(y_true, label_smoothing, 2)
    return np.mean(ops.binary_crossentropy(y_true, y_pred, from_logits=from_logits), axis=-1)


def mean_squared_error(y_true, y_pred):
    """Per-sample mean of (y_true - y_pred)^2 over the last axis (also `mse`).

    >>> cnnx.losses.mean_squared_error(np.array([[0.0, 1.0]]), np.array([[1.0, 1.0]]))
    array([0.5])
    """
    y_true, y_pred = _pair(y_true, y_pred, "mean_squared_error")
    return np.mean((y_pred - y_true) ** 2, axis=-1)


def mean_absolute_error(y_true, y_pred):
    """Per-sample mean of `abs(y_true - y_pred)` over the last axis (also `mae`).

    >>> cnnx.losses.mean_absolute_error(np.array([[0.0, 1.0]]), np.array([[2.0, 1.0]]))
    array([1.])
    """
    y_true, y_pred = _pair(y_true, y_pred, "mean_absolute_error")
    return np.mean(np.abs(y_pred - y_true), axis=-1)


mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error


# Every loss by name: filled by @REGISTRY.register where each class is defined.
REGISTRY = Registry("loss")


class Loss:
    """Base: per-sample values from `fn`, reduced by the mean over the batch.

    >>> loss = cnnx.losses.MeanSquaredError()
    >>> isinstance(loss, cnnx.losses.Loss), loss.get_config()["reduction"]
    (True, 'sum_over_batch_size')
    """
    fused_activation = None  # "softmax"/"sigmoid" when a logits path exists

    def __init__(self, name=None, reduction="sum_over_batch_size"):
        if reduction not in ("sum_over_batch_size", "sum", "none", None):
            raise ValueError(f"{type(self).__name__}: unknown reduction {reduction!r}")
        self.name = name or _snake(type(self).__name__)
        self.reduction = reduction

    def _reduce(self, values, sample_weight):
        if sample_weight is not None:
            sample_weight = np.asarray(sample_weight, values.dtype).reshape(
                values.shape[:1] + (1,) * (values.ndim - 1))
            values = values * sample_weight
        if self.reduction in ("none", None):
            return values
        total = float(np.sum(values))
        return total if self.reduction == "sum" else total / max(values.size, 1)

    def __call__(self, y_true, y_pred, sample_weight=None):
        return self._reduce(np.asarray(self.call(y_true, y_pred)), sample_weight)

    def _scale(self, per_sample, sample_weight):
        n = per_sample.shape[0]
        w = (np.ones(n, per_sample.dtype) if sample_weight is None
             else np.asarray(sample_weight, per_sample.dtype).reshape(n))
        denom = 1.0 if self.reduction == "sum" else float(max(per_sample.size, 1))
        return float(np.sum(per_sample.reshape(n, -1) * w[:, None])) / denom, w / denom

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _column(w, ndim):
    """Per-sample weights shaped to scale a gradient of ndim axes, sample by sample (an
    output may be an image: the loss then averages over its pixels too)."""
    return w.reshape((-1,) + (1,) * (ndim - 1))


def _snake(name):
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


@REGISTRY.register("categorical_crossentropy")
class CategoricalCrossentropy(Loss):
    """Cross-entropy of one-hot (or soft) targets and predicted probabilities (or logits,
    from_logits=True), with label_smoothing; mean over the batch.

    >>> loss = cnnx.losses.CategoricalCrossentropy()
    >>> round(loss(np.array([[0.0, 1.0]]), np.array([[0.1, 0.9]])), 4)   # -log(0.9)
    0.1054
    """
    fused_activation = "softmax"

    def __init__(self, from_logits=False, label_smoothing=0.0, name=None, **kwargs):
        super().__init__(name=name or "categorical_crossentropy", **kwargs)
        self.from_logits, self.label_smoothing = bool(from_logits), float(label_smoothing)

    def _targets(self, y_true, y_pred):
        y_true, y_pred = _pair(y_true, y_pred, self.name)
        return _smooth(y_true, self.label_smoothing, y_pred.shape[-1]), y_pred

    def call(self, y_true, y_pred):
        t, y_pred = self._targets(y_true, y_pred)
        return ops.categorical_crossentropy(t, y_pred, from_logits=self.from_logits)

    def value_and_grad(self, y_true, y_pred, sample_weight=None):
        if self.from_logits:
            return self.value_and_grad_from_logits(y_true, y_pred, sample_weight)[:2]
        t, p = self._targets(y_true, y_pred)
        per_sample = ops.categorical_crossentropy(t, p)
        value, w = self._scale(per_sample, sample_weight)
        # d/dp of -sum t log(p / sum p), ignoring the clip as Keras's gradient does
        s = np.sum(p, axis=-1, keepdims=True)
        grad = (-t / np.clip(p, EPSILON, None) + np.sum(t, axis=-1, keepdims=True) / s)
        return value, (grad * _column(w, grad.ndim)).astype(p.dtype)

    def value_and_grad_from_logits(self, y_true, logits, sample_weight=None):
        """(reported value, d value / d logits, probabilities)."""
        t, z = self._targets(y_true, logits)
        per_sample, grad = ops.softmax_cross_entropy(z, t)
        probs = grad + t
        if not self.from_logits:  # report what Keras reports from probabilities
            per_sample = ops.categorical_crossentropy(t, probs)
        value, w = self._scale(per_sample, sample_weight)
        grad *= _column(w, grad.ndim).astype(grad.dtype)
        return value, grad, probs

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits,
                "label_smoothing": self.label_smoothing}


@REGISTRY.register("sparse_categorical_crossentropy")
class SparseCategoricalCrossentropy(CategoricalCrossentropy):
    """Cross-entropy of integer class targets and predicted probabilities (or logits,
    from_logits=True); mean over the batch.

    >>> loss = cnnx.losses.SparseCategoricalCrossentropy()
    >>> round(loss(np.array([1]), np.array([[0.1, 0.9]])), 4)   # the class index, not one-hot
    0.1054
    """
    def __init__(self, from_logits=False, name=None, **kwargs):
        super().__init__(from_logits=from_logits, name=name or
                         "sparse_categorical_crossentropy", **kwargs)

    def _targets(self, y_true, y_pred):
        y_pred = np.asarray(y_pred)
        return _sparse_to_onehot(y_true, y_pred, self.name), y_pred

    def get_config(self):
        config = super().get_config()
        config.pop("label_smoothing")
        return config


@REGISTRY.register("binary_crossentropy")
class BinaryCrossentropy(Loss):
    """Binary cross-entropy of 0/1 targets and predicted probabilities (or logits,
    from_logits=True), with label_smoothing; mean over the last axis, then the batch.

    >>> loss = cnnx.losses.BinaryCrossentropy()
    >>> # the mean of -log 0.9 and -log 0.8:
    >>> round(loss(np.array([[1.0], [0.0]]), np.array([[0.9], [0.2]])), 4)
    0.1643
    """
    fused_activation = "sigmoid"

    def __init__(self, from_logits=False, label_smoothing=0.0, name=None, **kwargs):
        super().__init__(name=name or "binary_crossentropy", **kwargs)
        self.from_logits, self.label_smoothing = bool(from_logits), float(label_smoothing)

    def _targets(self, y_true, y_pred):
        y_true, y_pred = _pair(y_true, y_pred, self.name)
        return _smooth(y_true, self.label_smoothing, 2), y_pred

    def call(self, y_true, y_pred):
        t, y_pred = self._targets(y_true, y_pred)
        return np.mean(ops.binary_crossentropy(t, y_pred, from_logits=self.from_logits),
                       axis=-1)

    def value_and_grad(self, y_true, y_pred, sample_weight=None):
        if self.from_logits:
            return self.value_and_grad_from_logits(y_true, y_pred, sample_weight)[:2]
        t, p = self._targets(y_true, y_pred)
        per_sample = np.mean(ops.binary_crossentropy(t, p), axis=-1)
        value, w = self._scale(per_sample, sample_weight)
        pc = np.clip(p, EPSILON, 1 - EPSILON)
        grad = (pc - t) / (pc * (1 - pc)) / p.shape[-1]
        return value, (grad * _column(w, grad.ndim)).astype(p.dtype)

    def value_and_grad_from_logits(self, y_true, logits, sample_weight=None):
        t, z = self._targets(y_true, logits)
        elementwise, grad = ops.sigmoid_cross_entropy(z, t)
        probs = grad + t
        if not self.from_logits:
            elementwise = ops.binary_crossentropy(t, probs)
        per_sample = np.mean(elementwise, axis=-1)
        value, w = self._scale(per_sample, sample_weight)
        grad *= (_column(w, grad.ndim) / z.shape[-1]).astype(grad.dtype)
        return value, grad, probs

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits,
                "label_smoothing": self.label_smoothing}


@REGISTRY.register("mean_squared_error", "mse")
class MeanSquaredError(Loss):
    """The mean of (y_true - y_pred)^2 over the last axis, then over the batch.

    >>> cnnx.losses.MeanSquaredError()(np.array([[0.0, 1.0]]), np.array([[1.0, 1.0]]))
    0.5
    """
    def __init__(self, name=None, **kwargs):
        super().__init__(name=name or "mean_squared_error", **kwargs)

    def call(self, y_true, y_pred):
        return mean_squared_error(y_true, y_pred)

    def value_and_grad(self, y_true, y_pred, sample_weight=None):
        t, p = _pair(y_true, y_pred, self.name)
        value, w = self._scale(np.mean((p - t) ** 2, axis=-1), sample_weight)
        grad = 2 * (p - t) / p.shape[-1]
        return value, (grad * _column(w, grad.ndim)).astype(p.dtype)


@REGISTRY.register("mean_absolute_error", "mae")
class MeanAbsoluteError(Loss):
    """The mean of `abs(y_true - y_pred)` over the last axis, then over the batch.

    >>> cnnx.losses.MeanAbsoluteError()(np.array([[0.0, 1.0]]), np.array([[2.0, 1.0]]))
    1.0
    """
    def __init__(self, name=None, **kwargs):
        super().__init__(name=name or "mean_absolute_error", **kwargs)

    def call(self, y_true, y_pred):
        return mean_absolute_error(y_true, y_pred)

    def value_and_grad(self, y_true, y_pred, sample_weight=None):
        t, p = _pair(y_true, y_pred, self.name)
        value, w = self._scale(np.mean(np.abs(p - t), axis=-1), sample_weight)
        grad = np.sign(p - t) / p.shape[-1]
        return value, (grad * _column(w, grad.ndim)).astype(p.dtype)


_BY_FUNCTION = {categorical_crossentropy: CategoricalCrossentropy,
                sparse_categorical_crossentropy: SparseCategoricalCrossentropy,
                binary_crossentropy: BinaryCrossentropy, mean_squared_error: MeanSquaredError,
                mean_absolute_error: MeanAbsoluteError}


def get(identifier):
    """A loss by name ("categorical_crossentropy", "mse", ...), from a serialized config,
    a loss function, or the instance given.

    >>> type(cnnx.losses.get("mse")).__name__
    'MeanSquaredError'
    >>> config = {"class_name": "CategoricalCrossentropy", "config": {"from_logits": True}}
    >>> cnnx.losses.get(config).from_logits
    True
    """
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str):
        return REGISTRY.by_name(identifier)()
    if isinstance(identifier, dict):
        return REGISTRY.from_config(identifier)
    if callable(identifier) and identifier in _BY_FUNCTION:
        return _BY_FUNCTION[identifier]()
    raise ValueError(f"Unsupported loss {identifier!r}: use a name or a cnnx.losses class")


def serialize(loss):
    return {"class_name": type(loss).__name__, "config": loss.get_config()}

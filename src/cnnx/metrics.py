"""cnnx.metrics: stateful metrics (update_state, result, reset_state), as in Keras.

"accuracy" / "acc" resolve by Keras's rule: sparse categorical accuracy for a sparse
categorical loss, binary accuracy when the model has one output unit (or a binary
loss), categorical accuracy otherwise.
"""
import re

import numpy as np

from ._registry import Registry

__all__ = ["Metric", "Mean", "BinaryAccuracy", "CategoricalAccuracy",
           "SparseCategoricalAccuracy", "TopKCategoricalAccuracy", "MeanSquaredError",
           "Precision", "Recall", "get"]


# Every metric by name: filled by @REGISTRY.register where each class is defined.
REGISTRY = Registry("metric")


class Metric:
    def __init__(self, name=None, dtype=None):
        self.name = name or _default_name(type(self).__name__)
        # Keras's variable dtype; cnnx accumulates in float64 and reports Python floats.
        self.dtype = dtype or "float32"
        self.reset_state()

    def reset_state(self):
        self.total, self.count = 0.0, 0.0

    def _add(self, values, sample_weight=None):
        """Adds one value per sample (a sample's several values are averaged first)."""
        values = np.asarray(values, np.float64)
        values = values.reshape(len(values), -1).mean(axis=1) if values.ndim > 1 \
            else values.reshape(-1)
        w = (np.ones_like(values) if sample_weight is None
             else np.asarray(sample_weight, np.float64).reshape(-1))
        self.total += float(np.sum(values * w))
        self.count += float(np.sum(w))

    def result(self):
        return self.total / self.count if self.count else 0.0

    def get_config(self):
        return {"name": self.name}


def _default_name(cls_name):
    return re.sub(r"(?<!^)(?=[A-Z])", "_", cls_name).lower()


class Mean(Metric):
    def update_state(self, values, sample_weight=None):
        self._add(np.reshape(values, -1), sample_weight)


@REGISTRY.register("binary_accuracy")
class BinaryAccuracy(Metric):
    def __init__(self, name="binary_accuracy", dtype=None, threshold=0.5):
        self.threshold = threshold
        super().__init__(name, dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = np.asarray(y_pred)
        y_true = np.asarray(y_true).reshape(y_pred.shape)
        self._add((y_true == (y_pred > self.threshold)).astype(np.float64), sample_weight)


@REGISTRY.register("categorical_accuracy")
class CategoricalAccuracy(Metric):
    def __init__(self, name="categorical_accuracy", dtype=None):
        super().__init__(name, dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        self._add(np.argmax(y_true, -1) == np.argmax(y_pred, -1), sample_weight)


@REGISTRY.register("sparse_categorical_accuracy")
class SparseCategoricalAccuracy(Metric):
    def __init__(self, name="sparse_categorical_accuracy", dtype=None):
        super().__init__(name, dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = np.asarray(y_pred)
        labels = np.asarray(y_true).reshape(y_pred.shape[:-1])
        self._add(labels == np.argmax(y_pred, -1), sample_weight)


@REGISTRY.register("top_k_categorical_accuracy")
class TopKCategoricalAccuracy(Metric):
    def __init__(self, k=5, name="top_k_categorical_accuracy", dtype=None):
        self.k = k
        super().__init__(name, dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = np.asarray(y_pred)
        target = np.argmax(y_true, -1)
        score = np.take_along_axis(y_pred, target[..., None], -1)
        # In the top k when fewer than k scores beat the target's (ties count for it).
        self._add(np.sum(y_pred > score, axis=-1) < self.k, sample_weight)


@REGISTRY.register("mse", "mean_squared_error")
class MeanSquaredError(Metric):
    def __init__(self, name="mean_squared_error", dtype=None):
        super().__init__(name, dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = np.asarray(y_pred)
        diff = y_pred - np.asarray(y_true).reshape(y_pred.shape)
        self._add(np.mean(diff.reshape(len(diff), -1) ** 2, axis=1), sample_weight)


class _Confusion(Metric):
    def __init__(self, thresholds=None, name=None, dtype=None):
        self.thresholds = 0.5 if thresholds is None else thresholds
        super().__init__(name, dtype)

    def reset_state(self):
        self.tp = self.fp = self.fn = 0.0

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = np.asarray(y_pred)
        t = np.asarray(y_true).reshape(y_pred.shape) > 0.5
        p = y_pred > self.thresholds
        w = 1.0 if sample_weight is None else np.asarray(sample_weight, np.float64).reshape(
            (-1,) + (1,) * (y_pred.ndim - 1))
        self.tp += float(np.sum((t & p) * w))
        self.fp += float(np.sum((~t & p) * w))
        self.fn += float(np.sum((t & ~p) * w))


@REGISTRY.register("precision")
class Precision(_Confusion):
    def result(self):
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0


@REGISTRY.register("recall")
class Recall(_Confusion):
    def result(self):
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0




def get(identifier, loss=None, output_units=None):
    """A metric by name or instance; "accuracy"/"acc" by Keras's rule (see module doc)."""
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, str):
        if identifier in ("accuracy", "acc"):
            loss_name = getattr(loss, "name", "")
            if "sparse_categorical" in loss_name:
                cls = SparseCategoricalAccuracy
            elif "binary" in loss_name or output_units == 1:
                cls = BinaryAccuracy
            else:
                cls = CategoricalAccuracy
            return cls(name=identifier)
        if identifier not in REGISTRY:
            raise ValueError(f"Unknown metric {identifier!r}; expected 'accuracy' or one of "
                             f"{sorted(REGISTRY._by_name)}")
        return REGISTRY.by_name(identifier)()
    raise ValueError(f"Unsupported metric {identifier!r}")

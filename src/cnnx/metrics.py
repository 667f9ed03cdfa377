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
           "Precision", "Recall", "AUC", "get"]


# Every metric by name: filled by @REGISTRY.register where each class is defined.
REGISTRY = Registry("metric")


class Metric:
    """Base of the stateful metrics: update_state(y_true, y_pred, sample_weight)
    accumulates, result() reports, reset_state() starts over.

    >>> m = cnnx.metrics.Mean()
    >>> m.update_state([2.0, 4.0])
    >>> isinstance(m, cnnx.metrics.Metric), float(m.result())
    (True, 3.0)
    >>> m.reset_state()
    >>> float(m.result())
    0.0
    """
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
    """The (weighted) mean of the values given to update_state.

    >>> m = cnnx.metrics.Mean()
    >>> m.update_state([1.0, 2.0, 6.0])
    >>> float(m.result())
    3.0
    """
    def update_state(self, values, sample_weight=None):
        self._add(np.reshape(values, -1), sample_weight)


@REGISTRY.register("binary_accuracy")
class BinaryAccuracy(Metric):
    """The fraction of predictions on the right side of `threshold` (0.5) for 0/1
    targets.

    >>> m = cnnx.metrics.BinaryAccuracy()
    >>> m.update_state(np.array([[1.0], [0.0], [1.0]]), np.array([[0.8], [0.6], [0.3]]))
    >>> round(float(m.result()), 4)   # threshold 0.5: one of three right
    0.3333
    """
    def __init__(self, name="binary_accuracy", dtype=None, threshold=0.5):
        self.threshold = threshold
        super().__init__(name, dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = np.asarray(y_pred)
        y_true = np.asarray(y_true).reshape(y_pred.shape)
        self._add((y_true == (y_pred > self.threshold)).astype(np.float64), sample_weight)


@REGISTRY.register("categorical_accuracy")
class CategoricalAccuracy(Metric):
    """The fraction of samples whose highest predicted class is the one-hot target's.

    >>> m = cnnx.metrics.CategoricalAccuracy()
    >>> m.update_state(np.array([[0, 1], [1, 0]]), np.array([[0.3, 0.7], [0.4, 0.6]]))
    >>> float(m.result())
    0.5
    """
    def __init__(self, name="categorical_accuracy", dtype=None):
        super().__init__(name, dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        self._add(np.argmax(y_true, -1) == np.argmax(y_pred, -1), sample_weight)


@REGISTRY.register("sparse_categorical_accuracy")
class SparseCategoricalAccuracy(Metric):
    """The fraction of samples whose highest predicted class is the integer target.

    >>> m = cnnx.metrics.SparseCategoricalAccuracy()
    >>> m.update_state(np.array([1, 0]), np.array([[0.3, 0.7], [0.4, 0.6]]))
    >>> float(m.result())
    0.5
    """
    def __init__(self, name="sparse_categorical_accuracy", dtype=None):
        super().__init__(name, dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = np.asarray(y_pred)
        labels = np.asarray(y_true).reshape(y_pred.shape[:-1])
        self._add(labels == np.argmax(y_pred, -1), sample_weight)


@REGISTRY.register("top_k_categorical_accuracy")
class TopKCategoricalAccuracy(Metric):
    """The fraction of samples whose one-hot target is among the k (5) highest
    predictions.

    >>> m = cnnx.metrics.TopKCategoricalAccuracy(k=2)
    >>> m.update_state(np.array([[0, 0, 1]]), np.array([[0.5, 0.2, 0.3]]))
    >>> float(m.result())   # the true class is second: in the top 2
    1.0
    """
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
    """The running mean of (y_true - y_pred)^2.

    >>> m = cnnx.metrics.MeanSquaredError()
    >>> m.update_state(np.array([[0.0, 1.0]]), np.array([[1.0, 1.0]]))
    >>> float(m.result())
    0.5
    """
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
    """true positives / predicted positives, a prediction being positive above
    `thresholds` (0.5).

    >>> m = cnnx.metrics.Precision()
    >>> m.update_state(np.array([1, 0, 1, 1]), np.array([0.9, 0.8, 0.2, 0.7]))
    >>> round(float(m.result()), 4)   # 2 of the 3 predicted positives are
    0.6667
    """
    def result(self):
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0


@REGISTRY.register("recall")
class Recall(_Confusion):
    """true positives / actual positives, a prediction being positive above `thresholds`
    (0.5).

    >>> m = cnnx.metrics.Recall()
    >>> m.update_state(np.array([1, 0, 1, 1]), np.array([0.9, 0.8, 0.2, 0.7]))
    >>> round(float(m.result()), 4)   # 2 of the 3 positives found
    0.6667
    """
    def result(self):
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0


def _ratio(a, b):
    """a / b, 0 where b is 0 (Keras's divide_no_nan)."""
    return np.divide(a, b, out=np.zeros_like(a, dtype=np.float64), where=b != 0)


@REGISTRY.register("auc")
class AUC(Metric):
    """Area under the ROC or precision-recall curve, as Keras computes it: confusion
    counts at num_thresholds thresholds (0 - eps, evenly spaced interior ones, 1 + eps;
    a prediction above a threshold is positive), then a Riemann sum over them:
    "interpolation" (trapezoids for ROC; Davis and Goadrich's interpolation for PR),
    "minoring" or "majoring".

    >>> m = cnnx.metrics.AUC()
    >>> m.update_state(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
    >>> round(float(m.result()), 2)
    0.75
    """

    def __init__(self, num_thresholds=200, curve="ROC", summation_method="interpolation",
                 name=None, dtype=None, thresholds=None, multi_label=False, num_labels=None,
                 label_weights=None, from_logits=False):
        from ._compat import refuse_unimplemented
        refuse_unimplemented("AUC", multi_label=(multi_label, False),
                             num_labels=(num_labels, None),
                             label_weights=(label_weights, None))
        if curve not in ("ROC", "PR"):
            raise ValueError(f"AUC: `curve` must be 'ROC' or 'PR', received {curve!r}")
        if summation_method not in ("interpolation", "minoring", "majoring"):
            raise ValueError(f"AUC: `summation_method` must be interpolation, minoring or "
                             f"majoring, received {summation_method!r}")
        if thresholds is not None:
            inner = sorted(float(t) for t in thresholds)
        else:
            if isinstance(num_thresholds, bool) or not isinstance(num_thresholds, int) \
                    or num_thresholds < 2:
                raise ValueError(f"AUC: `num_thresholds` must be an int > 1, received "
                                 f"{num_thresholds!r}")
            inner = [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)]
        eps = 1e-7
        self.thresholds = np.array([0.0 - eps] + inner + [1.0 + eps])
        self.num_thresholds = len(self.thresholds)
        self.curve, self.summation_method = curve, summation_method
        self.from_logits = bool(from_logits)
        super().__init__(name or "auc", dtype)

    def reset_state(self):
        n = len(self.thresholds) if hasattr(self, "thresholds") else 0
        self.tp, self.fp, self.tn, self.fn = (np.zeros(n) for _ in range(4))

    def update_state(self, y_true, y_pred, sample_weight=None):
        p = np.asarray(y_pred, np.float64).reshape(-1)
        if self.from_logits:
            p = 1 / (1 + np.exp(-p))
        t = np.asarray(y_true, np.float64).reshape(-1) > 0.5
        n = len(p)
        w = (np.ones(n) if sample_weight is None else np.repeat(
            np.asarray(sample_weight, np.float64).reshape(-1), max(n // max(
                np.size(sample_weight), 1), 1)))
        above = p[None, :] > self.thresholds[:, None]          # (thresholds, values)
        self.tp += (above & t) @ w
        self.fp += (above & ~t) @ w
        self.fn += (~above & t) @ w
        self.tn += (~above & ~t) @ w

    def result(self):
        tp, fp, tn, fn = self.tp, self.fp, self.tn, self.fn
        if self.curve == "PR" and self.summation_method == "interpolation":
            dtp = tp[:-1] - tp[1:]
            positive = tp + fp
            dp = positive[:-1] - positive[1:]
            slope = _ratio(dtp, np.maximum(dp, 0))
            intercept = tp[1:] - slope * positive[1:]
            both = (positive[:-1] > 0) & (positive[1:] > 0)
            ratio = np.where(both, _ratio(positive[:-1], np.maximum(positive[1:], 0)), 1.0)
            with np.errstate(divide="ignore"):
                log_ratio = np.where(ratio > 0, np.log(np.where(ratio > 0, ratio, 1)), 0)
            return float(np.sum(_ratio(slope * (dtp + intercept * log_ratio),
                                       np.maximum(tp[1:] + fn[1:], 0))))
        recall = _ratio(tp, tp + fn)
        if self.curve == "ROC":
            x, y = _ratio(fp, fp + tn), recall
        else:
            x, y = recall, _ratio(tp, tp + fp)
        if self.summation_method == "interpolation":
            heights = (y[:-1] + y[1:]) / 2
        elif self.summation_method == "minoring":
            heights = np.minimum(y[:-1], y[1:])
        else:
            heights = np.maximum(y[:-1], y[1:])
        return float(np.sum((x[:-1] - x[1:]) * heights))

    def get_config(self):
        return {"name": self.name, "num_thresholds": self.num_thresholds,
                "curve": self.curve, "summation_method": self.summation_method,
                "from_logits": self.from_logits}




def get(identifier, loss=None, output_units=None):
    """A metric by name or instance; "accuracy"/"acc" by Keras's rule (see module doc).

    >>> type(cnnx.metrics.get("mse")).__name__
    'MeanSquaredError'
    """
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

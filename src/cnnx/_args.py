"""Checks of the arguments of fit, evaluate and predict, each raising a clear error that
names the function and the argument, before any work is done."""
import numbers

import numpy as np

__all__ = ["positive_int", "epoch_index", "verbosity", "finite_weights", "class_weights"]


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def positive_int(value, name, where, optional=True):
    """value as an int >= 1 (None passes when optional)."""
    if value is None and optional:
        return None
    if not _is_int(value) or value < 1:
        raise ValueError(f"{where}: `{name}` must be a positive int"
                         f"{' or None' if optional else ''}, received {value!r}")
    return int(value)


def epoch_index(value, epochs, where):
    """initial_epoch: an int in [0, epochs)."""
    if not _is_int(value) or not 0 <= value < epochs:
        raise ValueError(f"{where}: `initial_epoch` must be an int in [0, epochs={epochs}), "
                         f"received {value!r}")
    return int(value)


def verbosity(value, where):
    """Keras's verbose: "auto", 0, 1 or 2 (a bool counts as 0 or 1)."""
    if value == "auto" and isinstance(value, str):
        return value
    if isinstance(value, bool):
        return int(value)
    if not _is_int(value) or value not in (0, 1, 2):
        raise ValueError(f"{where}: `verbose` must be 'auto', 0, 1 or 2, received {value!r}")
    return int(value)


def finite_weights(weights, n, name, where):
    """Per-sample weights: n finite, non-negative numbers (None passes)."""
    if weights is None:
        return None
    try:
        w = np.asarray(weights, np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise TypeError(f"{where}: `{name}` must be numbers, received "
                        f"{type(weights).__name__}") from None
    if w.shape != (n,):
        raise ValueError(f"{where}: `{name}` must have shape ({n},), received {w.shape}")
    bad = ~np.isfinite(w) | (w < 0)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{where}: `{name}` must be finite and non-negative, received "
                         f"{float(w[i])!r} at index {i}")
    return w


def class_weights(value, where):
    """class_weight: a dict from class index to a finite, non-negative weight."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise TypeError(f"{where}: `class_weight` must be a dict from class index to "
                        f"weight, received {type(value).__name__}")
    checked = {}
    for key, weight in value.items():
        if not _is_int(key) or key < 0:
            raise ValueError(f"{where}: `class_weight` keys must be class indices (ints "
                             f">= 0), received {key!r}")
        if isinstance(weight, bool) or not isinstance(weight, numbers.Real) \
                or not np.isfinite(weight) or weight < 0:
            raise ValueError(f"{where}: `class_weight[{key}]` must be a finite, "
                             f"non-negative number, received {weight!r}")
        checked[int(key)] = float(weight)
    return checked

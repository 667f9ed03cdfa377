"""cnnx.regularizers: penalties on weights, added to the loss, with their gradients."""
import numpy as np

from ._registry import Registry

__all__ = ["Regularizer", "L1", "L2", "L1L2", "l1", "l2", "l1_l2", "get"]


# Every regularizer by name: filled by @REGISTRY.register where each class is defined.
REGISTRY = Registry("regularizer")


class Regularizer:
    """Base of the weight penalties: called on a weight, returns the penalty added to the
    loss; gradient(w) its derivative.

    >>> reg = cnnx.regularizers.L2(0.5)
    >>> isinstance(reg, cnnx.regularizers.Regularizer), reg.gradient(np.array([1.0, -2.0]))
    (True, array([ 1., -2.]))
    """
    def __init__(self, l1=0.0, l2=0.0):
        self.l1, self.l2 = float(l1), float(l2)

    def __call__(self, w):
        return self.l1 * float(np.sum(np.abs(w))) + self.l2 * float(np.sum(w * w))

    def gradient(self, w):
        return self.l1 * np.sign(w) + 2 * self.l2 * w

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@REGISTRY.register("l1_l2")
class L1L2(Regularizer):
    """`l1 * sum(abs(w)) + l2 * sum(w**2)`.

    >>> round(cnnx.regularizers.L1L2(l1=0.1, l2=0.1)(np.array([1.0, -2.0])), 4)
    0.8
    """
    pass


@REGISTRY.register("l1")
class L1(Regularizer):
    """`l1 * sum(abs(w))` (default l1 0.01).

    >>> round(cnnx.regularizers.L1(0.1)(np.array([1.0, -2.0])), 4)   # 0.1 * 3
    0.3
    """
    def __init__(self, l1=0.01):
        super().__init__(l1=l1)

    def get_config(self):
        return {"l1": self.l1}


@REGISTRY.register("l2")
class L2(Regularizer):
    """l2 * sum(w^2) (default l2 0.01).

    >>> cnnx.regularizers.L2(0.1)(np.array([1.0, -2.0]))   # 0.1 * 5
    0.5
    """
    def __init__(self, l2=0.01):
        super().__init__(l2=l2)

    def get_config(self):
        return {"l2": self.l2}


def get(identifier):
    """A regularizer by name ("l1", "l2", "l1_l2"), from a serialized config, or the
    instance given (None stays None).

    >>> type(cnnx.regularizers.get("l2")).__name__
    'L2'
    """
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, str) and identifier in REGISTRY:
        return REGISTRY.by_name(identifier)()
    if isinstance(identifier, dict):
        return REGISTRY.from_config(identifier)
    raise ValueError(f"Unknown regularizer {identifier!r}; expected l1, l2 or l1_l2")


def serialize(regularizer):
    if regularizer is None:
        return None
    return {"class_name": type(regularizer).__name__, "config": regularizer.get_config()}


def l1(l1=0.01):
    """Keras's lowercase spelling: regularizers.l1(0.01) is L1(0.01).

    >>> cnnx.regularizers.l1(0.1).l1
    0.1
    """
    return L1(l1)


def l2(l2=0.01):
    """Keras's lowercase spelling: regularizers.l2(0.01) is L2(0.01).

    >>> cnnx.regularizers.l2(0.1).l2
    0.1
    """
    return L2(l2)


def l1_l2(l1=0.01, l2=0.01):
    """Keras's lowercase spelling: regularizers.l1_l2(...) is L1L2(...).

    >>> r = cnnx.regularizers.l1_l2(0.1, 0.2)
    >>> r.l1, r.l2
    (0.1, 0.2)
    """
    return L1L2(l1, l2)

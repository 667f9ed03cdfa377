"""The one random generator cnnx draws from: initializers, Dropout, shuffling.
cnnx.utils.set_random_seed reseeds it (and NumPy's legacy global state)."""
import numpy as np

_generator = None  # made on first use: numpy.random costs 13 ms to import


def generator():
    global _generator
    if _generator is None:
        _generator = np.random.default_rng()
    return _generator


def seed(value):
    global _generator
    _generator = np.random.default_rng(value)
    np.random.seed(value % 2 ** 32)

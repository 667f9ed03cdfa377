"""The one random generator cnnx draws from: initializers, Dropout, shuffling.
cnnx.utils.set_random_seed reseeds it (and NumPy's legacy global state)."""
import numpy as np

_generator = np.random.default_rng()


def generator():
    return _generator


def seed(value):
    global _generator
    _generator = np.random.default_rng(value)
    np.random.seed(value % 2 ** 32)

"""The one random generator cnnx draws from: initializers, Dropout, shuffling.
cnnx.utils.set_random_seed reseeds it (and NumPy's legacy global state).

A distributed training step (cnnx.distributed) runs each micro-batch under `stream`:
every random layer of that micro-batch then draws from a generator keyed by the step
and the micro-batch, whichever process computes it."""
import contextlib
import threading

import numpy as np

_generator = None  # made on first use: numpy.random costs 13 ms to import
_seed = None       # the last seed set_random_seed gave, or None
_local = threading.local()   # the stream of the micro-batch this thread computes


def generator():
    override = getattr(_local, "stream", None)
    if override is not None:
        return override
    global _generator
    if _generator is None:
        _generator = np.random.default_rng()
    return _generator


def layer_generator(own):
    """The generator a layer with a seed of its own (`own`, or None) draws from."""
    override = getattr(_local, "stream", None)
    if override is not None:
        return override
    return own or generator()


def last_seed():
    return _seed


def seed(value):
    global _generator, _seed
    _generator = np.random.default_rng(value)
    _seed = value
    np.random.seed(value % 2 ** 32)


@contextlib.contextmanager
def stream(rng):
    """Random layers of this thread draw from `rng` inside the block."""
    before = getattr(_local, "stream", None)
    _local.stream = rng
    try:
        yield rng
    finally:
        _local.stream = before

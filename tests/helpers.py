"""Helpers shared by the tests: where the shared real data lives, and its readers; a
convolution algorithm forced for a block.

The fixtures live in conftest.py; this module holds the plain functions, so that test
modules import from here and never from each other or from conftest.
"""
import contextlib
import gzip
import os
from pathlib import Path

import numpy as np

from cnnx import _kernels


def data_dir():
    """The shared real data: CNNX_TEST_DATA, else ../shared/data from the repo root."""
    env = os.environ.get("CNNX_TEST_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "shared" / "data"


def read_idx(path):
    with gzip.open(path) as f:
        data = f.read()
    magic = int.from_bytes(data[:4], "big")
    ndim = magic & 0xFF
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def mnist_5k(root):
    """The 5,000 MNIST training digits (500 per class, sorted by class)."""
    with gzip.open(root / "mnist-5k" / "mnist_5k.csv.gz") as f:
        raw = np.loadtxt(f, delimiter=",", dtype=np.uint8)
    return raw[:, :784].reshape(-1, 28, 28, 1), raw[:, 784]


def mnist_test(root):
    d = root / "mnist"
    return (read_idx(d / "t10k-images-idx3-ubyte.gz")[..., None],
            read_idx(d / "t10k-labels-idx1-ubyte.gz"))


# --- a small model and data for the model tests -----------------------------------

def small_model(seed=0, dropout=0.0, last="softmax", units=3):
    import cnnx
    from cnnx import layers
    cnnx.utils.set_random_seed(seed)
    return cnnx.Sequential([
        cnnx.Input((6, 6, 2)),
        layers.Conv2D(4, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dropout(dropout),
        layers.Dense(units, activation=last),
    ])


def data(n=20, units=3, seed=1):
    import cnnx
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 6, 6, 2)).astype(np.float32)
    labels = rng.integers(0, units, n)
    return x, cnnx.utils.to_categorical(labels, units), labels


# --- finite differences (float64) --------------------------------------------------

EPS = 1e-6


def numerical_grad(loss, array):
    """Central differences of the scalar loss() with respect to each element of array
    (for single kernels and layers, where arrays are small)."""
    grad = np.zeros_like(array)
    flat, g = array.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        keep = flat[i]
        flat[i] = keep + EPS
        up = loss()
        flat[i] = keep - EPS
        down = loss()
        flat[i] = keep
        g[i] = (up - down) / (2 * EPS)
    return grad


def assert_grad(analytic, numeric):
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-7)


def model_gradients(model, x, y):
    """The gradient of a compiled model's loss at its weights, through the public API: one
    plain SGD step with learning rate 1 moves every weight by minus its gradient. The
    model must be compiled with SGD(learning_rate=1.0) and have no non-trainable state
    that a training step updates (BatchNormalization's moving statistics)."""
    before = [w.copy() for w in model.get_weights()]
    model.train_on_batch(x, y)
    grads = [b - a for b, a in zip(before, model.get_weights())]
    model.set_weights(before)
    return grads


def assert_directional_derivatives(model, x, y, rng, directions=3):
    """The model's gradient against finite differences of its loss along a few random
    directions in weight space, in float64. As strong as an element-by-element check
    (a wrong gradient has a nonzero error vector, and a random direction meets it with
    probability one), at two loss evaluations per direction instead of two per weight."""
    grads = model_gradients(model, x, y)
    w0 = model.get_weights()
    for _ in range(directions):
        v = [rng.standard_normal(w.shape) for w in w0]
        model.set_weights([w + EPS * d for w, d in zip(w0, v)])
        up = model.test_on_batch(x, y)
        model.set_weights([w - EPS * d for w, d in zip(w0, v)])
        down = model.test_on_batch(x, y)
        model.set_weights(w0)
        numeric = (up - down) / (2 * EPS)
        analytic = sum(float(np.vdot(g, d)) for g, d in zip(grads, v))
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-9)


@contextlib.contextmanager
def conv_algorithm(name):
    """Convolutions run by algorithm `name` in the block (_kernels.set_conv_algorithm),
    the setting before it restored after."""
    before = _kernels.conv_algorithm()
    _kernels.set_conv_algorithm(name)
    try:
        yield
    finally:
        _kernels.set_conv_algorithm(before)


def conv_tol(tol, dtype, want):
    """`tol` (rtol and atol for dtype), but where F(4x4, 3x3) may run in float32 (forced,
    or chosen by "auto": from 16 channels and 16384 tile x C x F products, as small as
    one 8 x 8 image) its absolute part scales with the largest value wanted: those
    transforms (entries up to 5 and 1/24) round to about 1e-5 of it (measured 4e-6 -
    1.1e-5 at 32 - 256 input channels; F(2x2, 3x3) 2-7e-7)."""
    if dtype == np.float32 and _kernels.conv_algorithm() in ("winograd4", "auto"):
        return dict(tol, atol=max(tol["atol"], 5e-5 * float(np.max(np.abs(want), initial=0))))
    return tol


def by_conv_algorithm(names, run):
    """{name: run()} with each convolution algorithm forced in turn."""
    out = {}
    for name in names:
        with conv_algorithm(name):
            out[name] = run()
    return out

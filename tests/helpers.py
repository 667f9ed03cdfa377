"""Helpers shared by the tests: where the shared real data lives, and its readers.

The fixtures live in conftest.py; this module holds the plain functions, so that test
modules import from here and never from each other or from conftest.
"""
import gzip
import os
from pathlib import Path

import numpy as np


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

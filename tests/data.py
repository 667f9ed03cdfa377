"""Readers for the shared real data (../shared/data, or CNNX_TEST_DATA)."""
import gzip

import numpy as np
import pytest

from conftest import data_dir


def _need(path):
    if not path.exists():
        pytest.skip(f"shared data not found at {path} (set CNNX_TEST_DATA)")
    return path


def read_idx(path):
    with gzip.open(_need(path)) as f:
        data = f.read()
    magic = int.from_bytes(data[:4], "big")
    ndim = magic & 0xFF
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def mnist_5k():
    """The 5,000 MNIST training digits (500 per class, sorted by class)."""
    with gzip.open(_need(data_dir() / "mnist-5k" / "mnist_5k.csv.gz")) as f:
        raw = np.loadtxt(f, delimiter=",", dtype=np.uint8)
    return raw[:, :784].reshape(-1, 28, 28, 1), raw[:, 784]


def mnist_test():
    d = data_dir() / "mnist"
    return (read_idx(d / "t10k-images-idx3-ubyte.gz")[..., None],
            read_idx(d / "t10k-labels-idx1-ubyte.gz"))

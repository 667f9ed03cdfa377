import os
from pathlib import Path

import numpy as np
import pytest

import cnnx
from cnnx import _kernels

SIMD_PATHS = [p for p in ("avx512", "avx2", "generic", "neon", "scalar")
              if _kernels.simd_available(p)]


def data_dir():
    """The shared real data: CNNX_TEST_DATA, else ../shared/data from the repo root."""
    env = os.environ.get("CNNX_TEST_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture(params=SIMD_PATHS)
def simd_path(request):
    """Runs a test once per microkernel path this CPU supports."""
    before = _kernels.simd_path()
    _kernels.select_simd(request.param)
    yield request.param
    _kernels.select_simd(before)


@pytest.fixture
def threads():
    """Restores the thread count after a test that changes it."""
    before = cnnx.get_num_threads()
    yield cnnx.set_num_threads
    cnnx.set_num_threads(before)


@pytest.fixture(params=["gemm", "direct"])
def conv_algorithm(request):
    """Runs a test once with the im2col products and once with the direct kernels
    (forced for every layer, wherever the SIMD path has them)."""
    before = _kernels.conv_algorithm()
    _kernels.set_conv_algorithm(request.param)
    yield request.param
    _kernels.set_conv_algorithm(before)

import numpy as np
import pytest

import cnnx
from cnnx import _kernels

from helpers import data_dir

SIMD_PATHS = [p for p in ("avx512", "avx2", "generic", "neon", "scalar")
              if _kernels.simd_available(p)]


def _have_shared_data():
    root = data_dir()
    return root.is_dir() and any(root.iterdir())


@pytest.hookimpl(tryfirst=True)  # before -m deselects by the markers added here
def pytest_collection_modifyitems(config, items):
    # A test that reads the shared data is in the data tier by construction: it asks for
    # the shared_data fixture (or is marked by hand, as the examples that read it are).
    have = _have_shared_data()
    for item in items:
        if "shared_data" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.data)
        if item.get_closest_marker("data") and not have:
            item.add_marker(pytest.mark.skip(
                reason=f"needs the shared data, not found at {data_dir()} "
                       "(set CNNX_TEST_DATA)"))


@pytest.fixture
def shared_data():
    """The folder of shared real data (../shared/data or CNNX_TEST_DATA)."""
    return data_dir()


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


@pytest.fixture(params=["gemm", "direct", "winograd", "winograd4"])
def conv_algorithm(request):
    """Runs a test once with the im2col products, once with the direct kernels (forced
    for every layer, wherever the SIMD path has them) and once with Winograd F(2x2, 3x3)
    (forced for every 3x3 stride-1 forward pass, the input gradients through it too)."""
    before = _kernels.conv_algorithm()
    _kernels.set_conv_algorithm(request.param)
    yield request.param
    _kernels.set_conv_algorithm(before)

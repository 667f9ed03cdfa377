import os
import subprocess
import sys

import numpy as np
import pytest

import cnnx
from cnnx import _config, _kernels


def test_show_config_reports_versions_compiler_openmp_threads_simd(capsys):
    cnnx.show_config()
    text = capsys.readouterr().out
    for field in ("cnnx", "numpy", "compiler", "openmp", "openmp runtime", "threads",
                  "simd path"):
        assert field in text
    assert cnnx.__version__ in text and np.__version__ in text
    assert _kernels.simd_path() in text
    assert f"threads         {cnnx.get_num_threads()}" in text


def test_every_simd_path_this_cpu_has_can_be_selected():
    before = _config.simd_path()
    try:
        for name in ("avx512", "avx2", "generic", "neon", "scalar"):
            if _kernels.simd_available(name):
                assert _config.set_simd_path(name) == name
            else:
                with pytest.raises(ValueError, match="not available"):
                    _config.set_simd_path(name)
    finally:
        _config.set_simd_path(before)


def test_cnnx_simd_environment_forces_a_path():
    code = "import cnnx; print(cnnx._config.simd_path())"
    env_run = lambda value: subprocess.run(  # noqa: E731
        [sys.executable, "-c", code], env={**os.environ, "CNNX_SIMD": value},
        capture_output=True, text=True)
    fallback = "neon" if _kernels.simd_available("neon") else (
        "generic" if _kernels.simd_available("generic") else "scalar")
    done = env_run(fallback)
    assert done.returncode == 0 and done.stdout.strip() == fallback
    bad = env_run("sse9")
    assert bad.returncode != 0 and "CNNX_SIMD='sse9' is not available" in bad.stderr


def test_version_and_help_on_the_command_line(capsys):
    from cnnx.__main__ import main
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"cnnx {cnnx.__version__}"
    assert main(["config", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: cnnx config") and "simd path" not in out
    assert main(["config", "extra"]) == 2
    assert "takes no arguments" in capsys.readouterr().err
    assert main(["nonsense"]) == 2
    assert "unknown command 'nonsense'" in capsys.readouterr().err


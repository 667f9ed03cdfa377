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



def test_a_serial_build_runs_one_thread_and_says_so(monkeypatch, capsys):
    # The serial build itself is built and checked in tests/test_build.py (slow); this
    # runs the same branches of _config in this process.
    monkeypatch.setattr(_config, "openmp_enabled", lambda: False)
    monkeypatch.setattr(_config, "_serial_warned", False)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    with pytest.warns(RuntimeWarning, match="not the 3 that OMP_NUM_THREADS asks for"):
        assert _config._default_threads() == 1
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert _config._default_threads() == 1
    before = cnnx.get_num_threads()
    try:
        cnnx.set_num_threads(5)   # warned once already: no second warning
        assert cnnx.get_num_threads() == 1
    finally:
        monkeypatch.setattr(_config, "openmp_enabled", lambda: True)
        cnnx.set_num_threads(before)
    monkeypatch.setattr(_config, "openmp_enabled", lambda: False)
    assert _config._openmp_runtime().startswith("none")
    cnnx.show_config()
    assert "NO: built without OpenMP, the kernels run on ONE thread" in capsys.readouterr().out


def test_show_config_modes_and_runtime_fallback(monkeypatch):
    facts = cnnx.show_config("dicts")
    assert facts["threads"] == cnnx.get_num_threads() and "simd" in facts
    with pytest.raises(ValueError, match="`mode` must be 'stdout' or 'dicts'"):
        cnnx.show_config("yaml")
    import builtins
    real_open = builtins.open

    def no_proc(path, *args, **kwargs):
        if str(path) == "/proc/self/maps":
            raise OSError("no /proc here")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", no_proc)
    assert _config._openmp_runtime() in ("libgomp", "libomp", "vcomp")

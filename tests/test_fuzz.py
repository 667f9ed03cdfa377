"""The kernel fuzzing of fuzz_kernels.py, in a child process: a segmentation fault or an
abort there is reported here as a failure with its signal, and the rest of the run goes
on."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("hypothesis")
FUZZ = Path(__file__).resolve().parent / "fuzz_kernels.py"


def test_kernel_fuzzing_in_a_child_process(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "pytest", str(FUZZ), "-q", "-p", "no:cacheprovider",
         "-x", "--rootdir", str(FUZZ.parent)],
        capture_output=True, text=True, timeout=900, cwd=tmp_path,
        env={**os.environ, "PYTHONFAULTHANDLER": "1"})
    if done.returncode < 0:
        pytest.fail(f"the fuzzing process died of signal {-done.returncode}:\n"
                    f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-2000:]
    assert " passed" in done.stdout

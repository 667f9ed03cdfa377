"""How cnnx builds: loudly serial without OpenMP, and every cibuildwheel setting valid.

These build from the source tree beside the tests, so they need it (and Cython and
setuptools); from an installed wheel alone they skip."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
needs_source = pytest.mark.skipif(not (ROOT / "setup.py").exists(),
                                  reason="needs the source tree (setup.py)")


def _build_env(tmp_path, **extra):
    # A C compiler that cannot do OpenMP: an omp.h that refuses to compile shadows the
    # compiler's own (CPATH is searched before the system include folders).
    fake = tmp_path / "no-openmp"
    fake.mkdir(exist_ok=True)
    (fake / "omp.h").write_text("#error this compiler has no OpenMP\n")
    env = {k: v for k, v in os.environ.items() if k != "CNNX_ALLOW_SERIAL"}
    # -O0 (CNNX_DEBUG_BUILD): this build is about OpenMP, not speed, and compiles faster.
    return {**env, "CPATH": str(fake), "CNNX_DEBUG_BUILD": "1", **extra}


@pytest.mark.slow
@needs_source
def test_a_build_without_openmp_fails_unless_allowed_then_says_so(tmp_path):
    pytest.importorskip("Cython")
    pytest.importorskip("setuptools")
    if shutil.which(os.environ.get("CC", "cc")) is None:
        pytest.skip("no C compiler")
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".git", ".venv*", "build", "*.so", "_kernels.c", "__pycache__", "dist"))
    build = [sys.executable, "setup.py", "-q", "build_ext", "--inplace"]
    refused = subprocess.run(build, cwd=src, env=_build_env(tmp_path),
                             capture_output=True, text=True, timeout=600)
    assert refused.returncode != 0
    assert "cannot build OpenMP code" in refused.stderr
    assert "CNNX_ALLOW_SERIAL=1" in refused.stderr

    allowed = subprocess.run(build, cwd=src, capture_output=True, text=True, timeout=600,
                             env=_build_env(tmp_path, CNNX_ALLOW_SERIAL="1"))
    assert allowed.returncode == 0, allowed.stderr[-3000:]
    assert "the kernels will run on ONE thread" in allowed.stderr

    code = ("import warnings, cnnx\n"
            "warnings.simplefilter('always')\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    cnnx.set_num_threads(4)\n"
            "    cnnx.set_num_threads(3)\n"
            "print('WARNINGS', len(w), w[0].message if w else '')\n"
            "print('THREADS', cnnx.get_num_threads())\n"
            "cnnx.show_config()\n")
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(src / "src")})
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "WARNINGS 1 cnnx was built without OpenMP: its kernels run on one thread" in out
    assert "THREADS 1" in out
    assert "openmp          NO: built without OpenMP, the kernels run on ONE thread" in out
    assert "threads         1" in out


# -- the kernel table, declared for C (_simd.h) and for Cython (_kernels.pxd) -------------
SRC = Path(__file__).resolve().parents[1] / "src" / "cnnx"


def _c_declarations():
    """{typedef name: normalized parameters} and the table's [(type, field)] from
    _simd.h, with its per-dtype typedef macros (CNNX_*_TYPES) expanded for float and
    double."""
    import re
    text = re.sub(r"/\*.*?\*/", "", (SRC / "_simd.h").read_text(), flags=re.S)
    text = text.replace("\\\n", " ")
    for macro in re.findall(r"#define CNNX_\w+_TYPES\(T, S\)(.*)", text):
        for t, s in (("float", "f32"), ("double", "f64")):
            text += "\n" + re.sub(r"\bT\b", t, macro).replace("_##S", "_" + s)
    types = {m.group(1): _params(m.group(2)) for m in re.finditer(
        r"typedef void \(\*(cnnx_\w+)\)\(([^)]*)\);", text)}
    table = re.search(r"typedef struct \{(.*?)\} cnnx_kernel_table;", text, re.S).group(1)
    return types, _fields(table, ";")


def _params(text):
    return [" ".join(p.replace("*", " * ").split()) for p in text.split(",")]


def _fields(text, sep):
    """[(type, name)] of a struct body: one declaration per `sep`, names may share a type
    ("int a, b")."""
    out = []
    for decl in text.split(sep):
        first, *more = [part.replace("*", " * ").split() for part in decl.split(",")]
        if not first:
            continue
        kind = " ".join(first[:-1])
        out += [(kind, first[-1])] + [(kind, " ".join(m)) for m in more]
    return out


def test_the_cython_declarations_of_the_kernel_table_match_simd_h():
    # Cython cannot read a C header: _kernels.pxd declares the table again, in one place,
    # and this keeps the two the same (each function type's parameters, each field).
    import re
    c_types, c_table = _c_declarations()
    pxd = (SRC / "_kernels.pxd").read_text()
    pxd = re.sub(r"#.*", "", pxd)
    pxd_types = {m.group(1): _params(" ".join(m.group(2).split())) for m in re.finditer(
        r"ctypedef void \(\*(cnnx_\w+)\)\(([^)]*)\)", pxd)}
    assert pxd_types == c_types
    block = re.search(r"ctypedef struct cnnx_kernel_table:\n(.*?)\n\n", pxd, re.S).group(1)
    assert _fields(block, "\n") == c_table
    assert len(c_types) == 38 and len(c_table) == 49
    assert c_table[0] == ("const char *", "name") and c_table[3] == ("int", "mr_f32")

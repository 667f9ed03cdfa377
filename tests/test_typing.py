"""Type checkers see cnnx's lazily imported names: every name that `cnnx.__getattr__`
serves is also imported under TYPE_CHECKING, so pyright and mypy know that
`keras.Sequential(...)` is a class, not a module attribute of unknown type (basedpyright
reported "ModuleType is not callable" on the README's first example before)."""
import ast
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import cnnx


def test_every_lazy_name_is_imported_for_type_checkers():
    tree = ast.parse(inspect.getsource(cnnx))
    guarded = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for stmt in node.body:
                if isinstance(stmt, ast.ImportFrom):
                    guarded |= {alias.asname or alias.name for alias in stmt.names}
    lazy = cnnx._SUBMODULES | set(cnnx._NAMES)
    assert lazy <= guarded, sorted(lazy - guarded)
    assert lazy <= set(cnnx.__all__)


# The README's Python blocks, checked as a user's editor would check them. The first
# block is the module; each later block is the body of a function of its own, so that it
# sees the first block's names (keras, model, x_test) while reusing a name (`model`, as
# the functional example does) stays legal.
README = Path(__file__).resolve().parents[1] / "README.md"


def readme_as_module(tmp_path):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) >= 4, "the README's Python blocks were not found"
    parts = [blocks[0]]
    for i, block in enumerate(blocks[1:], 1):
        parts.append(f"def block_{i}() -> None:\n" + textwrap.indent(block, "    "))
    path = tmp_path / "readme_blocks.py"
    path.write_text("\n\n".join(parts))
    return path


@pytest.mark.slow
def test_readme_blocks_pass_mypy(tmp_path):
    api = pytest.importorskip("mypy.api", reason="mypy is not installed")
    # onnxruntime ships no type information: its import alone is left unchecked.
    out, err, status = api.run([str(readme_as_module(tmp_path)), "--no-incremental",
                                "--ignore-missing-imports", "--cache-dir", os.devnull])
    assert status == 0, out + err


@pytest.mark.slow
def test_readme_blocks_have_no_pyright_errors(tmp_path):
    here = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    pyright = shutil.which("basedpyright", path=here) or shutil.which("pyright", path=here)
    if pyright is None:
        pytest.skip("neither basedpyright nor pyright is installed")
    # Warnings (basedpyright's strict defaults: partially unknown types of NumPy
    # expressions) are not counted; errors are.
    done = subprocess.run([pyright, "--pythonpath", sys.executable, "--outputjson",
                           str(readme_as_module(tmp_path))], capture_output=True, text=True,
                          timeout=300)
    report = json.loads(done.stdout)
    errors = [d for d in report["generalDiagnostics"] if d["severity"] == "error"]
    assert errors == [], errors


@pytest.mark.slow
def test_mypy_sees_models_and_histories_not_any(tmp_path):
    api = pytest.importorskip("mypy.api", reason="mypy is not installed")
    code = tmp_path / "reveal.py"
    code.write_text(
        "import numpy as np\nimport cnnx as keras\n"
        "model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])\n"
        "history = model.fit(np.zeros((4, 3)), np.zeros((4, 2)), verbose=0)\n"
        "reveal_type(model)\nreveal_type(history)\n"
        "reveal_type(keras.models.load_model('m.keras'))\n")
    out, err, _ = api.run([str(code), "--no-incremental", "--cache-dir", os.devnull])
    revealed = re.findall(r'Revealed type is "([^"]+)"', out)
    assert revealed == ["cnnx.models.sequential.Sequential", "cnnx.callbacks.History",
                        "cnnx.models.functional.Model"], out + err

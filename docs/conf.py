"""Sphinx configuration of cnnx's documentation site.

The reference is generated from the docstrings of the installed cnnx (autodoc, NumPy and
Google sections through napoleon); the guides are Markdown (MyST). The tutorial pages show
what the course's examples print and draw: each build runs them (about 25 s, all eight)
into docs/_generated/, so the pictures are those of the code being documented.

    python -m sphinx -W --keep-going -b html docs docs/_build/html
    python -m sphinx -W --keep-going -b doctest docs docs/_build/doctest
"""
import os
import subprocess
import sys
from pathlib import Path

import cnnx

DOCS = Path(__file__).resolve().parent
EXAMPLES = DOCS.parent / "examples"
GENERATED = DOCS / "_generated"
NEEDS_DATA = {"07_lenet_mnist", "08_cats_vs_dogs"}   # read MNIST and the cats-and-dogs JPEGs

project = "cnnx"
author = "the cnnx developers"
release = version = cnnx.__version__
extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.intersphinx",
              "sphinx.ext.doctest", "myst_parser"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "_generated/*.md"]
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "undoc-members": False,
                           "imported-members": True}
# Links into NumPy's reference need its inventory from the network; CI builds offline,
# so they are made only when asked for (CNNX_DOCS_ONLINE=1).
intersphinx_mapping = ({"numpy": ("https://numpy.org/doc/stable/", None)}
                       if os.environ.get("CNNX_DOCS_ONLINE") == "1" else {})
default_role = "code"   # the docstrings write `name` for code, as Markdown does
html_theme = "alabaster"
html_title = f"cnnx {release}"
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]
# The guides link to repository files (README.md, benchmarks/) that are not pages.
suppress_warnings = ["myst.xref_missing"]

# Doctests run in a temporary folder (they write files). The getting-started page trains
# on Fashion-MNIST: where the course's data is, its files serve as the download cache;
# elsewhere those blocks are skipped (CI has the data).
doctest_global_setup = f"""
import os, tempfile
from pathlib import Path
import numpy as np
import cnnx
os.chdir(tempfile.mkdtemp(prefix="cnnx-doctest-"))
_fashion = Path({str(DOCS.parents[1] / "shared" / "data")!r})
if os.environ.get("CNNX_TEST_DATA"):
    _fashion = Path(os.environ["CNNX_TEST_DATA"])
_fashion = _fashion / "fashion-mnist"
HAVE_FASHION = _fashion.is_dir()
if HAVE_FASHION:
    os.environ["CNNX_HOME"] = os.path.abspath("datasets")
    os.makedirs("datasets")
    os.symlink(_fashion, "datasets/fashion-mnist")
"""


def _shared_data():
    env = os.environ.get("CNNX_TEST_DATA")
    path = Path(env) if env else DOCS.parents[1] / "shared" / "data"
    return path if path.is_dir() else None


def _run_examples(_app):
    """Run every course example once into _generated/<name>/ (kept between builds; delete
    the folder to redraw) and write the Markdown that its tutorial page includes: the
    pictures it drew and what it printed, or why it could not run here."""
    data = _shared_data()
    env = dict(os.environ, MPLBACKEND="Agg")
    if data:
        env["CNNX_TEST_DATA"] = str(data)
    for script in sorted(EXAMPLES.glob("0*.py")):
        out = GENERATED / script.stem
        page = GENERATED / f"{script.stem}.md"
        if page.exists():
            continue
        if data is None and script.stem in NEEDS_DATA:
            page.write_text(
                f"```{{note}}\nThis build had no course data (`../shared/data` or "
                f"`CNNX_TEST_DATA`), so `examples/{script.name}` did not run: run it "
                f"where the data is to see its output and pictures.\n```\n")
            continue
        out.mkdir(parents=True, exist_ok=True)
        done = subprocess.run([sys.executable, str(script), "--out", "."], env=env,
                              cwd=out, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise RuntimeError(f"docs: examples/{script.name} failed:\n"
                               f"{done.stderr[-3000:]}")
        lines = [f"What `python examples/{script.name}` printed when these pages were "
                 f"built:\n", "```text", done.stdout.rstrip(), "```\n"]
        for png in sorted(out.glob("*.png")):
            lines += [f"```{{image}} /_generated/{script.stem}/{png.name}", f":alt: {png.stem}",
                      ":width: 100%", "```\n"]
        page.write_text("\n".join(lines))


def _check_reference(_app, env):
    """Every public name of every module with a reference page is documented on some
    page (by identity: cnnx.Sequential is documented as cnnx.models.Sequential). A name
    served lazily by a module's __getattr__ is invisible to automodule; this catches it."""
    import importlib
    import inspect

    from sphinx.util import logging
    documented = set()
    for fullname in env.get_domain("py").objects:
        module, _, attr = fullname.rpartition(".")
        try:
            documented.add(id(getattr(importlib.import_module(module), attr)))
        except (ImportError, AttributeError, ValueError):
            pass   # methods and attributes: their class is what counts
    for page in sorted((DOCS / "api").glob("*.md")):
        for line in page.read_text().splitlines():
            if line.startswith(".. automodule:: "):
                module = importlib.import_module(line.split()[-1])
                for name in module.__all__:
                    obj = getattr(module, name)
                    if callable(obj) and not inspect.ismodule(obj) \
                            and id(obj) not in documented:
                        logging.getLogger("cnnx.docs").warning(
                            f"{module.__name__}.{name} is public but on no page "
                            f"(docs/api/{page.name})")


def setup(app):
    app.connect("builder-inited", _run_examples)
    app.connect("env-check-consistency", _check_reference)
    return {"parallel_read_safe": True}

"""Every public class and function of cnnx has a docstring of its own: help() on any of
them says what it does (a class does not borrow its base's). Their examples run, and
every public module has its page in the reference site, every example its tutorial page."""
import doctest
import importlib
import inspect
from pathlib import Path

import numpy as np
import pytest

import cnnx

PUBLIC = ["cnnx", "cnnx.layers", "cnnx.models", "cnnx.optimizers", "cnnx.optimizers.schedules",
          "cnnx.losses", "cnnx.metrics", "cnnx.callbacks", "cnnx.activations",
          "cnnx.initializers", "cnnx.regularizers", "cnnx.utils", "cnnx.backend", "cnnx.ops",
          "cnnx.datasets", "cnnx.preprocessing.image", "cnnx.viz", "cnnx.filters",
          "cnnx.export", "cnnx.testing", "cnnx.distributed", "cnnx.distributed.callbacks"]


def public_callables():
    for module_name in PUBLIC:
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name, None)
            if obj is None or inspect.ismodule(obj) or not callable(obj):
                continue
            yield f"{module_name}.{name}", obj


def test_every_public_callable_has_its_own_docstring():
    missing = []
    for name, obj in public_callables():
        doc = obj.__dict__.get("__doc__") if inspect.isclass(obj) else obj.__doc__
        if not (doc and doc.strip()):
            missing.append(name)
    assert missing == [], f"{len(missing)} without a docstring: {missing}"


@pytest.mark.parametrize("module_name", PUBLIC)
def test_every_public_module_says_what_it_holds(module_name):
    assert (importlib.import_module(module_name).__doc__ or "").strip()


# The reference site (docs/, built by Sphinx in CI) and the examples in the docstrings.
DOCS = Path(__file__).resolve().parents[1] / "docs"


# The optional package an example needs (the extras of pyproject.toml), by name prefix.
EXTRAS = {"cnnx.viz.": "matplotlib", "cnnx.utils.plot_model": "matplotlib",
          "cnnx.export.": "onnx", "cnnx.callbacks.TensorBoard": "tensorboard",
          "cnnx.utils.load_img": "PIL", "cnnx.utils.img_to_array": "PIL",
          "cnnx.utils.array_to_img": "PIL", "cnnx.utils.save_img": "PIL",
          "cnnx.utils.image_dataset_from_directory": "PIL",
          "cnnx.preprocessing.image.DirectoryIterator": "PIL",
          "cnnx.distributed.": "mpi4py"}


def test_docstring_examples_run(tmp_path, monkeypatch):
    # The same examples run again in CI's `sphinx -b doctest`; here they run in the
    # fast tier. They may write files: into tmp_path. An example whose extra is not
    # installed is not run (CI installs them all for the wheel's run).
    import importlib.util
    monkeypatch.chdir(tmp_path)
    finder, runner = doctest.DocTestFinder(recurse=False), doctest.DocTestRunner(
        optionflags=doctest.ELLIPSIS)
    seen, ran = set(), []
    for name, obj in public_callables():
        needs = next((m for prefix, m in EXTRAS.items() if name.startswith(prefix)), None)
        if id(obj) in seen or (needs and importlib.util.find_spec(needs) is None):
            continue
        seen.add(id(obj))
        for test in finder.find(obj, name, globs={"np": np, "cnnx": cnnx}):
            if test.examples:
                ran.append(name)
                runner.run(test)
    assert runner.summarize(verbose=False).failed == 0
    assert len(ran) >= 200, ran   # the examples are there (mutation: delete some)


def test_every_public_callable_shows_an_example():
    missing = sorted({name for name, obj in public_callables()
                      if ">>>" not in ((obj.__dict__.get("__doc__") if inspect.isclass(obj)
                                        else obj.__doc__) or "")})
    assert missing == [], missing


@pytest.mark.parametrize("module_name", PUBLIC)
def test_every_public_module_has_a_reference_page(module_name):
    page = DOCS / "api" / (module_name.replace(".", "_") + ".md")
    assert page.exists(), f"no reference page {page.name} for {module_name}"
    assert f"automodule:: {module_name}\n" in page.read_text()
    assert f"\n{page.stem}\n" in (DOCS / "api" / "index.md").read_text()


def test_every_example_has_a_tutorial_page():
    pages = {p.read_text() for p in (DOCS / "tutorial").glob("0*.md")}
    for script in sorted((DOCS.parent / "examples").glob("0*.py")):
        assert any(f"examples/{script.name}\n" in page
                   and f"_generated/{script.stem}.md\n" in page for page in pages), script


def test_every_layer_shows_an_example():
    from cnnx.layers import REGISTRY
    missing = sorted(cls.__name__ for cls in REGISTRY.classes()
                     if ">>>" not in (cls.__dict__.get("__doc__") or "")
                     and cls.__module__.startswith("cnnx.layers"))
    assert missing == [], missing

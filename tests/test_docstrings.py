"""Every public class and function of cnnx has a docstring of its own: help() on any of
them says what it does (a class does not borrow its base's)."""
import importlib
import inspect

import pytest

PUBLIC = ["cnnx", "cnnx.layers", "cnnx.models", "cnnx.optimizers", "cnnx.optimizers.schedules",
          "cnnx.losses", "cnnx.metrics", "cnnx.callbacks", "cnnx.activations",
          "cnnx.initializers", "cnnx.regularizers", "cnnx.utils", "cnnx.backend", "cnnx.ops",
          "cnnx.datasets", "cnnx.preprocessing.image", "cnnx.viz", "cnnx.filters",
          "cnnx.export", "cnnx.testing"]


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

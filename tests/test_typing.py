"""Type checkers see cnnx's lazily imported names: every name that `cnnx.__getattr__`
serves is also imported under TYPE_CHECKING, so pyright and mypy know that
`keras.Sequential(...)` is a class, not a module attribute of unknown type (basedpyright
reported "ModuleType is not callable" on the README's first example before)."""
import ast
import inspect

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

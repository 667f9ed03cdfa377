"""Keras arguments that cnnx accepts by name but does not implement.

Every such argument is either refused here when it is given a value other than its
default (so that a script never runs a different computation than it asked for), or
`del`eted where it is received, with the reason it changes nothing in cnnx.
"""

__all__ = ["refuse_unimplemented"]


def refuse_unimplemented(where, **given):
    """Raise NotImplementedError naming the first argument whose value is not its
    default. given: name=(value, default); a default of None also accepts an empty
    container (Keras treats both as "none")."""
    for name, (value, default) in given.items():
        if value is default:
            continue
        if default is None and isinstance(value, (dict, list, tuple)) and not value:
            continue
        if isinstance(value, type(default)) and value == default:
            continue
        raise NotImplementedError(
            f"{where}: `{name}` is not implemented in cnnx (received {value!r}); "
            f"leave it at its default ({default!r})")

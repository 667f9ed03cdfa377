"""Keras arguments that cnnx accepts by name but does not implement.

Every such argument is either refused here when it is given a value other than its
default (so that a script never runs a different computation than it asked for), or
`del`eted where it is received, with the reason it changes nothing in cnnx.
"""

import numbers
import warnings

__all__ = ["refuse_unimplemented", "keras3_arguments", "LAYER_RENAMES"]

# Keras 1 and 2 spellings of layer arguments, with their Keras 3 names.
LAYER_RENAMES = {
    "output_dim": "units", "nb_filter": "filters", "border_mode": "padding",
    "subsample": "strides", "init": "kernel_initializer",
    "W_regularizer": "kernel_regularizer", "b_regularizer": "bias_regularizer",
    "bias": "use_bias", "dim_ordering": "data_format", "p": "rate",
    "atrous_rate": "dilation_rate", "pool_length": "pool_size",
}
# Keras 1's names of data formats.
_DIM_ORDERING = {"tf": "channels_last", "th": "channels_first"}


def keras3_arguments(where, kwargs, renames=None, stacklevel=4, given=()):
    """kwargs with each Keras 1/2 name replaced by its Keras 3 one, each with a
    DeprecationWarning that names both. Giving both spellings (by name, or the new one
    by position: `given`) is an error."""
    renames = LAYER_RENAMES if renames is None else renames
    old = [name for name in kwargs if name in renames]
    if not old:
        return kwargs
    kwargs = dict(kwargs)
    for name in old:
        new = renames[name]
        if new in kwargs or new in given:
            raise TypeError(f"{where}: got both `{name}` (Keras 1/2) and `{new}`; pass "
                            f"`{new}` alone")
        value = kwargs.pop(name)
        if name == "dim_ordering":
            value = _DIM_ORDERING.get(value, value)
        warnings.warn(f"{where}: `{name}` is the Keras 1/2 spelling; use `{new}`",
                      DeprecationWarning, stacklevel=stacklevel)
        kwargs[new] = value
    return kwargs


def _number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


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
        if _number(value) and _number(default) and value == default:   # 0 for 0.0
            continue
        raise NotImplementedError(
            f"{where}: `{name}` is not implemented in cnnx (received {value!r}); "
            f"leave it at its default ({default!r})")

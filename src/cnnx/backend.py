"""cnnx.backend: the parts of `keras.backend` (Keras 2's `K`) that course scripts call.

    from cnnx import backend as K
    if K.image_data_format() == "channels_first": ...   # always "channels_last" in cnnx
"""
import numpy as np

__all__ = ["image_data_format", "set_image_data_format", "clear_session", "int_shape",
           "epsilon", "set_epsilon", "floatx", "set_floatx"]

_EPSILON = 1e-7
_FLOATX = "float32"


def image_data_format():
    """Always "channels_last": cnnx's images are NHWC.

    >>> cnnx.backend.image_data_format()
    'channels_last'
    """
    return "channels_last"


def set_image_data_format(data_format):
    """Accepts "channels_last"; "channels_first" is refused (cnnx computes in NHWC).

    >>> cnnx.backend.set_image_data_format("channels_last")   # the only one cnnx has
    >>> cnnx.backend.image_data_format()
    'channels_last'
    """
    if data_format != "channels_last":
        raise ValueError(f"set_image_data_format: cnnx is channels_last (NHWC) only, "
                         f"received {data_format!r}; transpose NCHW arrays with "
                         f"x.transpose(0, 2, 3, 1)")


def clear_session():
    """Restart the automatic layer names (conv2d, conv2d_1, ...), as Keras does.

    >>> cnnx.backend.clear_session()   # layer names start over
    >>> cnnx.layers.Dense(1).name
    'dense'
    """
    from .layers import clear_session as clear
    clear()


def int_shape(x):
    """The shape of an array, a symbolic tensor or a variable, as a tuple (None for the
    batch axis of a symbolic tensor).

    >>> cnnx.backend.int_shape(cnnx.Input((28, 28, 1)))
    (None, 28, 28, 1)
    """
    shape = getattr(x, "shape", None)
    if shape is None:
        raise TypeError(f"int_shape: expected an array or tensor, received "
                        f"{type(x).__name__}")
    return tuple(None if s is None else int(s) for s in shape)


def epsilon():
    """The fuzz factor (1e-7): the clipping of cnnx's probability-space losses.

    >>> cnnx.backend.epsilon()
    1e-07
    """
    return _EPSILON


def set_epsilon(value):
    """Keras lets scripts change epsilon; cnnx's losses clip at 1e-7, as Keras's do by
    default, so only that value is accepted.

    >>> cnnx.backend.set_epsilon(1e-7)   # the only value cnnx's losses use
    >>> cnnx.backend.epsilon()
    1e-07
    """
    if value != _EPSILON:
        raise ValueError(f"set_epsilon: cnnx's losses clip at {_EPSILON}, received "
                         f"{value!r}")


def floatx():
    """The default float type of new layers: "float32" (or what set_floatx chose).

    >>> cnnx.backend.floatx()
    'float32'
    """
    return _FLOATX


def set_floatx(value):
    """"float32" or "float64": the dtype of layers created afterwards without one.

    >>> cnnx.backend.set_floatx("float64")
    >>> cnnx.layers.Dense(1).dtype
    dtype('float64')
    >>> cnnx.backend.set_floatx("float32")
    """
    global _FLOATX
    if value not in ("float32", "float64"):
        raise ValueError(f"set_floatx: cnnx computes in float32 or float64, received "
                         f"{value!r}")
    _FLOATX = str(np.dtype(value))

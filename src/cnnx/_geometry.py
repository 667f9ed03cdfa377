"""Shape arithmetic shared by the layers, cnnx.ops and the NumPy reference."""
import numbers

__all__ = ["normalize_tuple", "normalize_padding", "conv_output_length", "padding_before",
           "MAX_EXTENT"]

# The largest stride, dilation or window: with every factor below 2**31, each product
# of two in the kernels' 64-bit index arithmetic stays below 2**62, and their sums below
# 2**63, so no index can overflow.
MAX_EXTENT = 2 ** 31 - 1


def normalize_tuple(value, n, name, where, allow_zero=False):
    """An int or a length-n sequence of ints, each >= 1 (or >= 0), as a tuple."""
    # The common cases first, without the ABC checks below (each layer call asks this
    # of its strides, dilations and pool sizes: at batch 1 it was 40% of an inference).
    low = 0 if allow_zero else 1
    if type(value) is int:
        if low <= value <= MAX_EXTENT:
            return (value,) * n
    elif type(value) is tuple and len(value) == n and all(
            type(v) is int and low <= v <= MAX_EXTENT for v in value):
        return value
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        values = (int(value),) * n
    else:
        try:
            values = tuple(value)
        except TypeError:
            raise TypeError(
                f"{where}: `{name}` must be an int or a tuple of {n} ints, "
                f"received {value!r}"
            ) from None
        if len(values) != n or not all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in values
        ):
            raise ValueError(
                f"{where}: `{name}` must be an int or a tuple of {n} ints, received {value!r}"
            )
        values = tuple(int(v) for v in values)
    low = 0 if allow_zero else 1
    if any(v < low for v in values):
        raise ValueError(f"{where}: `{name}` must be >= {low}, received {value!r}")
    if any(v > MAX_EXTENT for v in values):
        raise ValueError(f"{where}: `{name}` is too large: each value must be at most "
                         f"2**31 - 1, received {value!r}")
    return values


def normalize_padding(padding, where):
    if not isinstance(padding, str) or padding.lower() not in ("valid", "same"):
        raise ValueError(f"{where}: `padding` must be 'valid' or 'same', received {padding!r}")
    return padding.lower()


def conv_output_length(length, window, padding, stride, dilation=1):
    """Output length of a convolution or pooling along one axis, as in Keras."""
    span = (window - 1) * dilation + 1
    if padding == "same":
        return (length + stride - 1) // stride
    return max(0, (length - span) // stride + 1)


def padding_before(length, window, padding, stride, dilation=1):
    """Padding at the start of an axis. Under "same" the odd extra element of
    padding goes at the end (bottom or right), as in Keras and TensorFlow."""
    if padding == "valid":
        return 0
    out = conv_output_length(length, window, padding, stride, dilation)
    total = max((out - 1) * stride + (window - 1) * dilation + 1 - length, 0)
    return total // 2


def conv_transpose_output_length(length, window, padding, stride, output_padding=None,
                                 dilation=1):
    """Output length of a transposed convolution along one axis, as in Keras 3:
    "valid": (length - 1) * stride + span + output_padding (by default the extra
    max(span, stride) - span); "same": length * stride by default, else
    (length - 1) * stride + window % 2 + output_padding."""
    span = (window - 1) * dilation + 1
    if padding == "valid":
        extra = max(span, stride) - span if output_padding is None else output_padding
        return (length - 1) * stride + span + extra
    if output_padding is None:
        return length * stride
    return (length - 1) * stride + span % 2 + output_padding

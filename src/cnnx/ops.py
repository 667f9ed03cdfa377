"""cnnx.ops: the validated functional API, and the only door into the compiled kernels.

The names `conv`, `max_pool`, `average_pool`, `relu`, `sigmoid`, `softmax`,
`categorical_crossentropy` and `binary_crossentropy` follow keras.ops. The layers use
the functions with explicit gradients: `conv2d` / `conv2d_backward`, `max_pool2d` /
`max_pool2d_backward`, `average_pool2d` / `average_pool2d_backward`, `dense` /
`dense_backward`, `relu_backward`, `softmax_cross_entropy` and `sigmoid_cross_entropy`.
Each has a pure-NumPy twin of the same signature in `cnnx._reference`.

relu, sigmoid, softmax, flatten, conv, max_pool and average_pool are differentiable in
a Lambda layer: called on a traced tensor (see _tracing.py), they record themselves.

Every function checks its input and raises ValueError or TypeError naming the function,
the argument, what it expected and what it received. Arrays are converted to float32
(or kept float64), and made C-contiguous; layouts are channels_last (NHWC), conv
kernels (kh, kw, in, out), dense kernels (in, out). Functions accept `out=`, a preallocated
result (a tuple for several results, as NumPy's ufuncs), so that a caller can keep its
buffers across steps: on this VM a fresh multi-megabyte array costs about as much in
page faults as the kernel that fills it.
"""
import math
import threading
from typing import Any

import numpy as np

from . import _kernels, _memory, _tracing
from ._config import threads_for
from ._geometry import (
    conv_output_length,
    conv_transpose_output_length,
    normalize_padding,
    normalize_tuple,
    padding_before,
)

__all__ = [
    "conv", "max_pool", "average_pool", "relu", "sigmoid", "softmax", "flatten", "add",
    "all_finite",
    "categorical_crossentropy", "binary_crossentropy",
    "conv2d", "conv2d_backward", "conv2d_transpose", "conv2d_transpose_backward",
    "depthwise_conv2d", "depthwise_conv2d_backward", "group_normalization",
    "group_normalization_backward", "batch_normalization_moments", "batch_normalization",
    "batch_normalization_backward",
    "relu_backward", "max_pool2d", "max_pool2d_backward",
    "average_pool2d", "average_pool2d_backward", "global_average_pool2d", "dense",
    "dense_backward",
    "softmax_cross_entropy", "sigmoid_cross_entropy",
    "sgd_update", "adam_update", "rmsprop_update", "adagrad_update", "adamax_update",
    "adadelta_update", "lion_update", "nadam_update", "ftrl_update",
]

_ACTIVATIONS = (None, "linear", "relu")


# ---------------------------------------------------------------------------------
# Checks and conversions
# ---------------------------------------------------------------------------------

class _Workspace(threading.local):
    """Scratch memory for the kernels, one per Python thread, grown and kept."""

    def __init__(self):
        self.buffer = np.empty(0, np.uint8)

    def __call__(self, nbytes):
        if self.buffer.size < nbytes:
            self.buffer = _memory.empty(max(nbytes, self.buffer.size * 3 // 2), np.uint8)
        return self.buffer


_workspace = _Workspace()

_LAYOUT = {
    4: "(batch, height, width, channels)",
    2: "(batch, features)",
    1: "(features,)",
}


def _array(x, name, where, ndim=None):
    """x as a float32/float64 ndarray, checked for a numeric dtype and its ndim."""
    if not isinstance(x, np.ndarray):
        try:
            x = np.asarray(x)
        except Exception as e:  # ragged lists and the like
            raise TypeError(f"{where}: `{name}` must be array-like, received {type(x).__name__}"
                            f" ({e})") from None
    kind = x.dtype.kind
    if kind == "f" and x.dtype.itemsize in (4, 8):
        pass
    elif kind in "biuf":
        x = x.astype(np.float32)
    else:
        raise TypeError(f"{where}: `{name}` must hold real numbers (float32 or float64), "
                        f"received dtype {x.dtype}")
    if ndim is not None and x.ndim != ndim:
        layout = _LAYOUT.get(ndim, "")
        raise ValueError(f"{where}: `{name}` must be {ndim}-D {layout}, "
                         f"received shape {x.shape}")
    return x


def _common(*arrays):
    """Cast the arrays to one dtype (float64 if any is) and make them C-contiguous."""
    dtype = np.float32
    for a in arrays:   # (a loop: a generator was a microsecond of every call)
        if a is not None and a.dtype == np.float64:
            dtype = np.float64
            break
    return [None if a is None else np.ascontiguousarray(a, dtype=dtype) for a in arrays]


def _output(out, shape, dtype, where, reads=(), same_ok=()):
    """out, checked, or a new array. out must not overlap any array in `reads` (what the
    kernel reads while it writes out): an overlap would read values already overwritten.
    An elementwise kernel may write over one of its inputs exactly (`same_ok`)."""
    if out is None:
        return np.empty(shape, dtype)
    if not isinstance(out, np.ndarray) or out.shape != tuple(shape) or out.dtype != dtype \
            or not out.flags.c_contiguous or not out.flags.writeable:
        got = (f"shape {out.shape}, dtype {out.dtype}, "
               f"{'C-contiguous' if out.flags.c_contiguous else 'not contiguous'}"
               if isinstance(out, np.ndarray) else type(out).__name__)
        raise ValueError(f"{where}: `out` must be a writeable C-contiguous array of shape "
                         f"{tuple(shape)} and dtype {np.dtype(dtype)}, received {got}")
    for a in (*reads, *same_ok):
        if a is None or not np.may_share_memory(out, a):
            continue
        if any(b is a for b in same_ok) and _same_memory(out, a):
            continue
        raise ValueError(f"{where}: `out` overlaps an input array; pass a separate buffer"
                         f"{' (or the input itself)' if same_ok else ''}")
    return out


def _same_memory(a, b):
    """Whether a and b are the same elements in the same layout."""
    return (a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
            and a.shape == b.shape and a.strides == b.strides and a.dtype == b.dtype)


def _outputs(out, specs, where, reads=()):
    """Outputs of a function with several results. `out` is None or a tuple with one
    entry per result (None: allocate), as for NumPy ufuncs; specs gives each result's
    (shape, dtype), or None for a result that is not computed. No output may overlap
    another, nor any array in `reads`."""
    if out is None:
        out = (None,) * len(specs)
    if not isinstance(out, tuple) or len(out) != len(specs):
        raise ValueError(f"{where}: `out` must be a tuple of {len(specs)} arrays or None, "
                         f"received {type(out).__name__}"
                         f"{' of length %d' % len(out) if isinstance(out, tuple) else ''}")
    done = []
    for o, spec in zip(out, specs):
        done.append(None if spec is None else
                    _output(o, spec[0], spec[1], where, reads=(*reads, *done)))
    return done


def _backward_outputs(out, x, kernel, dy, units, use_bias, input_grad, where,
                      relu_output=None):
    """(dx, dkernel, dbias) buffers of a conv or dense backward, and whether there is
    nothing to sum (an empty batch, or an output with no pixels): then every gradient is
    already zero, as the empty sums that they are."""
    dx, dkernel, dbias = _outputs(out, [(x.shape, x.dtype) if input_grad else None,
                                        (kernel.shape, x.dtype),
                                        ((units,), x.dtype) if use_bias else None], where,
                                  reads=(x, kernel, dy, relu_output))
    empty = x.size == 0 or dy.size == 0
    if empty:
        for grad in (dx, dkernel, dbias):
            if grad is not None:
                grad.fill(0)
    return dx, dkernel, dbias, empty


def _activation(activation, where):
    if activation not in _ACTIVATIONS:
        raise ValueError(f"{where}: `activation` must be None, 'linear' or 'relu' "
                         f"(the fused epilogues), received {activation!r}")
    return activation == "relu"


def _bias(bias, size, where):
    if bias is None:
        return None
    bias = _array(bias, "bias", where, ndim=1)
    if bias.shape[0] != size:
        raise ValueError(f"{where}: `bias` must have shape ({size},), "
                         f"received shape {bias.shape}")
    return bias


def _pool_geometry(x, pool_size, strides, padding, where):
    pool = normalize_tuple(pool_size, 2, "pool_size", where)
    strides = pool if strides is None else normalize_tuple(strides, 2, "strides", where)
    padding = normalize_padding(padding, where)
    H, W = x.shape[1:3]
    if padding == "valid" and (pool[0] > H or pool[1] > W):
        raise ValueError(f"{where}: `pool_size` {pool} is larger than the input's "
                         f"height and width {(H, W)} under padding='valid'")
    oh = conv_output_length(H, pool[0], padding, strides[0])
    ow = conv_output_length(W, pool[1], padding, strides[1])
    ph = padding_before(H, pool[0], padding, strides[0])
    pw = padding_before(W, pool[1], padding, strides[1])
    return pool, strides, (oh, ow), (ph, pw)


def _conv_geometry(x, kernel, strides, padding, dilation_rate, where):
    strides = normalize_tuple(strides, 2, "strides", where)
    dilation = normalize_tuple(dilation_rate, 2, "dilation_rate", where)
    padding = normalize_padding(padding, where)
    if kernel.shape[2] != x.shape[3]:
        raise ValueError(f"{where}: the kernel expects {kernel.shape[2]} input channels "
                         f"(kernel shape {kernel.shape} is (kh, kw, in, out)), but the "
                         f"input has {x.shape[3]} (input shape {x.shape})")
    if min(kernel.shape) < 1:
        raise ValueError(f"{where}: `kernel` must have no zero-sized axis, "
                         f"received shape {kernel.shape}")
    H, W = x.shape[1:3]
    kh, kw = kernel.shape[:2]
    span = ((kh - 1) * dilation[0] + 1, (kw - 1) * dilation[1] + 1)
    if padding == "valid" and (span[0] > H or span[1] > W):
        raise ValueError(f"{where}: the kernel's dilated size {span} is larger than the "
                         f"input's height and width {(H, W)} under padding='valid'")
    oh = conv_output_length(H, kh, padding, strides[0], dilation[0])
    ow = conv_output_length(W, kw, padding, strides[1], dilation[1])
    ph = padding_before(H, kh, padding, strides[0], dilation[0])
    pw = padding_before(W, kw, padding, strides[1], dilation[1])
    return strides, dilation, (oh, ow), (ph, pw)


def _check_data_format(data_format, where):
    if data_format not in (None, "channels_last"):
        raise ValueError(f"{where}: only data_format='channels_last' is supported, "
                         f"received {data_format!r}")


def _check_grad(dy, shape, where, name="dy"):
    if dy.shape != tuple(shape):
        raise ValueError(f"{where}: `{name}` must have the forward output's shape "
                         f"{tuple(shape)}, received {dy.shape}")


# ---------------------------------------------------------------------------------
# Convolution
# ---------------------------------------------------------------------------------

def conv2d(x, kernel, bias=None, strides=1, padding="valid", dilation_rate=1,
           activation=None, out=None):
    """2-D convolution (cross-correlation, no kernel flip), NHWC, with an optional bias
    and a fused ReLU. x: (N, H, W, C); kernel: (kh, kw, C, F); returns (N, OH, OW, F).

    >>> x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    >>> k = np.ones((2, 2, 1, 1), np.float32)
    >>> b = np.array([-20.0], np.float32)
    >>> cnnx.ops.conv2d(x, k, bias=b, activation="relu")[0, :, :, 0]
    array([[ 0.,  0.,  0.],
           [ 6., 10., 14.],
           [22., 26., 30.]], dtype=float32)
    """
    where = "conv2d"
    x = _array(x, "inputs", where, ndim=4)
    kernel = _array(kernel, "kernel", where, ndim=4)
    relu_ = _activation(activation, where)
    bias = _bias(bias, kernel.shape[3], where)
    x, kernel, bias = _common(x, kernel, bias)
    strides, dilation, (oh, ow), (ph, pw) = _conv_geometry(
        x, kernel, strides, padding, dilation_rate, where)
    y = _output(out, (x.shape[0], oh, ow, kernel.shape[3]), x.dtype, where,
                reads=(x, kernel, bias))
    if y.size:
        work = y.size * kernel.shape[0] * kernel.shape[1] * kernel.shape[2]
        _kernels.conv2d(x, kernel, bias, y, strides[0], strides[1], ph, pw,
                        dilation[0], dilation[1], relu_, threads_for(work), _workspace)
    return y


def _relu_output(relu_output, dy, where):
    """The `relu_output` of a fused backward (None passes), checked against dy."""
    if relu_output is None:
        return None
    relu_output = np.ascontiguousarray(_array(relu_output, "relu_output", where,
                                              ndim=dy.ndim))
    if relu_output.shape != dy.shape or relu_output.dtype != dy.dtype:
        raise ValueError(f"{where}: `relu_output` must match dy, expected shape "
                         f"{dy.shape} and dtype {dy.dtype}, received shape "
                         f"{relu_output.shape} and dtype {relu_output.dtype}")
    return relu_output


def conv2d_backward(x, kernel, dy, strides=1, padding="valid", dilation_rate=1,
                    use_bias=True, input_grad=True, out=None, relu_output=None):
    """Gradients of conv2d given dy = dL/dy.
    Returns (dx, dkernel, dbias); dx is None when input_grad is False (a first layer),
    dbias is None when use_bias is False. `out`: optional (dx, dkernel, dbias) buffers.
    Without `relu_output` the conv had no activation. With it (the conv's output after
    a fused ReLU), dy is first masked where relu_output <= 0, as relu_backward does; the
    kernel gradient of a first layer does that in the same pass.

    >>> x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    >>> k = np.ones((2, 2, 1, 1), np.float32)
    >>> dx, dk, db = cnnx.ops.conv2d_backward(x, k, np.ones((1, 3, 3, 1), np.float32))
    >>> dx[0, :, :, 0]   # how many windows each pixel is in
    array([[1., 2., 2., 1.],
           [2., 4., 4., 2.],
           [2., 4., 4., 2.],
           [1., 2., 2., 1.]], dtype=float32)
    >>> db
    array([9.], dtype=float32)
    """
    where = "conv2d_backward"
    x = _array(x, "inputs", where, ndim=4)
    kernel = _array(kernel, "kernel", where, ndim=4)
    dy = _array(dy, "dy", where, ndim=4)
    x, kernel, dy = _common(x, kernel, dy)
    strides, dilation, (oh, ow), (ph, pw) = _conv_geometry(
        x, kernel, strides, padding, dilation_rate, where)
    _check_grad(dy, (x.shape[0], oh, ow, kernel.shape[3]), where)
    relu_output = _relu_output(relu_output, dy, where)
    if relu_output is not None and input_grad:  # dx needs the masked dy too: mask up front
        dy, relu_output = relu_backward(dy, relu_output), None
    dx, dkernel, dbias, empty = _backward_outputs(out, x, kernel, dy, kernel.shape[3],
                                                  use_bias, input_grad, where, relu_output)
    if empty:
        return dx, dkernel, dbias
    work = dy.size * kernel.shape[0] * kernel.shape[1] * kernel.shape[2]
    nthreads = threads_for(work)
    _kernels.conv2d_kernel_grad(x, dy, dkernel, dbias, relu_output, strides[0], strides[1],
                                ph, pw, dilation[0], dilation[1], nthreads, _workspace)
    if input_grad:
        _input_grad(dy, kernel, dx, strides, ph, pw, dilation, nthreads)
    return dx, dkernel, dbias


def _input_grad(dy, kernel, dx, strides, ph, pw, dilation, nthreads):
    """dx of a convolution. A pointwise one's (1x1, stride 1, no padding) is dy times the
    kernel transposed, by the dense kernels, as its forward pass
    (_kernels.pointwise_wanted). At stride 1 it is also the forward convolution of dy with
    the kernel flipped in space and transposed in channels, padded by (k - 1) * d - p
    before: where the flipped convolution maps no more channels in than out (F <= C) or
    the kernel is 1x1, that runs on the forward's faster kernels (W5's 16-channel
    layers: 1.98x, 32 and 64 channels 1.05-1.14x, a 1x1 kernel 1.25x; where F > C it
    ran 0.77-0.97x, so col2im stays there, unless that forward pass runs Winograd: W4's
    16 x 16 64 -> 128 layer 11.9 -> 4.8 ms, W1's 13 x 13 32 -> 64 4.2 -> 3.6)."""
    kh, kw, c, f = kernel.shape
    if _kernels.pointwise_wanted(kh, kw, strides[0], strides[1], ph, pw):
        _kernels.dense_input_grad(dy.reshape(-1, f), kernel.reshape(c, f),
                                  dx.reshape(-1, c), nthreads, _workspace)
        return
    fph, fpw = (kh - 1) * dilation[0] - ph, (kw - 1) * dilation[1] - pw
    if strides == (1, 1) and (f <= c or kh == kw == 1 or _kernels.winograd_wanted(
            dy.shape[0], dy.shape[1], dy.shape[2], f, dx.shape[1], dx.shape[2], c, kh, kw,
            fph, fpw, dilation[0], dilation[1], dy.dtype == np.float32)):
        flipped = np.ascontiguousarray(kernel[::-1, ::-1].transpose(0, 1, 3, 2))
        _kernels.conv2d(dy, flipped, None, dx, 1, 1, fph, fpw, dilation[0], dilation[1],
                        False, nthreads, _workspace)
    else:
        _kernels.conv2d_input_grad(dy, kernel, dx, strides[0], strides[1], ph, pw,
                                   dilation[0], dilation[1], nthreads, _workspace)


def _transpose_geometry(x, kernel, strides, padding, output_padding, dilation_rate, where):
    """The transposed convolution of x (N, H, W, C) with kernel (kh, kw, F, C) is the
    input gradient of the convolution that maps (N, OH, OW, F) to x's shape: its output
    size (Keras's rule), and that convolution's strides, dilation and padding."""
    if kernel.shape[3] != x.shape[3]:
        raise ValueError(f"{where}: the kernel expects {kernel.shape[3]} input channels "
                         f"(kernel shape {kernel.shape} is (kh, kw, filters, in)), but the "
                         f"input has {x.shape[3]} (input shape {x.shape})")
    strides = normalize_tuple(strides, 2, "strides", where)
    dilation = normalize_tuple(dilation_rate, 2, "dilation_rate", where)
    padding = normalize_padding(padding, where)
    if output_padding is not None:
        output_padding = normalize_tuple(output_padding, 2, "output_padding", where,
                                         allow_zero=True)
        if any(p >= s for p, s in zip(output_padding, strides)):
            raise ValueError(f"{where}: `output_padding` {output_padding} must be smaller "
                             f"than `strides` {strides}")
    out = tuple(conv_transpose_output_length(
        x.shape[1 + i], kernel.shape[i], padding, strides[i],
        None if output_padding is None else output_padding[i], dilation[i])
        for i in range(2))
    probe = np.broadcast_to(np.zeros((), x.dtype), (x.shape[0],) + out + (kernel.shape[2],))
    _, _, back, pads = _conv_geometry(probe, kernel, strides, padding, dilation, where)
    if back != tuple(x.shape[1:3]):
        raise ValueError(f"{where}: an output of height and width {out} does not map back "
                         f"to the input's {tuple(x.shape[1:3])} under padding={padding!r}, "
                         f"strides={strides}; choose another output_padding")
    return strides, dilation, out, pads


def conv2d_transpose(x, kernel, bias=None, strides=1, padding="valid", output_padding=None,
                     dilation_rate=1, out=None):
    """Transposed 2-D convolution, NHWC, as Keras's Conv2DTranspose: the gradient of
    conv2d with respect to its input, x (N, H, W, C) playing dy and kernel (kh, kw,
    filters, C) the convolution's kernel. Returns (N, OH, OW, filters).

    >>> x = np.ones((1, 2, 2, 1), np.float32)
    >>> k = np.ones((2, 2, 1, 1), np.float32)
    >>> cnnx.ops.conv2d_transpose(x, k, strides=2)[0, :, :, 0]
    array([[1., 1., 1., 1.],
           [1., 1., 1., 1.],
           [1., 1., 1., 1.],
           [1., 1., 1., 1.]], dtype=float32)
    """
    where = "conv2d_transpose"
    x = _array(x, "inputs", where, ndim=4)
    kernel = _array(kernel, "kernel", where, ndim=4)
    bias = _bias(bias, kernel.shape[2], where)
    x, kernel, bias = _common(x, kernel, bias)
    strides, dilation, (oh, ow), (ph, pw) = _transpose_geometry(
        x, kernel, strides, padding, output_padding, dilation_rate, where)
    y = _output(out, (x.shape[0], oh, ow, kernel.shape[2]), x.dtype, where,
                reads=(x, kernel, bias))
    if y.size:
        if x.size:
            work = x.size * kernel.shape[0] * kernel.shape[1] * kernel.shape[2]
            _kernels.conv2d_input_grad(x, kernel, y, strides[0], strides[1], ph, pw,
                                       dilation[0], dilation[1], threads_for(work),
                                       _workspace)
        else:
            y[...] = 0
        if bias is not None:
            y += bias
    return y


def conv2d_transpose_backward(x, kernel, dy, strides=1, padding="valid", output_padding=None,
                              dilation_rate=1, use_bias=True, input_grad=True, out=None):
    """Gradients of conv2d_transpose given dy: (dx, dkernel, dbias). dx is the forward
    convolution of dy with the kernel, dkernel that convolution's kernel gradient (dy its
    input, x its output gradient); dx None when input_grad is False, dbias None when
    use_bias is False. `out`: optional (dx, dkernel, dbias) buffers.

    >>> x = np.ones((1, 2, 2, 1), np.float32)
    >>> k = np.ones((2, 2, 1, 1), np.float32)
    >>> dy = np.ones((1, 4, 4, 1), np.float32)
    >>> dx, dk, db = cnnx.ops.conv2d_transpose_backward(x, k, dy, strides=2)
    >>> dx[0, :, :, 0], db
    (array([[4., 4.],
           [4., 4.]], dtype=float32), array([16.], dtype=float32))
    """
    where = "conv2d_transpose_backward"
    x = _array(x, "inputs", where, ndim=4)
    kernel = _array(kernel, "kernel", where, ndim=4)
    dy = _array(dy, "dy", where, ndim=4)
    x, kernel, dy = _common(x, kernel, dy)
    strides, dilation, (oh, ow), _ = _transpose_geometry(
        x, kernel, strides, padding, output_padding, dilation_rate, where)
    _check_grad(dy, (x.shape[0], oh, ow, kernel.shape[2]), where)
    out = (None, None, None) if out is None else out
    if not isinstance(out, tuple) or len(out) != 3:
        raise ValueError(f"{where}: `out` must be a tuple (dx, dkernel, dbias)")
    dx = conv2d(dy, kernel, None, strides, padding, dilation, out=out[0]) if input_grad \
        else None
    _, dkernel, _ = conv2d_backward(dy, kernel, x, strides, padding, dilation,
                                    use_bias=False, input_grad=False,
                                    out=(None, out[1], None))
    dbias = None
    if use_bias:
        dbias = _output(out[2], (kernel.shape[2],), x.dtype, where, reads=(dy,))
        np.sum(dy, axis=(0, 1, 2), out=dbias)
    return dx, dkernel, dbias


def _depthwise_operands(x, kernel):
    """x and the kernel as the compiled kernels take them: with depth_multiplier M > 1,
    each channel of x repeated M times (output channel c * M + m, Keras's order) and the
    kernel (kh, kw, C, M) seen as (kh, kw, C * M)."""
    kh, kw, c, m = kernel.shape
    if m > 1:
        x = np.repeat(x, m, axis=3)
    return np.ascontiguousarray(x), np.ascontiguousarray(kernel).reshape(kh, kw, c * m)


def depthwise_conv2d(x, kernel, bias=None, strides=1, padding="valid", dilation_rate=1,
                     activation=None, out=None):
    """Depthwise 2-D convolution, NHWC: each input channel c convolved with its own
    filters kernel[:, :, c, m] (kernel (kh, kw, C, M), M the depth multiplier), giving
    output channel c * M + m; an optional bias of C * M values and a fused ReLU. Returns
    (N, OH, OW, C * M).

    >>> x = np.ones((1, 3, 3, 2), np.float32)
    >>> k = np.ones((3, 3, 2, 1), np.float32)
    >>> k[:, :, 1] = 2.0   # channel 1 has its own kernel
    >>> cnnx.ops.depthwise_conv2d(x, k)
    array([[[[ 9., 18.]]]], dtype=float32)
    """
    where = "depthwise_conv2d"
    x = _array(x, "inputs", where, ndim=4)
    kernel = _array(kernel, "kernel", where, ndim=4)
    relu_ = _activation(activation, where)
    bias = _bias(bias, kernel.shape[2] * kernel.shape[3], where)
    x, kernel, bias = _common(x, kernel, bias)
    strides, dilation, (oh, ow), (ph, pw) = _conv_geometry(
        x, kernel, strides, padding, dilation_rate, where)
    channels = kernel.shape[2] * kernel.shape[3]
    y = _output(out, (x.shape[0], oh, ow, channels), x.dtype, where, reads=(x, kernel, bias))
    if y.size:
        xr, k = _depthwise_operands(x, kernel)
        _kernels.depthwise_conv2d(xr, k, bias, y, strides[0], strides[1], ph, pw,
                                  dilation[0], dilation[1], relu_,
                                  threads_for(y.size * k.shape[0] * k.shape[1]))
    return y


def depthwise_conv2d_backward(x, kernel, dy, strides=1, padding="valid", dilation_rate=1,
                              use_bias=True, input_grad=True, out=None):
    """Gradients of depthwise_conv2d given dy: (dx, dkernel, dbias), dx None when
    input_grad is False, dbias None when use_bias is False; `out`: optional buffers.
    The kernel and bias gradients sum the batch in fixed chunks (the same bits for any
    thread count).

    >>> x = np.ones((1, 3, 3, 2), np.float32)
    >>> k = np.ones((3, 3, 2, 1), np.float32)
    >>> dy = np.ones((1, 1, 1, 2), np.float32)
    >>> dx, dk, db = cnnx.ops.depthwise_conv2d_backward(x, k, dy)
    >>> dk.shape, db
    ((3, 3, 2, 1), array([1., 1.], dtype=float32))
    """
    where = "depthwise_conv2d_backward"
    x = _array(x, "inputs", where, ndim=4)
    kernel = _array(kernel, "kernel", where, ndim=4)
    dy = _array(dy, "dy", where, ndim=4)
    x, kernel, dy = _common(x, kernel, dy)
    strides, dilation, (oh, ow), (ph, pw) = _conv_geometry(
        x, kernel, strides, padding, dilation_rate, where)
    m = kernel.shape[3]
    channels = kernel.shape[2] * m
    _check_grad(dy, (x.shape[0], oh, ow, channels), where)
    dy = np.ascontiguousarray(dy)
    out = (None, None, None) if out is None else out
    if not isinstance(out, tuple) or len(out) != 3:
        raise ValueError(f"{where}: `out` must be a tuple (dx, dkernel, dbias)")
    dx = (_output(out[0], x.shape, x.dtype, where, reads=(x, kernel, dy))
          if input_grad else None)
    dkernel = _output(out[1], kernel.shape, x.dtype, where, reads=(x, kernel, dy))
    dbias = (_output(out[2], (channels,), x.dtype, where, reads=(x, kernel, dy))
             if use_bias else None)
    xr, k = _depthwise_operands(x, kernel)
    # With a multiplier, the repeated channels' input gradients, summed back per input
    # channel after.
    dxr = np.empty(xr.shape, x.dtype) if input_grad and m > 1 else dx
    _kernels.depthwise_conv2d_grad(xr, dy, k, dkernel.reshape(k.shape), dbias, dxr,
                                   strides[0], strides[1], ph, pw, dilation[0], dilation[1],
                                   threads_for(dy.size * k.shape[0] * k.shape[1]), _workspace)
    if input_grad and m > 1:
        # Strided adds, in multiplier order (a reduction over a short last axis is
        # many times slower).
        np.copyto(dx, dxr[..., 0::m])
        for j in range(1, m):
            dx += dxr[..., j::m]
    return dx, dkernel, dbias


def conv(inputs, kernel, strides=1, padding="valid", dilation_rate=1, data_format=None):
    """keras.ops.conv for 2-D NHWC inputs: the cross-correlation of images with a bank
    of kernels (the kernel is not flipped, as in every deep-learning library), no bias.

    Parameters
    ----------
    inputs : array (N, H, W, C), float32 or float64
    kernel : array (kh, kw, C, F), the same dtype
    strides, dilation_rate : int or pair of ints (not both above 1)
    padding : "valid" (the kernel stays inside the image) or "same" (zeros around it,
        output H/strides x W/strides, rounded up)

    Returns
    -------
    array (N, OH, OW, F) of the inputs' dtype.

    Examples
    --------
    A 2x2 kernel of ones sums each 2x2 window:

    >>> x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    >>> cnnx.ops.conv(x, np.ones((2, 2, 1, 1), np.float32))[0, :, :, 0]
    array([[10., 14., 18.],
           [26., 30., 34.],
           [42., 46., 50.]], dtype=float32)
    """
    _check_data_format(data_format, "conv")
    if _tracing.is_symbol(inputs):
        return _traced("conv", inputs, (kernel,), dict(
            strides=strides, padding=padding, dilation_rate=dilation_rate),
            lambda x: conv2d(x, kernel, None, strides, padding, dilation_rate))
    return conv2d(inputs, kernel, None, strides, padding, dilation_rate)


def _traced(op, x, constants, params, probe=None) -> Any:
    """x is a Symbol (a Lambda layer is tracing its function, see _tracing.py): record
    the op; its output shape is probed on one zero sample. Typed Any: only a Lambda's
    function ever receives the Symbol, and a type checker reading a user's code should see
    the arrays the public functions return, not array | Symbol."""
    if any(_tracing.is_symbol(c) for c in constants):
        raise TypeError(f"{op}: only its first argument may be a traced tensor")
    shape = x.shape
    if probe is not None:
        shape = (x.shape[0],) + probe(np.zeros((1,) + tuple(x.shape[1:]), np.float32)).shape[1:]
    return _tracing.record(op, (x,) + tuple(constants), params, shape)


# ---------------------------------------------------------------------------------
# Activations
# ---------------------------------------------------------------------------------

def relu(x, out=None):
    """max(x, 0), elementwise; NaN passes through. `out` may be `x` (in place).

    >>> cnnx.ops.relu(np.array([-1.0, 0.0, 2.0]))
    array([0., 0., 2.])
    """
    if _tracing.is_symbol(x) and out is None:
        return _traced("relu", x, (), {})
    x = np.ascontiguousarray(_array(x, "x", "relu"))
    y = _output(out, x.shape, x.dtype, "relu", same_ok=(x,))
    _kernels.relu(x.reshape(-1), y.reshape(-1), threads_for(x.size))
    return y


def all_finite(x):
    """Whether every value of the array x is finite (no NaN, no infinity). Float32 and
    float64 arrays in C order are read in one pass with no temporary array (the models
    check each input batch this way); other arrays go through NumPy.

    >>> cnnx.ops.all_finite(np.array([1.0, 2.0])), cnnx.ops.all_finite(np.array([1.0, np.inf]))
    (True, False)
    """
    x = np.asarray(x)
    if x.dtype.char in "fd" and x.flags.c_contiguous:
        return _kernels.all_finite(x)
    return bool(np.isfinite(x).all())


def add(x1, x2, activation=None, out=None):
    """x1 + x2 elementwise, for two arrays of the same shape (no broadcasting), with an
    optional fused ReLU; one pass, on the threads where the arrays are large (the sum of
    a residual connection, and the ReLU after it). `out` may be x1 or x2 (in place).

    >>> cnnx.ops.add(np.array([1.0, -3.0]), np.array([2.0, 1.0]), activation="relu")
    array([3., 0.])
    """
    where = "add"
    x1, x2 = _common(_array(x1, "x1", where), _array(x2, "x2", where))
    if x1.shape != x2.shape:
        raise ValueError(f"{where}: `x1` and `x2` must have the same shape, received "
                         f"{x1.shape} and {x2.shape}")
    relu_ = _activation(activation, where)
    y = _output(out, x1.shape, x1.dtype, where, same_ok=(x1, x2))
    _kernels.add(x1.reshape(-1), x2.reshape(-1), y.reshape(-1), relu_, threads_for(x1.size))
    return y


def relu_backward(dy, x, out=None):
    """dy where x > 0, else 0. `x` may be ReLU's input or its output; `out` may be dy.

    >>> cnnx.ops.relu_backward(np.array([5.0, 5.0]), np.array([-1.0, 2.0]))
    array([0., 5.])
    """
    where = "relu_backward"
    dy, x = _common(_array(dy, "dy", where), _array(x, "x", where))
    _check_grad(dy, x.shape, where)
    dx = _output(out, dy.shape, dy.dtype, where, same_ok=(dy, x))
    _kernels.relu_grad(dy.reshape(-1), x.reshape(-1), dx.reshape(-1), threads_for(dy.size))
    return dx


def sigmoid(x):
    """1 / (1 + exp(-x)), elementwise, without overflow.

    >>> cnnx.ops.sigmoid(np.array([-1000.0, 0.0, 1000.0]))   # no overflow warning
    array([0. , 0.5, 1. ])
    """
    if _tracing.is_symbol(x):
        return _traced("sigmoid", x, (), {})
    x = np.ascontiguousarray(_array(x, "x", "sigmoid"))
    y = np.empty_like(x)
    _kernels.sigmoid(x.reshape(-1), y.reshape(-1), threads_for(x.size))
    return y


def softmax(x, axis=-1):
    """exp(x) / sum(exp(x)) along `axis`, shifted by the maximum for stability.

    Two scores that differ by ln 19 (the course's dog and cat):

    >>> cnnx.ops.softmax(np.array([[0.0, np.log(19.0)]]))
    array([[0.05, 0.95]])
    """
    if _tracing.is_symbol(x):
        return _traced("softmax", x, (), {"axis": axis}, lambda z: softmax(z, axis))
    x = _array(x, "x", "softmax")
    if x.ndim == 0:
        raise ValueError("softmax: `x` must have at least one axis, received a scalar")
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"softmax: `axis` must be in [{-x.ndim}, {x.ndim}), received {axis}")
    last = axis in (-1, x.ndim - 1)   # the usual case: no axis moved, no copies
    moved = np.ascontiguousarray(x if last else np.moveaxis(x, axis, -1))
    rows = moved.reshape(-1, moved.shape[-1]) if moved.size else moved.reshape(0, 1)
    y = np.empty_like(rows)
    if rows.size:
        _kernels.softmax(rows, y, threads_for(rows.size))
    y = y.reshape(moved.shape)
    return y if last else np.moveaxis(y, -1, axis)


def flatten(x):
    """(N, ...) -> (N, features), row by row: height, then width, then channels.

    >>> cnnx.ops.flatten(np.zeros((2, 3, 4, 5))).shape
    (2, 60)
    """
    if _tracing.is_symbol(x):
        return _traced("flatten", x, (), {}, flatten)
    x = _array(x, "x", "flatten")
    if x.ndim < 1:
        raise ValueError("flatten: `x` must have a batch axis, received a scalar")
    return np.ascontiguousarray(x).reshape(x.shape[0], -1)


# ---------------------------------------------------------------------------------
# Pooling
# ---------------------------------------------------------------------------------

def max_pool2d(x, pool_size=2, strides=None, padding="valid", out=None):
    """Max pooling, NHWC. Returns (y, argmax): argmax (int32, y's shape) is the flat
    index (h*W + w)*C + c of each maximum within its sample, for the backward pass.
    `out`: optional (y, argmax) buffers.

    >>> x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    >>> y, argmax = cnnx.ops.max_pool2d(x, 2)
    >>> y[0, :, :, 0], argmax[0, :, :, 0]   # argmax: flat index in the sample
    (array([[ 5.,  7.],
           [13., 15.]], dtype=float32), array([[ 5,  7],
           [13, 15]], dtype=int32))
    """
    where = "max_pool2d"
    x = np.ascontiguousarray(_array(x, "inputs", where, ndim=4))
    pool, strides, (oh, ow), (ph, pw) = _pool_geometry(x, pool_size, strides, padding, where)
    shape = (x.shape[0], oh, ow, x.shape[3])
    per_sample = x.shape[1] * x.shape[2] * x.shape[3]
    if per_sample >= 2 ** 31:
        raise ValueError(f"{where}: samples of {per_sample} elements exceed the int32 argmax")
    y, argmax = _outputs(out, [(shape, x.dtype), (shape, np.int32)], where, reads=(x,))
    _kernels.max_pool2d(x, y, argmax, pool[0], pool[1], strides[0], strides[1], ph, pw,
                        threads_for(x.size))
    return y, argmax


def max_pool2d_backward(dy, argmax, input_shape, out=None, relu_output=None):
    """Scatter dy to the positions recorded by max_pool2d's argmax. When the pool's
    input was a ReLU's output, pass the pool's output as `relu_output`: dy is then dropped
    where it is not > 0, which is ReLU's backward pass (the mask at each argmax is the
    pooled value's), fused into the scatter.

    >>> x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    >>> y, argmax = cnnx.ops.max_pool2d(x, 2)
    >>> dx = cnnx.ops.max_pool2d_backward(np.ones_like(y), argmax, x.shape)
    >>> dx[0, :, :, 0]
    array([[0., 0., 0., 0.],
           [0., 1., 0., 1.],
           [0., 0., 0., 0.],
           [0., 1., 0., 1.]], dtype=float32)
    """
    where = "max_pool2d_backward"
    dy = np.ascontiguousarray(_array(dy, "dy", where, ndim=4))
    relu_output = _relu_output(relu_output, dy, where)
    if not isinstance(argmax, np.ndarray) or argmax.dtype != np.int32:
        raise TypeError(f"{where}: `argmax` must be the int32 array from max_pool2d, "
                        f"received {getattr(argmax, 'dtype', type(argmax).__name__)}")
    _check_grad(dy, argmax.shape, where)
    input_shape = tuple(int(s) for s in input_shape)
    if len(input_shape) != 4 or input_shape[0] != dy.shape[0] or input_shape[3] != dy.shape[3]:
        raise ValueError(f"{where}: `input_shape` {input_shape} does not match dy's "
                         f"batch and channels {dy.shape}")
    dx = _output(out, input_shape, dy.dtype, where, reads=(dy, argmax, relu_output))
    bad = _kernels.max_pool2d_grad(dy, np.ascontiguousarray(argmax), dx, relu_output,
                                   threads_for(dx.size))
    if bad:
        per_sample = input_shape[1] * input_shape[2] * input_shape[3]
        raise ValueError(f"{where}: `argmax` holds {bad} indices outside [0, {per_sample}); "
                         f"it must come from max_pool2d on an input of shape {input_shape}")
    return dx


def max_pool(inputs, pool_size, strides=None, padding="valid", data_format=None):
    """keras.ops.max_pool for 2-D NHWC inputs: the maximum of each pool_size window of
    each channel, every `strides` pixels (default: pool_size).

    Parameters
    ----------
    inputs : array (N, H, W, C)
    pool_size, strides : int or pair of ints
    padding : "valid" or "same" (padded positions never win)

    Returns
    -------
    array (N, OH, OW, C) of the inputs' dtype.

    Examples
    --------
    >>> x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    >>> cnnx.ops.max_pool(x, 2)[0, :, :, 0]
    array([[ 5.,  7.],
           [13., 15.]], dtype=float32)
    """
    _check_data_format(data_format, "max_pool")
    if _tracing.is_symbol(inputs):
        return _traced("max_pool", inputs, (), dict(
            pool_size=pool_size, strides=strides, padding=padding),
            lambda x: max_pool2d(x, pool_size, strides, padding)[0])
    return max_pool2d(inputs, pool_size, strides, padding)[0]


def average_pool2d(x, pool_size=2, strides=None, padding="valid", out=None):
    """Average pooling, NHWC; under "same" the padding is left out of the divisor.

    >>> x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    >>> cnnx.ops.average_pool2d(x, 2)[0, :, :, 0]
    array([[ 2.5,  4.5],
           [10.5, 12.5]], dtype=float32)
    """
    where = "average_pool2d"
    x = np.ascontiguousarray(_array(x, "inputs", where, ndim=4))
    pool, strides, (oh, ow), (ph, pw) = _pool_geometry(x, pool_size, strides, padding, where)
    y = _output(out, (x.shape[0], oh, ow, x.shape[3]), x.dtype, where, reads=(x,))
    _kernels.average_pool2d(x, y, pool[0], pool[1], strides[0], strides[1], ph, pw,
                            threads_for(x.size))
    return y


def global_average_pool2d(x, out=None):
    """The mean over height and width of each sample's channels, NHWC: (N, H, W, C) ->
    (N, C). Each mean is summed in float64, pixel after pixel, and rounded once.

    >>> x = np.arange(8, dtype=np.float32).reshape(1, 2, 2, 2)
    >>> cnnx.ops.global_average_pool2d(x)
    array([[3., 4.]], dtype=float32)
    """
    where = "global_average_pool2d"
    x = np.ascontiguousarray(_array(x, "inputs", where, ndim=4))
    y = _output(out, (x.shape[0], x.shape[3]), x.dtype, where, reads=(x,))
    if x.shape[1] * x.shape[2] == 0:
        raise ValueError(f"{where}: `inputs` must have at least one pixel, received shape "
                         f"{x.shape}")
    _kernels.global_average_pool2d(x, y, threads_for(x.size))
    return y


def average_pool2d_backward(dy, input_shape, pool_size=2, strides=None, padding="valid",
                            out=None):
    """Gradient of average_pool2d with respect to its input.

    >>> dy = np.ones((1, 1, 1, 1), np.float32)
    >>> cnnx.ops.average_pool2d_backward(dy, (1, 2, 2, 1))[0, :, :, 0]
    array([[0.25, 0.25],
           [0.25, 0.25]], dtype=float32)
    """
    where = "average_pool2d_backward"
    dy = np.ascontiguousarray(_array(dy, "dy", where, ndim=4))
    input_shape = tuple(int(s) for s in input_shape)
    if len(input_shape) != 4:
        raise ValueError(f"{where}: `input_shape` must be (N, H, W, C), received {input_shape}")
    probe = np.empty((1,) + input_shape[1:3] + (1,), dy.dtype)
    pool, strides, (oh, ow), (ph, pw) = _pool_geometry(probe, pool_size, strides, padding,
                                                       where)
    _check_grad(dy, (input_shape[0], oh, ow, input_shape[3]), where)
    dx = _output(out, input_shape, dy.dtype, where, reads=(dy,))
    _kernels.average_pool2d_grad(dy, dx, pool[0], pool[1], strides[0], strides[1], ph, pw,
                                 threads_for(dx.size))
    return dx


def average_pool(inputs, pool_size, strides=None, padding="valid", data_format=None):
    """keras.ops.average_pool for 2-D NHWC inputs.

    >>> x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    >>> cnnx.ops.average_pool(x, 2)[0, :, :, 0]
    array([[ 2.5,  4.5],
           [10.5, 12.5]], dtype=float32)
    """
    _check_data_format(data_format, "average_pool")
    if _tracing.is_symbol(inputs):
        return _traced("average_pool", inputs, (), dict(
            pool_size=pool_size, strides=strides, padding=padding),
            lambda x: average_pool2d(x, pool_size, strides, padding))
    return average_pool2d(inputs, pool_size, strides, padding)


# ---------------------------------------------------------------------------------
# Batch normalization (statistics per channel, over the batch and positions)
# ---------------------------------------------------------------------------------

def _rows(x, where):
    """x (N, ..., C) as (rows, C), C-contiguous."""
    if x.ndim < 2:
        raise ValueError(f"{where}: `inputs` must have a batch axis and a channel axis, "
                         f"received shape {x.shape}")
    return np.ascontiguousarray(x).reshape(math.prod(x.shape[:-1]), x.shape[-1])


def _channel_vector(v, channels, name, where, dtype):
    if type(v) is np.ndarray and v.dtype == dtype and v.shape == (channels,) \
            and v.flags.c_contiguous:
        return v   # already what the checks below make of it
    v = np.ascontiguousarray(_array(v, name, where, ndim=1), dtype=dtype)
    if v.shape != (channels,):
        raise ValueError(f"{where}: `{name}` must have one value per channel ({channels}), "
                         f"received shape {v.shape}")
    return v


def batch_normalization_moments(x):
    """The mean and (biased) variance of each channel of x (N, ..., C), over every other
    axis, summed in fixed chunks in double precision.

    >>> x = np.array([[1.0, 10.0], [3.0, 30.0]])
    >>> mean, variance = cnnx.ops.batch_normalization_moments(x)
    >>> mean, variance
    (array([ 2., 20.]), array([  1., 100.]))
    """
    where = "batch_normalization_moments"
    x = _array(x, "inputs", where)
    rows = _rows(x, where)
    mean = np.empty(x.shape[-1], x.dtype)
    var = np.empty(x.shape[-1], x.dtype)
    _kernels.batch_norm_moments(rows, mean, var, threads_for(x.size), _workspace)
    return mean, var


def batch_normalization(x, mean, variance, gamma=None, beta=None, epsilon=1e-3,
                        activation=None, out=None):
    """(x - mean) / sqrt(variance + epsilon) * gamma + beta per channel (the last axis),
    computed as one multiply-add per element; activation None or "relu" (fused, as a
    following ReLU layer is when a model's plan fuses the two).

    >>> x = np.array([[1.0], [3.0]])
    >>> cnnx.ops.batch_normalization(x, np.array([2.0]), np.array([1.0]), epsilon=1e-12)
    array([[-1.],
           [ 1.]])
    """
    where = "batch_normalization"
    x = _array(x, "inputs", where)
    relu_ = _activation(activation, where)
    _, _, _, affine = _bn_affine(x, mean, variance, gamma, beta, epsilon, where)
    y = _output(out, x.shape, x.dtype, where, reads=(x,))
    rows = _rows(x, where)
    _kernels.batch_norm_apply(rows, affine[0], affine[1], y.reshape(rows.shape), relu_,
                              threads_for(x.size))
    return y


def _bn_affine(x, mean, variance, gamma, beta, epsilon, where):
    """(mean, rstd, gamma, affine) per channel in x's dtype (gamma None or checked):
    batch_normalization as y = x * affine[0] + affine[1] (_kernels.batch_norm_affine),
    the same numbers for its forward and backward passes (the backward recomputes a fused
    ReLU's mask from them)."""
    c = x.shape[-1] if x.ndim else 0
    mean = _channel_vector(mean, c, "mean", where, x.dtype)
    variance = _channel_vector(variance, c, "variance", where, x.dtype)
    gamma = None if gamma is None else _channel_vector(gamma, c, "gamma", where, x.dtype)
    beta = None if beta is None else _channel_vector(beta, c, "beta", where, x.dtype)
    epsilon = float(epsilon)
    if not epsilon > 0:
        raise ValueError(f"{where}: `epsilon` must be > 0, received {epsilon}")
    rstd = np.empty(c, x.dtype)
    affine = np.empty((2, c), x.dtype)
    _kernels.batch_norm_affine(mean, variance, gamma, beta, epsilon, rstd, affine)
    return mean, rstd, gamma, affine


def batch_normalization_backward(x, dy, mean, variance, gamma=None, epsilon=1e-3,
                                 training=True, center=True, scale=True, input_grad=True,
                                 out=None, relu_output=None, activation=None, beta=None):
    """Gradients of batch_normalization: (dx, dgamma, dbeta), each None when not asked
    for. training: the statistics were the batch's own (their gradient flows into dx);
    otherwise they were fixed (the moving ones). After a batch_normalization with
    activation="relu", dy is the gradient after the ReLU, masked inside the kernel's
    passes where the ReLU gave 0: pass activation="relu" and the forward's `beta`, and
    the mask is recomputed from x (the same multiply-add, the same bits; no array to
    read for it), or the ReLU's output as `relu_output` (read in its place, by the same
    code: the same bits).

    >>> x = np.array([[1.0], [3.0]])
    >>> dy = np.array([[1.0], [1.0]])
    >>> mean, variance, gamma = np.array([2.0]), np.array([1.0]), np.array([1.0])
    >>> grads = cnnx.ops.batch_normalization_backward(x, dy, mean, variance, gamma, 1e-12)
    >>> dx, dgamma, dbeta = grads
    >>> bool(np.allclose(dx, 0)), bool(np.allclose(dgamma, 0)), dbeta   # none for x and gamma
    (True, True, array([2.]))
    """
    where = "batch_normalization_backward"
    x = _array(x, "inputs", where)
    dy = _array(dy, "dy", where)
    x, dy = _common(x, dy)
    _check_grad(dy, x.shape, where)
    c = x.shape[-1]
    relu = _activation(activation, where)
    if relu and relu_output is not None:
        raise ValueError(f"{where}: give `relu_output` or activation=\"relu\", not both")
    mean, rstd, gamma, affine = _bn_affine(x, mean, variance, gamma, beta, epsilon, where)
    relu_output = _relu_output(relu_output, dy, where)
    if relu_output is not None:   # masked where 1 * relu_output + 0 is not > 0
        affine = np.zeros((2, c), x.dtype)
        affine[0] = 1
    out = (None, None, None) if out is None else out
    if not isinstance(out, tuple) or len(out) != 3:
        raise ValueError(f"{where}: `out` must be a tuple (dx, dgamma, dbeta)")
    dx = _output(out[0], x.shape, x.dtype, where, reads=(x, dy)) if input_grad else None
    dgamma = _output(out[1], (c,), x.dtype, where, reads=(x, dy)) if scale else None
    dbeta = _output(out[2], (c,), x.dtype, where, reads=(x, dy)) if center else None
    rows = _rows(x, where)
    _kernels.batch_norm_grad(rows, _rows(dy, where), mean, rstd, gamma, bool(training),
                             None if dx is None else dx.reshape(rows.shape), dgamma, dbeta,
                             affine if relu or relu_output is not None else None,
                             threads_for(x.size), _workspace,
                             None if relu_output is None else _rows(relu_output, where))
    return dx, dgamma, dbeta


# ---------------------------------------------------------------------------------
# Normalization over groups of channels (LayerNormalization, GroupNormalization)
# ---------------------------------------------------------------------------------

def _grouped(x, groups, where):
    """x (N, ..., C) as (N, positions, groups, channels per group)."""
    if x.ndim < 2:
        raise ValueError(f"{where}: `inputs` must have a batch axis and a channel axis, "
                         f"received shape {x.shape}")
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1 \
            or x.shape[-1] % groups:
        raise ValueError(f"{where}: `groups` must be a positive int dividing the "
                         f"{x.shape[-1]} channels, received {groups!r}")
    positions = int(np.prod(x.shape[1:-1], dtype=np.int64))
    return np.ascontiguousarray(x).reshape(x.shape[0], positions, groups,
                                           x.shape[-1] // groups)


def group_normalization(x, groups, gamma=None, beta=None, epsilon=1e-3, out=None):
    """Each sample's channels in `groups` groups, each group normalized over its
    positions and channels: (x - mean) / sqrt(var + epsilon), then scaled by gamma and
    shifted by beta per channel (either may be None). groups=1 on (N, C) rows is layer
    normalization. Returns (y, mean, rstd), mean and rstd (N, groups) for the backward.

    >>> x = np.array([[[[1.0, 3.0, 10.0, 30.0]]]], np.float32)
    >>> y, mean, rstd = cnnx.ops.group_normalization(x, groups=2, epsilon=1e-6)
    >>> y[0, 0, 0].round(4), mean   # mean: per sample and group
    (array([-1.,  1., -1.,  1.], dtype=float32), array([[ 2., 20.]], dtype=float32))
    """
    where = "group_normalization"
    x = _array(x, "inputs", where)
    gamma = _bias(gamma, x.shape[-1], where) if gamma is not None else None
    beta = _bias(beta, x.shape[-1], where) if beta is not None else None
    x, gamma, beta = _common(x, gamma, beta)
    epsilon = float(epsilon)
    if not epsilon > 0:
        raise ValueError(f"{where}: `epsilon` must be > 0, received {epsilon}")
    g = _grouped(x, groups, where)
    y = _output(out, x.shape, x.dtype, where, reads=(x, gamma, beta))
    mean = np.zeros((x.shape[0], groups), x.dtype)   # groups of no values: 0 and 0
    rstd = np.zeros((x.shape[0], groups), x.dtype)
    if x.size:
        _kernels.group_norm(g, gamma, beta, epsilon, y.reshape(g.shape), mean, rstd,
                            threads_for(x.size))
    return y, mean, rstd


def group_normalization_backward(x, dy, mean, rstd, groups, gamma=None, center=True,
                                 scale=True, input_grad=True, out=None):
    """Gradients of group_normalization: (dx, dgamma, dbeta), each None when not asked
    for (input_grad, scale, center). mean and rstd are the forward's.

    >>> x = np.array([[[[1.0, 3.0, 10.0, 30.0]]]])
    >>> y, mean, rstd = cnnx.ops.group_normalization(x, groups=2)
    >>> grads = cnnx.ops.group_normalization_backward(x, np.ones_like(x), mean, rstd, 2, np.ones(4))
    >>> dx, dgamma, dbeta = grads
    >>> dbeta, bool(np.allclose(dx, 0))   # a constant gradient: none for x
    (array([1., 1., 1., 1.]), True)
    """
    where = "group_normalization_backward"
    x = _array(x, "inputs", where)
    dy = _array(dy, "dy", where)
    gamma = _bias(gamma, x.shape[-1], where) if gamma is not None else None
    x, dy, gamma, mean, rstd = _common(x, dy, gamma, _array(mean, "mean", where, ndim=2),
                                       _array(rstd, "rstd", where, ndim=2))
    _check_grad(dy, x.shape, where)
    if mean.shape != (x.shape[0], groups) or rstd.shape != mean.shape:
        raise ValueError(f"{where}: `mean` and `rstd` must have shape "
                         f"{(x.shape[0], groups)}, received {mean.shape} and {rstd.shape}")
    out = (None, None, None) if out is None else out
    if not isinstance(out, tuple) or len(out) != 3:
        raise ValueError(f"{where}: `out` must be a tuple (dx, dgamma, dbeta)")
    channels = (x.shape[-1],)
    dx = _output(out[0], x.shape, x.dtype, where, reads=(x, dy)) if input_grad else None
    dgamma = _output(out[1], channels, x.dtype, where, reads=(x, dy)) if scale else None
    dbeta = _output(out[2], channels, x.dtype, where, reads=(x, dy)) if center else None
    gx, gdy = _grouped(x, groups, where), _grouped(dy, groups, where)
    _kernels.group_norm_grad(gx, gdy, gamma, mean, rstd,
                             None if dx is None else dx.reshape(gx.shape), dgamma, dbeta,
                             threads_for(x.size), _workspace)
    return dx, dgamma, dbeta


# ---------------------------------------------------------------------------------
# Dense
# ---------------------------------------------------------------------------------

def _dense_operands(x, kernel, where):
    x = _array(x, "inputs", where, ndim=2)
    kernel = _array(kernel, "kernel", where, ndim=2)
    if kernel.shape[0] != x.shape[1]:
        raise ValueError(f"{where}: the kernel expects {kernel.shape[0]} input features "
                         f"(kernel shape {kernel.shape} is (in, out)), but the input has "
                         f"{x.shape[1]} (input shape {x.shape})")
    if kernel.shape[0] == 0 or kernel.shape[1] == 0:
        raise ValueError(f"{where}: `kernel` must have no zero-sized axis, "
                         f"received shape {kernel.shape}")
    return x, kernel


def dense(x, kernel, bias=None, activation=None, out=None):
    """x @ kernel (+ bias), with a fused ReLU. x: (B, in); kernel: (in, out).

    >>> x = np.array([[1.0, 2.0]], np.float32)
    >>> kernel = np.array([[1.0, -1.0], [1.0, -1.0]], np.float32)
    >>> cnnx.ops.dense(x, kernel, activation="relu")
    array([[3., 0.]], dtype=float32)
    """
    where = "dense"
    x, kernel = _dense_operands(x, kernel, where)
    relu_ = _activation(activation, where)
    bias = _bias(bias, kernel.shape[1], where)
    x, kernel, bias = _common(x, kernel, bias)
    y = _output(out, (x.shape[0], kernel.shape[1]), x.dtype, where, reads=(x, kernel, bias))
    if y.size:
        _kernels.dense(x, kernel, bias, y, relu_, threads_for(y.size * kernel.shape[0]),
                       _workspace)
    return y


def dense_backward(x, kernel, dy, use_bias=True, input_grad=True, out=None):
    """Gradients of dense (without activation): (dx, dkernel, dbias).
    `out`: optional (dx, dkernel, dbias) buffers.

    >>> x = np.array([[1.0, 2.0]], np.float32)
    >>> kernel = np.eye(2, dtype=np.float32)
    >>> dy = np.array([[1.0, 0.0]], np.float32)
    >>> dx, dk, db = cnnx.ops.dense_backward(x, kernel, dy)
    >>> dk, db
    (array([[1., 0.],
           [2., 0.]], dtype=float32), array([1., 0.], dtype=float32))
    """
    where = "dense_backward"
    x, kernel = _dense_operands(x, kernel, where)
    dy = _array(dy, "dy", where, ndim=2)
    x, kernel, dy = _common(x, kernel, dy)
    _check_grad(dy, (x.shape[0], kernel.shape[1]), where)
    dx, dkernel, dbias, empty = _backward_outputs(out, x, kernel, dy, kernel.shape[1],
                                                  use_bias, input_grad, where)
    if empty:
        return dx, dkernel, dbias
    nthreads = threads_for(dy.size * kernel.shape[0])
    _kernels.dense_kernel_grad(x, dy, dkernel, dbias, nthreads, _workspace)
    if input_grad:
        _kernels.dense_input_grad(dy, kernel, dx, nthreads, _workspace)
    return dx, dkernel, dbias


# ---------------------------------------------------------------------------------
# Losses from logits (fused with their activation)
# ---------------------------------------------------------------------------------

def _logits_and_targets(logits, targets, where, ndim):
    logits = _array(logits, "logits", where, ndim=ndim)
    targets = _array(targets, "targets", where)
    if targets.shape != logits.shape:
        raise ValueError(f"{where}: `targets` must have the logits' shape {logits.shape}, "
                         f"received {targets.shape}")
    return _common(logits, targets)


def softmax_cross_entropy(logits, targets):
    """Per-sample cross-entropy of softmax(logits) against `targets` (N, K), computed
    stably by log-sum-exp. Returns (loss (N,), grad (N, K) = softmax - targets).

    >>> logits, targets = np.array([[0.0, 0.0]]), np.array([[0.0, 1.0]])
    >>> loss, grad = cnnx.ops.softmax_cross_entropy(logits, targets)
    >>> loss.round(4), grad   # grad = softmax - targets
    (array([0.6931]), array([[ 0.5, -0.5]]))
    """
    logits, targets = _logits_and_targets(logits, targets, "softmax_cross_entropy", 2)
    if logits.shape[1] == 0:   # no classes: each loss is an empty sum
        return np.zeros(logits.shape[0], logits.dtype), np.empty_like(logits)
    loss = np.empty(logits.shape[0], logits.dtype)
    grad = np.empty_like(logits)
    _kernels.softmax_cross_entropy(logits, targets, loss, grad, threads_for(logits.size))
    return loss, grad


def sigmoid_cross_entropy(logits, targets):
    """Elementwise binary cross-entropy of sigmoid(logits) against `targets`, computed
    stably. Returns (loss, grad = sigmoid - targets), both of the logits' shape.

    >>> loss, grad = cnnx.ops.sigmoid_cross_entropy(np.array([0.0]), np.array([1.0]))
    >>> loss.round(4), grad   # grad = sigmoid - targets
    (array([0.6931]), array([-0.5]))
    """
    logits, targets = _logits_and_targets(logits, targets, "sigmoid_cross_entropy", None)
    loss = np.empty_like(logits)
    grad = np.empty_like(logits)
    _kernels.sigmoid_cross_entropy(logits.reshape(-1), targets.reshape(-1),
                                   loss.reshape(-1), grad.reshape(-1),
                                   threads_for(logits.size))
    return loss, grad


_EPSILON = 1e-7  # Keras's backend epsilon, used to clip probabilities


def categorical_crossentropy(target, output, from_logits=False, axis=-1):
    """keras.ops.categorical_crossentropy: per-sample -sum(target * log(output)).
    Probabilities are renormalised and clipped to [1e-7, 1 - 1e-7] as in Keras.

    >>> target, output = np.array([[0.0, 1.0]]), np.array([[0.2, 0.8]])
    >>> cnnx.ops.categorical_crossentropy(target, output).round(4)
    array([0.2231])
    """
    where = "categorical_crossentropy"
    target = _array(target, "target", where)
    output = _array(output, "output", where)
    if target.shape != output.shape or output.ndim < 1:
        raise ValueError(f"{where}: `target` and `output` must have one shape, received "
                         f"{target.shape} and {output.shape}")
    target, output = _common(target, output)
    if from_logits:
        t = np.moveaxis(target, axis, -1)
        z = np.moveaxis(output, axis, -1)
        loss, _ = softmax_cross_entropy(z.reshape(-1, z.shape[-1]), t.reshape(-1, t.shape[-1]))
        return loss.reshape(z.shape[:-1])
    p = output / np.sum(output, axis=axis, keepdims=True)
    p = np.clip(p, _EPSILON, 1 - _EPSILON)
    return -np.sum(target * np.log(p), axis=axis)


def binary_crossentropy(target, output, from_logits=False):
    """keras.ops.binary_crossentropy, elementwise; probabilities clipped as in Keras.

    >>> target, output = np.array([1.0, 0.0]), np.array([0.8, 0.8])
    >>> cnnx.ops.binary_crossentropy(target, output).round(4)
    array([0.2231, 1.6094])
    """
    where = "binary_crossentropy"
    target = _array(target, "target", where)
    output = _array(output, "output", where)
    if target.shape != output.shape:
        raise ValueError(f"{where}: `target` and `output` must have one shape, received "
                         f"{target.shape} and {output.shape}")
    target, output = _common(target, output)
    if from_logits:
        return sigmoid_cross_entropy(output, target)[0]
    p = np.clip(output, _EPSILON, 1 - _EPSILON)
    return -(target * np.log(p) + (1 - target) * np.log(1 - p))


# ---------------------------------------------------------------------------------
# Optimizer updates, in place: the weights w and the optimizer's slots (1-D, one dtype,
# C-contiguous; the optimizers keep them so) are overwritten, g is read.
# ---------------------------------------------------------------------------------

def _check_update(where, w, *arrays):
    if not isinstance(w, np.ndarray) or w.ndim != 1 or not w.flags.c_contiguous \
            or w.dtype not in (np.float32, np.float64) or not w.flags.writeable:
        raise TypeError(f"{where}: `w` must be a writeable, contiguous 1-D float32 or "
                        f"float64 array, received "
                        f"{getattr(w, 'dtype', type(w).__name__)} {getattr(w, 'shape', '')}")
    for name, a, size in arrays:
        if not isinstance(a, np.ndarray) or a.dtype != w.dtype or a.shape != (size,) \
                or not a.flags.c_contiguous:
            raise ValueError(f"{where}: `{name}` must be a contiguous {w.dtype} array of "
                             f"shape ({size},), received "
                             f"{getattr(a, 'dtype', type(a).__name__)} "
                             f"{getattr(a, 'shape', '')}")
    # g may be w itself (each element is read before it is written); the written arrays,
    # w and the slots, may not overlap each other.
    written = [("w", w)] + [(name, a) for name, a, _ in arrays if name != "g" and a.size]
    for i, (name, a) in enumerate(written):
        for other, b in written[:i]:
            if np.shares_memory(a, b):
                raise ValueError(f"{where}: `{name}` overlaps `{other}`")


def sgd_update(w, g, m, learning_rate, momentum=0.0, nesterov=False):
    """SGD step in place, Keras's rule: with momentum, m <- momentum m - lr g and
    w <- w + m (nesterov: w + momentum m - lr g); without, w <- w - lr g (m unused, may
    be empty).

    >>> w, m = np.array([1.0]), np.zeros(1)
    >>> cnnx.ops.sgd_update(w, np.array([2.0]), m, 0.1, momentum=0.9)
    >>> w, m
    (array([0.8]), array([-0.2]))
    """
    n = w.size if isinstance(w, np.ndarray) else 0
    _check_update("sgd_update", w, ("g", g, n), ("m", m, n if momentum else m.size))
    _kernels.sgd_update(w, g, m, float(learning_rate), float(momentum), bool(nesterov),
                        threads_for(n))


def adam_update(w, g, m, v, learning_rate, beta_1, beta_2, epsilon, weight_decay=0.0):
    """Adam step in place (AdamW's decoupled weight decay when weight_decay > 0); the
    learning rate is the bias-corrected one of this step.

    >>> w, m, v = np.array([1.0]), np.zeros(1), np.zeros(1)
    >>> cnnx.ops.adam_update(w, np.array([2.0]), m, v, 0.1, 0.9, 0.999, 1e-7)
    >>> m, v.round(6)   # the moments (the step size is corrected by the caller)
    (array([0.2]), array([0.004]))
    """
    n = w.size if isinstance(w, np.ndarray) else 0
    _check_update("adam_update", w, ("g", g, n), ("m", m, n), ("v", v, n))
    _kernels.adam_update(w, g, m, v, float(learning_rate), float(beta_1), float(beta_2),
                         float(epsilon), float(weight_decay), threads_for(n))


def rmsprop_update(w, g, v, m, learning_rate, rho, momentum, epsilon):
    """RMSprop step in place: v is the mean square, m the momentum buffer (empty when
    momentum is 0).

    >>> w, v = np.array([1.0]), np.zeros(1)
    >>> no_momentum = np.zeros(0)
    >>> cnnx.ops.rmsprop_update(w, np.array([2.0]), v, no_momentum, 0.01, 0.9, 0.0, 1e-7)
    >>> v.round(6), w.round(4)
    (array([0.4]), array([0.9684]))
    """
    n = w.size if isinstance(w, np.ndarray) else 0
    _check_update("rmsprop_update", w, ("g", g, n), ("v", v, n),
                  ("m", m, n if momentum else m.size))
    _kernels.rmsprop_update(w, g, v, m, float(learning_rate), float(rho), float(momentum),
                            float(epsilon), threads_for(n))


def adagrad_update(w, g, accumulator, learning_rate, epsilon):
    """Adagrad step in place.

    >>> w, acc = np.array([1.0]), np.full(1, 0.1)
    >>> cnnx.ops.adagrad_update(w, np.array([2.0]), acc, 0.1, 1e-7)
    >>> acc, w.round(4)
    (array([4.1]), array([0.9012]))
    """
    n = w.size if isinstance(w, np.ndarray) else 0
    _check_update("adagrad_update", w, ("g", g, n), ("accumulator", accumulator, n))
    _kernels.adagrad_update(w, g, accumulator, float(learning_rate), float(epsilon),
                            threads_for(n))


def adamax_update(w, g, m, u, learning_rate, beta_1, beta_2, epsilon):
    """Adamax step in place (u: the exponentially weighted infinity norm); the learning
    rate is the bias-corrected one of this step.

    >>> w, m, u = np.array([1.0]), np.zeros(1), np.zeros(1)
    >>> cnnx.ops.adamax_update(w, np.array([2.0]), m, u, 0.1, 0.9, 0.999, 1e-7)
    >>> m, u
    (array([0.2]), array([2.]))
    """
    n = w.size if isinstance(w, np.ndarray) else 0
    _check_update("adamax_update", w, ("g", g, n), ("m", m, n), ("u", u, n))
    _kernels.adamax_update(w, g, m, u, float(learning_rate), float(beta_1), float(beta_2),
                           float(epsilon), threads_for(n))


def adadelta_update(w, g, accumulated_grad, accumulated_delta, learning_rate, rho,
                    epsilon):
    """Adadelta step in place.

    >>> w, ag, ad = np.array([1.0]), np.zeros(1), np.zeros(1)
    >>> cnnx.ops.adadelta_update(w, np.array([2.0]), ag, ad, 1.0, 0.95, 1e-7)
    >>> ag.round(4)
    array([0.2])
    """
    n = w.size if isinstance(w, np.ndarray) else 0
    _check_update("adadelta_update", w, ("g", g, n), ("accumulated_grad", accumulated_grad, n),
                  ("accumulated_delta", accumulated_delta, n))
    _kernels.adadelta_update(w, g, accumulated_grad, accumulated_delta, float(learning_rate),
                             float(rho), float(epsilon), threads_for(n))


def lion_update(w, g, m, learning_rate, beta_1, beta_2):
    """Lion step in place.

    >>> w, m = np.array([1.0, 1.0]), np.zeros(2)
    >>> cnnx.ops.lion_update(w, np.array([3.0, -0.5]), m, 0.1, 0.9, 0.99)
    >>> w   # a step of the learning rate, by sign
    array([0.9, 1.1])
    """
    n = w.size if isinstance(w, np.ndarray) else 0
    _check_update("lion_update", w, ("g", g, n), ("m", m, n))
    _kernels.lion_update(w, g, m, float(learning_rate), float(beta_1), float(beta_2),
                         threads_for(n))


def nadam_update(w, g, m, v, learning_rate, beta_1, beta_2, epsilon, u_t, u_t_1,
                 u_product_t, u_product_t_1, beta_2_power):
    """Nadam step in place, given the step's momentum-schedule scalars (see
    cnnx.optimizers.Nadam).

    >>> w, m, v = np.array([1.0]), np.zeros(1), np.zeros(1)
    >>> # the momentum schedule of Keras at step 1
    >>> u1, u2 = 0.9 * (1 - 0.5 * 0.96 ** 0.004), 0.9 * (1 - 0.5 * 0.96 ** 0.008)
    >>> g, lr, b1, b2, eps = np.array([2.0]), 0.1, 0.9, 0.999, 1e-7
    >>> cnnx.ops.nadam_update(w, g, m, v, lr, b1, b2, eps, u1, u2, u1, u1 * u2, b2)
    >>> m, v.round(6)
    (array([0.2]), array([0.004]))
    """
    n = w.size if isinstance(w, np.ndarray) else 0
    _check_update("nadam_update", w, ("g", g, n), ("m", m, n), ("v", v, n))
    _kernels.nadam_update(w, g, m, v, float(learning_rate), float(beta_1), float(beta_2),
                          float(epsilon), float(u_t), float(u_t_1), float(u_product_t),
                          float(u_product_t_1), float(beta_2_power), threads_for(n))


def ftrl_update(w, g, accumulator, linear, learning_rate, learning_rate_power, l1, l2,
                l2_shrinkage, beta):
    """FTRL-proximal step in place (accumulator: the sum of squared gradients; linear:
    FTRL's z), as Keras 3 computes it.

    >>> w, acc, linear = np.array([0.5]), np.array([0.1]), np.zeros(1)
    >>> cnnx.ops.ftrl_update(w, np.array([1.0]), acc, linear, 0.1, -0.5, 0.0, 0.0, 0.0, 0.0)
    >>> acc, linear.round(4), w.round(4)
    (array([1.1]), array([-2.6629]), array([0.2539]))
    """
    n = w.size if isinstance(w, np.ndarray) else 0
    _check_update("ftrl_update", w, ("g", g, n), ("accumulator", accumulator, n),
                  ("linear", linear, n))
    lr = float(learning_rate)
    _kernels.ftrl_update(w, g, accumulator, linear, lr, float(learning_rate_power),
                         float(l1), float(l2) + float(beta) / (2 * lr), float(l2_shrinkage),
                         threads_for(n))

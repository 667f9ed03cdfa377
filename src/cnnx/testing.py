"""Hooks for tests and benchmarks: documented and stable, so that neither has to reach
into cnnx's private parts. Not needed to use cnnx.

    with cnnx.testing.reference_kernels():
        model.train_on_batch(x, y)     # the same step on the pure-NumPy twins
"""
import contextlib

from . import _reference as ref
from . import ops
from .models import program

__all__ = ["reference", "reference_kernels", "REFERENCE_TWINS"]

# The pure-NumPy twin of every kernel, by the kernel's name in cnnx.ops: the oracle of
# the tests and the baseline of the benchmarks.
reference = ref

# Every kernel entry point of cnnx.ops that layers, losses and optimizers call, each with
# its twin in cnnx._reference (same arithmetic in plain NumPy: im2col + matmul
# convolutions, strided-slice pooling, ...).
REFERENCE_TWINS = ("conv2d", "conv2d_backward", "conv2d_transpose", "conv2d_transpose_backward",
                   "depthwise_conv2d", "group_normalization", "group_normalization_backward",
                   "batch_normalization_moments", "batch_normalization",
                   "batch_normalization_backward",
                   "depthwise_conv2d_backward", "add", "all_finite", "relu", "relu_backward",
                   "max_pool2d",
                   "max_pool2d_backward", "average_pool2d", "average_pool2d_backward",
                   "global_average_pool2d",
                   "dense", "dense_backward", "softmax", "sigmoid", "softmax_cross_entropy",
                   "sigmoid_cross_entropy", "sgd_update", "adam_update", "rmsprop_update",
                   "adagrad_update", "adamax_update", "adadelta_update", "lion_update",
                   "nadam_update", "ftrl_update")


def _returning(fn):
    """The twin as the ops function is called: `out=` buffers are the kernels' business,
    the twin returns fresh arrays (the callers use the returned values)."""
    def call(*args, out=None, **kwargs):  # noqa: ARG001 (ops' signature)
        return fn(*args, **kwargs)
    return call


def _in_place(fn, n_state):
    """An optimizer update's twin, written back into w and its first n_state slots (the
    twins return new arrays; the ops update in place)."""
    def call(w, g, *rest):
        state, params = rest[:n_state], rest[n_state:]
        new = fn(w, g, *state, *params)
        for dst, src in zip((w, *state), new):
            if dst.size:
                dst[...] = src
    return call


_UPDATES = {"sgd_update": 1, "adam_update": 2, "rmsprop_update": 2, "adagrad_update": 1,
            "adamax_update": 2, "adadelta_update": 2, "lion_update": 1, "nadam_update": 2,
            "ftrl_update": 2}


@contextlib.contextmanager
def reference_kernels():
    """Within the block, every compiled kernel reached through cnnx.ops runs on its
    pure-NumPy twin instead: the baseline of benchmarks/ (same network, same Python,
    only the kernels differ). Not thread-safe: it swaps module attributes of cnnx.ops.

    >>> x = np.random.default_rng(0).random((1, 6, 6, 2), np.float32)
    >>> k = np.ones((3, 3, 2, 1), np.float32)
    >>> fast = cnnx.ops.conv(x, k)
    >>> with cnnx.testing.reference_kernels():
    ...     twin = cnnx.ops.conv(x, k)   # the pure-NumPy twin
    >>> bool(np.allclose(fast, twin, rtol=1e-5))
    True
    """
    saved = {name: getattr(ops, name) for name in REFERENCE_TWINS}
    with program.suspended():   # a compiled inference program would bypass cnnx.ops
        try:
            for name in REFERENCE_TWINS:
                twin = getattr(ref, name)
                setattr(ops, name, _in_place(twin, _UPDATES[name]) if name in _UPDATES
                        else _returning(twin))
            yield
        finally:
            for name, fn in saved.items():
                setattr(ops, name, fn)


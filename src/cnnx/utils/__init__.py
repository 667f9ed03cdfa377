"""cnnx.utils: to_categorical, normalize, set_random_seed, PyDataset (Sequence)."""
import numbers

import numpy as np

from .. import _random

_IMAGE = ("load_img", "img_to_array", "array_to_img", "save_img",
          "image_dataset_from_directory")
__all__ = ["to_categorical", "normalize", "set_random_seed", "PyDataset", "Sequence",
           "Dataset", "get_file", "plot_model", *_IMAGE]


def __getattr__(name):  # the image helpers, mirrored from cnnx.preprocessing.image
    if name == "Dataset":
        from .dataset import Dataset
        return Dataset
    if name == "get_file":
        from .files import get_file
        return get_file
    if name == "plot_model":
        return plot_model
    if name in _IMAGE:
        from ..preprocessing import image
        return getattr(image, name)
    raise AttributeError(f"module 'cnnx.utils' has no attribute {name!r}")


class PyDataset:
    """Keras 3's base class for a dataset of batches: subclass it with __len__ (the
    number of batches) and __getitem__(index) (batch `index` as x, (x, y) or
    (x, y, sample_weight)), and optionally on_epoch_end. fit, evaluate and predict take it
    as x. cnnx fetches its batches on one background thread, `max_queue_size` ahead;
    `workers` and `use_multiprocessing` are accepted as Keras's and change nothing (the
    batches and their order are the same).

    >>> class Squares(cnnx.utils.PyDataset):
    ...     def __len__(self):
    ...         return 2
    ...     def __getitem__(self, i):
    ...         x = np.full((4, 1), float(i), np.float32)
    ...         return x, x ** 2
    >>> model = cnnx.Sequential([cnnx.Input((1,)), cnnx.layers.Dense(1)])
    >>> model.compile(optimizer="sgd", loss="mse")
    >>> len(model.fit(Squares(), epochs=2, verbose=0).epoch)
    2
    """

    def __init__(self, workers=1, use_multiprocessing=False, max_queue_size=10):
        for name, value in (("workers", workers), ("max_queue_size", max_queue_size)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) \
                    or value < 1:
                raise ValueError(f"{type(self).__name__}: `{name}` must be a positive "
                                 f"int, received {value!r}")
        if not isinstance(use_multiprocessing, bool):
            raise TypeError(f"{type(self).__name__}: `use_multiprocessing` must be True or "
                            f"False, received {use_multiprocessing!r}")
        self.workers, self.use_multiprocessing = int(workers), use_multiprocessing
        self.max_queue_size = int(max_queue_size)

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")

    def __len__(self):
        raise NotImplementedError(f"{type(self).__name__} must define __len__")

    @property
    def num_batches(self):
        return len(self)

    def on_epoch_end(self):
        """Called after each epoch's last batch (shuffle here, say)."""


Sequence = PyDataset   # Keras 2's name


def set_random_seed(seed):
    """Seed everything cnnx draws at random: weight initializers, Dropout masks, the
    shuffling in fit. The same seed gives bitwise-identical results for any threads.

    >>> cnnx.utils.set_random_seed(7)
    >>> a = cnnx.layers.Dense(2)
    >>> a.build((None, 3))
    >>> cnnx.utils.set_random_seed(7)
    >>> b = cnnx.layers.Dense(2)
    >>> b.build((None, 3))
    >>> np.array_equal(a.kernel.value, b.kernel.value)
    True
    """
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"set_random_seed: expected a non-negative int, received {seed!r}")
    _random.seed(int(seed))


def to_categorical(x, num_classes=None):
    """Class indices (any shape) to one-hot float32 rows, as keras.utils.to_categorical.

    >>> cnnx.utils.to_categorical([0, 2, 1], num_classes=3)
    array([[1., 0., 0.],
           [0., 0., 1.],
           [0., 1., 0.]], dtype=float32)
    """
    x = np.asarray(x)
    if x.dtype.kind not in "iub" and not (x.dtype.kind == "f" and np.all(x == np.round(x))):
        raise ValueError(f"to_categorical: expected integer class indices, "
                         f"received dtype {x.dtype}")
    x = x.astype(np.int64)
    if x.ndim > 1 and x.shape[-1] == 1:
        x = x.reshape(x.shape[:-1])
    if x.size and x.min() < 0:
        raise ValueError(f"to_categorical: class indices must be >= 0, received {x.min()}")
    if num_classes is None:
        num_classes = int(x.max()) + 1 if x.size else 0
    elif x.size and x.max() >= num_classes:
        raise ValueError(f"to_categorical: class index {x.max()} is out of range for "
                         f"num_classes={num_classes}")
    out = np.zeros(x.shape + (num_classes,), np.float32)
    np.put_along_axis(out, x[..., None], 1.0, axis=-1)
    return out


def normalize(x, axis=-1, order=2):
    """x divided by its `order`-norm along `axis`, as keras.utils.normalize; vectors of
    norm 0 stay 0.

    >>> cnnx.utils.normalize(np.array([[3.0, 4.0]]))   # unit L2 norm per row
    array([[0.6, 0.8]])
    """
    x = np.asarray(x)
    if x.dtype.kind not in "fiu":
        raise TypeError(f"normalize: expected numbers, received dtype {x.dtype}")
    norm = np.linalg.norm(x, ord=order, axis=axis, keepdims=True)
    dtype = x.dtype if x.dtype.kind == "f" else np.float32
    return (x / np.where(norm == 0, 1, norm)).astype(dtype)


def plot_model(model, to_file="model.png", show_shapes=False, show_dtype=False,
               show_layer_names=True, rankdir="TB", expand_nested=False, dpi=200,
               show_layer_activations=False, show_trainable=False, **kwargs):
    """keras.utils.plot_model: the model's graph drawn to `to_file` (PNG, or the format
    its suffix names) with matplotlib (the cnnx[plot] extra); no graphviz needed.
    Returns the matplotlib Figure.

    >>> model = cnnx.Sequential([cnnx.Input((3,)), cnnx.layers.Dense(2)])
    >>> figure = cnnx.utils.plot_model(model, to_file="model.png", show_shapes=True)
    >>> import os
    >>> os.path.getsize("model.png") > 0
    True
    """
    from .._compat import refuse_unimplemented
    refuse_unimplemented("plot_model", expand_nested=(expand_nested, False))
    unknown = sorted(set(kwargs) - {"layer_range", "show_layer_names"})
    if unknown:
        raise TypeError(f"plot_model() got an unexpected keyword argument {unknown[0]!r}")
    if rankdir not in ("TB", "LR", "BT", "RL"):
        raise ValueError(f"plot_model: `rankdir` must be TB, LR, BT or RL, received "
                         f"{rankdir!r}")
    if not getattr(model, "built", False):
        raise ValueError(f"plot_model: model {model.name!r} is not built yet")
    from ..viz import save_model_figure
    return save_model_figure(model, to_file, dpi=dpi, show_shapes=show_shapes,
                             show_dtype=show_dtype, show_layer_names=show_layer_names,
                             rankdir=rankdir, show_layer_activations=show_layer_activations,
                             show_trainable=show_trainable)

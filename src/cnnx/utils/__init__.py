"""cnnx.utils: to_categorical, set_random_seed."""
import numbers

import numpy as np

from .. import _random

_IMAGE = ("load_img", "img_to_array", "array_to_img", "save_img",
          "image_dataset_from_directory")
__all__ = ["to_categorical", "normalize", "set_random_seed", *_IMAGE]


def __getattr__(name):  # the image helpers, mirrored from cnnx.preprocessing.image
    if name in _IMAGE:
        from ..preprocessing import image
        return getattr(image, name)
    raise AttributeError(f"module 'cnnx.utils' has no attribute {name!r}")


def set_random_seed(seed):
    """Seed everything cnnx draws at random: weight initializers, Dropout masks, the
    shuffling in fit. The same seed gives bitwise-identical results for any threads."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"set_random_seed: expected a non-negative int, received {seed!r}")
    _random.seed(int(seed))


def to_categorical(x, num_classes=None):
    """Class indices (any shape) to one-hot float32 rows, as keras.utils.to_categorical."""
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
    norm 0 stay 0."""
    x = np.asarray(x)
    if x.dtype.kind not in "fiu":
        raise TypeError(f"normalize: expected numbers, received dtype {x.dtype}")
    norm = np.linalg.norm(x, ord=order, axis=axis, keepdims=True)
    dtype = x.dtype if x.dtype.kind == "f" else np.float32
    return (x / np.where(norm == 0, 1, norm)).astype(dtype)

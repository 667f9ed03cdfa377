"""Images in and out, and Keras's ImageDataGenerator with flow / flow_from_directory.

Pillow decodes images (the optional extra cnnx[image]). Augmentation runs vectorised over
a whole batch: one affine map per image (rotation, shifts, shear, zoom, composed about the
centre as Keras does), sampled bilinearly with the fill modes constant, nearest, reflect
and wrap; then flips and brightness. Keras's order: augmentation, then
preprocessing_function, then rescale. Decoded and resized images are kept in a bounded
cache, so later epochs skip the JPEG decoding (the pixels are the same either way).
"""
import io
import math
import os
import stat
import threading
import warnings
from collections import OrderedDict

import numpy as np

from .. import _random, _warp
from .._compat import refuse_unimplemented

__all__ = ["load_img", "img_to_array", "array_to_img", "save_img", "ImageDataGenerator",
           "Iterator", "NumpyArrayIterator", "DirectoryIterator",
           "image_dataset_from_directory"]

_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff", ".gif", ".webp")
# The largest image file load_img reads: a photo is a few MB; a 256 MiB file is not one.
MAX_IMAGE_BYTES = 256 * 2 ** 20


def _read_image_file(path, where):
    """The bytes of a regular file of at most MAX_IMAGE_BYTES. A FIFO, a device (a link to
    /dev/zero) or a folder is refused before anything is read: opening without blocking,
    then fstat, so that a FIFO cannot hang the call."""
    name = os.fspath(path)
    try:
        fd = os.open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)
                     | getattr(os, "O_BINARY", 0))
    except OSError as e:
        raise ValueError(f"{where}: cannot open {name!r} ({e.strerror})") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"{where}: {name!r} is not a regular file")
        if st.st_size > MAX_IMAGE_BYTES:
            raise ValueError(f"{where}: {name!r} has {st.st_size} bytes, more than an "
                             f"image may ({MAX_IMAGE_BYTES})")
        data = f.read(MAX_IMAGE_BYTES + 1)
    if len(data) > MAX_IMAGE_BYTES:
        raise ValueError(f"{where}: {name!r} grew past {MAX_IMAGE_BYTES} bytes while read")
    return data


# Pillow's modes of more than 8 bits per channel, and the factor from their range to
# 0..255 (what "rgb" gives): 16-bit integers, and floats taken as 0..1.
_WIDE_MODES = {"I;16": 1 / 257, "I;16B": 1 / 257, "I;16L": 1 / 257, "I": 1 / 257,
               "F": 255.0}


def _pil():
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("cnnx's image functions need Pillow: pip install 'cnnx[image]' "
                          "(or pip install Pillow)") from None
    return Image


def _resample(Image, interpolation):
    methods = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR,
               "bicubic": Image.BICUBIC, "lanczos": Image.LANCZOS, "box": Image.BOX,
               "hamming": Image.HAMMING}
    if interpolation not in methods:
        raise ValueError(f"interpolation must be one of {sorted(methods)}, "
                         f"received {interpolation!r}")
    return methods[interpolation]


def load_img(path, color_mode="rgb", target_size=None, interpolation="nearest",
             keep_aspect_ratio=False):
    """A PIL image from a file, converted to the colour mode, resized to target_size
    (height, width) when given. A file that is not an image raises ValueError naming it.

    >>> cnnx.utils.save_img("dot.png", np.full((4, 6, 3), 255, np.uint8))
    >>> img = cnnx.utils.load_img("dot.png", target_size=(2, 3))
    >>> img.size   # Pillow reports width x height
    (3, 2)
    """
    Image = _pil()
    modes = {"grayscale": "L", "rgb": "RGB", "rgba": "RGBA"}
    if color_mode not in modes:
        raise ValueError(f"load_img: color_mode must be grayscale, rgb or rgba, "
                         f"received {color_mode!r}")
    data = _read_image_file(path, "load_img")
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise ValueError(f"load_img: cannot decode {os.fspath(path)!r} as an image "
                         f"({e})") from None
    if color_mode == "grayscale" and img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        pass   # Keras keeps 16-bit and float grayscale as they are (0..65535, floats)
    elif img.mode in _WIDE_MODES:
        # Pillow's convert() would clip at 255: scale the range down instead.
        scale = _WIDE_MODES[img.mode]
        values = np.clip(np.asarray(img, np.float64) * scale, 0, 255)
        img = Image.fromarray(np.round(values).astype(np.uint8), "L")
        if img.mode != modes[color_mode]:
            img = img.convert(modes[color_mode])
    elif img.mode != modes[color_mode]:
        img = img.convert(modes[color_mode])
    if target_size is not None:
        height, width = target_size
        if img.size != (width, height):
            if keep_aspect_ratio:  # crop the centre to the target's aspect ratio first
                w, h = img.size
                crop_w, crop_h = min(w, h * width // height), min(h, w * height // width)
                left, top = (w - crop_w) // 2, (h - crop_h) // 2
                img = img.crop((left, top, left + crop_w, top + crop_h))
            img = img.resize((width, height), _resample(Image, interpolation))
    return img


def img_to_array(img, data_format=None, dtype="float32"):
    """(height, width, channels) array of the image.

    >>> cnnx.utils.save_img("dot.png", np.full((4, 6, 3), 255, np.uint8))
    >>> cnnx.utils.img_to_array(cnnx.utils.load_img("dot.png")).shape
    (4, 6, 3)
    """
    if data_format not in (None, "channels_last"):
        raise ValueError("img_to_array: only data_format='channels_last' is supported")
    x = np.asarray(img, dtype=dtype)
    if x.ndim == 2:
        x = x[:, :, None]
    if x.ndim != 3:
        raise ValueError(f"img_to_array: unsupported image shape {x.shape}")
    return x


def array_to_img(x, data_format=None, scale=True, dtype=None):
    """A PIL image from a (height, width, channels) array; scale maps the values' range
    to 0..255.

    >>> img = cnnx.utils.array_to_img(np.zeros((4, 6, 3)))
    >>> img.size, img.mode
    ((6, 4), 'RGB')
    """
    if data_format not in (None, "channels_last"):
        raise ValueError("array_to_img: only data_format='channels_last' is supported")
    del dtype  # Keras casts to this dtype first; cnnx reads every dtype as float64
    Image = _pil()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 2:
        x = x[:, :, None]
    if x.ndim != 3 or x.shape[2] not in (1, 3, 4):
        raise ValueError(f"array_to_img: expected (height, width, 1, 3 or 4 channels), "
                         f"received shape {x.shape}")
    if scale:
        x = x - x.min()
        top = x.max()
        if top > 0:
            x = x / top * 255
    x = np.clip(np.round(x), 0, 255).astype(np.uint8)
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[x.shape[2]]
    return Image.fromarray(x[:, :, 0] if mode == "L" else x, mode)


def save_img(path, x, data_format=None, file_format=None, scale=True, **kwargs):
    """Save an (H, W, C) array as an image file (format from the suffix or file_format),
    scaled to 0-255 when scale=True.

    >>> cnnx.utils.save_img("gray.png", np.zeros((4, 6, 1)))
    >>> cnnx.utils.load_img("gray.png", color_mode="grayscale").size
    (6, 4)
    """
    array_to_img(x, data_format, scale=scale).save(path, format=file_format, **kwargs)


# -- decoded-image cache -------------------------------------------------------------

_CACHE_BYTES = 512 * 2 ** 20
_cache = OrderedDict()
_cache_size = 0
_cache_lock = threading.Lock()


def _load_cached(path, color_mode, target_size, interpolation, keep_aspect_ratio):
    """img_to_array(load_img(...)) as uint8, remembered across epochs (LRU, bounded)."""
    global _cache_size
    key = (os.fspath(path), os.path.getmtime(path), color_mode, target_size, interpolation,
           keep_aspect_ratio)
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
    arr = np.asarray(load_img(path, color_mode, target_size, interpolation,
                              keep_aspect_ratio), dtype=np.uint8)
    arr = arr[:, :, None] if arr.ndim == 2 else arr
    with _cache_lock:
        _cache[key] = arr
        _cache_size += arr.nbytes
        while _cache_size > _CACHE_BYTES and _cache:
            _, old = _cache.popitem(last=False)
            _cache_size -= old.nbytes
    return arr


# -- augmentation ----------------------------------------------------------------------

# The warps themselves live in cnnx._warp, shared with the random preprocessing layers.


class ImageDataGenerator:
    """Keras's ImageDataGenerator: random augmentation, then preprocessing_function, then
    rescale, applied batch by batch by the iterators of flow and flow_from_directory.

    >>> from cnnx.preprocessing.image import ImageDataGenerator
    >>> gen = ImageDataGenerator(rescale=1 / 255, horizontal_flip=True)
    >>> x, y = np.full((6, 4, 4, 3), 255.0), np.arange(6)
    >>> batch_x, batch_y = next(gen.flow(x, y, batch_size=4, shuffle=False))
    >>> batch_x.shape, float(batch_x.max()), batch_y
    ((4, 4, 4, 3), 1.0, array([0, 1, 2, 3]))
    """

    def __init__(self, featurewise_center=False, samplewise_center=False,
                 featurewise_std_normalization=False, samplewise_std_normalization=False,
                 zca_whitening=False, zca_epsilon=1e-6, rotation_range=0,
                 width_shift_range=0.0, height_shift_range=0.0, brightness_range=None,
                 shear_range=0.0, zoom_range=0.0, channel_shift_range=0.0,
                 fill_mode="nearest", cval=0.0, horizontal_flip=False, vertical_flip=False,
                 rescale=None, preprocessing_function=None, data_format=None,
                 validation_split=0.0, interpolation_order=1, dtype="float32"):
        refuse_unimplemented("ImageDataGenerator",
                             channel_shift_range=(channel_shift_range, 0.0))
        self.featurewise_center = bool(featurewise_center)
        self.featurewise_std_normalization = bool(featurewise_std_normalization)
        self.zca_whitening, self.zca_epsilon = bool(zca_whitening), float(zca_epsilon)
        # Set by fit(): Keras's names.
        self.mean = self.std = self.zca_whitening_matrix = None
        # The warps interpolate bilinearly: Keras's default order, 1.
        refuse_unimplemented("ImageDataGenerator",
                             interpolation_order=(interpolation_order, 1))
        if fill_mode not in _warp.FILL_MODES:
            raise ValueError(f"ImageDataGenerator: fill_mode must be constant, nearest, "
                             f"reflect or wrap, received {fill_mode!r}")
        if not 0 <= validation_split < 1:
            raise ValueError(f"ImageDataGenerator: validation_split must be in [0, 1), "
                             f"received {validation_split}")
        if data_format not in (None, "channels_last"):
            raise ValueError("ImageDataGenerator: only data_format='channels_last'")
        if np.isscalar(zoom_range):
            zoom_range = (1 - zoom_range, 1 + zoom_range)
        if len(zoom_range) != 2:
            raise ValueError(f"ImageDataGenerator: zoom_range must be a float or a pair, "
                             f"received {zoom_range!r}")
        if brightness_range is not None and len(brightness_range) != 2:
            raise ValueError(f"ImageDataGenerator: brightness_range must be a pair, "
                             f"received {brightness_range!r}")
        self.samplewise_center = samplewise_center
        self.samplewise_std_normalization = samplewise_std_normalization
        self.rotation_range, self.shear_range = rotation_range, shear_range
        self.width_shift_range, self.height_shift_range = width_shift_range, height_shift_range
        self.zoom_range, self.brightness_range = tuple(zoom_range), brightness_range
        self.fill_mode, self.cval = fill_mode, cval
        self.horizontal_flip, self.vertical_flip = horizontal_flip, vertical_flip
        self.rescale, self.preprocessing_function = rescale, preprocessing_function
        self.validation_split, self.dtype = validation_split, np.dtype(dtype)

    def _augments(self):
        return bool(self.rotation_range or self.width_shift_range or self.height_shift_range
                    or self.shear_range or self.zoom_range != (1, 1))

    def _matrices(self, b, h, w, rng):
        """One output-to-input affine matrix per image, composed as Keras composes them."""
        def uniform(limit):
            return rng.uniform(-limit, limit, b) if limit else np.zeros(b)

        theta = np.deg2rad(uniform(self.rotation_range))
        tx, ty = uniform(self.height_shift_range), uniform(self.width_shift_range)
        if 0 < self.height_shift_range < 1:
            tx = tx * h
        if 0 < self.width_shift_range < 1:
            ty = ty * w
        shear = np.deg2rad(uniform(self.shear_range))
        zx, zy = ((np.ones(b), np.ones(b)) if self.zoom_range == (1, 1)
                  else rng.uniform(*self.zoom_range, (2, b)))
        cos, sin = np.cos(theta), np.sin(theta)
        # rotation @ shift @ shear @ zoom, multiplied out
        rot = np.stack([np.stack([cos, -sin, np.zeros(b)], -1),
                        np.stack([sin, cos, np.zeros(b)], -1),
                        np.tile([0.0, 0.0, 1.0], (b, 1))], 1)
        shift = np.tile(np.eye(3), (b, 1, 1))
        shift[:, 0, 2], shift[:, 1, 2] = tx, ty
        shr = np.tile(np.eye(3), (b, 1, 1))
        shr[:, 0, 1], shr[:, 1, 1] = -np.sin(shear), np.cos(shear)
        zoom = np.tile(np.eye(3), (b, 1, 1))
        zoom[:, 0, 0], zoom[:, 1, 1] = zx, zy
        return _warp.centered(rot @ shift @ shr @ zoom, h, w)

    def random_transform_batch(self, x, rng=None, rows=None, size=None):
        """The random augmentation of a float batch (B, H, W, C). With `rows` (a slice)
        and `size`, x is those rows of a batch of `size` images: the draws are the whole
        batch's, and each row gets its own (how a process of cnnx.distributed prepares
        its part of a batch, with the bits of the whole)."""
        rng = rng or _random.generator()
        b, h, w, _ = x.shape
        if rows is None:
            rows, size = slice(0, b), b
        if self._augments():
            x = _warp.affine_batch(x, self._matrices(size, h, w, rng)[rows], self.fill_mode,
                                   self.cval)
        if self.horizontal_flip:
            flip = (rng.random(size) < 0.5)[rows]
            x[flip] = x[flip, :, ::-1]
        if self.vertical_flip:
            flip = (rng.random(size) < 0.5)[rows]
            x[flip] = x[flip, ::-1]
        if self.brightness_range is not None:
            factor = rng.uniform(*self.brightness_range, size)[rows]
            x = np.clip(x * factor[:, None, None, None], 0, 255)
        return x

    def random_transform(self, x, seed=None):
        """The random augmentation of one image (H, W, C)."""
        rng = np.random.default_rng(seed) if seed is not None else None
        return self.random_transform_batch(np.asarray(x, np.float64)[None], rng)[0]

    def fit(self, x, augment=False, rounds=1, seed=None):
        """Learn the featurewise statistics from sample images (N, H, W, C), as Keras 2:
        the per-channel mean (featurewise_center), the per-channel standard deviation
        (featurewise_std_normalization), and the ZCA whitening matrix (zca_whitening),
        each computed after rescale and the steps before it."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 4:
            raise ValueError(f"ImageDataGenerator.fit: expected images (N, H, W, C), "
                             f"received shape {x.shape}")
        if augment:
            rounds = int(rounds)
            if rounds < 1:
                raise ValueError(f"ImageDataGenerator.fit: `rounds` must be >= 1, "
                                 f"received {rounds}")
            rng = np.random.default_rng(seed)
            x = np.concatenate([self.random_transform_batch(x.copy(), rng)
                                for _ in range(rounds)])
        if self.rescale:
            x = x * self.rescale
        if self.featurewise_center:
            self.mean = x.mean(axis=(0, 1, 2)).reshape(1, 1, -1)
            x = x - self.mean
        if self.featurewise_std_normalization:
            self.std = x.std(axis=(0, 1, 2)).reshape(1, 1, -1)
            x = x / (self.std + 1e-6)
        if self.zca_whitening:
            flat = x.reshape(len(x), -1)
            sigma = flat.T @ flat / len(flat)
            u, s, _ = np.linalg.svd(sigma)
            self.zca_whitening_matrix = (u * (1 / np.sqrt(s + self.zca_epsilon))) @ u.T
        return self

    def standardize(self, x):
        """preprocessing_function, rescale, the samplewise normalisations, then the
        featurewise ones learnt by fit(), in Keras's order."""
        if self.preprocessing_function is not None:
            x = np.stack([self.preprocessing_function(img) for img in x])
        if self.rescale:
            x = x * self.rescale
        if self.samplewise_center:
            x = x - x.mean(axis=(1, 2, 3), keepdims=True)
        if self.samplewise_std_normalization:
            x = x / (x.std(axis=(1, 2, 3), keepdims=True) + 1e-6)
        for flag, value, name in ((self.featurewise_center, self.mean, "featurewise_center"),
                                  (self.featurewise_std_normalization, self.std,
                                   "featurewise_std_normalization"),
                                  (self.zca_whitening, self.zca_whitening_matrix,
                                   "zca_whitening")):
            if flag and value is None:
                warnings.warn(f"This ImageDataGenerator specifies {name}, but it has not "
                              f"been fit on any training data: call .fit(x) first",
                              UserWarning, stacklevel=3)
        if self.featurewise_center and self.mean is not None:
            x = x - self.mean
        if self.featurewise_std_normalization and self.std is not None:
            x = x / (self.std + 1e-6)
        if self.zca_whitening and self.zca_whitening_matrix is not None:
            x = (x.reshape(len(x), -1) @ self.zca_whitening_matrix).reshape(x.shape)
        return x

    def _prepare(self, x, rng, rows=None, size=None):
        x = self.random_transform_batch(x.astype(np.float64), rng, rows, size)
        return self.standardize(x).astype(self.dtype)

    def flow(self, x, y=None, batch_size=32, shuffle=True, sample_weight=None, seed=None,
             save_to_dir=None, save_prefix="", save_format="png", subset=None):
        refuse_unimplemented("flow", save_to_dir=(save_to_dir, None))
        del save_prefix, save_format  # they name the files that save_to_dir would write
        return NumpyArrayIterator(x, y, self, batch_size, shuffle, sample_weight, seed, subset)

    def flow_from_directory(self, directory, target_size=(256, 256), color_mode="rgb",
                            classes=None, class_mode="categorical", batch_size=32,
                            shuffle=True, seed=None, save_to_dir=None, save_prefix="",
                            save_format="png", follow_links=False, subset=None,
                            interpolation="nearest", keep_aspect_ratio=False):
        refuse_unimplemented("flow_from_directory", save_to_dir=(save_to_dir, None))
        del save_prefix, save_format  # they name the files that save_to_dir would write
        return DirectoryIterator(directory, self, target_size, color_mode, classes,
                                 class_mode, batch_size, shuffle, seed, subset, interpolation,
                                 keep_aspect_ratio, follow_links)


class Iterator:
    """A Keras Sequence of batches: len() batches per epoch, batch i by indexing, and
    endless iteration that reshuffles at each new epoch.

    >>> from cnnx.preprocessing.image import ImageDataGenerator, Iterator
    >>> isinstance(ImageDataGenerator().flow(np.zeros((2, 4, 4, 1)), batch_size=1), Iterator)
    True
    """

    def __init__(self, n, batch_size, shuffle, seed):
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"{type(self).__name__}: batch_size must be a positive int, "
                             f"received {batch_size!r}")
        self.n, self.batch_size, self.shuffle, self.seed = n, batch_size, shuffle, seed
        self._rng = np.random.default_rng(seed) if seed is not None else _random.generator()
        self.batch_index, self.total_batches_seen = 0, 0
        self._lock = threading.Lock()
        self._set_index_array()

    def _set_index_array(self):
        self.index_array = self._rng.permutation(self.n) if self.shuffle else np.arange(self.n)

    def on_epoch_end(self):
        self._set_index_array()

    def reset(self):
        self.batch_index = 0

    def __len__(self):
        return math.ceil(self.n / self.batch_size)

    def __getitem__(self, idx):
        if not 0 <= idx < len(self):
            raise IndexError(f"batch {idx} out of range for {len(self)} batches")
        return self._get_batch(self.index_array[idx * self.batch_size:
                                                (idx + 1) * self.batch_size])

    def __iter__(self):
        return self

    def __next__(self):
        return self[self._next_index()]

    def _next_index(self):
        with self._lock:
            if self.batch_index == 0 and self.total_batches_seen:
                self._set_index_array()
            idx = self.batch_index
            self.batch_index = (self.batch_index + 1) % len(self)
            self.total_batches_seen += 1
        return idx

    def _next_shard(self, shard):
        """next(self), with x holding only the rows [lo, hi) = shard(batch size) of the
        batch (y and sample weights whole, the random draws the whole batch's); returns
        (batch, batch size, lo). How a cnnx.distributed process reads its part."""
        idx = self._next_index()
        indices = self.index_array[idx * self.batch_size:(idx + 1) * self.batch_size]
        lo, hi = shard(len(indices))
        return self._get_batch(indices, slice(lo, hi)), len(indices), lo

    def _shardable(self):
        """Whether _next_shard can read part of a batch: not when y is made from x, nor
        with ZCA whitening (one matrix product over the batch's rows)."""
        return not getattr(self.generator, "zca_whitening", False)

    def _get_batch(self, indices, rows=None):
        raise NotImplementedError


class NumpyArrayIterator(Iterator):
    """The batches of ImageDataGenerator.flow(x, y): augmented, shuffled per epoch, as a
    Sequence.

    >>> from cnnx.preprocessing.image import ImageDataGenerator
    >>> x, y = np.zeros((5, 4, 4, 1)), np.arange(5)
    >>> it = ImageDataGenerator().flow(x, y, batch_size=2, shuffle=False)
    >>> len(it), [len(y) for _, y in (it[i] for i in range(len(it)))]
    (3, [2, 2, 1])
    """
    def __init__(self, x, y, generator, batch_size=32, shuffle=True, sample_weight=None,
                 seed=None, subset=None):
        x = np.asarray(x)
        if x.ndim != 4:
            raise ValueError(f"flow: `x` must be 4-D (samples, height, width, channels), "
                             f"received shape {x.shape}")
        if y is not None and len(y) != len(x):
            raise ValueError(f"flow: `x` has {len(x)} samples but `y` has {len(y)}")
        if subset is not None:
            split = int(len(x) * generator.validation_split)
            if subset not in ("training", "validation"):
                raise ValueError(f"flow: subset must be training or validation, "
                                 f"received {subset!r}")
            part = slice(None, split) if subset == "validation" else slice(split, None)
            x = x[part]
            y = None if y is None else np.asarray(y)[part]
            sample_weight = None if sample_weight is None else np.asarray(sample_weight)[part]
        self.x, self.y, self.sample_weight, self.generator = x, y, sample_weight, generator
        super().__init__(len(x), batch_size, shuffle, seed)

    def _get_batch(self, indices, rows=None):
        part = indices if rows is None else indices[rows]
        xb = self.generator._prepare(self.x[part], self._rng, rows, len(indices))
        if self.y is None:
            return xb
        yb = np.asarray(self.y)[indices]
        if self.sample_weight is None:
            return xb, yb
        return xb, yb, self.sample_weight[indices]


class DirectoryIterator(Iterator):
    """Images from one subfolder per class (classes are the sorted subfolder names).

    >>> import os
    >>> for name in ("cats", "dogs"):
    ...     os.makedirs(f"folders/{name}", exist_ok=True)
    ...     cnnx.utils.save_img(f"folders/{name}/0.png", np.zeros((8, 8, 3)))
    >>> from cnnx.preprocessing.image import ImageDataGenerator
    >>> gen = ImageDataGenerator()
    >>> it = gen.flow_from_directory("folders", (4, 4), batch_size=2, class_mode="binary")
    Found 2 images belonging to 2 classes.
    >>> it.class_indices, next(it)[0].shape
    ({'cats': 0, 'dogs': 1}, (2, 4, 4, 3))
    """

    def __init__(self, directory, generator, target_size=(256, 256), color_mode="rgb",
                 classes=None, class_mode="categorical", batch_size=32, shuffle=True,
                 seed=None, subset=None, interpolation="nearest", keep_aspect_ratio=False,
                 follow_links=False):
        if class_mode not in ("categorical", "binary", "sparse", "input", None):
            raise ValueError(f"flow_from_directory: class_mode must be categorical, binary, "
                             f"sparse, input or None, received {class_mode!r}")
        if color_mode not in ("grayscale", "rgb", "rgba"):
            raise ValueError(f"flow_from_directory: color_mode must be grayscale, rgb or "
                             f"rgba, received {color_mode!r}")
        directory = os.fspath(directory)
        if not os.path.isdir(directory):
            raise FileNotFoundError(f"flow_from_directory: no such directory: {directory!r}")
        if classes is None:
            classes = sorted(d for d in os.listdir(directory)
                             if os.path.isdir(os.path.join(directory, d)))
        self.class_indices = {c: i for i, c in enumerate(classes)}
        split = generator.validation_split
        if subset is not None and subset not in ("training", "validation"):
            raise ValueError(f"flow_from_directory: subset must be training or validation, "
                             f"received {subset!r}")
        filenames, labels = [], []
        for c in classes:
            folder = os.path.join(directory, c)
            found = sorted(
                os.path.relpath(os.path.join(root, f), directory)
                for root, _, files in os.walk(folder, followlinks=follow_links)
                for f in files if f.lower().endswith(_EXTENSIONS))
            for f in found:   # refused now, not mid-epoch (a FIFO would hang the reader)
                path = os.path.join(directory, f)
                if not stat.S_ISREG(os.stat(path).st_mode):
                    raise ValueError(f"flow_from_directory: {path!r} is not a regular file")
            if subset is not None and split:
                cut = int(len(found) * split)  # Keras: validation is each class's first part
                found = found[:cut] if subset == "validation" else found[cut:]
            filenames += found
            labels += [self.class_indices[c]] * len(found)
        self.directory, self.filenames = directory, filenames
        self.classes = np.array(labels, dtype=np.int32)
        self.filepaths = [os.path.join(directory, f) for f in filenames]
        self.num_classes, self.samples = len(classes), len(filenames)
        self.class_mode, self.color_mode = class_mode, color_mode
        self.target_size, self.interpolation = tuple(target_size), interpolation
        self.keep_aspect_ratio, self.generator = keep_aspect_ratio, generator
        channels = {"grayscale": 1, "rgb": 3, "rgba": 4}[color_mode]
        self.image_shape = self.target_size + (channels,)
        print(f"Found {self.samples} images belonging to {self.num_classes} classes.")
        super().__init__(self.samples, batch_size, shuffle, seed)

    def _shardable(self):
        return self.class_mode != "input" and super()._shardable()

    def _get_batch(self, indices, rows=None):
        part = indices if rows is None else indices[rows]   # only these images are read
        raw = np.stack([_load_cached(self.filepaths[i], self.color_mode, self.target_size,
                                     self.interpolation, self.keep_aspect_ratio)
                        for i in part]) if len(part) else np.empty((0,) + self.image_shape)
        xb = self.generator._prepare(raw, self._rng, rows, len(indices))
        mode = self.class_mode
        if mode is None:
            return xb
        if mode == "input":
            return xb, xb.copy()
        labels = self.classes[indices]
        if mode == "binary":
            return xb, labels.astype(self.generator.dtype)
        if mode == "sparse":
            return xb, labels.astype(self.generator.dtype)
        if mode == "sparse_int":  # image_dataset_from_directory's label_mode="int"
            return xb, labels.astype(np.int32)
        onehot = np.zeros((len(indices), self.num_classes), self.generator.dtype)
        onehot[np.arange(len(indices)), labels] = 1
        return xb, onehot


def image_dataset_from_directory(directory, labels="inferred", label_mode="int",
                                 class_names=None, color_mode="rgb", batch_size=32,
                                 image_size=(256, 256), shuffle=True, seed=None,
                                 validation_split=None, subset=None, interpolation="bilinear",
                                 crop_to_aspect_ratio=False, verbose=True):
    """keras.utils.image_dataset_from_directory: batches of (images, labels) from one
    subfolder per class, images float32 in 0..255 (unscaled), labels by label_mode:
    "int" (sparse), "categorical" (one-hot), "binary" (float32 0/1) or None.
    Returns a cnnx.utils.Dataset of batches (map, shuffle, take, prefetch, ... as
    tf.data's; usable by fit/evaluate/predict) with `class_names` and `file_paths`.
    Unlike Keras, the training/validation split takes each class's first files for
    validation, as flow_from_directory does.

    >>> import os
    >>> for name in ("cats", "dogs"):
    ...     os.makedirs(f"photos/{name}", exist_ok=True)
    ...     for i in range(3):
    ...         cnnx.utils.save_img(f"photos/{name}/{i}.png", np.zeros((8, 8, 3)))
    >>> ds = cnnx.utils.image_dataset_from_directory("photos", image_size=(4, 4), batch_size=4)
    Found 6 images belonging to 2 classes.
    >>> ds.class_names, len(ds)
    (['cats', 'dogs'], 2)
    >>> images, labels = next(iter(ds))
    >>> images.numpy().shape
    (4, 4, 4, 3)
    """
    if labels != "inferred":
        raise ValueError("image_dataset_from_directory: only labels='inferred' is supported")
    modes = {"int": "sparse", "categorical": "categorical", "binary": "binary", None: None}
    if label_mode not in modes:
        raise ValueError(f"image_dataset_from_directory: label_mode must be int, categorical, "
                         f"binary or None, received {label_mode!r}")
    if batch_size is None:
        raise ValueError("image_dataset_from_directory: batch_size=None (unbatched) is not "
                         "supported")
    if subset == "both":
        return tuple(image_dataset_from_directory(
            directory, labels, label_mode, class_names, color_mode, batch_size, image_size,
            shuffle, seed, validation_split, part, interpolation, crop_to_aspect_ratio,
            verbose) for part in ("training", "validation"))
    gen = ImageDataGenerator(validation_split=validation_split or 0.0)
    dataset = DirectoryIterator(directory, gen, tuple(image_size), color_mode, class_names,
                                modes[label_mode], batch_size, shuffle, seed, subset,
                                interpolation, crop_to_aspect_ratio)
    if label_mode == "int":
        dataset.class_mode = "sparse_int"
    from ..utils.dataset import Dataset
    return Dataset.from_sequence(dataset, class_names=list(dataset.class_indices),
                                 file_paths=dataset.filepaths)

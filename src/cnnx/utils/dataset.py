"""Dataset: the part of tf.data.Dataset that Keras tutorials call, lazily, without
TensorFlow. image_dataset_from_directory returns one.

    train_ds = cnnx.utils.image_dataset_from_directory("PetImages", image_size=(180, 180))
    train_ds = train_ds.map(lambda x, y: (augment(x), y)).prefetch(32)
    model.fit(train_ds, epochs=25)

A Dataset is a re-iterable sequence of elements (usually (images, labels) batches):
every pass (every epoch of fit) runs its pipeline again, so a shuffle reshuffles and a
map re-applies. Arrays in the elements have `.numpy()`, as TensorFlow's tensors do.
"""
import itertools
import numbers

import numpy as np

from .. import _random

__all__ = ["Dataset", "Tensor", "AUTOTUNE"]

AUTOTUNE = -1   # tf.data.AUTOTUNE: accepted wherever a buffer size is


class Tensor(np.ndarray):
    """An array with TensorFlow's `.numpy()` (a plain ndarray of the same values)."""

    def numpy(self):
        return np.asarray(self)


def _tensors(element):
    """The element with each array viewed as a Tensor (tuples and dicts kept)."""
    if isinstance(element, tuple):
        return tuple(_tensors(e) for e in element)
    if isinstance(element, dict):
        return {k: _tensors(v) for k, v in element.items()}
    if isinstance(element, np.ndarray):
        return element.view(Tensor)
    return element


def _count(value, name, where, allow_none=False, allow_autotune=False):
    if value is None and allow_none:
        return None
    if allow_autotune and value == AUTOTUNE:
        return AUTOTUNE
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"Dataset.{where}: `{name}` must be a non-negative int, received "
                         f"{value!r}")
    return int(value)


class Dataset:
    """A lazy, re-iterable sequence of elements; each method returns a new Dataset.

    >>> ds = cnnx.utils.Dataset.from_tensor_slices((np.arange(6), np.arange(6) * 10))
    >>> batches = ds.map(lambda a, b: (a, a + b)).batch(4)
    >>> len(batches)
    2
    >>> for a, b in batches:
    ...     print(a.numpy(), b.numpy())
    [0 1 2 3] [ 0 11 22 33]
    [4 5] [44 55]
    """

    def __init__(self, passes, length=None, class_names=None, file_paths=None):
        self._passes = passes          # () -> an iterator over one pass's elements
        self._length = length
        if class_names is not None:
            self.class_names = list(class_names)
        if file_paths is not None:
            self.file_paths = list(file_paths)

    @classmethod
    def from_sequence(cls, sequence, **attributes):
        """A Dataset of a Sequence's batches (len() and indexing), calling its
        on_epoch_end between passes (before each pass but the first: a pass that stops
        early, as fit's last step does, still ends its epoch)."""
        state = {"passes": 0}

        def passes():
            if state["passes"] and hasattr(sequence, "on_epoch_end"):
                sequence.on_epoch_end()
            state["passes"] += 1
            for i in range(len(sequence)):
                yield sequence[i]
        return cls(passes, len(sequence), **attributes)

    @classmethod
    def from_tensor_slices(cls, tensors):
        """One element per row of the arrays (a tuple or dict of arrays sliced alike)."""
        if isinstance(tensors, tuple):
            arrays = [np.asarray(t) for t in tensors]
        elif isinstance(tensors, dict):
            arrays = [np.asarray(t) for t in tensors.values()]
        else:
            arrays = [np.asarray(tensors)]
        n = {len(a) for a in arrays}
        if len(n) != 1:
            raise ValueError(f"Dataset.from_tensor_slices: the arrays have different "
                             f"lengths {sorted(n)}")
        n = n.pop()

        def element(i):
            if isinstance(tensors, tuple):
                return tuple(a[i] for a in arrays)
            if isinstance(tensors, dict):
                return dict(zip(tensors, (a[i] for a in arrays)))
            return arrays[0][i]
        return cls(lambda: (element(i) for i in range(n)), n)

    def _derived(self, passes, length):
        return Dataset(passes, length, getattr(self, "class_names", None),
                       getattr(self, "file_paths", None))

    # -- iteration -----------------------------------------------------------------
    def __iter__(self):
        return (_tensors(e) for e in self._passes())

    def __len__(self):
        if self._length is None:
            raise TypeError("The dataset length is unknown (after unbatch, repeat or "
                            "filter); give fit steps_per_epoch")
        return self._length

    def cardinality(self):
        return -2 if self._length is None else self._length   # tf.data.UNKNOWN = -2

    def as_numpy_iterator(self):
        return iter(self._passes())

    # -- transformations -----------------------------------------------------------
    def map(self, map_func, num_parallel_calls=None, deterministic=None):  # noqa: ARG002
        """map_func applied to each element (a tuple element is passed unpacked, as
        tf.data does). The calls run in order on one thread: results do not depend on
        num_parallel_calls."""
        if not callable(map_func):
            raise TypeError(f"Dataset.map: `map_func` must be callable, received "
                            f"{type(map_func).__name__}")

        def passes():
            for e in self._passes():
                yield map_func(*_tensors(e)) if isinstance(e, tuple) else map_func(
                    _tensors(e))
        return self._derived(passes, self._length)

    def filter(self, predicate):
        return self._derived(lambda: (e for e in self._passes() if bool(
            predicate(*_tensors(e)) if isinstance(e, tuple) else predicate(_tensors(e)))),
            None)

    def take(self, count):
        count = _count(count, "count", "take")
        length = None if self._length is None else min(self._length, count)
        return self._derived(lambda: itertools.islice(self._passes(), count), length)

    def skip(self, count):
        count = _count(count, "count", "skip")
        length = None if self._length is None else max(self._length - count, 0)
        return self._derived(lambda: itertools.islice(self._passes(), count, None), length)

    def repeat(self, count=None):
        count = _count(count, "count", "repeat", allow_none=True)

        def passes():
            for _ in (itertools.count() if count is None else range(count)):
                yield from self._passes()
        length = None if count is None or self._length is None else self._length * count
        return self._derived(passes, length)

    def batch(self, batch_size, drop_remainder=False, num_parallel_calls=None,  # noqa: ARG002
              deterministic=None):  # noqa: ARG002
        """Consecutive elements stacked into batches of batch_size."""
        size = _count(batch_size, "batch_size", "batch")
        if size == 0:
            raise ValueError("Dataset.batch: `batch_size` must be positive")

        def passes():
            chunk = []
            for e in self._passes():
                chunk.append(e)
                if len(chunk) == size:
                    yield _stack(chunk)
                    chunk = []
            if chunk and not drop_remainder:
                yield _stack(chunk)
        length = None
        if self._length is not None:
            length = self._length // size if drop_remainder else -(-self._length // size)
        return self._derived(passes, length)

    def unbatch(self):
        """Each batch split back into its rows."""
        def passes():
            for e in self._passes():
                parts = e if isinstance(e, tuple) else (e,)
                for i in range(len(parts[0])):
                    row = tuple(p[i] for p in parts)
                    yield row if isinstance(e, tuple) else row[0]
        return self._derived(passes, None)

    def shuffle(self, buffer_size, seed=None, reshuffle_each_iteration=True):
        """Elements drawn at random from a buffer of buffer_size, as tf.data shuffles;
        reshuffled on every pass (unless told otherwise), from cnnx's seeded generator or
        `seed`."""
        size = _count(buffer_size, "buffer_size", "shuffle")
        if size == 0:
            raise ValueError("Dataset.shuffle: `buffer_size` must be positive")
        if seed is not None:
            seed = _count(seed, "seed", "shuffle")
        state = {"pass": 0}

        def passes():
            if seed is None:
                rng = _random.generator()
            else:   # a seed gives the same orders on every run: one per pass
                rng = np.random.default_rng(
                    [seed, state["pass"]] if reshuffle_each_iteration else seed)
            state["pass"] += 1
            buffer = []
            for e in self._passes():
                if len(buffer) < size:
                    buffer.append(e)
                    continue
                i = int(rng.integers(size))
                yield buffer[i]
                buffer[i] = e
            while buffer:
                yield buffer.pop(int(rng.integers(len(buffer))))
        return self._derived(passes, self._length)

    def cache(self, filename=""):
        """The elements kept in memory after the first full pass, and replayed."""
        if filename:
            raise NotImplementedError("Dataset.cache: caching to a file is not "
                                      "implemented in cnnx; use cache() (memory)")
        stored = []

        def passes():
            if stored and stored[-1] is _DONE:
                yield from stored[:-1]
                return
            stored.clear()
            for e in self._passes():
                stored.append(e)
                yield e
            stored.append(_DONE)
        return self._derived(passes, self._length)

    def prefetch(self, buffer_size):
        """The same dataset: cnnx's fit fetches batches ahead on a thread of its own."""
        _count(buffer_size, "buffer_size", "prefetch", allow_autotune=True)
        return self._derived(self._passes, self._length)

    def __repr__(self):
        n = "unknown" if self._length is None else self._length
        return f"<Dataset: {n} elements>"


_DONE = object()


def _stack(elements):
    first = elements[0]
    if isinstance(first, tuple):
        return tuple(np.stack([e[i] for e in elements]) for i in range(len(first)))
    if isinstance(first, dict):
        return {k: np.stack([e[k] for e in elements]) for k in first}
    return np.stack(elements)

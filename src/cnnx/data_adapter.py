"""Batches for fit / evaluate / predict: arrays (one per model input and output), or a
data source: a Keras Sequence or PyDataset (len() and indexing, such as the image
iterators), or any iterator or generator of batches. An EpochIterator gives the checked
(x, y, sample_weight) batches of one epoch, whichever the data is.

A background thread fetches the batches ahead of the training loop (JPEG decoding and
augmentation release the GIL for much of their time), and the time the loop spends
waiting for data is measured."""
import inspect
import queue
import threading
import time

import numpy as np

__all__ = ["is_source", "Prefetcher", "split_batch", "EpochIterator"]


def is_source(x):
    """Whether x is a data source rather than an array."""
    if x is None or isinstance(x, (np.ndarray, list, tuple, dict, int, float)):
        return False
    if inspect.isgenerator(x) or hasattr(x, "__next__"):
        return True
    if hasattr(x, "__getitem__") and hasattr(x, "__len__"):
        return True
    return _reiterable(x)


def _reiterable(x):
    """A source iterated afresh each epoch (a cnnx Dataset): __iter__, no indexing."""
    return hasattr(x, "__iter__") and not hasattr(x, "__next__") \
        and not hasattr(x, "__getitem__") and not isinstance(x, (str, bytes))


def source_steps(source, steps, where):
    if steps is not None:
        if steps < 1:
            raise ValueError(f"{where}: steps must be a positive int, received {steps}")
        return int(steps)
    if hasattr(source, "__len__") and (hasattr(source, "__getitem__") or _reiterable(source)):
        try:
            return len(source)
        except TypeError:
            pass
    raise ValueError(f"{where}: a generator has no length; pass steps_per_epoch "
                     f"(or steps / validation_steps) to say how many batches make an epoch")


def split_batch(batch, where):
    """(x, y or None, sample_weight or None) from what a source yields."""
    if isinstance(batch, tuple):
        if len(batch) == 2:
            return batch[0], batch[1], None
        if len(batch) == 3:
            return batch
        if len(batch) == 1:
            return batch[0], None, None
        raise ValueError(f"{where}: a batch must be x, (x, y) or (x, y, sample_weight), "
                         f"received a tuple of {len(batch)}")
    return batch, None, None


_END = object()


class Prefetcher:
    """Yields `steps` batches of a source, fetched by a background thread, `depth` ahead.
    For a Sequence, batch i of the epoch is source[i] (cycling), and on_epoch_end() is
    called after the last one."""

    def __init__(self, source, steps, depth=4, shard=None):
        self.source, self.steps, self.shard = source, steps, shard
        self.wait_s = 0.0
        self._queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        sequence = hasattr(self.source, "__getitem__") and hasattr(self.source, "__len__") \
            and not hasattr(self.source, "__next__")
        try:
            iterator = iter(self.source) if _reiterable(self.source) else self.source
            for i in range(self.steps):
                if self._stop.is_set():
                    return
                if self.shard is not None:   # a cnnx image iterator: this process's rows
                    item = _Shard(*self.source._next_shard(self.shard))
                elif sequence:
                    item = self.source[i % len(self.source)]
                else:
                    try:
                        item = next(iterator)
                    except StopIteration:
                        break
                self._queue.put(item)
            if sequence and hasattr(self.source, "on_epoch_end"):
                self.source.on_epoch_end()
            self._queue.put(_END)
        except BaseException as e:  # handed to the training loop, raised there
            self._queue.put(e)

    def __iter__(self):
        while True:
            t = time.perf_counter()
            item = self._queue.get()
            self.wait_s += time.perf_counter() - t
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self):
        self._stop.set()
        while self._thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                self._queue.get(timeout=0.05)
            except queue.Empty:
                pass


class Batch(tuple):
    """(x, y, sample_weight) of a global batch of which this process holds the rows
    offset to offset + len(x[0]) of x; y and sample_weight are whole."""

    def __new__(cls, x, y, sample_weight, size, offset):
        batch = super().__new__(cls, (x, y, sample_weight))
        batch.size, batch.offset = size, offset
        return batch


class _Shard:
    """Part of a batch read by one process of cnnx.distributed: the batch (x holding the
    rows offset to offset + len), and the whole batch's size."""

    def __init__(self, batch, size, offset):
        self.batch, self.size, self.offset = batch, size, offset


def shardable(source):
    """Whether a source can read part of a batch (cnnx's image iterators)."""
    return callable(getattr(source, "_next_shard", None)) and source._shardable()


class EpochIterator:
    """The batches of an epoch, each (x, y, sample_weight) with x and y lists of checked
    arrays (one per model input and output). `steps` is the number of batches per epoch;
    `wait_s` is the time the last epoch waited for a data source."""

    def __init__(self, steps):
        self.steps = steps
        self.wait_s = 0.0

    @classmethod
    def from_arrays(cls, xs, ys, sample_weight, batch_size, steps, shuffle, shard=None):
        """Batches of arrays. With `shard` (a function of the batch size giving the
        (start, stop) samples this process computes, from cnnx.distributed), x holds
        only those rows and the batch is a distributed Batch; y and the weights stay
        whole (every process updates the metrics with all of them)."""
        n = len(xs[0])
        it = cls(min(-(-n // batch_size), steps or np.iinfo(np.int64).max))
        it._arrays = (xs, ys, sample_weight, batch_size, shuffle)
        it._shard = shard
        return it

    @classmethod
    def from_source(cls, model, source, steps, where, class_weight=None, targets=True,
                    shard=None):
        """Batches of a data source. With `shard` (see from_arrays) and a source that
        can read part of a batch (cnnx's image iterators), each process reads only its
        rows; any other source is read whole by every process."""
        it = cls(source_steps(source, steps, where))
        it._source = (model, source, where, class_weight, targets)
        it._shard = shard if shard is not None and shardable(source) else None
        return it

    def epoch(self, rng):
        """(step, batch) for the epoch; rng shuffles arrays (None: in order)."""
        if hasattr(self, "_arrays"):
            return self._array_epoch(rng)
        return self._source_epoch()

    def _array_epoch(self, rng):
        xs, ys, sw, batch_size, shuffle = self._arrays
        n = len(xs[0])
        order = rng.permutation(n) if shuffle and rng is not None else None
        for step, start in enumerate(range(0, n, batch_size)):
            if step >= self.steps:
                return
            stop = min(start + batch_size, n)
            if order is None:
                pick = slice(start, stop)
            else:
                pick = order[start:stop]
            batch = ([a[pick] for a in xs] if self._shard is None else None,
                     None if ys is None else [None if a is None else a[pick] for a in ys],
                     None if sw is None else sw[pick])
            if self._shard is not None:
                lo, hi = self._shard(stop - start)
                rows = slice(start + lo, start + hi) if order is None else pick[lo:hi]
                batch = Batch([a[rows] for a in xs], batch[1], batch[2], stop - start, lo)
            yield step, batch

    def _source_epoch(self):
        model, source, where, class_weight, targets = self._source
        depth = getattr(source, "max_queue_size", 4)
        feed = Prefetcher(source, self.steps,
                          depth=min(int(depth), 64) if isinstance(depth, int) and depth > 0
                          else 4, shard=self._shard)
        try:
            for step, batch in enumerate(feed):
                part = batch if isinstance(batch, _Shard) else None
                xb, yb, wb = split_batch(batch if part is None else part.batch, where)
                if part is not None and not len(np.asarray(xb)):
                    xs = _empty_rows(model)   # this process computes none of the batch
                else:
                    xs = model._check_x(xb, where)
                n = len(xs[0]) if part is None else part.size
                if not targets:
                    yield step, (xs, None, None)
                    continue
                if yb is None:
                    raise ValueError(f"{where}: the data source yields inputs without "
                                     f"targets; it must yield (x, y) batches")
                ys = model._check_y(yb, n, where)
                wb = model._sample_weights(ys, wb, class_weight, n, where)
                if part is not None:
                    yield step, Batch(xs, ys, wb, part.size, part.offset)
                    continue
                yield step, (xs, ys, wb)
        finally:
            feed.close()
            self.wait_s = feed.wait_s


def _empty_rows(model):
    """x for a process that computes no sample of a batch: no rows of each input."""
    return [np.empty((0,) + tuple(t.shape[1:]), dtype)
            for t, dtype in zip(model.inputs, model._in_dtypes)]

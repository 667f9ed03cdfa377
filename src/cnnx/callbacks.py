"""cnnx.callbacks, with Keras's hook names."""
import csv
import math
import os
import warnings

import numpy as np

from .progbar import Progbar

__all__ = ["Callback", "History", "ProgbarLogger", "EarlyStopping", "ModelCheckpoint",
           "ReduceLROnPlateau", "LearningRateScheduler", "CSVLogger", "TerminateOnNaN",
           "LambdaCallback", "CallbackList", "TensorBoard"]


class Callback:
    """Base of the callbacks: on_train/epoch/batch (and on_test_*, on_predict_*) begin
    and end hooks, each given the logs; self.model is the model being run.

    >>> class Count(cnnx.callbacks.Callback):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.batches = 0
    ...     def on_train_batch_end(self, batch, logs=None):
    ...         self.batches += 1
    >>> model = cnnx.Sequential([cnnx.Input((2,)), cnnx.layers.Dense(1)])
    >>> model.compile(optimizer="sgd", loss="mse")
    >>> count = Count()
    >>> x, y = np.ones((10, 2)), np.ones((10, 1))
    >>> history = model.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[count])
    >>> count.batches   # 3 batches in each of 2 epochs
    6
    """
    def __init__(self):
        self.model = None
        self.params = {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def on_train_begin(self, logs=None): pass
    def on_train_end(self, logs=None): pass
    def on_epoch_begin(self, epoch, logs=None): pass
    def on_epoch_end(self, epoch, logs=None): pass
    def on_train_batch_begin(self, batch, logs=None): pass
    def on_train_batch_end(self, batch, logs=None): pass
    def on_test_begin(self, logs=None): pass
    def on_test_end(self, logs=None): pass
    def on_test_batch_begin(self, batch, logs=None): pass
    def on_test_batch_end(self, batch, logs=None): pass
    def on_predict_begin(self, logs=None): pass
    def on_predict_end(self, logs=None): pass
    def on_predict_batch_begin(self, batch, logs=None): pass
    def on_predict_batch_end(self, batch, logs=None): pass


class CallbackList:
    """The callbacks of one fit, evaluate or predict: each hook called on every callback
    in order.

    >>> seen = []
    >>> log = cnnx.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(epoch))
    >>> callbacks = cnnx.callbacks.CallbackList([log], model=None, params={"epochs": 1})
    >>> callbacks.on_epoch_end(0, {})
    >>> seen
    [0]
    """
    def __init__(self, callbacks, model, params):
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            cb.set_model(model)
            cb.set_params(params)

    def __getattr__(self, hook):
        if not hook.startswith("on_"):
            raise AttributeError(hook)

        def call(*args, **kwargs):
            for cb in self.callbacks:
                getattr(cb, hook)(*args, **kwargs)
        return call


class History(Callback):
    """Records the epoch logs: history[key] is a list with one value per epoch.

    >>> model = cnnx.Sequential([cnnx.Input((3,)), cnnx.layers.Dense(1)])
    >>> model.compile(optimizer="sgd", loss="mse")
    >>> x, y = np.ones((8, 3), np.float32), np.zeros((8, 1), np.float32)
    >>> history = model.fit(x, y, epochs=3, verbose=0)
    >>> history.epoch, sorted(history.history)
    ([0, 1, 2], ['loss'])
    """

    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []

    def on_train_begin(self, logs=None):  # noqa: ARG002 (Keras's signature)
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)


def _monitored(callback, logs):
    """The monitored value of the logs, or None with a warning that lists what the logs
    hold (as Keras warns: a misspelt monitor otherwise does nothing, silently)."""
    value = (logs or {}).get(callback.monitor)
    if value is None:
        warnings.warn(f"{type(callback).__name__} is conditioned on {callback.monitor!r}, "
                      f"which is not in the logs; available: {', '.join(sorted(logs or {}))}",
                      UserWarning, stacklevel=3)
    return value


class ProgbarLogger(Callback):
    """Keras's progress output: a bar per epoch (verbose=1), or one line per epoch
    (verbose=2, or when the output is not a terminal, so that logs are not flooded).

    >>> isinstance(cnnx.callbacks.ProgbarLogger(), cnnx.callbacks.Callback)
    True
    """

    def __init__(self, verbose=1, stream=None):
        super().__init__()
        self.verbose = verbose
        self.stream = stream

    def _out(self):
        import sys
        return self.stream or sys.stdout

    def on_train_begin(self, logs=None):  # noqa: ARG002 (Keras's signature)
        self.epochs = self.params.get("epochs", 1)
        self.steps = self.params.get("steps")

    def on_epoch_begin(self, epoch, logs=None):  # noqa: ARG002 (Keras's signature)
        if self.epochs > 1:
            print(f"Epoch {epoch + 1}/{self.epochs}", file=self._out(), flush=True)
        self.bar = Progbar(self.steps, verbose=self.verbose, stream=self._out())

    def on_train_batch_end(self, batch, logs=None):
        self.bar.update(batch + 1, logs or {})

    def on_epoch_end(self, epoch, logs=None):  # noqa: ARG002 (Keras's signature)
        self.bar.update(self.bar.seen, logs or {}, finalize=True)


class EarlyStopping(Callback):
    """Stops training when `monitor` (val_loss) has not improved by min_delta for
    `patience` epochs; restore_best_weights puts back the best epoch's weights.

    >>> model = cnnx.Sequential([cnnx.Input((3,)), cnnx.layers.Dense(1)])
    >>> model.compile(optimizer="sgd", loss="mse")
    >>> x, y = np.ones((8, 3), np.float32), np.zeros((8, 1), np.float32)
    >>> stop = cnnx.callbacks.EarlyStopping(monitor="loss", patience=0, min_delta=10.0)
    >>> history = model.fit(x, y, epochs=20, verbose=0, callbacks=[stop])
    >>> len(history.epoch)   # no epoch improved by 10: stopped after the second
    2
    """
    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0):
        super().__init__()
        self.monitor, self.min_delta, self.patience = monitor, abs(min_delta), patience
        self.verbose, self.baseline = verbose, baseline
        self.restore_best_weights, self.start_from_epoch = restore_best_weights, start_from_epoch
        if mode == "auto":
            mode = "max" if "acc" in monitor or "auc" in monitor else "min"
        if mode not in ("min", "max"):
            raise ValueError(f"EarlyStopping: mode must be auto, min or max, received {mode!r}")
        self.mode = mode

    def _better(self, current, reference):
        if self.mode == "min":
            return current < reference - self.min_delta
        return current > reference + self.min_delta

    def on_train_begin(self, logs=None):  # noqa: ARG002 (Keras's signature)
        self.wait, self.stopped_epoch, self.best_weights, self.best_epoch = 0, 0, None, 0
        self.best = self.baseline if self.baseline is not None else (
            math.inf if self.mode == "min" else -math.inf)

    def on_epoch_end(self, epoch, logs=None):
        if epoch < self.start_from_epoch:
            return
        current = _monitored(self, logs)
        if current is None:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
        self.wait += 1
        if self._better(current, self.best):
            self.best, self.best_epoch, self.wait = current, epoch, 0
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):  # noqa: ARG002 (Keras's signature)
        if self.stopped_epoch and self.verbose:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None and self.stopped_epoch:
            if self.verbose:
                print(f"Restoring model weights from the end of the best epoch: "
                      f"{self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)


class ModelCheckpoint(Callback):
    """Saves the model (or its weights) at the end of every epoch, or every `save_freq`
    batches; `filepath` may hold {epoch} and log keys ({val_loss:.2f}). The path's kind is
    checked when the callback is made, and missing folders are created when it saves.

    >>> model = cnnx.Sequential([cnnx.Input((3,)), cnnx.layers.Dense(1)])
    >>> model.compile(optimizer="sgd", loss="mse")
    >>> x, y = np.ones((8, 3), np.float32), np.zeros((8, 1), np.float32)
    >>> save = cnnx.callbacks.ModelCheckpoint("ckpt/e{epoch}.keras", monitor="loss")
    >>> history = model.fit(x, y, epochs=2, verbose=0, callbacks=[save])
    >>> import os
    >>> sorted(os.listdir("ckpt"))
    ['e1.keras', 'e2.keras']
    """
    _rank_zero_only = True   # under cnnx.distributed, rank 0 alone writes files


    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False,
                 save_weights_only=False, mode="auto", save_freq="epoch",
                 initial_value_threshold=None):
        super().__init__()
        self.filepath, self.monitor, self.verbose = os.fspath(filepath), monitor, verbose
        self.save_best_only, self.save_weights_only = save_best_only, save_weights_only
        suffixes = ((".weights.npz", ".weights.h5", ".h5", ".hdf5") if save_weights_only
                    else (".keras", ".h5", ".hdf5"))
        if not self.filepath.endswith(suffixes):
            kind = "weights" if save_weights_only else "models"
            raise ValueError(f"ModelCheckpoint: cnnx saves {kind} to a path ending in "
                             f"{' or '.join(suffixes)}, received {self.filepath!r}")
        if self.filepath.endswith((".h5", ".hdf5")):   # Keras's HDF5: needs h5py, now
            from .models.keras_files import _h5py
            _h5py()
        if save_freq != "epoch" and (isinstance(save_freq, bool)
                                     or not isinstance(save_freq, int) or save_freq < 1):
            raise ValueError(f"ModelCheckpoint: `save_freq` must be 'epoch' or a positive "
                             f"int (batches), received {save_freq!r}")
        self.save_freq = save_freq
        if mode == "auto":
            mode = "max" if "acc" in monitor or "auc" in monitor else "min"
        if mode not in ("min", "max"):
            raise ValueError(f"ModelCheckpoint: mode must be auto, min or max, "
                             f"received {mode!r}")
        self.mode = mode
        self.best = (initial_value_threshold if initial_value_threshold is not None
                     else math.inf if mode == "min" else -math.inf)
        self._epoch, self._batches = 0, 0

    def on_epoch_begin(self, epoch, logs=None):  # noqa: ARG002 (Keras's signature)
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq == "epoch":
            return
        self._batches += 1
        if self._batches % self.save_freq == 0:
            self._save(self._epoch, logs or {}, batch=batch)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save(epoch, logs or {})

    def _save(self, epoch, logs, batch=None):
        try:
            path = self.filepath.format(epoch=epoch + 1, batch=(batch or 0) + 1, **logs)
        except KeyError as e:
            raise KeyError(f"ModelCheckpoint: the filepath {self.filepath!r} names {e}, "
                           f"which is not in the logs; available: "
                           f"{', '.join(sorted(logs))}") from None
        if self.save_best_only:
            current = _monitored(self, logs)
            if current is None:
                return
            better = current < self.best if self.mode == "min" else current > self.best
            if not better:
                if self.verbose:
                    print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from "
                          f"{self.best:.5f}")
                return
            if self.verbose:
                print(f"\nEpoch {epoch + 1}: {self.monitor} improved from {self.best:.5f} "
                      f"to {current:.5f}, saving model to {path}")
            self.best = current
        elif self.verbose:
            print(f"\nEpoch {epoch + 1}: saving model to {path}")
        folder = os.path.dirname(path)
        if folder:
            os.makedirs(folder, exist_ok=True)
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)


class ReduceLROnPlateau(Callback):
    """Multiplies the learning rate by `factor` when `monitor` has not improved for
    `patience` epochs (down to min_lr), after a cooldown.

    >>> model = cnnx.Sequential([cnnx.Input((3,)), cnnx.layers.Dense(1)])
    >>> model.compile(optimizer="sgd", loss="mse")
    >>> x, y = np.ones((8, 3), np.float32), np.zeros((8, 1), np.float32)
    >>> reduce = cnnx.callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=0,
    ...                                           min_delta=10.0)
    >>> history = model.fit(x, y, epochs=3, verbose=0, callbacks=[reduce])
    >>> # 0.01 halved twice: epochs 2 and 3 did not improve by 10
    >>> round(model.optimizer.learning_rate, 6)
    0.0025
    """
    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto",
                 min_delta=1e-4, cooldown=0, min_lr=0.0):
        super().__init__()
        if factor >= 1.0:
            raise ValueError(f"ReduceLROnPlateau: factor must be < 1, received {factor}")
        self.monitor, self.factor, self.patience, self.verbose = monitor, factor, patience, verbose
        self.min_delta, self.cooldown, self.min_lr = min_delta, cooldown, min_lr
        self.mode = ("max" if "acc" in monitor else "min") if mode == "auto" else mode

    def on_train_begin(self, logs=None):  # noqa: ARG002 (Keras's signature)
        self.wait, self.cooldown_counter = 0, 0
        self.best = math.inf if self.mode == "min" else -math.inf

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        logs["learning_rate"] = self.model.optimizer.learning_rate
        current = _monitored(self, logs)
        if current is None:
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        better = (current < self.best - self.min_delta if self.mode == "min"
                  else current > self.best + self.min_delta)
        if better:
            self.best, self.wait = current, 0
        elif self.cooldown_counter <= 0:
            self.wait += 1
            if self.wait >= self.patience:
                old = self.model.optimizer.learning_rate
                new = max(old * self.factor, self.min_lr)
                if old > self.min_lr:
                    self.model.optimizer.learning_rate = new
                    if self.verbose:
                        print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning "
                              f"rate to {new}.")
                    self.cooldown_counter, self.wait = self.cooldown, 0


class LearningRateScheduler(Callback):
    """Sets the learning rate at each epoch's start to schedule(epoch, lr).

    >>> model = cnnx.Sequential([cnnx.Input((3,)), cnnx.layers.Dense(1)])
    >>> model.compile(optimizer="sgd", loss="mse")
    >>> x, y = np.ones((8, 3), np.float32), np.zeros((8, 1), np.float32)
    >>> schedule = cnnx.callbacks.LearningRateScheduler(lambda epoch, lr: 0.1 / (epoch + 1))
    >>> history = model.fit(x, y, epochs=2, verbose=0, callbacks=[schedule])
    >>> [round(v, 4) for v in history.history["learning_rate"]]
    [0.1, 0.05]
    """
    def __init__(self, schedule, verbose=0):
        super().__init__()
        self.schedule, self.verbose = schedule, verbose

    def on_epoch_begin(self, epoch, logs=None):  # noqa: ARG002 (Keras's signature)
        try:
            lr = self.schedule(epoch, self.model.optimizer.learning_rate)
        except TypeError:
            lr = self.schedule(epoch)
        if not isinstance(lr, (float, int, np.floating)):
            raise ValueError(f"LearningRateScheduler: the schedule must return a float, "
                             f"received {lr!r}")
        self.model.optimizer.learning_rate = float(lr)
        if self.verbose:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {lr}.")

    def on_epoch_end(self, epoch, logs=None):  # noqa: ARG002 (Keras's signature)
        if logs is not None:
            logs["learning_rate"] = self.model.optimizer.learning_rate


class CSVLogger(Callback):
    """Writes each epoch's logs as a row of a CSV file (append=True continues one).

    >>> model = cnnx.Sequential([cnnx.Input((3,)), cnnx.layers.Dense(1)])
    >>> model.compile(optimizer="sgd", loss="mse")
    >>> x, y = np.ones((8, 3), np.float32), np.zeros((8, 1), np.float32)
    >>> log = cnnx.callbacks.CSVLogger("log.csv")
    >>> history = model.fit(x, y, epochs=2, verbose=0, callbacks=[log])
    >>> open("log.csv").readline().strip()
    'epoch,loss'
    """
    _rank_zero_only = True   # under cnnx.distributed, rank 0 alone writes files

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.filename, self.sep, self.append = os.fspath(filename), separator, append

    def on_train_begin(self, logs=None):  # noqa: ARG002 (Keras's signature)
        exists = self.append and os.path.exists(self.filename)
        self.file = open(self.filename, "a" if self.append else "w", newline="")
        self.writer, self.keys, self._header = None, None, not exists

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
            self.writer = csv.writer(self.file, delimiter=self.sep)
            if self._header:
                self.writer.writerow(["epoch"] + self.keys)
        self.writer.writerow([epoch] + [logs.get(k, "NA") for k in self.keys])
        self.file.flush()

    def on_train_end(self, logs=None):  # noqa: ARG002 (Keras's signature)
        self.file.close()


class TerminateOnNaN(Callback):
    """Stops training when a batch's loss is NaN or infinite.

    >>> model = cnnx.Sequential([cnnx.Input((3,)), cnnx.layers.Dense(1)])
    >>> model.compile(optimizer=cnnx.optimizers.SGD(learning_rate=1e30), loss="mse")
    >>> x, y = np.ones((8, 3), np.float32), np.zeros((8, 1), np.float32)
    >>> stop = cnnx.callbacks.TerminateOnNaN()
    >>> import warnings; warnings.simplefilter("ignore")   # the overflow
    >>> history = model.fit(x, y, batch_size=2, epochs=5, verbose=0, callbacks=[stop])
    Batch 1: Invalid loss, terminating training
    >>> len(history.epoch)   # the loss overflowed in the first epoch
    1
    """
    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(loss):
            print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


class LambdaCallback(Callback):
    """A callback made of functions, one per hook given: on_epoch_begin, on_epoch_end,
    on_train_begin, on_train_end, on_train_batch_begin, on_train_batch_end, and any other
    hook (on_test_batch_end, ...) by its name.

    >>> model = cnnx.Sequential([cnnx.Input((3,)), cnnx.layers.Dense(1)])
    >>> model.compile(optimizer="sgd", loss="mse")
    >>> x, y = np.ones((8, 3), np.float32), np.zeros((8, 1), np.float32)
    >>> seen = []
    >>> log = cnnx.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(epoch))
    >>> history = model.fit(x, y, epochs=3, verbose=0, callbacks=[log])
    >>> seen
    [0, 1, 2]
    """
    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None,
                 on_train_end=None, on_train_batch_begin=None, on_train_batch_end=None,
                 **kwargs):
        super().__init__()
        hooks = dict(on_epoch_begin=on_epoch_begin, on_epoch_end=on_epoch_end,
                     on_train_begin=on_train_begin, on_train_end=on_train_end,
                     on_train_batch_begin=on_train_batch_begin,
                     on_train_batch_end=on_train_batch_end, **kwargs)
        for name, fn in hooks.items():
            if fn is not None:
                setattr(self, name, fn)


def _tensorboard():
    try:
        from tensorboard.compat.proto import (
            event_pb2,
            summary_pb2,
            tensor_pb2,
            tensor_shape_pb2,
            types_pb2,
        )
        from tensorboard.summary.writer.event_file_writer import EventFileWriter
    except ImportError:
        raise ImportError("TensorBoard needs the tensorboard package: pip install "
                          "'cnnx[tensorboard]' (or pip install tensorboard)") from None
    return dict(event=event_pb2, summary=summary_pb2, tensor=tensor_pb2,
                shape=tensor_shape_pb2, types=types_pb2, writer=EventFileWriter)


def _png(gray):
    """A 2-D array in [0, 1] as PNG bytes (8-bit grayscale; zlib only)."""
    import struct
    import zlib
    pixels = (np.clip(gray, 0, 1) * 255).astype(np.uint8)
    raw = b"".join(b"\x00" + row.tobytes() for row in pixels)

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", pixels.shape[1], pixels.shape[0], 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


class TensorBoard(Callback):
    """Writes TensorBoard event files (the `tensorboard` extra): under log_dir/train and
    log_dir/validation, the epoch's logs as scalars ``epoch_<name>`` (the validation logs
    without their ``val_`` prefix, as Keras 3 writes them) and the learning rate; with
    update_freq="batch" (or every N batches) ``batch_<name>`` scalars too; every
    histogram_freq epochs a histogram of each weight; with write_images, each weight as
    a grayscale image; with write_graph, the model's summary() as text (cnnx has no
    TensorFlow graph to write). Read them with `tensorboard --logdir log_dir`.

    >>> import os
    >>> model = cnnx.Sequential([cnnx.Input((3,)), cnnx.layers.Dense(1)])
    >>> model.compile(optimizer="sgd", loss="mse")
    >>> board = cnnx.callbacks.TensorBoard(log_dir="logs")
    >>> history = model.fit(np.ones((4, 3)), np.ones((4, 1)), verbose=0, callbacks=[board])
    >>> os.listdir("logs")
    ['train']
    """
    _rank_zero_only = True   # under cnnx.distributed, rank 0 alone writes files


    def __init__(self, log_dir="logs", histogram_freq=0, write_graph=True,
                 write_images=False, write_steps_per_second=False, update_freq="epoch",
                 profile_batch=0, embeddings_freq=0, embeddings_metadata=None):
        super().__init__()
        from ._compat import refuse_unimplemented
        refuse_unimplemented("TensorBoard", profile_batch=(profile_batch, 0),
                             embeddings_freq=(embeddings_freq, 0),
                             embeddings_metadata=(embeddings_metadata, None))
        self._tb = _tensorboard()
        if isinstance(histogram_freq, bool) or not isinstance(histogram_freq, int) \
                or histogram_freq < 0:
            raise ValueError(f"TensorBoard: `histogram_freq` must be an int >= 0, received "
                             f"{histogram_freq!r}")
        if update_freq not in ("epoch", "batch") and (
                isinstance(update_freq, bool) or not isinstance(update_freq, int)
                or update_freq < 1):
            raise ValueError(f"TensorBoard: `update_freq` must be 'epoch', 'batch' or a "
                             f"positive int, received {update_freq!r}")
        self.log_dir = os.fspath(log_dir)
        self.histogram_freq, self.write_graph = histogram_freq, bool(write_graph)
        self.write_images = bool(write_images)
        self.write_steps_per_second = bool(write_steps_per_second)
        self.update_freq = 1 if update_freq == "batch" else update_freq
        self._writers, self._step = {}, 0

    def _writer(self, part):
        if part not in self._writers:
            folder = os.path.join(self.log_dir, part)
            os.makedirs(folder, exist_ok=True)
            self._writers[part] = self._tb["writer"](folder)
        return self._writers[part]

    def _write(self, part, step, values):
        import time
        summary = self._tb["summary"].Summary(value=values)
        self._writer(part).add_event(self._tb["event"].Event(
            wall_time=time.time(), step=int(step), summary=summary))

    def _scalars(self, part, step, logs, prefix):
        values = [self._tb["summary"].Summary.Value(tag=f"{prefix}{k}", simple_value=float(v))
                  for k, v in logs.items() if isinstance(v, (int, float, np.floating))]
        if values:
            self._write(part, step, values)

    def _text(self, part, tag, text):
        tb = self._tb
        tensor = tb["tensor"].TensorProto(
            dtype=tb["types"].DT_STRING, string_val=[text.encode()],
            tensor_shape=tb["shape"].TensorShapeProto(dim=[]))
        meta = tb["summary"].SummaryMetadata(
            plugin_data=tb["summary"].SummaryMetadata.PluginData(plugin_name="text"))
        self._write(part, 0, [tb["summary"].Summary.Value(tag=tag, metadata=meta,
                                                          tensor=tensor)])

    def on_train_begin(self, logs=None):  # noqa: ARG002
        import time
        self._step, self._started = 0, time.perf_counter()
        if self.write_graph:
            lines = []
            self.model.summary(print_fn=lines.append)
            self._text("train", "model/summary",
                       "\n".join("    " + line for line in lines))   # a code block

    def on_train_batch_end(self, batch, logs=None):  # noqa: ARG002
        self._step += 1
        if self.update_freq != "epoch" and self._step % self.update_freq == 0:
            self._scalars("train", self._step, logs or {}, "batch_")

    def on_epoch_begin(self, epoch, logs=None):  # noqa: ARG002
        import time
        self._epoch_started, self._epoch_step = time.perf_counter(), self._step

    def on_epoch_end(self, epoch, logs=None):
        import time
        logs = dict(logs or {})
        train = {k: v for k, v in logs.items() if not k.startswith("val_")}
        val = {k[4:]: v for k, v in logs.items() if k.startswith("val_")}
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None:
            train["learning_rate"] = optimizer.learning_rate
        if self.write_steps_per_second:
            seconds = time.perf_counter() - self._epoch_started
            train["steps_per_second"] = (self._step - self._epoch_step) / max(seconds, 1e-9)
        self._scalars("train", epoch, train, "epoch_")
        if val:
            self._scalars("validation", epoch, val, "epoch_")
        if self.histogram_freq and epoch % self.histogram_freq == 0:
            self._histograms(epoch)
        if self.write_images:
            self._images(epoch)
        for writer in self._writers.values():
            writer.flush()

    def _histograms(self, epoch):
        values = []
        for w in self.model.weights:
            a = np.asarray(w.value, np.float64).ravel()
            counts, edges = np.histogram(a, bins=30)
            hist = self._tb["summary"].HistogramProto(
                min=float(a.min()), max=float(a.max()), num=float(a.size),
                sum=float(a.sum()), sum_squares=float(np.dot(a, a)),
                bucket_limit=[float(e) for e in edges[1:]],
                bucket=[float(c) for c in counts])
            values.append(self._tb["summary"].Summary.Value(tag=f"{w.name}/histogram",
                                                            histo=hist))
        self._write("train", epoch, values)

    def _images(self, epoch):
        values = []
        for w in self.model.weights:
            a = np.asarray(w.value, np.float64)
            a = a.reshape(-1, a.shape[-1]) if a.ndim > 1 else a.reshape(1, -1)
            span = a.max() - a.min()
            gray = (a - a.min()) / span if span > 0 else np.zeros_like(a)
            image = self._tb["summary"].Summary.Image(
                height=gray.shape[0], width=gray.shape[1], colorspace=1,
                encoded_image_string=_png(gray))
            values.append(self._tb["summary"].Summary.Value(tag=f"{w.name}/image",
                                                            image=image))
        self._write("train", epoch, values)

    def on_train_end(self, logs=None):  # noqa: ARG002
        for writer in self._writers.values():
            writer.close()
        self._writers = {}

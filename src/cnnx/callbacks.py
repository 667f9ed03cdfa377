"""cnnx.callbacks, with Keras's hook names."""
import csv
import math
import os
import warnings

import numpy as np

from .progbar import Progbar

__all__ = ["Callback", "History", "ProgbarLogger", "EarlyStopping", "ModelCheckpoint",
           "ReduceLROnPlateau", "LearningRateScheduler", "CSVLogger", "TerminateOnNaN",
           "LambdaCallback", "CallbackList"]


class Callback:
    """Base of the callbacks: on_train/epoch/batch (and on_test_*, on_predict_*) begin
    and end hooks, each given the logs; self.model is the model being run."""
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
    in order."""
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
    """Records the epoch logs: history[key] is a list with one value per epoch."""

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
    (verbose=2, or when the output is not a terminal, so that logs are not flooded)."""

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
    `patience` epochs; restore_best_weights puts back the best epoch's weights."""
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
    checked when the callback is made, and missing folders are created when it saves."""

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False,
                 save_weights_only=False, mode="auto", save_freq="epoch",
                 initial_value_threshold=None):
        super().__init__()
        self.filepath, self.monitor, self.verbose = os.fspath(filepath), monitor, verbose
        self.save_best_only, self.save_weights_only = save_best_only, save_weights_only
        suffix = ".weights.npz" if save_weights_only else ".keras"
        if not self.filepath.endswith(suffix):
            kind = "weights" if save_weights_only else "models"
            raise ValueError(f"ModelCheckpoint: cnnx saves {kind} to a path ending in "
                             f"{suffix}, received {self.filepath!r}"
                             + ("; Keras's .h5 files are not written by cnnx yet"
                                if self.filepath.endswith((".h5", ".hdf5")) else ""))
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
    `patience` epochs (down to min_lr), after a cooldown."""
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
    """Sets the learning rate at each epoch's start to schedule(epoch, lr)."""
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
    """Writes each epoch's logs as a row of a CSV file (append=True continues one)."""
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
    """Stops training when a batch's loss is NaN or infinite."""
    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(loss):
            print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


class LambdaCallback(Callback):
    """A callback made of functions, one per hook given: on_epoch_begin, on_epoch_end,
    on_train_begin, on_train_end, on_train_batch_begin, on_train_batch_end, and any other
    hook (on_test_batch_end, ...) by its name."""
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

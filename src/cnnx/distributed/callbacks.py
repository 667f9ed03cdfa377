"""Horovod's Keras callbacks, for cnnx.distributed.

cnnx computes a batch's loss and metrics over the whole global batch, the same on every
process, so MetricAverageCallback has nothing to change in them; it averages what
differs (a value a user's callback logs per process).
"""
import numbers

import numpy as np

from ..callbacks import Callback
from ._world import world as _world

__all__ = ["BroadcastGlobalVariablesCallback", "MetricAverageCallback",
           "LearningRateWarmupCallback"]


class BroadcastGlobalVariablesCallback(Callback):
    """At the start of training, every process takes rank `root_rank`'s weights and
    optimizer state: the processes start from the same model however each built it.

    >>> cnnx.distributed.init()
    >>> model = cnnx.Sequential([cnnx.Input((2,)), cnnx.layers.Dense(1)])
    >>> model.compile(optimizer=cnnx.distributed.DistributedOptimizer("sgd"), loss="mse")
    >>> sync = cnnx.distributed.callbacks.BroadcastGlobalVariablesCallback(0)
    >>> history = model.fit(np.ones((4, 2)), np.ones((4, 1)), verbose=0, callbacks=[sync])
    """

    def __init__(self, root_rank=0):
        super().__init__()
        if isinstance(root_rank, bool) or not isinstance(root_rank, numbers.Integral) \
                or root_rank < 0:
            raise ValueError(f"BroadcastGlobalVariablesCallback: `root_rank` must be a "
                             f"rank, received {root_rank!r}")
        self.root_rank = int(root_rank)

    def on_train_begin(self, logs=None):  # noqa: ARG002 (Keras's signature)
        from . import broadcast_variables
        world = _world()
        if self.root_rank >= world.size:
            raise ValueError(f"BroadcastGlobalVariablesCallback: root_rank "
                             f"{self.root_rank} is not a rank of this {world.size}-process "
                             f"job")
        broadcast_variables(self.model, self.root_rank)


class MetricAverageCallback(Callback):
    """At the end of each epoch, each log is averaged over the processes. A log that is
    the same on every process (all of cnnx's own) is left as it is, bit for bit.

    >>> cnnx.distributed.init()
    >>> average = cnnx.distributed.callbacks.MetricAverageCallback()
    >>> logs = {"loss": 0.25}
    >>> average.on_epoch_end(0, logs)
    >>> logs
    {'loss': 0.25}
    """

    def on_epoch_end(self, epoch, logs=None):  # noqa: ARG002 (Keras's signature)
        if not logs:
            return
        world = _world()
        keys = sorted(k for k, v in logs.items() if isinstance(v, numbers.Real))
        local = np.array([float(logs[k]) for k in keys], np.float64)
        every = world.allgatherv(local, [len(keys)] * world.size).reshape(world.size, -1)
        for i, key in enumerate(keys):
            column = every[:, i]
            if not np.all(column == column[0]):
                logs[key] = float(np.mean(column))


class LearningRateWarmupCallback(Callback):
    """Raises the learning rate linearly, batch by batch, from
    `initial_lr * start_fraction` to `initial_lr` over the first `warmup_epochs`
    epochs, as large-batch training does (Goyal et al., 2017).

    Horovod starts at initial_lr / size() because its global batch grows with the
    process count. cnnx's global batch is the one the user chose, so the ramp does not
    depend on the process count, and neither do the results.

    >>> cnnx.distributed.init()
    >>> model = cnnx.Sequential([cnnx.Input((2,)), cnnx.layers.Dense(1)])
    >>> opt = cnnx.distributed.DistributedOptimizer(cnnx.optimizers.SGD(0.1))
    >>> model.compile(optimizer=opt, loss="mse")
    >>> warm = cnnx.distributed.callbacks.LearningRateWarmupCallback(0.1, warmup_epochs=2)
    >>> history = model.fit(np.ones((8, 2)), np.ones((8, 1)), batch_size=4, verbose=0,
    ...                     callbacks=[warm])
    >>> round(model.optimizer.learning_rate, 4)   # a quarter of the way: 0.1 * (0.1 + 0.9 / 4)
    0.0325
    """

    def __init__(self, initial_lr, warmup_epochs=5, steps_per_epoch=None,
                 start_fraction=0.1, verbose=0):
        super().__init__()
        where = "LearningRateWarmupCallback"
        for name, value, low in (("initial_lr", initial_lr, 0.0),
                                 ("start_fraction", start_fraction, 0.0)):
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or \
                    not np.isfinite(value) or value < low:
                raise ValueError(f"{where}: `{name}` must be a non-negative number, "
                                 f"received {value!r}")
        if isinstance(warmup_epochs, bool) or not isinstance(warmup_epochs, numbers.Real) \
                or not warmup_epochs > 0:
            raise ValueError(f"{where}: `warmup_epochs` must be positive, received "
                             f"{warmup_epochs!r}")
        self.initial_lr, self.warmup_epochs = float(initial_lr), float(warmup_epochs)
        self.steps_per_epoch, self.start_fraction = steps_per_epoch, float(start_fraction)
        self.verbose = verbose
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):  # noqa: ARG002 (Keras's signature)
        self._epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):  # noqa: ARG002 (Keras's signature)
        steps = self.steps_per_epoch or self.params.get("steps") or 1
        progress = (self._epoch + batch / steps) / self.warmup_epochs
        if progress >= 1:
            return
        f = self.start_fraction
        self.model.optimizer.learning_rate = self.initial_lr * (f + (1 - f) * progress)

    def on_epoch_end(self, epoch, logs=None):  # noqa: ARG002 (Keras's signature)
        if epoch < self.warmup_epochs <= epoch + 1:   # the warm-up ends in this epoch
            self.model.optimizer.learning_rate = self.initial_lr
            if self.verbose and _world().rank == 0:
                print(f"\nEpoch {epoch + 1}: finished warm-up, learning rate "
                      f"{self.initial_lr:g}")

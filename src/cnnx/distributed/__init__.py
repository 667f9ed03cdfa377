"""Data-parallel training and sharded inference over MPI, with Horovod's API.

    import cnnx
    from cnnx import distributed as hvd

    hvd.init()
    model.compile(optimizer=hvd.DistributedOptimizer(cnnx.optimizers.Adam(1e-3)), ...)
    model.fit(x, y, batch_size=64, callbacks=[hvd.callbacks.BroadcastGlobalVariablesCallback(0)])

launched as `mpiexec -n 4 python -m mpi4py train.py`. It needs the `mpi` extra
(`pip install "cnnx[mpi]"`: mpi4py and an MPI); `import cnnx` never imports mpi4py.

The batch size is the global batch, whatever the process count: each process computes
some of its micro-batches, and the batch's gradient is summed over a fixed tree of them
(see _step.py). Training on 1, 2 or 4 processes, or on one without mpiexec, gives the
same bits. See docs/distributed.md.
"""
import copy
import numbers

import numpy as np

from .. import _random, optimizers
from . import callbacks
from ._inference import evaluate, predict, predict_directory
from ._world import init, is_initialized, local_rank, local_size, rank, size, world

__all__ = ["init", "is_initialized", "rank", "size", "local_rank", "local_size",
           "DistributedOptimizer", "broadcast_variables", "load_model", "predict",
           "evaluate", "predict_directory", "callbacks"]

# The default number of micro-batches per batch: the most processes a batch is shared
# by. It is part of the arithmetic (a different value gives different bits), so it is
# a constant, never derived from the process count.
MICRO_BATCHES = 8


class Distribution:
    """What a DistributedOptimizer adds to its optimizer: the world, the micro-batch
    count and the random key of the current fit."""

    def __init__(self, world, micro_batches):
        self.world = world
        self.micro_batches = micro_batches
        self._key = None

    def __deepcopy__(self, memo):   # a communicator is not copied: clones share it
        return self

    def begin_fit(self, sources=()):
        """Give every process rank 0's global generator (an image iterator made without
        a seed draws its shuffles and augmentations from it), reshuffle the first epoch
        of such iterators (`sources`) from it, and fix the fit's random key: the last
        set_random_seed's seed (so that a job restarted with the same seed draws the
        same numbers), else a number drawn from the shared generator."""
        _share_generator(self.world, _random.generator())
        for source in sources:
            if getattr(source, "seed", 1) is None and callable(
                    getattr(source, "_set_index_array", None)):
                if source._rng is not _random.generator():   # made before a reseed
                    _share_generator(self.world, source._rng)
                source._set_index_array()
        seed = _random.last_seed()
        if seed is None:
            seed = int(_random.generator().integers(2 ** 63))
        self._key = int(seed)

    def step_key(self, iterations):
        if self._key is None:
            self.begin_fit()
        return (self._key, int(iterations))

    def epoch_generator(self, epoch):
        """The generator that shuffles epoch `epoch`: the same on every process and in
        a job restarted at that epoch."""
        if self._key is None:
            self.begin_fit()
        return np.random.default_rng([self._key, 1 << 32, int(epoch)])

    def rows(self, batch):
        """The samples (start, stop) of a global batch that this process computes."""
        from ._step import owned, partition
        parts = partition(batch, self.micro_batches)
        mine = owned(len(parts), self.world.rank, self.world.size)
        if not len(mine):
            return 0, 0
        return parts[mine.start][0], parts[mine.stop - 1][1]

    def train_step(self, model, data):
        from ._step import train_step
        return train_step(self, model, data)


def _share_generator(world, generator):
    """Set every process's `generator` (a PCG64 Generator) to rank 0's state, sent as
    six 64-bit words (no pickle)."""
    if world.size == 1:
        return
    bits = generator.bit_generator
    state = bits.state
    mask = (1 << 64) - 1
    words = np.array([state["state"]["state"] >> 64, state["state"]["state"] & mask,
                      state["state"]["inc"] >> 64, state["state"]["inc"] & mask,
                      state["has_uint32"], state["uinteger"]], np.uint64)
    words = [int(w) for w in world.bcast(words, 0)]
    bits.state = {"bit_generator": state["bit_generator"],
                  "state": {"state": (words[0] << 64) | words[1],
                            "inc": (words[2] << 64) | words[3]},
                  "has_uint32": words[4], "uinteger": words[5]}


def DistributedOptimizer(optimizer, micro_batches=None, **kwargs):
    """The optimizer `optimizer` (an instance or a name), training data-parallel: a
    model compiled with it computes each batch's gradient over the job's processes,
    as the fixed-order sum of `micro_batches` micro-batch gradients (default 8, and at
    least the number of processes). The update is the optimizer's own, identical on
    every process.

    Horovod's other arguments (compression, op, backward_passes_per_step, ...) are
    refused by name: cnnx's reduction is its own and exact.

    >>> cnnx.distributed.init()
    >>> opt = cnnx.distributed.DistributedOptimizer(cnnx.optimizers.SGD(0.1))
    >>> type(opt).__name__, opt.learning_rate
    ('SGD', 0.1)
    """
    if kwargs:
        raise TypeError(f"DistributedOptimizer: unsupported argument(s) {sorted(kwargs)}: "
                        f"cnnx averages gradients exactly, without compression or other "
                        f"reduction options")
    where = "DistributedOptimizer"
    if micro_batches is None:
        micro_batches = MICRO_BATCHES
    if isinstance(micro_batches, bool) or not isinstance(micro_batches, numbers.Integral) \
            or micro_batches < 1:
        raise ValueError(f"{where}: `micro_batches` must be a positive int, received "
                         f"{micro_batches!r}")
    w = world()
    if micro_batches < w.size:
        raise ValueError(f"{where}: micro_batches={micro_batches} is fewer than the job's "
                         f"{w.size} processes; each process needs one: pass "
                         f"micro_batches >= {w.size}")
    base = optimizers.get(optimizer)
    opt = copy.copy(base)
    opt._slots = dict(base._slots)
    opt._distribution = Distribution(w, int(micro_batches))
    return opt


def broadcast_variables(model, root_rank=0):
    """Give every process rank root_rank's weights (and optimizer state, where it has
    any). A collective: every process calls it.

    >>> cnnx.distributed.init()
    >>> model = cnnx.Sequential([cnnx.Input((2,)), cnnx.layers.Dense(1)])
    >>> cnnx.distributed.broadcast_variables(model, root_rank=0)
    """
    w = world()
    for var in model.weights:
        var.value[...] = w.bcast(var.value, root_rank)
        var.touch()
    opt = getattr(model, "optimizer", None)
    if opt is None:
        return
    count = np.array([opt.iterations, len(opt._slots)], np.int64)
    count = w.bcast(count, root_rank)
    opt.iterations = int(count[0])
    if int(count[1]) and len(opt._slots) == int(count[1]):
        for slots in opt._slots.values():
            for slot in slots:
                slot[...] = w.bcast(slot, root_rank)
    elif int(count[1]):
        raise RuntimeError(f"broadcast_variables: rank {root_rank}'s optimizer has state "
                           f"for {int(count[1])} variables and rank {w.rank}'s for "
                           f"{len(opt._slots)}; load the same checkpoint on every process")


def load_model(filepath, micro_batches=None):
    """cnnx.models.load_model, its optimizer wrapped in DistributedOptimizer: how a job
    resumes from rank 0's checkpoint (every process loads the same file).

    >>> cnnx.distributed.init()
    >>> model = cnnx.Sequential([cnnx.Input((2,)), cnnx.layers.Dense(1)])
    >>> model.compile(optimizer=cnnx.optimizers.Adam(), loss="mse")
    >>> model.save("ckpt.keras")
    >>> resumed = cnnx.distributed.load_model("ckpt.keras", micro_batches=4)
    >>> resumed.optimizer._distribution.micro_batches
    4
    """
    from ..models import load_model as _load
    model = _load(filepath)
    if getattr(model, "optimizer", None) is not None:
        model.optimizer = DistributedOptimizer(model.optimizer, micro_batches)
    return model

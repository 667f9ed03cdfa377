"""The processes of a job and the few collectives cnnx needs, over mpi4py.

Every collective moves NumPy buffers (mpi4py's upper-case methods): nothing is pickled.
`World` wraps a communicator; `Solo` is the world of one process, with the same methods,
so that the code of a step is one code whatever the process count.
"""
import os
import sys
import traceback

import numpy as np

_world = None   # the World of this process once init() has run


class Solo:
    """The world of one process (mpi4py absent or not asked for): collectives are
    copies."""
    rank, size, local_rank, local_size = 0, 1, 0, 1

    def bcast(self, array, root=0):  # noqa: ARG002 (one process: nothing to send)
        return array

    def allgatherv(self, local, counts):  # noqa: ARG002
        return np.array(local, copy=True)

    def alltoallv(self, send, send_counts, recv_counts):  # noqa: ARG002
        return np.array(send, copy=True)

    def gatherv(self, local, counts, root=0):  # noqa: ARG002
        return np.array(local, copy=True)

    def allreduce_sum(self, array):
        return np.array(array, copy=True)

    def barrier(self):
        pass

    def abort(self, code=1):
        os._exit(code)


class World(Solo):
    """The processes of an MPI communicator."""

    def __init__(self, comm):
        from mpi4py import MPI
        self._mpi = MPI
        self.comm = comm
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        node = comm.Split_type(MPI.COMM_TYPE_SHARED, key=self.rank)
        self.local_rank, self.local_size = node.Get_rank(), node.Get_size()
        node.Free()

    def bcast(self, array, root=0):
        array = np.ascontiguousarray(array)
        self.comm.Bcast(array, root=root)
        return array

    def allgatherv(self, local, counts):
        """Every process's `local` (counts[i] elements from rank i), concatenated in
        rank order, on every process."""
        local = np.ascontiguousarray(local).reshape(-1)
        out = np.empty(int(sum(counts)), local.dtype)
        self.comm.Allgatherv(local, [out, list(map(int, counts))])
        return out

    def alltoallv(self, send, send_counts, recv_counts):
        """send holds send_counts[j] elements for rank j, in rank order; returns the
        recv_counts[i] elements rank i sent here, in rank order."""
        send = np.ascontiguousarray(send).reshape(-1)
        out = np.empty(int(sum(recv_counts)), send.dtype)
        self.comm.Alltoallv([send, list(map(int, send_counts))],
                            [out, list(map(int, recv_counts))])
        return out

    def gatherv(self, local, counts, root=0):
        local = np.ascontiguousarray(local).reshape(-1)
        out = np.empty(int(sum(counts)), local.dtype) if self.rank == root else None
        self.comm.Gatherv(local, [out, list(map(int, counts))] if out is not None
                          else None, root=root)
        return out

    def allreduce_sum(self, array):
        """MPI's own sum: its order depends on the library and the process count. Only
        for measurements (benchmarks/bench_distributed.py), never in a training step."""
        array = np.ascontiguousarray(array)
        out = np.empty_like(array)
        self.comm.Allreduce(array, out)
        return out

    def barrier(self):
        self.comm.Barrier()

    def abort(self, code=1):
        self.comm.Abort(code)


def _import_mpi():
    try:
        from mpi4py import MPI
    except ImportError:
        raise ImportError("cnnx.distributed needs mpi4py and an MPI library: pip install "
                          "'cnnx[mpi]' (or pip install mpi4py, built against your "
                          "cluster's MPI)") from None
    return MPI


def init(comm=None):
    """Join the job's processes (MPI.COMM_WORLD, or the communicator given): call it once,
    first, in every process. Started without mpiexec, the job is this one process.

    It installs an excepthook that aborts the job when any process raises, and gives
    each process cores // (processes on its node) threads unless OMP_NUM_THREADS or
    cnnx.set_num_threads has chosen. Calling it again returns at once.

    >>> cnnx.distributed.init()
    >>> cnnx.distributed.is_initialized()
    True
    """
    global _world
    if _world is not None:
        return
    MPI = _import_mpi()
    comm = (MPI.COMM_WORLD if comm is None else comm).Dup()
    world = World(comm)
    _world = world
    _install_excepthook(world)
    from .. import _config
    if not os.environ.get("OMP_NUM_THREADS") and not _config.threads_chosen():
        _config.set_num_threads(max(1, _config._cores() // world.local_size))


def world():
    """The World of this process; RuntimeError before init()."""
    if _world is None:
        raise RuntimeError("cnnx.distributed: call cnnx.distributed.init() first, in "
                           "every process")
    return _world


def is_initialized():
    """Whether init() has run in this process.

    >>> cnnx.distributed.init()
    >>> cnnx.distributed.is_initialized()
    True
    """
    return _world is not None


def rank():
    """This process's index in the job, 0 to size() - 1.

    >>> cnnx.distributed.init()
    >>> cnnx.distributed.rank()   # run without mpiexec: the only process
    0
    """
    return world().rank


def size():
    """The number of processes in the job.

    >>> cnnx.distributed.init()
    >>> cnnx.distributed.size()   # run without mpiexec
    1
    """
    return world().size


def local_rank():
    """This process's index among the job's processes on its own machine (use it to
    pick a device or a scratch folder per process).

    >>> cnnx.distributed.init()
    >>> cnnx.distributed.local_rank()
    0
    """
    return world().local_rank


def local_size():
    """The number of the job's processes on this machine.

    >>> cnnx.distributed.init()
    >>> cnnx.distributed.local_size()
    1
    """
    return world().local_size


def _install_excepthook(world):
    """An uncaught exception in any process prints its rank and traceback, then aborts
    the whole job: the other processes, waiting in a collective, would otherwise wait
    for ever."""
    previous = sys.excepthook

    def hook(kind, value, tb):
        if world.size == 1:
            previous(kind, value, tb)
            return
        text = "".join(traceback.format_exception(kind, value, tb))
        sys.stderr.write(f"cnnx.distributed: rank {world.rank} of {world.size} raised; "
                         f"aborting the job\n{text}")
        sys.stderr.flush()
        world.abort(1)

    sys.excepthook = hook

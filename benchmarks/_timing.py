"""Shared timing helpers: runs in turns in one process, medians over repeats."""
import os
import time

import numpy as np

# OpenBLAS's worker threads spin for about 0.1-0.2 s after a NumPy matmul, and libgomp's
# for a while after an OpenMP region; on a 2-core machine either steals a core from the
# other library (measured: a cnnx convolution ran 5x slower right after a matmul). So
# each timed block starts after the other library's threads have gone to sleep.
SETTLE_S = 0.5
# run.py --check sets this: each function runs once, timed once (that it runs, not how
# fast).
ONCE = False


# glibc's malloc serves a block above its mmap threshold (128 KiB at the start) with fresh
# pages from the kernel, and raises the threshold to the size of any such block freed (up
# to 32 MiB). PyTorch allocates its tensors anew at each step: in a fresh process each
# large one costs page faults, until a block that large has been freed. Measured on W6: a
# PyTorch training step took 61-72 ms in a fresh process and 46 ms once one 30 MB NumPy
# array had been freed (cnnx, which keeps its buffers, 46 ms either way). So every timing
# starts after such a free: PyTorch runs in its faster state, whatever ran before it.
_ALLOCATOR_BLOCK = 30 << 20


def settle_allocator():
    """Raise glibc's mmap threshold to 30 MB (a no-op elsewhere): see above."""
    np.ones(_ALLOCATOR_BLOCK, np.uint8)   # allocated, touched and freed


def interleaved(funcs, repeats=7, min_block=0.02, settle=None):
    """Median seconds per call of each function. The functions take turns, one timed
    block each per repeat, so that machine noise hits all alike; a block repeats its
    function to last at least min_block seconds, and starts after `settle` seconds idle
    and one untimed call, so that it measures the steady state of a training loop."""
    if ONCE:
        times = []
        for f in funcs:
            t = time.perf_counter()
            f()
            times.append(max(time.perf_counter() - t, 1e-9))
        return times
    settle = SETTLE_S if settle is None else settle   # read at call time
    settle_allocator()
    inner = []
    for f in funcs:
        time.sleep(settle)
        f()  # warm up: first-touch of buffers, workspaces
        t = time.perf_counter()
        f()
        one = max(time.perf_counter() - t, 1e-7)
        inner.append(max(1, int(min_block / one)))
    samples = [[] for _ in funcs]
    for _ in range(repeats):
        for i, f in enumerate(funcs):
            time.sleep(settle)
            f()  # untimed: wakes the thread pool and brings the data back into cache
            t = time.perf_counter()
            for _ in range(inner[i]):
                f()
            samples[i].append((time.perf_counter() - t) / inner[i])
    return [float(np.median(s)) for s in samples]


def environment_line():
    blas = {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    shown = ", ".join(f"{k}={v}" if v else f"{k} unset" for k, v in blas.items())
    return f"NumPy {np.__version__}; {shown}"

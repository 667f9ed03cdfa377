"""Threads, the SIMD path and show_config().

The thread count is resolved here, once, and handed to every kernel as a plain int.
"""
import numbers
import os
import sys
import warnings

from . import _kernels

__all__ = ["get_num_threads", "set_num_threads", "show_config", "simd_path", "set_simd_path"]


def openmp_enabled():
    """Whether this build's kernels can run on more than one thread."""
    return _kernels.openmp_version() > 0


def _cores():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


# More threads than this is a mistake, not a configuration: each thread has its own
# kernel workspace, so 100,000 threads would ask for gigabytes per convolution.
MAX_THREADS = max(64, 4 * (os.cpu_count() or 1))

_serial_warned = False


def _serial(n, source):
    """In a build without OpenMP, every request for n > 1 threads gets one, and a
    warning (once per process) that says so."""
    global _serial_warned
    if n > 1 and not _serial_warned:
        _serial_warned = True
        warnings.warn(
            f"cnnx was built without OpenMP: its kernels run on one thread, not the {n} "
            f"that {source} asks for. Reinstall cnnx from a wheel, or build it with an "
            "OpenMP compiler (see the README's 'Building from source').",
            RuntimeWarning, stacklevel=3)
    return 1


def _default_threads():
    env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    n = 0
    if env:
        try:
            n = int(env)
        except ValueError:
            n = 0
    if n >= 1:
        n = min(n, MAX_THREADS)
        return n if openmp_enabled() else _serial(n, "OMP_NUM_THREADS")
    return min(_cores(), MAX_THREADS) if openmp_enabled() else 1


_num_threads = _default_threads()
_chosen = False


def get_num_threads():
    """The number of threads cnnx's kernels use (1 in a build without OpenMP).

    >>> cnnx.get_num_threads() >= 1
    True
    """
    return _num_threads


def set_num_threads(n):
    """Use `n` threads in cnnx's kernels (default: OMP_NUM_THREADS, else the cores
    this process may run on; at most MAX_THREADS). Results are identical for any `n`.
    A build without OpenMP runs on one thread and warns once when more are asked for.

    >>> before = cnnx.get_num_threads()
    >>> cnnx.set_num_threads(1)
    >>> cnnx.get_num_threads()
    1
    >>> cnnx.set_num_threads(before)
    """
    global _num_threads, _chosen
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"set_num_threads: expected an int, received {type(n).__name__}")
    if not 1 <= n <= MAX_THREADS:
        raise ValueError(f"set_num_threads: expected 1 <= n <= {MAX_THREADS} (four per "
                         f"core, at least 64), received {n}")
    _num_threads = int(n) if openmp_enabled() else _serial(int(n), "set_num_threads")
    _chosen = True


def threads_chosen():
    """Whether set_num_threads has been called (cnnx.distributed.init then keeps the
    count)."""
    return _chosen


# Below this much work (multiply-adds or elements) a kernel runs on one thread:
# waking a team costs more than it saves.
_PARALLEL_WORK = 1 << 15


def threads_for(work):
    """The thread count for a kernel call doing `work` units of work."""
    return 1 if work < _PARALLEL_WORK else _num_threads


def simd_path():
    """The microkernel path in use: avx512, avx2, generic/neon or scalar."""
    return _kernels.simd_path()


def set_simd_path(name=None):
    """Force a microkernel path by name; None picks the best the CPU has."""
    return _kernels.select_simd(name or "")


def _select_simd_from_env():
    forced = os.environ.get("CNNX_SIMD", "").strip().lower()
    if forced:
        try:
            _kernels.select_simd(forced)
        except ValueError:
            raise ImportError(
                f"cnnx: CNNX_SIMD={forced!r} is not available on this CPU "
                f"(expected one of avx512, avx2, generic, neon, scalar)"
            ) from None


_select_simd_from_env()


def _openmp_runtime():
    """The OpenMP runtime loaded into this process, by its library name."""
    if not openmp_enabled():
        return "none (built without OpenMP: kernels run on one thread)"
    try:
        with open("/proc/self/maps") as f:
            maps = f.read()
    except OSError:
        maps = ""
    for lib in ("libgomp", "libiomp5", "libomp", "vcomp"):
        if lib in maps:
            path = next(line.split()[-1] for line in maps.splitlines() if lib in line)
            return f"{lib} ({path})"
    compiler = _kernels.compiler()
    if compiler.startswith("gcc"):
        return "libgomp"
    if compiler.startswith("msvc"):
        return "vcomp"
    return "libomp"


def config():
    """show_config()'s facts, as a dict."""
    import numpy as np

    from . import __version__

    return {
        "cnnx": __version__,
        "numpy": np.__version__,
        "python": sys.version.split()[0],
        "compiler": _kernels.compiler(),
        "openmp": openmp_enabled(),
        "openmp_version": _kernels.openmp_version(),
        "openmp_runtime": _openmp_runtime(),
        "threads": get_num_threads(),
        "simd": simd_path(),
    }


def show_config(mode="stdout"):
    """Print how this cnnx was built and how it runs; mode="dicts" returns the facts as
    a dict instead (NumPy's show_config convention).

    >>> import io, contextlib
    >>> report = io.StringIO()
    >>> with contextlib.redirect_stdout(report):
    ...     cnnx.show_config()
    >>> [line.split()[0] for line in report.getvalue().splitlines()[:3]]
    ['cnnx', 'numpy', 'python']
    """
    if mode not in ("stdout", "dicts"):
        raise ValueError(f"show_config: `mode` must be 'stdout' or 'dicts', received "
                         f"{mode!r}")
    c = config()
    if mode == "dicts":
        return c
    omp = (f"yes (OpenMP {c['openmp_version']})" if c["openmp"] else
           "NO: built without OpenMP, the kernels run on ONE thread")
    print(f"cnnx            {c['cnnx']}")
    print(f"numpy           {c['numpy']}")
    print(f"python          {c['python']}")
    print(f"compiler        {c['compiler']}")
    print(f"openmp          {omp}")
    print(f"openmp runtime  {c['openmp_runtime']}")
    print(f"threads         {c['threads']}")
    print(f"simd path       {c['simd']}")

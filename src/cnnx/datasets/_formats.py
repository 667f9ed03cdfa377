"""Readers of the datasets' original formats: IDX (gzip), Keras's mnist.npz, and the
CIFAR python tarball through a restricted unpickler (no arbitrary code)."""
import gzip
import io
import pickle
import tarfile

import numpy as np

__all__ = ["read_idx", "read_npz", "read_cifar_batch"]


def read_idx(path):
    """An IDX file (optionally gzip-compressed): big-endian header, then uint8 data."""
    with (gzip.open if str(path).endswith(".gz") else open)(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path} is not an IDX file of unsigned bytes")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    expected = 4 + 4 * ndim + int(np.prod(dims))
    if len(data) != expected:
        raise ValueError(f"{path} holds {len(data)} bytes; its header promises {expected}")
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def read_npz(path, keys):
    with np.load(path, allow_pickle=False) as f:
        return tuple(f[k] for k in keys)


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickles only what CIFAR's batches contain: dicts, lists, bytes, strings, numbers
    and NumPy uint8 arrays. Any other class is refused, so no code can run.
    (_codecs.encode is how protocol-2 pickles written by Python 3 spell bytes.)"""

    _ALLOWED = {("_codecs", "encode"), ("numpy.core.multiarray", "_reconstruct"),
                ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype"),
                ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar")}

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused to unpickle {module}.{name}")


def read_cifar_batch(tar, member):
    """(images (N, 32, 32, 3) uint8, labels (N,) uint8) from one batch of the tarball."""
    raw = tar.extractfile(member)
    if raw is None:
        raise ValueError(f"{member} is not a file in the CIFAR archive")
    batch = _RestrictedUnpickler(io.BytesIO(raw.read()), encoding="bytes").load()
    if not isinstance(batch, dict):
        raise ValueError(f"{member} does not hold a CIFAR batch")
    data = batch.get(b"data")
    labels = batch.get(b"labels", batch.get(b"fine_labels"))
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != 3072 or labels is None or len(labels) != len(data):
        raise ValueError(f"{member} does not hold a CIFAR batch of 32x32x3 uint8 images")
    # Stored channel-first (N, 3, 32, 32); Keras returns channels last.
    return (data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy(),
            np.asarray(labels, np.uint8))


def open_tar(path):
    return tarfile.open(path, "r:gz")

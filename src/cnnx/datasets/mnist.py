"""MNIST: 60,000 training and 10,000 test handwritten digits, 28x28 uint8."""
from ._download import RemoteFile, cache_dir, fetch, verify
from ._formats import read_idx, read_npz

_NPZ = RemoteFile("mnist.npz", "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
                  sha256="731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1",
                  size=11_490_434)
_IDX_ORIGIN = "https://ossci-datasets.s3.amazonaws.com/mnist/"
_IDX = [RemoteFile("train-images-idx3-ubyte.gz", _IDX_ORIGIN,
                   md5="f68b3c2dcbeaaa9fbdd348bbdeb94873", size=9_912_422),
        RemoteFile("train-labels-idx1-ubyte.gz", _IDX_ORIGIN,
                   md5="d53e105ee54ea40749a09fcbcd1e9432", size=28_881),
        RemoteFile("t10k-images-idx3-ubyte.gz", _IDX_ORIGIN,
                   md5="9fb629c4189551a2d022fa330f9573f3", size=1_648_877),
        RemoteFile("t10k-labels-idx1-ubyte.gz", _IDX_ORIGIN,
                   md5="ec29112dd5afa0611ce80d1b7f02629c", size=4_542)]


def load_data(path="mnist.npz"):
    """((x_train, y_train), (x_test, y_test)) as Keras returns them: uint8 arrays of
    shape (60000, 28, 28), (60000,), (10000, 28, 28), (10000,).

    Reads the cache ($CNNX_HOME, default ~/.cnnx/datasets): Keras's mnist.npz, or the
    four original IDX .gz files in a mnist/ folder; else downloads mnist.npz."""
    idx_dir = cache_dir("mnist")
    if not (cache_dir() / path).exists() and all(
            (idx_dir / f.name).exists() and verify(idx_dir / f.name, f) for f in _IDX):
        x_train, y_train, x_test, y_test = (read_idx(idx_dir / f.name) for f in _IDX)
        return (x_train, y_train), (x_test, y_test)
    npz = fetch(_NPZ if path == "mnist.npz" else RemoteFile(path, _NPZ.origin, _NPZ.md5,
                                                            _NPZ.sha256))
    x_train, y_train, x_test, y_test = read_npz(npz, ("x_train", "y_train", "x_test",
                                                      "y_test"))
    return (x_train, y_train), (x_test, y_test)

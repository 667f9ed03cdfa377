"""CIFAR-10: 50,000 training and 10,000 test colour images, 32x32x3 uint8, 10 classes."""
import numpy as np

from ._download import RemoteFile, fetch
from ._formats import open_tar, read_cifar_batch

_ARCHIVE = RemoteFile("cifar-10-python.tar.gz", "https://www.cs.toronto.edu/~kriz/",
                      md5="c58f30108f718f92721af3b95e74349a", size=170_498_071)

CLASS_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
               "ship", "truck"]


def load_data():
    """((x_train, y_train), (x_test, y_test)) as Keras returns them: x uint8 of shape
    (50000, 32, 32, 3) and (10000, 32, 32, 3), channels last; y uint8 of shape (N, 1).
    The python-version tarball is read in place, through a restricted unpickler."""
    with open_tar(fetch(_ARCHIVE)) as tar:
        names = {m.name.rsplit("/", 1)[-1]: m for m in tar.getmembers() if m.isfile()}
        missing = [n for n in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
                   if n not in names]
        if missing:
            raise ValueError(f"{_ARCHIVE.name} lacks {missing}: not the CIFAR-10 archive")
        train = [read_cifar_batch(tar, names[f"data_batch_{i}"]) for i in range(1, 6)]
        x_test, y_test = read_cifar_batch(tar, names["test_batch"])
    x_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    return (x_train, y_train.reshape(-1, 1)), (x_test, y_test.reshape(-1, 1))

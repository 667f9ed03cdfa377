"""Fashion-MNIST: 60,000 training and 10,000 test images of clothing, 28x28 uint8."""
from ._download import RemoteFile, fetch
from ._formats import read_idx

_ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
# MD5s as published by Zalando Research, of the .gz files and of their content.
_FILES = [
    RemoteFile("train-labels-idx1-ubyte.gz", _ORIGIN, md5="25c81989df183df01b3e8a0aad5dffbe",
               raw_md5="9018921c3c673c538a1fc5bad174d6f9", size=29_515),
    RemoteFile("train-images-idx3-ubyte.gz", _ORIGIN, md5="8d4fb7e6c68d591d4c3dfef9ec88bf0d",
               raw_md5="f4a8712d7a061bf5bd6d2ca38dc4d50a", size=26_421_880),
    RemoteFile("t10k-labels-idx1-ubyte.gz", _ORIGIN, md5="bb300cfdad3c16e7a12a480ee83cd310",
               raw_md5="15d484375f8d13e6eb1aabb0c3f46965", size=5_148),
    RemoteFile("t10k-images-idx3-ubyte.gz", _ORIGIN, md5="bef4ecab320f06d8554ea6380940ec79",
               raw_md5="8181f5470baa50b63fa0f6fddb340f0a", size=4_422_102),
]

CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
               "Sneaker", "Bag", "Ankle boot"]


def load_data():
    """((x_train, y_train), (x_test, y_test)): uint8 arrays of shape (60000, 28, 28),
    (60000,), (10000, 28, 28), (10000,), from the four IDX files in the cache folder
    fashion-mnist/ ($CNNX_HOME, default ~/.cnnx/datasets), downloaded when missing."""
    y_train, x_train, y_test, x_test = (read_idx(fetch(f, "fashion-mnist")) for f in _FILES)
    return (x_train, y_train), (x_test, y_test)

"""LeCun et al. 1998: a LeNet-5-style network on MNIST (28x28 digits padded to 32x32)."""
import gzip

import numpy as np

import cnnx

from _common import args, can_plot, save, shared_data

a = args(__doc__)
try:
    (x_train, y_train), (x_test, y_test) = cnnx.datasets.mnist.load_data()
except OSError as e:  # no network: the course's 5,000 training digits and the test set
    data = shared_data()
    if data is None:
        raise SystemExit(f"no MNIST: {e}\nConnect to the network or set CNNX_TEST_DATA") \
            from None
    print(f"MNIST could not be downloaded ({str(e).split(' (')[0]}); training on the "
          f"5,000 digits and the test set in {data} instead")
    with gzip.open(data / "mnist-5k" / "mnist_5k.csv.gz") as f:
        raw = np.loadtxt(f, delimiter=",", dtype=np.uint8)
    x_train, y_train = raw[:, :784].reshape(-1, 28, 28), raw[:, 784]
    from cnnx.datasets._formats import read_idx
    x_test = read_idx(data / "mnist" / "t10k-images-idx3-ubyte.gz")
    y_test = read_idx(data / "mnist" / "t10k-labels-idx1-ubyte.gz")
order = np.random.default_rng(0).permutation(len(x_train))  # the CSV is sorted by class
x_train, y_train = x_train[order], y_train[order]
if a.quick:
    x_train, y_train, x_test, y_test = x_train[:1000], y_train[:1000], x_test[:500], y_test[:500]
pad = lambda x: np.pad(x, ((0, 0), (2, 2), (2, 2)))[..., None].astype("float32") / 255  # noqa
x_train, x_test = pad(x_train), pad(x_test)

cnnx.utils.set_random_seed(0)
L = cnnx.layers
model = cnnx.Sequential([
    cnnx.Input((32, 32, 1)),
    L.Conv2D(6, 5, activation="relu"), L.MaxPooling2D(2),
    L.Conv2D(16, 5, activation="relu"), L.MaxPooling2D(2),
    L.Flatten(), L.Dense(120, activation="relu"), L.Dense(84, activation="relu"),
    L.Dense(10, activation="softmax"),
])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.summary()
history = model.fit(x_train, y_train, batch_size=64, epochs=1 if a.quick else 10,
                    validation_split=0.1, verbose=2)
print(f"LeNet-5 test accuracy: {model.evaluate(x_test, y_test, verbose=0)[1]:.4f}")
if can_plot():
    save(cnnx.viz.plot_history(history, title="LeNet-5 on MNIST"), a, "lenet_history.png")
    save(cnnx.viz.plot_filters(model.layers[0]), a, "lenet_filters.png")
    save(cnnx.viz.plot_feature_maps(model, x_test[0], model.layers[0]), a,
         "lenet_feature_maps.png")

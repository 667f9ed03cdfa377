"""Writes the Keras 2 files that tests/test_keras_files.py loads into cnnx: models saved
by Keras 2 itself (tf.keras) as legacy HDF5 .h5 files, with the inputs and Keras's
predictions for them in keras2_expected.npz.

Run once, in an environment with TensorFlow 2.15 (Keras 2.15; made with tensorflow-cpu
2.15.1 on Python 3.11):

    python tests/data/make_keras2_fixtures.py
"""
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow import keras
from tensorflow.keras import layers

HERE = Path(__file__).resolve().parent


def main():
    tf.keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    expected = {}

    # The course's CNN as Keras 2 scripts write it: input_shape on the first layer.
    cnn = keras.Sequential([
        layers.Conv2D(8, (3, 3), input_shape=(16, 16, 3), activation="relu"),
        layers.BatchNormalization(),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Conv2D(8, (3, 3), activation="relu", padding="same"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Flatten(),
        layers.Dense(units=16, activation="relu"),
        layers.Dropout(0.5),
        layers.Dense(units=1, activation="sigmoid"),
    ])
    cnn.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy",
                metrics=["accuracy"])
    x = rng.random((32, 16, 16, 3), dtype=np.float32)
    cnn.fit(x, rng.integers(0, 2, 32), batch_size=8, epochs=1, verbose=0)
    cnn.save(HERE / "keras2_cnn.h5")
    expected["cnn_x"], expected["cnn_y"] = x[:4], cnn.predict(x[:4], verbose=0)

    image = keras.Input((12, 12, 2), name="image")
    extra = keras.Input((5,), name="extra")
    a = layers.Conv2D(6, 3, padding="same", activation="relu")(image)
    b = layers.Conv2D(6, 1)(image)
    x2 = layers.add([a, b])
    x2 = layers.GlobalAveragePooling2D()(layers.LeakyReLU(alpha=0.2)(x2))
    y2 = layers.Dense(4, activation="tanh")(extra)
    out = layers.Dense(3, activation="softmax")(layers.concatenate([x2, y2]))
    net = keras.Model([image, extra], out)
    net.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                loss="sparse_categorical_crossentropy")
    xi = rng.random((16, 12, 12, 2), dtype=np.float32)
    xe = rng.random((16, 5), dtype=np.float32)
    net.fit([xi, xe], rng.integers(0, 3, 16), batch_size=8, epochs=1, verbose=0)
    net.save(HERE / "keras2_graph.h5")
    expected["graph_image"], expected["graph_extra"] = xi[:4], xe[:4]
    expected["graph_y"] = net.predict([xi[:4], xe[:4]], verbose=0)

    np.savez(HERE / "keras2_expected.npz", **expected)
    print("TensorFlow", tf.__version__, "wrote",
          sorted(p.name for p in HERE.glob("keras2_*")))


if __name__ == "__main__":
    main()

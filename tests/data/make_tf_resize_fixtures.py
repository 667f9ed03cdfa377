"""Writes tests/data/tf_resize_expected.npz: TensorFlow's tf.image.resize (the function
Keras's Resizing layer calls on its TensorFlow backend; antialias off) of one random
image to several sizes, by each interpolation cnnx implements, for
tests/test_preprocessing_layers.py.

Run once with TensorFlow 2 (made with tensorflow-cpu 2.15.1):

    python tests/data/make_tf_resize_fixtures.py
"""
from pathlib import Path

import numpy as np
import tensorflow as tf

SIZES = [(9, 13), (4, 5), (7, 3), (14, 6), (1, 1)]
METHODS = ["bilinear", "nearest", "bicubic", "area"]


def main():
    image = np.random.default_rng(0).random((2, 7, 6, 3)).astype(np.float32)
    out = {"image": image}
    for method in METHODS:
        for h, w in SIZES:
            out[f"{method}_{h}x{w}"] = tf.image.resize(image, (h, w), method=method,
                                                       antialias=False).numpy()
    path = Path(__file__).resolve().parent / "tf_resize_expected.npz"
    np.savez(path, **out)
    print("TensorFlow", tf.__version__, "wrote", path.name, len(out), "arrays")


if __name__ == "__main__":
    main()

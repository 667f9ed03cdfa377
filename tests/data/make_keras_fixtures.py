"""Writes the Keras-made files that tests/test_keras_files.py loads into cnnx: each model
saved by Keras 3 itself as a .keras file and as a legacy .h5 file (and the CNN's weights
alone as a .weights.h5), with the inputs and Keras's predictions for them in
keras3_expected.npz.

Run once, with Keras 3 and a backend that trains (made with Keras 3.15.1 on PyTorch
2.13.0's CPU build):

    KERAS_BACKEND=torch python tests/data/make_keras_fixtures.py
"""
import os
from pathlib import Path

import keras
import numpy as np
from keras import layers

HERE = Path(__file__).resolve().parent


def sequential_cnn():
    # Layer names partly chosen, partly Keras's own, as in a tutorial.
    return keras.Sequential([
        keras.Input((16, 16, 3)),
        layers.Conv2D(8, 3, padding="same", activation="relu", name="first_conv"),
        layers.BatchNormalization(),
        layers.MaxPooling2D(2),
        layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, activation="relu"),
        layers.SeparableConv2D(8, 3, strides=2, padding="valid"),
        layers.AveragePooling2D(2, padding="same"),
        layers.Flatten(),
        layers.Dropout(0.25),
        layers.Dense(16, activation="relu", kernel_regularizer=keras.regularizers.L2(1e-4)),
        layers.Dense(3, activation="softmax", name="probabilities"),
    ], name="tutorial_cnn")


def graph():
    image = keras.Input((12, 12, 2), name="image")
    extra = keras.Input((5,), name="extra")
    x = layers.Conv2D(6, 3, padding="same", use_bias=False)(image)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    block = keras.Sequential([layers.Conv2D(6, 3, padding="same", activation="relu"),
                              layers.Conv2D(6, 1)], name="block")
    x = layers.add([x, block(x)])
    x = layers.LeakyReLU(negative_slope=0.1)(x)
    x = layers.GlobalAveragePooling2D()(x)
    shared = layers.Dense(4, activation="tanh", name="shared")
    y = shared(layers.Dense(4)(extra))
    z = layers.concatenate([x, y, shared(layers.Dense(4)(x))])
    out = layers.Dense(3, activation="softmax", name="kind")(z)
    return keras.Model([image, extra], out, name="two_inputs")


def zoo():
    """One of (nearly) every layer cnnx has, in inference: what each computes must agree."""
    inputs = keras.Input((16, 16, 3), name="pixels")
    x = layers.Rescaling(2.0, offset=-1.0)(inputs)
    x = layers.RandomFlip("horizontal")(x)          # identities at inference
    x = layers.RandomRotation(0.1)(x)
    x = layers.RandomZoom(0.1)(x)
    x = layers.RandomTranslation(0.1, 0.1)(x)
    x = layers.RandomContrast(0.1)(x)
    x = layers.RandomBrightness(0.1, value_range=(-1.0, 1.0))(x)
    x = layers.Normalization(mean=[0.1, 0.0, -0.1], variance=[0.5, 1.0, 2.0])(x)
    adapted = layers.Normalization()
    adapted.adapt(np.random.default_rng(5).normal(1.0, 2.0, (64, 4, 4, 3)))
    x = adapted(x)
    x = layers.GaussianNoise(0.1)(x)
    x = layers.ZeroPadding2D(1)(x)
    x = layers.Conv2D(4, 3, dilation_rate=2)(x)
    x = layers.ELU()(x)
    x = layers.Cropping2D(((1, 0), (0, 1)))(x)
    x = layers.Conv2DTranspose(4, 3, strides=2, padding="same")(x)
    x = layers.PReLU(shared_axes=[1, 2])(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.UpSampling2D(2, interpolation="bilinear")(x)
    x = layers.LayerNormalization()(x)
    x = layers.GroupNormalization(groups=2)(x)
    x = layers.ReLU(max_value=6.0)(x)
    x = layers.SpatialDropout2D(0.1)(x)
    x = layers.Resizing(8, 8)(x)
    x = layers.CenterCrop(6, 6)(x)
    x = layers.GaussianDropout(0.1)(x)
    a = layers.GlobalMaxPooling2D()(x)
    b = layers.GlobalAveragePooling2D()(layers.Softmax()(x))
    seq = layers.Reshape((16 * 16, 3))(inputs)
    seq = layers.Conv1D(4, 3, padding="causal", activation="tanh")(seq)
    seq = layers.MaxPooling1D(2)(seq)
    seq = layers.AveragePooling1D(2, padding="same")(seq)
    seq = layers.Permute((2, 1))(seq)
    seq = layers.Permute((2, 1))(seq)
    c = layers.GlobalAveragePooling1D()(seq)
    d = layers.GlobalMaxPooling1D()(seq)
    merged = [layers.multiply([a, b]), layers.subtract([a, c]), layers.average([b, d]),
              layers.maximum([a, d]), layers.minimum([b, c])]
    z = layers.concatenate(merged, name="features")
    z = layers.ActivityRegularization(l1=0.01)(z)
    z = layers.Dense(4, activation="sigmoid")(z)
    z = layers.Flatten()(layers.RepeatVector(2)(z))
    z = layers.Dense(3)(z)
    return keras.Model(inputs, layers.Activation("softmax")(z), name="zoo")


def main():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    expected = {}

    cnn = sequential_cnn()
    cnn.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                metrics=["accuracy"])
    x = rng.random((32, 16, 16, 3), dtype=np.float32)
    y = rng.integers(0, 3, 32)
    cnn.fit(x, y, batch_size=8, epochs=1, verbose=0)
    cnn.save(HERE / "keras3_cnn.keras")
    cnn.save(HERE / "keras3_cnn.h5")
    cnn.save_weights(HERE / "keras3_cnn.weights.h5")
    expected["cnn_x"], expected["cnn_y"] = x[:4], cnn.predict(x[:4], verbose=0)

    net = graph()
    net.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                loss="sparse_categorical_crossentropy")
    xi = rng.random((16, 12, 12, 2), dtype=np.float32)
    xe = rng.random((16, 5), dtype=np.float32)
    net.fit([xi, xe], rng.integers(0, 3, 16), batch_size=8, epochs=1, verbose=0)
    net.save(HERE / "keras3_graph.keras")
    net.save(HERE / "keras3_graph.h5")
    expected["graph_image"], expected["graph_extra"] = xi[:4], xe[:4]
    expected["graph_y"] = net.predict([xi[:4], xe[:4]], verbose=0)
    # One more step from the saved state (optimizer momentum, BatchNormalization's
    # statistics): a loader that restores it all takes the same step.
    expected["step_image"], expected["step_extra"] = xi[:8], xe[:8]
    expected["step_labels"] = rng.integers(0, 3, 8)
    net.train_on_batch([xi[:8], xe[:8]], expected["step_labels"])
    expected["graph_y_after_step"] = net.predict([xi[:4], xe[:4]], verbose=0)

    layer_zoo = zoo()
    xz = rng.random((4, 16, 16, 3), dtype=np.float32)
    layer_zoo.save(HERE / "keras3_zoo.keras")
    expected["zoo_x"], expected["zoo_y"] = xz, layer_zoo.predict(xz, verbose=0)
    features = keras.Model(layer_zoo.inputs, layer_zoo.get_layer("features").output)
    expected["zoo_features"] = features.predict(xz, verbose=0)

    np.savez(HERE / "keras3_expected.npz", **expected)
    print("Keras", keras.__version__, "backend", keras.backend.backend(), "wrote",
          sorted(p.name for p in HERE.glob("keras3_*")))


if __name__ == "__main__":
    os.environ.setdefault("KERAS_BACKEND", "torch")
    main()

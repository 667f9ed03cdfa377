"""cnnx.Model, the functional API, and feature maps through it."""
import numpy as np
import pytest

import cnnx as keras
from cnnx import layers

from helpers import data


def test_functional_model_trains_like_the_same_sequential():
    x, y, _ = data(16)
    keras.utils.set_random_seed(4)
    inputs = keras.Input(shape=(6, 6, 2))
    h = layers.Conv2D(4, 3, activation="relu")(inputs)
    h = layers.MaxPooling2D(2)(h)
    outputs = layers.Dense(3, activation="softmax")(layers.Flatten()(h))
    functional = keras.Model(inputs=inputs, outputs=outputs)
    assert outputs.shape == (None, 3) and functional.output_shape == (None, 3)
    keras.utils.set_random_seed(4)
    sequential = keras.Sequential([keras.Input(shape=(6, 6, 2)),
                                   layers.Conv2D(4, 3, activation="relu"),
                                   layers.MaxPooling2D(2), layers.Flatten(),
                                   layers.Dense(3, activation="softmax")])
    for m in (functional, sequential):
        m.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    h1 = functional.fit(x, y, epochs=2, verbose=0, shuffle=False).history
    h2 = sequential.fit(x, y, epochs=2, verbose=0, shuffle=False).history
    assert h1 == h2
    np.testing.assert_array_equal(functional.predict(x, verbose=0),
                                  sequential.predict(x, verbose=0))


def test_feature_maps_share_the_trained_layers(tmp_path):
    x, y, _ = data(8)
    model = keras.Sequential([keras.Input(shape=(6, 6, 2)),
                              layers.Conv2D(4, 3, activation="relu"),
                              layers.MaxPooling2D(2), layers.Flatten(),
                              layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    model.fit(x, y, epochs=1, verbose=0)
    conv = model.layers[0]
    maps = keras.Model(inputs=model.inputs, outputs=conv.output).predict(x, verbose=0)
    expected = keras.ops.conv2d(x, conv.kernel.value, conv.bias.value, activation="relu")
    np.testing.assert_array_equal(maps, expected)
    assert keras.Model(model.input, model.layers[1].output).output_shape == (None, 2, 2, 4)
    # A functional model saves and loads like a Sequential one.
    features = keras.Model(model.inputs, model.layers[1].output)
    features.save(tmp_path / "f.keras")
    loaded = keras.models.load_model(tmp_path / "f.keras")
    assert type(loaded).__name__ == "Model"
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), features.predict(x, verbose=0))


def test_functional_errors():
    a, b = keras.Input(shape=(4,)), keras.Input(shape=(4,))
    dense = layers.Dense(2)
    out = dense(a)
    with pytest.raises(ValueError, match="is not computed from `inputs`"):
        keras.Model(inputs=b, outputs=out)
    with pytest.warns(UserWarning, match="input '.*' is not used"):
        keras.Model(inputs=[a, b], outputs=out)
    with pytest.raises(TypeError, match="pass inputs= and outputs="):
        keras.Model()
    # dense was built for 4 features
    with pytest.raises(ValueError, match=r"Input to layer .* has shape \(None, 5\)"):
        dense(keras.Input(shape=(5,)))

"""The keras.io "Simple MNIST convnet", with only its import changed, on real data."""
import numpy as np
import pytest

import cnnx as keras

from helpers import mnist_5k, mnist_test


@pytest.mark.slow
def test_simple_mnist_convnet_reaches_95_percent(capsys, shared_data):
    x_train, y_train = mnist_5k(shared_data)
    x_test, y_test = mnist_test(shared_data)
    # The CSV is sorted by class: shuffle once, or validation_split (the last 10%, as in
    # Keras) would hold only nines.
    order = np.random.default_rng(0).permutation(len(x_train))
    x_train, y_train = x_train[order], y_train[order]

    # --- the keras.io example, unchanged but for `import cnnx as keras` ---
    num_classes = 10
    input_shape = (28, 28, 1)
    x_train = x_train.astype("float32") / 255
    x_test = x_test.astype("float32") / 255
    y_train = keras.utils.to_categorical(y_train, num_classes)
    y_test = keras.utils.to_categorical(y_test, num_classes)
    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [
            keras.Input(shape=input_shape),
            keras.layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
            keras.layers.MaxPooling2D(pool_size=(2, 2)),
            keras.layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
            keras.layers.MaxPooling2D(pool_size=(2, 2)),
            keras.layers.Flatten(),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(num_classes, activation="softmax"),
        ]
    )
    model.summary()
    batch_size = 128
    epochs = 15
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    history = model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs,
                        validation_split=0.1)
    score = model.evaluate(x_test, y_test, verbose=0)
    print("Test loss:", score[0])
    print("Test accuracy:", score[1])
    # --- end of the example ---

    out = capsys.readouterr().out
    assert "Total params: 34,826" in out
    assert "Epoch 15/15" in out
    assert sorted(history.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert len(history.history["loss"]) == epochs
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert score[1] >= 0.95, f"test accuracy {score[1]:.4f}"
    predicted = np.argmax(model.predict(x_test[:500], verbose=0), axis=1)
    assert np.mean(predicted == np.argmax(y_test[:500], axis=1)) >= 0.93

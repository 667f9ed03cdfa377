"""keras.io's "Image classification from scratch" (a small Xception: Rescaling, RandomFlip,
RandomRotation, SeparableConv2D, residual Add, BatchNormalization,
GlobalAveragePooling2D, Dropout), written as the example writes it with only the import
changed, on the course's cats-vs-dogs JPEGs."""
import numpy as np
import pytest

import cnnx as keras
from cnnx import layers


def make_model(input_shape, num_classes):
    # The example's make_model, with its data augmentation in the model (as the example's
    # first version had it).
    data_augmentation = keras.Sequential([layers.RandomFlip("horizontal"),
                                         layers.RandomRotation(0.1)])
    inputs = keras.Input(shape=input_shape)
    x = data_augmentation(inputs)
    x = layers.Rescaling(1.0 / 255)(x)
    x = layers.Conv2D(32, 3, strides=2, padding="same")(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    x = layers.Conv2D(64, 3, padding="same")(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    previous_block_activation = x
    for size in [128, 256, 512, 728]:
        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(size, 3, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(size, 3, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
        residual = layers.Conv2D(size, 1, strides=2, padding="same")(
            previous_block_activation)
        x = layers.add([x, residual])
        previous_block_activation = x
    x = layers.SeparableConv2D(1024, 3, padding="same")(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    activation, units = ("sigmoid", 1) if num_classes == 2 else ("softmax", num_classes)
    x = layers.Dropout(0.5)(x)
    outputs = layers.Dense(units, activation=activation)(x)
    return keras.Model(inputs, outputs)


def test_xception_has_keras_parameter_counts():
    """Keras's counts for this model at 180 x 180 x 3 (they do not depend on the image
    size): 2,782,649 in all, 2,773,913 trainable, 8,736 the BatchNormalization moving
    statistics. Worked out from Keras's per-layer formulas: a SeparableConv2D has
    kh * kw * C + C * filters + filters, a BatchNormalization 4 per channel (2 of them
    non-trainable)."""
    model = make_model((180, 180, 3), 2)
    trainable = sum(w.value.size for w in model.trainable_weights)
    assert model.count_params() == 2_782_649
    assert trainable == 2_773_913
    assert model.count_params() - trainable == 8_736
    assert model.output_shape == (None, 1)


@pytest.mark.slow
def test_xception_trains_on_cats_and_dogs(shared_data):
    pytest.importorskip("PIL")
    keras.utils.set_random_seed(0)
    image_size = (64, 64)   # the example's 180 x 180 costs 8 times as much per image
    train_ds = keras.utils.image_dataset_from_directory(
        str(shared_data / "catsdogs" / "training_set"), image_size=image_size,
        batch_size=16, seed=1337)
    model = make_model(input_shape=image_size + (3,), num_classes=2)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy",
                  metrics=["accuracy"], jit_compile=True)
    before = [w.copy() for w in model.get_weights()]
    history = model.fit(train_ds, epochs=2, steps_per_epoch=6, verbose=0)
    losses = history.history["loss"]
    assert len(losses) == 2 and np.isfinite(losses).all()
    assert all(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    batch = next(iter(train_ds))[0][:4]
    p = model.predict(batch, verbose=0)
    assert p.shape == (4, 1) and np.all((p >= 0) & (p <= 1))

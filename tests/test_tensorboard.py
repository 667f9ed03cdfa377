"""The TensorBoard callback writes event files that TensorBoard's own reader reads:
epoch and batch scalars, validation scalars, weight histograms and images, the model's
summary as text."""
import numpy as np
import pytest

import cnnx

pytest.importorskip("tensorboard")


def read(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "histograms": 0,
                                                       "images": 0, "tensors": 0})
    acc.Reload()
    return acc


def test_tensorboard_files_are_read_by_tensorboard(tmp_path):
    cnnx.utils.set_random_seed(0)
    model = cnnx.Sequential([cnnx.Input((6, 6, 1)), cnnx.layers.Conv2D(2, 3, activation="relu"),
                             cnnx.layers.Flatten(), cnnx.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((40, 6, 6, 1)), rng.integers(0, 2, 40)
    board = cnnx.callbacks.TensorBoard(tmp_path / "logs", histogram_freq=1, write_images=True,
                                       update_freq="batch", write_steps_per_second=True)
    history = model.fit(x, y, batch_size=10, epochs=3, verbose=0, validation_split=0.25,
                        callbacks=[board]).history
    train, val = read(tmp_path / "logs" / "train"), read(tmp_path / "logs" / "validation")
    losses = train.Scalars("epoch_loss")
    assert [e.step for e in losses] == [0, 1, 2]
    np.testing.assert_allclose([e.value for e in losses], history["loss"], rtol=1e-6)
    np.testing.assert_allclose([e.value for e in val.Scalars("epoch_loss")],
                               history["val_loss"], rtol=1e-6)
    np.testing.assert_allclose([e.value for e in val.Scalars("epoch_accuracy")],
                               history["val_accuracy"], rtol=1e-6)
    assert len(train.Scalars("batch_loss")) == 9                 # 3 steps x 3 epochs
    assert [e.value for e in train.Scalars("epoch_learning_rate")] == pytest.approx([1e-3] * 3)
    assert len(train.Scalars("epoch_steps_per_second")) == 3
    tags = train.Tags()
    assert sorted(tags["histograms"]) == sorted(f"{w.name}/histogram" for w in model.weights)
    histogram = train.Histograms(tags["histograms"][0])
    assert len(histogram) == 3 and histogram[0].histogram_value.num > 0
    assert sorted(tags["images"]) == sorted(f"{w.name}/image" for w in model.weights)
    image = train.Images(tags["images"][0])[0]
    assert image.encoded_image_string.startswith(b"\x89PNG")
    summary = train.Tensors("model/summary")[0].tensor_proto.string_val[0].decode()
    assert "Total params" in summary


def test_tensorboard_refuses_what_it_does_not_write(tmp_path):
    with pytest.raises(NotImplementedError, match="profile_batch"):
        cnnx.callbacks.TensorBoard(tmp_path, profile_batch=2)
    with pytest.raises(ValueError, match="`update_freq` must be"):
        cnnx.callbacks.TensorBoard(tmp_path, update_freq=0)

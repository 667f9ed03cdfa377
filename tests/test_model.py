"""Sequential: Keras's fit/evaluate/predict semantics, bad input, determinism, callbacks."""
import re

import numpy as np
import pytest

import cnnx
import cnnx as keras
from cnnx import layers

from helpers import data, small_model


def test_fit_keeps_last_partial_batch_and_weighs_the_epoch_loss():
    model = small_model()
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="categorical_crossentropy",
                  metrics=["accuracy"])
    x, y, _ = data(10)
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False)
    assert history.params["steps"] == 3  # 4 + 4 + 2: the partial batch is kept
    # With a zero learning rate the batch-size-weighted mean is the full-data loss.
    loss, acc = model.evaluate(x, y, verbose=0)
    assert history.history["loss"][0] == pytest.approx(loss, rel=1e-5)
    assert history.history["accuracy"][0] == pytest.approx(acc)


def test_validation_split_takes_the_last_fraction_before_shuffling():
    model = small_model()
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["acc"])
    x, y, _ = data(20)
    history = model.fit(x, y, batch_size=5, epochs=2, validation_split=0.25, verbose=0)
    assert history.params["steps"] == 3  # 15 training samples
    val = model.evaluate(x[15:], y[15:], verbose=0, return_dict=True)
    assert history.history["val_loss"][-1] == pytest.approx(val["loss"], rel=1e-5)
    assert list(history.history) == ["acc", "loss", "val_acc", "val_loss"]
    assert history.epoch == [0, 1]


def test_epoch_line_only_when_more_than_one_epoch(capsys):
    model = small_model()
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    x, y, _ = data(8)
    model.fit(x, y, epochs=1, verbose=2)
    one = capsys.readouterr().out
    model.fit(x, y, epochs=2, verbose=2)
    two = capsys.readouterr().out
    assert "Epoch" not in one and "Epoch 1/2" in two and "Epoch 2/2" in two
    assert one.count("\n") == 1  # verbose=2 (and non-terminals): one line per epoch
    assert re.fullmatch(r"1/1 - \d+s - \d+(us|ms|s)/step - loss: \d\.\d{4}\n", one)


def test_accuracy_resolves_by_keras_rule():
    x, y, labels = data(8)
    for loss, last, units, target, cls in [
        ("categorical_crossentropy", "softmax", 3, y, cnnx.metrics.CategoricalAccuracy),
        ("sparse_categorical_crossentropy", "softmax", 3, labels,
         cnnx.metrics.SparseCategoricalAccuracy),
        ("binary_crossentropy", "sigmoid", 1, labels % 2, cnnx.metrics.BinaryAccuracy),
    ]:
        model = small_model(last=last, units=units)
        model.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
        model.fit(x, target, epochs=1, verbose=0)
        assert type(model.metrics[0]) is cls


def test_fused_logits_path_trains_like_the_plain_path():
    """Softmax + categorical cross-entropy through the fused logits kernel gives the same
    loss values and weights as the generic probability-space gradient."""
    x, y, _ = data(16)
    results = []
    for fused in (True, False):
        model = small_model(seed=5)
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="categorical_crossentropy")
        if not fused:
            # The fusion is a private mechanism and this test is about it: switch it off.
            model._fused_loss = lambda: False
        h = model.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False)
        results.append((h.history["loss"], model.get_weights()))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-5)
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def _weights_after_training(threads_count, x, y):
    cnnx.set_num_threads(threads_count)
    model = small_model(seed=3, dropout=0.3)
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, batch_size=4, epochs=2, verbose=0)
    return model.get_weights(), history.history


def test_same_seed_same_result_for_any_thread_count(threads):
    x, y, _ = data(24)
    w1, h1 = _weights_after_training(1, x, y)
    w2, h2 = _weights_after_training(2, x, y)
    w3, h3 = _weights_after_training(2, x, y)
    assert h1 == h2 == h3
    for a, b, c in zip(w1, w2, w3):
        assert np.array_equal(a, b) and np.array_equal(b, c)


@pytest.mark.parametrize("call,match", [
    (lambda m, x, y: m.fit(x[:, :5], y, verbose=0),
     r"fit: input of shape \(20, 5, 6, 2\) is incompatible with layer 'conv2d.*', which "
     r"expects \(None, 6, 6, 2\)"),
    (lambda m, x, y: m.fit(x, y[:19], verbose=0), r"`x` has 20 samples but `y` has 19"),
    (lambda m, x, y: m.fit(x, y[:, :2], verbose=0),
     r"`y` has shape \(20, 2\) but the model's output has shape \(None, 3\) \(3 units\)"),
    (lambda m, x, y: m.fit(x, np.argmax(y, 1), verbose=0), r"one-hot encode the labels"),
    (lambda m, x, y: m.fit(np.where(x > 2, np.nan, x), y, verbose=0),
     r"`x` contains NaN or infinity \(first at index"),
    (lambda m, x, y: m.fit(x[:0], y[:0], verbose=0), r"`x` is empty"),
    (lambda m, x, y: m.fit(x, y, batch_size=0, verbose=0),
     r"`batch_size` must be a positive int, received 0"),
    (lambda m, x, y: m.fit(x, y, epochs=0, verbose=0), r"`epochs` must be a positive int"),
    (lambda m, x, y: m.evaluate(x, y * np.nan, verbose=0), r"`y` contains NaN"),
    (lambda m, x, y: m.predict(x[..., :1], verbose=0), r"predict: input of shape"),
    (lambda m, x, y: m.predict(x, batch_size=-3, verbose=0), r"`batch_size` must be"),
])
def test_bad_input_fails_before_training_and_leaves_weights(call, match):
    model = small_model()
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    x, y, _ = data(20)
    before = model.get_weights()
    with pytest.raises(ValueError, match=match):
        call(model, x, y)
    for a, b in zip(before, model.get_weights()):
        assert np.array_equal(a, b)


def test_sparse_labels_out_of_range_are_named():
    model = small_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x, _, labels = data(20)
    with pytest.raises(ValueError, match=r"labels must be integers in \[0, 3\) for the 3-unit"):
        model.fit(x, labels + 1, verbose=0)


def test_fit_before_compile_is_a_clear_error():
    x, y, _ = data(4)
    with pytest.raises(RuntimeError, match="call compile"):
        small_model().fit(x, y, verbose=0)


def test_on_batch_methods_and_predict_shapes():
    model = small_model()
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    x, y, _ = data(10)
    loss, acc = model.train_on_batch(x, y)
    assert np.isfinite(loss) and 0 <= acc <= 1
    assert model.test_on_batch(x, y)[0] == pytest.approx(model.evaluate(x, y, verbose=0)[0])
    p = model.predict(x, batch_size=3, verbose=0)
    assert p.shape == (10, 3)
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(model.predict_on_batch(x), p, rtol=1e-6)
    np.testing.assert_allclose(model(x), p, rtol=1e-6)


def test_structure_api():
    model = small_model()
    assert [type(layer).__name__ for layer in model.layers] == [
        "Conv2D", "MaxPooling2D", "Flatten", "Dropout", "Dense"]
    assert model.get_layer(index=0) is model.layers[0]
    assert model.get_layer(model.layers[-1].name) is model.layers[-1]
    popped = model.pop()
    assert isinstance(popped, layers.Dense) and len(model.layers) == 4
    with pytest.raises(ValueError, match="No such layer"):
        model.get_layer("nope")
    model.layers[0].trainable = False
    assert len(model.trainable_weights) == 0
    keras2 = keras.Sequential([layers.Conv2D(2, 3, input_shape=(5, 5, 1)), layers.Flatten(),
                               layers.Dense(1, activation="sigmoid")])
    assert keras2.output_shape == (None, 1)


def test_callbacks(tmp_path):
    x, y, _ = data(20)
    seen = []
    model = small_model()
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="categorical_crossentropy",
                  metrics=["accuracy"])
    cbs = [
        keras.callbacks.EarlyStopping(monitor="loss", patience=0, min_delta=10.0,
                                      restore_best_weights=True),
        keras.callbacks.LearningRateScheduler(lambda epoch, lr: 0.01 / (epoch + 1)),
        keras.callbacks.CSVLogger(tmp_path / "log.csv"),  # after: sees learning_rate
        keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: seen.append(e)),
        keras.callbacks.ModelCheckpoint(str(tmp_path / "best.keras"), monitor="loss",
                                        save_best_only=True),
    ]
    history = model.fit(x, y, epochs=5, verbose=0, callbacks=cbs)
    assert len(history.epoch) == 2 and seen == [0, 1]  # stopped after no big improvement
    lines = (tmp_path / "log.csv").read_text().splitlines()
    assert lines[0] == "epoch,accuracy,learning_rate,loss" and len(lines) == 3
    assert (tmp_path / "best.keras").exists()
    assert model.optimizer.learning_rate == pytest.approx(0.005)

    nan_model = small_model()
    nan_model.compile(optimizer=keras.optimizers.SGD(1e30), loss="categorical_crossentropy")
    h = nan_model.fit(x, y * 1e30, epochs=3, batch_size=4, verbose=0,
                      callbacks=[keras.callbacks.TerminateOnNaN()])
    assert len(h.epoch) == 1

    plateau = small_model()
    plateau.compile(optimizer=keras.optimizers.SGD(0.1), loss="categorical_crossentropy")
    plateau.fit(x, y, epochs=3, verbose=0, callbacks=[keras.callbacks.ReduceLROnPlateau(
        monitor="loss", factor=0.5, patience=1, min_delta=100)])
    assert plateau.optimizer.learning_rate < 0.1


def test_sample_and_class_weights_scale_the_loss():
    x, y, labels = data(12)
    model = small_model()
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="categorical_crossentropy")
    base = model.fit(x, y, batch_size=12, epochs=1, verbose=0).history["loss"][0]
    doubled = model.fit(x, y, batch_size=12, epochs=1, verbose=0,
                        sample_weight=np.full(12, 2.0)).history["loss"][0]
    assert doubled == pytest.approx(2 * base, rel=1e-5)
    per_sample = keras.losses.categorical_crossentropy(y, model.predict(x, verbose=0))
    weights = {0: 1.0, 1: 0.0, 2: 3.0}
    weighted = model.fit(x, y, batch_size=12, epochs=1, verbose=0,
                         class_weight=weights).history["loss"][0]
    expected = np.mean(per_sample * np.array([weights[c] for c in labels]))
    assert weighted == pytest.approx(expected, rel=1e-5)


def test_initial_epoch_and_steps_per_epoch():
    x, y, _ = data(20)
    model = small_model()
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    history = model.fit(x, y, batch_size=4, epochs=3, initial_epoch=1, steps_per_epoch=2,
                        verbose=0)
    assert history.epoch == [1, 2] and history.params["steps"] == 2
    assert model.optimizer.iterations == 4


def test_concurrent_inference_from_several_threads():
    import threading
    model = small_model()
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((32, 6, 6, 2)).astype(np.float32) for _ in range(4)]
    expected = [model.predict(x, batch_size=8, verbose=0) for x in xs]
    bad = []

    def work(i):
        for _ in range(20):
            if not np.array_equal(model.predict(xs[i], batch_size=8, verbose=0), expected[i]):
                bad.append(i)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert bad == []
    import copy
    clone = copy.deepcopy(model)
    np.testing.assert_array_equal(clone.predict(xs[0], verbose=0), expected[0])

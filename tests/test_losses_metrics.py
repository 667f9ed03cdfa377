"""Losses (functions and classes) and metrics against values worked out by hand."""
import numpy as np
import pytest

import cnnx as keras
from cnnx import losses, metrics

T = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
P = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2]])


def test_loss_functions_and_classes():
    per_sample = [-np.log(0.7), -np.log(0.5)]
    np.testing.assert_allclose(losses.categorical_crossentropy(T, P), per_sample)
    assert losses.CategoricalCrossentropy()(T, P) == pytest.approx(np.mean(per_sample))
    assert losses.SparseCategoricalCrossentropy()([1, 0], P) == pytest.approx(
        np.mean(per_sample))
    assert losses.get("sparse_categorical_crossentropy")(np.array([[1], [0]]), P) == \
        pytest.approx(np.mean(per_sample))
    # sum_over_batch_size with sample weights: sum(w * l) / N
    assert losses.CategoricalCrossentropy()(T, P, sample_weight=[2.0, 0.0]) == pytest.approx(
        2 * per_sample[0] / 2)
    # label smoothing 0.3 over 3 classes: targets 0.1 / 0.8
    smoothed = T * 0.7 + 0.1
    assert losses.CategoricalCrossentropy(label_smoothing=0.3)(T, P) == pytest.approx(
        np.mean(-np.sum(smoothed * np.log(P), axis=1)))
    z = np.log(P)
    assert losses.CategoricalCrossentropy(from_logits=True)(T, z) == pytest.approx(
        np.mean(per_sample))
    yb, pb = np.array([[1.0], [0.0]]), np.array([[0.8], [0.4]])
    assert losses.BinaryCrossentropy()(yb, pb) == pytest.approx(
        np.mean([-np.log(0.8), -np.log(0.6)]))
    assert losses.BinaryCrossentropy(from_logits=True)(yb, np.log(pb / (1 - pb))) == \
        pytest.approx(np.mean([-np.log(0.8), -np.log(0.6)]))
    assert losses.MeanSquaredError()(T, P) == pytest.approx(np.mean((T - P) ** 2))
    assert losses.MeanAbsoluteError()(T, P) == pytest.approx(np.mean(np.abs(T - P)))
    assert losses.get(losses.mse) is not None and losses.get("mae").name == "mean_absolute_error"
    with pytest.raises(ValueError, match="Unknown loss 'hinge'"):
        losses.get("hinge")
    with pytest.raises(ValueError, match=r"y_true has shape \(2, 2\) but y_pred has shape"):
        losses.categorical_crossentropy(T[:, :2], P)


def test_keras_clipping_at_saturation():
    # A predicted probability of 0 is clipped to 1e-7: the loss is -log(1e-7) = 16.118...
    loss = losses.CategoricalCrossentropy()(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]]))
    assert loss == pytest.approx(-np.log(1e-7), rel=1e-6)


@pytest.mark.parametrize("cls", [losses.CategoricalCrossentropy, losses.BinaryCrossentropy,
                                 losses.MeanSquaredError, losses.MeanAbsoluteError])
def test_loss_gradients_by_finite_differences(cls, rng):
    from helpers import numerical_grad
    if cls is losses.BinaryCrossentropy:
        t, p = (rng.random((4, 3)) > 0.5).astype(float), rng.uniform(0.1, 0.9, (4, 3))
    else:
        t, p = np.eye(3)[[0, 2, 1, 0]], rng.uniform(0.1, 0.9, (4, 3))
    loss = cls()
    _, grad = loss.value_and_grad(t, p)
    np.testing.assert_allclose(grad, numerical_grad(lambda: loss(t, p), p), rtol=1e-5,
                               atol=1e-8)


def test_metrics():
    m = metrics.CategoricalAccuracy()
    m.update_state(T, P)
    assert m.result() == 1.0
    m.update_state(T, P[::-1])
    assert m.result() == 0.5
    m.reset_state()
    assert m.result() == 0.0
    s = metrics.SparseCategoricalAccuracy()
    s.update_state([1, 2], P)
    assert s.result() == 0.5
    b = metrics.BinaryAccuracy()
    b.update_state([[1], [0], [1]], [[0.6], [0.4], [0.5]])  # 0.5 is not > 0.5
    assert b.result() == pytest.approx(2 / 3)
    k = metrics.TopKCategoricalAccuracy(k=2)
    k.update_state(np.eye(3)[[2, 1]], P)  # class 2 is 2nd of row 0; class 1 is 2nd of row 1
    assert k.result() == 1.0
    k1 = metrics.TopKCategoricalAccuracy(k=1)
    k1.update_state(np.eye(3)[[2, 1]], P)
    assert k1.result() == 0.0
    mse = metrics.MeanSquaredError()
    mse.update_state(T, P)
    assert mse.result() == pytest.approx(np.mean((T - P) ** 2))
    pr, rc = metrics.Precision(), metrics.Recall()
    truth, pred = [1, 0, 1, 1], [0.9, 0.8, 0.2, 0.7]  # tp 2, fp 1, fn 1
    pr.update_state(truth, pred)
    rc.update_state(truth, pred)
    assert pr.result() == pytest.approx(2 / 3) and rc.result() == pytest.approx(2 / 3)
    weighted = metrics.CategoricalAccuracy()
    weighted.update_state(T, np.array([[0, 1, 0], [0, 1, 0.0]]), sample_weight=[3, 1])
    assert weighted.result() == 0.75


def test_metrics_in_fit_by_name():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="sgd", loss="categorical_crossentropy",
                  metrics=["accuracy", "top_k_categorical_accuracy", "precision"])
    x = np.random.default_rng(0).random((6, 4))
    logs = model.evaluate(x, np.eye(3)[[0, 1, 2, 0, 1, 2]], verbose=0, return_dict=True)
    assert sorted(logs) == ["accuracy", "loss", "precision", "top_k_categorical_accuracy"]
    assert logs["top_k_categorical_accuracy"] == 1.0  # k = 5 > 3 classes

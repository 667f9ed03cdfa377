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


# Keras 3's AUCTest cases (keras/src/metrics/confusion_metrics_test.py): y_true
# [0, 0, 1, 1], y_pred [0, 0.5, 0.3, 0.9], sample_weight [1, 2, 3, 4], 3 thresholds.
@pytest.mark.parametrize("curve,summation,expected", [
    ("ROC", "interpolation", 0.7855), ("ROC", "majoring", 1.0), ("ROC", "minoring", 0.571),
    ("PR", "majoring", 1.0), ("PR", "minoring", 0.7 * 0.429),
    ("PR", "interpolation", 2.416 / 7 + 4 / 7),
])
def test_auc_on_keras_cases(curve, summation, expected):
    auc = metrics.AUC(num_thresholds=3, curve=curve, summation_method=summation)
    auc.update_state([0, 0, 1, 1], [0, 0.5, 0.3, 0.9], sample_weight=[1, 2, 3, 4])
    np.testing.assert_allclose(auc.result(), expected, rtol=1e-3)


def test_auc_unweighted_flat_and_edge_cases():
    y_pred = np.array([[0, 0.5, 0.3, 0.9], [0.1, 0.2, 0.3, 0.4]]).T
    y_true = np.array([[0, 0, 1, 1], [0, 0, 1, 1]]).T
    auc = metrics.AUC(num_thresholds=5)
    auc.update_state(y_true, y_pred)
    np.testing.assert_allclose(auc.result(), 1 - 3 / 32, rtol=1e-3)   # Keras's value
    auc.reset_state()
    auc.update_state(y_true, y_pred, sample_weight=[1, 2, 3, 4])
    np.testing.assert_allclose(auc.result(), 1 - 0.3333 * (1 - 0.2857) / 2, rtol=1e-3)
    logits = metrics.AUC(num_thresholds=5, from_logits=True)
    y32 = y_pred.astype(np.float32)    # Keras's test case is float32: logit(0.5) is 0
    logits.update_state(y_true, -np.log(1 / (y32 + np.float32(1e-12)) - 1))
    np.testing.assert_allclose(logits.result(), 1 - 3 / 32, rtol=1e-3)
    negative = metrics.AUC(num_thresholds=3, curve="PR")
    negative.update_state([0, 0, 1, 1], [0, 0.5, 0.3, 0.9], sample_weight=[-1, -2, -3, -4])
    assert negative.result() == 0.0
    with pytest.raises(ValueError, match="`num_thresholds` must be an int > 1"):
        metrics.AUC(num_thresholds=1)
    with pytest.raises(ValueError, match="`curve` must be 'ROC' or 'PR'"):
        metrics.AUC(curve="Invalid")
    with pytest.raises(NotImplementedError, match="multi_label"):
        metrics.AUC(multi_label=True)


def test_auc_in_fit_logs():
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).standard_normal((64, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.float32)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=keras.optimizers.Adam(0.1), loss="binary_crossentropy",
                  metrics=["auc", metrics.AUC(curve="PR", name="pr_auc")])
    history = model.fit(x, y, epochs=5, verbose=0).history
    assert history["auc"][-1] > 0.9 and 0 < history["pr_auc"][-1] <= 1

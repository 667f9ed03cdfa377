"""The course's worked examples, exactly, through cnnx.ops."""
import numpy as np
import pytest

import cnnx
from cnnx import ops

IMAGE = np.array([
    [0, 0, 0, 0, 0, 0, 0],
    [0, 1, 0, 0, 0, 1, 0],
    [0, 0, 0, 0, 0, 0, 0],
    [0, 0, 0, 1, 0, 0, 0],
    [0, 1, 0, 0, 0, 1, 0],
    [0, 0, 1, 1, 1, 0, 0],
    [0, 0, 0, 0, 0, 0, 0],
], np.float32)
DETECTOR = np.array([[0, 0, 1], [1, 0, 0], [0, 1, 1]], np.float32)
# The course slide shows 1 at row 3, column 3 (1-based). The correct value is 0: the
# detector's three 1s fall on image pixels (2,4), (3,2) and (4,3), which are all 0.
FEATURE_MAP = np.array([
    [0, 1, 0, 0, 0],
    [0, 1, 1, 1, 0],
    [1, 0, 0, 2, 1],
    [1, 4, 2, 1, 0],
    [0, 0, 1, 2, 1],
], np.float32)


def feature_map():
    return ops.conv(IMAGE.reshape(1, 7, 7, 1), DETECTOR.reshape(3, 3, 1, 1))


def test_feature_detector_gives_the_course_feature_map():
    fmap = feature_map()
    assert fmap.shape == (1, 5, 5, 1)
    np.testing.assert_array_equal(fmap[0, :, :, 0], FEATURE_MAP)
    assert fmap[0, 2, 2, 0] == 0  # the slide's 1 is a mistake


def test_max_pooling_2x2_stride_2_same():
    pooled = ops.max_pool(feature_map(), pool_size=2, strides=2, padding="same")
    np.testing.assert_array_equal(pooled[0, :, :, 0], [[1, 1, 0], [4, 2, 1], [0, 2, 1]])


def test_flattening_goes_row_by_row():
    pooled = ops.max_pool(feature_map(), 2, 2, "same")
    np.testing.assert_array_equal(ops.flatten(pooled)[0], [1, 1, 0, 4, 2, 1, 0, 2, 1])


def test_softmax_of_dog_and_cat_logits():
    z = np.array([[np.log(19.0) + 0.3, 0.3]])  # z1 - z2 = ln 19
    np.testing.assert_allclose(ops.softmax(z), [[0.95, 0.05]], rtol=1e-12)


TARGETS = np.array([[1, 0], [0, 1], [1, 0]], np.float64)  # dog, cat, dog
NN1 = np.array([[0.9, 0.1], [0.1, 0.9], [0.4, 0.6]])
NN2 = np.array([[0.6, 0.4], [0.3, 0.7], [0.1, 0.9]])


def test_classification_error_is_one_third_for_both():
    for pred in (NN1, NN2):
        accuracy = cnnx.metrics.CategoricalAccuracy()
        accuracy.update_state(TARGETS, pred)
        assert 1 - float(accuracy.result()) == pytest.approx(1 / 3, rel=1e-6)


def test_mean_squared_error_025_versus_071():
    # The course sums the squared errors over the two classes; Keras's mean_squared_error
    # averages them (over the last axis), so the course's figure is twice Keras's.
    mse = [2 * np.mean(cnnx.losses.mean_squared_error(TARGETS, pred)) for pred in (NN1, NN2)]
    np.testing.assert_allclose(mse, [0.25, 0.71], atol=0.005)
    np.testing.assert_allclose(mse, [0.76 / 3, 2.12 / 3], rtol=1e-12)  # exact sums


def test_cross_entropy_038_versus_106():
    ce = [np.mean(ops.categorical_crossentropy(TARGETS, pred)) for pred in (NN1, NN2)]
    np.testing.assert_allclose(ce, [0.38, 1.06], atol=0.005)
    # The same through the fused logits path.
    ce_logits = [np.mean(ops.softmax_cross_entropy(np.log(pred), TARGETS)[0])
                 for pred in (NN1, NN2)]
    np.testing.assert_allclose(ce_logits, ce, rtol=1e-6)

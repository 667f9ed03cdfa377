"""Keras 1 and 2 spellings that course scripts use: each works, with a warning naming the
Keras 3 spelling, and computes what Keras 1/2 computed."""
import warnings

import numpy as np
import pytest

import cnnx
from cnnx import backend as K
from cnnx import layers

from helpers import data


def test_keras1_layer_arguments_are_renamed_with_a_warning():
    with pytest.warns(DeprecationWarning) as record:
        dense = layers.Dense(output_dim=7, init="uniform", W_regularizer="l2")
    assert [str(w.message) for w in record] == [
        "Dense: `output_dim` is the Keras 1/2 spelling; use `units`",
        "Dense: `init` is the Keras 1/2 spelling; use `kernel_initializer`",
        "Dense: `W_regularizer` is the Keras 1/2 spelling; use `kernel_regularizer`"]
    assert record[0].filename == __file__   # the warning points at the caller
    assert dense.units == 7 and type(dense.kernel_initializer).__name__ == "RandomUniform"
    assert type(dense.kernel_regularizer).__name__ == "L2"
    with pytest.warns(DeprecationWarning) as record:
        conv = layers.Conv2D(nb_filter=4, kernel_size=3, border_mode="same", subsample=(2, 2))
    assert len(record) == 3 and "`border_mode`" in str(record[1].message)
    assert (conv.filters, conv.padding, conv.strides) == (4, "same", (2, 2))
    with pytest.warns(DeprecationWarning):
        pool = layers.MaxPooling2D(pool_size=(2, 2), border_mode="same", dim_ordering="tf")
    assert pool.padding == "same"
    with pytest.raises(TypeError, match="got both `output_dim` .* and `units`"):
        layers.Dense(3, output_dim=4)
    with pytest.raises(ValueError, match="only data_format='channels_last'"):
        with pytest.warns(DeprecationWarning):
            layers.Conv2D(2, 3, dim_ordering="th")


def test_convolution2d_reads_nb_row_nb_col_as_keras_1_did():
    with pytest.warns(DeprecationWarning) as record:
        conv = layers.Convolution2D(32, 3, 3, activation="relu", input_shape=(64, 64, 3))
    assert [type(w.message) for w in record] == [DeprecationWarning]   # no strides warning
    assert "Convolution2D(filters, nb_row, nb_col)" in str(record[0].message)
    assert conv.kernel_size == (3, 3) and conv.strides == (1, 1)
    with pytest.warns(DeprecationWarning):
        conv = layers.Convolution2D(8, nb_row=5, nb_col=2)
    assert conv.kernel_size == (5, 2)
    # Keras 3 reads Conv2D's third positional int as strides, and says Keras 2 did not.
    with pytest.warns(UserWarning, match="is `strides` in Keras 3; Keras 2 read it as"):
        conv = layers.Conv2D(32, 3, 3)
    assert conv.strides == (3, 3) and conv.kernel_size == (3, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        layers.Conv2D(32, 3, strides=3)      # by name: no warning


def test_keras1_fit_and_keras2_predict_helpers():
    x, y, labels = data(16)
    model = cnnx.Sequential([cnnx.Input((6, 6, 2)), layers.Flatten(),
                             layers.Dense(3, activation="softmax")])
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    with pytest.warns(DeprecationWarning, match="`nb_epoch` is the Keras 1/2 spelling"):
        history = model.fit(x, y, nb_epoch=2, verbose=0)
    assert history.epoch == [0, 1]
    with pytest.raises(TypeError, match="unexpected keyword argument 'bogus'"):
        model.fit(x, y, bogus=1, verbose=0)
    with pytest.warns(DeprecationWarning, match="predict_classes is Keras 2's"):
        classes = model.predict_classes(x)
    np.testing.assert_array_equal(classes, model.predict(x, verbose=0).argmax(-1))
    with pytest.warns(DeprecationWarning):
        np.testing.assert_array_equal(model.predict_proba(x), model.predict(x, verbose=0))


def test_keras2_lr_and_decay():
    with pytest.warns(DeprecationWarning, match="`lr` is the Keras 1/2 spelling"):
        opt = cnnx.optimizers.SGD(lr=0.1)
    assert opt.learning_rate == 0.1
    with pytest.warns(DeprecationWarning) as record:
        opt = cnnx.optimizers.RMSprop(lr=0.01, decay=0.5)
    assert "`decay` is Keras 2's" in str(record[1].message)
    # Keras 2: lr / (1 + decay * iterations)
    for step, expected in [(0, 0.01), (1, 0.01 / 1.5), (4, 0.01 / 3)]:
        opt.iterations = step
        assert opt.learning_rate == pytest.approx(expected)
    again = cnnx.optimizers.get(cnnx.optimizers.serialize(opt))
    again.iterations = 4
    assert again.learning_rate == pytest.approx(0.01 / 3)


def test_backend_functions():
    assert K.image_data_format() == "channels_last"
    K.set_image_data_format("channels_last")
    with pytest.raises(ValueError, match="cnnx is channels_last"):
        K.set_image_data_format("channels_first")
    assert K.int_shape(np.zeros((2, 3))) == (2, 3)
    assert K.int_shape(cnnx.Input((4, 5))) == (None, 4, 5)
    assert K.epsilon() == 1e-7 and K.floatx() == "float32"
    K.clear_session()
    assert layers.Dense(2).name == "dense"
    try:
        K.set_floatx("float64")
        assert layers.Dense(2).dtype == np.float64
    finally:
        K.set_floatx("float32")
    from cnnx.utils import np_utils
    np.testing.assert_array_equal(np_utils.to_categorical([1, 0], 2), [[0, 1], [1, 0]])


def test_initializer_and_regularizer_spellings():
    init = cnnx.initializers
    for name, cls in [("uniform", init.RandomUniform), ("normal", init.RandomNormal),
                      ("truncated_normal", init.TruncatedNormal),
                      ("orthogonal", init.Orthogonal), ("identity", init.Identity),
                      ("variance_scaling", init.VarianceScaling)]:
        assert type(init.get(name)) is cls
    cnnx.utils.set_random_seed(0)
    q = init.Orthogonal()((6, 4))
    np.testing.assert_allclose(q.T @ q, np.eye(4), atol=1e-6)
    t = init.TruncatedNormal(stddev=1.0)((10000,))
    assert np.abs(t).max() <= 2 and 0.85 < t.std() < 0.9   # unit normal truncated at 2
    np.testing.assert_array_equal(init.Identity(2.0)((3, 3)), 2 * np.eye(3))
    v = init.VarianceScaling(2.0, "fan_in", "uniform")((400, 50))
    assert abs(v.var() - 2.0 / 400) < 0.1 * 2.0 / 400
    reg = cnnx.regularizers
    assert type(reg.l2(0.1)) is reg.L2 and reg.l2(0.1).l2 == 0.1
    assert type(reg.l1_l2(0.1, 0.2)) is reg.L1L2


def test_model_checkpoint_checks_early_makes_folders_and_says_what_it_saves(tmp_path,
                                                                              capsys):
    with pytest.raises(ValueError, match=r"ending in \.keras or \.h5 or \.hdf5, received"):
        cnnx.callbacks.ModelCheckpoint(str(tmp_path / "weights-{epoch:02d}.pkl"))
    with pytest.raises(ValueError, match="`save_freq` must be 'epoch' or a positive int"):
        cnnx.callbacks.ModelCheckpoint(str(tmp_path / "m.keras"), save_freq=0)
    x, y, _ = data(16)
    model = cnnx.Sequential([cnnx.Input((6, 6, 2)), layers.Flatten(),
                             layers.Dense(3, activation="softmax")])
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    every = cnnx.callbacks.ModelCheckpoint(str(tmp_path / "new" / "e{epoch}.keras"),
                                           verbose=1)
    batches = cnnx.callbacks.ModelCheckpoint(
        str(tmp_path / "b" / "e{epoch}-b{batch}.weights.npz"), save_weights_only=True,
        save_freq=3)
    model.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[every, batches])
    out = capsys.readouterr().out
    assert f"Epoch 2: saving model to {tmp_path / 'new' / 'e2.keras'}" in out
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == ["e1.keras", "e2.keras"]
    # 8 batches in all: saved after the 3rd and the 6th.
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == [
        "e1-b3.weights.npz", "e2-b2.weights.npz"]


def test_callbacks_warn_when_their_monitor_is_missing():
    x, y, _ = data(8)
    model = cnnx.Sequential([cnnx.Input((6, 6, 2)), layers.Flatten(), layers.Dense(3)])
    model.compile(optimizer="sgd", loss="mse")
    for cb in (cnnx.callbacks.EarlyStopping(monitor="val_acc"),
               cnnx.callbacks.ReduceLROnPlateau(monitor="val_acc")):
        with pytest.warns(UserWarning, match=r"conditioned on 'val_acc', which is not in the "
                                             r"logs; available: (learning_rate, )?loss"):
            model.fit(x, y, epochs=1, verbose=0, callbacks=[cb])


def test_utils_normalize():
    x = np.array([[3.0, 4.0], [0.0, 0.0]])
    np.testing.assert_allclose(cnnx.utils.normalize(x), [[0.6, 0.8], [0.0, 0.0]])
    np.testing.assert_allclose(cnnx.utils.normalize(x, axis=0, order=1), [[1, 1], [0, 0]])
    assert cnnx.utils.normalize(np.array([[1, 1]])).dtype == np.float32
    with pytest.raises(TypeError, match="normalize: expected numbers"):
        cnnx.utils.normalize(np.array(["a"]))


def test_leaky_relu_takes_keras2_alpha_with_a_warning():
    with pytest.warns(DeprecationWarning, match="`alpha` is the Keras 2 spelling"):
        layer = cnnx.layers.LeakyReLU(alpha=0.2)
    assert layer.negative_slope == 0.2 and cnnx.layers.LeakyReLU().negative_slope == 0.3
    with pytest.raises(TypeError, match="got both `alpha`"):
        cnnx.layers.LeakyReLU(0.1, alpha=0.2)

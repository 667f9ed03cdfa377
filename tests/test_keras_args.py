"""Keras arguments that cnnx receives: each is honoured, mapped from an older spelling
with a warning, or refused by name. None is dropped without a word."""
import numpy as np
import pytest

import cnnx

from helpers import data, small_model


def _compiled():
    model = small_model()
    model.compile(optimizer="sgd", loss="categorical_crossentropy", metrics=["accuracy"])
    return model


@pytest.mark.parametrize("name,value", [("weighted_metrics", ["accuracy"])])
def test_compile_refuses_what_it_does_not_implement(name, value):
    model = small_model()
    with pytest.raises(NotImplementedError, match=rf"compile: `{name}` is not implemented"):
        model.compile(optimizer="sgd", loss="mse", **{name: value})
    model.compile(optimizer="sgd", loss="mse", run_eagerly=True, jit_compile=False,
                  steps_per_execution=4, **{name: None})   # backend switches: accepted


class Recorder(cnnx.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.calls = []

    def __getattribute__(self, name):
        if name.startswith("on_"):
            return lambda *args, **kwargs: self.calls.append((name, args[:1]))
        return super().__getattribute__(name)


def test_evaluate_and_predict_call_their_callbacks():
    model = _compiled()
    x, y, _ = data(10)
    rec = Recorder()
    model.evaluate(x, y, batch_size=4, verbose=0, callbacks=[rec])
    assert [c[0] for c in rec.calls] == [
        "on_test_begin", "on_test_batch_begin", "on_test_batch_end", "on_test_batch_begin",
        "on_test_batch_end", "on_test_batch_begin", "on_test_batch_end", "on_test_end"]
    rec.calls.clear()
    model.predict(x, batch_size=5, verbose=0, callbacks=[rec])
    assert [c for c in rec.calls] == [
        ("on_predict_begin", ()), ("on_predict_batch_begin", (0,)),
        ("on_predict_batch_end", (0,)), ("on_predict_batch_begin", (1,)),
        ("on_predict_batch_end", (1,)), ("on_predict_end", ())]
    with pytest.raises(TypeError, match=r"predict: `callbacks` must hold .* received int"):
        model.predict(x, callbacks=[1])


class Batches:
    """A Keras 1-style generator with a batch size."""

    def __init__(self, x, y, batch_size):
        self.x, self.y, self.batch_size = x, y, batch_size

    def __iter__(self):
        while True:
            for i in range(0, len(self.x), self.batch_size):
                yield self.x[i:i + self.batch_size], self.y[i:i + self.batch_size]

    def __next__(self):
        return next(iter(self))


def test_fit_generator_maps_keras1_arguments():
    model = _compiled()
    x, y, _ = data(12)
    gen = Batches(x, y, 4)
    with pytest.warns(DeprecationWarning) as record:
        history = model.fit_generator(gen, samples_per_epoch=12, nb_epoch=2, verbose=0,
                                      nb_worker=2)
    assert any("`samples_per_epoch` is Keras 1's spelling" in str(w.message) for w in record)
    assert history.params["steps"] == 3 and history.epoch == [0, 1]
    with pytest.raises(TypeError, match="unexpected keyword argument 'bogus'"), \
            pytest.warns(DeprecationWarning):
        model.fit_generator(gen, steps_per_epoch=1, bogus=1)


def test_load_model_refuses_custom_objects(tmp_path):
    model = _compiled()
    path = tmp_path / "m.keras"
    model.save(path)
    with pytest.raises(NotImplementedError, match="load_model: `custom_objects`"):
        cnnx.models.load_model(path, custom_objects={"Mine": object})
    cnnx.models.load_model(path, custom_objects={}, safe_mode=False)


def test_image_generator_refuses_what_it_does_not_implement():
    pytest.importorskip("PIL")
    from cnnx.preprocessing.image import ImageDataGenerator
    with pytest.raises(NotImplementedError, match="`interpolation_order` is not implemented"):
        ImageDataGenerator(interpolation_order=3)
    gen = ImageDataGenerator()
    with pytest.raises(NotImplementedError, match="flow: `save_to_dir`"):
        gen.flow(np.zeros((2, 4, 4, 1)), np.zeros(2), save_to_dir="/tmp")


def test_summary_honours_line_length(capsys):
    model = small_model()
    model.summary(line_length=60)
    lines = capsys.readouterr().out.splitlines()
    table = [line for line in lines if line.startswith(("\u2502", "\u250f", "\u2503"))]
    assert table and all(len(line) <= 64 for line in table)


FIT_REFUSALS = [
    (dict(steps_per_epoch=0), ValueError, "`steps_per_epoch` must be a positive int"),
    (dict(initial_epoch=3, epochs=3), ValueError, r"`initial_epoch` must be an int in \[0"),
    (dict(initial_epoch=-1), ValueError, "`initial_epoch`"),
    (dict(verbose="loud"), ValueError, "`verbose` must be 'auto', 0, 1 or 2"),
    (dict(validation_freq=0), ValueError, "`validation_freq` must be a positive int"),
    (dict(class_weight=[1.0, 2.0, 1.0]), TypeError, "`class_weight` must be a dict"),
    (dict(class_weight={0: float("nan")}), ValueError, r"`class_weight\[0\]` must be a finite"),
    (dict(class_weight={1: -2.0}), ValueError, r"`class_weight\[1\]`"),
    (dict(callbacks=[1]), TypeError, "fit: `callbacks` must hold"),
    (dict(sample_weight=np.r_[np.ones(19), np.inf]), ValueError,
     r"`sample_weight` must be finite and non-negative, received inf at index 19"),
    (dict(sample_weight=-np.ones(20)), ValueError, "`sample_weight` must be finite"),
    (dict(shuffle="yes"), TypeError, "`shuffle` must be True or False"),
    (dict(validation_batch_size=0), ValueError, "`validation_batch_size`"),
]


@pytest.mark.parametrize("kwargs,error,match", FIT_REFUSALS)
def test_fit_refuses_bad_arguments_before_any_step(kwargs, error, match):
    model = _compiled()
    x, y, _ = data(20)
    before = model.get_weights()
    with pytest.raises(error, match="fit: " + match if not match.startswith("fit") else match):
        model.fit(x, y, **{"epochs": 2, "verbose": 0, **kwargs})
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    assert model.optimizer.iterations == 0


def test_bad_validation_data_is_found_before_training():
    model = _compiled()
    x, y, _ = data(20)
    before = model.get_weights()
    with pytest.raises(ValueError, match=r"fit: `validation_data's sample_weight` must have "
                                         r"shape \(5,\), received \(4,\)"):
        model.fit(x, y, epochs=2, verbose=0, validation_data=(x[:5], y[:5], np.ones(4)))
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("call,match", [
    (lambda m, x, y: m.evaluate(x, y, steps=0, verbose=0), "evaluate: `steps` must be"),
    (lambda m, x, y: m.evaluate(x, y, verbose="loud"), "evaluate: `verbose` must be"),
    (lambda m, x, y: m.evaluate(x, y, sample_weight=np.full(20, np.nan), verbose=0),
     "evaluate: `sample_weight` must be finite"),
    (lambda m, x, y: m.predict(x, steps=0, verbose=0), "predict: `steps` must be"),
    (lambda m, x, y: m.train_on_batch(x, y, class_weight={0: np.inf}),
     r"train_on_batch: `class_weight\[0\]` must be a finite"),
])
def test_evaluate_predict_and_batches_refuse_bad_arguments(call, match):
    model = _compiled()
    x, y, _ = data(20)
    with pytest.raises(ValueError, match=match):
        call(model, x, y)

"""cnnx.utils.Dataset: the tf.data.Dataset methods tutorials call, lazily, and fit on it."""
import numpy as np
import pytest

import cnnx
from cnnx.utils import Dataset


def numbers(n=10):
    x = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
    return x, np.arange(n) % 2


def test_slices_batch_unbatch_take_skip_and_len():
    x, y = numbers()
    ds = Dataset.from_tensor_slices((x, y))
    assert len(ds) == 10
    batched = ds.batch(4)
    assert len(batched) == 3 and [len(b[0]) for b in batched] == [4, 4, 2]
    assert len(ds.batch(4, drop_remainder=True)) == 2
    rows = [r for r in batched.unbatch()]
    np.testing.assert_array_equal(np.stack([r[0] for r in rows]), x)
    assert [int(e[1]) for e in ds.skip(7).take(2)] == [1, 0]
    assert len(ds.skip(7).take(5)) == 3
    with pytest.raises(TypeError, match="length is unknown"):
        len(batched.unbatch())


def test_map_filter_repeat_and_numpy():
    x, y = numbers()
    ds = Dataset.from_tensor_slices((x, y)).map(lambda a, b: (a * 2, b))
    first = next(iter(ds))
    assert isinstance(first[0].numpy(), np.ndarray) and type(first[0].numpy()) is np.ndarray
    np.testing.assert_array_equal(first[0].numpy(), x[0] * 2)
    odd = ds.filter(lambda a, b: b == 1)
    assert [int(b) for _, b in odd] == [1] * 5
    assert len(Dataset.from_tensor_slices(x).repeat(3)) == 30
    assert len(list(Dataset.from_tensor_slices(x).repeat().take(25))) == 25


def test_shuffle_is_a_permutation_reshuffled_each_pass_and_seeded():
    x, _ = numbers(50)
    ds = Dataset.from_tensor_slices(x[:, 0]).shuffle(16, seed=3)
    first, second = [float(v) for v in ds], [float(v) for v in ds]
    assert sorted(first) == sorted(x[:, 0].tolist()) and first != second
    again = Dataset.from_tensor_slices(x[:, 0]).shuffle(16, seed=3)
    assert [float(v) for v in again] == first
    fixed = Dataset.from_tensor_slices(x[:, 0]).shuffle(16, seed=3,
                                                        reshuffle_each_iteration=False)
    assert [float(v) for v in fixed] == [float(v) for v in fixed]


def test_cache_runs_the_pipeline_once():
    calls = []
    x, _ = numbers(6)
    ds = Dataset.from_tensor_slices(x).map(lambda a: calls.append(1) or a).cache()
    assert len(list(ds)) == 6 and len(list(ds)) == 6 and len(calls) == 6
    with pytest.raises(NotImplementedError, match="caching to a file"):
        ds.cache("/tmp/somewhere")


def test_fit_evaluate_predict_on_a_dataset():
    cnnx.utils.set_random_seed(0)
    x = np.random.default_rng(0).standard_normal((40, 3)).astype(np.float32)
    y = (x.sum(axis=1) > 0).astype(np.float32)
    train = Dataset.from_tensor_slices((x, y)).shuffle(40, seed=1).batch(8).prefetch(
        cnnx.utils.dataset.AUTOTUNE)
    model = cnnx.Sequential([cnnx.Input((3,)), cnnx.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=cnnx.optimizers.Adam(0.1), loss="binary_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(train, epochs=5, verbose=0, validation_data=train)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert model.predict(Dataset.from_tensor_slices(x).batch(16), verbose=0).shape == (40, 1)
    logs = model.evaluate(train, verbose=0, return_dict=True)
    assert 0 <= logs["accuracy"] <= 1
    endless = Dataset.from_tensor_slices((x, y)).batch(8).repeat()
    with pytest.raises(ValueError, match="steps_per_epoch"):
        model.fit(endless, epochs=1, verbose=0)
    model.fit(endless, epochs=1, steps_per_epoch=3, verbose=0)

"""save / load_model / save_weights: exact round trips, no pickle, atomic writes, and
clean failures on corrupt, truncated or hostile files."""
import io
import json
import os
import zipfile

import numpy as np
import pytest

import cnnx as keras
from cnnx.models.saving import FORMAT_VERSION

from helpers import data, small_model


def trained(tmp_path):
    x, y, _ = data(24)
    model = small_model(seed=2, dropout=0.25)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    return model, x, y


def test_save_load_gives_identical_predictions_and_identical_continued_training(tmp_path):
    model, x, y = trained(tmp_path)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert [type(a).__name__ for a in loaded.layers] == [type(a).__name__ for a in model.layers]
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.optimizer.iterations == model.optimizer.iterations == 6
    assert isinstance(loaded.optimizer, keras.optimizers.Adam)
    # Continue both, from the same random state: every weight matches bitwise.
    histories = []
    for m in (model, loaded):
        keras.utils.set_random_seed(9)
        histories.append(m.fit(x, y, batch_size=8, epochs=2, verbose=0).history)
    assert histories[0] == histories[1]
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        assert np.array_equal(a, b)


@pytest.fixture
def cnnx_format(monkeypatch):
    """save() as without h5py: cnnx's own members only (metadata.json and config.json
    are then cnnx's, and what these tests craft)."""
    from cnnx.models import saving
    monkeypatch.setattr(saving, "_have_h5py", lambda: False)
    monkeypatch.setattr(saving, "_warned_no_h5py", [True])


@pytest.mark.parametrize("with_h5py", [False, True])
def test_file_layout_is_plain_json_and_npz_without_pickle(tmp_path, monkeypatch,
                                                         with_h5py):
    from cnnx.models import saving
    if with_h5py:
        pytest.importorskip("h5py")
    else:
        monkeypatch.setattr(saving, "_have_h5py", lambda: False)
        monkeypatch.setattr(saving, "_warned_no_h5py", [True])
    model, _, _ = trained(tmp_path)
    path = tmp_path / "m.keras"
    model.save(path)
    with zipfile.ZipFile(path) as z:
        cnnx_members = ["config.json", "metadata.json", "model.weights.npz"]
        if with_h5py:   # Keras's members, and cnnx's metadata and config in cnnx.json
            assert sorted(z.namelist()) == ["cnnx.json"] + cnnx_members[:2] + [
                "model.weights.h5", "model.weights.npz"]
            own = json.loads(z.read("cnnx.json"))
            meta, config = own["metadata"], own["config"]
            assert json.loads(z.read("config.json"))["module"] == "keras"
        else:
            assert sorted(z.namelist()) == cnnx_members
            meta = json.loads(z.read("metadata.json"))
            config = json.loads(z.read("config.json"))
        assert meta["format"] == "cnnx.keras" and meta["format_version"] == FORMAT_VERSION
        assert config["class_name"] == "Sequential"
        assert config["compile_config"]["loss"]["class_name"] == "CategoricalCrossentropy"
        with np.load(io.BytesIO(z.read("model.weights.npz")), allow_pickle=False) as npz:
            assert "layers/0/vars/0" in npz.files and "optimizer/iterations" in npz.files
            assert all(npz[k].dtype != object for k in npz.files)


def test_weights_only_round_trip(tmp_path):
    model, x, _ = trained(tmp_path)
    model.save_weights(tmp_path / "w.weights.npz")
    other = small_model(seed=99, dropout=0.25)
    other.load_weights(tmp_path / "w.weights.npz")
    np.testing.assert_array_equal(other.predict(x, verbose=0), model.predict(x, verbose=0))
    with pytest.raises(ValueError, match=r"must end in \.weights\.npz .*received"):
        model.save_weights(tmp_path / "w.bin")
    with pytest.raises(ValueError, match=r"must end in \.keras \(or \.h5"):
        model.save(tmp_path / "m.bin")


def test_save_is_atomic(tmp_path, monkeypatch):
    model, _, _ = trained(tmp_path)
    path = tmp_path / "m.keras"
    model.save(path)
    good = path.read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == good  # the old file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["m.keras"]  # no temporary left


def _rewrite(path, target, replace):
    with zipfile.ZipFile(path) as z:
        members = {name: z.read(name) for name in z.namelist()}
    replace(members)
    with zipfile.ZipFile(target, "w") as z:
        for name, content in members.items():
            z.writestr(name, content)


def test_corrupt_truncated_and_hostile_files_fail_cleanly(tmp_path, cnnx_format):
    model, _, _ = trained(tmp_path)
    path = tmp_path / "m.keras"
    model.save(path)
    blob = path.read_bytes()
    bad = tmp_path / "bad.keras"

    def fails(match):
        with pytest.raises(ValueError, match=match) as info:
            keras.models.load_model(bad)
        assert "bad.keras" in str(info.value)

    bad.write_bytes(blob[: len(blob) // 2])
    fails("not a .keras zip archive|damaged")
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + os.urandom(100))
    fails("not a .keras zip archive")
    _rewrite(path, bad, lambda m: m.pop("model.weights.npz"))
    fails("it has no model.weights.npz")
    _rewrite(path, bad, lambda m: m.update({"config.json": b"{not json"}))
    fails("config.json is not valid JSON")
    _rewrite(path, bad, lambda m: m.update({"metadata.json": b'{"format": "other"}'}))
    fails("does not describe a cnnx model")
    _rewrite(path, bad, lambda m: m.update({"metadata.json": json.dumps(
        {"format": "cnnx.keras", "format_version": 99}).encode()}))
    fails("format version 99 is newer")

    def pickled(m):
        buf = io.BytesIO()
        np.savez(buf, **{"layers/0/vars/0": np.array([{"evil": 1}], dtype=object)})
        m["model.weights.npz"] = buf.getvalue()
    _rewrite(path, bad, pickled)
    fails("layers/0/vars/0 has dtype object; expected a float array")

    def wrong_shape(m):
        with np.load(io.BytesIO(m["model.weights.npz"])) as npz:
            arrays = {k: npz[k] for k in npz.files}
        key = next(k for k in arrays if k.startswith("layers/"))
        arrays[key] = np.zeros((1, 2, 3), np.float32)
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        m["model.weights.npz"] = buf.getvalue()
    _rewrite(path, bad, wrong_shape)
    fails(r"has shape \(1, 2, 3\)")

    def unknown_layer(m):
        config = json.loads(m["config.json"])
        config["config"]["layers"][1]["class_name"] = "Lambda"
        m["config.json"] = json.dumps(config).encode()
    _rewrite(path, bad, unknown_layer)
    fails("Unknown layer class 'Lambda'")
    with pytest.raises(FileNotFoundError):
        keras.models.load_model(tmp_path / "missing.keras")


@pytest.mark.parametrize("kind", ["sequential", "functional"])
def test_format1_files_load_and_resume_as_they_were_written(kind):
    """Files that the chain engine wrote (format 1, tests/data/format1_*.keras, made with
    the commit before the graph engine), with that engine's predictions and its
    predictions after one more epoch: the graph engine reads them and continues alike."""
    import pathlib
    folder = pathlib.Path(__file__).parent / "data"
    expected = np.load(folder / "format1_expected.npz", allow_pickle=False)
    model = keras.models.load_model(folder / f"format1_{kind}.keras")
    x, y = expected["x"], expected["y"]
    np.testing.assert_allclose(model.predict(x, verbose=0), expected[kind], rtol=1e-5,
                               atol=1e-6)
    target = y if kind == "sequential" else (y[:, :2] > 0).astype(np.float32)
    model.fit(x, target, epochs=1, batch_size=4 if kind == "sequential" else 32, verbose=0,
              shuffle=False)
    np.testing.assert_allclose(model.predict(x, verbose=0), expected[f"{kind}_after"],
                               rtol=1e-5, atol=1e-6)


def test_layers_that_set_weights_when_built_reload(tmp_path, cnnx_format):
    # Normalization with a given mean assigns its weights in build(), which the loader's
    # planning pass (weights without memory) used to refuse: "assignment destination is
    # read-only".
    model = keras.Sequential([keras.Input((3,)),
                              keras.layers.Normalization(mean=[1, 2, 3], variance=[1, 4, 9])])
    model.save(tmp_path / "n.keras")
    again = keras.models.load_model(tmp_path / "n.keras")
    np.testing.assert_allclose(again.predict(np.ones((1, 3), np.float32), verbose=0),
                               [[0.0, -0.5, -2 / 3]], rtol=1e-6)

"""Keras's own files: Keras 3's .keras and the legacy .h5, read and written (the `keras`
extra, h5py).

The fixtures in tests/data/keras3_* were written by Keras 3.15.1 itself (on PyTorch's CPU
backend) with tests/data/make_keras_fixtures.py, with Keras's predictions for a few
inputs. The tests that run Keras on cnnx's files are in the slow tier and need Keras and
PyTorch installed (CI installs both)."""
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

import cnnx
from cnnx import layers

h5py = pytest.importorskip("h5py", reason="the keras extra (h5py) is not installed")

DATA = Path(__file__).resolve().parent / "data"
EXPECTED = np.load(DATA / "keras3_expected.npz")
CNN_X, CNN_Y = EXPECTED["cnn_x"], EXPECTED["cnn_y"]
GRAPH_X = [EXPECTED["graph_image"], EXPECTED["graph_extra"]]


@pytest.mark.parametrize("name", ["keras3_cnn.keras", "keras3_cnn.h5"])
def test_loads_a_keras3_sequential_cnn(name):
    model = cnnx.models.load_model(DATA / name)
    assert model.name == "tutorial_cnn"
    assert [type(layer).__name__ for layer in model.layers] == [
        "Conv2D", "BatchNormalization", "MaxPooling2D", "DepthwiseConv2D",
        "SeparableConv2D", "AveragePooling2D", "Flatten", "Dropout", "Dense", "Dense"]
    assert model.get_layer("first_conv").activation.__name__ == "relu"
    assert type(model.optimizer).__name__ == "Adam"
    assert model.optimizer.learning_rate == pytest.approx(1e-3)
    np.testing.assert_allclose(model.predict(CNN_X, verbose=0), CNN_Y, atol=1e-6)


@pytest.mark.parametrize("name", ["keras3_graph.keras", "keras3_graph.h5"])
def test_loads_a_keras3_graph_with_two_inputs_a_nested_model_and_a_shared_layer(name):
    model = cnnx.models.load_model(DATA / name)
    assert model.input_names == ["image", "extra"]
    assert type(model.get_layer("block")).__name__ == "Sequential"
    assert len(model.get_layer("shared")._inbound_nodes) == 2   # called twice
    np.testing.assert_allclose(model.predict(GRAPH_X, verbose=0), EXPECTED["graph_y"],
                               atol=1e-6)


def test_loads_a_keras3_model_with_nearly_every_layer_cnnx_has():
    # Convolutions (dilated, transposed, 1-D causal), poolings, normalizations (and a
    # Normalization given its statistics, one adapted), activations, padding and
    # cropping, resizing, reshaping and permuting, every merge, and the layers that are
    # identities at inference (the six random augmentations, noise, dropout): what
    # Keras computed, to float32 rounding, at the merged features too.
    model = cnnx.models.load_model(DATA / "keras3_zoo.keras")
    assert len(model.layers) == 49
    x = EXPECTED["zoo_x"]
    features = cnnx.Model(model.inputs, model.get_layer("features").output)
    np.testing.assert_allclose(features.predict(x, verbose=0), EXPECTED["zoo_features"],
                               atol=2e-6)
    np.testing.assert_allclose(model.predict(x, verbose=0), EXPECTED["zoo_y"], atol=1e-6)


KERAS2 = np.load(DATA / "keras2_expected.npz")


def test_loads_keras2_files_written_by_tf_keras():
    # Written by TensorFlow 2.15.1's Keras 2 (tests/data/make_keras2_fixtures.py): the
    # input shape on the first layer, BatchNormalization's axis as [3], LeakyReLU's
    # alpha, "Custom>Adam" and metrics wrapped per output in training_config.
    cnn = cnnx.models.load_model(DATA / "keras2_cnn.h5")
    np.testing.assert_allclose(cnn.predict(KERAS2["cnn_x"], verbose=0), KERAS2["cnn_y"],
                               atol=1e-6)
    assert type(cnn.optimizer).__name__ == "Adam" and cnn.metrics_names == ["loss",
                                                                            "accuracy"]
    assert cnn.optimizer.iterations == 4 and len(cnn.optimizer._slots) == 10   # resumes
    graph = cnnx.models.load_model(DATA / "keras2_graph.h5")
    np.testing.assert_allclose(
        graph.predict([KERAS2["graph_image"], KERAS2["graph_extra"]], verbose=0),
        KERAS2["graph_y"], atol=1e-6)
    assert graph.optimizer.momentum == 0.9


@pytest.mark.parametrize("name", ["keras3_graph.keras", "keras3_graph.h5"])
def test_training_resumes_from_keras_state_as_keras_resumes(name):
    # Keras took one more SGD (momentum 0.9) step from the state it saved: cnnx, loading
    # the file, takes the same step (the momentum and BatchNormalization's moving
    # statistics come from the file). Without the momentum the step differs by 1e-2.
    model = cnnx.models.load_model(DATA / name)
    assert model.optimizer.iterations == 2 and model.optimizer.momentum == 0.9
    model.train_on_batch([EXPECTED["step_image"], EXPECTED["step_extra"]],
                         EXPECTED["step_labels"])
    np.testing.assert_allclose(model.predict(GRAPH_X, verbose=0),
                               EXPECTED["graph_y_after_step"], atol=1e-6)


def test_load_weights_reads_keras3_weights_files():
    model = cnnx.models.load_model(DATA / "keras3_cnn.keras")
    fresh = cnnx.models.clone_model(model)
    fresh.load_weights(DATA / "keras3_cnn.weights.h5")
    np.testing.assert_allclose(fresh.predict(CNN_X, verbose=0), CNN_Y, atol=1e-6)


def small_cnnx_model():
    cnnx.utils.set_random_seed(3)
    inputs = cnnx.Input((8, 8, 2), name="pixels")
    x = layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    x = layers.BatchNormalization()(x)
    y = layers.DepthwiseConv2D(3, padding="same")(x)
    x = layers.add([x, y])
    x = layers.GlobalAveragePooling2D()(x)
    model = cnnx.Model(inputs, layers.Dense(3, activation="softmax")(x))
    model.compile(optimizer=cnnx.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(0).random((16, 8, 8, 2), dtype=np.float32)
    y = np.arange(16) % 3
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    return model, x, y


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_cnnx_files_in_keras_format_round_trip(tmp_path, suffix):
    model, x, y = small_cnnx_model()
    path = tmp_path / f"m{suffix}"
    model.save(path)
    again = cnnx.models.load_model(path)
    np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))
    if suffix == ".keras":
        assert {"config.json", "model.weights.h5", "cnnx.json",
                "model.weights.npz"} <= set(zipfile.ZipFile(path).namelist())
    for m in (model, again):   # the optimizer state too: training goes on identically
        m.train_on_batch(x[:8], y[:8])
    for a, b in zip(model.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_keras_format_file_written_by_cnnx_loads_without_h5py(tmp_path, monkeypatch):
    model, x, _ = small_cnnx_model()
    model.save(tmp_path / "m.keras")
    monkeypatch.setitem(sys.modules, "h5py", None)   # import h5py now fails
    again = cnnx.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))
    with pytest.raises(ImportError, match=r'cnnx\[keras\]'):
        cnnx.models.load_model(DATA / "keras3_cnn.keras")
    with pytest.raises(ImportError, match=r'cnnx\[keras\]'):
        model.save(tmp_path / "m.h5")


def test_without_h5py_save_writes_cnnx_format_and_says_keras_cannot_read_it(
        tmp_path, monkeypatch):
    from cnnx.models import saving
    monkeypatch.setattr(saving, "_have_h5py", lambda: False)
    monkeypatch.setattr(saving, "_warned_no_h5py", [])
    model, x, _ = small_cnnx_model()
    with pytest.warns(UserWarning, match="Keras cannot read"):
        model.save(tmp_path / "a.keras")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.save(tmp_path / "b.keras")   # once per process
    assert "model.weights.h5" not in zipfile.ZipFile(tmp_path / "a.keras").namelist()
    again = cnnx.models.load_model(tmp_path / "a.keras")
    np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))


@pytest.mark.parametrize("suffix", [".weights.h5", ".h5"])
def test_save_weights_in_keras_layouts(tmp_path, suffix):
    model, x, _ = small_cnnx_model()
    model.save_weights(tmp_path / f"w{suffix}")
    with h5py.File(tmp_path / f"w{suffix}") as f:   # Keras 3's layout, or Keras 2's
        assert ("layers" in f) == (suffix == ".weights.h5")
        assert ("layer_names" in f.attrs) == (suffix == ".h5")
    fresh = cnnx.models.clone_model(model)
    fresh.load_weights(tmp_path / f"w{suffix}")
    np.testing.assert_array_equal(fresh.predict(x, verbose=0), model.predict(x, verbose=0))


def test_keras_layer_order_is_the_one_keras_lists():
    # Keras wrote this graph's layers in its own order; cnnx's graph lists them in
    # another (both inputs first), and recomputes Keras's for the files it writes.
    with zipfile.ZipFile(DATA / "keras3_graph.keras") as z:
        keras_names = [item.get("name") for item in
                       json.loads(z.read("config.json"))["config"]["layers"]]
    model = cnnx.models.load_model(DATA / "keras3_graph.keras")
    from cnnx.models.keras_files import keras_layer_order
    assert [layer.name for layer in model.layers] != keras_names
    assert [item["name"] for item in keras_layer_order(model.get_config())] == keras_names


def keras2_style_file(path, split_names=False, libver=None):
    """A small legacy file in Keras 2's layout, built here by hand so that the tests can
    alter it: the first layer carries batch_input_shape, initializers have no module,
    weight names end in ':0', and layer_names may be split in two attributes as Keras
    does past HDF5's 64 kB limit."""
    rng = np.random.default_rng(1)
    kernel = rng.normal(size=(3, 3, 1, 2)).astype(np.float32)
    bias = rng.normal(size=2).astype(np.float32)
    dense_k = rng.normal(size=(72, 3)).astype(np.float32)
    dense_b = rng.normal(size=3).astype(np.float32)
    config = {"class_name": "Sequential", "config": {"name": "sequential_1", "layers": [
        {"class_name": "Conv2D", "config": {
            "name": "conv2d_1", "trainable": True, "batch_input_shape": [None, 8, 8, 1],
            "dtype": "float32", "filters": 2, "kernel_size": [3, 3], "strides": [1, 1],
            "padding": "valid", "data_format": "channels_last", "dilation_rate": [1, 1],
            "activation": "relu", "use_bias": True,
            "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": None}},
            "bias_initializer": {"class_name": "Zeros", "config": {}},
            "kernel_regularizer": None, "bias_regularizer": None,
            "activity_regularizer": None, "kernel_constraint": None,
            "bias_constraint": None}},
        {"class_name": "Flatten", "config": {"name": "flatten_1", "trainable": True,
                                             "data_format": "channels_last"}},
        {"class_name": "Dense", "config": {
            "name": "dense_1", "trainable": True, "units": 3, "activation": "softmax",
            "use_bias": True,
            "kernel_initializer": {"class_name": "VarianceScaling", "config": {
                "scale": 1.0, "mode": "fan_avg", "distribution": "uniform", "seed": None}},
            "bias_initializer": {"class_name": "Zeros", "config": {}},
            "kernel_regularizer": None, "bias_regularizer": None,
            "activity_regularizer": None, "kernel_constraint": None,
            "bias_constraint": None}}]}}
    with h5py.File(path, "w", libver=libver) as f:
        f.attrs["keras_version"] = b"2.3.1"
        f.attrs["backend"] = b"tensorflow"
        f.attrs["model_config"] = json.dumps(config).encode()
        g = f.create_group("model_weights")
        names = [b"conv2d_1", b"flatten_1", b"dense_1"]
        if split_names:
            g.attrs["layer_names0"], g.attrs["layer_names1"] = names[:2], names[2:]
        else:
            g.attrs["layer_names"] = names
        for layer, weights in (("conv2d_1", {"kernel:0": kernel, "bias:0": bias}),
                               ("flatten_1", {}),
                               ("dense_1", {"kernel:0": dense_k, "bias:0": dense_b})):
            sub = g.create_group(layer)
            sub.attrs["weight_names"] = [f"{layer}/{n}".encode() for n in weights]
            for n, value in weights.items():
                sub.create_dataset(f"{layer}/{n}", data=value)
    return kernel, bias, dense_k, dense_b


@pytest.mark.parametrize("split", [False, True])
def test_loads_keras2_style_legacy_files(tmp_path, split):
    kernel, bias, dense_k, dense_b = keras2_style_file(tmp_path / "k2.h5", split)
    model = cnnx.models.load_model(tmp_path / "k2.h5")
    x = np.random.default_rng(2).random((2, 8, 8, 1), dtype=np.float32)
    maps = cnnx.ops.relu(cnnx.ops.conv(x, kernel) + bias).reshape(2, -1)
    want = cnnx.ops.softmax(maps @ dense_k + dense_b)
    np.testing.assert_allclose(model.predict(x, verbose=0), want, rtol=1e-5, atol=1e-6)


# -- hostile and broken files: refused with the file named, nothing assigned ----------

def refused(path, match, load=cnnx.models.load_model):
    with pytest.raises(ValueError, match=match) as info:
        load(path)
    assert str(path) in str(info.value)


def test_a_dataset_of_the_wrong_shape_is_refused_and_nothing_is_assigned(tmp_path):
    model = cnnx.models.load_model(DATA / "keras3_cnn.keras")
    before = [w.copy() for w in model.get_weights()]
    path = tmp_path / "w.weights.h5"
    model.save_weights(path)
    with h5py.File(path, "a") as f:
        # the last layer's kernel: every earlier array was read and checked first
        del f["layers/dense_1/vars/0"]
        f["layers/dense_1/vars/0"] = np.zeros((16, 4), np.float32)
        f["layers/conv2d/vars/0"][...] = 7.0
    refused(path, r"dense_1/vars/0 has shape \(16, 4\)", model.load_weights)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_huge_declared_dataset_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "bomb.h5"
    keras2_style_file(path)
    with h5py.File(path, "a") as f:
        del f["model_weights/dense_1/dense_1/kernel:0"]
        # 4 GB declared, nothing stored: reading it would allocate it all
        f["model_weights/dense_1"].create_dataset("dense_1/kernel:0", shape=(2 ** 30,),
                                                  dtype=np.float32, chunks=(1024,))
    refused(path, r"has shape \(1073741824,\)")


def test_non_float_datasets_are_refused(tmp_path):
    path = tmp_path / "strings.h5"
    keras2_style_file(path)
    with h5py.File(path, "a") as f:
        del f["model_weights/dense_1/dense_1/bias:0"]
        f["model_weights/dense_1"].create_dataset("dense_1/bias:0",
                                                  data=np.array([b"a", b"b", b"c"]))
    refused(path, "not float32 or float64")


@pytest.mark.parametrize("change, match", [
    (lambda c: c["config"]["layers"].append({"class_name": "LSTM", "config": {
        "name": "lstm", "units": 4}}), "cnnx has no LSTM layer"),
    (lambda c: c["config"]["layers"][0]["config"].update(groups=2),
     r"conv2d_1.*groups=2"),
    (lambda c: c.update(class_name="Bogus"), "not a Sequential or functional Model"),
])
def test_architectures_cnnx_cannot_build_are_refused_by_name(tmp_path, change, match):
    path = tmp_path / "odd.h5"
    keras2_style_file(path)
    with h5py.File(path, "a") as f:
        config = json.loads(f.attrs["model_config"])
        change(config)
        f.attrs["model_config"] = json.dumps(config)
    refused(path, match)


def test_broken_files_are_refused(tmp_path):
    (tmp_path / "text.h5").write_text("not hdf5")
    refused(tmp_path / "text.h5", "not an HDF5 file")
    keras2_style_file(tmp_path / "json.h5")
    with h5py.File(tmp_path / "json.h5", "a") as f:
        f.attrs["model_config"] = "[" * 100_000
    refused(tmp_path / "json.h5", "not valid JSON")
    with h5py.File(tmp_path / "weights_only.h5", "w") as f:
        f.create_group("layers")
    refused(tmp_path / "weights_only.h5", "no model_config")


def test_a_keras_zip_whose_weights_claim_too_much_is_refused(tmp_path):
    path = tmp_path / "big.keras"
    with zipfile.ZipFile(DATA / "keras3_cnn.keras") as src, \
            zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            if item.filename == "model.weights.h5":
                dst.writestr(item.filename, b"\0" * 2 ** 26)   # 64 MiB of zeros
            else:
                dst.writestr(item, src.read(item))
    refused(path, "model.weights.h5 claims 67108864 bytes")


# -- Keras 3 reading cnnx's files (slow: Keras and PyTorch in a child process) ----------

KERAS_SIDE = textwrap.dedent("""
    import os, sys, json
    os.environ["KERAS_BACKEND"] = "torch"
    import numpy as np, keras
    folder = sys.argv[1]
    data = np.load(os.path.join(folder, "io.npz"))
    out = {}
    for name in ("m.keras", "m.h5"):
        model = keras.saving.load_model(os.path.join(folder, name))
        out[name] = model.predict(data["x"], verbose=0)
        # the optimizer state came along: the step count, and (.keras) the same next
        # step. Keras 3.15 cannot train on a model it loaded from an .h5 with optimizer
        # state, its own files included ("This optimizer can only be called for the
        # variables it was originally built with"), so the .h5 is checked to its count.
        out[name + " iterations"] = np.array(int(model.optimizer.iterations))
        if name == "m.keras":
            model.train_on_batch(data["x"][:8], data["y"][:8])
            out["after step"] = model.predict(data["x"], verbose=0)
    zoo = keras.saving.load_model(os.path.join(folder, "zoo.keras"))
    out["zoo"] = zoo.predict(data["zoo_x"], verbose=0)
    clone = keras.models.clone_model(model)
    clone.load_weights(os.path.join(folder, "w.weights.h5"))
    out["weights"] = clone.predict(data["x"], verbose=0)
    np.savez(os.path.join(folder, "keras_out.npz"), **out)
""")


@pytest.mark.slow
def test_keras_loads_the_files_cnnx_writes(tmp_path):
    # Not imported here: Keras picks its backend when first imported.
    for module, what in (("keras", "Keras 3"), ("torch", "Keras's PyTorch backend")):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{what} is not installed")
    model, x, y = small_cnnx_model()
    model.save(tmp_path / "m.keras")
    model.save(tmp_path / "m.h5")
    model.save_weights(tmp_path / "w.weights.h5")
    zoo = cnnx.models.load_model(DATA / "keras3_zoo.keras")
    zoo.save(tmp_path / "zoo.keras")
    np.savez(tmp_path / "io.npz", x=x, y=y, zoo_x=EXPECTED["zoo_x"])
    done = subprocess.run([sys.executable, "-c", KERAS_SIDE, str(tmp_path)],
                          capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, KERAS_BACKEND="torch"))
    assert done.returncode == 0, done.stderr[-3000:]
    keras_out = np.load(tmp_path / "keras_out.npz")
    want = model.predict(x, verbose=0)
    for name in ("m.keras", "m.h5", "weights"):
        np.testing.assert_allclose(keras_out[name], want, atol=1e-5, err_msg=name)
    np.testing.assert_allclose(keras_out["zoo"], zoo.predict(EXPECTED["zoo_x"], verbose=0),
                               atol=1e-6)
    for name in ("m.keras", "m.h5"):
        assert int(keras_out[name + " iterations"]) == model.optimizer.iterations == 2
    model.train_on_batch(x[:8], y[:8])
    np.testing.assert_allclose(keras_out["after step"], model.predict(x, verbose=0),
                               atol=1e-5)


def test_cnnx_member_of_a_keras_format_file_is_checked_like_the_rest(tmp_path):
    model, _, _ = small_cnnx_model()
    model.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as z:
        members = {name: z.read(name) for name in z.namelist()}
    for content, match in ((b"{not json", "cnnx.json is not valid JSON"),
                           (b"[1, 2]", "cnnx.json is not an object")):
        bad = tmp_path / "bad.keras"
        with zipfile.ZipFile(bad, "w") as z:
            for name, data in {**members, "cnnx.json": content}.items():
                z.writestr(name, data)
        refused(bad, match)


def test_model_checkpoint_writes_keras_hdf5_files(tmp_path):
    # The most common line of the course scripts that cnnx refused before.
    model, x, y = small_cnnx_model()
    checkpoint = cnnx.callbacks.ModelCheckpoint(str(tmp_path / "weights-{epoch:02d}.hdf5"))
    model.fit(x, y, epochs=2, verbose=0, callbacks=[checkpoint])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["weights-01.hdf5",
                                                          "weights-02.hdf5"]
    again = cnnx.models.load_model(tmp_path / "weights-02.hdf5")
    np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))


def test_long_name_lists_are_split_as_keras_splits_them(tmp_path):
    # 280 layers of 250-character names: 70 kB of names, past HDF5's 64 kB.
    cnnx.utils.set_random_seed(0)
    model = cnnx.Sequential([cnnx.Input((2,))] + [
        layers.Dense(2, name="generated_" * 24 + f"{i:06d}") for i in range(280)])
    model.save_weights(tmp_path / "w.h5")
    with h5py.File(tmp_path / "w.h5") as f:
        assert "layer_names" not in f.attrs and "layer_names1" in f.attrs
    fresh = cnnx.models.clone_model(model)
    fresh.load_weights(tmp_path / "w.h5")
    x = np.ones((1, 2), np.float32)
    np.testing.assert_array_equal(fresh.predict(x, verbose=0), model.predict(x, verbose=0))


def test_a_fixed_size_attribute_claiming_too_much_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "names.h5"
    keras2_style_file(path, libver="latest")   # dense storage: attributes past 64 kB
    with h5py.File(path, "a") as f:
        del f["model_weights"].attrs["layer_names"]
        # 38 MB declared, nothing written
        h5py.h5a.create(f["model_weights"].id, b"layer_names",
                        h5py.h5t.py_create(np.dtype("S64")),
                        h5py.h5s.create_simple((600_000,)))
    refused(path, "its layer_names attribute declares 38400000 bytes")

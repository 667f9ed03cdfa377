"""Hostile .keras and weights files, crafted here: each is refused with an error that
names the file and what is wrong, without allocating more memory than the file's own
architecture implies (measured as the peak RSS of a child process)."""
import io
import json
import os
import struct
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

import cnnx

from helpers import data, small_model

MiB = 2 ** 20
# The child loads the file and reports the error and how far its peak RSS rose.
LOADER = textwrap.dedent("""
    import resource, sys
    import cnnx
    cnnx.models.load_model   # imported before the baseline
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        cnnx.models.load_model(sys.argv[1])
        print("LOADED")
    except Exception as e:
        print("REFUSED", type(e).__name__, e)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print("RSS_KB", after - before)
""")


@pytest.fixture
def saved(tmp_path, monkeypatch):
    # cnnx's own format (what save writes without h5py): config.json and
    # model.weights.npz are what the loader reads, and what these tests craft.
    from cnnx.models import saving
    monkeypatch.setattr(saving, "_have_h5py", lambda: False)
    monkeypatch.setattr(saving, "_warned_no_h5py", [True])
    model = small_model()
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    x, y, _ = data(8)
    model.fit(x, y, epochs=1, verbose=0)
    path = tmp_path / "good.keras"
    model.save(path)
    return path


def _members(path):
    with zipfile.ZipFile(path) as z:
        return {name: z.read(name) for name in z.namelist()}


def _write(path, members, compression=zipfile.ZIP_DEFLATED):
    with zipfile.ZipFile(path, "w", compression) as z:
        for name, content in members.items():
            if callable(content):
                with z.open(name, "w", force_zip64=True) as f:
                    content(f)
            else:
                z.writestr(name, content)
    return path


def _zeros(nbytes, prefix=b""):
    def write(f):
        f.write(prefix)
        chunk = bytes(MiB)
        for _ in range(nbytes // MiB):
            f.write(chunk)
    return write


def _npy_header(shape, dtype="<f4"):
    header = repr({"descr": dtype, "fortran_order": False, "shape": tuple(shape)})
    header = header.encode() + b" " * (63 - (10 + len(header)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header


def _refused_within(path, match, max_mib=48):
    done = subprocess.run([sys.executable, "-c", LOADER, str(path)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("REFUSED ValueError"), lines
    assert f"Cannot load {str(path)!r}" in lines[0], lines[0]
    assert match in lines[0], lines[0]
    rss_mib = int(lines[1].split()[1]) / 1024
    assert rss_mib < max_mib, f"the refusal took {rss_mib:.0f} MiB"


def test_zip_bomb_weights_are_refused_before_inflating(saved, tmp_path):
    members = _members(saved)
    members["model.weights.npz"] = _zeros(256 * MiB)
    bomb = _write(tmp_path / "bomb.keras", members)
    assert bomb.stat().st_size < 2 * MiB
    _refused_within(bomb, "model.weights.npz claims 268435456 bytes, more than the")


def test_nested_bomb_inside_the_npz_is_refused(saved, tmp_path):
    members = _members(saved)
    inner = io.BytesIO()
    # 1 MiB of zeros deflates to about 1 KiB: the outer member fits the model's bound,
    # and the array inside claims far more than its header says it holds.
    _write(inner, {"layers/0/vars/0.npy": _zeros(MiB, _npy_header((3, 3, 2, 4)))})
    members["model.weights.npz"] = inner.getvalue()
    nested = _write(tmp_path / "nested.keras", members, zipfile.ZIP_STORED)
    _refused_within(nested, "layers/0/vars/0 claims 1048704 bytes for 288 bytes of data")


def test_huge_declared_shapes_are_refused_before_allocating(saved, tmp_path):
    members = _members(saved)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("layers/0/vars/0.npy", _npy_header((2 ** 40,)))
    members["model.weights.npz"] = buf.getvalue()
    huge = _write(tmp_path / "huge.keras", members)
    _refused_within(huge, "layers/0/vars/0 has shape (1099511627776,); the model expects "
                          "(3, 3, 2, 4)")


def test_an_architecture_too_large_for_its_weights_is_never_built(saved, tmp_path):
    members = _members(saved)
    config = json.loads(members["config.json"])
    dense = next(layer for layer in config["config"]["layers"]
                 if layer["class_name"] == "Dense")
    dense["config"]["units"] = 2 ** 31
    members["config.json"] = json.dumps(config).encode()
    wide = _write(tmp_path / "wide.keras", members)
    # 2**31 units would be 128 GiB of kernel: refused with the file's own weights.
    _refused_within(wide, "has shape (16, 3); the model expects (16, 2147483648)")


POISONS = [
    ("negative iterations", None, "optimizer/iterations is -5, not a count"),
    ("nan learning rate", ("optimizer", "learning_rate", float("nan")),
     "`learning_rate` must be a non-negative number"),
    ("text clipnorm", ("optimizer", "clipnorm", "abc"), "`clipnorm` must be a finite number"),
    ("infinite beta", ("optimizer", "beta_1", float("inf")), "`beta_1` must be a finite"),
    ("unknown metric", ("metrics", None, ["no_such_metric"]), "Unknown metric 'no_such_metric'"),
]


@pytest.mark.parametrize("name,change,match", POISONS, ids=[p[0] for p in POISONS])
def test_poisoned_values_are_refused_naming_the_file(saved, tmp_path, name, change, match):
    members = _members(saved)
    if change is None:   # the iteration count, inside the weights
        with np.load(io.BytesIO(members["model.weights.npz"])) as npz:
            arrays = {k: npz[k] for k in npz.files}
        arrays["optimizer/iterations"] = np.array(-5, np.int64)
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        members["model.weights.npz"] = buf.getvalue()
    else:
        config = json.loads(members["config.json"])
        part, key, value = change
        if key is None:
            config["compile_config"][part] = value
        else:
            config["compile_config"][part]["config"][key] = value
        members["config.json"] = json.dumps(config).encode()
    bad = _write(tmp_path / "poisoned.keras", members)
    with pytest.raises(ValueError, match="poisoned.keras") as info:
        cnnx.models.load_model(bad)
    assert match in str(info.value)


@pytest.mark.parametrize("metadata,match", [
    ({"format": "cnnx.keras", "format_version": 0}, "format_version must be an int >= 1"),
    ({"format": "cnnx.keras", "format_version": "1"}, "format_version must be an int"),
    ([1, 2], "does not describe a cnnx model"),
])
def test_bad_metadata_is_refused(saved, tmp_path, metadata, match):
    members = _members(saved)
    members["metadata.json"] = json.dumps(metadata).encode()
    with pytest.raises(ValueError, match=match):
        cnnx.models.load_model(_write(tmp_path / "meta.keras", members))


@pytest.mark.parametrize("config,match", [
    ("[" * 100_000 + "]" * 100_000, "config.json nests too deeply"),
    ('{"class_name": "Sequential", "config": {"layers": [{"class_name": "Dense", '
     '"config": {"units": "many"}}]}}', "`units` must be a positive int, received 'many'"),
    ('{"class_name": "Sequential", "config": {"layers": [7]}}', "A layer config must be an object"),
    ('{"class_name": "Sequential", "config": []}', "has no model config"),
])
def test_malformed_configs_never_escape_as_raw_errors(saved, tmp_path, config, match):
    members = _members(saved)
    members["config.json"] = config.encode()
    bad = _write(tmp_path / "malformed.keras", members)
    with pytest.raises(ValueError, match="malformed.keras") as info:
        cnnx.models.load_model(bad)
    assert match in str(info.value)


def test_weights_files_are_bounded_by_the_model(tmp_path):
    model = small_model()
    path = tmp_path / "w.weights.npz"
    model.save_weights(path)
    _write(path, {"layers/0/vars/0.npy": _zeros(32 * MiB, _npy_header((3, 3, 2, 4)))},
           zipfile.ZIP_STORED)
    with pytest.raises(ValueError, match=r"w.weights.npz.*more than the \d+ that model"):
        model.load_weights(path)


def test_saving_keeps_permissions_follows_symlinks_and_leaves_no_temporary_files(tmp_path):
    model = small_model()
    model.compile(optimizer="sgd", loss="mse")
    old = os.umask(0o022)
    try:
        path = tmp_path / "m.keras"
        model.save(path)
        assert path.stat().st_mode & 0o777 == 0o644
        os.chmod(path, 0o640)
        model.save(path)
        assert path.stat().st_mode & 0o777 == 0o640   # an existing file keeps its mode
        link = tmp_path / "link.keras"
        link.symlink_to(path)
        model.save(link)
        assert link.is_symlink() and link.resolve() == path.resolve()
        with pytest.raises(ValueError):   # not built: refused before writing
            cnnx.Sequential([cnnx.layers.Dense(2)]).save(tmp_path / "x.keras")

        class Broken(Exception):
            pass

        def boom(*args, **kwargs):
            raise Broken

        import cnnx.models.saving as saving
        real = saving._npz_bytes
        saving._npz_bytes = boom   # fail in the middle of a save
        try:
            with pytest.raises(Broken):
                model.save(tmp_path / "n.keras")
        finally:
            saving._npz_bytes = real
    finally:
        os.umask(old)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.keras", "m.keras"]


def test_a_layer_config_with_overflowing_geometry_is_refused_at_load(saved, tmp_path):
    members = _members(saved)
    config = json.loads(members["config.json"])
    conv = next(layer for layer in config["config"]["layers"]
                if layer["class_name"] == "Conv2D")
    conv["config"]["strides"] = [1, 2 ** 58]
    members["config.json"] = json.dumps(config).encode()
    bad = _write(tmp_path / "strides.keras", members)
    with pytest.raises(ValueError, match=r"strides.keras.*`strides` is too large"):
        cnnx.models.load_model(bad)


def _npz(arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _weights_of(path):
    with np.load(io.BytesIO(_members(path)["model.weights.npz"])) as npz:
        return {k: npz[k] for k in npz.files}


@pytest.mark.parametrize("change,match", [
    (lambda w: w.pop("layers/0/vars/1"), "model.weights.npz has no layers/0/vars/1"),
    (lambda w: w.update({"layers/9/vars/0": np.zeros(3, np.float32)}),
     "weights 'layers/9/vars/0' match nothing in the model"),
    (lambda w: w.update({"optimizer/vars/99/0": np.zeros(3, np.float32)}),
     "weights 'optimizer/vars/99/0' match nothing"),
    (lambda w: w.update({"optimizer/vars/0/0": np.zeros(5, np.float32)}),
     "optimizer/vars/0/0 has shape (5,); the model expects 72 values"),
])
def test_weights_that_do_not_fit_the_architecture_are_refused(saved, tmp_path, change,
                                                              match):
    weights = _weights_of(saved)
    change(weights)
    members = _members(saved)
    members["model.weights.npz"] = _npz(weights)
    with pytest.raises(ValueError, match="odd.keras") as info:
        cnnx.models.load_model(_write(tmp_path / "odd.keras", members))
    assert match in str(info.value)


def test_npz_oddities_are_refused(saved, tmp_path):
    members = _members(saved)
    weights = _weights_of(saved)
    # A member that is not an array, an array cut short, a .npy format 2.0 (accepted).
    for build, match in [
        (lambda z: z.writestr("notes.txt", b"hello"), "the weights hold 'notes.txt'"),
        (lambda z: z.writestr("layers/0/vars/0.npy", _npy_header((3, 3, 2, 4)) + b"\0" * 8),
         "layers/0/vars/0 holds 8 bytes of data, its header says 288"),
    ]:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            build(z)
        members["model.weights.npz"] = buf.getvalue()
        with pytest.raises(ValueError, match="odd.keras") as info:
            cnnx.models.load_model(_write(tmp_path / "odd.keras", members))
        assert match in str(info.value)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, value in weights.items():
            with z.open(name + ".npy", "w") as f:
                np.lib.format.write_array(f, value, version=(2, 0))
    members["model.weights.npz"] = buf.getvalue()
    model = cnnx.models.load_model(_write(tmp_path / "v2.keras", members))
    np.testing.assert_array_equal(model.get_weights()[0], weights["layers/0/vars/0"])


def test_a_weights_member_that_inflates_fifty_fold_is_refused(saved, tmp_path):
    members = _members(saved)
    config = json.loads(members["config.json"])
    dense = next(layer for layer in config["config"]["layers"]
                 if layer["class_name"] == "Dense")
    dense["config"]["units"] = 2 ** 20      # 64 MiB of kernel: a bound that a bomb fits
    members["config.json"] = json.dumps(config).encode()
    members["model.weights.npz"] = _zeros(32 * MiB)
    bomb = _write(tmp_path / "deflated.keras", members)
    _refused_within(bomb, "model.weights.npz inflates")


@pytest.mark.parametrize("change,match", [
    (lambda c: c.update({"class_name": "Graph"}), "does not describe a Sequential model"),
    (lambda c: c.update({"compile_config": [1]}), "compile_config must be an object"),
])
def test_config_shapes_are_checked(saved, tmp_path, change, match):
    members = _members(saved)
    config = json.loads(members["config.json"])
    change(config)
    members["config.json"] = json.dumps(config).encode()
    with pytest.raises(ValueError, match=match):
        cnnx.models.load_model(_write(tmp_path / "c.keras", members))


def test_save_and_load_weights_edges(tmp_path, monkeypatch):
    model = small_model()
    model.compile(optimizer="sgd", loss="mse")
    path = tmp_path / "m.keras"
    model.save(path)
    with pytest.raises(FileExistsError, match="overwrite=False"):
        model.save(path, overwrite=False)
    with pytest.raises(FileNotFoundError, match="No such file"):
        model.load_weights(tmp_path / "none.weights.npz")
    # load_weights builds a model that is not built yet.
    model.save_weights(tmp_path / "w.weights.npz")
    fresh = cnnx.Sequential([cnnx.layers.Conv2D(4, 3, activation="relu",
                                                input_shape=(6, 6, 2)),
                             cnnx.layers.MaxPooling2D(2), cnnx.layers.Flatten(),
                             cnnx.layers.Dropout(0.0), cnnx.layers.Dense(3, "softmax")])
    fresh.load_weights(tmp_path / "w.weights.npz")
    for a, b in zip(fresh.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)

    import cnnx.models.saving as saving

    class Exploding:
        @staticmethod
        def dumps(*args, **kwargs):
            raise RuntimeError("disk on fire")

    monkeypatch.setattr(saving, "json", Exploding)   # fails inside the atomic write
    with pytest.raises(RuntimeError, match="disk on fire"):
        model.save(tmp_path / "n.keras")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".cnnx-")]
    assert not (tmp_path / "n.keras").exists()

"""Saving and loading, with no pickle anywhere.

A `.keras` file is a zip of:
  config.json         the architecture (layer classes and configs) and compile config
  metadata.json       format name and version, cnnx version, date
  model.weights.npz   every weight as a plain array under "layers/<index>/vars/<i>" (by
                      position in the stack, so that weights load into a rebuilt model
                      whatever its automatic layer names), and
                      the optimizer's state under "optimizer/..."; read back with
                      allow_pickle=False
`save_weights`/`load_weights` write and read a `.weights.npz` of the layer arrays alone.
Writes are atomic: a temporary file in the target folder, then a rename. Loading checks
everything it reads and names the file and the problem when something is wrong.
"""
import datetime
import io
import json
import os
import tempfile
import zipfile

import numpy as np

from .._compat import refuse_unimplemented

__all__ = ["save_model", "load_model", "save_weights", "load_weights", "FORMAT_VERSION"]

FORMAT_NAME = "cnnx.keras"
FORMAT_VERSION = 1
_MAX_JSON_BYTES = 16 * 2 ** 20        # a config larger than this is not ours
_MAX_WEIGHTS_BYTES = 8 * 2 ** 30


class _Atomic:
    """Writes to a temporary file beside `path`, renamed over it on success."""

    def __init__(self, path, overwrite):
        self.path = os.fspath(path)
        if not overwrite and os.path.exists(self.path):
            raise FileExistsError(f"{self.path} exists and overwrite=False")

    def __enter__(self):
        folder = os.path.dirname(os.path.abspath(self.path))
        fd, self.tmp = tempfile.mkstemp(dir=folder, prefix=".cnnx-", suffix=".tmp")
        self.file = os.fdopen(fd, "wb")
        return self.file

    def __exit__(self, exc_type, exc, tb):
        self.file.close()
        if exc_type is None:
            os.replace(self.tmp, self.path)
        else:
            os.unlink(self.tmp)


def _check_suffix(path, suffix, what):
    path = os.fspath(path)
    if not path.endswith(suffix):
        raise ValueError(f"{what}: the file name must end in {suffix}, received {path!r}")
    return path


def _layer_arrays(model):
    arrays = {}
    for index, layer in enumerate(model.layers):
        for i, var in enumerate(layer.weights):
            arrays[f"layers/{index}/vars/{i}"] = var.value
    return arrays


def _optimizer_arrays(model):
    if not model.compiled or model.optimizer is None:
        return {}
    opt = model.optimizer
    arrays = {"optimizer/iterations": np.array(opt.iterations, np.int64)}
    for i, var in enumerate(model.trainable_weights):
        for j, slot in enumerate(opt._slots.get(id(var), [])):
            arrays[f"optimizer/vars/{i}/{j}"] = slot
    return arrays


def _npz_bytes(arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def save_model(model, filepath, overwrite=True):
    path = _check_suffix(filepath, ".keras", "save")
    if not model.built:
        raise ValueError(f"save: model {model.name!r} is not built; build it or fit it first")
    from .. import __version__
    config = {"module": "cnnx.models", "class_name": type(model).__name__,
              "config": model.get_config(), "compile_config": model.compile_config()}
    metadata = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION,
                "cnnx_version": __version__,
                "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S")}
    weights = _npz_bytes({**_layer_arrays(model), **_optimizer_arrays(model)})
    with _Atomic(path, overwrite) as f, zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("metadata.json", json.dumps(metadata, indent=1))
        z.writestr("config.json", json.dumps(config, indent=1))
        z.writestr("model.weights.npz", weights)


def save_weights(model, filepath, overwrite=True):
    path = _check_suffix(filepath, ".weights.npz", "save_weights")
    with _Atomic(path, overwrite) as f:
        f.write(_npz_bytes(_layer_arrays(model)))


class _Reader:
    """Checked reads from a file that may be corrupt, truncated or hostile."""

    def __init__(self, path):
        self.path = os.fspath(path)

    def fail(self, problem):
        return ValueError(f"Cannot load {self.path!r}: {problem}")

    def json(self, zf, member):
        info = self.member(zf, member, _MAX_JSON_BYTES)
        try:
            return json.loads(zf.read(info).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise self.fail(f"{member} is not valid JSON ({e})") from None
        except (zipfile.BadZipFile, EOFError, OSError) as e:
            raise self.fail(f"{member} is damaged ({e})") from None

    def member(self, zf, member, limit):
        try:
            info = zf.getinfo(member)
        except KeyError:
            raise self.fail(f"it has no {member}; a .keras file holds config.json, "
                            f"metadata.json and model.weights.npz") from None
        if info.file_size > limit:
            raise self.fail(f"{member} claims {info.file_size} bytes, more than the "
                            f"{limit} allowed")
        return info

    def npz(self, data):
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                return {key: npz[key] for key in npz.files}
        except ValueError as e:  # includes "Object arrays cannot be loaded..."
            raise self.fail(f"the weights are not plain arrays ({e})") from None
        except (zipfile.BadZipFile, EOFError, OSError) as e:
            raise self.fail(f"the weights are damaged ({e})") from None


def _assign_layers(model, arrays, reader):
    expected = set()
    for index, layer in enumerate(model.layers):
        for i, var in enumerate(layer.weights):
            key = f"layers/{index}/vars/{i}"
            expected.add(key)
            if key not in arrays:
                raise reader.fail(f"no weights for layer {index} ({layer.name!r}): "
                                  f"missing {key}")
            value = arrays[key]
            if value.shape != var.shape or value.dtype.kind != "f":
                raise reader.fail(f"{key} has shape {value.shape} and dtype {value.dtype}; "
                                  f"layer {index} ({layer.name!r}) expects {var.shape}, "
                                  f"floating point")
    extra = sorted(k for k in arrays if k.startswith("layers/") and k not in expected)
    if extra:
        raise reader.fail(f"weights {extra[:3]} match no layer of the model")
    for index, layer in enumerate(model.layers):  # all checked: now assign
        for i, var in enumerate(layer.weights):
            var.assign(arrays[f"layers/{index}/vars/{i}"])


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """Restore a model saved with model.save: architecture, weights, compile
    configuration and optimizer state, so that training resumes exactly."""
    refuse_unimplemented("load_model", custom_objects=(custom_objects, None))
    del safe_mode  # a cnnx file holds no code: loading is as safe either way
    from .. import losses, optimizers
    from .sequential import Model, Sequential
    reader = _Reader(filepath)
    if not os.path.isfile(reader.path):
        raise FileNotFoundError(f"No such file: {reader.path!r}")
    try:
        zf = zipfile.ZipFile(reader.path)
    except (zipfile.BadZipFile, OSError) as e:
        raise reader.fail(f"it is not a .keras zip archive ({e})") from None
    with zf:
        metadata = reader.json(zf, "metadata.json")
        if not isinstance(metadata, dict) or metadata.get("format") != FORMAT_NAME:
            raise reader.fail("metadata.json does not describe a cnnx model (a Keras h5-based "
                              ".keras file cannot be read without h5py)")
        version = metadata.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise reader.fail(f"format version {version!r} is newer than this cnnx "
                              f"understands ({FORMAT_VERSION}); upgrade cnnx")
        config = reader.json(zf, "config.json")
        if not isinstance(config, dict) or config.get("class_name") not in ("Sequential",
                                                                            "Model"):
            raise reader.fail("config.json does not describe a Sequential model or a Model")
        try:
            model = Sequential.from_config(config["config"])
            model.build()
            if config["class_name"] == "Model":  # a functional chain: the same layers
                model = Model(model.inputs, model.outputs, name=model.name)
        except (KeyError, TypeError, ValueError) as e:
            raise reader.fail(f"config.json describes an invalid model ({e})") from None
        info = reader.member(zf, "model.weights.npz", _MAX_WEIGHTS_BYTES)
        try:
            data = zf.read(info)
        except (zipfile.BadZipFile, EOFError, OSError, ValueError) as e:
            raise reader.fail(f"model.weights.npz is damaged ({e})") from None
    arrays = reader.npz(data)
    _assign_layers(model, arrays, reader)
    compile_config = config.get("compile_config")
    if compile and compile_config:
        try:
            model.compile(optimizer=optimizers.get(compile_config["optimizer"]),
                          loss=losses.get(compile_config["loss"]),
                          metrics=compile_config.get("metrics"))
        except (KeyError, TypeError, ValueError) as e:
            raise reader.fail(f"config.json has an invalid compile config ({e})") from None
        if "optimizer/iterations" in arrays:
            opt = model.optimizer
            for i, var in enumerate(model.trainable_weights):
                slots, j = [], 0
                while f"optimizer/vars/{i}/{j}" in arrays:
                    slot = arrays[f"optimizer/vars/{i}/{j}"]
                    if slot.size != var.value.size:
                        raise reader.fail(f"optimizer state {i}/{j} has {slot.size} values, "
                                          f"its variable has {var.value.size}")
                    slots.append(np.array(slot, dtype=var.value.dtype).reshape(-1))
                    j += 1
                if slots:
                    opt._slots[id(var)] = slots
            opt.iterations = int(arrays["optimizer/iterations"])
    return model


def load_weights(model, filepath):
    reader = _Reader(_check_suffix(filepath, ".weights.npz", "load_weights"))
    if not os.path.isfile(reader.path):
        raise FileNotFoundError(f"No such file: {reader.path!r}")
    if not model.built:
        model.build()
    with open(reader.path, "rb") as f:
        data = f.read()
    _assign_layers(model, reader.npz(data), reader)

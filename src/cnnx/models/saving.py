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
import warnings
import zipfile
import zlib
from typing import TYPE_CHECKING

import numpy as np

from .._compat import refuse_unimplemented
from ..layers.base import planned_weights

if TYPE_CHECKING:
    from .functional import Model

__all__ = ["save_model", "load_model", "save_weights", "load_weights", "FORMAT_VERSION"]

FORMAT_NAME = "cnnx.keras"
FORMAT_VERSION = 2   # 2: functional models as graphs (format 1 files still load)
_MAX_JSON_BYTES = 16 * 2 ** 20        # a config larger than this is not ours
_MAX_SLOTS = 2                        # optimizer state arrays per variable (Adam: m, v)
_CNNX_MEMBER = "cnnx.json"            # cnnx's metadata and config in a Keras-format file


class _Atomic:
    """Writes to a temporary file beside the target, renamed over it on success, as an
    editor saves: through a symlink to the file it points at (the link stays), with the
    permissions of the file it replaces, or those the user's umask gives a new file; and
    no temporary file is left behind after an error or an interrupt."""

    def __init__(self, path, overwrite):
        self.path = os.fspath(path)
        if not overwrite and os.path.exists(self.path):
            raise FileExistsError(f"{self.path} exists and overwrite=False")
        self.target = os.path.realpath(self.path)   # a symlink's target, followed

    def __enter__(self):
        folder = os.path.dirname(self.target)
        fd, self.tmp = tempfile.mkstemp(dir=folder, prefix=".cnnx-", suffix=".tmp")
        try:
            os.chmod(self.tmp, _mode_for(self.target))
            self.file = os.fdopen(fd, "w+b")   # h5py reads back what it writes
        except BaseException:
            os.close(fd)
            os.unlink(self.tmp)
            raise
        return self.file

    def __exit__(self, exc_type, exc, tb):
        try:
            self.file.close()
            if exc_type is None:
                os.replace(self.tmp, self.target)
        finally:
            if os.path.exists(self.tmp):
                os.unlink(self.tmp)


def _mode_for(path):
    """The mode a saved file gets: the existing file's, else 0o666 less the umask."""
    try:
        return os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)   # read it: setting is the only way
        os.umask(umask)
        return 0o666 & ~umask


def _check_suffix(path, suffix, what):
    path = os.fspath(path)
    if not path.endswith(suffix):
        raise ValueError(f"{what}: the file name must end in {suffix}, received {path!r}")
    return path


def _layer_arrays(model):
    arrays = {}
    for index, layer in enumerate(model._weighted_layers()):
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


_warned_no_h5py = []


def _have_h5py():
    try:
        import h5py  # noqa: F401 (only whether it is there)
    except ImportError:
        return False
    return True


def save_model(model, filepath, overwrite=True):
    """Write `model` to a .keras file, or to Keras's legacy HDF5 file when the name ends
    in .h5 (the `keras` extra), atomically: a temporary file renamed over the target.

    With h5py installed, a .keras file is one that Keras 3 loads (config.json in Keras's
    schema, metadata.json, model.weights.h5) and carries cnnx's own copy beside it
    (cnnx.json, model.weights.npz: the exact configuration, weights and optimizer state,
    readable without h5py). Without h5py it holds cnnx's copy alone, in the same members
    that format 2 used, and Keras cannot read it (a warning says so once). No pickle.

    >>> model = cnnx.Sequential([cnnx.Input((3,)), cnnx.layers.Dense(2)])
    >>> cnnx.models.save_model(model, "m.keras")   # as model.save("m.keras")
    >>> cnnx.models.load_model("m.keras").count_params()
    8
    """
    path = os.fspath(filepath)
    if not model.built:
        raise ValueError(f"save: model {model.name!r} is not built; build it or fit it first")
    if path.endswith((".h5", ".hdf5")):
        from .keras_files import write_legacy_h5
        config = {"class_name": type(model).__name__, "config": model.get_config(),
                  "compile_config": model.compile_config()}
        with _Atomic(path, overwrite) as f:
            write_legacy_h5(f, model, config)
        return
    if not path.endswith(".keras"):
        raise ValueError(f"save: the file name must end in .keras (or .h5, Keras's legacy "
                         f"HDF5 format), received {path!r}")
    from .. import __version__
    config = {"module": "cnnx.models", "class_name": type(model).__name__,
              "config": model.get_config(), "compile_config": model.compile_config()}
    metadata = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION,
                "cnnx_version": __version__,
                "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S")}
    weights = _npz_bytes({**_layer_arrays(model), **_optimizer_arrays(model)})
    keras_members = None
    if _have_h5py():
        from .keras_files import keras_zip_members
        keras_members = keras_zip_members(model, config)
    elif not _warned_no_h5py:
        _warned_no_h5py.append(True)
        warnings.warn(f"save: h5py is not installed, so {path} is in cnnx's own format, "
                      f"which Keras cannot read; pip install \"cnnx[keras]\" to write "
                      f"files that Keras loads too", UserWarning, stacklevel=3)
    with _Atomic(path, overwrite) as f, zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as z:
        if keras_members is None:
            z.writestr("metadata.json", json.dumps(metadata, indent=1))
            z.writestr("config.json", json.dumps(config, indent=1))
        else:
            for name, data in keras_members.items():
                z.writestr(name, data)
            z.writestr(_CNNX_MEMBER, json.dumps({"metadata": metadata, "config": config},
                                                indent=1))
        z.writestr("model.weights.npz", weights)


def save_weights(model, filepath, overwrite=True):
    """The weights alone: `.weights.npz` (cnnx's, NumPy only), `.weights.h5` (Keras 3's
    layout) or another `.h5` name (Keras 2's legacy layout); the HDF5 ones need h5py."""
    path = os.fspath(filepath)
    if path.endswith((".h5", ".hdf5")):
        from .keras_files import _h5py, write_legacy_weights, write_weights_h5
        h5py = _h5py()
        with _Atomic(path, overwrite) as f, h5py.File(f, "w") as h5:
            if path.endswith(".weights.h5"):
                write_weights_h5(h5, model)
            else:
                write_legacy_weights(h5, model)
        return
    if not path.endswith(".weights.npz"):
        raise ValueError(f"save_weights: the file name must end in .weights.npz (cnnx's), "
                         f".weights.h5 (Keras 3's) or .h5 (Keras 2's), received {path!r}")
    with _Atomic(path, overwrite) as f:
        f.write(_npz_bytes(_layer_arrays(model)))


class _Reader:
    """Checked reads from a file that may be corrupt, truncated or hostile. Nothing is
    inflated or allocated beyond what the architecture in the file implies."""

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
        except RecursionError:
            raise self.fail(f"{member} nests too deeply") from None
        except (zipfile.BadZipFile, EOFError, OSError, zlib.error) as e:
            raise self.fail(f"{member} is damaged ({e})") from None

    def member(self, zf, member, limit):
        try:
            info = zf.getinfo(member)
        except KeyError:
            raise self.fail(f"it has no {member}; a .keras file holds config.json, "
                            f"metadata.json and model.weights.npz") from None
        if info.file_size > limit:
            raise self.fail(f"{member} claims {info.file_size} bytes, more than the "
                            f"{limit} its contents can need")
        return info

    def arrays(self, source, specs):
        """The arrays of an npz (bytes or a path), each checked against specs (a function
        from the array's name to (shape or None for any, size or None, dtype kinds), or
        None for a name that does not belong) from its .npy header, before its data is
        read: a declared shape that does not match is refused without allocating it."""
        try:
            zf = zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source)
        except (zipfile.BadZipFile, OSError) as e:
            raise self.fail(f"the weights are not an npz archive ({e})") from None
        out = {}
        with zf:
            for info in zf.infolist():
                if not info.filename.endswith(".npy"):
                    raise self.fail(f"the weights hold {info.filename!r}, not an array")
                name = info.filename[:-4]
                spec = specs(name)
                if spec is None:
                    raise self.fail(f"weights {name!r} match nothing in the model")
                out[name] = self._array(zf, info, name, *spec)
        return out

    def _array(self, zf, info, name, shape, size, kinds):
        try:
            with zf.open(info) as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    header = np.lib.format.read_array_header_1_0(f)
                elif version == (2, 0):
                    header = np.lib.format.read_array_header_2_0(f)
                else:
                    raise self.fail(f"{name} is in .npy format {version}, not 1.0 or 2.0")
                got_shape, fortran, dtype = header
                got_size = int(np.prod(got_shape, dtype=object))
                if dtype.kind not in kinds or dtype.hasobject or dtype.itemsize > 16:
                    raise self.fail(f"{name} has dtype {dtype}; expected "
                                    f"{'a float' if kinds == 'f' else 'an integer'} array")
                if (shape is not None and tuple(got_shape) != tuple(shape)) or (
                        size is not None and got_size != size):
                    want = shape if shape is not None else f"{size} values"
                    raise self.fail(f"{name} has shape {tuple(got_shape)}; the model "
                                    f"expects {want}")
                # The member may not claim more than its header and data.
                if info.file_size > f.tell() + got_size * dtype.itemsize:
                    raise self.fail(f"{name} claims {info.file_size} bytes for "
                                    f"{got_size * dtype.itemsize} bytes of data")
                nbytes = got_size * dtype.itemsize
                raw = f.read(nbytes + 1)
                if len(raw) != nbytes:
                    raise self.fail(f"{name} holds {len(raw)} bytes of data, its header "
                                    f"says {nbytes}")
                array = np.frombuffer(raw, dtype).reshape(got_shape,
                                                          order="F" if fortran else "C")
                return np.array(array, dtype=dtype.newbyteorder("="), order="C")
        except ValueError as e:
            if str(e).startswith("Cannot load"):
                raise
            raise self.fail(f"{name} is not a plain array ({e})") from None
        except (zipfile.BadZipFile, EOFError, OSError, zlib.error) as e:
            raise self.fail(f"{name} is damaged ({e})") from None


def _layer_specs(model):
    """The weights by key: layers (InputLayers aside) by position, then each one's
    weights (a nested model's: all of them) by position."""
    return {f"layers/{index}/vars/{i}": var
            for index, layer in enumerate(model._weighted_layers())
            for i, var in enumerate(layer.weights)}


def _weight_spec(variables):
    def spec(name):
        var = variables.get(name)
        return None if var is None else (var.shape, None, "f")
    return spec


def _model_spec(variables, trainable_sizes):
    """Names a .keras weights member may have: the layers' weights, the iteration count,
    and each trainable variable's optimizer slots (its size, at most 2 per variable)."""
    layer_spec = _weight_spec(variables)

    def spec(name):
        if name.startswith("layers/"):
            return layer_spec(name)
        if name == "optimizer/iterations":
            return ((), None, "iu")
        parts = name.split("/")
        if len(parts) == 4 and parts[:2] == ["optimizer", "vars"] and all(
                p.isdigit() for p in parts[2:]):
            i, j = int(parts[2]), int(parts[3])
            if i < len(trainable_sizes) and j < _MAX_SLOTS:
                return (None, trainable_sizes[i], "f")
        return None
    return spec


def _assign_layers(model, arrays, reader):
    variables = _layer_specs(model)
    for key, var in variables.items():
        if key not in arrays:
            raise reader.fail(f"no weights for {var.name!r}: missing {key}")
    for key, var in variables.items():   # all checked: now assign
        var.assign(arrays[key])


def _architecture(config):
    """The model a config.json describes. Format 1 wrote a functional model as the chain
    of its layers; a graph has input_layers and output_layers."""
    from .functional import Model
    from .sequential import Sequential
    inner = config["config"]
    if config["class_name"] == "Sequential" or "input_layers" not in inner:
        model = Sequential.from_config(inner)
        model.build()
        if config["class_name"] != "Sequential":   # a format-1 functional chain
            model = Model(model.inputs, model.outputs, name=model.name)
        return model
    return Model.from_config(inner)


def _plan(config):
    """The file's model built with planned (memoryless) weights: its weights' shapes and
    bytes, known before anything is allocated."""
    with planned_weights():
        plan = _architecture(config)
    variables = _layer_specs(plan)
    trainable = plan.trainable_weights
    nbytes = sum(v.value.size * v.value.dtype.itemsize for v in variables.values())
    slot_bytes = _MAX_SLOTS * sum(v.value.size * v.value.dtype.itemsize for v in trainable)
    # npz headers and zip entries: a few hundred bytes per array.
    overhead = 1024 * (len(variables) + _MAX_SLOTS * len(trainable) + 1)
    return plan, nbytes + slot_bytes + overhead


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True) -> "Model":
    """Restore a model saved with model.save: architecture, weights, compile
    configuration and optimizer state, so that training resumes exactly.

    Hostile files are refused with an error naming the file and what is wrong, within a
    memory bound: at most the weights that the file's own architecture implies (checked
    before any weight is allocated), plus its JSON (at most 16 MiB).

    >>> model = cnnx.Sequential([cnnx.Input((3,)), cnnx.layers.Dense(2)])
    >>> model.save("tiny.keras")
    >>> again = cnnx.models.load_model("tiny.keras")
    >>> x = np.ones((4, 3), np.float32)
    >>> np.array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))
    True
    """
    refuse_unimplemented("load_model", custom_objects=(custom_objects, None))
    del safe_mode  # a cnnx file holds no code: loading is as safe either way
    reader = _Reader(filepath)
    if not os.path.isfile(reader.path):
        raise FileNotFoundError(f"No such file: {reader.path!r}")
    if reader.path.endswith((".h5", ".hdf5")):
        from .keras_files import load_keras_file
        return load_keras_file(reader.path, compile)
    try:
        return _load_model(reader, compile)
    except ValueError as e:
        if str(e).startswith("Cannot load"):
            raise
        raise reader.fail(str(e)) from None
    except (TypeError, KeyError, IndexError, AttributeError, OverflowError,
            RecursionError, MemoryError, NotImplementedError) as e:
        # What a malformed config makes the layers or optimizers raise.
        raise reader.fail(f"it describes an invalid model ({type(e).__name__}: {e})") \
            from None


def _load_model(reader, compile):
    from .. import losses, optimizers
    try:
        zf = zipfile.ZipFile(reader.path)
    except (zipfile.BadZipFile, OSError) as e:
        raise reader.fail(f"it is not a .keras zip archive ({e})") from None
    with zf:
        names = set(zf.namelist())
        if _CNNX_MEMBER in names:   # a Keras-format file that cnnx wrote: its own copy
            own = reader.json(zf, _CNNX_MEMBER)
            if not isinstance(own, dict):
                raise reader.fail(f"{_CNNX_MEMBER} is not an object")
            metadata, config = own.get("metadata"), own.get("config")
        else:
            metadata = reader.json(zf, "metadata.json")
            config = None
        if (not isinstance(metadata, dict) or metadata.get("format") != FORMAT_NAME) \
                and "model.weights.h5" in names:
            zf.close()
            from .keras_files import load_keras_file
            return load_keras_file(reader.path, compile)
        if not isinstance(metadata, dict) or metadata.get("format") != FORMAT_NAME:
            raise reader.fail("metadata.json does not describe a cnnx model, and there is "
                              "no model.weights.h5: not a Keras file either")
        version = metadata.get("format_version")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise reader.fail(f"metadata.json: format_version must be an int >= 1, "
                              f"received {version!r}")
        if version > FORMAT_VERSION:
            raise reader.fail(f"format version {version!r} is newer than this cnnx "
                              f"understands ({FORMAT_VERSION}); upgrade cnnx")
        if config is None:
            config = reader.json(zf, "config.json")
        if not isinstance(config, dict) or config.get("class_name") not in (
                "Sequential", "Model", "Functional"):
            raise reader.fail("config.json does not describe a Sequential model or a Model")
        if not isinstance(config.get("config"), dict):
            raise reader.fail("config.json has no model config")
        plan, bound = _plan(config)
        info = reader.member(zf, "model.weights.npz", bound)
        # Trained weights barely compress; a member that inflates 50-fold is a bomb.
        if info.file_size > 2 ** 24 and info.compress_size * 50 < info.file_size:
            raise reader.fail(f"model.weights.npz inflates {info.compress_size} bytes "
                              f"to {info.file_size}: not weights")
        try:
            data = zf.read(info)
        except (zipfile.BadZipFile, EOFError, OSError, ValueError, zlib.error) as e:
            raise reader.fail(f"model.weights.npz is damaged ({e})") from None
    sizes = [v.value.size for v in plan.trainable_weights]
    arrays = reader.arrays(data, _model_spec(_layer_specs(plan), sizes))
    for key in _layer_specs(plan):
        if key not in arrays:
            raise reader.fail(f"model.weights.npz has no {key}")
    # Everything is checked: now the real model, and its weights.
    model = _architecture(config)
    _assign_layers(model, arrays, reader)
    compile_config = config.get("compile_config")
    if compile and compile_config:
        if not isinstance(compile_config, dict):
            raise reader.fail("config.json: compile_config must be an object")
        try:
            loss = compile_config["loss"]
            per_output = isinstance(loss, list) or (isinstance(loss, dict)
                                                    and "class_name" not in loss)
            model.compile(optimizer=optimizers.get(compile_config["optimizer"]),
                          loss=loss if per_output else losses.get(loss),
                          metrics=compile_config.get("metrics"),
                          loss_weights=compile_config.get("loss_weights"))
        except (KeyError, TypeError, ValueError) as e:
            raise reader.fail(f"config.json has an invalid compile config ({e})") from None
        if "optimizer/iterations" in arrays:
            iterations = arrays["optimizer/iterations"]
            if int(iterations) < 0:
                raise reader.fail(f"optimizer/iterations is {int(iterations)}, not a count")
            opt = model.optimizer
            for i, var in enumerate(model.trainable_weights):
                slots, j = [], 0
                while f"optimizer/vars/{i}/{j}" in arrays:
                    slot = arrays[f"optimizer/vars/{i}/{j}"]
                    slots.append(np.array(slot, dtype=var.value.dtype).reshape(-1))
                    j += 1
                if slots:
                    opt._slots[id(var)] = slots
            opt.iterations = int(iterations)
    return model


def load_weights(model, filepath):
    """Weights saved by save_weights (cnnx's .weights.npz) or by Keras (a .weights.h5 of
    Keras 3, or a legacy .h5), checked whole before any is assigned."""
    if os.fspath(filepath).endswith((".h5", ".hdf5")):
        from .keras_files import load_h5_weights
        if not model.built:
            model.build()
        load_h5_weights(model, filepath)
        return
    reader = _Reader(_check_suffix(filepath, ".weights.npz", "load_weights"))
    if not os.path.isfile(reader.path):
        raise FileNotFoundError(f"No such file: {reader.path!r}")
    if not model.built:
        model.build()
    variables = _layer_specs(model)
    bound = sum(v.value.nbytes for v in variables.values()) + 1024 * (len(variables) + 1)
    if os.path.getsize(reader.path) > bound:
        raise reader.fail(f"it has {os.path.getsize(reader.path)} bytes, more than the "
                          f"{bound} that model {model.name!r}'s weights can need")
    with open(reader.path, "rb") as f:
        data = f.read(bound + 1)
    arrays = reader.arrays(data, _weight_spec(variables))
    _assign_layers(model, arrays, reader)

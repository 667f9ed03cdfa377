"""Keras's own files, read and written with h5py (the `keras` extra).

- Keras 3's `.keras`: a zip of config.json (the architecture and compile configuration,
  every object as {"module", "class_name", "config", "registered_name"}),
  metadata.json and model.weights.h5, whose weights are keyed by the snake-cased class
  name of each layer plus a counter in layer order ("layers/conv2d_1/vars/0"), not by
  the layer's name; the optimizer's variables are "optimizer/vars/<i>" (iterations,
  learning rate, then each trainable variable's slots in turn).
- The legacy HDF5 `.h5` of Keras 2 and 3: the model_config and training_config
  attributes (JSON), and a group per layer under model_weights, listed by the attribute
  layer_names, holding the datasets that its weight_names attribute lists (long
  attributes are split into layer_names0, layer_names1, ...).

Reading translates a Keras config into cnnx's (same layer classes and argument names;
Keras's serialization wrappers removed). An argument cnnx does not implement is refused,
naming the layer, unless it has the value that does nothing. Nothing in a file runs, and
every array's shape and dtype are checked against the architecture before it is read;
nothing is assigned until everything is read.

Writing produces what Keras 3 reads: its config schema, its weight names (which follow
Keras's own order of a graph's layers: keras_layer_order), and the optimizer variables
of SGD, Adam and AdamW, whose state means the same in both.
"""
import io
import json
import os
import re
import warnings
import zipfile
import zlib
from inspect import signature

import numpy as np

from ..layers import REGISTRY, InputLayer, Layer

__all__ = ["load_keras_file", "load_h5_weights", "keras_zip_members", "write_legacy_h5",
           "write_legacy_weights", "write_weights_h5", "keras_model_config",
           "keras_layer_order"]

_MAX_JSON_BYTES = 16 * 2 ** 20


def _slot_count(kind, momentum):
    """How many state arrays per variable an optimizer keeps, for the optimizers whose
    state has the same meaning and order in Keras 3 and in cnnx; None for the others."""
    return {"SGD": 1 if momentum else 0, "Adam": 2, "AdamW": 2}.get(kind)


def _h5py():
    try:
        import h5py
    except ImportError:
        raise ImportError('Reading and writing Keras\'s HDF5 weights needs h5py: pip install '
                          '"cnnx[keras]"') from None
    return h5py


def keras_snake_case(name):
    """Keras's own rule for the keys of model.weights.h5 (LeakyReLU -> leaky_re_lu)."""
    name = re.sub(r"\W+", "", name)
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


class _Fail(ValueError):
    pass


class _File:
    """Errors that name the file."""

    def __init__(self, path):
        self.path = os.fspath(path)

    def fail(self, problem):
        return _Fail(f"Cannot load {self.path!r}: {problem}")


# ------------------------------------------------------------------------------------
# Configs: Keras -> cnnx

_MODELS = ("Sequential", "Functional", "Model")
# Arguments whose value does nothing in cnnx (Keras's defaults), and so may be dropped.
_NEUTRAL = {"groups": 1, "data_format": "channels_last", "synchronized": False,
            "renorm": False, "sparse": False, "ragged": False, "optional": False,
            "use_ema": False, "jit_compile": False, "run_eagerly": False,
            "steps_per_execution": 1, "renorm_momentum": 0.99, "ema_momentum": 0.99}


# Arguments that change nothing in cnnx whatever their value: a name, and how Keras
# compiled its own step (XLA).
_ANY_VALUE = {"name", "jit_compile", "is_legacy_optimizer"}


def _unwrap(value):
    """Keras 3's serialized objects without their module and registry fields; a dtype
    policy becomes its dtype name."""
    if isinstance(value, dict):
        if value.get("class_name") in ("DTypePolicy", "Policy", "FloatDTypePolicy"):
            name = (value.get("config") or {}).get("name")
            if name not in ("float32", "float64"):
                raise ValueError(f"dtype policy {name!r}: cnnx computes in float32 or float64")
            return name
        if value.get("class_name") == "__tuple__":
            return [_unwrap(v) for v in value.get("config", {}).get("value", [])]
        return {k: _unwrap(v) for k, v in value.items()
                if k not in ("module", "registered_name", "shared_object_id")}
    if isinstance(value, list):
        return [_unwrap(v) for v in value]
    return value


def _accepted(cls):
    names = set()
    for c in (cls, Layer) if issubclass(cls, Layer) else (cls,):
        names |= {p for p, spec in signature(c.__init__).parameters.items()
                  if spec.kind not in (spec.VAR_KEYWORD, spec.VAR_POSITIONAL)}
    return names - {"self"}


def _filtered(cls, config, what):
    """The config with the keys cls accepts; a key it does not accept must have its
    neutral value (None, False, empty, or the Keras default that does nothing)."""
    accepted, out = _accepted(cls), {}
    for key, value in config.items():
        if key in accepted:
            out[key] = value
        elif value is None or value is False or value == [] or value == {} \
                or _NEUTRAL.get(key, object()) == value or key in _ANY_VALUE:
            continue
        else:
            raise NotImplementedError(f"{what} sets {key}={value!r}, which cnnx does not "
                                      f"implement")
    return out


def _nested_object(value, registry, what):
    """An initializer, regularizer or optimizer config, filtered like a layer's."""
    if not isinstance(value, dict) or "class_name" not in value:
        return value
    # Keras 2.11+ writes its own optimizers as "Custom>Adam" in training_config.
    cls = registry.by_class_name(value["class_name"].removeprefix("Custom>"))
    return {"class_name": cls.__name__,
            "config": _filtered(cls, value.get("config") or {}, f"{what} "
                                f"({value['class_name']})")}


# Keras 2 names of arguments that Keras 3 renamed, per layer class (the general renames,
# output_dim and the like, are every layer's own: see cnnx._compat).
_KERAS2_RENAMES = {"LeakyReLU": {"alpha": "negative_slope"}}


def _layer_config(cls, config, what):
    from .. import initializers, regularizers
    config = dict(config)
    for old, new in _KERAS2_RENAMES.get(cls.__name__, {}).items():
        if old in config and new not in config:
            config[new] = config.pop(old)
    if cls is InputLayer:
        shape = config.pop("batch_shape", None) or config.pop("batch_input_shape", None)
        if shape is not None:
            config["shape"] = list(shape[1:])
            if shape[0] is not None:
                config["batch_size"] = shape[0]
    for key, value in list(config.items()):
        if key.endswith("_initializer"):
            config[key] = _nested_object(value, initializers.REGISTRY, f"{what}.{key}")
        elif key.endswith("_regularizer"):
            config[key] = _nested_object(value, regularizers.REGISTRY, f"{what}.{key}")
    return _filtered(cls, config, what)


def _refs(args):
    """[layer, node, tensor] for each tensor of a Keras 3 node's first argument."""
    first = args[0] if args else []
    items = first if isinstance(first, list) else [first]
    refs = []
    for item in items:
        history = (item.get("config") or {}).get("keras_history") if isinstance(item, dict) \
            else None
        if not (isinstance(history, list) and len(history) == 3):
            raise ValueError(f"a node's input is not a Keras tensor: {item!r}")
        refs.append(list(history))
    return refs


def _node(node, what):
    if isinstance(node, dict):   # Keras 3: {"args": [...], "kwargs": {...}}
        # `training` as it was when the graph was built: the model's own call decides.
        extra = {k: v for k, v in (node.get("kwargs") or {}).items()
                 if v is not None and k != "training"}
        if extra or len(node.get("args") or []) > 1:
            raise NotImplementedError(f"{what} is called with arguments cnnx does not "
                                      f"take: {sorted(extra) or node['args'][1:]}")
        return _refs(node.get("args") or [])
    if isinstance(node, list):   # Keras 2: [[layer, node, tensor, kwargs], ...]
        return [list(ref[:3]) for ref in node]
    raise ValueError(f"{what}: a node must be a dict or a list, received {node!r}")


def _tensor_refs(value):
    if value and isinstance(value[0], str):   # one tensor, not a list of them
        return [list(value[:3])]
    return [list(v[:3]) for v in value]


def model_config(config, what="the model"):
    """cnnx's {"class_name", "config"} for a Keras {"class_name", "config"} model."""
    kind = config.get("class_name")
    if kind not in _MODELS:
        raise ValueError(f"{what} is a {kind!r}, not a Sequential or functional Model")
    inner = config.get("config") or {}
    items = []
    for item in inner.get("layers") or []:
        items.append(_layer_item(item, kind != "Sequential"))
    out = {"name": inner.get("name"), "trainable": inner.get("trainable", True),
           "layers": items}
    if kind == "Sequential":
        first = items[0] if items else None
        if first is not None and first["class_name"] != "InputLayer":
            # Keras 2: the input shape sits on the first layer (batch_input_shape).
            shape = (inner.get("build_input_shape")
                     or first["config"].pop("batch_input_shape", None))
            if shape is not None:
                items.insert(0, {"class_name": "InputLayer",
                                 "config": {"shape": list(shape[1:])}})
        return {"class_name": "Sequential", "config": out}
    out["input_layers"] = _tensor_refs(inner["input_layers"])
    out["output_layers"] = _tensor_refs(inner["output_layers"])
    return {"class_name": "Functional", "config": out}


def _layer_item(item, graph):
    item = _unwrap(item)
    kind = item.get("class_name")
    config = item.get("config") or {}
    name = item.get("name") or config.get("name")
    what = f"layer {name!r} ({kind})"
    if kind in _MODELS:
        out = model_config(item, what)
    else:
        if kind not in REGISTRY:
            raise NotImplementedError(f"{what}: cnnx has no {kind} layer")
        cls = REGISTRY.by_class_name(kind)
        # No build_config: each layer is built when the graph calls it (Keras's build
        # shape is a hint: an adapted Normalization records its adapt data's shape).
        out = {"class_name": cls.__name__, "config": _layer_config(cls, config, what)}
    if graph:
        out["name"] = name
        out["inbound_nodes"] = [_node(n, what) for n in item.get("inbound_nodes") or []]
    return out


def _keras_layer_paths(config, prefix):
    """(path in model.weights.h5, layer config) for every layer of a Keras model config,
    as Keras 3's saver names them: the snake-cased class name, with a counter from the
    second of a kind on, in the order of the model's layers (a Sequential's InputLayer is
    not among them); a nested model's layers below it."""
    used = {}
    inner = config.get("config") or {}
    for item in inner.get("layers") or []:
        kind = item.get("class_name")
        if config.get("class_name") == "Sequential" and kind == "InputLayer":
            continue
        key = keras_snake_case(kind)
        count = used.get(key)
        used[key] = 0 if count is None else count + 1
        if count is not None:
            key = f"{key}_{count + 1}"
        path = f"{prefix}/{key}"
        yield path, item
        if kind in _MODELS:
            yield from _keras_layer_paths(item, f"{path}/layers")


def _name_of(item):
    return item.get("name") or (item.get("config") or {}).get("name")


# ------------------------------------------------------------------------------------
# Reading

def _read_dataset(file, dataset, shape, what):
    """A float dataset of the expected shape, read only after its header is checked."""
    h5py = _h5py()
    if not isinstance(dataset, h5py.Dataset):
        raise file.fail(f"{what} is not an array")
    if tuple(dataset.shape) != tuple(shape):
        raise file.fail(f"{what} has shape {tuple(dataset.shape)}; the model expects "
                        f"{tuple(shape)}")
    if dataset.dtype.kind != "f" or dataset.dtype.itemsize > 8:
        raise file.fail(f"{what} has dtype {dataset.dtype}, not float32 or float64")
    return np.asarray(dataset[()])


def _layer_vars(model):
    """Layer name -> the layer, for every layer of the model and its nested models."""
    found = {}
    for layer in model.layers:
        found.setdefault(layer.name, layer)
        if hasattr(layer, "layers") and layer is not model:
            for name, inner in _layer_vars(layer).items():
                found.setdefault(name, inner)
    return found


class _Constant:
    """A variable Keras keeps that cnnx has no use for (Normalization's sample count):
    written with its value, checked to be a number when read, otherwise skipped."""

    def __init__(self, name, value):
        self.name, self.value = name, value


def _keras_weights(layer, legacy=False):
    """The layer's weights in the order and number Keras 3 keeps them. Legacy files list
    the trainable ones first. Normalization: none when its mean and variance are in the
    config; else mean, variance and Keras's count of adapted samples."""
    if type(layer).__name__ == "Normalization":
        if layer.mean is not None:
            return []
        return [layer.adapt_mean, layer.adapt_variance,
                _Constant(f"{layer.name}/count", np.int32(0))]
    if legacy:
        return list(layer.trainable_weights) + list(layer.non_trainable_weights)
    return list(layer.weights)


def _read_weights(file, entries, datasets, where):
    """(variable, array) pairs for the entries, from datasets (names in order), each
    checked before it is read."""
    h5py = _h5py()
    if len(datasets) != len(entries):
        raise file.fail(f"{where} holds {len(datasets)} weights; cnnx expects "
                        f"{len(entries)}")
    pairs = []
    for entry, (name, dataset) in zip(entries, datasets):
        if isinstance(entry, _Constant):
            if not isinstance(dataset, h5py.Dataset) or dataset.shape != () \
                    or dataset.dtype.kind not in "iuf":
                raise file.fail(f"{name} is not a number")
            continue
        pairs.append((entry, _read_dataset(file, dataset, entry.shape, name)))
    return pairs


def _vars_datasets(group, path):
    """The datasets of a Keras 3 vars group, as [(name, dataset)] in index order."""
    if group is None:
        return []
    return [(f"{path}/vars/{i}", group.get(str(i))) for i in range(len(group))]


def _assign_checked(pairs):
    """pairs: (variable, array). Everything was read and checked: now assign."""
    for var, array in pairs:
        var.assign(array.astype(var.value.dtype, copy=False))


def load_keras_file(path, compile=True):
    """The model in a Keras file: a Keras 3 .keras zip, or a legacy .h5 of Keras 2 or 3."""
    file = _File(path)
    if file.path.endswith((".h5", ".hdf5")):
        return _load_h5(file, compile)
    return _load_keras_zip(file, compile)


def _json_member(file, zf, member):
    try:
        info = zf.getinfo(member)
    except KeyError:
        raise file.fail(f"it has no {member}") from None
    if info.file_size > _MAX_JSON_BYTES:
        raise file.fail(f"{member} claims {info.file_size} bytes, more than a config needs")
    try:
        return json.loads(zf.read(info).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise file.fail(f"{member} is not valid JSON ({type(e).__name__})") from None


def _planned(file, config):
    """The cnnx model for a Keras config, with memoryless weights (shapes only), and the
    bytes its weights take: what a weights file may hold at most."""
    from ..layers.base import planned_weights
    from .saving import _architecture
    try:
        with planned_weights():
            plan = _architecture(config)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError,
            NotImplementedError, RecursionError) as e:
        raise file.fail(f"its architecture cannot be built in cnnx ({e})") from None
    nbytes = sum(v.value.size * v.value.dtype.itemsize for v in plan.weights)
    return plan, nbytes


def _load_keras_zip(file, compile):
    h5py = _h5py()
    from .saving import _architecture
    try:
        zf = zipfile.ZipFile(file.path)
    except (zipfile.BadZipFile, OSError) as e:
        raise file.fail(f"it is not a .keras zip archive ({e})") from None
    with zf:
        keras_config = _json_member(file, zf, "config.json")
        if not isinstance(keras_config, dict):
            raise file.fail("config.json is not an object")
        try:
            config = model_config(keras_config)
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as e:
            raise file.fail(f"config.json: {e}") from None
        except NotImplementedError as e:
            raise file.fail(str(e)) from None
        plan, nbytes = _planned(file, config)
        info = zf.getinfo("model.weights.h5")
        # HDF5 keeps a few kB of headers per object; optimizer state is at most 3x the
        # weights (Adam: two slots).
        bound = 4 * nbytes + 8192 * (4 * len(plan.weights) + 64)
        if info.file_size > bound:
            raise file.fail(f"model.weights.h5 claims {info.file_size} bytes; this "
                            f"architecture's weights and optimizer state need at most {bound}")
        try:
            raw = zf.read(info)
        except (zipfile.BadZipFile, EOFError, OSError, zlib.error) as e:
            raise file.fail(f"model.weights.h5 is damaged ({e})") from None
    model = _architecture(config)
    by_name = _layer_vars(model)
    try:
        h5 = h5py.File(io.BytesIO(raw), "r")
    except OSError as e:
        raise file.fail(f"model.weights.h5 is not an HDF5 file ({e})") from None
    with h5:
        pairs, order = [], []
        for path, item in _keras_layer_paths(keras_config, "layers"):
            layer = by_name.get(_name_of(item))
            if layer is None or item.get("class_name") in _MODELS:
                continue
            pairs += _read_weights(file, _keras_weights(layer),
                                   _vars_datasets(h5.get(f"{path}/vars"), path),
                                   f"{path} ({type(layer).__name__} {layer.name!r})")
            order.append(layer)
        _assign_checked(pairs)
        optimizer = h5.get("optimizer/vars")
        state = (_optimizer_arrays(file, _vars_datasets(optimizer, "optimizer"), order)
                 if optimizer is not None else None)
        if optimizer is not None and len(optimizer) > 0 and state is None:
            warnings.warn(f"{file.path}: the optimizer's variables do not match the model's "
                          f"trainable weights; training resumes with a fresh optimizer state",
                          stacklevel=3)
    if compile and keras_config.get("compile_config"):
        _compile(file, model, keras_config["compile_config"], state)
    return model


def _optimizer_arrays(file, datasets, layers):
    """iterations and the slots of each trainable weight, from Keras's optimizer
    variables in order, [(name, dataset)]: the iteration count, maybe the learning rate
    (Keras 3), then each trainable weight's slots in turn. None when they do not divide
    among the weights; whether the optimizer keeps them as cnnx does is _compile's
    question."""
    trainable = [v for layer in layers if layer.trainable for v in layer.trainable_weights]
    scalars = 0
    while scalars < min(len(datasets), 2) and getattr(datasets[scalars][1], "shape",
                                                      None) == ():
        scalars += 1
    per_var = (len(datasets) - scalars) / max(len(trainable), 1)
    if scalars == 0 or per_var != int(per_var) or per_var > 2:
        return None
    name, iterations = datasets[0]
    if iterations.dtype.kind not in "iuf":
        raise file.fail(f"{name} (the iteration count) is not a number")
    slots, k = {}, scalars
    for var in trainable:
        slots[id(var)] = [_read_dataset(file, datasets[k + j][1], var.shape,
                                        datasets[k + j][0]).reshape(-1)
                          for j in range(int(per_var))]
        k += int(per_var)
    return int(iterations[()]), int(per_var), trainable, slots


def _compile(file, model, compile_config, state):
    from .. import losses, optimizers
    compile_config = _unwrap(compile_config)
    opt_config = compile_config.get("optimizer") or compile_config.get("optimizer_config")
    try:
        optimizer = optimizers.get(_nested_object(opt_config, optimizers.REGISTRY,
                                                  "the optimizer"))
        loss = compile_config.get("loss")
        per_output = isinstance(loss, list) or (isinstance(loss, dict)
                                                and "class_name" not in loss)
        model.compile(optimizer=optimizer, loss=loss if per_output else losses.get(loss),
                      metrics=_metrics(compile_config.get("metrics"), len(model.outputs)),
                      loss_weights=compile_config.get("loss_weights"))
    except (KeyError, TypeError, ValueError, NotImplementedError) as e:
        raise file.fail(f"its compile configuration is not one cnnx can use ({e})") from None
    if state is None:
        return
    iterations, per_var, trainable, slots = state
    kind = (opt_config.get("class_name") or "").removeprefix("Custom>") \
        if isinstance(opt_config, dict) else None
    expected = _slot_count(kind, (opt_config.get("config") or {}).get("momentum"))
    if expected is None or expected != per_var:
        warnings.warn(f"{file.path}: the {kind} optimizer's state is not restored (cnnx "
                      f"restores Keras's SGD, Adam and AdamW state); training resumes with "
                      f"a fresh optimizer state", stacklevel=4)
        return
    optimizer.iterations = iterations
    for var in trainable:
        if slots[id(var)]:
            optimizer._slots[id(var)] = [s.astype(var.value.dtype) for s in slots[id(var)]]


def _metrics(value, n_outputs):
    """Keras's saved metrics as compile() takes them: Keras 2 lists them per output (a
    list of lists) and wraps a function as MeanMetricWrapper(name, fn)."""
    def one(m):
        if isinstance(m, dict) and m.get("class_name") == "MeanMetricWrapper":
            config = m.get("config") or {}
            return config.get("name") if config.get("name") == "accuracy" else config.get("fn")
        return m
    if isinstance(value, list) and value and all(isinstance(v, list) for v in value):
        value = [[one(m) for m in v] for v in value]
        return value[0] if n_outputs == 1 and len(value) == 1 else value
    if isinstance(value, list):
        return [one(m) for m in value]
    return value


def _attr(file, obj, name):
    """An attribute's value, its size checked first where its type says it (a fixed-size
    string or array: at most 16 MiB). A variable-length string lives in the file's heap:
    it cannot claim more than the file holds."""
    h5py = _h5py()
    if name not in obj.attrs:
        return None
    attr = h5py.h5a.open(obj.id, name.encode())
    dtype, count = attr.dtype, int(np.prod(attr.shape, dtype=np.int64))
    if h5py.check_string_dtype(dtype) is None or h5py.check_string_dtype(dtype).length:
        if dtype.itemsize * count > _MAX_JSON_BYTES:
            raise file.fail(f"its {name} attribute declares {dtype.itemsize * count} bytes, "
                            f"more than any model needs")
    return obj.attrs[name]


def _attr_list(group, name, file=None):
    """An attribute that Keras may have split into name0, name1, ... (HDF5 caps an
    attribute at 64 kB)."""
    file = file or _File(group.file.filename)
    if name in group.attrs:
        values = list(_attr(file, group, name))
    else:
        values, i = [], 0
        while f"{name}{i}" in group.attrs:
            values += list(_attr(file, group, f"{name}{i}"))
            i += 1
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]


def _h5_json(file, h5, name):
    value = _attr(file, h5, name)
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if not isinstance(value, str) or len(value) > _MAX_JSON_BYTES:
        raise file.fail(f"its {name} attribute is not a JSON string")
    try:
        return json.loads(value)
    except (json.JSONDecodeError, RecursionError) as e:
        raise file.fail(f"its {name} attribute is not valid JSON ({type(e).__name__})") \
            from None


def _open_h5(file):
    """The HDF5 file `file` names, open for reading; errors name the file."""
    h5py = _h5py()
    if not os.path.isfile(file.path):
        raise FileNotFoundError(f"No such file: {file.path!r}")
    try:
        return h5py.File(file.path, "r")
    except OSError as e:
        raise file.fail(f"it is not an HDF5 file ({e})") from None


def _load_h5(file, compile):
    from .saving import _architecture
    with _open_h5(file) as h5:
        keras_config = _h5_json(file, h5, "model_config")
        if not isinstance(keras_config, dict):
            raise file.fail("it has no model_config: a weights-only file loads with "
                            "model.load_weights")
        try:
            config = model_config(keras_config)
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as e:
            raise file.fail(f"model_config: {e}") from None
        except NotImplementedError as e:
            raise file.fail(str(e)) from None
        _planned(file, config)
        model = _architecture(config)
        weights = h5.get("model_weights", h5)
        _assign_h5_weights(file, weights, model)
        training = _h5_json(file, h5, "training_config")
        state = None
        optimizer = h5.get("optimizer_weights")
        if compile and isinstance(training, dict) and optimizer is not None:
            # the weights' order is the file's layer order (Keras's)
            by_name = _layer_vars(model)
            layers = [by_name[n] for n in _attr_list(weights, "layer_names", file)
                      if n in by_name]
            names = _attr_list(optimizer, "weight_names", file)
            state = _optimizer_arrays(file, [(n, optimizer.get(n)) for n in names], layers)
    if compile and isinstance(training, dict):
        training = dict(training)
        training.setdefault("optimizer", training.get("optimizer_config"))
        _compile(file, model, training, state)
    return model


def _assign_h5_weights(file, group, model):
    """The legacy layout: group/<layer name>, its weight_names attribute listing the
    datasets in the layer's weight order; matched to cnnx's layers by name."""
    h5py = _h5py()
    by_name = _layer_vars(model)
    pairs = []
    for name in _attr_list(group, "layer_names", file):
        layer_group = group.get(name)
        if not isinstance(layer_group, h5py.Group):
            raise file.fail(f"layer_names lists {name!r}, which the file does not hold")
        weight_names = _attr_list(layer_group, "weight_names", file)
        if not weight_names:
            continue
        layer = by_name.get(name)
        if layer is None:
            raise file.fail(f"it holds weights for {name!r}, a layer the model does not have")
        pairs += _read_weights(file, _keras_weights(layer, legacy=True),
                               [(f"{name}/{w}", layer_group.get(w)) for w in weight_names],
                               f"{name!r} ({type(layer).__name__})")
    assigned = {id(var) for var, _ in pairs}
    missing = [v for layer in by_name.values() if not hasattr(layer, "layers")
               for v in _keras_weights(layer)
               if not isinstance(v, _Constant) and id(v) not in assigned]
    if missing:
        raise file.fail(f"it has no weights for {len(missing)} of the model's weights "
                        f"(first: {missing[0].name!r})")
    _assign_checked(pairs)


def load_h5_weights(model, path):
    """Keras's weights-only HDF5 (save_weights("w.weights.h5") of Keras 3, or a legacy
    .h5 of weights) into `model`, checked whole before anything is assigned."""
    file = _File(path)
    with _open_h5(file) as h5:
        if "layer_names" in h5.attrs or "layer_names0" in h5.attrs or "model_weights" in h5:
            _assign_h5_weights(file, h5.get("model_weights", h5), model)
            return
        from .functional import Model
        pairs = []
        for path, layer in _weighted_items(model):
            if isinstance(layer, Model):
                continue
            pairs += _read_weights(file, _keras_weights(layer),
                                   _vars_datasets(h5.get(f"{path}/vars"), path),
                                   f"{path} ({type(layer).__name__} {layer.name!r})")
        _assign_checked(pairs)


# ------------------------------------------------------------------------------------
# Writing: files that Keras 3 loads

_KERAS_CLASS = {"Model": "Functional", "Convolution2D": "Conv2D"}


def _keras_object(value, module):
    """A cnnx {"class_name", "config"} as Keras 3 serializes it."""
    if isinstance(value, dict) and "class_name" in value:
        return {"module": module, "class_name": value["class_name"],
                "config": dict(value.get("config") or {}), "registered_name": None}
    return value


def keras_item(item):
    """One cnnx layer (or nested model) config item in Keras 3's schema."""
    kind = item["class_name"]
    if kind in ("Sequential", "Functional", "Model"):
        out = keras_model_config({"class_name": kind, "config": item["config"]})
    else:
        config = dict(item["config"])
        if config.get("trainable") is True:   # the default; some Keras layers (such as
            del config["trainable"]           # SpatialDropout2D) do not take it at all
        for key, value in list(config.items()):
            if key.endswith("_initializer"):
                config[key] = _keras_object(value, "keras.initializers")
            elif key.endswith("_regularizer"):
                config[key] = _keras_object(value, "keras.regularizers")
        out = {"module": "keras.layers", "class_name": _KERAS_CLASS.get(kind, kind),
               "config": config, "registered_name": None}
        if item.get("build_config"):
            out["build_config"] = item["build_config"]
    if "inbound_nodes" in item:
        out["name"] = item["name"]
        out["inbound_nodes"] = [[list(ref) + [{}] for ref in node]
                                for node in item["inbound_nodes"]]
    return out


def keras_model_config(config):
    """A cnnx model config ({"class_name", "config"}) in Keras 3's schema, its layers in
    the order Keras gives them when it rebuilds the graph (see keras_layer_order)."""
    kind = _KERAS_CLASS.get(config["class_name"], config["class_name"])
    inner = dict(config["config"])
    items = inner["layers"]
    if kind == "Functional":
        items = keras_layer_order(inner)
    inner["layers"] = [keras_item(item) for item in items]
    if kind == "Functional":
        return {"module": "keras.src.models.functional", "class_name": "Functional",
                "config": inner, "registered_name": "Functional"}
    return {"module": "keras", "class_name": kind, "config": inner, "registered_name": None}


def keras_layer_order(inner):
    """The layer items of a graph config in the order Keras 3 lists a functional model's
    layers. Keras's weights files follow that order (positionally in legacy .h5 files,
    through the class-name counters in .keras files), so a file Keras is to read lists
    them so. The rule, as Keras's graph mapping applies it: walk depth-first from each
    output through each node's inputs in order, numbering layers when first reached; a
    node's depth is 1 + the greatest depth of the nodes that consume it (outputs: 0), a
    layer's the greatest of its nodes'; layers by decreasing depth, then by number."""
    items = {item["name"]: item for item in inner["layers"]}

    def parents(node):
        name, index = node
        inbound = items[name].get("inbound_nodes") or []
        return [(r[0], r[1]) for r in inbound[index]] if index < len(inbound) else []

    order, first_seen, finished = [], {}, set()
    stack_outputs = [(r[0], r[1]) for r in inner["output_layers"]]
    for output in stack_outputs:
        # Iterative post-order DFS (a deep graph must not hit Python's recursion limit).
        stack = [(output, False)]
        while stack:
            node, expanded = stack.pop()
            if node in finished:
                continue
            if expanded:
                finished.add(node)
                order.append(node)
                continue
            first_seen.setdefault(node[0], len(first_seen))
            stack.append((node, True))
            stack.extend((p, False) for p in reversed(parents(node)))
    node_depth, layer_depth = {}, {}
    for node in reversed(order):
        depth = max(node_depth.setdefault(node, 0), layer_depth.get(node[0], 0))
        layer_depth[node[0]] = node_depth[node] = depth
        for parent in parents(node):
            node_depth[parent] = max(depth + 1, node_depth.get(parent, 0))
    for ref in inner["input_layers"]:   # inputs that no output depends on
        if ref[0] not in layer_depth:
            layer_depth[ref[0]], first_seen[ref[0]] = 0, -1
    names = sorted(layer_depth, key=lambda n: (-layer_depth[n], first_seen[n]))
    return [items[n] for n in names]


def _keras_layers(model):
    """The model's layers in the order Keras 3 lists them (a Sequential: without its
    InputLayer)."""
    from .sequential import Sequential
    if isinstance(model, Sequential):
        return [layer for layer in model.layers if not isinstance(layer, InputLayer)]
    by_name = {layer.name: layer for layer in model.layers}
    return [by_name[item["name"]] for item in keras_layer_order(model.get_config())]


def _weighted_items(model):
    """(Keras's weights path, cnnx layer) for every layer of the model, nested models'
    layers included (a nested model itself holds no weights of its own)."""
    from .functional import Model

    def walk(m, prefix):
        used = {}
        for layer in _keras_layers(m):
            kind = "Functional" if type(layer) is Model else _KERAS_CLASS.get(
                type(layer).__name__, type(layer).__name__)
            key = keras_snake_case(kind)
            count = used.get(key)
            used[key] = 0 if count is None else count + 1
            if count is not None:
                key = f"{key}_{count + 1}"
            yield f"{prefix}/{key}", layer
            if isinstance(layer, Model):
                yield from walk(layer, f"{prefix}/{key}/layers")
    yield from walk(model, "layers")


def write_weights_h5(h5, model):
    """Keras 3's weights layout (model.weights.h5, or save_weights's .weights.h5)."""
    from .functional import Model
    for path, layer in _weighted_items(model):
        group = h5.require_group(f"{path}/vars")
        if not isinstance(layer, Model):
            for i, var in enumerate(_keras_weights(layer)):
                group.create_dataset(str(i), data=var.value)
    h5.require_group("vars")


def keras_zip_members(model, cnnx_config):
    """The members of a .keras file that Keras 3 reads: config.json (Keras's schema, with
    the compile configuration), metadata.json, model.weights.h5 (needs h5py)."""
    h5py = _h5py()
    import datetime

    from .. import __version__
    config = keras_model_config(cnnx_config)
    compile_config = cnnx_config.get("compile_config")
    if compile_config:
        config["compile_config"] = {
            "optimizer": _keras_object(compile_config["optimizer"], "keras.optimizers"),
            "loss": _keras_losses(compile_config.get("loss")),
            "loss_weights": compile_config.get("loss_weights"),
            "metrics": compile_config.get("metrics"),
            "weighted_metrics": None, "run_eagerly": False, "steps_per_execution": 1,
            "jit_compile": False}
    buf = io.BytesIO()
    with h5py.File(buf, "w") as h5:
        write_weights_h5(h5, model)
        _write_optimizer(h5, model)
    metadata = {"keras_version": "3.0.0",
                "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S"),
                "written_by": f"cnnx {__version__}"}
    return {"config.json": json.dumps(config), "metadata.json": json.dumps(metadata),
            "model.weights.h5": buf.getvalue()}


def _keras_trainable(model):
    """The trainable weights in Keras's order (its optimizer's variables follow it)."""
    from .functional import Model
    out = []
    for layer in _keras_layers(model):
        if isinstance(layer, Model):
            out += _keras_trainable(layer) if layer.trainable else []
        elif layer.trainable:
            out += layer.trainable_weights
    return out


def _optimizer_variables(model):
    """Keras's optimizer variables, [(name, array)]: the iteration count, the learning
    rate, then each trainable weight's slots, for the optimizers whose state means the
    same in both (SGD, Adam, AdamW) once the optimizer has taken a step; else [], and
    Keras starts afresh."""
    opt = getattr(model, "optimizer", None) if model.compiled else None
    count = None if opt is None else _slot_count(type(opt).__name__,
                                                 getattr(opt, "momentum", 0))
    trainable = _keras_trainable(model) if count else []
    if not trainable or any(len(opt._slots.get(id(v), [])) != count for v in trainable):
        return []
    out = [(f"{opt.name}/iteration", np.int64(opt.iterations)),
           (f"{opt.name}/learning_rate", np.float32(opt.learning_rate))]
    for var in trainable:
        for j, slot in enumerate(opt._slots[id(var)]):
            out.append((f"{opt.name}/{var.name}/{j}", slot.reshape(var.shape)))
    return out


def _write_optimizer(h5, model):
    """The optimizer's variables as a .keras file's model.weights.h5 holds them."""
    variables = _optimizer_variables(model)
    if variables:
        group = h5.require_group("optimizer/vars")
        for k, (_, value) in enumerate(variables):
            group.create_dataset(str(k), data=value)


def _keras_losses(loss):
    if isinstance(loss, dict) and "class_name" not in loss:
        return {k: _keras_losses(v) for k, v in loss.items()}
    if isinstance(loss, list):
        return [_keras_losses(v) for v in loss]
    return _keras_object(loss, "keras.losses")


def write_legacy_h5(f, model, cnnx_config):
    """Keras's legacy HDF5 model file (model.save("m.h5")): the model_config and
    training_config attributes, and model_weights/<layer>/<layer>/<weight> datasets listed
    by layer_names and weight_names."""
    h5py = _h5py()
    config = keras_model_config(cnnx_config)
    with h5py.File(f, "w") as h5:
        h5.attrs["backend"] = "cnnx"
        h5.attrs["keras_version"] = "3.0.0"
        h5.attrs["model_config"] = json.dumps(config)
        compile_config = cnnx_config.get("compile_config")
        if compile_config:
            h5.attrs["training_config"] = json.dumps({
                "loss": _keras_losses(compile_config.get("loss")),
                "metrics": compile_config.get("metrics"),
                "loss_weights": compile_config.get("loss_weights"),
                "optimizer_config": compile_config["optimizer"]})
        group = h5.create_group("model_weights")
        write_legacy_weights(group, model)
        variables = _optimizer_variables(model)
        if variables:   # what Keras's legacy loader gives optimizer.set_weights
            opt_group = h5.create_group("optimizer_weights")
            _save_names(opt_group, "weight_names", [name for name, _ in variables])
            for name, value in variables:
                opt_group.create_dataset(name, data=value)


def write_legacy_weights(group, model):
    layers = _keras_layers(model)
    _save_names(group, "layer_names", [layer.name for layer in layers])
    group.attrs["backend"] = "cnnx"
    group.attrs["keras_version"] = "3.0.0"
    for layer in layers:
        sub = group.create_group(layer.name)
        weights = _keras_weights(layer, legacy=True)
        _save_names(sub, "weight_names", [var.name for var in weights])
        for var in weights:
            sub.create_dataset(var.name, data=var.value)


_HDF5_ATTR_LIMIT = 64512   # bytes: HDF5's object header limit, as Keras counts it


def _save_names(group, name, values):
    """A list of names as an attribute, split into name0, name1, ... as Keras splits it
    when one attribute would pass HDF5's 64 kB limit (read back by _attr_list)."""
    data = np.array([v.encode() for v in values])
    chunks = 1
    while data.nbytes / chunks > _HDF5_ATTR_LIMIT:
        chunks += 1
    if chunks == 1:
        group.attrs[name] = data
        return
    for i, part in enumerate(np.array_split(data, chunks)):
        group.attrs[f"{name}{i}"] = part


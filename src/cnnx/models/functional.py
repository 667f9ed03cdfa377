"""Model: the functional API. A model is a graph of nodes (one per call of a layer on
symbolic tensors), run in topological order through a compiled plan (plan.py).

    inputs = cnnx.Input((32, 32, 3))
    h = layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    h = layers.add([h, layers.Conv2D(16, 1)(inputs)])          # a residual branch
    outputs = layers.Dense(10, activation="softmax")(layers.Flatten()(h))
    model = cnnx.Model(inputs, outputs)

A model is a layer: it can be called on tensors and put inside another model (its nodes
are inlined into the outer plan), and `trainable = False` freezes all of it. Sequential
(sequential.py) builds the same graph from its list of layers.
"""
import json
import threading
import warnings

import numpy as np

from ..layers import InputLayer, KerasTensor, Layer, deserialize, serialize
from ..layers.base import REGISTRY, _unique_name
from . import _guard
from .plan import Plan
from .trainer import Trainer

__all__ = ["Model", "Functional"]

_MAX_PLANS = 8      # batch shapes with a compiled plan kept (fit has two: full and last)
_MAX_IDLE = 4       # idle inference plans kept per shape (one per concurrent caller)


@REGISTRY.register(class_names=("Functional",))
class Model(Trainer, Layer):
    """Model(inputs, outputs): the layers that compute `outputs` from `inputs` (each a
    tensor from cnnx.Input or a layer's output, or a list of them), with compile, fit,
    evaluate, predict, save and summary.

    Examples
    --------
    A residual connection: the input is added to a Dense layer's output.

    >>> inputs = cnnx.Input((16,))
    >>> h = cnnx.layers.Dense(16, activation="relu")(inputs)
    >>> outputs = cnnx.layers.Dense(3, activation="softmax")(cnnx.layers.add([inputs, h]))
    >>> model = cnnx.Model(inputs, outputs)
    >>> model.count_params()
    323
    >>> model.predict(np.ones((2, 16), np.float32), verbose=0).shape
    (2, 3)
    """

    def __init__(self, inputs=None, outputs=None, name=None, trainable=True, **kwargs):
        for old, new in (("input", "inputs"), ("output", "outputs")):   # Keras 1
            if old in kwargs:
                warnings.warn(f"Model: `{old}` is the Keras 1 spelling; use `{new}`",
                              DeprecationWarning, stacklevel=3)
                if (inputs if new == "inputs" else outputs) is not None:
                    raise TypeError(f"Model: got both `{old}` and `{new}`")
                value = kwargs.pop(old)
                inputs, outputs = (value, outputs) if new == "inputs" else (inputs, value)
        if kwargs:
            raise TypeError(f"Model: unexpected keyword argument(s) {sorted(kwargs)}")
        if inputs is None or outputs is None:
            raise TypeError("Model: pass inputs= and outputs= (the functional API); "
                            "subclassed models are not supported")
        self._init_model(name or _unique_name("functional"), trainable)
        self._init_graph(inputs, outputs)

    def _init_model(self, name, trainable):
        self._layers = []
        Layer.__init__(self, name=name, trainable=trainable)
        self._init_trainer()
        self._plans = {}
        self._plans_lock = threading.Lock()
        self.inputs, self.outputs, self._nodes = [], [], []

    def _init_graph(self, inputs, outputs):
        self.inputs = _tensors(inputs, "inputs")
        self.outputs = _tensors(outputs, "outputs")
        self._nodes = _topological(self.inputs, self.outputs)
        layers, seen = [], set()
        for t in self.inputs:
            if t.node is not None and isinstance(t.node.layer, InputLayer):
                layers.append(t.node.layer)
                seen.add(id(t.node.layer))
        for node in self._nodes:
            if id(node.layer) not in seen:
                seen.add(id(node.layer))
                layers.append(node.layer)
        used = {id(t) for n in self._nodes for t in n.inputs} | {id(t) for t in self.outputs}
        for t in self.inputs:
            if id(t) not in used:
                warnings.warn(f"Model {self.name!r}: input {t.name!r} is not used to "
                              f"compute any output", UserWarning, stacklevel=3)
        self._layers = layers
        self._graph_changed()

    def _graph_changed(self):
        """After the graph is (re)built: shapes, names, dtype; plans recompiled."""
        shapes = [t.shape for t in self.inputs]
        self.input_shape = shapes[0] if len(shapes) == 1 else shapes
        shapes = [t.shape for t in self.outputs]
        self.output_shape = shapes[0] if len(shapes) == 1 else shapes
        self.built = bool(self.inputs)
        self._in_dtypes = self._input_dtypes() if self.built else []
        if self.built:
            self.dtype = np.dtype(self._in_dtypes[0])
        self._plans_clear()
        self._losses = None

    # -- structure -----------------------------------------------------------------
    @property
    def layers(self):
        return list(self._layers)

    def _weighted_layers(self):
        return [layer for layer in self._layers if not isinstance(layer, InputLayer)]

    @property
    def input(self):
        return self.inputs[0] if len(self.inputs) == 1 else list(self.inputs)

    @property
    def output(self):
        return self.outputs[0] if len(self.outputs) == 1 else list(self.outputs)

    @property
    def input_names(self):
        return [t.node.layer.name if t.node is not None else t.name for t in self.inputs]

    @property
    def output_names(self):
        names = []
        for t in self.outputs:
            name = t.node.layer.name if t.node is not None else t.name
            names.append(name if name not in names else f"{name}_{len(names)}")
        return names

    def _input_owner(self, name):
        return f"input {name!r} of model {self.name!r}"

    def _output_shapes(self):
        return [t.shape for t in self.outputs]

    def _dtype(self):
        return self.dtype

    def _input_dtypes(self):
        """Per input, the dtype its first consumer computes in (a float64 network fed
        by a float32 Input computes in float64, as its weights are)."""
        out = []
        for t in self.inputs:
            consumer = next((n.layer for n in self._nodes if any(i is t for i in n.inputs)),
                            None)
            out.append(consumer.dtype if consumer is not None else t.dtype)
        return out

    @property
    def trainable(self):
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        """As in Keras 3, (un)freezing a model (un)freezes each of its layers."""
        self._trainable = bool(value)
        for layer in getattr(self, "_layers", []):
            layer.trainable = self._trainable

    def _unique(self, lists):
        seen, out = set(), []
        for w in (w for ws in lists for w in ws):
            if id(w) not in seen:
                seen.add(id(w))
                out.append(w)
        return out

    @property
    def weights(self):
        return self._unique(layer.weights for layer in self._weighted_layers())

    @property
    def trainable_weights(self):
        if not self.trainable:
            return []
        return self._unique(layer.trainable_weights for layer in self._weighted_layers())

    @property
    def non_trainable_weights(self):
        trainable = {id(w) for w in self.trainable_weights}
        return [w for w in self.weights if id(w) not in trainable]

    def get_weights(self) -> list[np.ndarray]:
        return [w.numpy() for w in self.weights]

    def set_weights(self, weights):
        weights = list(weights)
        own = self.weights
        if len(weights) != len(own):
            raise ValueError(f"{type(self).__name__} {self.name!r} has {len(own)} weight "
                             f"arrays, received {len(weights)}")
        # Every array is checked before any is assigned: a refused call changes nothing.
        checked = [var.checked(value, "set_weights") for var, value in zip(own, weights)]
        with _guard.guard(self).writing():
            for var, value in zip(own, checked):
                var.assign(value)

    def count_params(self) -> int:
        return int(sum(w.value.size for w in self.weights))

    def regularization_loss(self):
        return sum(layer.regularization_loss() for layer in self._weighted_layers())

    def get_layer(self, name=None, index=None):
        if index is not None:
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"No such layer: {name!r}. Existing layers are: "
                         f"{[layer.name for layer in self.layers]}")

    # -- running -------------------------------------------------------------------
    def __getstate__(self):   # copy.deepcopy: compiled plans and their lock are not state
        state = dict(self.__dict__)
        state.pop("_plans_lock")
        state["_plans"] = {}
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._plans_lock = threading.Lock()

    def _plans_clear(self):
        with self._plans_lock:
            self._plans = {}

    def _training_plan(self, xs, variables):
        key = (True, tuple(a.shape for a in xs), tuple(map(id, variables)))
        plan = self._plans.get(key)
        if plan is None:
            with self._plans_lock:
                if len(self._plans) >= _MAX_PLANS:
                    self._plans.clear()
                plan = self._plans[key] = Plan(self, True, variables, self._losses)
        return plan

    def _run_inference(self, xs, training=False, losses=None):
        """The outputs for the checked inputs xs, as fresh arrays (and the activity
        regularizers' penalty appended to `losses`, when given). Concurrent callers each
        take an idle plan (or compile one): no two share buffers."""
        key = ("inference", bool(training), tuple([a.shape for a in xs]))
        guard = _guard.guard(self)
        guard.enter_reading()    # (not a `with`: one image through LeNet is 25 us)
        try:
            with self._plans_lock:
                idle = self._plans.get(key)
                plan = idle.pop() if idle else None
            if plan is None:
                plan = Plan(self, False, fold=not training)
            outputs = [np.array(o, copy=True) for o in plan.forward(xs, training)]
            if losses is not None:
                losses.append(plan.activity_loss)
            with self._plans_lock:
                if len(self._plans) >= _MAX_PLANS and key not in self._plans:
                    self._plans.clear()
                idle = self._plans.setdefault(key, [])
                if len(idle) < _MAX_IDLE:
                    idle.append(plan)
        finally:
            guard.exit_reading()
        return outputs

    def __call__(self, inputs, training=False):
        """On symbolic tensors, a node of an outer graph (a model is a layer). On arrays,
        the outputs (in training mode if asked: Dropout active, batch statistics)."""
        if isinstance(inputs, KerasTensor) or (
                isinstance(inputs, (list, tuple)) and inputs
                and all(isinstance(t, KerasTensor) for t in inputs)):
            return self._link(inputs)
        self._require_built_for(inputs, "__call__")
        xs = self._check_x(inputs, "__call__")
        return self._structure(self._run_inference(xs, bool(training)))

    def _build_from_array(self, x, where):  # noqa: ARG002 (Sequential's reads x)
        raise ValueError(f"{where}: model {self.name!r} has no graph yet")

    def build(self, input_shape=None):  # noqa: ARG002 (a functional model is built)
        """A functional model is built when it is made."""

    def _build_once(self, input_shape):  # noqa: ARG002
        return self.output_shape

    # -- inspecting ----------------------------------------------------------------
    def _node_index(self):
        """Each node of this model -> its index among its layer's nodes in this model."""
        own = {id(n) for n in self._nodes}
        index = {}
        for layer in self._layers:
            k = 0
            for node in layer._inbound_nodes:
                if id(node) in own or (isinstance(layer, InputLayer) and not node.inputs):
                    index[id(node)] = k
                    k += 1
        return index

    def _is_chain(self):
        nodes = [n for n in self._nodes if n.inputs]
        if len(self.inputs) != 1 or len(self.outputs) != 1:
            return False
        previous = self.inputs[0]
        for node in nodes:
            if len(node.inputs) != 1 or node.inputs[0] is not previous \
                    or len(node.outputs) != 1:
                return False
            previous = node.outputs[0]
        return previous is self.outputs[0]

    def summary(self, line_length=None, positions=None, print_fn=None) -> None:
        """A Keras 3-style table: layer (type), output shape, parameters (and, for a
        graph that is not a chain, what each layer is connected to); then totals."""
        from .summary import print_summary
        print_summary(self, line_length, positions, print_fn)

    # -- config and saving -------------------------------------------------------------
    def get_config(self):
        """The graph as JSON: every layer's config with the nodes that call it (each
        node a list of [layer name, node index, tensor index] per input), and the
        model's input and output tensors in the same form."""
        index = self._node_index()

        def ref(t):
            return [t.node.layer.name, index[id(t.node)], t.index]

        layers = []
        for layer in self._layers:
            nodes = [n for n in layer._inbound_nodes if id(n) in index and n.inputs]
            item = serialize(layer)
            item["name"] = layer.name
            item["inbound_nodes"] = [[ref(t) for t in n.inputs] for n in nodes]
            layers.append(item)
        return {"name": self.name, "trainable": self.trainable, "layers": layers,
                "input_layers": [ref(t) for t in self.inputs],
                "output_layers": [ref(t) for t in self.outputs]}

    @classmethod
    def from_config(cls, config, custom_objects=None):  # noqa: ARG003 (Keras's signature)
        """Rebuild the graph: make every layer, then call each on its inputs once they
        exist, node by node in each layer's order."""
        created, pending, tensors = {}, {}, {}
        for item in config["layers"]:
            layer = deserialize(item)
            name = item.get("name", layer.name)
            if name in created:
                raise ValueError(f"the config has two layers named {name!r}")
            created[name] = layer
            if isinstance(layer, InputLayer):
                tensors[(name, 0)] = [layer._symbolic()]
            pending[name] = list(item.get("inbound_nodes") or [])

        def find(r):
            if not (isinstance(r, list) and len(r) == 3 and isinstance(r[0], str)):
                raise ValueError(f"a tensor reference must be [layer, node, tensor], "
                                 f"received {r!r}")
            outs = tensors.get((r[0], r[1]))
            return None if outs is None else outs[r[2]]

        progress = True
        while progress:
            progress = False
            for name, nodes in pending.items():
                while nodes:
                    inputs = [find(r) for r in nodes[0]]
                    if any(t is None for t in inputs):
                        break
                    layer = created[name]
                    out = layer(inputs[0] if len(inputs) == 1 else inputs)
                    k = sum(1 for key in tensors if key[0] == name)
                    tensors[(name, k)] = out if isinstance(out, list) else [out]
                    nodes.pop(0)
                    progress = True
        stuck = sorted(name for name, nodes in pending.items() if nodes)
        if stuck:
            raise ValueError(f"the config's graph cannot be built: the inputs of "
                             f"{stuck} are never computed")
        inputs = [find(r) for r in config["input_layers"]]
        outputs = [find(r) for r in config["output_layers"]]
        if any(t is None for t in inputs + outputs):
            raise ValueError("the config's input_layers or output_layers name tensors "
                             "that the graph does not compute")
        return cls(inputs if len(inputs) > 1 else inputs[0],
                   outputs if len(outputs) > 1 else outputs[0],
                   name=config.get("name"), trainable=config.get("trainable", True))

    def to_json(self, **kwargs) -> str:
        """The architecture as a JSON string (Keras's model.to_json); read it back with
        cnnx.models.model_from_json."""
        return json.dumps({"module": "cnnx.models", "class_name": type(self).__name__,
                           "config": self.get_config()}, **kwargs)

    def _build_config(self):
        return None

    def compile_config(self):
        if not self.compiled:
            return None
        from .. import losses, optimizers
        loss, metrics, loss_weights = self._compile_args
        per_output = isinstance(loss, (dict, list, tuple))

        def name(spec):
            if isinstance(spec, dict):
                return {k: name(v) for k, v in spec.items()}
            if isinstance(spec, (list, tuple)):
                return [name(v) for v in spec]
            if spec is None or isinstance(spec, str):
                return spec
            return type(spec).__name__

        return {"optimizer": optimizers.serialize(self.optimizer),
                "loss": name(loss) if per_output else losses.serialize(self._losses[0]
                                                                       or losses.get(loss)),
                "metrics": name(metrics) if metrics is not None else [],
                "loss_weights": loss_weights}

    def export(self, filepath, format="onnx", **kwargs):  # noqa: A002 (Keras's name)
        """Keras 3's model.export: format "onnx" writes cnnx.export.to_onnx's graph
        (kwargs: input_layout, opset)."""
        if format != "onnx":
            raise NotImplementedError(f"export: format {format!r} is not implemented in "
                                      f"cnnx; use 'onnx'")
        from ..export import to_onnx
        return to_onnx(self, filepath, **kwargs)

    def save(self, filepath, overwrite=True) -> None:
        from .saving import save_model
        save_model(self, filepath, overwrite=overwrite)

    def save_weights(self, filepath, overwrite=True) -> None:
        from .saving import save_weights
        save_weights(self, filepath, overwrite=overwrite)

    def load_weights(self, filepath) -> None:
        from .saving import load_weights
        load_weights(self, filepath)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}, {len(self._layers)} layers>"


Functional = Model


def _tensors(tensors, what):
    items = list(tensors) if isinstance(tensors, (list, tuple)) else [tensors]
    if not items:
        raise ValueError(f"Model: `{what}` is empty")
    for t in items:
        if not isinstance(t, KerasTensor):
            raise TypeError(f"Model: `{what}` must be cnnx.Input(...) or a layer's output "
                            f"(or a list of them), received {type(t).__name__}")
    return items


def _topological(inputs, outputs):
    """The nodes that compute outputs from inputs, each after the nodes it reads
    (iterative depth-first search: deep networks do not hit the recursion limit)."""
    start = {id(t) for t in inputs}
    order, done = [], set()
    for out in outputs:
        if id(out) in start:
            continue
        stack = [(out.node, False)]
        while stack:
            node, expanded = stack.pop()
            if node is None:
                raise ValueError(f"Model: `outputs` ({out.name}) is not computed from "
                                 f"`inputs` ({', '.join(t.name for t in inputs)})")
            if id(node) in done:
                continue
            if expanded:
                done.add(id(node))
                order.append(node)
                continue
            if not node.inputs:     # an InputLayer that is not among the inputs
                raise ValueError(f"Model: `outputs` ({out.name}) is not computed from "
                                 f"`inputs` ({', '.join(t.name for t in inputs)}): it "
                                 f"needs input {node.layer.name!r}")
            stack.append((node, True))
            for t in reversed(node.inputs):
                if id(t) not in start and id(t.node) not in done:
                    stack.append((t.node, False))
    return [n for t in inputs if t.node is not None and not t.node.inputs
            for n in [t.node]] + order

"""Sequential: a stack of layers. It builds the same graph as the functional API (one
node per layer, each on the previous layer's output), once its input shape is known."""
import warnings

import numpy as np

from ..layers import InputLayer, KerasTensor, Layer, deserialize, serialize
from ..layers.base import REGISTRY, _unique_name
from .functional import Model, _topological

__all__ = ["Sequential"]


@REGISTRY.register()
class Sequential(Model):
    """Sequential([layers]): each layer applied to the previous one's output. A layer
    may itself be a model (a pretrained base, say).

    Start the list with `cnnx.Input(shape)` (or give the first layer `input_shape=`) to
    build the model at once; otherwise it is built on its first batch.

    Examples
    --------
    A two-layer classifier learns whether four numbers sum to more than zero:

    >>> cnnx.utils.set_random_seed(0)
    >>> model = cnnx.Sequential([cnnx.Input((4,)),
    ...                          cnnx.layers.Dense(8, activation="relu"),
    ...                          cnnx.layers.Dense(1, activation="sigmoid")])
    >>> model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    >>> x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    >>> y = (x.sum(axis=1) > 0).astype("float32")
    >>> history = model.fit(x, y, epochs=20, verbose=0)
    >>> sorted(history.history), history.history["loss"][-1] < history.history["loss"][0]
    (['accuracy', 'loss'], True)
    >>> model.predict(x[:3], verbose=0).shape
    (3, 1)
    """

    def __init__(self, layers=None, name=None, trainable=True):
        self._input_layer = None
        self._init_model(name or _unique_name("sequential"), trainable)
        for layer in layers or []:
            self.add(layer)

    # -- structure -----------------------------------------------------------------
    def add(self, layer) -> None:
        if isinstance(layer, KerasTensor):  # keras.Input(...) in a Sequential list
            if layer.node is None or not isinstance(layer.node.layer, InputLayer):
                raise TypeError(f"Sequential {self.name!r}: only an Input tensor may be "
                                f"added, received the output of "
                                f"{layer.node.layer.name if layer.node else layer.name!r}")
            layer = layer.node.layer
        if isinstance(layer, InputLayer):
            if self._layers or self._input_layer is not None:
                raise ValueError(f"Sequential {self.name!r}: an Input/InputLayer must come "
                                 f"first, and only once")
            self._input_layer = layer
            return
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential {self.name!r}: add() expects a cnnx layer or "
                            f"model, received {type(layer).__name__}")
        if any(existing.name == layer.name for existing in self._layers):
            raise ValueError(f"Sequential {self.name!r}: a layer named {layer.name!r} is "
                             f"already in the model; layer names must be unique")
        self._layers.append(layer)
        shape = self._declared_input_shape()
        if shape is not None:
            try:
                if self.outputs and len(self._layers) > 1:
                    self._extend_graph(layer)   # one node more: adding n layers is O(n)
                else:
                    self._build_graph(shape)
            except Exception:
                self._layers.pop()    # a refused layer leaves the model as it was
                if self._layers:
                    self._build_graph(shape)
                raise

    def pop(self):
        if not self._layers:
            raise TypeError(f"Sequential {self.name!r}: there are no layers to pop")
        layer = self._layers.pop()
        self._drop_nodes()
        shape = self._declared_input_shape()
        if self._layers and shape is not None:
            self._build_graph(shape)
        else:
            self.inputs, self.outputs, self._nodes = [], [], []
            self.built = False
            self._plans_clear()
        return layer

    def _declared_input_shape(self):
        if self._input_layer is not None:
            return self._input_layer.output_shape
        if not self._layers:
            return None
        first = self._layers[0]
        if first._input_shape_arg is not None:
            return (None,) + first._input_shape_arg
        if first.built and first.input_shape is not None:
            return first.input_shape
        return None

    def _drop_nodes(self):
        """Forget the nodes this model made (before it makes new ones)."""
        own = {id(n) for n in self._nodes if n.inputs}
        for layer in self._layers + [n.layer for n in self._nodes]:
            layer._inbound_nodes[:] = [n for n in layer._inbound_nodes if id(n) not in own]

    def _extend_graph(self, layer):
        """Call the newly added layer on the current output."""
        t = self.outputs[0]
        self._check_fits(layer, t)
        out = layer(t)
        if not isinstance(out, KerasTensor):
            raise ValueError(f"Sequential {self.name!r}: layer {layer.name!r} has "
                             f"several outputs; a Sequential layer must have one")
        self.outputs = [out]
        self._nodes = self._nodes + [out.node]
        self._graph_changed()

    @staticmethod
    def _check_fits(layer, t):
        if layer.built and layer.input_shape is not None and isinstance(
                layer.input_shape, tuple) and tuple(layer.input_shape[1:]) != \
                tuple(t.shape[1:]):
            raise ValueError(f"Layer {layer.name!r} was built for input shape "
                             f"{layer.input_shape} but receives {t.shape}")

    def _build_graph(self, input_shape):
        """Call each layer on the previous one's symbolic output."""
        shape = tuple(input_shape)
        if self._input_layer is None:
            self._input_layer = InputLayer(shape=shape[1:], name=f"{self.name}_input",
                                           dtype=self._layers[0].dtype)
        self._drop_nodes()
        t = self._input_layer._symbolic()
        for layer in self._layers:
            self._check_fits(layer, t)
            t = layer(t)
            if not isinstance(t, KerasTensor):
                raise ValueError(f"Sequential {self.name!r}: layer {layer.name!r} has "
                                 f"several outputs; a Sequential layer must have one")
        self.inputs, self.outputs = [self._input_layer._symbolic()], [t]
        self._nodes = _topological(self.inputs, self.outputs)
        self._graph_changed()

    def build(self, input_shape=None):
        shape = input_shape if input_shape is not None else self._declared_input_shape()
        if shape is None:
            raise ValueError(f"Sequential {self.name!r}: the input shape is unknown; pass "
                             f"an Input, input_shape= to the first layer, or call build()")
        if not self._layers:
            raise ValueError(f"Sequential {self.name!r} has no layers")
        self._build_graph((None,) + tuple(shape)[1:])

    def _build_once(self, input_shape):
        if not self.built:
            self.build(input_shape)
        return self.output_shape

    def _build_from_array(self, x, where):
        if not self._layers:
            raise ValueError(f"Sequential {self.name!r} has no layers")
        x = np.asarray(x) if not isinstance(x, (dict, list, tuple)) else None
        if x is None or x.ndim == 0:
            raise ValueError(f"{where}: model {self.name!r} is not built and its input "
                             f"shape cannot be read from x; give it an Input")
        shape = self._declared_input_shape()
        self.build(shape if shape is not None else (None,) + x.shape[1:])

    def _input_owner(self, name):  # noqa: ARG002
        return f"layer {self._layers[0].name!r}"

    # -- Keras 2 --------------------------------------------------------------------
    def predict_proba(self, x, batch_size=32, verbose=0):
        """Keras 2's Sequential.predict_proba (removed in Keras 2.6): predict."""
        warnings.warn("predict_proba is Keras 2's (removed in 2.6); use predict",
                      DeprecationWarning, stacklevel=2)
        return self.predict(x, batch_size=batch_size, verbose=verbose)

    def predict_classes(self, x, batch_size=32, verbose=0):
        """Keras 2's Sequential.predict_classes (removed in Keras 2.6): the argmax of
        predict over the last axis, or predict > 0.5 for a single output unit."""
        warnings.warn("predict_classes is Keras 2's (removed in 2.6); use "
                      "np.argmax(model.predict(x), axis=-1), or (model.predict(x) > 0.5) "
                      "for one output", DeprecationWarning, stacklevel=2)
        p = self.predict(x, batch_size=batch_size, verbose=verbose)
        if p.shape[-1] > 1:
            return p.argmax(axis=-1)
        return (p > 0.5).astype(np.int32)

    # -- config ----------------------------------------------------------------------
    def get_config(self):
        layers = ([serialize(self._input_layer)] if self._input_layer is not None else [])
        layers += [serialize(layer) for layer in self._layers]
        return {"name": self.name, "trainable": self.trainable, "layers": layers}

    @classmethod
    def from_config(cls, config, custom_objects=None):  # noqa: ARG003 (Keras's signature)
        model = cls(name=config.get("name"), trainable=config.get("trainable", True))
        for layer_config in config.get("layers", []):
            model.add(deserialize(layer_config))
        return model

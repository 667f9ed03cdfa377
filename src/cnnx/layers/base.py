"""The Layer life, as in Keras 3: __init__ validates, build(input_shape) creates the
weights, call computes; plus backward, which cnnx adds: given dL/d(output) it returns
dL/d(input) and leaves each trainable weight's gradient in `variable.grad`.

Layers never loop over samples or pixels: they call cnnx.ops. The forward of a training
step keeps what its backward needs, in buffers kept per batch shape.
"""
import contextlib
import contextvars
import functools
import inspect
import re
import threading
import warnings

import numpy as np

from .. import initializers, regularizers
from .._registry import Registry

__all__ = ["Variable", "Layer", "KerasTensor", "planned_weights"]

# Every layer class by name: what deserialize and load_model accept. Filled by
# @REGISTRY.register() where each class is defined.
REGISTRY = Registry("layer")

_planning = contextvars.ContextVar("cnnx_planned_weights", default=False)


@contextlib.contextmanager
def planned_weights():
    """Within the block, layers that build give their weights shapes but no memory: each
    value is a read-only view of one zero broadcast to the shape. The loader builds a
    file's architecture this way first, to learn what its weights will take before it
    allocates any of them."""
    token = _planning.set(True)
    try:
        yield
    finally:
        _planning.reset(token)

_name_counts = {}


def _unique_name(base):
    n = _name_counts.get(base, 0)
    _name_counts[base] = n + 1
    return base if n == 0 else f"{base}_{n}"


def clear_session():
    """Restart automatic layer names (conv2d, conv2d_1, ...) from scratch."""
    _name_counts.clear()


def snake_case(name):
    """Keras's rule: Conv2D -> conv2d, MaxPooling2D -> max_pooling2d."""
    name = re.sub(r"(.)([A-Z][a-z0-9]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


class Variable:
    """A weight: a float array updated in place by the optimizer."""

    def __init__(self, value, name, trainable=True, regularizer=None):
        # A planned weight (see planned_weights) keeps its memoryless broadcast view.
        self.value = value if _planning.get() else np.ascontiguousarray(value)
        self.name = name
        self.trainable = trainable
        self.regularizer = regularizer
        self.grad = None

    @property
    def shape(self):
        return self.value.shape

    @property
    def dtype(self):
        return self.value.dtype

    def numpy(self):
        return self.value.copy()

    def checked(self, value, where="assign"):
        """value as this variable's dtype and shape, or a clear error (nothing assigned)."""
        try:
            array = np.asarray(value, dtype=self.value.dtype)
        except (TypeError, ValueError) as e:
            raise TypeError(f"{where}: variable {self.name!r} takes {self.value.dtype} "
                            f"numbers, received {type(value).__name__} ({e})") from None
        if array.shape != self.value.shape:
            raise ValueError(f"{where}: variable {self.name!r} has shape "
                             f"{self.value.shape}, received shape {array.shape}")
        return array

    def assign(self, value):
        self.value[...] = self.checked(value)

    def __array__(self, dtype=None, copy=None):
        return self.value if dtype is None else self.value.astype(dtype)

    def __repr__(self):
        return f"<Variable {self.name} shape={self.shape} dtype={self.dtype}>"


class KerasTensor:
    """A symbolic tensor of the functional API: a shape (batch as None), and the layer
    and input that produce it, so that Model(inputs, outputs) can find its layers."""

    def __init__(self, shape, dtype="float32", layer=None, parent=None, name=None):
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self._layer = layer
        self._parent = parent
        self.name = name or (layer.name if layer is not None else "tensor")

    @property
    def ndim(self):
        return len(self.shape)

    def __repr__(self):
        return f"<KerasTensor shape={self.shape}, dtype={self.dtype.name}, name={self.name}>"


class Layer:
    """Base of all layers. Subclasses implement build, call, backward,
    compute_output_shape and get_config."""

    # Keras 2 read a positional int at this index of the constructor as something else:
    # (index, what Keras 3 reads it as, what Keras 2 read it as). Warned about, not changed.
    _keras2_positional = None
    # Constructor arguments that only translate Keras 1 spellings: not part of the config.
    _legacy_arguments = ()

    def __init_subclass__(cls, **kwargs):
        """Every layer's constructor accepts Keras 1/2 argument names (output_dim,
        border_mode, nb_filter, subsample, init, W_regularizer, ...) with a warning that
        names the Keras 3 one."""
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None:
            return

        signature = inspect.signature(init)

        @functools.wraps(init)
        def __init__(self, *args, **kw):
            from .._compat import keras3_arguments
            if cls._keras2_positional and type(self) is cls:
                index, now, then = cls._keras2_positional
                if len(args) > index and isinstance(args[index], int) \
                        and not isinstance(args[index], bool):
                    warnings.warn(f"{cls.__name__}: the positional int {args[index]} is "
                                  f"`{now}` in Keras 3; Keras 2 read it as {then}. Pass "
                                  f"it by name to silence this.", UserWarning, stacklevel=2)
            positional = signature.bind_partial(self, *args).arguments   # named by position
            init(self, *args, **keras3_arguments(cls.__name__, kw, stacklevel=3,
                                                 given=positional))

        cls.__init__ = __init__

    def __init__(self, name=None, trainable=True, dtype=None, input_shape=None,
                 batch_input_shape=None, input_dim=None, **kwargs):
        if kwargs:
            raise TypeError(f"{type(self).__name__}: unexpected keyword argument(s) "
                            f"{sorted(kwargs)}")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"{type(self).__name__}: `name` must be a str, received {name!r}")
        self.name = name or _unique_name(snake_case(type(self).__name__))
        self.trainable = bool(trainable)
        if dtype is None:
            from ..backend import floatx
            dtype = floatx()
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"{self.name}: dtype must be float32 or float64, "
                             f"received {self.dtype}")
        if input_dim is not None and input_shape is None:
            input_shape = (input_dim,)
        if batch_input_shape is not None and input_shape is None:
            input_shape = tuple(batch_input_shape)[1:]
        # Keras 2 style: the first layer may declare its input shape.
        self._input_shape_arg = tuple(input_shape) if input_shape is not None else None
        self.built = False
        self.input_shape = None
        self.output_shape = None
        self._weights = []
        # Scratch buffers, one set per thread, so that two threads may run inference
        # through the same model at once (a dict, not threading.local: deepcopy works).
        self._buffers_by_thread = {}

    # -- weights -------------------------------------------------------------------
    def add_weight(self, name, shape, initializer="zeros", regularizer=None, trainable=True):
        init = initializers.get(initializer)
        if _planning.get():
            value = np.broadcast_to(np.zeros((), self.dtype), tuple(int(s) for s in shape))
        else:
            value = init(shape, self.dtype)
        var = Variable(value, f"{self.name}/{name}", trainable,
                       regularizers.get(regularizer))
        self._weights.append(var)
        return var

    @property
    def weights(self):
        return list(self._weights)

    @property
    def trainable_weights(self):
        return [w for w in self._weights if w.trainable] if self.trainable else []

    @property
    def non_trainable_weights(self):
        return [w for w in self._weights if not w.trainable or not self.trainable]

    def get_weights(self):
        return [w.numpy() for w in self._weights]

    def set_weights(self, weights):
        weights = list(weights)
        if len(weights) != len(self._weights):
            raise ValueError(f"Layer {self.name!r} expects {len(self._weights)} weight "
                             f"arrays, received {len(weights)}")
        for var, value in zip(self._weights, weights):
            var.assign(value)

    def count_params(self):
        return int(sum(w.value.size for w in self._weights))

    # -- life ----------------------------------------------------------------------
    def build(self, input_shape):  # noqa: ARG002 (Keras's signature)
        self.built = True

    def _build_once(self, input_shape):
        input_shape = tuple(input_shape)
        if not self.built:
            self.input_shape = input_shape
            self.build(input_shape)
            self.built = True
            self.output_shape = self.compute_output_shape(input_shape)
        return self.output_shape

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def call(self, inputs, training=False):
        raise NotImplementedError

    def backward(self, grad):
        raise NotImplementedError(f"{type(self).__name__} has no backward")

    def _link(self, inputs):
        """Functional API: record that this layer maps the symbolic `inputs` to a new
        symbolic output, and return that output."""
        self._build_once(inputs.shape)
        self._check_input(inputs.shape)
        self.input = inputs
        self.output = KerasTensor(self.output_shape, self.dtype, layer=self, parent=inputs)
        return self.output

    def __call__(self, inputs, training=False):
        """Public call: builds on first use and returns a fresh array (the internal
        call may answer from a buffer that the next step reuses). On a KerasTensor it
        builds the functional graph instead."""
        if isinstance(inputs, KerasTensor):
            return self._link(inputs)
        inputs = np.asarray(inputs)
        if inputs.dtype != self.dtype:
            inputs = inputs.astype(self.dtype)
        self._build_once((None,) + inputs.shape[1:])
        self._check_input(inputs.shape)
        return np.array(self.call(inputs, training=training), copy=True)

    def _check_input(self, shape):
        expected = self.input_shape
        if expected is not None and (len(shape) != len(expected) or any(
                e is not None and e != s for e, s in zip(expected[1:], shape[1:]))):
            raise ValueError(f"Input to layer {self.name!r} ({type(self).__name__}) has "
                             f"shape {tuple(shape)}, but the layer expects "
                             f"{tuple(expected)} (None: any batch size)")

    @property
    def _buffers(self):
        me = threading.get_ident()
        mine = self._buffers_by_thread.get(me)
        if mine is None:
            # A new thread: drop the buffers of threads that have ended (thread ids are
            # reused, so a dead thread's entry could otherwise be kept forever).
            alive = {t.ident for t in threading.enumerate()}
            for ident in [i for i in self._buffers_by_thread if i not in alive]:
                self._buffers_by_thread.pop(ident, None)
            mine = self._buffers_by_thread.setdefault(me, {})
        return mine

    def _buffer(self, key, shape, dtype=None):
        """A scratch array kept across calls (per thread), reallocated only when the
        shape changes."""
        dtype = np.dtype(dtype or self.dtype)
        buf = self._buffers.get(key)
        if buf is None or buf.shape != tuple(shape) or buf.dtype != dtype:
            buf = np.empty(shape, dtype)
            self._buffers[key] = buf
        return buf

    def regularization_loss(self):
        return sum(w.regularizer(w.value) for w in self.trainable_weights if w.regularizer)

    # -- config --------------------------------------------------------------------
    def get_config(self):
        """The layer's config: its name, trainable flag and dtype, then every argument of
        its class's constructor, read from the attribute of the same name (a subclass
        stores each argument so; one that cannot overrides this)."""
        config = {"name": self.name, "trainable": self.trainable, "dtype": self.dtype.name}
        if self._input_shape_arg is not None:
            config["input_shape"] = list(self._input_shape_arg)
        for name in _constructor_arguments(type(self)):
            if not hasattr(self, name):
                raise TypeError(f"{type(self).__name__} keeps no `{name}` attribute: store "
                                f"each constructor argument under its name, or override "
                                f"get_config")
            config[name] = _config_value(getattr(self, name))
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"


# The arguments every Layer takes (in Layer.__init__), written by Layer.get_config itself.
_LAYER_ARGUMENTS = {"self", "name", "trainable", "dtype", "input_shape", "batch_input_shape",
                    "input_dim", "batch_size"}


@functools.lru_cache(maxsize=None)
def _constructor_arguments(cls):
    """The named arguments of the constructors of cls and of its bases (a subclass that
    passes *args or **kwargs on takes its base's too) beyond the Layer's own, in order."""
    names = []
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass is Layer or not issubclass(klass, Layer):
            continue
        for p in inspect.signature(init).parameters.values():
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) \
                    and p.name not in _LAYER_ARGUMENTS and p.name not in names \
                    and p.name not in cls._legacy_arguments:
                names.append(p.name)
    return tuple(names)


def _config_value(value):
    """A constructor argument as JSON: tuples as lists, activations by name, initializers
    and regularizers as their serialized configs."""
    from .. import activations
    if isinstance(value, (tuple, list)):
        return [_config_value(v) for v in value]
    if isinstance(value, activations.ActivationFunction):
        return activations.serialize(value)
    if isinstance(value, initializers.Initializer):
        return initializers.serialize(value)
    if isinstance(value, regularizers.Regularizer):
        return regularizers.serialize(value)
    if isinstance(value, np.generic):
        return value.item()
    return value

"""The Layer life, as in Keras 3: __init__ validates, build(input_shape) creates the
weights, call computes; plus backward, which cnnx adds: given dL/d(output) it returns
dL/d(input) and leaves each trainable weight's gradient in `variable.grad`.

Layers never loop over samples or pixels: they call cnnx.ops. A layer keeps its weights
and configuration, never the tensors of a call: `forward(ctx, inputs, training)` keeps
what `backward(ctx, grad)` needs in a Context that the running model owns, one per node
of its compiled plan (see models/plan.py).
"""
import contextlib
import contextvars
import functools
import inspect
import itertools
import re
import warnings

import numpy as np

from .. import _memory, initializers, regularizers
from .._registry import Registry

__all__ = ["Variable", "Layer", "KerasTensor", "Node", "Context", "CompiledOp",
           "planned_weights"]

# Every layer class by name: what deserialize and load_model accept. Filled by
# @REGISTRY.register() where each class is defined.
REGISTRY = Registry("layer")

_planning = contextvars.ContextVar("cnnx_planned_weights", default=False)
_stamps = itertools.count(1)   # Variable.last_change


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
    """Restart automatic layer names (conv2d, conv2d_1, ...) from scratch.

    >>> cnnx.layers.clear_session()
    >>> cnnx.layers.Dense(1).name, cnnx.layers.Dense(1).name
    ('dense', 'dense_1')
    """
    _name_counts.clear()


def snake_case(name):
    """Keras's rule: Conv2D -> conv2d, MaxPooling2D -> max_pooling2d."""
    name = re.sub(r"(.)([A-Z][a-z0-9]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


class Variable:
    """A weight: a float array updated in place by the optimizer. Change it with
    assign(); code that writes into `value` in place calls touch() after, so that what a
    compiled inference program derived from it (a folded normalization) is derived again.

    >>> w = cnnx.layers.Variable(np.zeros(2), name="w")
    >>> w.assign([1.0, 2.0])
    >>> w.value, w.shape, w.trainable
    (array([1., 2.]), (2,), True)
    """

    # The stamp of the latest change to any variable, in place or by a new array (each
    # change takes the next number of _stamps, so a reader that saw one stamp knows any
    # later change by the value alone): a compiled inference plan that sees the stamp it
    # saw at its last run skips re-checking each weight it reads.
    last_change = 0

    def __init__(self, value, name, trainable=True, regularizer=None):
        # A planned weight (see planned_weights) keeps its memoryless broadcast view.
        self.value = value if _planning.get() else np.ascontiguousarray(value)
        self.name = name
        self.trainable = trainable
        self.regularizer = regularizer
        self.grad = None
        # Counts the changes made in place (assign, the optimizer, the moving
        # statistics): what a compiled program folded from this weight is folded again
        # when it moves. Code that writes into `value` itself calls touch().
        self.version = 0

    @property
    def value(self):
        return self._value

    @value.setter
    def value(self, array):
        self._value = array
        Variable.last_change = next(_stamps)

    def touch(self):
        """Record a change made in place to `value`."""
        self.version += 1
        Variable.last_change = next(_stamps)

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
        value = self.checked(value)
        if not self.value.flags.writeable and _planning.get():
            return   # a planned weight (see planned_weights) has a shape, no memory
        self.value[...] = value
        self.touch()

    def __array__(self, dtype=None, copy=None):
        return self.value if dtype is None else self.value.astype(dtype)

    def __repr__(self):
        return f"<Variable {self.name} shape={self.shape} dtype={self.dtype}>"


class KerasTensor:
    """A symbolic tensor of the functional API: a shape (batch as None), a dtype, and the
    node that produces it (None for a model's input before its InputLayer makes one).

    >>> x = cnnx.Input((4,))
    >>> y = cnnx.layers.Dense(3)(x)
    >>> y.shape, y.dtype, type(y.node.layer).__name__
    ((None, 3), dtype('float32'), 'Dense')
    """

    def __init__(self, shape, dtype="float32", node=None, index=0, name=None):
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.node = node
        self.index = index
        self.name = name or (node.layer.name if node is not None else "tensor")

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def _keras_history(self):
        """(layer, node index within the layer, tensor index): Keras's own triple."""
        return self.node.layer, self.node.layer._inbound_nodes.index(self.node), self.index

    def __repr__(self):
        return f"<KerasTensor shape={self.shape}, dtype={self.dtype.name}, name={self.name}>"


class Node:
    """One call of a layer on symbolic tensors: the edges of a functional graph. A layer
    called twice (shared weights) has two nodes; a model runs its nodes in topological
    order. `single` says whether the layer took one tensor or a list.

    >>> x = cnnx.Input((4,))
    >>> dense = cnnx.layers.Dense(3)
    >>> y, z = dense(x), dense(x)   # two calls: two nodes, one set of weights
    >>> len(dense._inbound_nodes), y.node is z.node
    (2, False)
    """

    __slots__ = ("layer", "inputs", "outputs", "single")

    def __init__(self, layer, inputs, output_shapes, single):
        self.layer = layer
        self.inputs = list(inputs)
        self.single = single
        self.outputs = [KerasTensor(shape, layer.dtype, self, i) for i, shape in
                        enumerate(output_shapes)]
        layer._inbound_nodes.append(self)

    @property
    def parents(self):
        return [t.node for t in self.inputs if t.node is not None]

    def __repr__(self):
        return f"<Node {self.layer.name}({', '.join(t.name for t in self.inputs)})>"


class Context:
    """What one call of a layer keeps for its backward pass, and the buffers that call
    reuses from step to step. The running model owns one per node of its compiled plan
    (a layer called twice has two), so layers keep weights and configuration only.

    The plan sets the flags when it is built (the fusion rules, see models/plan.py):

    - ``need_input_grad``: some weight upstream is trained, so backward returns dL/dx;
    - ``emit_logits``: the loss applies this layer's final activation itself;
    - ``grad_is_preactivation``: the consumer already applied this layer's ReLU mask;
    - ``fuse_relu_backward``: apply the producer's ReLU mask in this backward;
    - ``affine``: (inference) a layer whose per-channel affine map this layer's output
      goes through next, to fold into the weights;
    - ``fused_relu``: the ReLU layer after this one was fused into it: apply max(y, 0)
      on the way out, and (training) mask the incoming gradient where the output is 0.

    Backward leaves each weight's gradient with `add_grad`, for the plan to collect.

    >>> relu = cnnx.layers.ReLU()
    >>> ctx = cnnx.layers.Context()
    >>> y = relu.forward(ctx, np.array([[-1.0, 2.0]]))
    >>> relu.backward(ctx, np.ones((1, 2)))   # the context kept what backward needs
    array([[0., 1.]])
    """

    __slots__ = ("buffers", "need_input_grad", "emit_logits", "grad_is_preactivation",
                 "fuse_relu_backward", "affine", "fused_relu", "grads", "saved")

    def __init__(self):
        self.buffers = {}
        self.need_input_grad = True
        self.emit_logits = False
        self.grad_is_preactivation = False
        self.fuse_relu_backward = False
        self.affine = None
        self.fused_relu = False
        self.grads = []
        self.saved = {}

    def buffer(self, key, shape, dtype):
        """An array kept across steps, reallocated only when its shape changes."""
        buf = self.buffers.get(key)
        if buf is None or buf.shape != tuple(shape) or buf.dtype != dtype:
            buf = self.buffers[key] = _memory.empty(shape, dtype)
        return buf

    def add_grad(self, variable, gradient):
        self.grads.append((variable, gradient))


class CompiledOp:
    """One operation of a compiled inference program (see Layer.compiled_ops): kind is
    "alias" (the input itself, reshaped to the layer's output shape), "conv2d", "dense",
    "max_pool2d", "relu", "sigmoid", "softmax" (over the last axis) or "add" (of the
    layer's two inputs). conv2d and dense read `kernel` and `bias` in place: the layer's
    arrays, whose variables are in `watch` (the program is remade if a variable's array
    is replaced), or arrays of the op's own that `refresh(weights_moved)`, called before
    each run, recomputes when their sources changed (weights with a normalization folded
    in: see refolding; weights_moved False when no Variable changed since the last run).
    relu: a fused ReLU on the way out."""

    __slots__ = ("kind", "kernel", "bias", "watch", "refresh", "strides", "padding",
                 "dilation", "pool", "relu", "keepdims")

    def __init__(self, kind, kernel=None, bias=None, watch=(), refresh=None, strides=(1, 1),
                 padding="valid", dilation=(1, 1), pool=None, relu=False, keepdims=False):
        self.kind, self.kernel, self.bias, self.watch, self.refresh = (
            kind, kernel, bias, tuple(watch), refresh)
        self.strides, self.padding, self.dilation, self.pool, self.relu = (
            tuple(strides), padding, tuple(dilation), pool, bool(relu))
        self.keepdims = bool(keepdims)


def refolding(variables, fold, outputs, *extra):
    """refresh() for a compiled op's own arrays `outputs`, which fold() computes from
    `variables` (a layer's weights and the BatchNormalization folded into them): it folds
    again only when one of them was changed (Variable.version) or replaced (its array),
    or an `extra` callable's value moved (the normalization's epsilon). Folding before
    every run cost W5 0.24 ms of Python per image, and the threads fell asleep meanwhile:
    one image 1.85 ms, 0.88 without."""
    def weights():
        return [(v.value, v.version) for v in variables]

    seen, seen_extra = weights(), [f() for f in extra]

    def refresh(weights_moved=True):
        """weights_moved False: no Variable changed since the last call (the caller
        knows it from Variable.last_change); only the extras are read."""
        nonlocal seen, seen_extra
        now = weights() if weights_moved else seen
        now_extra = [f() for f in extra]
        if now_extra == seen_extra and (now is seen or all(
                a is b and m == n for (a, m), (b, n) in zip(now, seen))):
            return
        for out, value in zip(outputs, fold()):
            np.copyto(out, value)
        seen, seen_extra = now, now_extra
    return refresh


class Layer:
    """Base of all layers. A subclass validates its arguments in __init__, makes its
    weights in build(input_shape) with add_weight, computes in forward(ctx, inputs,
    training) and gives its gradients in backward(ctx, grad) (dL/dinputs returned, each
    weight's through ctx.add_grad); compute_output_shape when the shape changes. Its
    get_config comes from its constructor's arguments.

    >>> class Scale(cnnx.layers.Layer):
    ...     # y = x * w, one learned factor per feature
    ...     def build(self, input_shape):
    ...         self.w = self.add_weight("w", (input_shape[-1],), "ones")
    ...     def forward(self, ctx, inputs, training=False):
    ...         ctx.saved["x"] = inputs
    ...         return inputs * self.w.value
    ...     def backward(self, ctx, grad):
    ...         ctx.add_grad(self.w, (grad * ctx.saved["x"]).sum(axis=0))
    ...         return grad * self.w.value
    >>> model = cnnx.Sequential([cnnx.Input((2,)), Scale()])
    >>> model.compile(optimizer=cnnx.optimizers.SGD(0.1), loss="mse")
    >>> x = np.array([[1.0, 2.0]], np.float32)
    >>> loss = model.train_on_batch(x, 3 * x)
    >>> model.layers[0].w.value   # moved towards 3
    array([1.2, 1.8], dtype=float32)
    """

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
                 batch_input_shape=None, input_dim=None, activity_regularizer=None,
                 **kwargs):
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
        # A penalty on the layer's output, added to the loss (Keras's activity_regularizer).
        self.activity_regularizer = regularizers.get(activity_regularizer)
        self.built = False
        self.input_shape = None
        self.output_shape = None
        self._weights = []
        self._inbound_nodes = []   # one Node per symbolic call

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
        """Build for input_shape (a tuple, or a list of tuples for a layer that takes
        several tensors) on the first call; return the output shape."""
        input_shape = ([tuple(s) for s in input_shape] if _is_shape_list(input_shape)
                       else tuple(input_shape))
        if not self.built:
            self.input_shape = input_shape
            self.build(input_shape)
            self.built = True
            self.output_shape = self.compute_output_shape(input_shape)
        return self.output_shape

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def call(self, inputs, training=False):
        """The layer's computation on arrays (Keras's `call`). cnnx's own layers
        implement `forward` and `backward` instead, and this runs their forward once."""
        if type(self).forward is Layer.forward:
            raise NotImplementedError(f"{type(self).__name__} implements neither call nor "
                                      f"forward")
        return self.forward(Context(), inputs, training)

    def forward(self, ctx, inputs, training=False):  # noqa: ARG002 (no backward to feed)
        """What the model runs: the output for inputs, keeping in ctx what backward will
        need. A layer that only defines Keras's `call` runs it, and has no backward."""
        return self.call(inputs, training=training)

    def backward(self, ctx, grad):  # noqa: ARG002 (the interface)
        """dL/d(inputs) from grad = dL/d(output), for the call that `ctx` recorded (a
        list for a layer that takes several tensors, None where ctx.need_input_grad is
        False); each trainable weight's gradient goes to ctx.add_grad."""
        raise NotImplementedError(f"layer {self.name!r} ({type(self).__name__}) defines no "
                                  f"backward: a model can run it, but not train through it")

    @property
    def has_backward(self):
        return type(self).backward is not Layer.backward

    @property
    def no_backward_reason(self):
        """Why the layer has no backward (None when it has one)."""
        return None if self.has_backward else "it defines no backward"

    @property
    def absorbs_affine(self):
        """Whether the layer can fold a following per-channel affine map (an inference
        BatchNormalization) into its own weights: a linear layer with no activation."""
        return False

    def can_fuse_relu(self, training):  # noqa: ARG002
        """Whether the layer can apply a following plain ReLU itself (ctx.fused_relu),
        in a training plan or an inference one."""
        return False

    #: A plain max(x, 0) layer, which the plan may fuse into the layer before it.
    is_plain_relu = False

    def compiled_ops(self, ctx, dtype):  # noqa: ARG002
        """The layer's inference forward as CompiledOps (run in order, each on the one
        before's result), for a compiled inference program (cnnx.models.program); None
        where it has none, and the plan runs step by step. The operations must compute
        what forward(ctx, inputs, training=False) does, with the same kernels."""
        return None

    #: The methods compiled_ops stands for: a subclass that overrides one of them, and
    #: not compiled_ops, runs step by step.
    compiled_methods = ("forward",)

    @property
    def fusable_activation(self):
        """The name of the activation this layer applies last and can leave out (emit
        its input instead, or skip in backward) when the model's plan fuses it with a
        neighbour; None when there is none."""
        return None

    def _link(self, inputs):
        """Functional API: record a node that maps the symbolic `inputs` (a tensor or a
        list of them) to new symbolic outputs, and return them."""
        single = isinstance(inputs, KerasTensor)
        tensors = [inputs] if single else list(inputs)
        shapes = tensors[0].shape if single else [t.shape for t in tensors]
        output_shape = self._build_once(shapes)
        self._check_input(shapes)
        multi_output = isinstance(output_shape, list)
        node = Node(self, tensors, output_shape if multi_output else [output_shape], single)
        return node.outputs if multi_output else node.outputs[0]

    @property
    def input(self):
        """The symbolic input of the layer's first call (Keras's rule)."""
        node = self._first_node("input")
        return node.inputs[0] if node.single else list(node.inputs)

    @property
    def output(self):
        """The symbolic output of the layer's first call (Keras's rule)."""
        node = self._first_node("output")
        return node.outputs[0] if len(node.outputs) == 1 else list(node.outputs)

    def _first_node(self, what):
        if not self._inbound_nodes:
            raise AttributeError(f"layer {self.name!r} has never been called on a symbolic "
                                 f"tensor, so it has no {what} yet")
        return self._inbound_nodes[0]

    # What a direct call on arrays does when `training` is not given: inference, except
    # for the random augmentation layers, which augment (as Keras 3's do).
    _call_training_default = False

    def __call__(self, inputs, training=None):
        """On symbolic tensors, build the functional graph. On arrays, build on first
        use and compute, returning a fresh array."""
        if training is None:
            training = self._call_training_default
        if isinstance(inputs, KerasTensor) or (
                isinstance(inputs, (list, tuple)) and inputs
                and all(isinstance(t, KerasTensor) for t in inputs)):
            return self._link(inputs)
        if isinstance(inputs, (list, tuple)):
            inputs = [self._as_array(x) for x in inputs]
            shapes = [(None,) + x.shape[1:] for x in inputs]
        else:
            inputs = self._as_array(inputs)
            shapes = (None,) + inputs.shape[1:]
        self._build_once(shapes)
        self._check_input([x.shape for x in inputs] if isinstance(inputs, list)
                          else inputs.shape)
        return np.array(self.forward(Context(), inputs, training), copy=True)

    def _as_array(self, x):
        x = np.asarray(x)
        return x if x.dtype == self.dtype else x.astype(self.dtype)

    def _check_input(self, shape):
        expected = self.input_shape
        if expected is None:
            return
        if _is_shape_list(expected) != _is_shape_list(shape) or (
                _is_shape_list(shape) and len(shape) != len(expected)):
            raise ValueError(f"layer {self.name!r} ({type(self).__name__}) was built for "
                             f"input {expected}, received {shape}")
        pairs = zip(expected, shape) if _is_shape_list(shape) else [(expected, shape)]
        for e_shape, s_shape in pairs:
            if len(s_shape) != len(e_shape) or any(
                    e is not None and e != s for e, s in zip(e_shape[1:], s_shape[1:])):
                raise ValueError(f"Input to layer {self.name!r} ({type(self).__name__}) "
                                 f"has shape {tuple(s_shape)}, but the layer expects "
                                 f"{tuple(e_shape)} (None: any batch size)")

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
        if getattr(self, "activity_regularizer", None) is not None:
            config["activity_regularizer"] = _config_value(self.activity_regularizer)
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

    def _build_config(self):
        """What deserialize needs to build the layer before it is called: its input
        shape (a list of shapes for a layer that takes several tensors)."""
        if not self.built or self.input_shape is None:
            return None
        shape = self.input_shape
        return {"input_shape": [list(s) for s in shape] if isinstance(shape, list)
                else list(shape)}

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"


# The arguments every Layer takes (in Layer.__init__), written by Layer.get_config itself.
_LAYER_ARGUMENTS = {"self", "name", "trainable", "dtype", "input_shape", "batch_input_shape",
                    "input_dim", "batch_size", "activity_regularizer"}


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


def _is_shape_list(shape):
    """Whether shape is a list of shapes (a multi-input layer's) rather than one."""
    return isinstance(shape, list) and all(isinstance(s, (tuple, list)) for s in shape) \
        and bool(shape)


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

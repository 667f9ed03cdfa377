"""InputLayer, Dense, Activation, ReLU, LeakyReLU, Softmax, Dropout, Flatten, Reshape,
Lambda."""
import numbers
import warnings

import numpy as np

from .. import _random, _tracing, activations, initializers, ops, regularizers
from .._compat import refuse_unimplemented
from .base import REGISTRY, CompiledOp, Layer, Node, refolding

__all__ = ["InputLayer", "Input", "Dense", "Activation", "ReLU", "LeakyReLU", "Softmax",
           "Dropout", "Flatten", "Reshape", "Lambda", "ELU", "PReLU"]


def _positive_int(value, name, where):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{where}: `{name}` must be a positive int, received {value!r}")
    return int(value)


@REGISTRY.register()
class InputLayer(Layer):
    """Declares the shape of one sample (without the batch axis).

    >>> layer = cnnx.layers.InputLayer(shape=(28, 28, 1))
    >>> layer.output_shape
    (None, 28, 28, 1)
    """

    def __init__(self, shape=None, batch_size=None, name=None, input_shape=None, **kwargs):
        shape = shape if shape is not None else input_shape
        if shape is None:
            raise ValueError("InputLayer: `shape` is required, e.g. shape=(28, 28, 1)")
        if isinstance(shape, numbers.Integral):
            shape = (shape,)
        shape = tuple(shape)
        if not all(isinstance(s, numbers.Integral) and s > 0 for s in shape):
            raise ValueError(f"InputLayer: `shape` must be positive ints, received {shape}")
        super().__init__(name=name, input_shape=shape, **kwargs)
        self.batch_size = batch_size

        self.built = True
        self.input_shape = self.output_shape = (batch_size,) + shape

    def _symbolic(self):
        """The KerasTensor this input layer stands for: the output of its one node,
        which has no inputs."""
        if not self._inbound_nodes:
            Node(self, [], [self.output_shape], True).outputs[0].name = self.name
        return self._inbound_nodes[0].outputs[0]

    def forward(self, ctx, inputs, training=False):  # noqa: ARG002
        return inputs

    def backward(self, ctx, grad):  # noqa: ARG002
        return grad

    def get_config(self):   # Keras's InputLayer config: name, dtype and shape
        return {"name": self.name, "dtype": self.dtype.name,
                "shape": list(self._input_shape_arg)}


def Input(shape=None, batch_size=None, name=None, dtype=None):
    """keras.Input: the symbolic input of a model. In a Sequential list it declares the
    input shape; in the functional API, layers called on it build the graph.

    `shape` leaves out the batch size, which stays open (None):

    >>> inputs = cnnx.Input((28, 28, 1), name="digits")
    >>> inputs.shape
    (None, 28, 28, 1)
    >>> cnnx.layers.Flatten()(inputs).shape
    (None, 784)
    """
    layer = InputLayer(shape=shape, batch_size=batch_size, name=name, dtype=dtype)
    return layer._symbolic()


class _Activated(Layer):
    """A layer whose output goes through an activation. ReLU is fused into the kernel;
    when the plan fuses a final softmax/sigmoid into the loss (ctx.emit_logits), forward
    returns the pre-activation."""

    def _init_activation(self, activation):
        self.activation = activations.get(activation)
        self._act = self.activation.__name__

    def _init_weight_options(self, use_bias, kernel_initializer, bias_initializer,
                             kernel_regularizer, bias_regularizer):
        """The kernel-and-bias options shared by Dense and Conv2D."""
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)

    def _add_kernel_and_bias(self, kernel_shape, units):
        self.kernel = self.add_weight("kernel", kernel_shape, self.kernel_initializer,
                                      self.kernel_regularizer)
        self.bias = (self.add_weight("bias", (units,), self.bias_initializer,
                                     self.bias_regularizer) if self.use_bias else None)

    @property
    def fusable_activation(self):
        return None if self._act == "linear" else self._act

    # Dense and Conv2D fold a following inference BatchNormalization (see absorbs_affine).
    _folds_affine = False

    @property
    def absorbs_affine(self):
        return self._folds_affine and self._act == "linear"

    def _weights_for(self, ctx, dtype):
        """The kernel and bias to compute with: the layer's, or, with an affine map
        folded in (ctx.affine), kernel * scale and bias * scale + shift per channel."""
        kernel = self.kernel.value
        bias = self.bias.value if self.use_bias else None
        if ctx.affine is None:
            return kernel, bias
        scale, shift = ctx.affine.inference_affine(dtype)
        return kernel * scale, shift if bias is None else bias * scale + shift

    def _compiled_weights(self, ctx, dtype):
        """(kernel, bias, watch, refresh) for a compiled op: the layer's own arrays, or,
        with an affine map folded in, arrays of the op's own that refresh() recomputes
        in place; None where the weights are not in `dtype`."""
        if self.kernel.dtype != dtype or (self.use_bias and self.bias.dtype != dtype):
            return None
        if ctx.affine is None:
            bias = self.bias if self.use_bias else None
            return (self.kernel.value, None if bias is None else bias.value,
                    (self.kernel,) if bias is None else (self.kernel, bias), None)
        kernel, bias = (np.array(w, dtype) for w in self._weights_for(ctx, dtype))
        refresh = refolding(self.weights + ctx.affine.weights,
                            lambda: self._weights_for(ctx, dtype), (kernel, bias),
                            lambda: ctx.affine.epsilon)
        return kernel, bias, (), refresh

    def _compiled_activation(self):
        """The ops after the kernel (which applies a ReLU itself): [] or one; None where
        the activation has no compiled op."""
        if self._act in ("linear", "relu"):
            return []
        return [CompiledOp(self._act)] if self._act in ("softmax", "sigmoid") else None

    def _compiled_product(self, ctx, dtype, kind, **geometry):
        weights = self._compiled_weights(ctx, dtype)
        after = self._compiled_activation()
        if weights is None or after is None:
            return None
        kernel, bias, watch, refresh = weights
        return [CompiledOp(kind, kernel, bias, watch, refresh,
                           relu=self._fused_relu(ctx), **geometry)] + after

    def can_fuse_relu(self, training):
        # At inference only: in training the ReLU keeps its own step, which the other
        # fusions (max pooling's mask) read.
        return not training and self._folds_affine and self._act == "linear"

    def _fused_relu(self, ctx):
        return (self._act == "relu" or ctx.fused_relu) and not ctx.emit_logits

    def _activate(self, ctx, z):
        """z is the kernel's output (ReLU already applied when fused)."""
        if ctx.emit_logits or self._act in ("linear", "relu"):
            ctx.saved["out"] = z
            return z
        y = self.activation(z)
        ctx.saved["z"], ctx.saved["out"] = z, y
        return y

    def _activation_grad(self, ctx, grad):
        if ctx.emit_logits or ctx.grad_is_preactivation:
            return grad
        if self._act == "relu" or ctx.fused_relu:
            return ops.relu_backward(grad, ctx.saved["out"],
                                     out=ctx.buffer("dz", grad.shape, grad.dtype))
        if self._act == "linear":
            return grad
        return self.activation.grad(grad, ctx.saved["z"], ctx.saved["out"])

    def _set_kernel_grads(self, ctx, dk, db):
        ctx.add_grad(self.kernel, dk)
        if self.use_bias:
            ctx.add_grad(self.bias, db)


@REGISTRY.register()
class Dense(_Activated):
    """y = activation(x @ kernel + bias), over the last axis of a 2-D input.

    Parameters
    ----------
    units : int, the output width
    activation : a name, a function from cnnx.activations, or None (linear)
    use_bias : bool

    Input (N, D); output (N, units); weights kernel (D, units) and bias (units,).

    Examples
    --------
    >>> dense = cnnx.layers.Dense(4, activation="relu")
    >>> dense(np.ones((3, 5), np.float32)).shape
    (3, 4)
    >>> [w.shape for w in dense.get_weights()]
    [(5, 4), (4,)]
    """

    def __init__(self, units, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        self.units = _positive_int(units, "units", f"Dense {self.name!r}")
        self._init_activation(activation)
        self._init_weight_options(use_bias, kernel_initializer, bias_initializer,
                                  kernel_regularizer, bias_regularizer)

    def build(self, input_shape):
        if len(input_shape) != 2:
            raise ValueError(f"Dense {self.name!r} expects 2-D input (batch, features), "
                             f"received shape {tuple(input_shape)}: add a Flatten layer "
                             f"before it")
        self._add_kernel_and_bias((input_shape[-1], self.units), self.units)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    _folds_affine = True

    def compiled_ops(self, ctx, dtype):
        return self._compiled_product(ctx, dtype, "dense")

    def forward(self, ctx, inputs, training=False):  # noqa: ARG002
        kernel, bias = self._weights_for(ctx, inputs.dtype)
        z = ops.dense(inputs, kernel, bias, "relu" if self._fused_relu(ctx) else None,
                      out=ctx.buffer("z", (inputs.shape[0], self.units), inputs.dtype))
        ctx.saved["x"] = inputs
        return self._activate(ctx, z)

    def backward(self, ctx, grad):
        g = self._activation_grad(ctx, grad)
        x = ctx.saved["x"]
        need = ctx.need_input_grad
        dx, dk, db = ops.dense_backward(
            x, self.kernel.value, g, self.use_bias, need,
            out=(ctx.buffer("dx", x.shape, x.dtype) if need else None,
                 ctx.buffer("dkernel", self.kernel.shape, x.dtype),
                 ctx.buffer("dbias", (self.units,), x.dtype) if self.use_bias else None))
        self._set_kernel_grads(ctx, dk, db)
        return dx


@REGISTRY.register()
class Activation(_Activated):
    """An activation applied elementwise: a name from cnnx.activations, or one of its
    functions.

    >>> cnnx.layers.Activation("relu")(np.array([[-1.0, 2.0]]))
    array([[0., 2.]], dtype=float32)
    """
    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self._init_activation(activation)

    @property
    def is_plain_relu(self):
        return self._act == "relu"

    def compiled_ops(self, ctx, dtype):  # noqa: ARG002
        if self._fused_relu(ctx):
            return [CompiledOp("relu")]
        return [CompiledOp("alias")] if self._act == "linear" else \
            self._compiled_activation()

    def forward(self, ctx, inputs, training=False):  # noqa: ARG002
        if self._fused_relu(ctx):
            return self._activate(ctx, ops.relu(inputs, out=ctx.buffer(
                "y", inputs.shape, inputs.dtype)))
        return self._activate(ctx, inputs)

    def backward(self, ctx, grad):
        return self._activation_grad(ctx, grad)


@REGISTRY.register()
class ReLU(Layer):
    """max(x, 0) by default; Keras's max_value, negative_slope and threshold too.

    >>> cnnx.layers.ReLU(max_value=6.0)(np.array([[-1.0, 3.0, 9.0]]))
    array([[0., 3., 6.]], dtype=float32)
    """

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        super().__init__(**kwargs)
        if max_value is not None and max_value < 0:
            raise ValueError(f"ReLU {self.name!r}: `max_value` must be >= 0, "
                             f"received {max_value}")
        if negative_slope < 0:
            raise ValueError(f"ReLU {self.name!r}: `negative_slope` must be >= 0, "
                             f"received {negative_slope}")
        self.max_value, self.negative_slope, self.threshold = max_value, negative_slope, threshold
        self._plain = max_value is None and negative_slope == 0 and threshold == 0

    @property
    def is_plain_relu(self):
        return self._plain

    def compiled_ops(self, ctx, dtype):  # noqa: ARG002
        return [CompiledOp("relu")] if self._plain else None

    def forward(self, ctx, inputs, training=False):  # noqa: ARG002
        ctx.saved["x"] = inputs
        if self._plain:
            y = ctx.saved["y"] = ops.relu(inputs, out=ctx.buffer("y", inputs.shape,
                                                                 inputs.dtype))
            return y
        # (a zero slope gives 0, not the -0.0 that 0 * (negative) would)
        low = self.negative_slope * (inputs - self.threshold) if self.negative_slope else 0
        y = np.where(inputs >= self.threshold, inputs, low).astype(inputs.dtype)
        return y if self.max_value is None else np.minimum(y, self.max_value)

    def backward(self, ctx, grad):
        if self._plain:
            return ops.relu_backward(grad, ctx.saved["y"],
                                     out=ctx.buffer("dx", grad.shape, grad.dtype))
        x = ctx.saved["x"]
        slope = np.where(x >= self.threshold, 1.0, self.negative_slope)
        if self.max_value is not None:
            slope = np.where(x >= self.max_value, 0.0, slope)
        return (grad * slope).astype(grad.dtype)


@REGISTRY.register()
class LeakyReLU(Layer):
    """x for x > 0, negative_slope * x otherwise (Keras 3's default slope 0.3; Keras 2
    called it `alpha`, accepted with a warning).

    >>> cnnx.layers.LeakyReLU(negative_slope=0.1)(np.array([[-10.0, 2.0]]))
    array([[-1.,  2.]], dtype=float32)
    """
    def __init__(self, negative_slope=None, **kwargs):
        alpha = kwargs.pop("alpha", None)
        super().__init__(**kwargs)
        if alpha is not None:
            if negative_slope is not None:
                raise TypeError(f"LeakyReLU {self.name!r}: got both `alpha` (Keras 2) and "
                                f"`negative_slope`; pass `negative_slope` alone")
            warnings.warn(f"LeakyReLU {self.name!r}: `alpha` is the Keras 2 spelling; use "
                          f"`negative_slope`", DeprecationWarning, stacklevel=2)
            negative_slope = alpha
        negative_slope = 0.3 if negative_slope is None else negative_slope
        if negative_slope < 0:
            raise ValueError(f"LeakyReLU {self.name!r}: `negative_slope` must be >= 0, "
                             f"received {negative_slope}")
        self.negative_slope = float(negative_slope)

    def forward(self, ctx, inputs, training=False):  # noqa: ARG002
        ctx.saved["x"] = inputs
        return np.where(inputs > 0, inputs, inputs * inputs.dtype.type(self.negative_slope))

    def backward(self, ctx, grad):
        return np.where(ctx.saved["x"] > 0, grad, grad * grad.dtype.type(self.negative_slope))


@REGISTRY.register()
class ELU(Layer):
    """x for x > 0, alpha * (exp(x) - 1) otherwise.

    >>> cnnx.layers.ELU()(np.array([[-1.0, 2.0]]))
    array([[-0.63212055,  2.        ]], dtype=float32)
    """

    def __init__(self, alpha=1.0, **kwargs):
        super().__init__(**kwargs)
        if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real):
            raise ValueError(f"ELU {self.name!r}: `alpha` must be a number, received "
                             f"{alpha!r}")
        self.alpha = float(alpha)

    def forward(self, ctx, inputs, training=False):  # noqa: ARG002
        y = activations.elu(inputs, self.alpha)
        ctx.saved.update(x=inputs, y=y)
        return y

    def backward(self, ctx, grad):
        x, y = ctx.saved["x"], ctx.saved["y"]
        return np.where(x > 0, grad, grad * (y + grad.dtype.type(self.alpha))).astype(
            grad.dtype)


@REGISTRY.register()
class PReLU(Layer):
    """max(x, 0) + alpha * min(x, 0), with alpha learned per element of a sample, or
    shared along `shared_axes` (1-based, after the batch; (1, 2) shares it over an
    image's height and width: one alpha per channel).

    >>> prelu = cnnx.layers.PReLU(alpha_initializer=cnnx.initializers.Constant(0.25))
    >>> prelu(np.array([[-4.0, 2.0]]))
    array([[-1.,  2.]], dtype=float32)
    """

    def __init__(self, alpha_initializer="zeros", alpha_regularizer=None,
                 alpha_constraint=None, shared_axes=None, **kwargs):
        super().__init__(**kwargs)
        from .._compat import refuse_unimplemented
        refuse_unimplemented(f"PReLU {self.name!r}",
                             alpha_constraint=(alpha_constraint, None))
        self.alpha_constraint = None
        self.alpha_initializer = initializers.get(alpha_initializer)
        self.alpha_regularizer = regularizers.get(alpha_regularizer)
        if shared_axes is not None and not isinstance(shared_axes, (list, tuple)):
            shared_axes = [shared_axes]
        self.shared_axes = None if shared_axes is None else tuple(int(a) for a in shared_axes)

    def build(self, input_shape):
        shape = list(input_shape[1:])
        for axis in self.shared_axes or ():
            if not 1 <= axis < len(input_shape):
                raise ValueError(f"PReLU {self.name!r}: shared axis {axis} is not an axis "
                                 f"of inputs of shape {tuple(input_shape)} (1-based, after "
                                 f"the batch)")
            shape[axis - 1] = 1
        self.alpha = self.add_weight("alpha", tuple(shape), self.alpha_initializer,
                                     self.alpha_regularizer)

    def forward(self, ctx, inputs, training=False):  # noqa: ARG002
        ctx.saved["x"] = inputs
        a = self.alpha.value.astype(inputs.dtype)
        return np.where(inputs > 0, inputs, inputs * a)

    def backward(self, ctx, grad):
        x = ctx.saved["x"]
        negative = np.minimum(x, 0)
        axes = (0,) + tuple(self.shared_axes or ())
        ctx.add_grad(self.alpha, np.sum(grad * negative, axis=axes, keepdims=True).reshape(
            self.alpha.shape).astype(grad.dtype))
        return np.where(x > 0, grad, grad * self.alpha.value.astype(grad.dtype))


@REGISTRY.register()
class Softmax(_Activated):
    """The softmax over the last axis (axis=-1): exponentials normalised to sum to 1.

    >>> cnnx.layers.Softmax()(np.array([[0.0, np.log(3.0)]]))
    array([[0.25      , 0.75000006]], dtype=float32)
    """
    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if axis != -1:
            raise ValueError(f"Softmax {self.name!r}: only axis=-1 is supported, "
                             f"received {axis}")
        self.axis = axis
        self._init_activation("softmax")

    def forward(self, ctx, inputs, training=False):  # noqa: ARG002
        return self._activate(ctx, inputs)

    def backward(self, ctx, grad):
        return self._activation_grad(ctx, grad)


@REGISTRY.register()
class Dropout(Layer):
    """Inverted dropout: in training, zero a `rate` fraction and scale the rest by
    1/(1 - rate); in inference, the identity.

    >>> drop = cnnx.layers.Dropout(0.5, seed=0)
    >>> x = np.ones((1, 6), np.float32)
    >>> drop(x)                  # inference: unchanged
    array([[1., 1., 1., 1., 1., 1.]], dtype=float32)
    >>> drop(x, training=True)   # training: half dropped, the rest scaled by 2
    array([[2., 2., 2., 0., 0., 0.]], dtype=float32)
    """

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(rate, numbers.Real) or not 0 <= rate < 1:
            raise ValueError(f"Dropout {self.name!r}: `rate` must be in [0, 1), "
                             f"received {rate!r}")
        if noise_shape is not None:
            raise ValueError(f"Dropout {self.name!r}: `noise_shape` is not supported")
        self.noise_shape = None
        self.rate, self.seed = float(rate), seed
        self._rng = np.random.default_rng(seed) if seed is not None else None

    def compiled_ops(self, ctx, dtype):  # noqa: ARG002
        return [CompiledOp("alias")]   # the identity at inference

    def forward(self, ctx, inputs, training=False):
        active = ctx.saved["active"] = training and self.rate > 0
        if not active:
            return inputs
        rng = _random.layer_generator(self._rng)
        keep = ctx.saved["keep"] = ctx.buffer("keep", inputs.shape, inputs.dtype)
        np.greater_equal(rng.random(inputs.shape, dtype=keep.dtype), self.rate, out=keep)
        keep *= keep.dtype.type(1 / (1 - self.rate))
        return np.multiply(inputs, keep, out=ctx.buffer("y", inputs.shape, inputs.dtype))

    def backward(self, ctx, grad):
        if not ctx.saved["active"]:
            return grad
        return np.multiply(grad, ctx.saved["keep"],
                           out=ctx.buffer("dx", grad.shape, grad.dtype))



@REGISTRY.register()
class Flatten(Layer):
    """(N, H, W, C) -> (N, H*W*C), row by row: height, then width, then channels.

    >>> cnnx.layers.Flatten()(np.arange(8, dtype=np.float32).reshape(1, 2, 2, 2))
    array([[0., 1., 2., 3., 4., 5., 6., 7.]], dtype=float32)
    """

    def compute_output_shape(self, input_shape):
        return (input_shape[0], int(np.prod(input_shape[1:])))

    def compiled_ops(self, ctx, dtype):  # noqa: ARG002
        return [CompiledOp("alias")]

    def forward(self, ctx, inputs, training=False):  # noqa: ARG002
        ctx.saved["shape"] = inputs.shape
        return inputs.reshape(inputs.shape[0], -1)

    def backward(self, ctx, grad):
        return grad.reshape(ctx.saved["shape"])


@REGISTRY.register()
class Reshape(Layer):
    """Each sample reshaped to target_shape (batch kept; one entry may be -1, inferred).

    >>> cnnx.layers.Reshape((2, 3))(np.arange(6, dtype=np.float32).reshape(1, 6))
    array([[[0., 1., 2.],
            [3., 4., 5.]]], dtype=float32)
    """
    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        target_shape = tuple(target_shape)
        if sum(1 for s in target_shape if s == -1) > 1 or not all(
                isinstance(s, numbers.Integral) and (s > 0 or s == -1) for s in target_shape):
            raise ValueError(f"Reshape {self.name!r}: `target_shape` must be positive ints "
                             f"with at most one -1, received {target_shape}")
        self.target_shape = target_shape

    def compute_output_shape(self, input_shape):
        size = int(np.prod(input_shape[1:]))
        known = int(np.prod([s for s in self.target_shape if s != -1]))
        shape = tuple(size // known if s == -1 else s for s in self.target_shape)
        if int(np.prod(shape)) != size:
            raise ValueError(f"Reshape {self.name!r}: cannot reshape a sample of shape "
                             f"{tuple(input_shape[1:])} ({size} values) to "
                             f"{self.target_shape}")
        return (input_shape[0],) + shape

    def compiled_ops(self, ctx, dtype):  # noqa: ARG002
        return [CompiledOp("alias")]

    def forward(self, ctx, inputs, training=False):  # noqa: ARG002
        ctx.saved["shape"] = inputs.shape
        return inputs.reshape((inputs.shape[0],) + self.output_shape[1:])

    def backward(self, ctx, grad):
        return grad.reshape(ctx.saved["shape"])




class Lambda(Layer):
    """A function as a layer: Lambda(lambda x: x / 255.0), Lambda(ops.relu).

    Its gradient comes from the function itself: when the layer is built, the function
    is traced once on symbolic inputs, and a function made of arithmetic (+, -, *, /,
    unary minus, ** by a number) and the differentiable cnnx.ops functions (relu,
    sigmoid, softmax, flatten, conv, max_pool, average_pool) runs as that trace, forward
    and backward. Any other function (a NumPy call, say) runs as it is, with no
    gradient: fine where nothing before it trains (preprocessing at the input), and
    refused, with the reason, when a model would train through it.

    A Lambda holds Python code, which cnnx files do not hold: a model with one saves its
    weights (save_weights) but not its architecture.

    >>> double = cnnx.layers.Lambda(lambda x: x * 2.0)
    >>> double(np.array([[1.0, 2.0]]))
    array([[2., 4.]], dtype=float32)
    """

    def __init__(self, function, output_shape=None, mask=None, arguments=None, **kwargs):
        super().__init__(**kwargs)
        refuse_unimplemented("Lambda", mask=(mask, None))
        if not callable(function):
            raise TypeError(f"Lambda {self.name!r}: `function` must be callable, received "
                            f"{type(function).__name__}")
        if arguments is not None and not isinstance(arguments, dict):
            raise TypeError(f"Lambda {self.name!r}: `arguments` must be a dict, received "
                            f"{type(arguments).__name__}")
        self.function = function
        self.arguments = dict(arguments or {})
        self._declared_output_shape = (tuple(output_shape) if output_shape is not None
                                       else None)
        self._trace = None
        self._why_no_gradient = "it is not built"

    def build(self, input_shape):
        multi = isinstance(input_shape, list)
        shapes = input_shape if multi else [input_shape]
        try:
            self._trace = _tracing.trace(self.function, shapes, multi, self.arguments)
            self._why_no_gradient = None
        except (TypeError, ValueError, AttributeError) as e:
            self._trace = None
            self._why_no_gradient = (f"its function is not made of arithmetic and "
                                     f"differentiable cnnx.ops calls ({type(e).__name__}: "
                                     f"{e})")

    def compute_output_shape(self, input_shape):
        if self._trace is not None:
            return self._trace.output_shape
        if self._declared_output_shape is not None:
            return (None,) + self._declared_output_shape
        multi = isinstance(input_shape, list)
        probes = [np.zeros((1,) + tuple(s[1:]), self.dtype)
                  for s in (input_shape if multi else [input_shape])]
        y = np.asarray(self.function(probes if multi else probes[0], **self.arguments))
        return (None,) + y.shape[1:]

    def forward(self, ctx, inputs, training=False):  # noqa: ARG002
        if self._trace is None:
            y = np.asarray(self.function(inputs, **self.arguments))
            return y if y.dtype == self.dtype else y.astype(self.dtype)
        arrays = inputs if isinstance(inputs, list) else [inputs]
        y, ctx.saved["values"] = self._trace.forward(arrays)
        return y

    @property
    def has_backward(self):
        return self._trace is not None

    @property
    def no_backward_reason(self):
        return self._why_no_gradient

    def backward(self, ctx, grad):
        if self._trace is None:
            raise NotImplementedError(f"Lambda {self.name!r} has no gradient: "
                                      f"{self._why_no_gradient}")
        grads = self._trace.backward(ctx.saved["values"], grad)
        return grads if len(grads) > 1 else grads[0]

    def get_config(self):
        raise TypeError(f"Lambda {self.name!r}: its function is Python code, and cnnx "
                        f"files hold no code. Save the weights (save_weights) and rebuild "
                        f"the model in code, or replace the Lambda with layers")

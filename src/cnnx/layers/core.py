"""InputLayer, Dense, Activation, ReLU, LeakyReLU, Softmax, Dropout, Flatten, Reshape."""
import numbers

import numpy as np

from .. import _random, activations, initializers, ops, regularizers
from .base import REGISTRY, KerasTensor, Layer

__all__ = ["InputLayer", "Input", "Dense", "Activation", "ReLU", "LeakyReLU", "Softmax",
           "Dropout", "Flatten", "Reshape"]


def _positive_int(value, name, where):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{where}: `{name}` must be a positive int, received {value!r}")
    return int(value)


@REGISTRY.register()
class InputLayer(Layer):
    """Declares the shape of one sample (without the batch axis)."""

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

    def _symbolic(self):
        """The KerasTensor this input layer stands for (one per layer)."""
        if getattr(self, "output", None) is None:
            self.output = KerasTensor((self.batch_size,) + self._input_shape_arg, self.dtype,
                                      layer=self, name=self.name)
        return self.output

    def call(self, inputs, training=False):  # noqa: ARG002 (Keras's signature)
        return inputs

    def backward(self, grad):
        return grad

    def get_config(self):   # Keras's InputLayer config: name, dtype and shape
        return {"name": self.name, "dtype": self.dtype.name,
                "shape": list(self._input_shape_arg)}


def Input(shape=None, batch_size=None, name=None, dtype=None):
    """keras.Input: the symbolic input of a model. In a Sequential list it declares the
    input shape; in the functional API, layers called on it build the graph."""
    layer = InputLayer(shape=shape, batch_size=batch_size, name=name, dtype=dtype)
    return layer._symbolic()


class _Activated(Layer):
    """A layer whose output goes through an activation. ReLU is fused into the kernel;
    when the model fuses a final softmax/sigmoid into the loss, `_emit_logits` is set and
    call returns the pre-activation."""

    def _init_activation(self, activation):
        self.activation = activations.get(activation)
        self._act = self.activation.__name__
        self._emit_logits = False
        self._need_input_grad = True

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
    def _fused_relu(self):
        return self._act == "relu" and not self._emit_logits

    def _activate(self, z):
        """z is the kernel's output (ReLU already applied when fused)."""
        if self._emit_logits or self._act in ("linear", "relu"):
            self._out = z
            return z
        y = self.activation(z)
        self._z, self._out = z, y
        return y

    def _activation_grad(self, grad):
        if self._emit_logits or self._act == "linear":
            return grad
        if self._act == "relu":
            return ops.relu_backward(grad, self._out, out=self._buffer("dz", grad.shape))
        return self.activation.grad(grad, self._z, self._out)


@REGISTRY.register()
class Dense(_Activated):
    """y = activation(x @ kernel + bias), over the last axis of a 2-D input."""

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

    def call(self, inputs, training=False):  # noqa: ARG002 (Keras's signature)
        z = ops.dense(inputs, self.kernel.value, self.bias.value if self.use_bias else None,
                      "relu" if self._fused_relu else None,
                      out=self._buffer("z", (inputs.shape[0], self.units)))
        self._x = inputs
        return self._activate(z)

    def backward(self, grad):
        g = self._activation_grad(grad)
        x = self._x
        dx, dk, db = ops.dense_backward(
            x, self.kernel.value, g, self.use_bias, self._need_input_grad,
            out=(self._buffer("dx", x.shape) if self._need_input_grad else None,
                 self._buffer("dkernel", self.kernel.shape),
                 self._buffer("dbias", (self.units,)) if self.use_bias else None))
        self.kernel.grad = dk
        if self.use_bias:
            self.bias.grad = db
        return dx



@REGISTRY.register()
class Activation(_Activated):
    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self._init_activation(activation)

    def call(self, inputs, training=False):  # noqa: ARG002 (Keras's signature)
        if self._act == "relu" and not self._emit_logits:
            return self._activate(ops.relu(inputs, out=self._buffer("y", inputs.shape)))
        return self._activate(inputs)

    def backward(self, grad):
        return self._activation_grad(grad)



@REGISTRY.register()
class ReLU(Layer):
    """max(x, 0) by default; Keras's max_value, negative_slope and threshold too."""

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

    def call(self, inputs, training=False):  # noqa: ARG002 (Keras's signature)
        self._x = inputs
        if self._plain:
            self._y = ops.relu(inputs, out=self._buffer("y", inputs.shape))
            return self._y
        y = np.where(inputs >= self.threshold, inputs,
                     self.negative_slope * (inputs - self.threshold)).astype(inputs.dtype)
        return y if self.max_value is None else np.minimum(y, self.max_value)

    def backward(self, grad):
        if self._plain:
            return ops.relu_backward(grad, self._y, out=self._buffer("dx", grad.shape))
        x = self._x
        slope = np.where(x >= self.threshold, 1.0, self.negative_slope)
        if self.max_value is not None:
            slope = np.where(x >= self.max_value, 0.0, slope)
        return (grad * slope).astype(grad.dtype)



@REGISTRY.register()
class LeakyReLU(Layer):
    def __init__(self, negative_slope=0.3, **kwargs):
        super().__init__(**kwargs)
        if negative_slope < 0:
            raise ValueError(f"LeakyReLU {self.name!r}: `negative_slope` must be >= 0, "
                             f"received {negative_slope}")
        self.negative_slope = float(negative_slope)

    def call(self, inputs, training=False):  # noqa: ARG002 (Keras's signature)
        self._x = inputs
        return np.where(inputs > 0, inputs, inputs * inputs.dtype.type(self.negative_slope))

    def backward(self, grad):
        return np.where(self._x > 0, grad, grad * grad.dtype.type(self.negative_slope))



@REGISTRY.register()
class Softmax(_Activated):
    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if axis != -1:
            raise ValueError(f"Softmax {self.name!r}: only axis=-1 is supported, "
                             f"received {axis}")
        self.axis = axis
        self._init_activation("softmax")

    def call(self, inputs, training=False):  # noqa: ARG002 (Keras's signature)
        return self._activate(inputs)

    def backward(self, grad):
        return self._activation_grad(grad)



@REGISTRY.register()
class Dropout(Layer):
    """Inverted dropout: in training, zero a `rate` fraction and scale the rest by
    1/(1 - rate); in inference, the identity."""

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
        self._active = False

    def call(self, inputs, training=False):
        self._active = training and self.rate > 0
        if not self._active:
            return inputs
        rng = self._rng or _random.generator()
        keep = self._buffer("keep", inputs.shape)
        np.greater_equal(rng.random(inputs.shape, dtype=keep.dtype), self.rate, out=keep)
        keep *= keep.dtype.type(1 / (1 - self.rate))
        return np.multiply(inputs, keep, out=self._buffer("y", inputs.shape))

    def backward(self, grad):
        if not self._active:
            return grad
        return np.multiply(grad, self._buffers["keep"], out=self._buffer("dx", grad.shape))



@REGISTRY.register()
class Flatten(Layer):
    """(N, H, W, C) -> (N, H*W*C), row by row: height, then width, then channels."""

    def compute_output_shape(self, input_shape):
        return (input_shape[0], int(np.prod(input_shape[1:])))

    def call(self, inputs, training=False):  # noqa: ARG002 (Keras's signature)
        self._shape = inputs.shape
        return inputs.reshape(inputs.shape[0], -1)

    def backward(self, grad):
        return grad.reshape(self._shape)


@REGISTRY.register()
class Reshape(Layer):
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

    def call(self, inputs, training=False):  # noqa: ARG002 (Keras's signature)
        self._shape = inputs.shape
        return inputs.reshape((inputs.shape[0],) + self.output_shape[1:])

    def backward(self, grad):
        return grad.reshape(self._shape)



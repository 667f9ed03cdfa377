"""Conv2D (NHWC, kernel (kh, kw, in, out), ReLU fused into the kernel), DepthwiseConv2D
and SeparableConv2D."""
import warnings

import numpy as np

from .. import initializers, ops, regularizers
from .._compat import refuse_unimplemented
from .._geometry import (
    conv_output_length,
    conv_transpose_output_length,
    normalize_padding,
    normalize_tuple,
)
from .base import REGISTRY, CompiledOp, refolding
from .core import _Activated, _positive_int

__all__ = ["Conv2D", "Convolution2D", "DepthwiseConv2D", "SeparableConv2D",
           "Conv2DTranspose", "Conv1D"]


@REGISTRY.register()
class Conv2D(_Activated):
    # Conv2D(32, 3, 3): Keras 3 reads strides=3; Keras 2 read a 3x3 kernel.
    """2-D convolution over NHWC images: `filters` output channels, each the sum over the
    input channels of a kernel_size window (cross-correlation, as Keras), plus a bias,
    through an activation (ReLU is fused into the kernel). Kernel (kh, kw, in,
    filters); strides, padding "valid" or "same", dilation_rate (not both above 1),
    Keras's initializers and regularizers. A third positional int is `strides`, as in
    Keras 3 (Keras 2 read it as the kernel's width: a warning says so).

    Parameters
    ----------
    filters : int, the number of output channels (feature maps)
    kernel_size : int or (kh, kw)
    strides, dilation_rate : int or pair
    padding : "valid" or "same"
    activation : a name ("relu", ...), a function from cnnx.activations, or None

    Input (N, H, W, C); output (N, OH, OW, filters); weights kernel (kh, kw, C, filters)
    and bias (filters,).

    Examples
    --------
    >>> conv = cnnx.layers.Conv2D(8, 3, padding="same", activation="relu")
    >>> conv(np.zeros((2, 28, 28, 1), np.float32)).shape
    (2, 28, 28, 8)
    >>> [w.shape for w in conv.get_weights()]
    [(3, 3, 1, 8), (8,)]
    """
    _keras2_positional = (2, "strides", "the kernel's width (a 3x3 kernel)")

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid",
                 data_format=None, dilation_rate=(1, 1), activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        where = f"Conv2D {self.name!r}"
        self.filters = _positive_int(filters, "filters", where)
        self.kernel_size = normalize_tuple(kernel_size, 2, "kernel_size", where)
        self.strides = normalize_tuple(strides, 2, "strides", where)
        self.padding = normalize_padding(padding, where)
        self.dilation_rate = normalize_tuple(dilation_rate, 2, "dilation_rate", where)
        if data_format not in (None, "channels_last"):
            raise ValueError(f"{where}: only data_format='channels_last' is supported, "
                             f"received {data_format!r}")
        self.data_format = "channels_last"
        if self.strides != (1, 1) and self.dilation_rate != (1, 1):
            raise ValueError(f"{where}: strides > 1 and dilation_rate > 1 cannot be combined "
                             f"(as in Keras), received strides={self.strides}, "
                             f"dilation_rate={self.dilation_rate}")
        self._init_activation(activation)
        self._init_weight_options(use_bias, kernel_initializer, bias_initializer,
                                  kernel_regularizer, bias_regularizer)

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"Conv2D {self.name!r} expects 4-D input "
                             f"(batch, height, width, channels), received shape "
                             f"{tuple(input_shape)}")
        self._add_kernel_and_bias(self.kernel_size + (input_shape[-1], self.filters),
                                  self.filters)

    def compute_output_shape(self, input_shape):
        n, h, w, _ = input_shape
        oh, ow = (conv_output_length(size, k, self.padding, s, d) for size, k, s, d in
                  zip((h, w), self.kernel_size, self.strides, self.dilation_rate))
        if oh < 1 or ow < 1:
            raise ValueError(f"Conv2D {self.name!r}: the kernel {self.kernel_size} does not "
                             f"fit the input of height and width {(h, w)} under "
                             f"padding='valid'")
        return (n, oh, ow, self.filters)

    _folds_affine = True

    def compiled_ops(self, ctx, dtype):
        return self._compiled_product(ctx, dtype, "conv2d", strides=self.strides,
                                      padding=self.padding, dilation=self.dilation_rate)

    def forward(self, ctx, inputs, training=False):  # noqa: ARG002
        kernel, bias = self._weights_for(ctx, inputs.dtype)
        z = ops.conv2d(inputs, kernel, bias, self.strides, self.padding, self.dilation_rate,
                       "relu" if self._fused_relu(ctx) else None,
                       out=ctx.buffer("z", (inputs.shape[0],) + self.output_shape[1:],
                                      inputs.dtype))
        ctx.saved["x"] = inputs
        return self._activate(ctx, z)

    def backward(self, ctx, grad):
        x = ctx.saved["x"]
        need = ctx.need_input_grad
        relu_output = None
        if self._fused_relu(ctx) and not need and not ctx.grad_is_preactivation:
            g, relu_output = grad, ctx.saved["out"]   # the kernel masks dy itself
        else:
            g = self._activation_grad(ctx, grad)
        dx, dk, db = ops.conv2d_backward(
            x, self.kernel.value, g, self.strides, self.padding, self.dilation_rate,
            self.use_bias, need,
            out=(ctx.buffer("dx", x.shape, x.dtype) if need else None,
                 ctx.buffer("dkernel", self.kernel.shape, x.dtype),
                 ctx.buffer("dbias", (self.filters,), x.dtype) if self.use_bias else None),
            relu_output=relu_output)
        self._set_kernel_grads(ctx, dk, db)
        return dx


@REGISTRY.register()
class Convolution2D(Conv2D):
    """Keras 1's name, with Keras 1's reading: Convolution2D(32, 3, 3) is 32 filters of
    3 x 3 (nb_filter, nb_row, nb_col), as Keras 1 and 2 both read it.

    >>> conv = cnnx.layers.Convolution2D(8, 3, 3)   # Keras 1: a 3x3 kernel
    >>> conv(np.zeros((1, 10, 10, 2), np.float32)).shape
    (1, 8, 8, 8)
    """

    _legacy_arguments = ("nb_row", "nb_col")
    _keras2_positional = None   # reads Keras 1's way: no Keras 3 reading to warn about

    def __init__(self, filters=None, kernel_size=None, *args, nb_row=None, nb_col=None,
                 **kwargs):
        if args and isinstance(args[0], int) and isinstance(kernel_size, int):
            nb_row, nb_col, args = kernel_size, args[0], args[1:]
            kernel_size = None
        if nb_row is not None or nb_col is not None:
            if kernel_size is not None or nb_row is None or nb_col is None:
                raise TypeError("Convolution2D: give the kernel as (nb_row, nb_col) or as "
                                "kernel_size, not both")
            warnings.warn("Convolution2D(filters, nb_row, nb_col) is the Keras 1 spelling; "
                          "use Conv2D(filters, (nb_row, nb_col))", DeprecationWarning,
                          stacklevel=3)
            kernel_size = (nb_row, nb_col)
        super().__init__(filters, kernel_size, *args, **kwargs)


class _SpatialConv(_Activated):
    """The geometry shared by DepthwiseConv2D and SeparableConv2D."""

    def _init_geometry(self, kernel_size, strides, padding, data_format, dilation_rate,
                       depth_multiplier=None):
        where = f"{type(self).__name__} {self.name!r}"
        self.kernel_size = normalize_tuple(kernel_size, 2, "kernel_size", where)
        self.strides = normalize_tuple(strides, 2, "strides", where)
        self.padding = normalize_padding(padding, where)
        self.dilation_rate = normalize_tuple(dilation_rate, 2, "dilation_rate", where)
        if depth_multiplier is not None:
            self.depth_multiplier = _positive_int(depth_multiplier, "depth_multiplier",
                                                  where)
        if data_format not in (None, "channels_last"):
            raise ValueError(f"{where}: only data_format='channels_last' is supported, "
                             f"received {data_format!r}")
        self.data_format = "channels_last"
        if self.strides != (1, 1) and self.dilation_rate != (1, 1):
            raise ValueError(f"{where}: strides > 1 and dilation_rate > 1 cannot be combined "
                             f"(as in Keras), received strides={self.strides}, "
                             f"dilation_rate={self.dilation_rate}")

    def _check_rank(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"{type(self).__name__} {self.name!r} expects 4-D input "
                             f"(batch, height, width, channels), received shape "
                             f"{tuple(input_shape)}")

    def _spatial_output(self, input_shape, channels):
        n, h, w, _ = input_shape
        oh, ow = (conv_output_length(size, k, self.padding, s, d) for size, k, s, d in
                  zip((h, w), self.kernel_size, self.strides, self.dilation_rate))
        if oh < 1 or ow < 1:
            raise ValueError(f"{type(self).__name__} {self.name!r}: the kernel "
                             f"{self.kernel_size} does not fit the input of height and "
                             f"width {(h, w)} under padding='valid'")
        return (n, oh, ow, channels)

    def _relu_in_place(self, ctx, z):
        """ReLU after a kernel that does not fuse it (the transposed convolution)."""
        return ops.relu(z, out=z) if self._fused_relu(ctx) else z


@REGISTRY.register()
class DepthwiseConv2D(_SpatialConv):
    """Each input channel convolved with its own `depth_multiplier` filters: output
    channel c * depth_multiplier + m, as in Keras. Kernel (kh, kw, in, depth_multiplier).

    >>> conv = cnnx.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same")
    >>> conv(np.zeros((1, 8, 8, 4), np.float32)).shape
    (1, 8, 8, 8)
    >>> [w.shape for w in conv.get_weights()]
    [(3, 3, 4, 2), (8,)]
    """

    def __init__(self, kernel_size, strides=(1, 1), padding="valid", depth_multiplier=1,
                 data_format=None, dilation_rate=(1, 1), activation=None, use_bias=True,
                 depthwise_initializer="glorot_uniform", bias_initializer="zeros",
                 depthwise_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 depthwise_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        refuse_unimplemented(f"DepthwiseConv2D {self.name!r}",
                             depthwise_constraint=(depthwise_constraint, None),
                             bias_constraint=(bias_constraint, None))
        self.activity_regularizer = regularizers.get(activity_regularizer)
        self.depthwise_constraint = self.bias_constraint = None
        self._init_geometry(kernel_size, strides, padding, data_format, dilation_rate,
                            depth_multiplier)
        self._init_activation(activation)
        self._init_weight_options(use_bias, depthwise_initializer, bias_initializer,
                                  depthwise_regularizer, bias_regularizer)

    # Keras's names for the kernel options.
    depthwise_initializer = property(lambda self: self.kernel_initializer)
    depthwise_regularizer = property(lambda self: self.kernel_regularizer)

    def build(self, input_shape):
        self._check_rank(input_shape)
        channels = input_shape[-1]
        self._add_kernel_and_bias(self.kernel_size + (channels, self.depth_multiplier),
                                  channels * self.depth_multiplier)

    def compute_output_shape(self, input_shape):
        return self._spatial_output(input_shape, input_shape[-1] * self.depth_multiplier)

    _folds_affine = True   # per output channel c * depth_multiplier + m

    def _weights_for(self, ctx, dtype):
        kernel = self.kernel.value
        bias = self.bias.value if self.use_bias else None
        if ctx.affine is None:
            return kernel, bias
        scale, shift = ctx.affine.inference_affine(dtype)
        return (kernel * scale.reshape(kernel.shape[2:]),
                shift if bias is None else bias * scale + shift)

    def compiled_ops(self, ctx, dtype):
        if self.depth_multiplier != 1:
            return None
        return self._compiled_product(ctx, dtype, "depthwise_conv2d", strides=self.strides,
                                      padding=self.padding, dilation=self.dilation_rate)

    def forward(self, ctx, inputs, training=False):  # noqa: ARG002
        kernel, bias = self._weights_for(ctx, inputs.dtype)
        z = ops.depthwise_conv2d(
            inputs, kernel, bias, self.strides, self.padding, self.dilation_rate,
            "relu" if self._fused_relu(ctx) else None,
            out=ctx.buffer("z", (inputs.shape[0],) + self.output_shape[1:], inputs.dtype))
        ctx.saved["x"] = inputs
        return self._activate(ctx, z)

    def backward(self, ctx, grad):
        x = ctx.saved["x"]
        need = ctx.need_input_grad
        dx, dk, db = ops.depthwise_conv2d_backward(
            x, self.kernel.value, self._activation_grad(ctx, grad), self.strides,
            self.padding, self.dilation_rate, self.use_bias, need,
            out=(ctx.buffer("dx", x.shape, x.dtype) if need else None,
                 ctx.buffer("dkernel", self.kernel.shape, x.dtype),
                 ctx.buffer("dbias", self.bias.shape, x.dtype) if self.use_bias else None))
        self._set_kernel_grads(ctx, dk, db)
        return dx


@REGISTRY.register()
class SeparableConv2D(_SpatialConv):
    """A depthwise convolution (kernel_size, strides, dilation; no bias) followed by a
    pointwise 1 x 1 convolution to `filters` channels with the bias and activation, as in
    Keras. The pointwise step runs on the GEMM kernels, with ReLU fused.

    >>> conv = cnnx.layers.SeparableConv2D(16, 3)
    >>> conv(np.zeros((1, 8, 8, 4), np.float32)).shape
    (1, 6, 6, 16)
    >>> [w.shape for w in conv.get_weights()]
    [(3, 3, 4, 1), (1, 1, 4, 16), (16,)]
    """

    _folds_affine = True   # into the pointwise kernel and the bias

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid",
                 data_format=None, dilation_rate=(1, 1), depth_multiplier=1, activation=None,
                 use_bias=True, depthwise_initializer="glorot_uniform",
                 pointwise_initializer="glorot_uniform", bias_initializer="zeros",
                 depthwise_regularizer=None, pointwise_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, depthwise_constraint=None,
                 pointwise_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        where = f"SeparableConv2D {self.name!r}"
        refuse_unimplemented(where, depthwise_constraint=(depthwise_constraint, None),
                             pointwise_constraint=(pointwise_constraint, None),
                             bias_constraint=(bias_constraint, None))
        self.activity_regularizer = regularizers.get(activity_regularizer)
        self.depthwise_constraint = None
        self.pointwise_constraint = self.bias_constraint = None
        self.filters = _positive_int(filters, "filters", where)
        self._init_geometry(kernel_size, strides, padding, data_format, dilation_rate,
                            depth_multiplier)
        self._init_activation(activation)
        self.use_bias = bool(use_bias)
        self.depthwise_initializer = initializers.get(depthwise_initializer)
        self.pointwise_initializer = initializers.get(pointwise_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.depthwise_regularizer = regularizers.get(depthwise_regularizer)
        self.pointwise_regularizer = regularizers.get(pointwise_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)

    def build(self, input_shape):
        self._check_rank(input_shape)
        depth = input_shape[-1] * self.depth_multiplier
        self.depthwise_kernel = self.add_weight(
            "depthwise_kernel", self.kernel_size + (input_shape[-1], self.depth_multiplier),
            self.depthwise_initializer, self.depthwise_regularizer)
        self.pointwise_kernel = self.add_weight(
            "pointwise_kernel", (1, 1, depth, self.filters), self.pointwise_initializer,
            self.pointwise_regularizer)
        self.bias = (self.add_weight("bias", (self.filters,), self.bias_initializer,
                                     self.bias_regularizer) if self.use_bias else None)

    def compute_output_shape(self, input_shape):
        return self._spatial_output(input_shape, self.filters)

    def _pointwise_weights(self, ctx, dtype):
        """The pointwise kernel and bias, with a following BatchNormalization folded in
        (inference: ctx.affine)."""
        pointwise = self.pointwise_kernel.value
        bias = self.bias.value if self.use_bias else None
        if ctx.affine is not None:
            scale, shift = ctx.affine.inference_affine(dtype)
            pointwise = pointwise * scale
            bias = shift if bias is None else bias * scale + shift
        return pointwise, bias

    def compiled_ops(self, ctx, dtype):
        weights = [self.depthwise_kernel, self.pointwise_kernel] + (
            [self.bias] if self.use_bias else [])
        after = self._compiled_activation()
        if self.depth_multiplier != 1 or after is None or any(
                w.dtype != dtype for w in weights):
            return None
        depthwise = CompiledOp("depthwise_conv2d", self.depthwise_kernel.value,
                               watch=(self.depthwise_kernel,), strides=self.strides,
                               padding=self.padding, dilation=self.dilation_rate)
        pointwise, bias = self._pointwise_weights(ctx, dtype)
        if ctx.affine is None:
            point = CompiledOp("conv2d", pointwise, bias, watch=weights[1:],
                               relu=self._fused_relu(ctx))
        else:   # the folded weights: arrays of the op's own, folded again when they move
            pointwise, bias = np.array(pointwise, dtype), np.array(bias, dtype)
            refresh = refolding(self.weights + ctx.affine.weights,
                                lambda: self._pointwise_weights(ctx, dtype),
                                (pointwise, bias), lambda: ctx.affine.epsilon)
            point = CompiledOp("conv2d", pointwise, bias, refresh=refresh,
                               relu=self._fused_relu(ctx))
        return [depthwise, point] + after

    def forward(self, ctx, inputs, training=False):  # noqa: ARG002
        n = inputs.shape[0]
        depth_shape = (n,) + self.output_shape[1:3] + (self.depthwise_kernel.shape[2]
                                                       * self.depth_multiplier,)
        t = ops.depthwise_conv2d(inputs, self.depthwise_kernel.value, None, self.strides,
                                 self.padding, self.dilation_rate,
                                 out=ctx.buffer("t", depth_shape, inputs.dtype))
        pointwise, bias = self._pointwise_weights(ctx, inputs.dtype)
        z = ops.conv2d(t, pointwise, bias, 1, "valid", 1,
                       "relu" if self._fused_relu(ctx) else None,
                       out=ctx.buffer("z", (n,) + self.output_shape[1:], inputs.dtype))
        ctx.saved.update(x=inputs, t=t)
        return self._activate(ctx, z)

    def backward(self, ctx, grad):
        x, t = ctx.saved["x"], ctx.saved["t"]
        g = self._activation_grad(ctx, grad)
        dt, dpk, db = ops.conv2d_backward(
            t, self.pointwise_kernel.value, g, 1, "valid", 1, self.use_bias, True,
            out=(ctx.buffer("dt", t.shape, t.dtype),
                 ctx.buffer("dpointwise", self.pointwise_kernel.shape, t.dtype),
                 ctx.buffer("dbias", (self.filters,), t.dtype) if self.use_bias else None))
        need = ctx.need_input_grad
        dx, ddk, _ = ops.depthwise_conv2d_backward(
            x, self.depthwise_kernel.value, dt, self.strides, self.padding,
            self.dilation_rate, False, need,
            out=(ctx.buffer("dx", x.shape, x.dtype) if need else None,
                 ctx.buffer("ddepthwise", self.depthwise_kernel.shape, x.dtype), None))
        ctx.add_grad(self.depthwise_kernel, ddk)
        ctx.add_grad(self.pointwise_kernel, dpk)
        if self.use_bias:
            ctx.add_grad(self.bias, db)
        return dx


@REGISTRY.register()
class Conv2DTranspose(_SpatialConv):
    """The transposed convolution (the gradient of a convolution with respect to its
    input; "deconvolution"), as Keras's Conv2DTranspose: kernel (kh, kw, filters, in),
    output size by Keras's rule (strides times larger under "same"), output_padding to
    choose among the sizes that map back to the input. Runs on the compiled kernels of
    Conv2D's backward pass.

    >>> up = cnnx.layers.Conv2DTranspose(4, 3, strides=2, padding="same")
    >>> up(np.zeros((1, 7, 7, 8), np.float32)).shape
    (1, 14, 14, 4)
    """

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid",
                 output_padding=None, data_format=None, dilation_rate=(1, 1), activation=None,
                 use_bias=True, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        where = f"Conv2DTranspose {self.name!r}"
        refuse_unimplemented(where, kernel_constraint=(kernel_constraint, None),
                             bias_constraint=(bias_constraint, None))
        self.activity_regularizer = regularizers.get(activity_regularizer)
        self.kernel_constraint = self.bias_constraint = None
        self.filters = _positive_int(filters, "filters", where)
        self._init_geometry(kernel_size, strides, padding, data_format, dilation_rate)
        self.output_padding = (None if output_padding is None else normalize_tuple(
            output_padding, 2, "output_padding", where, allow_zero=True))
        if self.output_padding is not None and any(
                p >= s for p, s in zip(self.output_padding, self.strides)):
            raise ValueError(f"{where}: `output_padding` {self.output_padding} must be "
                             f"smaller than `strides` {self.strides}")
        self._init_activation(activation)
        self._init_weight_options(use_bias, kernel_initializer, bias_initializer,
                                  kernel_regularizer, bias_regularizer)

    def build(self, input_shape):
        self._check_rank(input_shape)
        self._add_kernel_and_bias(self.kernel_size + (self.filters, input_shape[-1]),
                                  self.filters)

    def compute_output_shape(self, input_shape):
        n, h, w, _ = input_shape
        pads = self.output_padding or (None, None)
        size = [None if length is None else conv_transpose_output_length(
            length, k, self.padding, s, p, d) for length, k, s, p, d in
            zip((h, w), self.kernel_size, self.strides, pads, self.dilation_rate)]
        return (n, size[0], size[1], self.filters)

    def _args(self):
        return self.strides, self.padding, self.output_padding, self.dilation_rate

    def forward(self, ctx, inputs, training=False):  # noqa: ARG002
        z = ops.conv2d_transpose(
            inputs, self.kernel.value, self.bias.value if self.use_bias else None,
            *self._args(),
            out=ctx.buffer("z", (inputs.shape[0],) + self.output_shape[1:], inputs.dtype))
        ctx.saved["x"] = inputs
        return self._activate(ctx, self._relu_in_place(ctx, z))

    def backward(self, ctx, grad):
        x = ctx.saved["x"]
        need = ctx.need_input_grad
        dx, dk, db = ops.conv2d_transpose_backward(
            x, self.kernel.value, self._activation_grad(ctx, grad), *self._args(),
            use_bias=self.use_bias, input_grad=need,
            out=(ctx.buffer("dx", x.shape, x.dtype) if need else None,
                 ctx.buffer("dkernel", self.kernel.shape, x.dtype),
                 ctx.buffer("dbias", (self.filters,), x.dtype) if self.use_bias else None))
        self._set_kernel_grads(ctx, dk, db)
        return dx


@REGISTRY.register()
class Conv1D(_Activated):
    """1-D convolution over (batch, steps, channels), kernel (kernel_size, in, filters),
    run as Conv2D's compiled kernels on images one row high. padding "valid", "same" or
    "causal" (zeros before the sequence only: output t sees inputs up to t).

    >>> conv = cnnx.layers.Conv1D(4, 3, padding="causal")
    >>> conv(np.zeros((2, 10, 3), np.float32)).shape
    (2, 10, 4)
    """

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, groups=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        where = f"Conv1D {self.name!r}"
        refuse_unimplemented(where, groups=(groups, 1),
                             kernel_constraint=(kernel_constraint, None),
                             bias_constraint=(bias_constraint, None))
        self.groups = 1
        self.activity_regularizer = regularizers.get(activity_regularizer)
        self.kernel_constraint = self.bias_constraint = None
        self.filters = _positive_int(filters, "filters", where)
        self.kernel_size = normalize_tuple(kernel_size, 1, "kernel_size", where)
        self.strides = normalize_tuple(strides, 1, "strides", where)
        self.dilation_rate = normalize_tuple(dilation_rate, 1, "dilation_rate", where)
        if not isinstance(padding, str) or padding.lower() not in ("valid", "same", "causal"):
            raise ValueError(f"{where}: `padding` must be 'valid', 'same' or 'causal', "
                             f"received {padding!r}")
        self.padding = padding.lower()
        if data_format not in (None, "channels_last"):
            raise ValueError(f"{where}: only data_format='channels_last' is supported, "
                             f"received {data_format!r}")
        self.data_format = "channels_last"
        if self.strides != (1,) and self.dilation_rate != (1,):
            raise ValueError(f"{where}: strides > 1 and dilation_rate > 1 cannot be combined "
                             f"(as in Keras)")
        self._init_activation(activation)
        self._init_weight_options(use_bias, kernel_initializer, bias_initializer,
                                  kernel_regularizer, bias_regularizer)

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"Conv1D {self.name!r} expects 3-D input (batch, steps, "
                             f"channels), received shape {tuple(input_shape)}")
        self._add_kernel_and_bias(self.kernel_size + (input_shape[-1], self.filters),
                                  self.filters)

    def _causal_pad(self):
        return (self.kernel_size[0] - 1) * self.dilation_rate[0] \
            if self.padding == "causal" else 0

    def compute_output_shape(self, input_shape):
        n, steps, _ = input_shape
        if steps is None:
            return (n, None, self.filters)
        padding = "valid" if self.padding == "causal" else self.padding
        out = conv_output_length(steps + self._causal_pad(), self.kernel_size[0], padding,
                                 self.strides[0], self.dilation_rate[0])
        if out < 1:
            raise ValueError(f"Conv1D {self.name!r}: the kernel {self.kernel_size} does not "
                             f"fit {steps} steps under padding={self.padding!r}")
        return (n, out, self.filters)

    def _geometry(self):
        return ((1,) + self.strides, "valid" if self.padding == "causal" else self.padding,
                (1,) + self.dilation_rate)

    def _image(self, x):
        """x as an image one row high, the causal zeros in front."""
        pad = self._causal_pad()
        if pad:
            x = np.pad(x, ((0, 0), (pad, 0), (0, 0)))
        return x.reshape(x.shape[0], 1, x.shape[1], x.shape[2])

    def forward(self, ctx, inputs, training=False):  # noqa: ARG002
        image = self._image(inputs)
        kernel = self.kernel.value.reshape((1,) + self.kernel.shape)
        n, steps, filters = (inputs.shape[0],) + self.output_shape[1:]
        z = ops.conv2d(image, kernel, self.bias.value if self.use_bias else None,
                       *self._geometry(), "relu" if self._fused_relu(ctx) else None,
                       out=ctx.buffer("z", (n, 1, steps, filters), inputs.dtype))
        ctx.saved["image"] = image
        return self._activate(ctx, z.reshape(n, steps, filters))

    def backward(self, ctx, grad):
        image = ctx.saved["image"]
        g = self._activation_grad(ctx, grad)
        n, steps, filters = g.shape
        need = ctx.need_input_grad
        dx, dk, db = ops.conv2d_backward(
            image, self.kernel.value.reshape((1,) + self.kernel.shape),
            g.reshape(n, 1, steps, filters), *self._geometry(), self.use_bias, need)
        self._set_kernel_grads(ctx, dk.reshape(self.kernel.shape), db)
        if not need:
            return None
        return np.ascontiguousarray(dx.reshape(image.shape[0], image.shape[2],
                                               image.shape[3])[:, self._causal_pad():])

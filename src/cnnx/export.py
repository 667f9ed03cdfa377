"""cnnx.export: a model as an ONNX graph for inference (the `onnx` extra:
pip install "cnnx[onnx]").

    cnnx.export.to_onnx(model, "model.onnx")          # or model.export("model.onnx")

The graph takes the model's NHWC input by default (as the model does), transposes it
once, and runs every 4-D operation in ONNX's NCHW layout; input_layout="NCHW" takes
NCHW input instead and leaves no transpose at the input. Flatten, Reshape and Dense
work in Keras's channels-last order, so a transpose goes before a Flatten of an NCHW
tensor (ONNX flattens channels first). BatchNormalization uses its moving statistics;
Dropout, noise and random augmentation are the identity, as in inference. Layers with
no ONNX form here (Lambda: Python code) are refused, naming the layer.
"""
import os

import numpy as np

from ._geometry import conv_output_length, padding_before

__all__ = ["to_onnx"]

_ACTIVATIONS = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "elu": "Elu",
                "selu": "Selu", "softplus": "Softplus"}
_TO_NCHW, _TO_NHWC = [0, 3, 1, 2], [0, 2, 3, 1]


def _onnx():
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError:
        raise ImportError("cnnx.export needs the onnx package: pip install 'cnnx[onnx]' "
                          "(or pip install onnx)") from None
    return onnx, helper, numpy_helper


class _Graph:
    """The ONNX nodes and initializers being written, and each tensor's layout: "cl"
    (Keras's channels last, any rank) or "cf" (NCHW, 4-D only)."""

    def __init__(self, helper, numpy_helper, dtype):
        self.helper, self.numpy_helper, self.dtype = helper, numpy_helper, dtype
        self.nodes, self.inits, self.layout, self.count = [], [], {}, 0

    def name(self, base):
        self.count += 1
        return f"{base}_{self.count}"

    def const(self, value, base="c", dtype=None):
        name = self.name(base)
        self.inits.append(self.numpy_helper.from_array(
            np.ascontiguousarray(np.asarray(value, dtype or self.dtype)), name))
        return name

    def op(self, kind, inputs, layout, base=None, **attrs):
        out = self.name(base or kind.lower())
        self.nodes.append(self.helper.make_node(kind, list(inputs), [out], **attrs))
        self.layout[out] = layout
        return out

    def as_layout(self, tensor, layout, ndim):
        """tensor in the wanted layout (a Transpose where a 4-D tensor needs one)."""
        if ndim != 4 or self.layout[tensor] == layout:
            return tensor
        perm = _TO_NCHW if layout == "cf" else _TO_NHWC
        return self.op("Transpose", [tensor], layout, perm=perm)


def _pads(in_hw, kernel, strides, dilation, padding):
    """ONNX pads [top, left, bottom, right] for Keras's padding of a window."""
    begin, end = [], []
    for n, k, s, d in zip(in_hw, kernel, strides, dilation):
        out = conv_output_length(n, k, padding, s, d)
        before = padding_before(n, k, padding, s, d)
        span = (k - 1) * d + 1
        begin.append(before)
        end.append(max((out - 1) * s + span - n - before, 0))
    return begin + end


def _activation(g, x, name, layout):
    """x through a Keras activation, by name."""
    if name in (None, "linear"):
        return x
    if name in _ACTIVATIONS:
        return g.op(_ACTIVATIONS[name], [x], layout)
    if name == "softmax":
        return g.op("Softmax", [x], layout, axis=1 if layout == "cf" else -1)
    if name in ("silu", "swish"):
        return g.op("Mul", [x, g.op("Sigmoid", [x], layout)], layout)
    if name == "leaky_relu":
        return g.op("LeakyRelu", [x], layout, alpha=0.2)
    if name == "hard_sigmoid":
        return g.op("HardSigmoid", [x], layout, alpha=1 / 6, beta=0.5)
    if name == "gelu":   # x * Phi(x), exact: 0.5 x (1 + erf(x / sqrt 2))
        e = g.op("Erf", [g.op("Mul", [x, g.const(1 / np.sqrt(2))], layout)], layout)
        return g.op("Mul", [g.op("Mul", [x, g.const(0.5)], layout),
                            g.op("Add", [e, g.const(1.0)], layout)], layout)
    raise NotImplementedError(f"to_onnx: activation {name!r} has no ONNX form in cnnx")


def _channel_vector(g, values, layout, ndim):
    """A per-channel constant shaped to broadcast against a tensor of this layout."""
    values = np.asarray(values)
    if layout == "cf" and ndim == 4:
        return g.const(values.reshape(-1, 1, 1))
    return g.const(values)


def _layer(g, layer, inputs, shapes, out_shape):
    """The ONNX nodes of one layer call; returns its output tensor's name."""
    from . import layers as L
    kind = type(layer).__name__
    x, shape = inputs[0], shapes[0]
    ndim = len(shape)
    # Identities at inference; RandomCrop is not one (it crops and resizes).
    if isinstance(layer, (L.Dropout, L.GaussianNoise, L.GaussianDropout, L.SpatialDropout2D,
                          L.ActivityRegularization, L.InputLayer)) or (
            kind.startswith("Random") and not isinstance(layer, L.RandomCrop)):
        return x
    if isinstance(layer, L.Lambda):
        raise NotImplementedError(f"to_onnx: layer {layer.name!r} is a Lambda (Python "
                                  f"code), which has no ONNX form")
    if isinstance(layer, (L.Conv2D, L.DepthwiseConv2D, L.SeparableConv2D)):
        x = g.as_layout(x, "cf", 4)
        strides, dilation = list(layer.strides), list(layer.dilation_rate)
        pads = _pads(shape[1:3], layer.kernel_size, strides, dilation, layer.padding)
        common = dict(kernel_shape=list(layer.kernel_size), strides=strides, pads=pads,
                      dilations=dilation)
        if isinstance(layer, L.Conv2D):
            w = layer.kernel.value.transpose(3, 2, 0, 1)
            args = [x, g.const(w)] + ([g.const(layer.bias.value)] if layer.use_bias else [])
            y = g.op("Conv", args, "cf", **common)
        else:
            dk = layer.kernel if isinstance(layer, L.DepthwiseConv2D) \
                else layer.depthwise_kernel
            kh, kw, c, m = dk.shape
            w = dk.value.transpose(2, 3, 0, 1).reshape(c * m, 1, kh, kw)
            args = [x, g.const(w)]
            if isinstance(layer, L.DepthwiseConv2D) and layer.use_bias:
                args.append(g.const(layer.bias.value))
            y = g.op("Conv", args, "cf", group=c, **common)
            if isinstance(layer, L.SeparableConv2D):
                pw = layer.pointwise_kernel.value.transpose(3, 2, 0, 1)
                args = [y, g.const(pw)] + ([g.const(layer.bias.value)] if layer.use_bias
                                           else [])
                y = g.op("Conv", args, "cf", kernel_shape=[1, 1])
        return _activation(g, y, layer.activation.__name__, "cf")
    if isinstance(layer, L.Conv2DTranspose):
        x = g.as_layout(x, "cf", 4)
        kh, kw = layer.kernel_size
        begin, end, extra = [], [], []
        for n, o, k, s, d in zip(shape[1:3], out_shape[1:3], layer.kernel_size,
                                 layer.strides, layer.dilation_rate):
            full = (n - 1) * s + (k - 1) * d + 1
            before = padding_before(o, k, layer.padding, s, d)
            after = full - before - o
            begin.append(before)
            end.append(max(after, 0))
            extra.append(max(-after, 0))
        w = layer.kernel.value.transpose(3, 2, 0, 1)
        args = [x, g.const(w)] + ([g.const(layer.bias.value)] if layer.use_bias else [])
        y = g.op("ConvTranspose", args, "cf", kernel_shape=[kh, kw],
                 strides=list(layer.strides), dilations=list(layer.dilation_rate),
                 pads=begin + end, output_padding=extra)
        return _activation(g, y, layer.activation.__name__, "cf")
    if isinstance(layer, L.Dense):
        w = g.const(layer.kernel.value)
        y = g.op("MatMul", [x, w], "cl")
        if layer.use_bias:
            y = g.op("Add", [y, g.const(layer.bias.value)], "cl")
        return _activation(g, y, layer.activation.__name__, "cl")
    if isinstance(layer, (L.MaxPooling2D, L.AveragePooling2D)):
        x = g.as_layout(x, "cf", 4)
        pads = _pads(shape[1:3], layer.pool_size, layer.strides, (1, 1), layer.padding)
        if isinstance(layer, L.MaxPooling2D):
            return g.op("MaxPool", [x], "cf", kernel_shape=list(layer.pool_size),
                        strides=list(layer.strides), pads=pads)
        return g.op("AveragePool", [x], "cf", kernel_shape=list(layer.pool_size),
                    strides=list(layer.strides), pads=pads, count_include_pad=0)
    if isinstance(layer, (L.GlobalAveragePooling2D, L.GlobalMaxPooling2D)):
        x = g.as_layout(x, "cf", 4)
        y = g.op("GlobalAveragePool" if isinstance(layer, L.GlobalAveragePooling2D)
                 else "GlobalMaxPool", [x], "cf")
        if layer.keepdims:
            return y
        return g.op("Flatten", [y], "cl", axis=1)
    if isinstance(layer, L.Flatten):
        return g.op("Flatten", [g.as_layout(x, "cl", ndim)], "cl", axis=1)
    if isinstance(layer, L.Reshape):
        target = g.const([-1] + list(out_shape[1:]), "shape", np.int64)
        return g.op("Reshape", [g.as_layout(x, "cl", ndim), target], "cl")
    if isinstance(layer, L.BatchNormalization):
        c = shape[-1]
        lay = "cf" if ndim == 4 else "cl"
        x = g.as_layout(x, lay, ndim)
        if ndim not in (2, 4):
            raise NotImplementedError(f"to_onnx: BatchNormalization {layer.name!r} on "
                                      f"{ndim}-D tensors")
        gamma = layer.gamma.value if layer.scale else np.ones(c)
        beta = layer.beta.value if layer.center else np.zeros(c)
        return g.op("BatchNormalization",
                    [x, g.const(gamma), g.const(beta), g.const(layer.moving_mean.value),
                     g.const(layer.moving_variance.value)], lay, epsilon=layer.epsilon)
    if isinstance(layer, (L.Activation, L.Softmax)):
        return _activation(g, x, layer.activation.__name__, g.layout[x])
    if isinstance(layer, L.ReLU) and layer._plain:
        return g.op("Relu", [x], g.layout[x])
    if isinstance(layer, L.LeakyReLU):
        return g.op("LeakyRelu", [x], g.layout[x], alpha=layer.negative_slope)
    if isinstance(layer, L.ELU):
        return g.op("Elu", [x], g.layout[x], alpha=layer.alpha)
    if isinstance(layer, L.Rescaling):
        y = g.op("Mul", [x, g.const(layer.scale)], g.layout[x])
        return g.op("Add", [y, g.const(layer.offset)], g.layout[x]) if layer.offset else y
    if isinstance(layer, (L.Add, L.Subtract, L.Multiply, L.Average, L.Maximum, L.Minimum)):
        lay = g.layout[x]
        xs = [g.as_layout(t, lay, len(s)) for t, s in zip(inputs, shapes)]
        op = {"Add": "Sum", "Subtract": "Sub", "Multiply": "Mul", "Average": "Mean",
              "Maximum": "Max", "Minimum": "Min"}[kind]
        return g.op(op, xs, lay)
    if isinstance(layer, L.Concatenate):
        lay = g.layout[x] if ndim == 4 else "cl"
        xs = [g.as_layout(t, lay, len(s)) for t, s in zip(inputs, shapes)]
        axis = layer.axis % ndim
        if lay == "cf":   # NHWC axis a sits at NCHW position _TO_NCHW.index(a)
            axis = _TO_NCHW.index(axis)
        return g.op("Concat", xs, lay, axis=axis)
    if isinstance(layer, L.ZeroPadding2D):
        x = g.as_layout(x, "cf", 4)
        (t, b), (left, r) = layer.padding
        return g.op("Pad", [x, g.const([0, 0, t, left, 0, 0, b, r], "pads", np.int64)],
                    "cf")
    if isinstance(layer, L.UpSampling2D) and layer.interpolation == "nearest":
        x = g.as_layout(x, "cf", 4)
        scales = g.const([1.0, 1.0, float(layer.size[0]), float(layer.size[1])], "scales",
                         np.float32)
        return g.op("Resize", [x, "", scales], "cf", mode="nearest",
                    coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    raise NotImplementedError(f"to_onnx: layer {layer.name!r} ({kind}) has no ONNX form "
                              f"in cnnx yet")


def to_onnx(model, filepath=None, input_layout="NHWC", opset=17):
    """The model as an onnx.ModelProto (checked with onnx.checker), written to filepath
    (atomically) when given. input_layout "NHWC" (the default, the model's own) or
    "NCHW" for 4-D inputs; 4-D outputs come in the same layout.

    >>> model = cnnx.Sequential([cnnx.Input((3,), name="features"),
    ...                          cnnx.layers.Dense(2, activation="softmax")])
    >>> proto = cnnx.export.to_onnx(model, "model.onnx")
    >>> [i.name for i in proto.graph.input], [node.op_type for node in proto.graph.node]
    (['features'], ['MatMul', 'Add', 'Softmax', 'Identity'])
    """
    from .models.plan import Plan
    onnx, helper, numpy_helper = _onnx()
    if input_layout not in ("NHWC", "NCHW"):
        raise ValueError(f"to_onnx: `input_layout` must be 'NHWC' or 'NCHW', received "
                         f"{input_layout!r}")
    if not getattr(model, "built", False):
        raise ValueError(f"to_onnx: model {model.name!r} is not built yet")
    dtype = np.dtype(model.dtype)
    elem = onnx.TensorProto.FLOAT if dtype == np.float32 else onnx.TensorProto.DOUBLE
    g = _Graph(helper, numpy_helper, dtype)
    plan = Plan(model, False, fold=False)
    values, shapes, graph_inputs = {}, {}, []
    cf = input_layout == "NCHW"
    for slot, (tensor, name) in enumerate(zip(model.inputs, model.input_names)):
        shape = list(tensor.shape)
        shown = [shape[0], shape[3], shape[1], shape[2]] if cf and len(shape) == 4 else shape
        graph_inputs.append(helper.make_tensor_value_info(
            name, elem, ["batch" if s is None else s for s in shown]))
        g.layout[name] = "cf" if cf and len(shape) == 4 else "cl"
        values[slot], shapes[slot] = name, tuple(shape)
    for step in plan.steps:
        ins = [values[s] for s in step.inputs]
        in_shapes = [shapes[s] for s in step.inputs]
        out_shape = step.layer.output_shape
        out = _layer(g, step.layer, ins, in_shapes, out_shape)
        values[step.outputs[0]] = out
        shapes[step.outputs[0]] = tuple(out_shape)
    outputs = []
    for slot, name in zip(plan.outputs, model.output_names):
        shape = shapes[slot]
        want = "cf" if cf and len(shape) == 4 else "cl"
        final = g.as_layout(values[slot], want, len(shape))
        node = helper.make_node("Identity", [final], [name])
        g.nodes.append(node)
        shown = [shape[0], shape[3], shape[1], shape[2]] if want == "cf" else list(shape)
        outputs.append(helper.make_tensor_value_info(
            name, elem, ["batch" if s is None else s for s in shown]))
    graph = helper.make_graph(g.nodes, model.name, graph_inputs, outputs, g.inits)
    proto = helper.make_model(graph, producer_name="cnnx",
                              opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(proto)
    if filepath is not None:
        from .models.saving import _Atomic
        path = os.fspath(filepath)
        if not path.endswith(".onnx"):
            raise ValueError(f"to_onnx: the file name must end in .onnx, received {path!r}")
        with _Atomic(path, overwrite=True) as f:
            f.write(proto.SerializeToString())
    return proto

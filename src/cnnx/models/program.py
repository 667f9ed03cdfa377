"""An inference plan compiled into one call: cnnx._kernels.Program.

At batch 1 a network's time went mostly to Python: each layer's forward, each ops
wrapper's checks, each kernel call's argument parsing (4-14 us a layer, against 1-40 us
of arithmetic). A compiled program does that work once: every step of an inference plan
gives its forward as CompiledOps (Layer.compiled_ops), which this module turns into one
array of operations over buffers it allocates, with each operation's geometry, weights
and thread count fixed. A run is one call into compiled code that goes through the
array with no Python in between.

The operations call the same kernels, with the same thread counts, as the ops wrappers
the layers call: a program's outputs are the plan's, bit for bit (tested). A step that
has no compiled form (a layer without compiled_ops, weights in another dtype) runs in
Python between two programs; a plan with an activity regularizer, a zero-size tensor,
or a step in Python whose output the programs cannot read, runs step by step.

A program stays valid while the kernels' settings (thread count, SIMD path, forced
algorithms) and the weight arrays it reads are those it was made with; run() remakes it
otherwise. Weights updated in place (the optimizers, Variable.assign) are read where
they lie, except where something is made from them: a normalization folded into a
kernel is folded again before a run when a weight it reads changed (Variable.version;
layers.base.refolding), and a Winograd convolution's transformed kernel, which the
program keeps (made per call it took 62 of 452 us of one image through W4, AVX2), is
made again after any Variable changed. While no Variable at all changed
(Variable.last_change), a run checks none of them.

A large batch of a network that does little arithmetic per byte of its tensors runs in
chunks (_chunk_size; the Program's chunked form): each thread takes a chunk of samples
through the whole network in buffers of its own. Each sample then has the bits the
step-by-step plan gives it on its chunk.
"""
import contextlib

import numpy as np

from .. import _config, _kernels, _memory
from .._geometry import conv_output_length, padding_before
from ..layers.base import Variable

__all__ = ["CompiledPlan", "suspended"]

# While > 0, inference plans run step by step (testing.reference_kernels: a program
# would bypass the ops functions it swaps for their twins).
_suspended = 0


@contextlib.contextmanager
def suspended():
    """Within the block, every inference plan runs step by step, through cnnx.ops."""
    global _suspended
    _suspended += 1
    try:
        yield
    finally:
        _suspended -= 1


def _area(nbytes):
    """A program's scratch or per-thread area (its `allocate`): nbytes on a cache line."""
    return _memory.empty(nbytes, np.uint8)


class CompiledPlan:
    """An inference plan as compiled calls, for inputs of given shapes and dtype.
    CompiledPlan.build(plan, inputs) makes one, or returns None where nothing in the plan
    can be compiled; run(inputs) returns the outputs (arrays the plan reuses), or None
    where a step run in Python returned what the programs cannot read (the plan then
    runs step by step).

    A step without a compiled form runs in Python between programs: the steps before it
    form one program, the steps after it another, and its output is an input of those
    after it (so is each of the plan's inputs: together the "external" arrays)."""

    def __init__(self, segments, n_external, input_shapes, outputs, watch, refresh,
                 threads, dtype):
        self.segments = segments    # Program, or (step, external index, shape) in Python
        self.n_external = n_external
        self.input_shapes = input_shapes
        self.outputs = outputs      # (buffer array or external index, shape) per output
        self.watch = watch          # (variable, the array the program reads)
        self.refresh = refresh      # callables that recompute folded weights in place
        self.threads = threads
        self.dtype = dtype
        self._placeholder = np.zeros(1, dtype)   # an external not computed yet
        self._programs = [seg for seg in segments if isinstance(seg, _kernels.Program)]
        # Variable.last_change when the weights were last found unchanged; while it
        # holds, no weight was changed or replaced, and current() and run() skip their
        # checks of each (W5's folds: 21 checks, 26 us of one image's 0.55 ms).
        self._checked = self._refreshed = None
        # One program whose outputs are its own buffers (the common case): those views,
        # made once.
        self._views = None
        if len(segments) == 1 and self._programs and n_external == len(input_shapes) \
                and all(not isinstance(a, int) for a, _ in outputs):
            self._views = [a.reshape(shape) for a, shape in outputs]

    @classmethod
    def build(cls, plan, inputs):
        dtype = inputs[0].dtype
        if plan.training or any(x.dtype != dtype or x.size == 0 for x in inputs) \
                or dtype not in (np.float32, np.float64) \
                or any(step.penalty is not None or len(step.outputs) != 1
                       for step in plan.steps):
            return None
        compiled = [step.layer.compiled_ops(step.ctx, dtype) or None
                    if _trusted(step.layer) else None for step in plan.steps]
        if all(ops is None for ops in compiled):
            return None
        # Each slot's shape, from one step-by-step run (a step in Python may give any).
        values = plan.run_steps(inputs, False)
        python = [step for step, ops in zip(plan.steps, compiled) if ops is None]
        if any(not isinstance(values[step.outputs[0]], np.ndarray)
               or values[step.outputs[0]].dtype != dtype or values[step.outputs[0]].size == 0
               for step in python):
            return None
        n_external = len(inputs) + len(python)
        builder = _Builder(dtype, [x.shape for x in inputs], n_external)
        segments, ops_start, external = [], 0, len(inputs)
        for step, ops in zip(plan.steps, compiled):
            if ops is not None:
                if not builder.step(step, ops):
                    return None
                continue
            if len(builder.ops) > ops_start:
                segments.append(builder.ops[ops_start:])
                ops_start = len(builder.ops)
            reads = [(builder.slot[s] if builder.slot[s] < n_external
                      else builder.buffers[builder.slot[s]], builder.shape[s])
                     for s in step.inputs]
            segments.append((step, reads, external, values[step.outputs[0]].shape))
            builder.slot[step.outputs[0]] = external
            builder.shape[step.outputs[0]] = values[step.outputs[0]].shape
            external += 1
        if len(builder.ops) > ops_start:
            segments.append(builder.ops[ops_start:])
        if len(segments) == 1 and n_external == len(inputs):
            chunked = cls._chunked(plan, builder, inputs, dtype)
            if chunked is not None:
                return chunked
        segments = [_kernels.Program(dtype, builder.buffers, n_external, seg, _area)
                    if isinstance(seg, list) else seg for seg in segments]
        outputs = [(builder.buffers[builder.slot[s]] if builder.slot[s] >= n_external
                    else builder.slot[s], builder.shape[s]) for s in plan.outputs]
        return cls(segments, n_external, [x.shape for x in inputs], outputs,
                   builder.watch, builder.refresh, _config._num_threads, dtype)

    @classmethod
    def _chunked(cls, plan, builder, inputs, dtype):
        """The plan as one program run chunk by chunk (see _chunk_size), or None where
        the batch is run whole."""
        batch = inputs[0].shape[0]
        chunk = _chunk_size(builder, batch)
        if not chunk or any(x.shape[0] != batch for x in inputs):
            return None
        n = len(inputs)
        made = _Builder(dtype, [(chunk,) + x.shape[1:] for x in inputs], n)
        for step in plan.steps:
            if not made.step(step, step.layer.compiled_ops(step.ctx, dtype)):
                return None
        outs = sorted({made.slot[s] for s in plan.outputs})
        if any(k < n for k in outs):   # an input as an output: run whole
            return None
        split = _tail_start(made.ops, n, outs, _chunk_tensor_bytes(made))
        head = made.ops[:split]
        if split < len(made.ops):    # the tail's one input: the head's output
            outs = [made.ops[split][1]]
        for k in outs:   # the head's outputs, for the whole batch
            made.buffers[k] = _memory.empty(made.buffers[k].size // chunk * batch, dtype)
        segments = [_kernels.Program(dtype, made.buffers, n, head, _area, batch=batch,
                                     chunk=chunk, outputs=outs,
                                     nthreads=_config._num_threads)]
        buffers, shapes = made.buffers, {s: (batch,) + made.shape[s][1:]
                                         for s in plan.outputs}
        if split < len(made.ops):
            # The tail, op for op the whole batch's (builder's), reading the head's
            # output and the weights the head's ops were made with (made's folds).
            tail = [whole[:11] + part[11:]
                    for whole, part in zip(builder.ops[split:], made.ops[split:])]
            used = {k for op in tail for k in op[1:4]}
            buffers = [b if k in used else None if k < n else np.empty(1, dtype)
                       for k, b in enumerate(builder.buffers)]
            buffers[tail[0][1]] = made.buffers[outs[0]]
            segments.append(_kernels.Program(dtype, buffers, n, tail, _area))
            shapes = {s: builder.shape[s] for s in plan.outputs}
        slots = made.slot if split == len(made.ops) else builder.slot
        outputs = [(buffers[slots[s]], shapes[s]) for s in plan.outputs]
        return cls(segments, n, [x.shape for x in inputs], outputs, made.watch,
                   made.refresh, _config._num_threads, dtype)

    def current(self):
        """Whether the programs still compute what the plan does."""
        if self.threads != _config._num_threads:
            return False
        for seg in self._programs:
            if not seg.current():
                return False
        stamp = Variable.last_change
        if stamp != self._checked:
            if any(var.value is not array for var, array in self.watch):
                return False
            self._checked = stamp
        return True

    def run(self, inputs):
        stamp = Variable.last_change     # read first: a change during the folds counts
        moved = stamp != self._refreshed
        for refresh in self.refresh:
            refresh(moved)
        if moved:   # a weight changed somewhere: the transformed kernels are made again
            for seg in self._programs:
                seg.transform_kernels()
        self._refreshed = stamp
        if self._views is not None:
            self._programs[0].run(list(inputs))
            return self._views
        external = list(inputs) + [self._placeholder] * (self.n_external - len(inputs))
        arrays = self.arrays
        for seg in self.segments:
            if isinstance(seg, _kernels.Program):
                seg.run(external)
                continue
            step, reads, index, shape = seg
            xs = [arrays(external, b).reshape(s) for b, s in reads]
            y = step.layer.forward(step.ctx, xs[0] if step.single else xs, False)
            if not isinstance(y, np.ndarray) or y.dtype != self.dtype or y.shape != shape:
                return None
            external[index] = np.ascontiguousarray(y)
        return [arrays(external, a).reshape(shape) for a, shape in self.outputs]

    @staticmethod
    def arrays(external, a):
        """An external array by index, or a buffer (an array already)."""
        return external[a] if isinstance(a, int) else a


def _trusted(layer):
    """Whether the layer's compiled_ops describe its forward: compiled_ops is defined by
    the class that defines forward (and the other methods it stands for, say Add's
    _merge), or a subclass of it. A subclass that overrides forward alone computes
    something else, and runs step by step."""
    def owner(name):
        return next((c for c in type(layer).__mro__ if name in c.__dict__), object)
    compiled = owner("compiled_ops")
    return all(issubclass(compiled, owner(name)) for name in layer.compiled_methods)


class _Builder:
    """Buffers and operations, step by step. Each plan slot maps to a buffer (an alias
    shares its input's) and a shape."""

    def __init__(self, dtype, input_shapes, n_external):
        self.dtype = dtype
        self.n_inputs = len(input_shapes)
        self.buffers = [None] * n_external    # the external arrays come at each run
        self.slot = {i: i for i in range(len(input_shapes))}
        self.shape = dict(enumerate(input_shapes))
        self.ops, self.watch, self.refresh = [], [], []

    def _new(self, shape, dtype=None):
        self.buffers.append(_memory.empty(shape, dtype or self.dtype))
        return len(self.buffers) - 1

    def step(self, step, ops):
        """Add a step's ops; False where they do not fit its inputs."""
        buffers = [self.slot[s] for s in step.inputs]
        shapes = [self.shape[s] for s in step.inputs]
        if not ops:
            return False
        for k, op in enumerate(ops):   # each op reads the one before's result
            made = self._op(op, buffers, shapes, step.layer, k == len(ops) - 1)
            if made is None:
                return False
            buffers, shapes = [made[0]], [made[1]]
        self.slot[step.outputs[0]], self.shape[step.outputs[0]] = buffers[0], shapes[0]
        return True

    def _op(self, op, buffers, shapes, layer, last):
        if op.kind == "add":
            if len(buffers) != 2 or shapes[0] != shapes[1]:
                return None
        elif len(buffers) != 1:
            return None
        x, shape = buffers[0], shapes[0]
        n = int(np.prod(shape[:-1]))
        size = int(np.prod(shape))
        relu = int(op.relu)
        if op.kind == "alias":
            if not last:
                return None
            out_shape = tuple(layer.compute_output_shape(shape))
            return (x, out_shape) if int(np.prod(out_shape)) == size else None
        if op.kind in ("relu", "sigmoid", "softmax", "add"):
            out = self._new(shape)
            self.ops.append((op.kind, x, buffers[1] if op.kind == "add" else -1, out, n,
                             shape[-1], shape[-1], size, (), relu,
                             _config.threads_for(size), None, None))
            return out, shape
        if op.kind == "dense":
            return self._product(op, x, shape, (n, shape[-1]), (n, op.kernel.shape[1]), ())
        if len(shape) != 4:
            return None
        N, H, W, C = shape
        if op.kind in ("conv2d", "depthwise_conv2d"):
            KH, KW, KC, F = op.kernel.shape    # a depthwise kernel: F is its multiplier
            depthwise = op.kind == "depthwise_conv2d"
            if KC != C or (depthwise and F != 1):
                return None
            geometry = _window(H, W, C, KH, KW, op.strides, op.padding, op.dilation)
            if geometry is None:
                return None
            return self._product(op, x, shape, (N, H, W, C),
                                 (N, geometry[3], geometry[4], C if depthwise else F),
                                 geometry)
        if op.kind == "global_average_pool2d":
            out_shape = (N, 1, 1, C) if op.keepdims else (N, C)
            out = self._new(out_shape)
            self.ops.append((op.kind, x, -1, out, N, H * W, C, 0, (), 0,
                             _config.threads_for(size), None, None))
            return out, out_shape
        if op.kind == "max_pool2d":
            if H * W * C >= 2 ** 31:    # beyond the int32 argmax: ops.max_pool2d refuses
                return None
            geometry = _window(H, W, C, *op.pool, op.strides, op.padding, (1, 1))
            if geometry is None:
                return None
            out_shape = (N, geometry[3], geometry[4], C)
            out = self._new(out_shape)   # no argmax: no backward pass reads it
            self.ops.append(("max_pool2d", x, -1, out, N, 0, C, 0, geometry, 0,
                             _config.threads_for(size), None, None))
            return out, out_shape
        return None

    def _product(self, op, x, shape, in_shape, out_shape, geometry):
        """A conv2d or dense op: its kernel must be C-contiguous in the plan's dtype."""
        kernel, bias = op.kernel, op.bias
        arrays = [kernel] + ([] if bias is None else [bias])
        if any(not isinstance(a, np.ndarray) or a.dtype != self.dtype
               or not a.flags.c_contiguous for a in arrays):
            return None
        F = out_shape[-1]
        if (op.kind == "dense" and (len(shape) != 2 or kernel.shape != (shape[1], F))) \
                or (bias is not None and bias.shape != (F,)):
            return None
        reads = kernel.size // F    # an output's: KH*KW*C, I, or a depthwise filter's KH*KW
        out = self._new(out_shape)
        work = int(np.prod(out_shape)) * reads    # as the ops wrappers count it
        self.ops.append((op.kind, x, -1, out, in_shape[0], reads, F, 0, geometry,
                         int(op.relu), _config.threads_for(work), kernel, bias))
        self.watch.extend((var, var.value) for var in op.watch)
        if op.refresh is not None:
            self.refresh.append(op.refresh)
        return out, out_shape


# A batch runs in chunks (Program's chunked form) where its tensors would not stay in
# cache and the network does little arithmetic per byte of them: one chunk per thread
# at a time, each chunk's tensors in its core's cache, no barrier between operations.
# Measured at batch 256, 2 threads (benchmarks/bench_onnx.py's networks; tensors per
# sample, multiply-adds per byte of them): W1 (145 KB, 16) 9.2 -> 7.0 ms, W2 (779 KB,
# 15) 41 -> 36, W6 (1.3 MB, 14) 75 -> 59, W5 (1.1 MB, 35) 118 -> 110; W4 (76) level;
# W3 (36 KB: 9 MB in all, in the cache whole) level or slower. The rule reads shapes
# alone, never the thread count: a sample's bits must not depend on it.
_CHUNK_ABOVE = 12 << 20     # the batch's tensors together, at least
_CHUNK_BYTES = 3 << 20      # a chunk's tensors together, at most
_CHUNK_MAX = 32             # samples a chunk, at most
_CHUNK_SHARES = 16          # chunks at least, enough for 16 threads
_CHUNK_MAX_INTENSITY = 50   # multiply-adds a byte of tensors; beyond, compute-bound
# A convolution that runs Winograd on the whole batch but would not on a chunk keeps the
# batch whole: W5 at batch 64 ran 19.4 ms whole against 26.9 in chunks of 2-4 samples
# (its 8 x 8 64 -> 64 layers' 4 x 4 tiles too few there), at 256 80 against 106. Since
# F(4x4) takes 16384 tile x C x F products, W5's chunks of 2 keep it, and run chunked:
# at 256 118.6 against 131.9 ms whole, at 64 25.2 against 28.8 (AVX2).


def _chunk_tensor_bytes(builder):
    """The bytes of the builder's tensors: its buffers and inputs."""
    return sum(b.nbytes for b in builder.buffers if b is not None) + sum(
        int(np.prod(shape)) * builder.dtype.itemsize
        for k, shape in builder.shape.items() if k < builder.n_inputs)


def _tail_start(ops, n_inputs, outputs, chunk_bytes):
    """Where a chunked program's whole-batch tail starts (len(ops): none). The tail is
    the ops from the first dense product whose kernel outweighs a chunk's tensors
    (chunk_bytes): in chunks that kernel would stream from memory once a chunk (W2's
    6272 x 128, 3.2 MB, 128 times a batch of 256 in chunks of 2: 6.8 ms of 49, as
    matrix-vector products). The tail must read nothing of the head's but the input of
    its first op, which the head writes."""
    split = next((k for k, op in enumerate(ops) if op[0] == "dense"
                  and op[5] * op[6] * op[11].itemsize > chunk_bytes), 0)
    if split == 0 or ops[split][1] < n_inputs:
        return len(ops)
    tail = ops[split:]
    written = {op[3] for op in tail} | {tail[0][1]}
    if any(k not in written for op in tail for k in op[1:3] if k >= 0) \
            or any(k not in written for k in outputs):
        return len(ops)
    return split


def _chunk_size(builder, batch):
    """The samples a chunk for the builder's program over `batch` samples, or 0 (whole)."""
    tensors = _chunk_tensor_bytes(builder)
    per_sample = tensors / batch
    chunk = 1
    while (2 * chunk <= _CHUNK_MAX and 2 * chunk * per_sample <= _CHUNK_BYTES
           and 2 * chunk * _CHUNK_SHARES <= batch):
        chunk *= 2
    is_f32 = builder.dtype == np.float32
    macs, loses_winograd = 0, False
    for kind, _a, _b, _out, n, i, f, _size, geometry, *_ in builder.ops:
        if kind in ("conv2d", "depthwise_conv2d"):
            macs += n * geometry[3] * geometry[4] * i * f
        elif kind == "dense":
            macs += n * i * f
        if kind == "conv2d" and geometry[7] == geometry[8] == 1 and not loses_winograd:
            H, W, C, OH, OW, KH, KW, _, _, ph, pw, dh, dw = geometry
            loses_winograd = _kernels.winograd_wanted(
                n, H, W, C, OH, OW, f, KH, KW, ph, pw, dh, dw, is_f32) and not \
                _kernels.winograd_wanted(chunk, H, W, C, OH, OW, f, KH, KW, ph, pw, dh, dw,
                                         is_f32)
    if (batch < _CHUNK_SHARES or tensors < _CHUNK_ABOVE
            or macs > _CHUNK_MAX_INTENSITY * tensors or loses_winograd):
        return 0
    return chunk


def _window(H, W, C, KH, KW, strides, padding, dilation):
    """_kernels._geometry's 13 numbers for a window over an H x W x C image (None where
    it does not fit: the step-by-step plan raises the error)."""
    OH = conv_output_length(H, KH, padding, strides[0], dilation[0])
    OW = conv_output_length(W, KW, padding, strides[1], dilation[1])
    if OH < 1 or OW < 1:
        return None
    return (H, W, C, OH, OW, KH, KW, strides[0], strides[1],
            padding_before(H, KH, padding, strides[0], dilation[0]),
            padding_before(W, KW, padding, strides[1], dilation[1]),
            dilation[0], dilation[1])

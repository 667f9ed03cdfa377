"""The compiled plan of a model: its graph flattened into steps, for one batch shape.

A plan is what runs. `Model` compiles one per (training or inference, input shapes) and
keeps it: its steps are the model's nodes in topological order, nested models inlined,
each step with the Context in which its layer keeps what backward needs and the buffers
it reuses from step to step. A layer called twice has two steps and two contexts.

Fusions are rules applied here, when the plan is built. Each reads public properties of
the layers involved and sets flags in their contexts; every step keeps the same
`forward(ctx, inputs, training)` / `backward(ctx, grad)` signature:

  ReLU into max-pool backward: a max pooling whose input is a fused-ReLU layer's output
      applies the ReLU mask in its scatter; the producer skips its own pass.
  The final activation into the loss: a softmax/sigmoid output that feeds a
      cross-entropy loss emits logits, and the loss takes its gradient from them.
  No input gradient where nothing upstream trains: a layer whose inputs depend on no
      trained weight does not compute dL/dx (and a ReLU first layer masks dy inside its
      kernel-gradient pass instead).
  BatchNormalization into the layer before it (inference): a linear Conv2D or Dense
      whose output only feeds a BatchNormalization computes with the normalization's
      affine map folded into its kernel and bias, and the normalization step is gone.
  A ReLU layer into the layer before it: a plain ReLU (Activation("relu"), ReLU())
      after a layer that can apply it on its way out (`can_fuse_relu`: a
      BatchNormalization or an Add; at inference also a linear Conv2D or Dense, after
      the folding above) is applied there (ctx.fused_relu), and the ReLU step is gone;
      in training that layer's backward masks its gradient with its own output.

A fusion applies only where the fused tensor has no other consumer (in a residual block,
a ReLU output that feeds both a convolution and an Add keeps its own backward pass).

An inference plan then runs as one compiled call where every step allows it
(program.py): the same kernels, without Python between the layers.
"""
import numpy as np

from .. import _memory, ops
from ..layers.base import Context
from . import program

__all__ = ["Plan", "flatten"]


class Step:
    """One node of the flattened graph: layer, context, and slots of its tensors."""

    __slots__ = ("layer", "ctx", "inputs", "outputs", "single", "weights", "penalty",
                 "penalized")

    def __init__(self, layer, inputs, outputs, single):
        self.layer, self.inputs, self.outputs, self.single = layer, inputs, outputs, single
        self.ctx = Context()
        self.weights = False
        # The layer's activity regularizer (a penalty on its output), and that output.
        self.penalty = getattr(layer, "activity_regularizer", None)
        self.penalized = None


def flatten(model):
    """The model's nodes as (layer, input keys, output keys, single) in topological
    order, nested models inlined; and the keys of its inputs and outputs. A key names a
    tensor within one call of the models that contain it."""
    steps = []
    input_keys = [((), id(t)) for t in model.inputs]
    output_keys = _flatten(model, input_keys, (), steps)
    return steps, input_keys, output_keys


def _flatten(model, input_keys, path, steps):
    env = {id(t): k for t, k in zip(model.inputs, input_keys)}
    for node in model._nodes:
        if not node.inputs:          # an InputLayer's node
            continue
        keys = [env[id(t)] for t in node.inputs]
        if hasattr(node.layer, "_nodes"):   # a nested model: its own nodes, inlined
            outs = _flatten(node.layer, keys, path + (id(node),), steps)
        else:
            outs = [(path, id(t)) for t in node.outputs]
            steps.append((node.layer, keys, outs, node.single))
        for t, k in zip(node.outputs, outs):
            env[id(t)] = k
    return [env[id(t)] for t in model.outputs]


class Plan:
    """The steps of one model for one batch shape. `forward(inputs)` returns the
    outputs; in a training plan, `backward(output_grads)` then returns the gradient of
    each variable in `variables` (summed over every use of a shared layer). An inference
    plan folds BatchNormalization into the layer before it unless fold=False (a forward
    pass in training mode, which needs the batch statistics)."""

    def __init__(self, model, training, variables=(), losses=(), fold=True):
        flat, input_keys, output_keys = flatten(model)
        slots = {k: i for i, k in enumerate(input_keys)}
        for _, _, outs, _ in flat:
            for k in outs:
                slots.setdefault(k, len(slots))
        self.training = training
        self.n_inputs = len(input_keys)
        self.n_slots = len(slots)
        self.outputs = [slots[k] for k in output_keys]
        self.steps = [Step(layer, [slots[k] for k in ins], [slots[k] for k in outs], single)
                      for layer, ins, outs, single in flat]
        self.variables = list(variables)
        self.activity_loss = 0.0     # the activity regularizers' penalty, last forward
        self.logits = [False] * len(self.outputs)   # output i is emitted as logits
        self._sums = {}      # slot -> the buffer its gradients are summed into
        # The compiled program of an inference plan (see program.py): None until the
        # first forward makes one, False where the plan cannot be compiled.
        self.compiled = None if not training and fold else False
        if training:
            self._fuse_relus(training=True)
            self._plan_backward(losses)
        elif fold:
            self._fold_affine()
            self._fuse_relus(training=False)

    # -- building ------------------------------------------------------------------
    def _plan_backward(self, losses):
        trained = {id(v) for v in self.variables}
        requires = [False] * self.n_slots     # the slot's value depends on trained weights
        producer = {}
        consumers = [0] * self.n_slots
        for s in self.outputs:
            consumers[s] += 1
        for step in self.steps:
            step.weights = any(id(w) in trained for w in step.layer.weights)
            step.ctx.need_input_grad = any(requires[s] for s in step.inputs)
            for s in step.inputs:
                consumers[s] += 1
            for s in step.outputs:
                requires[s] = step.weights or step.ctx.need_input_grad
                producer[s] = step
        self.backward_steps = [s for s in self.steps if s.weights or s.ctx.need_input_grad]
        for step in self.backward_steps:
            if not step.layer.has_backward:
                raise NotImplementedError(
                    f"layer {step.layer.name!r} ({type(step.layer).__name__}) has no "
                    f"gradient: {step.layer.no_backward_reason}. Trained weights lie "
                    f"before it, so the model cannot be trained through it (freeze what "
                    f"comes before it, or give it a backward)")

        def sole_product(slot):
            """The step that produced slot, if the slot has that one consumer."""
            return producer.get(slot) if consumers[slot] == 1 else None

        for step in self.steps:
            if getattr(step.layer, "absorbs_relu_backward", False) and step.single \
                    and step.ctx.need_input_grad:
                below = sole_product(step.inputs[0])
                if below is not None and below.layer.fusable_activation == "relu":
                    step.ctx.fuse_relu_backward = True
                    below.ctx.grad_is_preactivation = True
        for i, (slot, loss) in enumerate(zip(self.outputs, losses)):
            below = sole_product(slot)
            if below is None or loss is None or getattr(loss, "from_logits", False) \
                    or below.ctx.grad_is_preactivation:
                continue
            if loss.fused_activation is not None \
                    and below.layer.fusable_activation == loss.fused_activation:
                below.ctx.emit_logits = True
                self.logits[i] = True

    def _consumers_and_producers(self):
        """How many steps (and model outputs) read each slot; the step writing each."""
        consumers = [0] * self.n_slots
        for s in self.outputs:
            consumers[s] += 1
        producer = {}
        for step in self.steps:
            for s in step.inputs:
                consumers[s] += 1
            for s in step.outputs:
                producer[s] = step
        return consumers, producer

    def _fuse_relus(self, training):
        """Each plain ReLU whose input only it reads, made by a layer that can apply it
        itself: that layer does, writing the ReLU's output slot, and the step is gone."""
        consumers, producer = self._consumers_and_producers()
        kept = []
        for step in self.steps:
            below = producer.get(step.inputs[0]) if step.single else None
            if getattr(step.layer, "is_plain_relu", False) and below is not None \
                    and consumers[step.inputs[0]] == 1 and len(below.outputs) == 1 \
                    and not below.ctx.fused_relu and below.layer.can_fuse_relu(training) \
                    and below.penalty is None and step.penalty is None:
                below.ctx.fused_relu = True
                below.outputs = step.outputs
                producer[step.outputs[0]] = below
                continue
            kept.append(step)
        self.steps = kept

    def _fold_affine(self):
        """Inference: fold each BatchNormalization into the linear layer before it, where
        that layer's output feeds nothing else."""
        consumers, producer = self._consumers_and_producers()
        kept = []
        for step in self.steps:
            below = producer.get(step.inputs[0]) if step.single else None
            if hasattr(step.layer, "inference_affine") and below is not None \
                    and consumers[step.inputs[0]] == 1 and below.layer.absorbs_affine \
                    and below.ctx.affine is None and len(below.outputs) == 1 \
                    and below.penalty is None and step.penalty is None:
                below.ctx.affine = step.layer
                below.outputs = step.outputs    # the folded layer writes the BN's output
                continue
            kept.append(step)
        self.steps = kept

    # -- running -------------------------------------------------------------------
    def forward(self, inputs, training=None):
        """The model's outputs for its inputs (a list of arrays), as a list."""
        training = self.training if training is None else training
        if self.compiled is not False and not training and not program._suspended:
            outputs = self._run_compiled(inputs)
            if outputs is not None:
                return outputs
        values = self.run_steps(inputs, training)
        return [values[s] for s in self.outputs]

    def run_steps(self, inputs, training):
        """Every slot's value, the steps run one by one in Python."""
        values = [None] * self.n_slots
        values[:self.n_inputs] = inputs
        self.activity_loss = 0.0
        for step in self.steps:
            ins = step.inputs
            y = step.layer.forward(step.ctx, values[ins[0]] if step.single
                                   else [values[s] for s in ins], training)
            if step.penalty is not None and len(step.outputs) == 1:
                step.penalized = y
                self.activity_loss += float(step.penalty(y))
            if len(step.outputs) == 1:
                values[step.outputs[0]] = y
            else:
                for s, v in zip(step.outputs, y):
                    values[s] = v
        return values

    def _run_compiled(self, inputs):
        """The outputs by the compiled program (made, or remade when stale, here); None
        where the plan cannot be compiled."""
        compiled = self.compiled
        if compiled is None or not compiled.current() \
                or [x.shape for x in inputs] != compiled.input_shapes:
            compiled = self.compiled = program.CompiledPlan.build(self, inputs) or False
            if compiled is False:
                return None
        self.activity_loss = 0.0
        outputs = compiled.run(inputs)
        if outputs is None:     # a step in Python returned what the programs cannot read
            self.compiled = False
        return outputs

    def _accumulate(self, grads, slot, d):
        """grads[slot] += d. A tensor read by several steps (a residual fork) sums their
        gradients into a buffer the plan keeps for that slot: never into an operand, which
        may be a layer's buffer or another slot's gradient too, and without allocating
        the sum anew each step (fresh pages cost a fault each)."""
        g = grads[slot]
        if g is None:
            grads[slot] = d
            return
        buf = self._sums.get(slot)
        if g.shape != d.shape:        # not expected of a gradient; summed plainly
            grads[slot] = g + d
            return
        dtype = np.result_type(g, d)
        if buf is None or buf.shape != g.shape or buf.dtype != dtype:
            buf = self._sums[slot] = _memory.empty(g.shape, dtype)
        if g.dtype == d.dtype:
            # on the threads (W5's nine residual forks: 2.6 ms a step with np.add); the
            # returned array, which a reference twin makes anew
            grads[slot] = ops.add(g, d, out=buf)
        else:
            grads[slot] = np.add(g, d, out=buf)

    def backward(self, output_grads):
        """Each variable's gradient, given dL/d(output) for each output (None: the
        output is not in the loss)."""
        grads = [None] * self.n_slots
        for s, g in zip(self.outputs, output_grads):
            if g is not None:
                self._accumulate(grads, s, g)
        found = {}
        for step in reversed(self.backward_steps):
            g = grads[step.outputs[0]] if len(step.outputs) == 1 else \
                [grads[s] for s in step.outputs]
            if step.penalized is not None:   # the activity penalty's gradient joins in
                d = step.penalty.gradient(step.penalized).astype(step.penalized.dtype)
                g = d if g is None else g + d
            if g is None:
                continue   # nothing in the loss depends on this step
            ctx = step.ctx
            ctx.grads.clear()
            dx = step.layer.backward(ctx, g)
            if ctx.need_input_grad:
                for s, d in zip(step.inputs, [dx] if step.single else dx):
                    if d is not None:
                        self._accumulate(grads, s, d)
            for var, d in ctx.grads:
                key = id(var)
                found[key] = d if key not in found else found[key] + d
        out = []
        for var in self.variables:
            d = found.get(id(var))
            if d is None:     # a weight that no output depends on
                d = np.zeros(var.shape, var.dtype)
            out.append(d)
        return out

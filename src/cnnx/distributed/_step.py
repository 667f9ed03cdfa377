"""One data-parallel training step whose bits do not depend on the process count.

The global batch of B samples is cut into S = min(B, micro_batches) micro-batches, a
partition set by B alone (micro-batch i holds samples i*B//S to (i+1)*B//S). Each
micro-batch's gradient is computed on its own (forward, loss, backward), scaled by its
share of the batch, and the batch's gradient is the sum of the S leaves over a fixed
binary tree (a node [lo, hi) is the sum of [lo, mid) and [mid, hi), mid = (lo+hi)//2).

Process r computes the micro-batches r*S//P to (r+1)*S//P and sums them into the tree
nodes that cover its range. The nodes are then reduced as a reduce-scatter of our own:
an Alltoallv hands each process one slice of every node, the process completes the
tree on its slice, and an Allgatherv gives everyone the whole sum. Addition is
elementwise, so every slice is summed exactly as the whole vector would be: the same
bits for 1, 2 or 64 processes, and for one process without MPI.
"""
import numpy as np

from .. import _random
from ..data_adapter import Batch
from ..models import _guard


def partition(batch, micro_batches):
    """The micro-batches of a global batch: (start, stop) sample ranges."""
    s = min(batch, micro_batches)
    return [(i * batch // s, (i + 1) * batch // s) for i in range(s)]


def owned(count, rank, size):
    """The micro-batches (a range of indices out of `count`) process `rank` computes."""
    return range(rank * count // size, (rank + 1) * count // size)


def cover(lo, hi, a, b):
    """The tree nodes over [lo, hi) that exactly cover [a, b), left to right."""
    if b <= lo or hi <= a or a >= b:
        return []
    if a <= lo and hi <= b:
        return [(lo, hi)]
    mid = (lo + hi) // 2
    return cover(lo, mid, a, b) + cover(mid, hi, a, b)


def tree_sum(lo, hi, known, leaf):
    """The value of node [lo, hi): a known node's value, a leaf's, or left + right."""
    node = known.get((lo, hi))
    if node is not None:
        return node
    if hi - lo == 1:
        return leaf(lo)
    mid = (lo + hi) // 2
    left = tree_sum(lo, mid, known, leaf)
    right = tree_sum(mid, hi, known, leaf)
    return np.add(left, right, out=left if left.flags.writeable and
                  (lo, mid) not in known else None)


def reduce_tree(world, count, nodes_of, local_nodes, length, dtype):
    """The tree sum of `count` leaves, given this process's node values (local_nodes,
    in the order of nodes_of[world.rank]); nodes_of[r] lists process r's nodes."""
    if world.size == 1:
        known = dict(zip(nodes_of[0], local_nodes))
        return tree_sum(0, count, known, _missing)
    bounds = [j * length // world.size for j in range(world.size + 1)]
    widths = [bounds[j + 1] - bounds[j] for j in range(world.size)]
    mine = nodes_of[world.rank]
    send = np.empty(len(mine) * length, dtype)
    at = 0
    for j in range(world.size):
        for value in local_nodes:
            send[at:at + widths[j]] = value[bounds[j]:bounds[j + 1]]
            at += widths[j]
    me = world.rank
    received = world.alltoallv(send, [len(mine) * w for w in widths],
                               [len(nodes_of[i]) * widths[me] for i in range(world.size)])
    known, at = {}, 0
    for i in range(world.size):
        for node in nodes_of[i]:
            known[node] = received[at:at + widths[me]]
            at += widths[me]
    part = tree_sum(0, count, known, _missing) if count else np.zeros(widths[me], dtype)
    return world.allgatherv(part, widths)


def _missing(i):
    raise AssertionError(f"micro-batch {i} was computed by no process")


def train_step(dist, model, data):
    """The distributed equivalent of Trainer.train_step, for model's optimizer `dist`'s."""
    world = dist.world
    x, y, sw = data
    if isinstance(data, Batch):
        batch, offset = data.size, data.offset
    else:
        batch, offset = len(x[0]), 0
    parts = partition(batch, dist.micro_batches)
    count = len(parts)
    nodes_of = [cover(0, count, r.start, r.stop) if len(r) else []
                for r in (owned(count, i, world.size) for i in range(world.size))]
    mine = owned(count, world.rank, world.size)
    first = parts[mine.start][0] if len(mine) else 0   # this process's first sample
    held = parts[mine.stop - 1][1] - first if len(mine) else 0
    with _guard.guard(model).writing(), _guard.deferred_interrupt():
        variables = model.trainable_weights
        states = [v for v in model.non_trainable_weights if v.value.size]
        before = [v.value.copy() for v in states]
        dtype = model._dtype()
        sizes = [v.value.size for v in variables] + [v.value.size for v in states]
        length = int(sum(sizes))
        n_out = len(model._losses)
        step_key = dist.step_key(model.optimizer.iterations)
        preds_local = [None] * n_out
        # Per micro-batch: each output's loss, then the activity regularizers' penalty.
        scalars = np.zeros((len(mine), n_out + 1))

        def leaf(i):
            a, b = parts[i]
            xi = [arr[a - offset:b - offset] for arr in x]
            yi = [None if t is None else t[a:b] for t in y]
            wi = None if sw is None else sw[a:b]
            for var, value in zip(states, before):
                var.value[...] = value
                var.touch()
            share = (b - a) / batch
            with _random.stream(np.random.default_rng([*step_key, i])):
                plan = model._training_plan(xi, variables)
                outputs = plan.forward(xi)
            values, grads, preds = model._output_losses(plan, outputs, yi, wi)
            for k, value in values.items():
                scalars[i - mine.start, k] = value
            scalars[i - mine.start, n_out] = plan.activity_loss
            for k, pred in enumerate(preds):
                if preds_local[k] is None:
                    preds_local[k] = np.empty((held,) + pred.shape[1:], pred.dtype)
                preds_local[k][a - first:b - first] = pred
            grads = plan.backward(grads)
            vec = np.empty(length, dtype)
            at = 0
            for g in grads:
                vec[at:at + g.size] = g.reshape(-1)
                at += g.size
            for var, value in zip(states, before):
                n = var.value.size
                if count == 1:
                    vec[at:at + n] = var.value.reshape(-1)
                else:   # the state's change, averaged over the micro-batches below
                    np.subtract(var.value.reshape(-1), value.reshape(-1), out=vec[at:at + n])
                at += n
            if count > 1:
                vec *= vec.dtype.type(share)
            return vec

        local_nodes = [tree_sum(lo, hi, {}, leaf) for lo, hi in nodes_of[world.rank]]
        total = reduce_tree(world, count, nodes_of, local_nodes, length, dtype)

        # Every process gets every micro-batch's losses and predictions, and updates
        # the metrics with the whole batch, as one process would.
        counts = [len(owned(count, r, world.size)) * (n_out + 1) for r in range(world.size)]
        scalars = world.allgatherv(scalars.reshape(-1), counts).reshape(count, n_out + 1)
        row_counts = [parts[r.stop - 1][1] - parts[r.start][0] if len(r) else 0
                      for r in (owned(count, i, world.size) for i in range(world.size))]
        preds = []
        for k in range(n_out):
            local = preds_local[k]
            if local is None:   # this process computed no micro-batch of this batch
                local = np.empty((0,) + model._output_shapes()[k][1:], dtype)
            shape = local.shape[1:]
            width = int(np.prod(shape))
            preds.append(world.allgatherv(local.reshape(-1), [c * width for c in row_counts])
                         .reshape((batch,) + shape))
        values, loss_total = {}, 0.0
        scored = [k for k, loss in enumerate(model._losses) if loss is not None]
        for i, (a, b) in enumerate(parts):
            share = (b - a) / batch
            micro = float(scalars[i, n_out])
            for k in scored:
                micro += model._loss_weights[k] * float(scalars[i, k])
                values[k] = values.get(k, 0.0) + share * float(scalars[i, k])
            loss_total += share * micro
        loss_total += model._regularization()

        at = 0
        grads = []
        for var in variables:
            g = total[at:at + var.value.size].reshape(var.value.shape)
            at += var.value.size
            grads.append(g + var.regularizer.gradient(var.value) if var.regularizer else g)
        for var, value in zip(states, before):
            n = var.value.size
            change = total[at:at + n].reshape(var.value.shape)
            var.value[...] = change if count == 1 else value + change
            var.touch()
            at += n
        model.optimizer.apply(grads, variables)
        model._update_metrics(y, preds, sw)
    return model._loss_logs(loss_total, values)

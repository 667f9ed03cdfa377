"""What cnnx.distributed costs: its exact reduction against MPI's Allreduce, and a
training step over micro-batches against a plain one. Run under mpiexec:

    mpiexec -n P python benchmarks/bench_distributed.py [--repeats R] [--json out.json]

Rank 0 prints, for this process count P:
1. communication: for gradient vectors of W1-W4's sizes and a sweep of sizes, the
   median time of MPI's Allreduce (sum) and of cnnx's reduction (each process holding
   its tree nodes of 8 micro-batches: Alltoallv, the tree on its slice, Allgatherv),
   each between two barriers, and their ratio; and the latency and per-byte terms of a
   least-squares fit t = alpha + beta * bytes over the sweep, for both;
2. computation: W1-W4 training steps per second with SGD, plain (P = 1 only) and with
   DistributedOptimizer(micro_batches=8 and 64), the global batch shared by the P
   processes.
The figures feed the model of docs/distributed.md (--project prints its table).
"""
import argparse
import json
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

import cnnx  # noqa: E402
from cnnx import distributed  # noqa: E402
from cnnx.data_adapter import Batch  # noqa: E402
from cnnx.distributed import _step  # noqa: E402

from bench_models import build, workloads  # noqa: E402

SWEEP = [1_000, 10_000, 100_000, 1_000_000, 4_000_000]


def cpu_line():
    model = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{model}; SIMD path {cnnx._config.simd_path()}"


def timed(world, func, repeats):
    """Median seconds of func() between barriers, as rank 0 sees it."""
    func()
    samples = []
    for _ in range(repeats):
        world.barrier()
        t = time.perf_counter()
        func()
        world.barrier()
        samples.append(time.perf_counter() - t)
    return float(np.median(samples))


def reduction(world, length, repeats, micro_batches=8):
    """(Allreduce seconds, cnnx's reduction seconds) for a float32 vector of `length`."""
    count = micro_batches
    nodes_of = [_step.cover(0, count, r.start, r.stop)
                for r in (_step.owned(count, i, world.size) for i in range(world.size))]
    rng = np.random.default_rng(world.rank)
    local = [rng.standard_normal(length).astype(np.float32) for _ in nodes_of[world.rank]]
    whole = rng.standard_normal(length).astype(np.float32)
    allreduce = timed(world, lambda: world.allreduce_sum(whole), repeats)
    exact = timed(world, lambda: _step.reduce_tree(world, count, nodes_of, local, length,
                                                   np.float32), repeats)
    return allreduce, exact


def fit_line(sizes, seconds):
    """alpha (s) and beta (s per byte) of t = alpha + beta * bytes, least squares."""
    a = np.stack([np.ones(len(sizes)), 4.0 * np.array(sizes, float)], axis=1)
    alpha, beta = np.linalg.lstsq(a, np.array(seconds), rcond=None)[0]
    return float(alpha), float(beta)


def steps(world, repeats):
    """Training steps per second for W1-W4: plain (one process) and distributed."""
    rows = {}
    for name, spec in workloads().items():
        row = {}
        kinds = [("micro_batches=8", 8), ("micro_batches=64", 64)]
        if world.size == 1:
            kinds.insert(0, ("plain", None))
        for label, parts in kinds:
            opt = cnnx.optimizers.SGD(0.01) if parts is None else \
                distributed.DistributedOptimizer(cnnx.optimizers.SGD(0.01), micro_batches=parts)
            model, x, y, _ = build(name, spec, opt)
            batch = len(x)
            lo, hi = (0, batch) if parts is None else opt._distribution.rows(batch)
            data = ([x[lo:hi]], [y], None) if parts is None else Batch(
                [x[lo:hi]], [y], None, batch, lo)
            model.train_step(([x], [y], None) if parts is None else data)
            row[label] = 1.0 / timed(world, lambda m=model, d=data: m.train_step(d), repeats)
        rows[name] = {"batch": len(x), "params": int(sum(w.size for w in model.get_weights())),
                      "steps_per_s": row}
    return rows


def project(measured, out=sys.stdout):
    """docs/distributed.md's table: step time of W1-W4 at 2 to 64 nodes on 10 and 100
    Gbit/s, from one node's measured compute time (micro_batches=8 up to 8 nodes, 64
    beyond) and the reduction's
    traffic, 2 (N - 1) / N of the gradient's bytes per node each way, plus 2 (N - 1)
    message latencies; efficiency against N times the one-node micro-batched step, and
    speed-up against one node's plain step."""
    latency = {10: 20e-6, 100: 5e-6}    # per message, assumed (TCP on 10 GbE; RDMA)
    print("| workload | params | nodes | 10 Gbit/s: step ms | efficiency | speed-up | "
          "100 Gbit/s: step ms | efficiency | speed-up |", file=out)
    print("|---|---|---|---|---|---|---|---|---|", file=out)
    for name, row in measured["steps"].items():
        plain = 1.0 / row["steps_per_s"]["plain"]            # one node, one batch
        bytes_ = 4 * row["params"]
        for nodes in (2, 4, 8, 16, 32, 64):
            parts = 8 if nodes <= 8 else 64   # the fewest measured micro-batches that do
            one = 1.0 / row["steps_per_s"][f"micro_batches={parts}"]   # on one node
            compute = one * (-(-parts // nodes)) / parts
            cells = []
            for gbit in (10, 100):
                comm = 2 * (nodes - 1) / nodes * bytes_ * 8 / (gbit * 1e9) + \
                    2 * (nodes - 1) * latency[gbit]
                step = compute + comm
                cells += [f"{step * 1e3:.2f}", f"{one / (nodes * step):.0%}",
                          f"{plain / step:.1f}x"]
            print(f"| {name} | {row['params']:,} | {nodes} | " + " | ".join(cells) + " |",
                  file=out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--step-repeats", type=int, default=7)
    parser.add_argument("--json", help="write the figures to this file (rank 0)")
    parser.add_argument("--project", help="print the projection from a --json file")
    args = parser.parse_args(argv)
    if args.project:
        with open(args.project) as f:
            project(json.load(f))
        return
    distributed.init()
    world = distributed._world.world()
    sizes = {name: None for name in workloads()}
    for name, spec in workloads().items():
        model, *_ = build(name, spec, "sgd")
        sizes[name] = int(sum(w.size for w in model.get_weights()))
    comm = {}
    for label, length in list(sizes.items()) + [(f"{n:,}", n) for n in SWEEP]:
        comm[label] = reduction(world, length, args.repeats)
    fits = {kind: fit_line(SWEEP, [comm[f"{n:,}"][i] for n in SWEEP])
            for i, kind in enumerate(("allreduce", "cnnx"))}
    rows = steps(world, args.step_repeats)
    if world.rank != 0:
        return
    print(f"# cnnx.distributed on {world.size} process(es), {cnnx.get_num_threads()} "
          f"thread(s) each; {cpu_line()}; NumPy {np.__version__}")
    print("\n| gradient (float32) | Allreduce ms | cnnx ms | cnnx / Allreduce |")
    print("|---|---|---|---|")
    for label, (a, c) in comm.items():
        print(f"| {label} | {a * 1e3:.3f} | {c * 1e3:.3f} | {c / a:.2f} |")
    for kind, (alpha, beta) in fits.items():
        print(f"\n{kind}: alpha {alpha * 1e6:.1f} us, beta {beta * 1e9:.3f} ns/byte "
              f"({1 / beta / 1e9 if beta > 0 else float('inf'):.2f} GB/s)")
    print("\n| workload | batch | params | " + " | ".join(
        next(iter(rows.values()))["steps_per_s"]) + " |")
    print("|---|---|---|" + "---|" * len(next(iter(rows.values()))["steps_per_s"]))
    for name, row in rows.items():
        print(f"| {name} | {row['batch']} | {row['params']:,} | " + " | ".join(
            f"{v:.1f}/s" for v in row["steps_per_s"].values()) + " |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"processes": world.size, "threads": cnnx.get_num_threads(),
                       "cpu": cpu_line(), "comm": comm, "fits": fits, "steps": rows}, f,
                      indent=1)


if __name__ == "__main__":
    main()

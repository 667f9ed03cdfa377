"""The benchmark suite: W1-W4, a training step (forward, backward, SGD update) and inference
at batch 256, on cnnx, on the same network in pure NumPy (cnnx._reference kernels), and on
PyTorch when it is importable (eager, channels_last, torch.set_num_threads matched), timed in
turns in one process, medians of repeats. Then cnnx's per-layer breakdown at 1 thread and at
all threads, with the peak memory of a training step; then the graph networks W5 (a
ResNet-20, batch 64) and W6 (MobileNet-style, batch 32) from bench_graphs.py, training and
inference at that batch against NumPy and PyTorch (not with --quick).

    python benchmarks/run.py [--quick] [--threads N] [--json results.json] [--md results.md]

PyTorch is optional and never a cnnx dependency. GFLOP/s count 2 x multiply-adds of the conv
and dense layers (training = 3 x forward). NumPy's OpenBLAS reads OPENBLAS_CORETYPE once, at
load, so the NumPy side is timed again in a child process under the other environment
(Haswell kernels when this run has them unset, unset when set); --quick and --no-other-env
skip that.
"""
import argparse
import json
import os
import subprocess
import sys
import time
import tracemalloc

import numpy as np

import cnnx
from cnnx import layers as L
from cnnx.models.plan import Plan

import _timing
from _timing import environment_line, interleaved
from bench_models import build, flops_per_sample, side_by_side, workloads


def torch_model(model, input_shape, classes):
    """The same network in PyTorch (NCHW semantics, channels_last memory)."""
    import torch
    from torch import nn
    mods, c = [], input_shape[2]
    for layer in model.layers:
        if isinstance(layer, L.Conv2D):
            k = layer.kernel_size
            mods += [nn.Conv2d(c, layer.filters, k, padding="same" if layer.padding == "same"
                               else 0), nn.ReLU()]
            c = layer.filters
        elif isinstance(layer, L.MaxPooling2D):
            mods.append(nn.MaxPool2d(layer.pool_size))
        elif isinstance(layer, L.Flatten):
            mods.append(nn.Flatten())
        elif isinstance(layer, L.Dense):
            mods.append(nn.Linear(layer.kernel.shape[0], layer.units))
            if layer.get_config()["activation"] == "relu":
                mods.append(nn.ReLU())
    net = nn.Sequential(*mods).to(memory_format=torch.channels_last)
    loss = nn.BCEWithLogitsLoss() if classes == 1 else nn.CrossEntropyLoss()
    return net, loss, torch.optim.SGD(net.parameters(), lr=0.01)


def torch_thunks(model, spec, x, y, x_inf):
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(cnnx.get_num_threads())
    torch.manual_seed(0)
    batch, shape, classes, _ = spec
    net, loss_fn, opt = torch_model(model, shape, classes)
    to_t = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2))).contiguous(  # noqa
        memory_format=torch.channels_last)
    tx, tinf = to_t(x), to_t(x_inf)
    ty = torch.from_numpy(y) if classes == 1 else torch.from_numpy(np.argmax(y, 1))

    def step():
        opt.zero_grad(set_to_none=True)
        loss_fn(net(tx), ty).backward()
        opt.step()

    def infer():
        with torch.no_grad():
            net(tinf)
    return step, infer


def compare(names, repeats):
    rows = []
    for name, spec in workloads().items():
        if names and name not in names:
            continue
        fast, x, y, x_inf, funcs = side_by_side(name, spec)
        torch_side = torch_thunks(fast, spec, x, y, x_inf)
        if torch_side:
            funcs += list(torch_side)
        t = interleaved(funcs, repeats=repeats)
        batch, fl = len(x), flops_per_sample(fast)
        row = dict(workload=name, batch=batch, flops_per_sample=fl,
                   train=dict(cnnx=batch / t[0], numpy=batch / t[1]),
                   infer=dict(cnnx=256 / t[2], numpy=256 / t[3]))
        if torch_side:
            row["train"]["torch"], row["infer"]["torch"] = batch / t[4], 256 / t[5]
        rows.append(row)
    return rows


# The other OpenBLAS environment: these machines set OPENBLAS_CORETYPE=Haswell (and an
# L2 size), which slows NumPy's matmul about 1.8x on AVX-512; unset is NumPy's best.
OTHER_BLAS_ENV = {"OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_L2_SIZE": "524288"}


def numpy_only(names, repeats):
    """Samples/s of the NumPy side alone (train, infer) per workload, in this process."""
    out = {}
    for name, spec in workloads().items():
        if names and name not in names:
            continue
        _, x, _, _, funcs = side_by_side(name, spec)
        t = interleaved([funcs[1], funcs[3]], repeats=repeats)
        out[name] = dict(train=len(x) / t[0], infer=256 / t[1])
    return out


def numpy_other_env(names, repeats, threads):
    """The NumPy side again in a child process with the other OpenBLAS environment
    (OpenBLAS reads it once, at load): set when this run has it unset, and vice versa."""
    env = dict(os.environ)
    if any(k in env for k in OTHER_BLAS_ENV):
        for k in OTHER_BLAS_ENV:
            env.pop(k, None)
    else:
        env.update(OTHER_BLAS_ENV)
    # Run from this folder: `python -c` puts the working folder first on sys.path.
    code = ("import json; import run, cnnx; "
            "cnnx.set_num_threads(%d); print(json.dumps([run.environment_line(), "
            "run.numpy_only(%r, %d)]))" % (threads, names, repeats))
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, check=True,
                          cwd=os.path.dirname(os.path.abspath(__file__)))
    return json.loads(done.stdout.strip().splitlines()[-1])


def breakdown(name, threads, repeats):
    """Per-layer forward and backward times of a cnnx training step, and its peak memory."""
    cnnx.set_num_threads(threads)
    # What the model holds across steps (weights, optimizer slots, buffers, workspace):
    # everything traced from before it is built until after its first step.
    tracemalloc.start()
    model, x, y, _ = build(name, workloads()[name], cnnx.optimizers.SGD(0.01))
    model.train_on_batch(x, y)  # allocate the buffers
    held = tracemalloc.get_traced_memory()[0] - x.nbytes - y.nbytes
    tracemalloc.stop()
    # The steps of the model's training plan, each with its context: the same fusions
    # (ReLU into pooling, logits into the loss, no input gradient first) as fit runs.
    steps = Plan(model, True, model.trainable_weights, model._losses).steps
    acts, h = [], x
    for step in steps:
        acts.append(h)
        h = step.layer.forward(step.ctx, h, True)
    grad = np.ones_like(h) / len(h)
    out = []
    for i, step in enumerate(steps):
        fwd = interleaved([lambda i=i, s=step: s.layer.forward(s.ctx, acts[i], True)],
                          repeats=repeats, settle=_timing.SETTLE_S / 10)[0]
        out.append([step.layer.name, fwd])
    flops = [layer_flops(s.layer, len(x), first=i == 0) for i, s in enumerate(steps)]
    for i in reversed(range(len(steps))):
        step = steps[i]
        step.layer.forward(step.ctx, acts[i], True)
        g = grad if i == len(steps) - 1 else np.ones(
            (len(x),) + tuple(step.layer.output_shape[1:]), x.dtype) * 1e-3
        bwd = interleaved([lambda s=step, g=g: s.layer.backward(s.ctx, g)], repeats=repeats,
                          settle=_timing.SETTLE_S / 10)[0]
        out[i].append(bwd)
    tracemalloc.start()
    model.train_on_batch(x, y)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return dict(workload=name, threads=threads, layers=out, flops=flops,
                step_new_bytes=peak, held_bytes=held)


def layer_flops(layer, batch, first):
    """(forward, backward) FLOPs of a conv or dense layer: 2 x multiply-adds; backward is
    the kernel gradient plus, except in a first layer, the input gradient."""
    if isinstance(layer, L.Conv2D):
        kh, kw, c, f = layer.kernel.shape
        _, oh, ow, _ = layer.output_shape
        fwd = 2 * batch * oh * ow * f * kh * kw * c
    elif isinstance(layer, L.Dense):
        fwd = 2 * batch * layer.kernel.value.size
    else:
        return (0, 0)
    return (fwd, fwd * (1 if first else 2))


def matmul_peak(repeats):
    """GFLOP/s of NumPy's 2048^3 float32 matmul: the machine's practical fp32 peak."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((2048, 2048)).astype(np.float32) for _ in range(2))
    out = np.empty_like(a)
    t = interleaved([lambda: np.matmul(a, b, out=out)], repeats=repeats)[0]
    return 2 * 2048 ** 3 / t / 1e9


def conv_efficiency(part, peak):
    """Markdown lines: each conv layer's GFLOP/s, forward and backward, against peak."""
    lines = ["", f"Conv layers of {part['workload']} at {part['threads']} thread(s) against "
             f"NumPy's float32 matmul peak ({peak:.0f} GFLOP/s, 2048^3, same run)", "",
             "| layer | forward GFLOP/s | % of peak | backward GFLOP/s | % of peak |",
             "| --- | ---: | ---: | ---: | ---: |"]
    total_f = total_t = 0.0
    for (name, fwd, bwd), (ff, fb) in zip(part["layers"], part["flops"]):
        if not name.startswith("conv2d"):
            continue
        total_f += ff + fb
        total_t += fwd + bwd
        lines.append(f"| {name} | {ff / fwd / 1e9:.0f} | {100 * ff / fwd / 1e9 / peak:.0f}% | "
                     f"{fb / bwd / 1e9:.0f} | {100 * fb / bwd / 1e9 / peak:.0f}% |")
    g = total_f / total_t / 1e9
    lines.append(f"| all conv, fwd+bwd | {g:.0f} | {100 * g / peak:.0f}% | | |")
    return lines


def markdown(rows, parts, peak=None, other=None):
    has_torch = any("torch" in r["train"] for r in rows)
    head = "| workload | train cnnx | train NumPy | x NumPy |"
    sep = "| --- | ---: | ---: | ---: |"
    if has_torch:
        head += " train PyTorch | x PyTorch |"
        sep += " ---: | ---: |"
    head += " infer cnnx | infer NumPy | x NumPy |" + (" infer PyTorch | x PyTorch |"
                                                       if has_torch else "")
    sep += " ---: | ---: | ---: |" + (" ---: | ---: |" if has_torch else "")
    lines = ["samples/s (ratios: cnnx / other)", "", head, sep]
    for r in rows:
        cells = [f"{r['workload']} (batch {r['batch']})"]
        for kind in ("train", "infer"):
            d = r[kind]
            cells += [f"{d['cnnx']:,.0f}", f"{d['numpy']:,.0f}", f"{d['cnnx'] / d['numpy']:.2f}"]
            if has_torch:
                cells += [f"{d['torch']:,.0f}", f"{d['cnnx'] / d['torch']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    sides = ["cnnx", "numpy"] + (["torch"] if has_torch else [])
    lines += ["", "GFLOP/s (2 x multiply-adds of the conv and dense layers; training = 3 x "
                  "forward)", "",
              "| workload | " + " | ".join(f"train {x}" for x in sides) + " | "
              + " | ".join(f"infer {x}" for x in sides) + " |",
              "| --- |" + " ---: |" * (2 * len(sides))]
    for r in rows:
        fl = r["flops_per_sample"]
        cells = [f"{3 * fl * r['train'][x] / 1e9:.0f}" for x in sides]
        cells += [f"{fl * r['infer'][x] / 1e9:.0f}" for x in sides]
        lines.append(f"| {r['workload']} | " + " | ".join(cells) + " |")
    if other:
        env, numbers = other
        lines += ["", f"NumPy side again, in a child process with {env} (ratios against the "
                      "cnnx figures above)", "",
                  "| workload | train NumPy | x NumPy | infer NumPy | x NumPy |",
                  "| --- | ---: | ---: | ---: | ---: |"]
        for r in rows:
            o = numbers.get(r["workload"])
            if o:
                lines.append(f"| {r['workload']} | {o['train']:,.0f} | "
                             f"{r['train']['cnnx'] / o['train']:.2f} | {o['infer']:,.0f} | "
                             f"{r['infer']['cnnx'] / o['infer']:.2f} |")
    for part in parts:
        lines += ["", f"cnnx per layer, {part['workload']}, {part['threads']} thread(s). Memory: "
                      f"{part['held_bytes'] / 2**20:.1f} MiB held (weights, optimizer state, "
                      f"layer buffers, kernel workspace); a steady-state training step "
                      f"allocates {part['step_new_bytes'] / 2**20:.2f} MiB more at its peak",
                  "", "| layer | forward ms | backward ms |", "| --- | ---: | ---: |"]
        lines += [f"| {n} | {f * 1e3:.3f} | {b * 1e3:.3f} |" for n, f, b in part["layers"]]
        if peak and part["workload"] == "W4" and part["threads"] > 1:
            lines += conv_efficiency(part, peak)
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="3 repeats, W1 breakdown only, no second OpenBLAS environment")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--only", default="", help="workloads to compare, e.g. W1,W3")
    parser.add_argument("--no-other-env", action="store_true",
                        help="skip timing NumPy again under the other OpenBLAS environment")
    parser.add_argument("--breakdown", default=None,
                        help="workloads to break down per layer (default W1 with --quick, "
                             "else all)")
    parser.add_argument("--busy", type=int, default=0,
                        help="run N competing processes (each spinning a core) for the "
                             "whole comparison: every contender is timed on a busy "
                             "machine (bench_busy.py compares the waiting policies)")
    parser.add_argument("--json", default=None)
    parser.add_argument("--md", default=None)
    parser.add_argument("--check", action="store_true",
                        help="CI: run every benchmark once (all workloads, every breakdown, "
                             "every kernel of bench_kernels) and check that each gives a "
                             "finite, positive time; says nothing about speed")
    args = parser.parse_args(argv)
    if args.check:
        return check()
    start = time.perf_counter()
    threads = args.threads or cnnx.get_num_threads()
    cnnx.set_num_threads(threads)
    repeats = 3 if args.quick else 7
    simd = cnnx.show_config("dicts")["simd"]
    header = f"cnnx {cnnx.__version__}, {threads} threads, SIMD {simd}; {environment_line()}"
    if args.busy:
        import atexit

        from bench_busy import busy_processes
        competitors = busy_processes(args.busy)
        atexit.register(lambda: [p.kill() for p in competitors])
        header += f"; {args.busy} competing busy process(es)"
    print(header)
    names = [n for n in args.only.split(",") if n]
    rows = compare(names, repeats)
    other = (None if args.no_other_env or args.quick
             else numpy_other_env(names, repeats, threads))
    if args.breakdown is None:
        args.breakdown = "W1" if args.quick else ",".join(workloads())
    parts = [breakdown(w, t, repeats) for w in args.breakdown.split(",") if w
             for t in sorted({1, threads})]
    cnnx.set_num_threads(threads)
    peak = matmul_peak(repeats) if any(p["workload"] == "W4" for p in parts) else None
    text = markdown(rows, parts, peak, other)
    # The graph networks (W5, W6: bench_graphs.py), inference at the training batch there
    import bench_graphs
    graph_rows = bench_graphs.compare(names, repeats) if not args.quick else []
    if graph_rows:
        text += ("\n\nGraph networks (benchmarks/bench_graphs.py; inference at the "
                 "training batch)\n\n" + bench_graphs.table(graph_rows))
    print(text)
    print(f"\n({time.perf_counter() - start:.0f} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(header=header, rows=rows, graph_rows=graph_rows, breakdown=parts,
                           matmul_peak_gflops=peak,
                           numpy_other_env=other), f, indent=1)
    if args.md:
        with open(args.md, "w") as f:
            f.write(header + "\n\n" + text + "\n")


def check():
    """Every benchmark once, with one repeat and no settling: that each still runs and
    gives a finite, positive time. For CI; the figures mean nothing."""
    import bench_graphs

    import bench_kernels
    _timing.SETTLE_S, _timing.ONCE = 0.0, True
    count = 0

    def positive(label, values):
        nonlocal count
        bad = [v for v in values if v is not None and not (np.isfinite(v) and v > 0)]
        if bad:
            raise SystemExit(f"check: {label} gave {bad}")
        count += 1

    for row in compare([], repeats=1):
        positive(row["workload"], [*row["train"].values(), *row["infer"].values()])
    for row in bench_graphs.compare([], repeats=1):
        positive(row["workload"], [*row["train"].values(), *row["infer"].values()])
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        print("check: onnxruntime is not installed; bench_onnx.py not checked")
    else:
        import bench_onnx
        rows, big = bench_onnx.compare(["W1", "W5"], repeats=1, big=8)
        for row in rows:
            positive(f"{row['workload']} vs ONNX Runtime",
                     [row[b][k] for b in (1, big) for k in ("cnnx_ms", "ort_ms")])
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        print("check: mpi4py is not installed; bench_distributed.py not checked")
    else:   # one process, without mpiexec: every part of it runs
        import bench_distributed
        bench_distributed.main(["--repeats", "1", "--step-repeats", "1"])
        count += 1
    import bench_busy  # each policy once, quiet and beside one busy process
    bench_busy.main(["--repeats", "1", "--rounds", "1", "--busy", "1"])
    count += 1
    for name in workloads():
        part = breakdown(name, cnnx.get_num_threads(), repeats=1)
        positive(f"{name} breakdown", [t for layer in part["layers"] for t in layer[1:]])
    rng = np.random.default_rng(0)
    for name, spec in bench_kernels.NETWORKS.items():
        for label, _, fast, slow in bench_kernels.layer_cases(name, spec, rng):
            positive(f"{name} {label}", interleaved([fast, slow], repeats=1, settle=0.0))
    positive("matmul peak", [matmul_peak(1)])
    print(f"check: {count} benchmarks ran, every time finite and positive")
    return 0


if __name__ == "__main__":
    sys.exit(main())

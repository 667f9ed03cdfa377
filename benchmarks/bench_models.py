"""Whole networks: a training step (forward, backward, SGD update) and inference at
batch 256, on cnnx and on a pure-NumPy implementation of the same network, side by side
in one process (medians of repeats), in samples per second.

    python benchmarks/bench_models.py [--threads N] [--repeats R] [--only W1,W3]

The pure-NumPy network is the same Sequential model run inside
cnnx.testing.reference_kernels(), which swaps every kernel (the SGD update included) for
its twin in cnnx._reference (im2col + matmul convolutions, strided-slice pooling, ...):
Python overhead is the same on both sides; only the kernels differ.

W1: the keras.io MNIST convnet without dropout, 28x28x1, batch 128
W2: the course CNN, 64x64x3, batch 32
W3: LeNet-5, 32x32x1, batch 64
W4: conv 64-64-pool-128-pool, 32x32x3 "same" padding, batch 64
"""
import argparse
import json

import numpy as np

import cnnx
from cnnx import layers as L

from _timing import environment_line, interleaved


def workloads():
    return {
        "W1": (128, (28, 28, 1), 10, lambda: [
            L.Conv2D(32, 3, activation="relu"), L.MaxPooling2D(2),
            L.Conv2D(64, 3, activation="relu"), L.MaxPooling2D(2), L.Flatten(),
            L.Dense(10, activation="softmax")]),
        "W2": (32, (64, 64, 3), 1, lambda: [
            L.Conv2D(32, 3, activation="relu"), L.MaxPooling2D(2),
            L.Conv2D(32, 3, activation="relu"), L.MaxPooling2D(2), L.Flatten(),
            L.Dense(128, activation="relu"), L.Dense(1, activation="sigmoid")]),
        "W3": (64, (32, 32, 1), 10, lambda: [
            L.Conv2D(6, 5, activation="relu"), L.MaxPooling2D(2),
            L.Conv2D(16, 5, activation="relu"), L.MaxPooling2D(2), L.Flatten(),
            L.Dense(120, activation="relu"), L.Dense(84, activation="relu"),
            L.Dense(10, activation="softmax")]),
        "W4": (64, (32, 32, 3), 10, lambda: [
            L.Conv2D(64, 3, padding="same", activation="relu"),
            L.Conv2D(64, 3, padding="same", activation="relu"), L.MaxPooling2D(2),
            L.Conv2D(128, 3, padding="same", activation="relu"), L.MaxPooling2D(2),
            L.Flatten(), L.Dense(10, activation="softmax")]),
    }


def flops_per_sample(model):
    """2 x multiply-adds of the conv and dense layers, forward."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, L.Conv2D):
            kh, kw, c, f = layer.kernel.shape
            _, oh, ow, _ = layer.output_shape
            total += 2 * oh * ow * f * kh * kw * c
        elif isinstance(layer, L.Dense):
            total += 2 * layer.kernel.value.size
    return total


def build(name, spec, optimizer):
    batch, shape, classes, make = spec
    cnnx.utils.set_random_seed(0)
    model = cnnx.Sequential([cnnx.Input(shape)] + make(), name=name)
    loss = "binary_crossentropy" if classes == 1 else "categorical_crossentropy"
    model.compile(optimizer=optimizer, loss=loss)
    rng = np.random.default_rng(1)
    x = rng.random((batch,) + shape, dtype=np.float32)
    labels = rng.integers(0, max(classes, 2), batch)
    y = (labels[:, None].astype(np.float32) if classes == 1
         else cnnx.utils.to_categorical(labels, classes))
    x_infer = rng.random((256,) + shape, dtype=np.float32)
    return model, x, y, x_infer


def side_by_side(name, spec):
    """The cnnx model, its data, and the timed calls: [cnnx train step, NumPy train step,
    cnnx inference, NumPy inference], the NumPy side being the same network on the
    reference kernels."""
    fast, x, y, x_inf = build(name, spec, cnnx.optimizers.SGD(0.01))
    slow, _, _, _ = build(name, spec, cnnx.optimizers.SGD(0.01))

    def numpy_step():
        with cnnx.testing.reference_kernels():
            slow.train_on_batch(x, y)

    def numpy_infer():
        with cnnx.testing.reference_kernels():
            slow.predict_on_batch(x_inf)

    funcs = [lambda: fast.train_on_batch(x, y), numpy_step,
             lambda: fast.predict_on_batch(x_inf), numpy_infer]
    return fast, x, y, x_inf, funcs


def run(names, repeats):
    rows = []
    for name, spec in workloads().items():
        if names and name not in names:
            continue
        fast, x, y, x_inf, funcs = side_by_side(name, spec)
        t_fast, t_slow, i_fast, i_slow = interleaved(funcs, repeats=repeats)
        batch = len(x)
        fl = flops_per_sample(fast)
        rows.append(dict(workload=name, batch=batch,
                         train_cnnx=batch / t_fast, train_numpy=batch / t_slow,
                         infer_cnnx=256 / i_fast, infer_numpy=256 / i_slow,
                         train_gflops_cnnx=3 * fl * batch / t_fast / 1e9,
                         infer_gflops_cnnx=fl * 256 / i_fast / 1e9,
                         step_ms_cnnx=t_fast * 1e3))
    return rows


def table(rows):
    lines = ["| workload | train cnnx (samples/s) | train NumPy | ratio | infer cnnx "
             "(samples/s) | infer NumPy | ratio | cnnx train GFLOP/s |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['workload']} (batch {r['batch']}) | {r['train_cnnx']:,.0f} | "
                     f"{r['train_numpy']:,.0f} | {r['train_cnnx'] / r['train_numpy']:.2f}x | "
                     f"{r['infer_cnnx']:,.0f} | {r['infer_numpy']:,.0f} | "
                     f"{r['infer_cnnx'] / r['infer_numpy']:.2f}x | "
                     f"{r['train_gflops_cnnx']:.0f} |")
    return "\n".join(lines)


def python_overhead(repeats):
    """Time of a W1 training step at batch 1, where the kernels do almost nothing: an
    upper bound on the per-step cost of the Python around them."""
    _, shape, _, make = workloads()["W1"]
    model = cnnx.Sequential([cnnx.Input(shape)] + make())
    model.compile(optimizer=cnnx.optimizers.SGD(0.01), loss="categorical_crossentropy")
    x = np.random.default_rng(0).random((1,) + shape, dtype=np.float32)
    y = cnnx.utils.to_categorical([3], 10)
    return interleaved([lambda: model.train_on_batch(x, y)], repeats=repeats)[0]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--only", default="", help="comma-separated workloads, e.g. W1,W3")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    if args.threads:
        cnnx.set_num_threads(args.threads)
    print(f"cnnx {cnnx.__version__}, {cnnx.get_num_threads()} threads, SIMD "
          f"{cnnx.show_config('dicts')['simd']}; {environment_line()}\n")
    rows = run([n for n in args.only.split(",") if n], args.repeats)
    print(table(rows))
    overhead = python_overhead(args.repeats)
    w1 = next((r for r in rows if r["workload"] == "W1"), None)
    share = f" ({overhead * 1e3 / w1['step_ms_cnnx']:.0%} of a batch-128 W1 step)" if w1 else ""
    print(f"\nPer-step overhead bound (W1 step at batch 1): {overhead * 1e3:.2f} ms{share}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(threads=cnnx.get_num_threads(), environment=environment_line(),
                           rows=rows, overhead_s=overhead), f, indent=1)


if __name__ == "__main__":
    main()

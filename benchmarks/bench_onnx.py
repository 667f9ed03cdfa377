"""Inference against ONNX Runtime, side by side in one process: each workload's cnnx
model, and the same model exported with cnnx.export.to_onnx and run by onnxruntime with
the same thread count, at batch 1 (latency) and at a large batch (throughput); medians
of interleaved repeats.

    python benchmarks/bench_onnx.py [--threads N] [--repeats R] [--only W1,W5]

Needs onnx and onnxruntime (pip install onnx onnxruntime). Both sides run the same
weights in float32; the ONNX graph takes NCHW input (no transpose inside), the cnnx
model NHWC, as each is used.
"""
import argparse
import os
import tempfile

import numpy as np

import cnnx

from _timing import environment_line, interleaved


def models():
    """name -> (built cnnx model, input shape): W1-W4 (bench_models) and W5-W6
    (bench_graphs)."""
    import bench_graphs

    import bench_models
    out = {}
    for name, (_, shape, _classes, make) in bench_models.workloads().items():
        cnnx.utils.set_random_seed(0)
        out[name] = (cnnx.Sequential([cnnx.Input(shape)] + make(), name=name), shape)
    for name, (_, shape, make) in bench_graphs.workloads().items():
        cnnx.utils.set_random_seed(0)
        out[name] = (make(), shape)
    return out


def session(model, threads, folder):
    import onnxruntime as ort
    path = os.path.join(folder, f"{model.name}.onnx")
    cnnx.export.to_onnx(model, path, input_layout="NCHW")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def compare(names, repeats, big=256):
    threads = cnnx.get_num_threads()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name, (model, shape) in models().items():
            if names and name not in names:
                continue
            sess = session(model, threads, folder)
            feed = model.input_names[0]
            rng = np.random.default_rng(0)
            row = dict(workload=name)
            for batch in (1, big):
                x = rng.random((batch,) + shape, dtype=np.float32)
                xt = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
                np.testing.assert_allclose(sess.run(None, {feed: xt})[0],
                                           model.predict_on_batch(x), rtol=1e-3, atol=1e-4)
                t_cnnx, t_ort = interleaved(
                    [lambda m=model, x=x: m.predict_on_batch(x),
                     lambda s=sess, f=feed, xt=xt: s.run(None, {f: xt})], repeats=repeats)
                row[batch] = dict(cnnx_ms=t_cnnx * 1e3, ort_ms=t_ort * 1e3,
                                  ratio=t_ort / t_cnnx)
            rows.append(row)
    return rows, big


def table(rows, big):
    lines = [f"| workload | batch 1: cnnx ms | ORT ms | cnnx/ORT speed | batch {big}: cnnx ms "
             f"| ORT ms | cnnx/ORT speed |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        a, b = r[1], r[big]
        lines.append(f"| {r['workload']} | {a['cnnx_ms']:.3f} | {a['ort_ms']:.3f} | "
                     f"{a['ratio']:.2f}x | {b['cnnx_ms']:.1f} | {b['ort_ms']:.1f} | "
                     f"{b['ratio']:.2f}x |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--only", default="")
    args = parser.parse_args(argv)
    if args.threads:
        cnnx.set_num_threads(args.threads)
    print(f"cnnx {cnnx.__version__}, {cnnx.get_num_threads()} threads, SIMD "
          f"{cnnx.show_config('dicts')['simd']}; {environment_line()}\n")
    rows, big = compare([n for n in args.only.split(",") if n], args.repeats)
    print(table(rows, big))


if __name__ == "__main__":
    main()

"""Every cnnx kernel against the pure-NumPy reference, forward and backward, at the layer
shapes of two networks, timed side by side in one process (medians of repeats).

    python benchmarks/bench_kernels.py [--threads N] [--repeats R] [--json FILE]

Networks:
  course: the course CNN on 64x64x3, batch 32 (conv 32 3x3, pool 2, conv 32 3x3, pool 2,
          dense 6272 -> 128)
  mnist:  the keras.io "Simple MNIST convnet", batch 128 (conv 32 3x3, pool 2,
          conv 64 3x3, pool 2, dense 1600 -> 10)
  depthwise: a MobileNet block's depthwise step, 32x32x64, multipliers 1 and 2
  resnet: W5's last stage, batch 64: conv 8x8x64 -> 64 3x3 "same" (Winograd F(4x4, 3x3)), then
          BatchNormalization (moments; forward and backward with the ReLU fused)
Not a CI gate: timings are noisy. Ratios are reference time / cnnx time. The cnnx side
passes preallocated `out=` buffers, as its layers keep theirs across steps; the NumPy
side allocates its results, as idiomatic NumPy code does. Lines marked "fused" time the
ReLU backward pass folded into the next kernel, as the layers run it, on both sides
(`relu_output=`): into the first conv's kernel gradient, and into max-pool backward.
"""
import argparse
import json

import numpy as np

import cnnx
from cnnx import ops
from cnnx.testing import reference as ref

from _timing import environment_line, interleaved

NETWORKS = {
    "course": dict(batch=32, input=(64, 64, 3), convs=[32, 32], dense=[128]),
    "mnist": dict(batch=128, input=(28, 28, 1), convs=[32, 64], dense=[10]),
    # A MobileNet block's depthwise step: 3x3 per channel, multipliers 1 and 2.
    "depthwise": dict(batch=32, input=(32, 32, 64), convs=[], dense=[], depthwise=[1, 2]),
    # W5's last stage: a 3x3 "same" conv 64 -> 64 (Winograd F(4x4, 3x3) under "auto"),
    # then BatchNormalization with the ReLU fused in.
    "resnet": dict(batch=64, input=(8, 8, 64), convs=[], dense=[], resnet=[64]),
}


def layer_cases(name, spec, rng):
    """(label, flops or None, cnnx thunk, reference thunk) for every kernel of a network."""
    n = spec["batch"]
    x = rng.standard_normal((n,) + spec["input"]).astype(np.float32)
    cases = []
    for multiplier in spec.get("depthwise", []):
        c = x.shape[3]
        k = (rng.standard_normal((3, 3, c, multiplier)) * 0.1).astype(np.float32)
        b = np.zeros(c * multiplier, np.float32)
        y = ref.depthwise_conv2d(x, k, b, 1, "same")
        dy = rng.standard_normal(y.shape).astype(np.float32)
        flops = 2.0 * y.size * 9
        tag = f"depthwise 3x3 {x.shape[1]}x{x.shape[2]}x{c} x{multiplier}"
        cases.append((f"{tag} fwd", flops,
                      lambda x=x, k=k, b=b, o=np.empty_like(y): ops.depthwise_conv2d(
                          x, k, b, 1, "same", out=o),
                      lambda x=x, k=k, b=b: ref.depthwise_conv2d(x, k, b, 1, "same")))
        grads = (np.empty_like(x), np.empty_like(k), np.empty_like(b))
        cases.append((f"{tag} bwd", 2 * flops,
                      lambda x=x, k=k, dy=dy, g=grads: ops.depthwise_conv2d_backward(
                          x, k, dy, 1, "same", out=g),
                      lambda x=x, k=k, dy=dy: ref.depthwise_conv2d_backward(
                          x, k, dy, 1, "same")))
    for filters in spec.get("resnet", []):
        c = x.shape[3]
        k = (rng.standard_normal((3, 3, c, filters)) * 0.1).astype(np.float32)
        y = ref.conv2d(x, k, None, 1, "same")
        dy = rng.standard_normal(y.shape).astype(np.float32)
        flops = 2.0 * y.size * 9 * c
        tag = f"conv 3x3 same {x.shape[1]}x{x.shape[2]}x{c}->{filters}"
        cases.append((f"{tag} fwd (winograd)", flops,
                      lambda x=x, k=k, o=np.empty_like(y): ops.conv2d(x, k, None, 1, "same",
                                                                      out=o),
                      lambda x=x, k=k: ref.conv2d(x, k, None, 1, "same")))
        grads = (np.empty_like(x), np.empty_like(k), None)
        cases.append((f"{tag} bwd", 2 * flops,
                      lambda x=x, k=k, dy=dy, g=grads: ops.conv2d_backward(
                          x, k, dy, 1, "same", use_bias=False, out=g),
                      lambda x=x, k=k, dy=dy: ref.conv2d_backward(x, k, dy, 1, "same",
                                                                 use_bias=False)))
        mean, var = ref.batch_normalization_moments(y)
        gamma = np.ones(filters, np.float32)
        beta = np.zeros(filters, np.float32)
        z = ref.batch_normalization(y, mean, var, gamma, beta, activation="relu")
        cases.append(("batchnorm moments", None,
                      lambda y=y: ops.batch_normalization_moments(y),
                      lambda y=y: ref.batch_normalization_moments(y)))
        cases.append(("batchnorm+relu fwd, fused", None,
                      lambda y=y, m=mean, v=var, g=gamma, b=beta, o=np.empty_like(y):
                          ops.batch_normalization(y, m, v, g, b, activation="relu", out=o),
                      lambda y=y, m=mean, v=var, g=gamma, b=beta: ref.batch_normalization(
                          y, m, v, g, b, activation="relu")))
        cases.append(("batchnorm+relu bwd, fused", None,
                      lambda y=y, m=mean, v=var, g=gamma, z=z, dy=dy, o=np.empty_like(y):
                          ops.batch_normalization_backward(y, dy, m, v, g,
                                                           out=(o, None, None),
                                                           relu_output=z),
                      lambda y=y, m=mean, v=var, g=gamma, z=z, dy=dy:
                          ref.batch_normalization_backward(y, dy, m, v, g, relu_output=z)))
    for i, filters in enumerate(spec["convs"], 1):
        c = x.shape[3]
        k = (rng.standard_normal((3, 3, c, filters)) * 0.1).astype(np.float32)
        b = np.zeros(filters, np.float32)
        y = ref.conv2d(x, k, b)
        dy = rng.standard_normal(y.shape).astype(np.float32)
        out = np.empty_like(y)
        fwd_flops = 2.0 * y.size * k.shape[0] * k.shape[1] * c
        first = i == 1  # a first layer needs no input gradient
        tag = f"conv{i} {x.shape[1]}x{x.shape[2]}x{c}->{filters}"
        cases.append((f"{tag} fwd", fwd_flops,
                      lambda x=x, k=k, b=b, out=out: ops.conv2d(x, k, b, out=out),
                      lambda x=x, k=k, b=b: ref.conv2d(x, k, b)))
        bwd_flops = fwd_flops * (1 if first else 2)
        grads = (None if first else np.empty_like(x), np.empty_like(k), np.empty_like(b))
        cases.append((f"{tag} bwd", bwd_flops,
                      lambda x=x, k=k, dy=dy, f=first, g=grads: ops.conv2d_backward(
                          x, k, dy, input_grad=not f, out=g),
                      lambda x=x, k=k, dy=dy, f=first: ref.conv2d_backward(x, k, dy,
                                                                          input_grad=not f)))
        if first:  # the first layer's kernel gradient applies the ReLU mask itself
            cases.append((f"{tag} bwd+relu, fused", bwd_flops,
                          lambda x=x, k=k, dy=dy, y=y, g=grads: ops.conv2d_backward(
                              x, k, dy, input_grad=False, out=g, relu_output=y),
                          lambda x=x, k=k, dy=dy, y=y: ref.conv2d_backward(
                              x, k, dy, input_grad=False, relu_output=y)))
        cases.append((f"relu{i} fwd", None,
                      lambda y=y, out=out: ops.relu(y, out=out), lambda y=y: ref.relu(y)))
        cases.append((f"relu{i} bwd", None,
                      lambda y=y, dy=dy, out=out: ops.relu_backward(dy, y, out=out),
                      lambda y=y, dy=dy: ref.relu_backward(dy, y)))
        y = ref.relu(y)
        p, arg = ops.max_pool2d(y, 2)
        _, arg_ref = ref.max_pool2d(y, 2)
        dp = rng.standard_normal(p.shape).astype(np.float32)
        pout = (np.empty_like(p), np.empty_like(arg))
        cases.append((f"maxpool{i} fwd", None,
                      lambda y=y, pout=pout: ops.max_pool2d(y, 2, out=pout),
                      lambda y=y: ref.max_pool2d(y, 2)))
        cases.append((f"maxpool{i} bwd", None,
                      lambda dp=dp, arg=arg, s=y.shape, o=np.empty_like(y):
                          ops.max_pool2d_backward(dp, arg, s, out=o),
                      lambda dp=dp, arg=arg_ref, s=y.shape: ref.max_pool2d_backward(dp, arg, s)))
        # In a network, relu bwd follows maxpool bwd; both sides fuse it (cnnx's layers do).
        cases.append((f"maxpool{i}+relu{i} bwd, fused", None,
                      lambda dp=dp, arg=arg, s=y.shape, o=np.empty_like(y), p=p:
                          ops.max_pool2d_backward(dp, arg, s, out=o, relu_output=p),
                      lambda dp=dp, arg=arg_ref, s=y.shape, p=p:
                          ref.max_pool2d_backward(dp, arg, s, relu_output=p)))
        x = p
    flat = x.reshape(n, -1)
    for j, units in enumerate(spec["dense"], 1):
        w = (rng.standard_normal((flat.shape[1], units)) * 0.01).astype(np.float32)
        b = np.zeros(units, np.float32)
        dz = rng.standard_normal((n, units)).astype(np.float32)
        flops = 2.0 * n * flat.shape[1] * units
        tag = f"dense{j} {flat.shape[1]}->{units}"
        cases.append((f"{tag} fwd", flops,
                      lambda f=flat, w=w, b=b, o=np.empty_like(dz): ops.dense(f, w, b, out=o),
                      lambda f=flat, w=w, b=b: ref.dense(f, w, b)))
        one = np.ascontiguousarray(flat[:1])   # inference on one image: the row path
        cases.append((f"{tag} fwd, 1 image", 2.0 * flat.shape[1] * units,
                      lambda f=one, w=w, b=b, o=np.empty((1, units), np.float32):
                          ops.dense(f, w, b, out=o),
                      lambda f=one, w=w, b=b: ref.dense(f, w, b)))
        grads = (np.empty_like(flat), np.empty_like(w), np.empty_like(b))
        cases.append((f"{tag} bwd", 2 * flops,
                      lambda f=flat, w=w, dz=dz, g=grads: ops.dense_backward(f, w, dz, out=g),
                      lambda f=flat, w=w, dz=dz: ref.dense_backward(f, w, dz)))
        flat = ref.dense(flat, w, b)
    t = np.eye(flat.shape[1], dtype=np.float32)[rng.integers(0, flat.shape[1], n)]
    if spec["dense"] and flat.shape[1] > 1:
        cases.append(("softmax xent", None,
                      lambda z=flat, t=t: ops.softmax_cross_entropy(z, t),
                      lambda z=flat, t=t: ref.softmax_cross_entropy(z, t)))
    return cases


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)
    if args.threads:
        cnnx.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    print(f"cnnx {cnnx.__version__}, {cnnx.get_num_threads()} threads, SIMD "
          f"{cnnx.show_config('dicts')['simd']}; {environment_line()}")
    results = []
    for name, spec in NETWORKS.items():
        print(f"\n{name} network, batch {spec['batch']}")
        print(f"{'kernel':34s} {'cnnx ms':>9s} {'GF/s':>6s} {'numpy ms':>9s} {'GF/s':>6s} "
              f"{'ratio':>6s}")
        for label, flops, fast, slow in layer_cases(name, spec, rng):
            tc, tr = interleaved([fast, slow], repeats=args.repeats)
            gc = f"{flops / tc / 1e9:6.0f}" if flops else " " * 6
            gr = f"{flops / tr / 1e9:6.0f}" if flops else " " * 6
            print(f"{label:34s} {tc * 1e3:9.3f} {gc} {tr * 1e3:9.3f} {gr} {tr / tc:6.2f}")
            results.append(dict(network=name, kernel=label, cnnx_s=tc, numpy_s=tr,
                                flops=flops, ratio=tr / tc))
    # The headline: conv forward + backward at the MNIST convnet's second layer.
    fb = [r for r in results if r["network"] == "mnist" and r["kernel"].startswith("conv2")]
    ratio = sum(r["numpy_s"] for r in fb) / sum(r["cnnx_s"] for r in fb)
    print(f"\nMNIST conv2 (13x13x32 -> 11x11x64, batch 128) forward+backward: "
          f"{ratio:.2f}x the NumPy reference")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(threads=cnnx.get_num_threads(), environment=environment_line(),
                           results=results), f, indent=1)


if __name__ == "__main__":
    main()

"""Graph networks, side by side in one process: cnnx, the same cnnx model on the NumPy
twins of its kernels, and PyTorch (eager, channels_last, the same thread count), a
training step (SGD) and inference, medians of interleaved repeats, in samples/s.

Each ratio comes from its own interleave: cnnx with the NumPy twins, then cnnx with
PyTorch (cnnx's samples/s shown are the first's). With all six in one interleave,
PyTorch's W5 step ran 101 ms instead of 117 right after the twins' (measured: the heap
the twins leave behind, presumably) while cnnx's stayed at 111 ms: the pair alone is
what a training loop of either sees.

    python benchmarks/bench_graphs.py [--threads N] [--repeats R] [--only W5]

W5: ResNet-20 for CIFAR (32x32x3, three stages of three basic blocks, 16/32/64
    filters, BatchNormalization, 1x1 projection shortcuts), batch 64
W6: a MobileNet-style stack (64x64x3: a strided stem, six depthwise-separable blocks
    of DepthwiseConv2D-BN-ReLU-Conv2D 1x1-BN-ReLU, three of them strided), batch 32
"""
import argparse
import json

import numpy as np

import cnnx
from cnnx import layers as L

from _timing import environment_line, interleaved


def resnet20():
    inp = cnnx.Input((32, 32, 3))

    def conv_bn(x, filters, kernel, strides=1):
        x = L.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False)(x)
        return L.BatchNormalization()(x)

    x = L.Activation("relu")(conv_bn(inp, 16, 3))
    for stage, filters in enumerate((16, 32, 64)):
        for block in range(3):
            strides = 2 if stage and not block else 1
            y = L.Activation("relu")(conv_bn(x, filters, 3, strides))
            y = conv_bn(y, filters, 3)
            shortcut = conv_bn(x, filters, 1, strides) if strides == 2 else x
            x = L.Activation("relu")(L.add([y, shortcut]))
    out = L.Dense(10, activation="softmax")(L.GlobalAveragePooling2D()(x))
    return cnnx.Model(inp, out, name="resnet20")


MOBILE_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2))


def mobilenet():
    inp = cnnx.Input((64, 64, 3))
    x = L.Conv2D(32, 3, strides=2, padding="same", use_bias=False)(inp)
    x = L.Activation("relu")(L.BatchNormalization()(x))
    for filters, strides in MOBILE_BLOCKS:
        x = L.DepthwiseConv2D(3, strides=strides, padding="same", use_bias=False)(x)
        x = L.Activation("relu")(L.BatchNormalization()(x))
        x = L.Conv2D(filters, 1, use_bias=False)(x)
        x = L.Activation("relu")(L.BatchNormalization()(x))
    out = L.Dense(10, activation="softmax")(L.GlobalAveragePooling2D()(x))
    return cnnx.Model(inp, out, name="mobilenet")


def workloads():
    return {"W5": (64, (32, 32, 3), resnet20), "W6": (32, (64, 64, 3), mobilenet)}


def torch_resnet20():
    from torch import nn

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.a = nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
                                   nn.BatchNorm2d(cout, eps=1e-3), nn.ReLU(),
                                   nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
                                   nn.BatchNorm2d(cout, eps=1e-3))
            self.short = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                        nn.BatchNorm2d(cout, eps=1e-3))
                          if stride == 2 else nn.Identity())
            self.relu = nn.ReLU()

        def forward(self, x):
            return self.relu(self.a(x) + self.short(x))

    mods = [nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16, eps=1e-3), nn.ReLU()]
    cin = 16
    for stage, filters in enumerate((16, 32, 64)):
        for block in range(3):
            mods.append(Block(cin, filters, 2 if stage and not block else 1))
            cin = filters
    mods += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10)]
    return nn.Sequential(*mods)


def torch_mobilenet():
    from torch import nn
    mods = [nn.Conv2d(3, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32, eps=1e-3), nn.ReLU()]
    cin = 32
    for filters, strides in MOBILE_BLOCKS:
        mods += [nn.Conv2d(cin, cin, 3, strides, 1, groups=cin, bias=False),
                 nn.BatchNorm2d(cin, eps=1e-3), nn.ReLU(),
                 nn.Conv2d(cin, filters, 1, bias=False), nn.BatchNorm2d(filters, eps=1e-3),
                 nn.ReLU()]
        cin = filters
    mods += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, 10)]
    return nn.Sequential(*mods)


TORCH = {"W5": torch_resnet20, "W6": torch_mobilenet}


def build(name):
    batch, shape, make = workloads()[name]
    cnnx.utils.set_random_seed(0)
    model = make()
    model.compile(optimizer=cnnx.optimizers.SGD(0.01), loss="categorical_crossentropy")
    rng = np.random.default_rng(1)
    x = rng.random((batch,) + shape, dtype=np.float32)
    labels = rng.integers(0, 10, batch)
    return model, x, cnnx.utils.to_categorical(labels, 10), labels


def thunks(name):
    """[cnnx train, NumPy-twin train, cnnx infer, NumPy-twin infer] (+ PyTorch's two
    when it is installed) for the workload."""
    fast, x, y, labels = build(name)
    slow, _, _, _ = build(name)

    def twin(fn):
        def run():
            with cnnx.testing.reference_kernels():
                fn()
        return run

    funcs = [lambda: fast.train_on_batch(x, y), twin(lambda: slow.train_on_batch(x, y)),
             lambda: fast.predict_on_batch(x), twin(lambda: slow.predict_on_batch(x))]
    try:
        import torch
    except ImportError:
        return fast, x, funcs
    torch.set_num_threads(cnnx.get_num_threads())
    torch.manual_seed(0)
    net = TORCH[name]().to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    loss_fn = torch.nn.CrossEntropyLoss()
    tx = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).contiguous(
        memory_format=torch.channels_last)
    ty = torch.from_numpy(labels)

    def step():
        net.train()
        opt.zero_grad(set_to_none=True)
        loss_fn(net(tx), ty).backward()
        opt.step()

    def infer():
        net.eval()
        with torch.no_grad():
            net(tx)

    return fast, x, funcs + [step, infer]


def compare(names, repeats):
    rows = []
    for name in workloads():
        if names and name not in names:
            continue
        model, x, funcs = thunks(name)
        t = interleaved(funcs[:4], repeats=repeats)
        batch = len(x)
        row = dict(workload=name, batch=batch, params=model.count_params(),
                   train=dict(cnnx=batch / t[0], numpy=batch / t[1]),
                   infer=dict(cnnx=batch / t[2], numpy=batch / t[3]))
        if len(funcs) == 6:   # PyTorch: its own interleave with cnnx (see the header)
            p = interleaved([funcs[0], funcs[4], funcs[2], funcs[5]], repeats=repeats)
            row["train"]["torch"], row["infer"]["torch"] = batch / p[1], batch / p[3]
            row["train"]["torch_ratio"] = p[1] / p[0]    # cnnx / PyTorch speed
            row["infer"]["torch_ratio"] = p[3] / p[2]
        rows.append(row)
    return rows


def table(rows):
    lines = ["| workload | params | train cnnx (samples/s) | / NumPy | / PyTorch | "
             "infer cnnx (samples/s) | / NumPy | / PyTorch |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        tr, inf = r["train"], r["infer"]
        torch_tr = f"{tr['torch_ratio']:.2f}x" if "torch" in tr else "-"
        torch_inf = f"{inf['torch_ratio']:.2f}x" if "torch" in inf else "-"
        lines.append(f"| {r['workload']} (batch {r['batch']}) | {r['params']:,} | "
                     f"{tr['cnnx']:,.0f} | {tr['cnnx'] / tr['numpy']:.2f}x | {torch_tr} | "
                     f"{inf['cnnx']:,.0f} | {inf['cnnx'] / inf['numpy']:.2f}x | "
                     f"{torch_inf} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--only", default="", help="comma-separated workloads, e.g. W5")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    if args.threads:
        cnnx.set_num_threads(args.threads)
    print(f"cnnx {cnnx.__version__}, {cnnx.get_num_threads()} threads, SIMD "
          f"{cnnx.show_config('dicts')['simd']}; {environment_line()}\n")
    rows = compare([n for n in args.only.split(",") if n], args.repeats)
    print(table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(threads=cnnx.get_num_threads(), environment=environment_line(),
                           rows=rows), f, indent=1)


if __name__ == "__main__":
    main()

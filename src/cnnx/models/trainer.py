"""Trainer: compile, fit, evaluate and predict, as Keras 3 splits them.

`train_step`, `test_step` and `predict_step` each take one batch `(x, y, sample_weight)`
of checked arrays (x and y as lists, one array per model input and output) and run it
through the model's compiled plan (models/plan.py). fit, evaluate and predict run them
over an epoch of batches from an EpochIterator (data_adapter.py): arrays, dicts of
arrays, generators, Sequences and PyDatasets alike, with one CallbackList each.

Several outputs: `loss`, `metrics` and `loss_weights` may be lists or dicts keyed by the
output names; the logs hold the weighted total `loss`, and `<output>_loss` and
`<output>_<metric>` for each output, as Keras 3 names them.
"""
import functools
import numbers
import time
import warnings

import numpy as np

from .. import _args, _random, losses, ops, optimizers
from .. import callbacks as callbacks_module
from .. import metrics as metrics_module
from .._compat import keras3_arguments, refuse_unimplemented
from ..data_adapter import EpochIterator, is_source
from ..progbar import Progbar
from . import _guard

__all__ = ["Trainer"]

# Worker settings of Keras's fit and generator methods: cnnx prefetches on one
# background thread whatever they say, and the results are the same.
_WORKER_ARGS = {"workers", "use_multiprocessing", "max_queue_size"}


class Trainer:
    """The training half of Model: what compile sets up and fit/evaluate/predict run."""

    def _init_trainer(self):
        self.optimizer = self.loss = None
        self.compiled = False
        self.stop_training = False
        self.history = None
        self._compile_args = None
        self._losses = self._loss_weights = self._metrics = None

    # -- compile -------------------------------------------------------------------
    def compile(self, optimizer: "str | dict | optimizers.Optimizer" = "rmsprop",
                loss=None, metrics=None, loss_weights=None, weighted_metrics=None,
                run_eagerly=False, steps_per_execution=1, jit_compile="auto",
                auto_scale_loss=True) -> None:
        refuse_unimplemented("compile", weighted_metrics=(weighted_metrics, None))
        # Execution switches of Keras's backends (eager or traced, steps per compiled
        # call, XLA, loss scaling for float16): cnnx always runs its compiled kernels one
        # step at a time in float32/64, and every setting gives the same results.
        del run_eagerly, steps_per_execution, jit_compile, auto_scale_loss
        if loss is None:
            raise ValueError(f"model {self.name!r}: compile() needs a loss")
        self.optimizer = optimizers.get(optimizer)
        self._compile_args = (loss, metrics, loss_weights)
        self._losses = None
        self.loss = (losses.get(loss) if isinstance(loss, (str, losses.Loss)) or callable(loss)
                     and not isinstance(loss, type) else loss)
        # Names are checked now; the per-output objects once the outputs are known.
        for spec in _flat(loss):
            losses.get(spec)
        for spec in _flat(metrics):
            metrics_module.get(spec, None, 1)
        self._metrics = None
        self._plans_clear()
        self.compiled = True
        if self.built:
            self._resolve_compile()

    def _resolve_compile(self):
        """Per output: its Loss (or None), weight and metric objects."""
        if self._losses is not None:
            return
        loss, metrics, loss_weights = self._compile_args
        names, shapes = self.output_names, self._output_shapes()
        where = f"compile (model {self.name!r})"
        loss_specs = _per_output(loss, names, "loss", where, broadcast=True)
        self._losses = [None if s is None else losses.get(s) for s in loss_specs]
        if all(item is None for item in self._losses):
            raise ValueError(f"{where}: no output has a loss")
        weights = _per_output(loss_weights, names, "loss_weights", where, broadcast=False) \
            if loss_weights is not None else [1.0] * len(names)
        for w in weights:
            if w is not None and (isinstance(w, bool) or not isinstance(w, numbers.Real)
                                  or not np.isfinite(w)):
                raise ValueError(f"{where}: `loss_weights` must be finite numbers, "
                                 f"received {loss_weights!r}")
        self._loss_weights = [1.0 if w is None else float(w) for w in weights]
        metric_specs = _per_output(metrics, names, "metrics", where, broadcast=True,
                                   lists=True)
        multi = len(names) > 1
        self._metrics = []
        for i, specs in enumerate(metric_specs):
            out = []
            for spec in specs or []:
                if multi and isinstance(spec, metrics_module.Metric) and len(
                        [s for s in metric_specs if s and spec in s]) > 1:
                    raise ValueError(f"{where}: one Metric object cannot serve several "
                                     f"outputs; give each output its own")
                metric = metrics_module.get(spec, self._losses[i], shapes[i][-1])
                out.append(metric)
            self._metrics.append(out)
        self._metric_names = [[f"{names[i]}_{m.name}" if multi else m.name for m in ms]
                              for i, ms in enumerate(self._metrics)]

    def _require_compiled(self, where):
        if not self.compiled:
            raise RuntimeError(f"{where}: call compile() before training or evaluating "
                               f"model {self.name!r}")
        self._resolve_compile()

    @property
    def metrics(self):
        """The compiled metrics' objects, "accuracy" and friends resolved to their
        classes by Keras's rule (empty before compile; resolved once the model is
        built)."""
        if not self.compiled or not self.built:
            return []
        self._resolve_compile()
        return [m for ms in self._metrics for m in ms]

    @property
    def metrics_names(self):
        names = ["loss"]
        if self._losses is not None and len(self._losses) > 1:
            names += [f"{n}_loss" for n, item in zip(self.output_names, self._losses) if item]
        return names + [n for ns in getattr(self, "_metric_names", []) for n in ns]

    def _regularization(self):
        return sum(layer.regularization_loss() for layer in self._weighted_layers())

    # -- steps ---------------------------------------------------------------------
    def train_step(self, data):
        """One step on a batch (x, y, sample_weight): forward, loss, backward, update.
        Returns the batch's losses: {"loss": total, "<output>_loss": ...}. A model
        compiled with cnnx.distributed.DistributedOptimizer computes it over the job's
        processes."""
        distribution = getattr(self.optimizer, "_distribution", None)
        if distribution is not None:
            return distribution.train_step(self, data)
        with _guard.guard(self).writing(), _guard.deferred_interrupt():
            x, y, sample_weight = data
            variables = self.trainable_weights
            plan = self._training_plan(x, variables)
            outputs = plan.forward(x)
            values, grads, preds = self._output_losses(plan, outputs, y, sample_weight)
            total = 0.0
            for i, value in values.items():
                total += self._loss_weights[i] * value
            total += self._regularization() + plan.activity_loss
            grads = plan.backward(grads)
            grads = [g + v.regularizer.gradient(v.value) if v.regularizer else g
                     for g, v in zip(grads, variables)]
            self.optimizer.apply(grads, variables)
            self._update_metrics(y, preds, sample_weight)
        return self._loss_logs(total, values)

    def _output_losses(self, plan, outputs, y, sample_weight):
        """Each output's loss from a training plan's forward pass: ({output index: loss
        value}, dL/d(output) scaled by the output's loss weight (None where it has no
        loss), and the predictions the metrics see (probabilities where the plan handed
        the loss its logits))."""
        values, grads, preds = {}, [], []
        for i, (loss, weight) in enumerate(zip(self._losses, self._loss_weights)):
            if loss is None:
                grads.append(None)
                preds.append(outputs[i])
                continue
            if plan.logits[i]:
                value, grad, pred = loss.value_and_grad_from_logits(
                    y[i], outputs[i], sample_weight)
            else:
                (value, grad), pred = loss.value_and_grad(y[i], outputs[i],
                                                          sample_weight), outputs[i]
            if weight != 1.0:
                grad = grad * grad.dtype.type(weight)
            grads.append(grad)
            preds.append(pred)
            values[i] = value
        return values, grads, preds

    def test_step(self, data):
        """The losses of a batch (x, y, sample_weight) in inference mode, with the
        metrics updated."""
        x, y, sample_weight = data
        activity = []
        preds = self._run_inference(x, losses=activity)
        return self._score(y, preds, sample_weight, activity[0])

    def _score(self, y, preds, sample_weight, activity):
        """test_step's losses and metric updates, given the batch's outputs and the
        activity regularizers' penalty."""
        values, total = {}, activity
        for i, (loss, weight) in enumerate(zip(self._losses, self._loss_weights)):
            if loss is not None:
                values[i] = loss(y[i], preds[i], sample_weight)
                total += weight * values[i]
        self._update_metrics(y, preds, sample_weight)
        return self._loss_logs(total + self._regularization(), values)

    def predict_step(self, x):
        """The outputs for a batch x (a list of arrays, one per input), as a list of
        arrays of the caller's own (the inference plan copies them out of its buffers)."""
        return self._run_inference(x)

    def _loss_logs(self, total, values):
        logs = {"loss": float(total)}
        if len(self._losses) > 1:
            for i, value in values.items():
                logs[f"{self.output_names[i]}_loss"] = float(value)
        return logs

    def _update_metrics(self, y, preds, sample_weight):
        for i, metrics in enumerate(self._metrics):
            for metric in metrics:
                metric.update_state(y[i], preds[i], sample_weight)

    def _reset_metrics(self):
        for metrics in self._metrics:
            for metric in metrics:
                metric.reset_state()

    def _logs(self, loss_means):
        logs = dict(loss_means)
        for names, metrics in zip(self._metric_names, self._metrics):
            for name, metric in zip(names, metrics):
                logs[name] = float(metric.result())
        return dict(sorted(logs.items()))

    # -- fit -----------------------------------------------------------------------
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, steps_per_epoch=None, validation_steps=None,
            validation_batch_size=None, validation_freq=1,
            **kwargs) -> callbacks_module.History:
        where = "fit"
        if "nb_epoch" in kwargs:   # Keras 1
            if epochs != 1:
                raise TypeError("fit: got both `nb_epoch` (Keras 1) and `epochs`; pass "
                                "`epochs` alone")
            epochs = keras3_arguments(where, kwargs, {"nb_epoch": "epochs"},
                                      stacklevel=3).pop("epochs")
            kwargs.pop("nb_epoch")
        _worker_args(where, kwargs)
        self._require_built_for(x, where)
        self._require_compiled(where)
        batch_size = _batch_size(batch_size, where)
        # Every argument is checked here, before the first step: nothing is found out
        # after an epoch of training.
        epochs = _args.positive_int(epochs, "epochs", where, optional=False)
        initial_epoch = _args.epoch_index(initial_epoch, epochs, where)
        verbose = _args.verbosity(verbose, where)
        steps_per_epoch = _args.positive_int(steps_per_epoch, "steps_per_epoch", where)
        validation_steps = _args.positive_int(validation_steps, "validation_steps", where)
        validation_batch_size = _args.positive_int(validation_batch_size,
                                                   "validation_batch_size", where)
        validation_freq = _args.positive_int(validation_freq, "validation_freq", where,
                                             optional=False)
        class_weight = _args.class_weights(class_weight, where)
        user_callbacks = self._callback_list(callbacks, where, verbose).callbacks
        if not isinstance(shuffle, bool):
            raise TypeError(f"{where}: `shuffle` must be True or False, received {shuffle!r}")
        if isinstance(validation_split, bool) or not isinstance(validation_split,
                                                                numbers.Real):
            raise TypeError(f"{where}: `validation_split` must be a number in [0, 1), "
                            f"received {validation_split!r}")
        if not 0 <= validation_split < 1:
            raise ValueError(f"{where}: `validation_split` must be in [0, 1), "
                             f"received {validation_split}")
        val = None
        distribution = getattr(self.optimizer, "_distribution", None)
        if is_source(x):
            if y is not None:
                raise ValueError(f"{where}: `y` must not be given when `x` is a data iterator "
                                 f"or generator: it yields (x, y) batches")
            if validation_split:
                raise ValueError(f"{where}: validation_split cannot split a data iterator; "
                                 f"pass validation_data")
            data = EpochIterator.from_source(
                self, x, steps_per_epoch, where, class_weight=class_weight,
                shard=distribution.rows if distribution is not None else None)
        else:
            xs = self._check_x(x, where)
            n = len(xs[0])
            ys = self._check_y(y, n, where)
            sample_weight = self._sample_weights(ys, sample_weight, class_weight, n, where)
            if validation_split and validation_data is None:
                # Keras takes the last fraction, before any shuffling.
                split = int(n * (1 - validation_split))
                if split == 0 or split == n:
                    raise ValueError(f"{where}: validation_split={validation_split} leaves no "
                                     f"training or no validation samples out of {n}")
                val = ([a[split:] for a in xs], [a[split:] for a in ys],
                       None if sample_weight is None else sample_weight[split:])
                xs, ys = [a[:split] for a in xs], [a[:split] for a in ys]
                sample_weight = None if sample_weight is None else sample_weight[:split]
            data = EpochIterator.from_arrays(
                xs, ys, sample_weight, batch_size, steps_per_epoch, shuffle,
                shard=distribution.rows if distribution is not None else None)
        if validation_data is not None:
            val = self._validation(validation_data, validation_steps, where)

        verbose = 1 if verbose == "auto" else verbose
        if distribution is not None and distribution.world.rank != 0:
            # Progress and files come from rank 0 alone; every rank has the same logs.
            verbose = 0
            user_callbacks = [c for c in user_callbacks
                              if not getattr(c, "_rank_zero_only", False)]
        history = callbacks_module.History()
        cbs = list(user_callbacks)
        if verbose:
            cbs.append(callbacks_module.ProgbarLogger(verbose))
        cbs.append(history)
        params = {"verbose": verbose, "epochs": epochs, "steps": data.steps}
        cb = callbacks_module.CallbackList(cbs, self, params)
        self.stop_training = False
        self.history = history
        history.data_wait_s, started = 0.0, time.perf_counter()
        cb.on_train_begin()
        rng = _random.generator()
        if distribution is not None:
            distribution.begin_fit([x] if is_source(x) else [])
        for epoch in range(initial_epoch, epochs):
            self._reset_metrics()
            cb.on_epoch_begin(epoch)
            means, logs = _Means(), {}
            if distribution is not None:
                rng = distribution.epoch_generator(epoch)
            for step, batch in data.epoch(rng):
                cb.on_train_batch_begin(step)
                means.add(self.train_step(batch), getattr(batch, "size", len(batch[0][0])))
                logs = self._logs(means.result())
                cb.on_train_batch_end(step, logs)
                if self.stop_training:
                    break
            history.data_wait_s += data.wait_s
            epoch_logs = dict(logs)
            if val is not None and (epoch + 1) % validation_freq == 0:
                if isinstance(val, EpochIterator):
                    val_data = val
                else:
                    val_data = EpochIterator.from_arrays(
                        val[0], val[1], val[2], validation_batch_size or batch_size,
                        validation_steps, False)
                # As in Keras, validation is an evaluate: the on_test_* hooks hear it.
                cb.on_test_begin()
                if distribution is not None:   # each process runs some of the batches
                    from ..distributed._inference import evaluate_epoch
                    val_logs = evaluate_epoch(self, val_data, verbose=0, cb=cb)
                else:
                    val_logs = self._evaluate(val_data, verbose=0, cb=cb)
                cb.on_test_end(val_logs)
                epoch_logs.update({f"val_{k}": v for k, v in val_logs.items()})
            epoch_logs = dict(sorted(epoch_logs.items()))
            cb.on_epoch_end(epoch, epoch_logs)
            if self.stop_training:
                break
        cb.on_train_end()
        history.wall_s = time.perf_counter() - started
        history.model = self
        history.params = params
        return history

    def _validation(self, validation_data, steps, where):
        if is_source(validation_data):
            return EpochIterator.from_source(self, validation_data, steps, where)
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (
                2, 3):
            raise ValueError(f"{where}: `validation_data` must be (x_val, y_val), "
                             f"(x_val, y_val, sample_weight) or a data iterator")
        vx = self._check_x(validation_data[0], where + " validation_data")
        vy = self._check_y(validation_data[1], len(vx[0]), where + " validation_data")
        vw = _args.finite_weights(
            validation_data[2] if len(validation_data) == 3 else None, len(vx[0]),
            "validation_data's sample_weight", where)
        return (vx, vy, vw)

    # -- evaluate ------------------------------------------------------------------
    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None,
                 steps=None, callbacks=None, return_dict=False, **kwargs):
        where = "evaluate"
        _worker_args(where, kwargs)
        self._require_built_for(x, where)
        self._require_compiled(where)
        batch_size = _batch_size(batch_size, where)
        verbose = _args.verbosity(verbose, where)
        verbose = 1 if verbose == "auto" else verbose
        steps = _args.positive_int(steps, "steps", where)
        cb = self._callback_list(callbacks, where, verbose)
        data = self._evaluation_data(x, y, batch_size, sample_weight, steps, where)
        cb.on_test_begin()
        logs = self._evaluate(data, verbose, cb, steps)
        cb.on_test_end(logs)
        if return_dict:
            return logs
        names = [n for n in self.metrics_names]
        return logs["loss"] if len(names) == 1 else [logs[n] for n in names]

    def _evaluation_data(self, x, y, batch_size, sample_weight, steps, where):
        """evaluate's batches: an EpochIterator over a data source, or over the checked
        arrays in order."""
        if is_source(x):
            return EpochIterator.from_source(self, x, steps, where)
        xs = self._check_x(x, where)
        ys = self._check_y(y, len(xs[0]), where)
        sample_weight = _args.finite_weights(sample_weight, len(xs[0]), "sample_weight",
                                             where)
        return EpochIterator.from_arrays(xs, ys, sample_weight, batch_size, steps, False)

    def _evaluate(self, data, verbose, cb=None, steps=None, scored=None):
        """The loss (with regularization) and metrics over a data source or iterator, as
        sorted logs; cb (evaluate's CallbackList) hears every batch. Each batch's losses
        come from test_step, or from `scored`: (batch, score) pairs, score a function
        called in turn (cnnx.distributed's, from outputs gathered over the job's
        processes)."""
        if not isinstance(data, EpochIterator):
            data = EpochIterator.from_source(self, data, steps, "evaluate")
        if scored is None:
            scored = ((batch, functools.partial(self.test_step, batch))
                      for _, batch in data.epoch(None))
        self._reset_metrics()
        means = _Means()
        bar = Progbar(data.steps, verbose=verbose)
        logs = self._logs({"loss": 0.0})
        for step, (batch, score) in enumerate(scored):
            if cb is not None:
                cb.on_test_batch_begin(step)
            means.add(score(), len(batch[0][0]))
            logs = self._logs(means.result())
            bar.update(step + 1, logs)
            if cb is not None:
                cb.on_test_batch_end(step, logs)
        bar.update(bar.seen, logs, finalize=True)
        return logs

    # -- predict -------------------------------------------------------------------
    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None,
                **kwargs):
        where = "predict"
        _worker_args(where, kwargs)
        self._require_built_for(x, where)
        batch_size = _batch_size(batch_size, where)
        verbose = _args.verbosity(verbose, where)
        verbose = 1 if verbose == "auto" else verbose
        steps = _args.positive_int(steps, "steps", where)
        cb = self._callback_list(callbacks, where, verbose)
        if is_source(x):
            data = EpochIterator.from_source(self, x, steps, where, targets=False)
            chunks = None
        else:
            xs = self._check_x(x, where)
            n = len(xs[0])
            data = EpochIterator.from_arrays(xs, None, None, batch_size, steps, False)
            if steps is not None:
                n = min(n, steps * batch_size)
            chunks = [np.empty((n,) + tuple(s[1:]), self._dtype())
                      for s in self._output_shapes()]
        bar = Progbar(data.steps, verbose=verbose)
        cb.on_predict_begin()
        parts, start = [], 0
        for step, batch in data.epoch(None):
            cb.on_predict_batch_begin(step)
            outs = self.predict_step(batch[0])
            stop = start + len(outs[0])
            if chunks is None:
                parts.append(outs)
            else:
                for chunk, o in zip(chunks, outs):
                    chunk[start:stop] = o
            bar.update(step + 1)
            cb.on_predict_batch_end(step, {"outputs": self._structure(
                outs if chunks is None else [c[start:stop] for c in chunks])})
            start = stop
        bar.update(bar.seen, finalize=True)
        cb.on_predict_end()
        if chunks is None:
            chunks = [np.concatenate([p[i] for p in parts]) for i in range(len(self.outputs))]
        return self._structure(chunks)

    def _structure(self, outputs):
        """The outputs as the user gave them to Model: one array, or a list."""
        return outputs[0] if len(outputs) == 1 else list(outputs)

    # -- batches -------------------------------------------------------------------
    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None,
                       return_dict=False):
        where = "train_on_batch"
        self._require_built_for(x, where)
        self._require_compiled(where)
        xs = self._check_x(x, where)
        ys = self._check_y(y, len(xs[0]), where)
        w = self._sample_weights(ys, sample_weight, class_weight, len(xs[0]), where)
        self._reset_metrics()
        logs = self._logs(self.train_step((xs, ys, w)))
        return logs if return_dict else self._as_list(logs)

    def _as_list(self, logs):
        names = self.metrics_names
        return logs["loss"] if len(names) == 1 else [logs[n] for n in names]

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        return self.evaluate(x, y, batch_size=len(self._check_x(x, "test_on_batch")[0]),
                             verbose=0, sample_weight=sample_weight, return_dict=return_dict)

    def predict_on_batch(self, x):
        where = "predict_on_batch"
        self._require_built_for(x, where)
        return self._structure(self.predict_step(self._check_x(x, where)))

    # -- data checks ---------------------------------------------------------------
    def _require_built_for(self, x, where):
        """Build an unbuilt model (a Sequential without an input shape) from x."""
        if self.built:
            return
        if x is None or is_source(x):
            raise ValueError(f"{where}: model {self.name!r} is not built and its input "
                             f"shape is unknown; give it an Input, or call build() first")
        self._build_from_array(np.asarray(x), where)

    def _check_x(self, x, where):
        """x as one contiguous, finite array per model input, in the model's dtype."""
        if (type(x) is np.ndarray and len(self._in_dtypes) == 1
                and x.dtype == self._in_dtypes[0] and x.flags.c_contiguous and x.ndim > 1
                and x.shape[0] and x.shape[1:] == tuple(self.inputs[0].shape[1:])
                and ops.all_finite(x)):
            return [x]   # already what the checks below make of it (one image: 3 -> 1 us)
        arrays = _by_name(x, self.input_names, "x", where)
        n = None
        out = []
        for array, tensor, name, dtype in zip(arrays, self.inputs, self.input_names,
                                              self._in_dtypes):
            array = np.asarray(array)
            if array.dtype.kind not in "biuf":
                raise TypeError(f"{where}: `x` must hold numbers, received dtype "
                                f"{array.dtype}")
            if array.ndim == 0 or array.shape[0] == 0:
                raise ValueError(f"{where}: `x` is empty (shape {array.shape})")
            expected = tensor.shape
            if array.shape[1:] != tuple(expected[1:]):
                raise ValueError(f"{where}: input of shape {array.shape} is incompatible "
                                 f"with {self._input_owner(name)}, which expects "
                                 f"{tuple(expected)} (None: any batch size)")
            if n is not None and array.shape[0] != n:
                raise ValueError(f"{where}: the inputs have different numbers of samples "
                                 f"({n} and {array.shape[0]} for {name!r})")
            n = array.shape[0]
            array = np.ascontiguousarray(array, dtype=dtype)
            if not ops.all_finite(array):
                raise ValueError(f"{where}: `x` contains NaN or infinity (first at index "
                                 f"{np.argwhere(~np.isfinite(array))[0].tolist()})")
            out.append(array)
        return out

    def _check_y(self, y, n, where):
        """y as one array per output that has a loss (None for the others), checked
        against the output's shape and loss."""
        if y is None:
            raise ValueError(f"{where}: `y` is required")
        targets = _by_name(y, self.output_names, "y", where,
                           needed=[loss is not None for loss in self._losses])
        return [None if loss is None else self._check_target(t, loss, shape, n, where)
                for t, loss, shape in zip(targets, self._losses, self._output_shapes())]

    def _check_target(self, y, loss, out, n, where):
        y = np.asarray(y)
        if y.dtype.kind not in "biuf":
            raise TypeError(f"{where}: `y` must hold numbers, received dtype {y.dtype}")
        if y.shape[:1] != (n,):
            raise ValueError(f"{where}: `x` has {n} samples but `y` has "
                             f"{y.shape[0] if y.ndim else 0}; they must match")
        units = out[-1]
        if isinstance(loss, losses.SparseCategoricalCrossentropy):
            labels = y.reshape(n, -1)
            if labels.shape[1] != 1:
                raise ValueError(f"{where}: {loss.name} expects integer labels of shape "
                                 f"({n},), received {y.shape}")
            if labels.min() < 0 or labels.max() >= units or np.any(labels != np.round(labels)):
                raise ValueError(f"{where}: labels must be integers in [0, {units}) for the "
                                 f"{units}-unit output layer, received values in "
                                 f"[{labels.min()}, {labels.max()}]")
            return labels.reshape(n).astype(np.int64)
        if y.ndim == len(out) - 1 and units == 1:
            y = y.reshape(n, 1)
        if y.shape[1:] != tuple(out[1:]):
            hint = (" (one-hot encode the labels with cnnx.utils.to_categorical, or use "
                    "sparse_categorical_crossentropy)"
                    if y.ndim == 1 and units > 1 else "")
            raise ValueError(f"{where}: `y` has shape {y.shape} but the model's output has "
                             f"shape {tuple(out)} ({units} units){hint}")
        y = np.ascontiguousarray(y, dtype=self._dtype())
        if not ops.all_finite(y):
            raise ValueError(f"{where}: `y` contains NaN or infinity")
        return y

    @staticmethod
    def _class_labels(y):
        if y.ndim == 1:
            return y.astype(np.int64)
        if y.shape[-1] == 1:
            return (y[:, 0] > 0.5).astype(np.int64)
        return np.argmax(y, axis=-1)

    def _sample_weights(self, ys, sample_weight, class_weight, n, where):
        sample_weight = _args.finite_weights(sample_weight, n, "sample_weight", where)
        class_weight = _args.class_weights(class_weight, where)
        if class_weight is not None:
            targets = [y for y in ys if y is not None]
            if len(targets) != 1:
                raise ValueError(f"{where}: `class_weight` needs a model with one output "
                                 f"(this one has {len(targets)}); pass sample_weight")
            labels = self._class_labels(targets[0])
            weights = np.array([class_weight.get(int(c), 1.0) for c in range(
                int(labels.max()) + 1)])
            cw = weights[labels]
            sample_weight = cw if sample_weight is None else sample_weight * cw
        return sample_weight

    def _callback_list(self, callbacks, where, verbose):
        """The user's callbacks for evaluate or predict (fit adds its own)."""
        callbacks = list(callbacks or [])
        for cb in callbacks:
            if not isinstance(cb, callbacks_module.Callback):
                raise TypeError(f"{where}: `callbacks` must hold cnnx.callbacks.Callback "
                                f"objects, received {type(cb).__name__}")
        return callbacks_module.CallbackList(callbacks, self, {"verbose": verbose})

    # -- Keras 1/2 generator methods ---------------------------------------------------
    def fit_generator(self, generator, steps_per_epoch=None, epochs=1, verbose=1,
                      callbacks=None, validation_data=None, validation_steps=None,
                      validation_freq=1, class_weight=None, initial_epoch=0, **kwargs):
        """Deprecated (as in Keras): fit accepts generators. Keras 1's samples_per_epoch,
        nb_epoch and nb_val_samples are mapped to their Keras 2 meaning."""
        warnings.warn("Model.fit_generator is deprecated: Model.fit accepts generators",
                      DeprecationWarning, stacklevel=2)
        keras1 = _keras1_generator_args("fit_generator", generator, validation_data, kwargs)
        steps_per_epoch = keras1.get("steps_per_epoch", steps_per_epoch)
        epochs = keras1.get("epochs", epochs)
        validation_steps = keras1.get("validation_steps", validation_steps)
        return self.fit(generator, steps_per_epoch=steps_per_epoch, epochs=epochs,
                        verbose=verbose, callbacks=callbacks, validation_data=validation_data,
                        validation_steps=validation_steps, validation_freq=validation_freq,
                        class_weight=class_weight, initial_epoch=initial_epoch)

    def evaluate_generator(self, generator, steps=None, verbose=0, **kwargs):
        warnings.warn("Model.evaluate_generator is deprecated: Model.evaluate accepts "
                      "generators", DeprecationWarning, stacklevel=2)
        keras1 = _keras1_generator_args("evaluate_generator", generator, None, kwargs)
        steps = keras1.get("steps", steps)
        return self.evaluate(generator, steps=steps, verbose=verbose)

    def predict_generator(self, generator, steps=None, verbose=0, **kwargs):
        warnings.warn("Model.predict_generator is deprecated: Model.predict accepts "
                      "generators", DeprecationWarning, stacklevel=2)
        keras1 = _keras1_generator_args("predict_generator", generator, None, kwargs)
        steps = keras1.get("steps", steps)
        return self.predict(generator, steps=steps, verbose=verbose)


class _Means:
    """Running means of each log over the samples seen."""

    def __init__(self):
        self.sums, self.seen = {}, 0

    def add(self, logs, count):
        for k, v in logs.items():
            self.sums[k] = self.sums.get(k, 0.0) + v * count
        self.seen += count

    def result(self):
        return {k: v / max(self.seen, 1) for k, v in self.sums.items()}


def _flat(spec):
    """Every loss or metric identifier in a compile argument (one, a list, a dict, a list
    of lists)."""
    if spec is None:
        return []
    if isinstance(spec, dict):
        return [s for v in spec.values() for s in _flat(v)]
    if isinstance(spec, (list, tuple)):
        return [s for v in spec for s in _flat(v)]
    return [spec]


def _per_output(spec, names, what, where, broadcast, lists=False):
    """A compile argument as one entry per output: a dict by output name, a list in
    output order, or (when broadcast) one value for every output."""
    n = len(names)
    if spec is None:
        return [None] * n
    if isinstance(spec, dict):
        unknown = sorted(set(spec) - set(names))
        if unknown:
            raise ValueError(f"{where}: `{what}` names {unknown}, which are not outputs; "
                             f"the outputs are {names}")
        return [_as_list(spec.get(name)) if lists else spec.get(name) for name in names]
    if lists:
        if not isinstance(spec, (list, tuple)):
            spec = [spec]
        nested = [s for s in spec if isinstance(s, (list, tuple))]
        if not nested:   # a flat list: every output's metrics (Keras 2's reading)
            return [list(spec) for _ in range(n)]
        if len(spec) != n:
            raise ValueError(f"{where}: `{what}` has {len(spec)} lists for {n} outputs")
        return [_as_list(s) for s in spec]
    if isinstance(spec, (list, tuple)):
        if len(spec) != n:
            raise ValueError(f"{where}: `{what}` has {len(spec)} entries for {n} outputs "
                             f"{names}")
        return list(spec)
    if not broadcast:
        if n == 1:
            return [spec]
        raise ValueError(f"{where}: `{what}` must be a list or dict for a model with "
                         f"{n} outputs")
    return [spec] * n


def _as_list(spec):
    if spec is None:
        return []
    return list(spec) if isinstance(spec, (list, tuple)) else [spec]


def _by_name(data, names, what, where, needed=None):
    """x or y as one entry per model input or output: a dict by name, a list in order,
    or one array for a single one."""
    n = len(names)
    needed = needed or [True] * n
    if isinstance(data, dict):
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise ValueError(f"{where}: `{what}` has keys {unknown}, which are not the "
                             f"model's; expected {names}")
        missing = [name for name, need in zip(names, needed) if need and name not in data]
        if missing:
            raise ValueError(f"{where}: `{what}` has no entry for {missing}")
        return [data.get(name) for name in names]
    if isinstance(data, (list, tuple)) and n > 1:
        if len(data) != n:
            raise ValueError(f"{where}: `{what}` has {len(data)} arrays for the model's "
                             f"{n} {'inputs' if what == 'x' else 'outputs'} {names}")
        return list(data)
    if n > 1:
        if sum(needed) == 1:
            return [data if need else None for need in needed]
        raise ValueError(f"{where}: the model has {n} {'inputs' if what == 'x' else 'outputs'}"
                         f" {names}: pass `{what}` as a list or a dict")
    return [data]


def _batch_size(batch_size, where):
    if batch_size is None:
        return 32
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) \
            or batch_size <= 0:
        raise ValueError(f"{where}: `batch_size` must be a positive int, "
                         f"received {batch_size!r}")
    return int(batch_size)


def _worker_args(where, kwargs):
    unknown = sorted(set(kwargs) - _WORKER_ARGS)
    if unknown:
        raise TypeError(f"{where}() got an unexpected keyword argument {unknown[0]!r}")


def _keras1_generator_args(where, generator, validation_data, kwargs):
    """Keras 1's arguments of fit/evaluate/predict_generator in Keras 2 terms, each with a
    DeprecationWarning: samples_per_epoch and val_samples count samples, which become
    steps through the generator's batch size; nb_epoch is epochs. Anything else that
    Keras does not define is refused."""
    out = {}

    def steps_for(name, samples, source):
        batch = getattr(source, "batch_size", None)
        if not isinstance(batch, int) or batch <= 0:
            raise TypeError(f"{where}: `{name}` counts samples, and this generator has no "
                            f"batch_size to turn them into steps; pass steps instead")
        return -(-int(samples) // batch)

    renames = {"samples_per_epoch": "steps_per_epoch", "nb_epoch": "epochs",
               "nb_val_samples": "validation_steps", "val_samples": "steps"}
    for name, value in kwargs.items():
        if name in _WORKER_ARGS | {"nb_worker", "pickle_safe", "max_q_size"}:
            continue
        if name not in renames:
            raise TypeError(f"{where}() got an unexpected keyword argument {name!r}")
        new = renames[name]
        warnings.warn(f"{where}: `{name}` is Keras 1's spelling; use `{new}`",
                      DeprecationWarning, stacklevel=3)
        if name == "nb_epoch":
            out[new] = value
        elif name == "nb_val_samples":
            out[new] = steps_for(name, value, validation_data)
        else:
            out[new] = steps_for(name, value, generator)
    return out


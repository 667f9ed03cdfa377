"""Sequential: a stack of layers, with Keras's compile / fit / evaluate / predict."""
import numbers
import time
import warnings

import numpy as np

from .. import _args, _random, losses, optimizers
from .. import callbacks as callbacks_module
from .. import metrics as metrics_module
from .._compat import keras3_arguments, refuse_unimplemented
from ..data_adapter import Prefetcher, is_source, source_steps, split_batch
from ..layers import Conv2D, InputLayer, KerasTensor, Layer, MaxPooling2D, deserialize, serialize
from ..layers.base import _unique_name
from ..progbar import Progbar, batches
from . import _guard

__all__ = ["Sequential", "Model"]


class Sequential:
    def __init__(self, layers=None, name=None, trainable=True):
        self.name = name or _unique_name("sequential")
        self.trainable = trainable
        self._layers = []
        self._input_layer = None
        self.optimizer = self.loss = None
        self.compiled = False
        self.stop_training = False
        self.history = None
        self._metrics = []
        self._metric_ids = []
        for layer in layers or []:
            self.add(layer)

    # -- structure -----------------------------------------------------------------
    @property
    def layers(self):
        return list(self._layers)

    def add(self, layer):
        if isinstance(layer, KerasTensor):  # keras.Input(...) in a Sequential list
            if not isinstance(layer._layer, InputLayer):
                raise TypeError(f"Sequential {self.name!r}: only an Input tensor may be "
                                f"added, received the output of {layer._layer.name!r}")
            layer = layer._layer
        if isinstance(layer, InputLayer):
            if self._layers or self._input_layer is not None:
                raise ValueError(f"Sequential {self.name!r}: an Input/InputLayer must come "
                                 f"first, and only once")
            self._input_layer = layer
            return
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential {self.name!r}: add() expects a cnnx layer, "
                            f"received {type(layer).__name__}")
        if any(existing.name == layer.name for existing in self._layers):
            raise ValueError(f"Sequential {self.name!r}: a layer named {layer.name!r} is "
                             f"already in the model; layer names must be unique")
        self._layers.append(layer)
        shape = self._declared_input_shape()
        if shape is not None:
            self._build_layers(shape)

    def pop(self):
        if not self._layers:
            raise TypeError(f"Sequential {self.name!r}: there are no layers to pop")
        return self._layers.pop()

    def _declared_input_shape(self):
        if self._input_layer is not None:
            return (None,) + self._input_layer._input_shape_arg
        if self._layers and self._layers[0]._input_shape_arg is not None:
            return (None,) + self._layers[0]._input_shape_arg
        if self._layers and self._layers[0].built:
            return self._layers[0].input_shape
        return None

    def _build_layers(self, input_shape):
        shape = tuple(input_shape)
        for layer in self._layers:
            if layer.built and layer.input_shape is not None and tuple(
                    layer.input_shape[1:]) != tuple(shape[1:]):
                raise ValueError(f"Layer {layer.name!r} was built for input shape "
                                 f"{layer.input_shape} but receives {shape}")
            shape = layer._build_once(shape)
        if self._layers:
            first = self._layers[0]
            if hasattr(first, "_need_input_grad"):
                first._need_input_grad = False  # nothing upstream needs dL/dx
            self._link_symbolic(input_shape)
        return shape

    def _link_symbolic(self, input_shape):
        """Give the model and each layer their symbolic input and output, for the
        functional API (e.g. Model(model.inputs, model.layers[2].output))."""
        if self._input_layer is None:
            self._input_layer = InputLayer(shape=tuple(input_shape)[1:],
                                           name=f"{self.name}_input", dtype=self._dtype())
        t = self._input_layer._symbolic()
        self.inputs = [t]
        for layer in self._layers:
            t = layer._link(t)
        self.outputs = [t]

    @property
    def input(self):
        return self.inputs[0]

    @property
    def output(self):
        return self.outputs[0]

    def build(self, input_shape=None):
        shape = input_shape if input_shape is not None else self._declared_input_shape()
        if shape is None:
            raise ValueError(f"Sequential {self.name!r}: the input shape is unknown; pass "
                             f"an Input, input_shape= to the first layer, or call build()")
        self._build_layers((None,) + tuple(shape)[1:])

    @property
    def built(self):
        return bool(self._layers) and all(layer.built for layer in self._layers)

    @property
    def input_shape(self):
        return self._declared_input_shape()

    @property
    def output_shape(self):
        return self._layers[-1].output_shape if self.built else None

    @property
    def weights(self):
        return [w for layer in self._layers for w in layer.weights]

    @property
    def trainable_weights(self):
        return [w for layer in self._layers for w in layer.trainable_weights] \
            if self.trainable else []

    @property
    def non_trainable_weights(self):
        trainable = {id(w) for w in self.trainable_weights}
        return [w for w in self.weights if id(w) not in trainable]

    def get_weights(self):
        return [w.numpy() for w in self.weights]

    def set_weights(self, weights):
        weights = list(weights)
        own = self.weights
        if len(weights) != len(own):
            raise ValueError(f"Sequential {self.name!r} has {len(own)} weight arrays, "
                             f"received {len(weights)}")
        # Every array is checked before any is assigned: a refused call changes nothing.
        checked = [var.checked(value, "set_weights") for var, value in zip(own, weights)]
        with _guard.guard(self).writing():
            for var, value in zip(own, checked):
                var.assign(value)

    def count_params(self):
        return sum(layer.count_params() for layer in self._layers)

    def get_layer(self, name=None, index=None):
        if index is not None:
            return self._layers[index]
        for layer in self._layers:
            if layer.name == name:
                return layer
        raise ValueError(f"No such layer: {name!r}. Existing layers are: "
                         f"{[layer.name for layer in self._layers]}")

    # -- computing -----------------------------------------------------------------
    def _forward(self, x, training):
        if training:   # inside a training step, which holds the model already
            for layer in self._layers:
                x = layer.call(x, training=True)
            return x
        with _guard.guard(self).reading():
            for layer in self._layers:
                x = layer.call(x, training=False)
            return x

    def _backward(self, grad):
        layers = self._layers
        relu_fused = False
        for i in reversed(range(len(layers))):
            layer = layers[i]
            if relu_fused:
                grad = layer.backward(grad, relu_backward_fused=True)
                relu_fused = False
            elif i > 0 and _relu_then_max_pool(layers[i - 1], layer):
                # Fusion: the pool's scatter applies the conv's ReLU mask (one pass fewer).
                grad = layer.backward(grad, fuse_relu_backward=True)
                relu_fused = True
            else:
                grad = layer.backward(grad)

    def __call__(self, inputs, training=False):
        x = self._check_x(inputs, "__call__")
        return np.array(self._forward(x, training), copy=True)

    def _dtype(self):
        return self._layers[0].dtype if self._layers else np.dtype(np.float32)

    def _check_x(self, x, where):
        if not self._layers:
            raise ValueError(f"Sequential {self.name!r} has no layers")
        x = np.asarray(x)
        if x.dtype.kind not in "biuf":
            raise TypeError(f"{where}: `x` must hold numbers, received dtype {x.dtype}")
        if x.ndim == 0 or x.shape[0] == 0:
            raise ValueError(f"{where}: `x` is empty (shape {x.shape})")
        if not self.built:
            shape = self._declared_input_shape()
            self.build(shape if shape is not None else (None,) + x.shape[1:])
        expected = self._layers[0].input_shape
        if x.shape[1:] != tuple(expected[1:]):
            raise ValueError(f"{where}: input of shape {x.shape} is incompatible with layer "
                             f"{self._layers[0].name!r}, which expects {tuple(expected)} "
                             f"(None: any batch size)")
        x = np.ascontiguousarray(x, dtype=self._dtype())
        if not np.isfinite(x).all():
            raise ValueError(f"{where}: `x` contains NaN or infinity "
                             f"(first at index {np.argwhere(~np.isfinite(x))[0].tolist()})")
        return x

    # -- compile -------------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, loss_weights=None,
                weighted_metrics=None, run_eagerly=False, steps_per_execution=1,
                jit_compile="auto", auto_scale_loss=True):
        refuse_unimplemented("compile", loss_weights=(loss_weights, None),
                             weighted_metrics=(weighted_metrics, None))
        # Execution switches of Keras's backends (eager or traced, steps per compiled
        # call, XLA, loss scaling for float16): cnnx always runs its compiled kernels one
        # step at a time in float32/64, and every setting gives the same results.
        del run_eagerly, steps_per_execution, jit_compile, auto_scale_loss
        if loss is None:
            raise ValueError(f"Sequential {self.name!r}: compile() needs a loss")
        self.optimizer = optimizers.get(optimizer)
        self.loss = losses.get(loss)
        if metrics is None:
            metrics = []
        elif isinstance(metrics, (str, metrics_module.Metric)):
            metrics = [metrics]
        self._metric_ids = list(metrics)
        for m in self._metric_ids:   # known names now; their classes once the output is
            metrics_module.get(m, self.loss, 1)
        self._metrics = None  # resolved once the output shape is known
        self.compiled = True

    def _resolve_metrics(self):
        if self._metrics is None:
            units = self.output_shape[-1] if self.built else None
            self._metrics = [metrics_module.get(m, self.loss, units) for m in self._metric_ids]
        return self._metrics

    @property
    def metrics(self):
        """The compiled metrics' objects, "accuracy" and friends resolved to their
        classes by Keras's rule (empty before compile; resolved once the model is
        built)."""
        if not getattr(self, "compiled", False):
            return []
        return list(self._resolve_metrics()) if self.built else []

    @property
    def metrics_names(self):
        return ["loss"] + [m.name for m in (self._metrics or [])]

    def _fused_loss(self):
        """Whether the final activation is fused with the loss into the logits path."""
        last = self._layers[-1]
        return (self.loss.fused_activation is not None
                and getattr(last, "_act", None) == self.loss.fused_activation
                and not getattr(self.loss, "from_logits", False))

    def _regularization(self):
        return sum(layer.regularization_loss() for layer in self._layers)

    # -- labels --------------------------------------------------------------------
    def _check_y(self, y, n, where):
        if y is None:
            raise ValueError(f"{where}: `y` is required")
        y = np.asarray(y)
        if y.dtype.kind not in "biuf":
            raise TypeError(f"{where}: `y` must hold numbers, received dtype {y.dtype}")
        if y.shape[:1] != (n,):
            raise ValueError(f"{where}: `x` has {n} samples but `y` has "
                             f"{y.shape[0] if y.ndim else 0}; they must match")
        out = self.output_shape
        units = out[-1]
        name = self.loss.name
        if isinstance(self.loss, losses.SparseCategoricalCrossentropy):
            labels = y.reshape(n, -1)
            if labels.shape[1] != 1:
                raise ValueError(f"{where}: {name} expects integer labels of shape ({n},), "
                                 f"received {y.shape}")
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
        if not np.isfinite(y).all():
            raise ValueError(f"{where}: `y` contains NaN or infinity")
        return y

    def _class_labels(self, y):
        if y.ndim == 1:
            return y.astype(np.int64)
        if y.shape[-1] == 1:
            return (y[:, 0] > 0.5).astype(np.int64)
        return np.argmax(y, axis=-1)

    def _sample_weights(self, y, sample_weight, class_weight, n, where):
        sample_weight = _args.finite_weights(sample_weight, n, "sample_weight", where)
        class_weight = _args.class_weights(class_weight, where)
        if class_weight is not None:
            labels = self._class_labels(y)
            weights = np.array([class_weight.get(int(c), 1.0) for c in range(
                int(labels.max()) + 1)])
            cw = weights[labels]
            sample_weight = cw if sample_weight is None else sample_weight * cw
        return sample_weight

    # -- training ------------------------------------------------------------------
    def _require_compiled(self, where):
        if not self.compiled:
            raise RuntimeError(f"{where}: call compile() before training or evaluating "
                               f"model {self.name!r}")

    def _train_step(self, x, y, sample_weight):
        with _guard.guard(self).writing(), _guard.deferred_interrupt():
            return self._train_step_unguarded(x, y, sample_weight)

    def _train_step_unguarded(self, x, y, sample_weight):
        fused = self._fused_loss()
        last = self._layers[-1]
        last._emit_logits = fused
        try:
            out = self._forward(x, training=True)
            if fused:
                value, grad, preds = self.loss.value_and_grad_from_logits(y, out, sample_weight)
            else:
                value, grad = self.loss.value_and_grad(y, out, sample_weight)
                preds = out
            value += self._regularization()
            self._backward(grad)
        finally:
            last._emit_logits = False
        variables = self.trainable_weights
        grads = [v.grad + v.regularizer.gradient(v.value) if v.regularizer else v.grad
                 for v in variables]
        self.optimizer.apply(grads, variables)
        for metric in self._resolve_metrics():
            metric.update_state(y, preds, sample_weight)
        return value

    def _logs(self, loss):
        logs = {"loss": float(loss)}
        for metric in self._resolve_metrics():
            logs[metric.name] = float(metric.result())
        return dict(sorted(logs.items()))

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, steps_per_epoch=None, validation_steps=None,
            validation_batch_size=None, validation_freq=1, **kwargs):
        where = "fit"
        if "nb_epoch" in kwargs:   # Keras 1
            if epochs != 1:
                raise TypeError("fit: got both `nb_epoch` (Keras 1) and `epochs`; pass "
                                "`epochs` alone")
            epochs = keras3_arguments(where, kwargs, {"nb_epoch": "epochs"},
                                      stacklevel=3).pop("epochs")
            kwargs.pop("nb_epoch")
        if kwargs:
            raise TypeError(f"fit() got an unexpected keyword argument {sorted(kwargs)[0]!r}")
        self._require_compiled(where)
        batch_size = self._check_batch_size(batch_size, where)
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
        source = is_source(x)
        val = None
        if source:
            if y is not None:
                raise ValueError(f"{where}: `y` must not be given when `x` is a data iterator "
                                 f"or generator: it yields (x, y) batches")
            if validation_split:
                raise ValueError(f"{where}: validation_split cannot split a data iterator; "
                                 f"pass validation_data")
            steps = source_steps(x, steps_per_epoch, where)
        else:
            x = self._check_x(x, where)
            n = x.shape[0]
            y = self._check_y(y, n, where)
            sample_weight = self._sample_weights(y, sample_weight, class_weight, n, where)
            if validation_split and validation_data is None:
                # Keras takes the last fraction, before any shuffling.
                split = int(n * (1 - validation_split))
                if split == 0 or split == n:
                    raise ValueError(f"{where}: validation_split={validation_split} leaves no "
                                     f"training or no validation samples out of {n}")
                val = (x[split:], y[split:], None if sample_weight is None
                       else sample_weight[split:])
                x, y = x[:split], y[:split]
                sample_weight = None if sample_weight is None else sample_weight[:split]
                n = split
            steps = -(-n // batch_size)
            if steps_per_epoch is not None:
                steps = min(steps, int(steps_per_epoch))
        if validation_data is not None:
            if is_source(validation_data):
                val = validation_data
            elif not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (
                    2, 3):
                raise ValueError(f"{where}: `validation_data` must be (x_val, y_val), "
                                 f"(x_val, y_val, sample_weight) or a data iterator")
            else:
                vx = self._check_x(validation_data[0], where + " validation_data")
                vy = self._check_y(validation_data[1], vx.shape[0],
                                   where + " validation_data")
                vw = _args.finite_weights(
                    validation_data[2] if len(validation_data) == 3 else None, vx.shape[0],
                    "validation_data's sample_weight", where)
                val = (vx, vy, vw)

        verbose = 1 if verbose == "auto" else verbose
        history = callbacks_module.History()
        cbs = list(user_callbacks)
        if verbose:
            cbs.append(callbacks_module.ProgbarLogger(verbose))
        cbs.append(history)
        params = {"verbose": verbose, "epochs": epochs, "steps": steps}
        cb = callbacks_module.CallbackList(cbs, self, params)
        self.stop_training = False
        self.history = history
        history.data_wait_s, started = 0.0, time.perf_counter()
        cb.on_train_begin()
        rng = _random.generator()
        for epoch in range(initial_epoch, epochs):
            for metric in self._resolve_metrics():
                metric.reset_state()
            cb.on_epoch_begin(epoch)
            if source:
                feed = Prefetcher(x, steps)
                epoch_batches = self._source_batches(feed, where, class_weight)
            else:
                feed = None
                epoch_batches = self._array_batches(x, y, sample_weight, batch_size, steps,
                                                    rng.permutation(n) if shuffle else None)
            total, seen, logs = 0.0, 0, {}
            try:
                for step, (xb, yb, wb) in enumerate(epoch_batches):
                    cb.on_train_batch_begin(step)
                    value = self._train_step(xb, yb, wb)
                    total += value * len(xb)
                    seen += len(xb)
                    logs = self._logs(total / seen)
                    cb.on_train_batch_end(step, logs)
                    if self.stop_training:
                        break
            finally:
                if feed is not None:
                    feed.close()
                    history.data_wait_s += feed.wait_s
            epoch_logs = dict(logs)
            if val is not None and (epoch + 1) % validation_freq == 0:
                if is_source(val):
                    val_logs = self._evaluate_source(val, validation_steps, verbose=0)
                else:
                    val_logs = self._evaluate(val[0], val[1], validation_batch_size or
                                              batch_size, val[2], None, verbose=0)
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

    def _array_batches(self, x, y, sample_weight, batch_size, steps, order):
        for step, (start, stop, idx) in enumerate(batches(len(x), batch_size, order)):
            if step >= steps:
                return
            if idx is None:
                yield (x[start:stop], y[start:stop],
                       None if sample_weight is None else sample_weight[start:stop])
            else:
                yield (x[idx], y[idx], None if sample_weight is None else sample_weight[idx])

    def _source_batches(self, feed, where, class_weight=None):
        """Checked (x, y, sample_weight) batches from a prefetched source."""
        for batch in feed:
            xb, yb, wb = split_batch(batch, where)
            xb = self._check_x(xb, where)
            if yb is None:
                raise ValueError(f"{where}: the data source yields inputs without targets; "
                                 f"it must yield (x, y) batches")
            yb = self._check_y(yb, xb.shape[0], where)
            wb = self._sample_weights(yb, wb, class_weight, xb.shape[0], where)
            yield xb, yb, wb

    def _evaluate_source(self, source, steps, verbose, cb=None):
        where = "evaluate"
        steps = source_steps(source, steps, where)
        metrics = self._resolve_metrics()
        for metric in metrics:
            metric.reset_state()
        total, seen = 0.0, 0
        regularization = self._regularization()
        bar = Progbar(steps, verbose=verbose)
        feed = Prefetcher(source, steps)
        try:
            for step, (xb, yb, wb) in enumerate(self._source_batches(feed, where)):
                if cb is not None:
                    cb.on_test_batch_begin(step)
                preds = self._forward(xb, training=False)
                total += (self.loss(yb, preds, wb) + regularization) * len(xb)
                seen += len(xb)
                for metric in metrics:
                    metric.update_state(yb, preds, wb)
                bar.update(step + 1, self._logs(total / seen))
                if cb is not None:
                    cb.on_test_batch_end(step, self._logs(total / seen))
        finally:
            feed.close()
        logs = self._logs(total / max(seen, 1))
        bar.update(bar.seen, logs, finalize=True)
        return logs

    @staticmethod
    def _check_batch_size(batch_size, where, default=32):
        if batch_size is None:
            return default
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) \
                or batch_size <= 0:
            raise ValueError(f"{where}: `batch_size` must be a positive int, "
                             f"received {batch_size!r}")
        return int(batch_size)

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None,
                 steps=None, callbacks=None, return_dict=False):
        where = "evaluate"
        self._require_compiled(where)
        batch_size = self._check_batch_size(batch_size, where)
        verbose = _args.verbosity(verbose, where)
        verbose = 1 if verbose == "auto" else verbose
        steps = _args.positive_int(steps, "steps", where)
        cb = self._callback_list(callbacks, where, verbose)
        if is_source(x):
            cb.on_test_begin()
            logs = self._evaluate_source(x, steps, verbose, cb)
        else:
            x = self._check_x(x, where)
            y = self._check_y(y, x.shape[0], where)
            sample_weight = _args.finite_weights(sample_weight, x.shape[0], "sample_weight",
                                                 where)
            cb.on_test_begin()
            logs = self._evaluate(x, y, batch_size, sample_weight, steps, verbose, cb)
        cb.on_test_end(logs)
        if return_dict:
            return logs
        if not self._metrics:
            return logs["loss"]
        return [logs["loss"]] + [logs[m.name] for m in self._metrics]

    def _callback_list(self, callbacks, where, verbose):
        """The user's callbacks for evaluate or predict (fit builds its own list)."""
        callbacks = list(callbacks or [])
        for cb in callbacks:
            if not isinstance(cb, callbacks_module.Callback):
                raise TypeError(f"{where}: `callbacks` must hold cnnx.callbacks.Callback "
                                f"objects, received {type(cb).__name__}")
        return callbacks_module.CallbackList(callbacks, self, {"verbose": verbose})

    def _evaluate(self, x, y, batch_size, sample_weight, steps, verbose, cb=None):
        """The loss (with regularization) and metrics over checked arrays, as sorted logs;
        cb (evaluate's CallbackList) hears every batch."""
        n = x.shape[0]
        metrics = self._resolve_metrics()
        for metric in metrics:
            metric.reset_state()
        total, seen = 0.0, 0
        regularization = self._regularization()
        bar = Progbar(-(-n // batch_size), verbose=verbose)
        for step, (start, stop, _) in enumerate(batches(n, batch_size)):
            if steps is not None and step >= steps:
                break
            wb = None if sample_weight is None else np.asarray(sample_weight)[start:stop]
            if cb is not None:
                cb.on_test_batch_begin(step)
            preds = self._forward(x[start:stop], training=False)
            value = self.loss(y[start:stop], preds, wb) + regularization
            total += value * (stop - start)
            seen += stop - start
            for metric in metrics:
                metric.update_state(y[start:stop], preds, wb)
            bar.update(step + 1, self._logs(total / seen))
            if cb is not None:
                cb.on_test_batch_end(step, self._logs(total / seen))
        logs = self._logs(total / seen)
        bar.update(bar.seen, logs, finalize=True)
        return logs

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        where = "predict"
        batch_size = self._check_batch_size(batch_size, where)
        verbose = _args.verbosity(verbose, where)
        verbose = 1 if verbose == "auto" else verbose
        steps = _args.positive_int(steps, "steps", where)
        cb = self._callback_list(callbacks, where, verbose)
        if is_source(x):
            n_steps = source_steps(x, steps, where)
            feed = Prefetcher(x, n_steps)
            cb.on_predict_begin()
            outputs = []
            try:
                for step, b in enumerate(feed):
                    cb.on_predict_batch_begin(step)
                    outputs.append(np.array(self._forward(
                        self._check_x(split_batch(b, where)[0], where), training=False)))
                    cb.on_predict_batch_end(step, {"outputs": outputs[-1]})
            finally:
                feed.close()
            cb.on_predict_end()
            return np.concatenate(outputs)
        x = self._check_x(x, where)
        n = x.shape[0]
        out = np.empty((n,) + tuple(self.output_shape[1:]), self._dtype())
        bar = Progbar(-(-n // batch_size), verbose=verbose)
        cb.on_predict_begin()
        for step, (start, stop, _) in enumerate(batches(n, batch_size)):
            cb.on_predict_batch_begin(step)
            out[start:stop] = self._forward(x[start:stop], training=False)
            bar.update(step + 1)
            cb.on_predict_batch_end(step, {"outputs": out[start:stop]})
        bar.update(bar.seen, finalize=True)
        cb.on_predict_end()
        return out

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

    def predict_proba(self, x, batch_size=32, verbose=0):
        """Keras 2's Sequential.predict_proba (removed in Keras 2.6): predict."""
        warnings.warn("predict_proba is Keras 2's (removed in 2.6); use predict",
                      DeprecationWarning, stacklevel=2)
        return self.predict(x, batch_size=batch_size, verbose=verbose)

    def predict_classes(self, x, batch_size=32, verbose=0):
        """Keras 2's Sequential.predict_classes (removed in Keras 2.6): the argmax of
        predict over the last axis, or predict > 0.5 for a single output unit."""
        warnings.warn("predict_classes is Keras 2's (removed in 2.6); use "
                      "np.argmax(model.predict(x), axis=-1), or (model.predict(x) > 0.5) "
                      "for one output", DeprecationWarning, stacklevel=2)
        p = self.predict(x, batch_size=batch_size, verbose=verbose)
        if p.shape[-1] > 1:
            return p.argmax(axis=-1)
        return (p > 0.5).astype(np.int32)

    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None,
                       return_dict=False):
        self._require_compiled("train_on_batch")
        x = self._check_x(x, "train_on_batch")
        y = self._check_y(y, x.shape[0], "train_on_batch")
        w = self._sample_weights(y, sample_weight, class_weight, x.shape[0], "train_on_batch")
        for metric in self._resolve_metrics():
            metric.reset_state()
        logs = self._logs(self._train_step(x, y, w))
        return logs if return_dict else (
            logs["loss"] if len(logs) == 1 else [logs["loss"]] +
            [logs[m.name] for m in self._metrics])

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        return self.evaluate(x, y, batch_size=len(x), verbose=0, sample_weight=sample_weight,
                             return_dict=return_dict)

    def predict_on_batch(self, x):
        x = self._check_x(x, "predict_on_batch")
        return np.array(self._forward(x, training=False), copy=True)

    # -- inspecting ----------------------------------------------------------------
    def summary(self, line_length=None, positions=None, print_fn=None):
        """A Keras 3-style table: layer (type), output shape, parameters; then totals."""
        print_fn = print_fn or print
        if not self.built:
            raise ValueError(f"Sequential {self.name!r} is not built yet: give it an Input "
                             f"or call build(input_shape) first")
        rows = [(f"{layer.name} ({type(layer).__name__})", str(tuple(layer.output_shape)),
                 f"{layer.count_params():,}") for layer in self._layers]
        widths = [max(31, *(len(r[0]) + 2 for r in rows)),
                  max(24, *(len(r[1]) + 2 for r in rows)), 15]
        if line_length is not None or positions is not None:
            # Keras's meaning: the table's total width, and where each column ends (as
            # fractions of it, or as character positions).
            line_length = int(line_length or sum(widths) + 4)
            if positions is None:
                positions = np.cumsum(widths) / sum(widths)
            ends = [p * line_length if p <= 1 else p for p in positions]
            widths = [max(4, int(round(b - a))) for a, b in zip([0, *ends[:-1]], ends)]
        heads = ("Layer (type)", "Output Shape", "Param #")

        def line(left, mid, right, fill):
            return left + mid.join(fill * w for w in widths) + right

        def fit(text, width):   # a cell too long for its column ends in an ellipsis
            return text if len(text) <= width else text[:width - 1] + "\u2026"

        def row(cells, sep="\u2502"):
            parts = [f" {fit(cells[0], widths[0] - 1):<{widths[0] - 1}}",
                     f" {fit(cells[1], widths[1] - 1):<{widths[1] - 1}}",
                     f"{fit(cells[2], widths[2] - 1):>{widths[2] - 1}} "]
            return sep + sep.join(parts) + sep

        total = self.count_params()
        trainable = sum(w.value.size for w in self.trainable_weights)

        def size(count):
            nbytes = count * self._dtype().itemsize
            for unit in ("B", "KB", "MB", "GB"):
                if nbytes < 1024 or unit == "GB":
                    return f"{nbytes:.2f} {unit}"
                nbytes /= 1024

        print_fn(f'Model: "{self.name}"')
        print_fn(line("\u250f", "\u2533", "\u2513", "\u2501"))
        print_fn(row(heads, "\u2503"))
        print_fn(line("\u2521", "\u2547", "\u2529", "\u2501"))
        for i, r in enumerate(rows):
            print_fn(row(r))
            if i < len(rows) - 1:
                print_fn(line("\u251c", "\u253c", "\u2524", "\u2500"))
        print_fn(line("\u2514", "\u2534", "\u2518", "\u2500"))
        print_fn(f" Total params: {total:,} ({size(total)})")
        print_fn(f" Trainable params: {trainable:,} ({size(trainable)})")
        print_fn(f" Non-trainable params: {total - trainable:,} ({size(total - trainable)})")

    # -- config and saving -------------------------------------------------------------
    def get_config(self):
        layers = ([serialize(self._input_layer)] if self._input_layer is not None else [])
        layers += [serialize(layer) for layer in self._layers]
        return {"name": self.name, "trainable": self.trainable, "layers": layers}

    @classmethod
    def from_config(cls, config):
        model = cls(name=config.get("name"), trainable=config.get("trainable", True))
        for layer_config in config.get("layers", []):
            model.add(deserialize(layer_config))
        return model

    def compile_config(self):
        if not self.compiled:
            return None
        return {"optimizer": optimizers.serialize(self.optimizer),
                "loss": losses.serialize(self.loss),
                "metrics": [m if isinstance(m, str) else type(m).__name__
                            for m in self._metric_ids]}

    def save(self, filepath, overwrite=True):
        from .saving import save_model
        save_model(self, filepath, overwrite=overwrite)

    def save_weights(self, filepath, overwrite=True):
        from .saving import save_weights
        save_weights(self, filepath, overwrite=overwrite)

    def load_weights(self, filepath):
        from .saving import load_weights
        load_weights(self, filepath)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}, {len(self._layers)} layers>"


class Model(Sequential):
    """The functional API: Model(inputs=x, outputs=y) for a graph built by calling
    layers on keras.Input(...). cnnx has no merge layers yet, so every such graph is a
    chain: the model walks back from the output to the input and runs that chain of
    (shared) layers, with all of Sequential's training and inference."""

    def __init__(self, inputs=None, outputs=None, name=None, trainable=True, **kwargs):
        if kwargs:
            raise TypeError(f"Model: unexpected keyword argument(s) {sorted(kwargs)}")
        if inputs is None or outputs is None:
            raise TypeError("Model: pass inputs= and outputs= (the functional API); "
                            "subclassed models are not supported")
        inputs, outputs = _single(inputs, "inputs"), _single(outputs, "outputs")
        chain, t = [], outputs
        while t is not inputs:
            if t._parent is None:
                raise ValueError(f"Model: `outputs` ({outputs.name}) is not computed from "
                                 f"`inputs` ({inputs.name})")
            chain.append(t._layer)
            t = t._parent
        super().__init__(name=name or _unique_name("functional"), trainable=trainable)
        if isinstance(inputs._layer, InputLayer):
            self._input_layer = inputs._layer
        self._layers = chain[::-1]
        self._build_layers(inputs.shape)
        self.inputs, self.outputs = [inputs], [outputs]

    def _link_symbolic(self, input_shape):
        pass  # the graph exists already: its layers are shared with the model that made it


def _single(tensors, name):
    if isinstance(tensors, (list, tuple)):
        if len(tensors) != 1:
            raise ValueError(f"Model: cnnx supports one input and one output, received "
                             f"{len(tensors)} {name}")
        tensors = tensors[0]
    if not isinstance(tensors, KerasTensor):
        raise TypeError(f"Model: `{name}` must be keras.Input(...) or a layer's output, "
                        f"received {type(tensors).__name__}")
    return tensors


def _relu_then_max_pool(below, layer):
    """Is `layer` a max pooling whose input is `below`'s fused-ReLU conv output? Then
    the pool's backward applies the ReLU mask and the conv skips its own pass."""
    return (isinstance(layer, MaxPooling2D) and isinstance(below, Conv2D)
            and below._fused_relu)


# Worker settings of Keras's generator methods: cnnx prefetches on one background thread
# whatever they say, and results are the same.
_WORKER_ARGS = {"workers", "use_multiprocessing", "max_queue_size", "nb_worker",
                "pickle_safe", "max_q_size"}


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
        if name in _WORKER_ARGS:
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

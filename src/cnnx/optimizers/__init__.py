"""cnnx.optimizers, with Keras's defaults and update rules; updates run in place in
the compiled kernels, through cnnx.ops. Gradient clipping (clipnorm, clipvalue, global_clipnorm) is
applied first, as in Keras."""
import numbers
import warnings

import numpy as np

from .. import ops
from .._registry import Registry
from . import schedules

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adamax", "Adadelta",
           "Lion", "Nadam", "Ftrl", "get", "schedules"]


def _number(value, name, owner, low=0.0, high=float("inf"), low_open=False,
            high_open=False):
    """A finite float in the given range (NaN, inf, bools and strings refused)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) \
        and np.isfinite(value)
    if ok:
        value = float(value)
        ok = (value > low if low_open else value >= low) and \
            (value < high if high_open else value <= high)
    if not ok:
        span = (f"{'(' if low_open else '['}{low:g}, "
                f"{high:g}{')' if high_open else ']'}")
        raise ValueError(f"{owner}: `{name}` must be a finite number in {span}, "
                         f"received {value!r}")
    return value


# Every optimizer by name: filled by @REGISTRY.register where each class is defined.
REGISTRY = Registry("optimizer")


class Optimizer:
    """Base of the optimizers: learning_rate (a number or a schedule), clipnorm,
    clipvalue or global_clipnorm; apply(grads, variables) updates each variable in
    place with a compiled kernel; `iterations` counts the steps and `variables` holds
    the state.

    >>> opt = cnnx.optimizers.SGD(0.1)
    >>> w = cnnx.layers.Variable(np.array([1.0]), name="w")
    >>> opt.apply([np.array([1.0])], [w])
    >>> opt.iterations, w.value
    (1, array([0.9]))
    """
    def __init__(self, learning_rate=0.001, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, name=None, **kwargs):
        owner = type(self).__name__
        if "lr" in kwargs:   # Keras 1/2
            warnings.warn(f"{owner}: `lr` is the Keras 1/2 spelling; use `learning_rate`",
                          DeprecationWarning, stacklevel=3)
            learning_rate = kwargs.pop("lr")
        decay = kwargs.pop("decay", 0.0)
        if decay:   # Keras 2: lr / (1 + decay * iterations), an InverseTimeDecay schedule
            warnings.warn(f"{owner}: `decay` is Keras 2's; it is "
                          f"learning_rate=schedules.InverseTimeDecay(lr, 1, decay) in Keras 3",
                          DeprecationWarning, stacklevel=3)
            decay = _number(decay, "decay", owner)
            if isinstance(learning_rate, schedules.LearningRateSchedule):
                raise ValueError(f"{owner}: `decay` cannot be combined with a schedule")
            learning_rate = schedules.InverseTimeDecay(learning_rate, 1, decay)
        if kwargs:
            raise TypeError(f"{type(self).__name__}: unexpected keyword argument(s) "
                            f"{sorted(kwargs)}")
        if sum(c is not None for c in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ValueError(f"{type(self).__name__}: use at most one of clipnorm, "
                             f"clipvalue and global_clipnorm")
        if not isinstance(learning_rate, schedules.LearningRateSchedule):
            if isinstance(learning_rate, bool) or not isinstance(learning_rate, numbers.Real) \
                    or not learning_rate >= 0 or not np.isfinite(learning_rate):
                raise ValueError(f"{owner}: `learning_rate` must be a "
                                 f"non-negative number or a schedule, "
                                 f"received {learning_rate!r}")
            learning_rate = float(learning_rate)
        self._learning_rate = learning_rate
        clipnorm, clipvalue, global_clipnorm = (
            None if c is None else _number(c, name, owner, low_open=True)
            for c, name in ((clipnorm, "clipnorm"), (clipvalue, "clipvalue"),
                            (global_clipnorm, "global_clipnorm")))
        self.clipnorm, self.clipvalue, self.global_clipnorm = clipnorm, clipvalue, global_clipnorm
        self.name = name or type(self).__name__.lower()
        self.iterations = 0
        self._slots = {}   # id(variable) -> list of state arrays

    @property
    def learning_rate(self):
        """The learning rate of the next step (a schedule is evaluated at iterations)."""
        lr = self._learning_rate
        return float(lr(self.iterations)) if callable(lr) else lr

    @learning_rate.setter
    def learning_rate(self, value):
        self._learning_rate = value if callable(value) else float(value)

    @property
    def variables(self):
        """The optimizer's state, as in Keras 3: the iteration count (an int64 array of
        shape ()), then each model variable's slots (momentum, second moments, ...) in
        the order the variables were first updated."""
        return [np.array(self.iterations, np.int64)] + [
            slot for slots in self._slots.values() for slot in slots]

    def _clip(self, grads):
        if self.clipvalue is not None:
            return [np.clip(g, -self.clipvalue, self.clipvalue) for g in grads]
        if self.clipnorm is not None:
            out = []
            for g in grads:
                norm = float(np.sqrt(np.sum(g.astype(np.float64) ** 2)))
                out.append(g * (self.clipnorm / norm) if norm > self.clipnorm else g)
            return out
        if self.global_clipnorm is not None:
            norm = float(np.sqrt(sum(np.sum(g.astype(np.float64) ** 2) for g in grads)))
            if norm > self.global_clipnorm:
                return [g * (self.global_clipnorm / norm) for g in grads]
        return grads

    def _state(self, var, count):
        slots = self._slots.get(id(var))
        if slots is None:
            slots = [np.zeros(var.value.size, var.value.dtype) for _ in range(count)]
            self._slots[id(var)] = slots
        return slots

    def apply(self, grads, variables):
        """One step: w <- update(w, g) for each variable, in place."""
        grads = self._clip([np.ascontiguousarray(g, dtype=v.value.dtype)
                            for g, v in zip(grads, variables)])
        lr = self.learning_rate
        self.iterations += 1
        self._begin_step()
        for g, var in zip(grads, variables):
            self._update(var.value.reshape(-1), g.reshape(-1), var, lr)
            var.touch()

    def _begin_step(self):
        """Per-step work shared by every variable (Nadam's momentum schedule)."""

    def apply_gradients(self, grads_and_vars):
        grads, variables = zip(*grads_and_vars)
        self.apply(list(grads), list(variables))

    def get_config(self):
        lr = self._learning_rate
        return {"name": self.name,
                "learning_rate": schedules.serialize(lr) if callable(lr) else lr,
                "clipnorm": self.clipnorm, "clipvalue": self.clipvalue,
                "global_clipnorm": self.global_clipnorm}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = schedules.deserialize(config["learning_rate"])
        return cls(**config)


@REGISTRY.register("sgd")
class SGD(Optimizer):
    """Stochastic gradient descent: w -= lr * g, with momentum (v = momentum * v - lr *
    g; w += v) and Nesterov's variant.

    >>> w = cnnx.layers.Variable(np.array([1.0]), name="w")
    >>> opt = cnnx.optimizers.SGD(learning_rate=0.1)
    >>> opt.apply([np.array([2.0])], [w])   # w - 0.1 * 2
    >>> w.value
    array([0.8])
    """
    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.momentum = _number(momentum, "momentum", "SGD", 0, 1)
        self.nesterov = bool(nesterov)

    def _update(self, w, g, var, lr):
        m = self._state(var, 1)[0] if self.momentum else w[:0]
        ops.sgd_update(w, g, m, lr, self.momentum, self.nesterov)

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class _Moments(Optimizer):
    """The Adam family (Adam, AdamW, Adamax, Nadam): two moment decay rates in [0, 1) and
    an epsilon > 0, checked and configured in one place."""

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 **kwargs):
        super().__init__(learning_rate, **kwargs)
        owner = type(self).__name__
        self.beta_1 = _number(beta_1, "beta_1", owner, 0, 1, high_open=True)
        self.beta_2 = _number(beta_2, "beta_2", owner, 0, 1, high_open=True)
        self.epsilon = _number(epsilon, "epsilon", owner, 0, low_open=True)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}


@REGISTRY.register("adam")
class Adam(_Moments):
    """Adam (Kingma and Ba): first and second moment estimates with bias correction;
    Keras's defaults learning_rate 0.001, beta_1 0.9, beta_2 0.999, epsilon 1e-7;
    amsgrad is refused.

    >>> w = cnnx.layers.Variable(np.array([1.0]), name="w")
    >>> opt = cnnx.optimizers.Adam(learning_rate=0.1)
    >>> opt.apply([np.array([5.0])], [w])   # the first step moves by about the learning rate
    >>> w.value.round(4)
    array([0.9])
    """
    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, **kwargs):
        if amsgrad:
            raise ValueError(f"{type(self).__name__}: amsgrad is not supported")
        super().__init__(learning_rate, beta_1, beta_2, epsilon, **kwargs)

    def _decay(self, lr):  # noqa: ARG002 (AdamW's weight decay scales with lr)
        return 0.0

    def _update(self, w, g, var, lr):
        m, v = self._state(var, 2)
        t = self.iterations  # already counts this step
        lr_t = lr * np.sqrt(1 - self.beta_2 ** t) / (1 - self.beta_1 ** t)
        ops.adam_update(w, g, m, v, lr_t, self.beta_1, self.beta_2, self.epsilon,
                        self._decay(lr))


@REGISTRY.register("adamw")
class AdamW(Adam):
    """Adam with decoupled weight decay (weight_decay, default 0.004, as Keras): w -= lr
    * weight_decay * w before Adam's step.

    >>> opt = cnnx.optimizers.AdamW(learning_rate=1e-3, weight_decay=0.004)
    >>> opt.weight_decay
    0.004
    """
    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, **kwargs)
        self.weight_decay = _number(weight_decay, "weight_decay", "AdamW")

    def _decay(self, lr):
        return self.weight_decay * lr

    def get_config(self):
        return {**super().get_config(), "weight_decay": self.weight_decay}


@REGISTRY.register("rmsprop")
class RMSprop(Optimizer):
    """RMSprop: g divided by a moving root mean square of the gradients (rho 0.9, epsilon
    1e-7), with optional momentum and centered variant as in Keras.

    >>> w = cnnx.layers.Variable(np.array([1.0]), name="w")
    >>> opt = cnnx.optimizers.RMSprop(learning_rate=0.01)
    >>> opt.apply([np.array([5.0])], [w])
    >>> w.value.round(4)
    array([0.9684])
    """
    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7,
                 centered=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        if centered:
            raise ValueError("RMSprop: centered=True is not supported")
        self.rho = _number(rho, "rho", "RMSprop", 0, 1, high_open=True)
        self.momentum = _number(momentum, "momentum", "RMSprop", 0, 1)
        self.epsilon = _number(epsilon, "epsilon", "RMSprop", 0, low_open=True)

    def _update(self, w, g, var, lr):
        v, m = self._state(var, 2)
        ops.rmsprop_update(w, g, v, m, lr, self.rho, self.momentum, self.epsilon)

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum,
                "epsilon": self.epsilon}


@REGISTRY.register("adagrad")
class Adagrad(Optimizer):
    """Adagrad: g divided by the root of the sum of all squared gradients so far
    (initial_accumulator_value 0.1, epsilon 1e-7).

    >>> opt = cnnx.optimizers.Adagrad(learning_rate=0.01)
    >>> opt.learning_rate
    0.01
    """
    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7,
                 **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.initial_accumulator_value = _number(initial_accumulator_value,
                                                 "initial_accumulator_value", "Adagrad")
        self.epsilon = _number(epsilon, "epsilon", "Adagrad", 0, low_open=True)

    def _state(self, var, count):  # noqa: ARG002 (one slot, filled with its initial value)
        if id(var) not in self._slots:
            self._slots[id(var)] = [np.full(var.value.size, self.initial_accumulator_value,
                                            var.value.dtype)]
        return self._slots[id(var)]

    def _update(self, w, g, var, lr):
        ops.adagrad_update(w, g, self._state(var, 1)[0], lr, self.epsilon)

    def get_config(self):
        return {**super().get_config(),
                "initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon}




@REGISTRY.register("adamax")
class Adamax(_Moments):
    """Adam with the infinity norm: `u = max(beta_2 * u, abs(g))` in place of the second moment.

    >>> opt = cnnx.optimizers.Adamax()
    >>> opt.learning_rate, opt.beta_1, opt.beta_2
    (0.001, 0.9, 0.999)
    """

    def _update(self, w, g, var, lr):
        m, u = self._state(var, 2)
        lr_t = lr / (1 - self.beta_1 ** self.iterations)
        ops.adamax_update(w, g, m, u, lr_t, self.beta_1, self.beta_2, self.epsilon)


@REGISTRY.register("adadelta")
class Adadelta(Optimizer):
    """Adadelta: steps scaled by the ratio of moving RMS of updates and of gradients (rho
    0.95, epsilon 1e-7, learning_rate 0.001 as Keras 3).

    >>> opt = cnnx.optimizers.Adadelta()
    >>> opt.learning_rate, opt.rho
    (0.001, 0.95)
    """
    def __init__(self, learning_rate=0.001, rho=0.95, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.rho = _number(rho, "rho", "Adadelta", 0, 1)
        self.epsilon = _number(epsilon, "epsilon", "Adadelta", 0, low_open=True)

    def _update(self, w, g, var, lr):
        acc_grad, acc_delta = self._state(var, 2)
        ops.adadelta_update(w, g, acc_grad, acc_delta, lr, self.rho, self.epsilon)

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}


@REGISTRY.register("lion")
class Lion(Optimizer):
    """Lion (Chen et al.): the sign of an interpolated momentum times the learning rate
    (beta_1 0.9, beta_2 0.99).

    >>> w = cnnx.layers.Variable(np.array([1.0, 1.0]), name="w")
    >>> opt = cnnx.optimizers.Lion(learning_rate=0.1)
    >>> opt.apply([np.array([3.0, -0.5])], [w])   # steps of the learning rate, by sign
    >>> w.value
    array([0.9, 1.1])
    """
    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.99, **kwargs):
        super().__init__(learning_rate, **kwargs)
        # As Keras: beta_1 = 0 would make it SignSGD.
        self.beta_1 = _number(beta_1, "beta_1", "Lion", 0, 1, low_open=True)
        self.beta_2 = _number(beta_2, "beta_2", "Lion", 0, 1)

    def _update(self, w, g, var, lr):
        ops.lion_update(w, g, self._state(var, 1)[0], lr, self.beta_1, self.beta_2)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2}


@REGISTRY.register("nadam")
class Nadam(_Moments):
    """Adam with Nesterov momentum and Keras's momentum schedule
    u_t = beta_1 (1 - 0.5 * 0.96^t), whose running product is known from the step count
    alone (so a reloaded optimizer resumes exactly).

    >>> opt = cnnx.optimizers.Nadam()
    >>> opt.learning_rate
    0.001
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._u_product, self._u_product_step = 1.0, 0

    def _u(self, step):
        return self.beta_1 * (1.0 - 0.5 * 0.96 ** step)

    def _begin_step(self):
        t = self.iterations
        if self._u_product_step != t - 1:   # a restored step count: rebuild the product
            self._u_product, self._u_product_step = 1.0, 0
            for k in range(1, t):
                self._u_product *= self._u(k)
            self._u_product_step = t - 1
        self._u_product *= self._u(t)
        self._u_product_step = t

    def _update(self, w, g, var, lr):
        m, v = self._state(var, 2)
        t = self.iterations
        u_t, u_t_1 = self._u(t), self._u(t + 1)
        ops.nadam_update(w, g, m, v, lr, self.beta_1, self.beta_2, self.epsilon, u_t,
                         u_t_1, self._u_product, self._u_product * u_t_1,
                         self.beta_2 ** t)


@REGISTRY.register("ftrl")
class Ftrl(Optimizer):
    """FTRL-proximal (McMahan et al.), as Keras 3 computes it: per-coordinate learning
    rates from the accumulated squared gradients (learning_rate_power -0.5), with L1
    (sparsity), L2, L2-shrinkage and beta regularization in the closed-form step.

    >>> opt = cnnx.optimizers.Ftrl(learning_rate=0.1, l1_regularization_strength=0.01)
    >>> opt.l1_regularization_strength
    0.01
    """

    def __init__(self, learning_rate=0.001, learning_rate_power=-0.5,
                 initial_accumulator_value=0.1, l1_regularization_strength=0.0,
                 l2_regularization_strength=0.0, l2_shrinkage_regularization_strength=0.0,
                 beta=0.0, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.learning_rate_power = _number(learning_rate_power, "learning_rate_power", "Ftrl",
                                           low=-float("inf"), high=0.0)
        self.initial_accumulator_value = _number(initial_accumulator_value,
                                                 "initial_accumulator_value", "Ftrl")
        self.l1_regularization_strength = _number(l1_regularization_strength,
                                                  "l1_regularization_strength", "Ftrl")
        self.l2_regularization_strength = _number(l2_regularization_strength,
                                                  "l2_regularization_strength", "Ftrl")
        self.l2_shrinkage_regularization_strength = _number(
            l2_shrinkage_regularization_strength, "l2_shrinkage_regularization_strength",
            "Ftrl")
        self.beta = _number(beta, "beta", "Ftrl")

    def _state(self, var, count):  # noqa: ARG002 (the accumulator, then FTRL's z)
        if id(var) not in self._slots:
            self._slots[id(var)] = [
                np.full(var.value.size, self.initial_accumulator_value, var.value.dtype),
                np.zeros(var.value.size, var.value.dtype)]
        return self._slots[id(var)]

    def _update(self, w, g, var, lr):
        if not lr > 0:
            raise ValueError(f"Ftrl: the learning rate must be > 0 (it divides), received "
                             f"{lr}")
        accumulator, linear = self._state(var, 2)
        ops.ftrl_update(w, g, accumulator, linear, lr, self.learning_rate_power,
                        self.l1_regularization_strength, self.l2_regularization_strength,
                        self.l2_shrinkage_regularization_strength, self.beta)

    def get_config(self):
        return {**super().get_config(), "learning_rate_power": self.learning_rate_power,
                "initial_accumulator_value": self.initial_accumulator_value,
                "l1_regularization_strength": self.l1_regularization_strength,
                "l2_regularization_strength": self.l2_regularization_strength,
                "l2_shrinkage_regularization_strength":
                    self.l2_shrinkage_regularization_strength,
                "beta": self.beta}


def get(identifier):
    """An optimizer by name ("adam", "sgd", ...), from a serialized config, or the
    instance given.

    >>> type(cnnx.optimizers.get("adam")).__name__
    'Adam'
    >>> cnnx.optimizers.get({"class_name": "SGD", "config": {"learning_rate": 0.5}}).learning_rate
    0.5
    """
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str):
        return REGISTRY.by_name(identifier)()
    if isinstance(identifier, dict):
        return REGISTRY.from_config(identifier)
    raise ValueError(f"Unsupported optimizer {identifier!r}")


def serialize(optimizer):
    return {"class_name": type(optimizer).__name__, "config": optimizer.get_config()}

"""Learning-rate schedules: callables of the step (optimizer.iterations)."""
import math

__all__ = ["LearningRateSchedule", "ExponentialDecay", "PiecewiseConstantDecay",
           "CosineDecay", "InverseTimeDecay", "serialize", "deserialize"]


class LearningRateSchedule:
    """Base of the schedules: called with the step count, returns the learning rate.

    >>> class Halving(cnnx.optimizers.schedules.LearningRateSchedule):
    ...     def __call__(self, step):
    ...         return 0.1 * 0.5 ** (step // 10)
    >>> opt = cnnx.optimizers.SGD(learning_rate=Halving())
    >>> opt.iterations = 25
    >>> opt.learning_rate
    0.025
    """
    def get_config(self):
        return dict(self.__dict__)

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class _Decay(LearningRateSchedule):
    """A rate that decays with step / decay_steps (floored when staircase)."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False,
                 name=None):
        owner = type(self).__name__
        if decay_steps <= 0 or decay_rate < 0:
            raise ValueError(f"{owner}: expected decay_steps > 0 and decay_rate >= 0, "
                             f"received {decay_steps}, {decay_rate}")
        self.initial_learning_rate = float(initial_learning_rate)
        self.decay_steps, self.decay_rate = decay_steps, float(decay_rate)
        self.staircase, self.name = bool(staircase), name or owner


class ExponentialDecay(_Decay):
    """initial_learning_rate * decay_rate ** (step / decay_steps) (the exponent an
    integer with staircase=True).

    >>> lr = cnnx.optimizers.schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
    >>> [float(lr(step)) for step in (0, 10, 20)]
    [0.1, 0.05, 0.025]
    """
    def __call__(self, step):
        p = step / self.decay_steps
        return self.initial_learning_rate * self.decay_rate ** (math.floor(p)
                                                                if self.staircase else p)


class PiecewiseConstantDecay(LearningRateSchedule):
    """values[i] while step <= boundaries[i], the last value after the last boundary.

    >>> lr = cnnx.optimizers.schedules.PiecewiseConstantDecay([100, 200], [0.1, 0.01, 0.001])
    >>> [float(lr(step)) for step in (0, 150, 250)]
    [0.1, 0.01, 0.001]
    """
    def __init__(self, boundaries, values, name="PiecewiseConstant"):
        if len(values) != len(boundaries) + 1:
            raise ValueError(f"PiecewiseConstantDecay: expected len(values) == "
                             f"len(boundaries) + 1, received {len(values)} and "
                             f"{len(boundaries)}")
        self.boundaries, self.values, self.name = list(boundaries), list(values), name

    def __call__(self, step):
        for boundary, value in zip(self.boundaries, self.values):
            if step <= boundary:
                return float(value)
        return float(self.values[-1])


class CosineDecay(LearningRateSchedule):
    """initial_learning_rate times a half cosine from 1 down to alpha over decay_steps
    (after an optional linear warmup to warmup_target).

    >>> lr = cnnx.optimizers.schedules.CosineDecay(0.1, decay_steps=100)
    >>> [round(float(lr(step)), 4) for step in (0, 50, 100)]
    [0.1, 0.05, 0.0]
    """
    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, name="CosineDecay",
                 warmup_target=None, warmup_steps=0):
        if decay_steps <= 0:
            raise ValueError(f"CosineDecay: `decay_steps` must be > 0, received {decay_steps}")
        self.initial_learning_rate = float(initial_learning_rate)
        self.decay_steps, self.alpha, self.name = decay_steps, float(alpha), name
        self.warmup_target, self.warmup_steps = warmup_target, warmup_steps

    def __call__(self, step):
        if self.warmup_target is not None and step < self.warmup_steps:
            return self.initial_learning_rate + (
                self.warmup_target - self.initial_learning_rate) * step / self.warmup_steps
        start = self.initial_learning_rate if self.warmup_target is None else self.warmup_target
        step = min(step - (self.warmup_steps if self.warmup_target is not None else 0),
                   self.decay_steps)
        cosine = 0.5 * (1 + math.cos(math.pi * step / self.decay_steps))
        return start * ((1 - self.alpha) * cosine + self.alpha)


class InverseTimeDecay(_Decay):
    """initial_learning_rate / (1 + decay_rate * step / decay_steps): Keras 2's `decay`
    argument of every optimizer is this schedule with decay_steps=1.

    >>> lr = cnnx.optimizers.schedules.InverseTimeDecay(0.1, decay_steps=1, decay_rate=1.0)
    >>> [float(lr(step)) for step in (0, 1, 3)]   # 0.1 / (1 + step)
    [0.1, 0.05, 0.025]
    """

    def __call__(self, step):
        p = step / self.decay_steps
        return self.initial_learning_rate / (1 + self.decay_rate * (math.floor(p)
                                                                     if self.staircase else p))


_CLASSES = {c.__name__: c for c in (ExponentialDecay, PiecewiseConstantDecay, CosineDecay,
                                    InverseTimeDecay)}


def serialize(schedule):
    """The schedule as a config: {class_name, config}.

    >>> lr = cnnx.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)
    >>> cnnx.optimizers.schedules.serialize(lr)["class_name"]
    'ExponentialDecay'
    """
    return {"class_name": type(schedule).__name__, "config": schedule.get_config()}


def deserialize(config):
    """The schedule a serialize() config describes.

    >>> lr = cnnx.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)
    >>> again = cnnx.optimizers.schedules.deserialize(cnnx.optimizers.schedules.serialize(lr))
    >>> float(again(10))
    0.05
    """
    return _CLASSES[config["class_name"]].from_config(config["config"])

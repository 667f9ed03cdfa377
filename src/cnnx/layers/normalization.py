"""BatchNormalization, LayerNormalization and GroupNormalization over the channel (last)
axis, with Keras's defaults."""
import numbers

import numpy as np

from .. import initializers, ops, regularizers
from .._compat import refuse_unimplemented
from .base import REGISTRY, Layer

__all__ = ["BatchNormalization", "LayerNormalization", "GroupNormalization"]


def _last_axis(axis, where):
    """-1, or a positive index that build() checks is the last axis: Keras writes the
    axis as a list ([-1] in Keras 3's LayerNormalization, [3] in Keras 2's
    BatchNormalization of images)."""
    if isinstance(axis, (list, tuple)) and len(axis) == 1:
        axis = axis[0]
    if isinstance(axis, bool) or not isinstance(axis, int) or (axis != -1 and axis < 1):
        raise ValueError(f"{where}: only axis=-1 (the channels, last) is supported, "
                         f"received {axis!r}")
    return axis


def _check_last_axis(layer, input_shape):
    if layer.axis != -1 and layer.axis != len(input_shape) - 1:
        raise ValueError(f"{type(layer).__name__} {layer.name!r}: axis={layer.axis} is not "
                         f"the last axis of inputs of shape {tuple(input_shape)}; only the "
                         f"channels (last) axis is supported")


@REGISTRY.register()
class BatchNormalization(Layer):
    """Training: normalise by the batch's mean and variance, and update the moving
    statistics (moving = momentum * moving + (1 - momentum) * batch). Inference: use
    the moving statistics. Compiled kernels (ops.batch_normalization and friends):
    statistics summed in fixed chunks in double precision, one multiply-add per element.

    >>> bn = cnnx.layers.BatchNormalization()
    >>> x = np.array([[1.0], [3.0]], np.float32)
    >>> bn(x, training=True).round(6)    # batch statistics: mean 2, variance 1
    array([[-0.9995],
           [ 0.9995]], dtype=float32)
    >>> bn.moving_mean.value     # moved 1% of the way to the batch mean
    array([0.02], dtype=float32)
    """

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones",
                 moving_mean_initializer="zeros", moving_variance_initializer="ones",
                 beta_regularizer=None, gamma_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        axis = _last_axis(axis, f"BatchNormalization {self.name!r}")
        if not 0 <= momentum <= 1 or epsilon <= 0:
            raise ValueError(f"BatchNormalization {self.name!r}: expected 0 <= momentum <= 1 "
                             f"and epsilon > 0, received {momentum}, {epsilon}")
        self.axis, self.momentum, self.epsilon = axis, float(momentum), float(epsilon)
        self.center, self.scale = bool(center), bool(scale)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)

    def build(self, input_shape):
        _check_last_axis(self, input_shape)
        c = (input_shape[-1],)
        self.gamma = (self.add_weight("gamma", c, self.gamma_initializer, self.gamma_regularizer)
                      if self.scale else None)
        self.beta = (self.add_weight("beta", c, self.beta_initializer, self.beta_regularizer)
                     if self.center else None)
        self.moving_mean = self.add_weight("moving_mean", c, self.moving_mean_initializer,
                                           trainable=False)
        self.moving_variance = self.add_weight("moving_variance", c,
                                               self.moving_variance_initializer, trainable=False)

    def inference_affine(self, dtype):
        """The inference transform as y = x * scale + shift per channel (moving
        statistics, gamma, beta): what a preceding linear layer folds into its weights."""
        rstd = 1 / np.sqrt(self.moving_variance.value.astype(np.float64) + self.epsilon)
        scale = rstd * (self.gamma.value if self.scale else 1)
        shift = -self.moving_mean.value * scale + (self.beta.value if self.center else 0)
        return scale.astype(dtype), shift.astype(dtype)

    def forward(self, ctx, inputs, training=False):
        # As in Keras 3, a frozen BatchNormalization runs in inference mode (transfer
        # learning: its statistics stay those of the data it was trained on).
        training = ctx.saved["training"] = training and self.trainable
        if training:
            mean, var = ops.batch_normalization_moments(inputs)
            m = self.momentum
            for moving, batch in ((self.moving_mean.value, mean),
                                  (self.moving_variance.value, var)):
                moving *= m                # m * moving + (1 - m) * batch, in place
                moving += (1 - m) * batch
            self.moving_mean.touch()
            self.moving_variance.touch()
        else:
            mean = self.moving_mean.value.astype(inputs.dtype)
            var = self.moving_variance.value.astype(inputs.dtype)
        y = ops.batch_normalization(
            inputs, mean, var, self.gamma.value if self.scale else None,
            self.beta.value if self.center else None, self.epsilon,
            "relu" if ctx.fused_relu else None,
            out=ctx.buffer("y", inputs.shape, inputs.dtype))
        ctx.saved.update(x=inputs, mean=mean, var=var, y=y)
        return y

    def can_fuse_relu(self, training):  # noqa: ARG002
        return True

    def backward(self, ctx, grad):
        saved = ctx.saved
        x = saved["x"]
        dx, dgamma, dbeta = ops.batch_normalization_backward(
            x, grad, saved["mean"], saved["var"], self.gamma.value if self.scale else None,
            self.epsilon, saved["training"], self.center, self.scale, ctx.need_input_grad,
            out=(ctx.buffer("dx", x.shape, x.dtype) if ctx.need_input_grad else None,
                 None, None),
            activation="relu" if ctx.fused_relu else None,   # its mask recomputed from x
            beta=self.beta.value if self.center else None)
        if self.center:
            ctx.add_grad(self.beta, dbeta)
        if self.scale:
            ctx.add_grad(self.gamma, dgamma)
        return dx


class _GroupNorm(Layer):
    """Normalization of each sample over groups of channels (the compiled kernels of
    ops.group_normalization), then a learned scale gamma and offset beta per channel."""

    def _init_norm(self, axis, epsilon, center, scale, beta_initializer, gamma_initializer,
                   beta_regularizer, gamma_regularizer, beta_constraint, gamma_constraint):
        where = f"{type(self).__name__} {self.name!r}"
        axis = _last_axis(axis, where)
        if isinstance(epsilon, bool) or not isinstance(epsilon, numbers.Real) \
                or not epsilon > 0:
            raise ValueError(f"{where}: `epsilon` must be > 0, received {epsilon!r}")
        refuse_unimplemented(where, beta_constraint=(beta_constraint, None),
                             gamma_constraint=(gamma_constraint, None))
        self.beta_constraint = self.gamma_constraint = None
        self.axis, self.epsilon = axis, float(epsilon)
        self.center, self.scale = bool(center), bool(scale)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)

    def build(self, input_shape):
        _check_last_axis(self, input_shape)
        c = (input_shape[-1],)
        self.gamma = (self.add_weight("gamma", c, self.gamma_initializer,
                                      self.gamma_regularizer) if self.scale else None)
        self.beta = (self.add_weight("beta", c, self.beta_initializer, self.beta_regularizer)
                     if self.center else None)

    def _view(self, x):
        return x

    def forward(self, ctx, inputs, training=False):  # noqa: ARG002
        x = self._view(inputs)
        y, mean, rstd = ops.group_normalization(
            x, self._groups(), self.gamma.value if self.scale else None,
            self.beta.value if self.center else None, self.epsilon,
            out=ctx.buffer("y", x.shape, x.dtype))
        ctx.saved.update(x=x, mean=mean, rstd=rstd)
        return y.reshape(inputs.shape)

    def backward(self, ctx, grad):
        x = ctx.saved["x"]
        need = ctx.need_input_grad
        dx, dgamma, dbeta = ops.group_normalization_backward(
            x, grad.reshape(x.shape), ctx.saved["mean"], ctx.saved["rstd"], self._groups(),
            self.gamma.value if self.scale else None, self.center, self.scale, need)
        if self.scale:
            ctx.add_grad(self.gamma, dgamma)
        if self.center:
            ctx.add_grad(self.beta, dbeta)
        return None if dx is None else dx.reshape(grad.shape)


@REGISTRY.register()
class LayerNormalization(_GroupNorm):
    """Each position's channels normalized by their own mean and variance (over the
    last axis), then scaled and shifted: Keras 3's defaults (epsilon 1e-3).

    >>> norm = cnnx.layers.LayerNormalization(epsilon=1e-6)
    >>> norm(np.array([[1.0, 2.0, 3.0]])).round(4)   # mean 2, variance 2/3
    array([[-1.2247,  0.    ,  1.2247]], dtype=float32)
    """

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True, rms_scaling=False,
                 beta_initializer="zeros", gamma_initializer="ones", beta_regularizer=None,
                 gamma_regularizer=None, beta_constraint=None, gamma_constraint=None,
                 **kwargs):
        super().__init__(**kwargs)
        refuse_unimplemented(f"LayerNormalization {self.name!r}",
                             rms_scaling=(rms_scaling, False))
        self.rms_scaling = False
        self._init_norm(axis, epsilon, center, scale, beta_initializer, gamma_initializer,
                        beta_regularizer, gamma_regularizer, beta_constraint,
                        gamma_constraint)

    def _groups(self):
        return 1

    def _view(self, x):   # every position its own sample
        return x.reshape(-1, x.shape[-1])


@REGISTRY.register()
class GroupNormalization(_GroupNorm):
    """Each sample's channels in `groups` groups, each normalized over its positions and
    channels, then scaled and shifted per channel (Keras 3's defaults: 32 groups,
    epsilon 1e-3).

    >>> norm = cnnx.layers.GroupNormalization(groups=2, epsilon=1e-6)
    >>> norm(np.array([[[[1.0, 3.0, 10.0, 30.0]]]]))[0, 0, 0].round(4)   # per group of 2
    array([-1.,  1., -1.,  1.], dtype=float32)
    """

    def __init__(self, groups=32, axis=-1, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones", beta_regularizer=None,
                 gamma_regularizer=None, beta_constraint=None, gamma_constraint=None,
                 **kwargs):
        super().__init__(**kwargs)
        if isinstance(groups, bool) or not isinstance(groups, numbers.Integral) \
                or groups < 1:
            raise ValueError(f"GroupNormalization {self.name!r}: `groups` must be a "
                             f"positive int, received {groups!r}")
        self.groups = int(groups)
        self._init_norm(axis, epsilon, center, scale, beta_initializer, gamma_initializer,
                        beta_regularizer, gamma_regularizer, beta_constraint,
                        gamma_constraint)

    def build(self, input_shape):
        _check_last_axis(self, input_shape)
        if len(input_shape) < 2 or input_shape[-1] % self.groups:
            raise ValueError(f"GroupNormalization {self.name!r}: {self.groups} groups must "
                             f"divide the {input_shape[-1]} channels of inputs of shape "
                             f"{tuple(input_shape)}")
        super().build(input_shape)

    def _groups(self):
        return self.groups

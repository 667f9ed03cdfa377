"""BatchNormalization over the channel (last) axis, with Keras's defaults."""
import numpy as np

from .. import initializers, regularizers
from .base import REGISTRY, Layer

__all__ = ["BatchNormalization"]


@REGISTRY.register()
class BatchNormalization(Layer):
    """Training: normalise by the batch's mean and variance, and update the moving
    statistics (moving = momentum * moving + (1 - momentum) * batch). Inference: use
    the moving statistics."""

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones",
                 moving_mean_initializer="zeros", moving_variance_initializer="ones",
                 beta_regularizer=None, gamma_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        if axis != -1:
            raise ValueError(f"BatchNormalization {self.name!r}: only axis=-1 (channels "
                             f"last) is supported, received {axis}")
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
        c = (input_shape[-1],)
        self.gamma = (self.add_weight("gamma", c, self.gamma_initializer, self.gamma_regularizer)
                      if self.scale else None)
        self.beta = (self.add_weight("beta", c, self.beta_initializer, self.beta_regularizer)
                     if self.center else None)
        self.moving_mean = self.add_weight("moving_mean", c, self.moving_mean_initializer,
                                           trainable=False)
        self.moving_variance = self.add_weight("moving_variance", c,
                                               self.moving_variance_initializer, trainable=False)

    def forward(self, ctx, inputs, training=False):
        axes = tuple(range(inputs.ndim - 1))
        # As in Keras 3, a frozen BatchNormalization runs in inference mode (transfer
        # learning: its statistics stay those of the data it was trained on).
        training = ctx.saved["training"] = training and self.trainable
        if training:
            mean = inputs.mean(axis=axes)
            var = inputs.var(axis=axes)
            m = self.momentum
            self.moving_mean.value[...] = m * self.moving_mean.value + (1 - m) * mean
            self.moving_variance.value[...] = m * self.moving_variance.value + (1 - m) * var
        else:
            mean, var = self.moving_mean.value, self.moving_variance.value
        inv = 1 / np.sqrt(var + self.epsilon)
        xhat = (inputs - mean) * inv
        ctx.saved.update(xhat=xhat, inv=inv)
        y = xhat * self.gamma.value if self.scale else xhat
        return (y + self.beta.value if self.center else y).astype(inputs.dtype)

    def backward(self, ctx, grad):
        axes = tuple(range(grad.ndim - 1))
        n = grad.size // grad.shape[-1]
        xhat, inv = ctx.saved["xhat"], ctx.saved["inv"]
        if self.center:
            ctx.add_grad(self.beta, grad.sum(axis=axes).astype(grad.dtype))
        if self.scale:
            ctx.add_grad(self.gamma, (grad * xhat).sum(axis=axes).astype(grad.dtype))
        if not ctx.need_input_grad:
            return None
        g = grad * self.gamma.value if self.scale else grad
        if not ctx.saved["training"]:   # the statistics are constants
            return (g * inv).astype(grad.dtype)
        dx = inv / n * (n * g - g.sum(axis=axes) - xhat * (g * xhat).sum(axis=axes))
        return dx.astype(grad.dtype)


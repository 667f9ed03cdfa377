"""Pure-NumPy twins of cnnx's compiled kernels, with the signatures of cnnx.ops.

This is the oracle of the test suite and the "pure NumPy" side of the benchmarks,
so it is the best NumPy we know how to write, not a straw man:
- im2col is one copy out of an `as_strided` window view, whose rows are contiguous
  kh-runs of kw*C values; a convolution is then one matmul;
- col2im adds shifted strided slices, one per kernel offset;
- pooling reduces over strided slices, one per window offset;
- ReLU's backward multiplies by the mask.
No validation: call it with arrays cnnx.ops would accept.
"""
import numpy as np
from numpy.lib.stride_tricks import as_strided

from ._geometry import conv_output_length, normalize_padding, normalize_tuple, padding_before

__all__ = [
    "conv2d", "conv2d_backward", "conv2d_transpose", "conv2d_transpose_backward",
    "depthwise_conv2d", "depthwise_conv2d_backward", "group_normalization",
    "group_normalization_backward", "batch_normalization_moments", "batch_normalization",
    "batch_normalization_backward", "relu",
    "relu_backward", "max_pool2d", "max_pool2d_backward",
    "average_pool2d", "average_pool2d_backward", "dense", "dense_backward", "softmax",
    "sigmoid", "softmax_cross_entropy", "sigmoid_cross_entropy", "im2col",
]


def _pads(shape, window, strides, padding, dilation=(1, 1)):
    """((top, bottom), (left, right)) padding and the output size, as in Keras."""
    pads, out = [], []
    for length, k, s, d in zip(shape, window, strides, dilation):
        o = conv_output_length(length, k, padding, s, d)
        before = padding_before(length, k, padding, s, d)
        after = max((o - 1) * s + (k - 1) * d + 1 - length - before, 0)
        pads.append((before, after))
        out.append(o)
    return pads, out


def _conv_args(x, kernel, strides, padding, dilation_rate):
    strides = normalize_tuple(strides, 2, "strides", "reference")
    dilation = normalize_tuple(dilation_rate, 2, "dilation_rate", "reference")
    padding = normalize_padding(padding, "reference")
    pads, out = _pads(x.shape[1:3], kernel.shape[:2], strides, padding, dilation)
    return strides, dilation, pads, out


def im2col(x, kernel_shape, strides, dilation, pads, out):
    """(N*OH*OW, kh*kw*C) patches of x, padded; columns in the kernel's (kh, kw, C) order."""
    kh, kw = kernel_shape
    xp = np.pad(x, ((0, 0), pads[0], pads[1], (0, 0))) if any(map(any, pads)) else x
    xp = np.ascontiguousarray(xp)
    n, _, _, c = xp.shape
    sn, sh, sw, sc = xp.strides
    windows = as_strided(
        xp, shape=(n, out[0], out[1], kh, kw, c),
        strides=(sn, strides[0] * sh, strides[1] * sw, dilation[0] * sh, dilation[1] * sw, sc),
        writeable=False)
    return windows.reshape(n * out[0] * out[1], kh * kw * c)


def conv2d(x, kernel, bias=None, strides=1, padding="valid", dilation_rate=1,
           activation=None):
    strides, dilation, pads, out = _conv_args(x, kernel, strides, padding, dilation_rate)
    kh, kw, c, f = kernel.shape
    cols = im2col(x, (kh, kw), strides, dilation, pads, out)
    y = cols @ kernel.reshape(kh * kw * c, f)
    if bias is not None:
        y += bias
    if activation == "relu":
        y = relu(y)
    return y.reshape(x.shape[0], out[0], out[1], f)


def conv2d_backward(x, kernel, dy, strides=1, padding="valid", dilation_rate=1,
                    use_bias=True, input_grad=True, relu_output=None):
    if relu_output is not None:
        dy = relu_backward(dy, relu_output)
    strides, dilation, pads, out = _conv_args(x, kernel, strides, padding, dilation_rate)
    kh, kw, c, f = kernel.shape
    n, h, w, _ = x.shape
    dy2 = dy.reshape(-1, f)
    cols = im2col(x, (kh, kw), strides, dilation, pads, out)
    dkernel = (cols.T @ dy2).reshape(kernel.shape)
    dbias = dy2.sum(axis=0) if use_bias else None
    dx = None
    if input_grad:
        dcols = (dy2 @ kernel.reshape(-1, f).T).reshape(n, out[0], out[1], kh, kw, c)
        hp, wp = h + sum(pads[0]), w + sum(pads[1])
        # Windows may stop short of the padded edge: leave room for a full stride.
        dxp = np.zeros((n, hp + strides[0], wp + strides[1], c), dy.dtype)
        for i in range(kh):
            for j in range(kw):
                h0, w0 = i * dilation[0], j * dilation[1]
                dxp[:, h0:h0 + strides[0] * out[0]:strides[0],
                    w0:w0 + strides[1] * out[1]:strides[1]] += dcols[:, :, :, i, j]
        dx = dxp[:, pads[0][0]:pads[0][0] + h, pads[1][0]:pads[1][0] + w]
        dx = np.ascontiguousarray(dx)
    return dx, dkernel, dbias


def _transpose_shape(x, kernel, strides, padding, output_padding, dilation_rate):
    from ._geometry import conv_transpose_output_length
    strides = normalize_tuple(strides, 2, "strides", "reference")
    dilation = normalize_tuple(dilation_rate, 2, "dilation_rate", "reference")
    padding = normalize_padding(padding, "reference")
    pads = (None, None) if output_padding is None else normalize_tuple(
        output_padding, 2, "output_padding", "reference", allow_zero=True)
    out = tuple(conv_transpose_output_length(x.shape[1 + i], kernel.shape[i], padding,
                                             strides[i], pads[i], dilation[i])
                for i in range(2))
    return (x.shape[0],) + out + (kernel.shape[2],)


def conv2d_transpose(x, kernel, bias=None, strides=1, padding="valid", output_padding=None,
                     dilation_rate=1):
    """The input gradient of conv2d (col2im of x @ kernel^T), x playing dy."""
    shape = _transpose_shape(x, kernel, strides, padding, output_padding, dilation_rate)
    y = conv2d_backward(np.zeros(shape, x.dtype), kernel, x, strides, padding,
                        dilation_rate, use_bias=False)[0]
    return y if bias is None else y + bias


def conv2d_transpose_backward(x, kernel, dy, strides=1, padding="valid", output_padding=None,
                              dilation_rate=1, use_bias=True, input_grad=True):
    del output_padding   # dy's shape carries it
    dx = conv2d(dy, kernel, None, strides, padding, dilation_rate) if input_grad else None
    dkernel = conv2d_backward(dy, kernel, x, strides, padding, dilation_rate,
                              use_bias=False, input_grad=False)[1]
    return dx, dkernel, dy.sum(axis=(0, 1, 2)) if use_bias else None


def _col2im(dcols, x_shape, kernel_shape, strides, dilation, pads, out):
    """The adjoint of im2col: each (n, oh, ow, i, j) patch value added back to x's
    padded image, the padding then cut off."""
    n, h, w, c = x_shape
    kh, kw = kernel_shape
    dcols = dcols.reshape(n, out[0], out[1], kh, kw, c)
    hp, wp = h + sum(pads[0]), w + sum(pads[1])
    # Windows may stop short of the padded edge: leave room for a full stride.
    dxp = np.zeros((n, hp + strides[0], wp + strides[1], c), dcols.dtype)
    for i in range(kh):
        for j in range(kw):
            h0, w0 = i * dilation[0], j * dilation[1]
            dxp[:, h0:h0 + strides[0] * out[0]:strides[0],
                w0:w0 + strides[1] * out[1]:strides[1]] += dcols[:, :, :, i, j]
    return np.ascontiguousarray(dxp[:, pads[0][0]:pads[0][0] + h, pads[1][0]:pads[1][0] + w])


def _depthwise_args(x, kernel, strides, padding, dilation_rate):
    """x with each channel repeated depth_multiplier times (channel c * M + m, Keras's
    order), the kernel as (kh, kw, C * M), and the geometry."""
    kh, kw, c, m = kernel.shape
    xr = np.repeat(x, m, axis=3) if m > 1 else x
    return (xr, kernel.reshape(kh, kw, c * m)) + _conv_args(x, kernel, strides, padding,
                                                             dilation_rate)


def depthwise_conv2d(x, kernel, bias=None, strides=1, padding="valid", dilation_rate=1,
                     activation=None):
    """Each input channel c convolved with its own filters kernel[:, :, c, m], giving
    output channel c * M + m: the per-channel products of im2col's patches."""
    xr, k, strides, dilation, pads, out = _depthwise_args(x, kernel, strides, padding,
                                                          dilation_rate)
    kh, kw, cm = k.shape
    cols = im2col(xr, (kh, kw), strides, dilation, pads, out).reshape(-1, kh * kw, cm)
    y = np.einsum("ptc,tc->pc", cols, k.reshape(kh * kw, cm))
    if bias is not None:
        y = y + bias
    y = y.reshape(x.shape[0], out[0], out[1], cm).astype(x.dtype, copy=False)
    return relu(y) if activation == "relu" else y


def depthwise_conv2d_backward(x, kernel, dy, strides=1, padding="valid", dilation_rate=1,
                              use_bias=True, input_grad=True):
    xr, k, strides, dilation, pads, out = _depthwise_args(x, kernel, strides, padding,
                                                          dilation_rate)
    kh, kw, cm = k.shape
    dy2 = dy.reshape(-1, cm)
    cols = im2col(xr, (kh, kw), strides, dilation, pads, out).reshape(-1, kh * kw, cm)
    dkernel = np.einsum("ptc,pc->tc", cols, dy2).reshape(kernel.shape)
    dbias = dy2.sum(axis=0) if use_bias else None
    dx = None
    if input_grad:
        dcols = dy2[:, None, :] * k.reshape(1, kh * kw, cm)
        dx = _col2im(dcols, xr.shape, (kh, kw), strides, dilation, pads, out)
        if kernel.shape[3] > 1:
            dx = np.ascontiguousarray(dx.reshape(x.shape + (kernel.shape[3],)).sum(axis=-1))
    return dx, dkernel, dbias


def batch_normalization_moments(x):
    axes = tuple(range(x.ndim - 1))
    if x.size == 0:
        return np.zeros(x.shape[-1], x.dtype), np.zeros(x.shape[-1], x.dtype)
    return (x.mean(axis=axes, dtype=np.float64).astype(x.dtype),
            x.var(axis=axes, dtype=np.float64).astype(x.dtype))


def batch_normalization(x, mean, variance, gamma=None, beta=None, epsilon=1e-3,
                        activation=None):
    y = (x - mean) / np.sqrt(variance.astype(np.float64) + epsilon)
    if gamma is not None:
        y = y * gamma
    if beta is not None:
        y = y + beta
    y = y.astype(x.dtype)
    return relu(y) if activation == "relu" else y


def batch_normalization_backward(x, dy, mean, variance, gamma=None, epsilon=1e-3,
                                 training=True, center=True, scale=True, input_grad=True,
                                 relu_output=None, activation=None, beta=None):
    if activation == "relu":   # the forward's ReLU output, recomputed
        relu_output = batch_normalization(x, mean, variance, gamma, beta, epsilon, "relu")
    if relu_output is not None:
        dy = relu_backward(dy, relu_output)
    axes = tuple(range(x.ndim - 1))
    rows = max(x.size // max(x.shape[-1], 1), 1)
    rstd = 1 / np.sqrt(variance.astype(np.float64) + epsilon)
    xhat = (x - mean) * rstd
    s1, s2 = dy.sum(axis=axes), (dy * xhat).sum(axis=axes)
    a = rstd * (1 if gamma is None else gamma)
    dx = None
    if input_grad:
        dx = a * (dy - (s1 + xhat * s2) / rows) if training else a * dy
        dx = dx.astype(x.dtype)
    return (dx, s2.astype(x.dtype) if scale else None,
            s1.astype(x.dtype) if center else None)


def group_normalization(x, groups, gamma=None, beta=None, epsilon=1e-3):
    n, c = x.shape[0], x.shape[-1]
    positions = int(np.prod(x.shape[1:-1], dtype=np.int64))
    g = x.reshape(n, positions, groups, c // groups).astype(np.float64)
    if g.shape[1] == 0:   # no positions: mean 0 and rstd 0, as the kernel defines them
        zeros = np.zeros((n, groups), x.dtype)
        return np.zeros(x.shape, x.dtype), zeros, zeros.copy()
    mean = g.mean(axis=(1, 3))
    var = g.var(axis=(1, 3))
    rstd = 1 / np.sqrt(var + epsilon)
    y = ((g - mean[:, None, :, None]) * rstd[:, None, :, None]).reshape(x.shape)
    if gamma is not None:
        y = y * gamma
    if beta is not None:
        y = y + beta
    return y.astype(x.dtype), mean.astype(x.dtype), rstd.astype(x.dtype)


def group_normalization_backward(x, dy, mean, rstd, groups, gamma=None, center=True,
                                 scale=True, input_grad=True):
    n, c = x.shape[0], x.shape[-1]
    shape = (n, int(np.prod(x.shape[1:-1], dtype=np.int64)), groups, c // groups)
    m, r = mean[:, None, :, None], rstd[:, None, :, None]
    xhat = (x.reshape(shape) - m) * r
    d = dy.reshape(shape)
    g = d * (gamma.reshape(groups, c // groups) if gamma is not None else 1)
    count = xhat.shape[1] * xhat.shape[3]
    dx = None
    if input_grad and count == 0:
        dx = np.zeros(x.shape, x.dtype)
    elif input_grad:
        dx = r * (g - g.sum(axis=(1, 3), keepdims=True) / count
                  - xhat * (g * xhat).sum(axis=(1, 3), keepdims=True) / count)
        dx = dx.reshape(x.shape).astype(x.dtype)
    dgamma = (d * xhat).sum(axis=(0, 1)).reshape(c) if scale else None
    dbeta = d.sum(axis=(0, 1)).reshape(c) if center else None
    return dx, dgamma, dbeta


def relu(x):
    # np.where keeps NaN (NaN <= 0 is False), as the kernel does.
    return np.where(x <= 0, x.dtype.type(0), x)


def all_finite(x):
    return bool(np.isfinite(x).all())


def add(x1, x2, activation=None):
    y = x1 + x2
    return relu(y) if activation == "relu" else y


def relu_backward(dy, x):
    return dy * (x > 0)


def sigmoid(x):
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def softmax(x, axis=-1):
    z = x - np.max(x, axis=axis, keepdims=True)
    e = np.exp(z)
    return e / np.sum(e, axis=axis, keepdims=True)


def _pool_args(x, pool_size, strides, padding):
    pool = normalize_tuple(pool_size, 2, "pool_size", "reference")
    strides = pool if strides is None else normalize_tuple(strides, 2, "strides", "reference")
    padding = normalize_padding(padding, "reference")
    pads, out = _pads(x.shape[1:3], pool, strides, padding)
    return pool, strides, pads, out


def _window_slices(pool, strides, out):
    def take(start, axis):   # out[axis] windows from start on; none when out is 0
        stop = start + strides[axis] * (out[axis] - 1) + 1 if out[axis] else start
        return slice(start, stop, strides[axis])

    for i in range(pool[0]):
        for j in range(pool[1]):
            yield i, j, (slice(None), take(i, 0), take(j, 1))


def max_pool2d(x, pool_size=2, strides=None, padding="valid"):
    pool, strides, pads, out = _pool_args(x, pool_size, strides, padding)
    n, h, w, c = x.shape
    xp = np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)), constant_values=-np.inf)
    # Flat index of every padded position within its sample; padding never wins.
    hh = np.arange(-pads[0][0], h + pads[0][1])[:, None, None]
    ww = np.arange(-pads[1][0], w + pads[1][1])[None, :, None]
    index = ((hh * w + ww) * c + np.arange(c)).astype(np.int32)
    best = None
    for _, _, s in _window_slices(pool, strides, out):
        v, i = xp[s], np.broadcast_to(index[s[1:]], (n, out[0], out[1], c))
        if best is None:
            best, arg = v.copy(), i.copy()
            continue
        # Strictly greater keeps the first maximum; the first NaN wins, as in np.max.
        take = (v > best) | (np.isnan(v) & ~np.isnan(best))
        best = np.where(take, v, best)
        arg = np.where(take, i, arg)
    return best, arg


def max_pool2d_backward(dy, argmax, input_shape, relu_output=None):
    if relu_output is not None:  # the pool's input was a ReLU's output (see cnnx.ops)
        dy = relu_backward(dy, relu_output)
    n = input_shape[0]
    per_sample = int(np.prod(input_shape[1:]))
    dx = np.zeros((n, per_sample), dy.dtype)
    rows = np.repeat(np.arange(n), argmax.size // n if n else 0)
    np.add.at(dx, (rows, argmax.reshape(-1)), dy.reshape(-1))
    return dx.reshape(input_shape)


def _window_counts(shape, pool, strides, pads, out):
    """How many real (unpadded) elements each window covers."""
    ones = np.pad(np.ones((1,) + tuple(shape) + (1,)), ((0, 0), pads[0], pads[1], (0, 0)))
    count = np.zeros((1, out[0], out[1], 1))
    for _, _, s in _window_slices(pool, strides, out):
        count += ones[s]
    return count


def average_pool2d(x, pool_size=2, strides=None, padding="valid"):
    pool, strides, pads, out = _pool_args(x, pool_size, strides, padding)
    xp = np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
    total = np.zeros((x.shape[0], out[0], out[1], x.shape[3]), x.dtype)
    for _, _, s in _window_slices(pool, strides, out):
        total += xp[s]
    return (total / _window_counts(x.shape[1:3], pool, strides, pads, out)).astype(x.dtype)


def global_average_pool2d(x):
    return x.mean(axis=(1, 2), dtype=np.float64).astype(x.dtype)


def average_pool2d_backward(dy, input_shape, pool_size=2, strides=None, padding="valid"):
    probe = np.empty((1,) + tuple(input_shape[1:3]) + (1,))
    pool, strides, pads, out = _pool_args(probe, pool_size, strides, padding)
    n, h, w, c = input_shape
    share = dy / _window_counts((h, w), pool, strides, pads, out)
    dxp = np.zeros((n, h + sum(pads[0]) + strides[0], w + sum(pads[1]) + strides[1], c),
                   dy.dtype)
    for _, _, s in _window_slices(pool, strides, out):
        dxp[s] += share
    return np.ascontiguousarray(dxp[:, pads[0][0]:pads[0][0] + h, pads[1][0]:pads[1][0] + w])


def dense(x, kernel, bias=None, activation=None):
    y = x @ kernel
    if bias is not None:
        y += bias
    return relu(y) if activation == "relu" else y


def dense_backward(x, kernel, dy, use_bias=True, input_grad=True):
    dx = dy @ kernel.T if input_grad else None
    return dx, x.T @ dy, (dy.sum(axis=0) if use_bias else None)


def softmax_cross_entropy(logits, targets):
    m = np.max(logits, axis=1, keepdims=True)
    lse = m + np.log(np.sum(np.exp(logits - m), axis=1, keepdims=True))
    loss = np.sum(targets, axis=1) * lse[:, 0] - np.sum(targets * logits, axis=1)
    return loss, np.exp(logits - lse) - targets


def sigmoid_cross_entropy(logits, targets):
    loss = np.maximum(logits, 0) - logits * targets + np.log1p(np.exp(-np.abs(logits)))
    return loss, sigmoid(logits) - targets


# Optimizer updates: return the new (w, state...) instead of updating in place.

def sgd_update(w, g, m, lr, momentum, nesterov):
    if momentum == 0:
        return w - lr * g, m
    m = momentum * m - lr * g
    return (w + momentum * m - lr * g if nesterov else w + m), m


def adam_update(w, g, m, v, lr_t, beta1, beta2, epsilon, decay):
    w = w - w * decay
    m = m + (g - m) * (1 - beta1)
    v = v + (g * g - v) * (1 - beta2)
    return w - lr_t * m / (np.sqrt(v) + epsilon), m, v


def rmsprop_update(w, g, v, m, lr, rho, momentum, epsilon):
    v = rho * v + (1 - rho) * g * g
    step = lr * g / np.sqrt(v + epsilon)
    if momentum:
        m = momentum * m + step
        step = m
    return w - step, v, m


def adagrad_update(w, g, acc, lr, epsilon):
    acc = acc + g * g
    return w - lr * g / np.sqrt(acc + epsilon), acc


def adamax_update(w, g, m, u, lr_t, beta1, beta2, epsilon):
    m = m + (g - m) * (1 - beta1)
    u = np.maximum(beta2 * u, np.abs(g))
    return w - lr_t * m / (u + epsilon), m, u


def adadelta_update(w, g, acc_grad, acc_delta, lr, rho, epsilon):
    acc_grad = rho * acc_grad + (1 - rho) * g * g
    delta = -np.sqrt(acc_delta + epsilon) / np.sqrt(acc_grad + epsilon) * g
    acc_delta = rho * acc_delta + (1 - rho) * delta * delta
    return w + lr * delta, acc_grad, acc_delta


def lion_update(w, g, m, lr, beta1, beta2):
    w = w - lr * np.sign(beta1 * m + (1 - beta1) * g)
    return w, beta2 * m + (1 - beta2) * g


def nadam_update(w, g, m, v, lr, beta1, beta2, epsilon, u_t, u_t_1, u_product_t,
                 u_product_t_1, beta2_power):
    m = m + (g - m) * (1 - beta1)
    v = v + (g * g - v) * (1 - beta2)
    m_hat = u_t_1 * m / (1 - u_product_t_1) + (1 - u_t) * g / (1 - u_product_t)
    return w - lr * m_hat / (np.sqrt(v / (1 - beta2_power)) + epsilon), m, v


def ftrl_update(w, g, accum, linear, lr, lr_power, l1, l2, l2_shrinkage, beta=0.0):
    l2 = l2 + beta / (2 * lr)
    new = accum + g * g
    linear = linear + g + 2 * l2_shrinkage * w - (new ** -lr_power - accum ** -lr_power) \
        / lr * w
    quadratic = new ** -lr_power / lr + 2 * l2
    return (np.clip(linear, -l1, l1) - linear) / quadratic, new, linear

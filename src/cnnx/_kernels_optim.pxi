# Included by _kernels.pyx (one extension module; see its header).
# Optimizer updates, in place (every optimizer of cnnx.optimizers)

# ---------------------------------------------------------------------------------
# Optimizer updates, in place, with Keras's update rules. Scalars arrive resolved
# (learning rate of this step, bias corrections); `g` is the gradient.
# ---------------------------------------------------------------------------------

def sgd_update(floating[::1] w, const floating[::1] g, floating[::1] m, double lr,
               double momentum, bint nesterov, int nthreads):
    """momentum == 0: w -= lr g. Otherwise m = momentum m - lr g, then
    w += m, or w += momentum m - lr g with nesterov."""
    cdef Py_ssize_t i
    cdef floating mi
    with nogil:
        if momentum == 0:
            for i in prange(w.shape[0], num_threads=nthreads, schedule="static"):
                w[i] = w[i] - <floating> lr * g[i]
        else:
            for i in prange(w.shape[0], num_threads=nthreads, schedule="static"):
                mi = <floating> momentum * m[i] - <floating> lr * g[i]
                m[i] = mi
                if nesterov:
                    w[i] = w[i] + <floating> momentum * mi - <floating> lr * g[i]
                else:
                    w[i] = w[i] + mi


def adam_update(floating[::1] w, const floating[::1] g, floating[::1] m, floating[::1] v,
                double lr_t, double beta1, double beta2, double epsilon,
                double decay, int nthreads):
    """Keras's Adam: m += (g - m)(1 - beta1); v += (g^2 - v)(1 - beta2);
    w -= lr_t m / (sqrt(v) + epsilon), where lr_t carries the bias corrections.
    decay > 0 (AdamW) first scales w by (1 - decay), decay = weight_decay * lr."""
    cdef Py_ssize_t i
    cdef floating gi, mi, vi
    with nogil:
        for i in prange(w.shape[0], num_threads=nthreads, schedule="static"):
            gi = g[i]
            if decay != 0:
                w[i] = w[i] - w[i] * <floating> decay
            mi = m[i] + (gi - m[i]) * <floating> (1 - beta1)
            vi = v[i] + (gi * gi - v[i]) * <floating> (1 - beta2)
            m[i] = mi
            v[i] = vi
            w[i] = w[i] - <floating> lr_t * mi / (sqrt(vi) + <floating> epsilon)


def rmsprop_update(floating[::1] w, const floating[::1] g, floating[::1] v, floating[::1] m,
                   double lr, double rho, double momentum, double epsilon, int nthreads):
    """Keras's RMSprop: v = rho v + (1 - rho) g^2; step = lr g / sqrt(v + epsilon)
    (epsilon inside the root); with momentum m = momentum m + step, w -= m; else w -= step."""
    cdef Py_ssize_t i
    cdef floating gi, vi, step
    with nogil:
        for i in prange(w.shape[0], num_threads=nthreads, schedule="static"):
            gi = g[i]
            vi = <floating> rho * v[i] + <floating> (1 - rho) * gi * gi
            v[i] = vi
            step = <floating> lr * gi / sqrt(vi + <floating> epsilon)
            if momentum != 0:
                step = <floating> momentum * m[i] + step
                m[i] = step
            w[i] = w[i] - step


def adagrad_update(floating[::1] w, const floating[::1] g, floating[::1] acc, double lr,
                   double epsilon, int nthreads):
    """Keras's Adagrad: acc += g^2; w -= lr g / sqrt(acc + epsilon)."""
    cdef Py_ssize_t i
    cdef floating gi, ai
    with nogil:
        for i in prange(w.shape[0], num_threads=nthreads, schedule="static"):
            gi = g[i]
            ai = acc[i] + gi * gi
            acc[i] = ai
            w[i] = w[i] - <floating> lr * gi / sqrt(ai + <floating> epsilon)


def adamax_update(floating[::1] w, const floating[::1] g, floating[::1] m, floating[::1] u,
                  double lr_t, double beta1, double beta2, double epsilon, int nthreads):
    """Keras's Adamax: m += (g - m)(1 - beta1); u = max(beta2 u, |g|);
    w -= lr_t m / (u + epsilon), where lr_t = lr / (1 - beta1^t)."""
    cdef Py_ssize_t i
    cdef floating gi, mi, ui
    with nogil:
        for i in prange(w.shape[0], num_threads=nthreads, schedule="static"):
            gi = g[i]
            mi = m[i] + (gi - m[i]) * <floating> (1 - beta1)
            ui = u[i] * <floating> beta2
            if fabs(gi) > ui:
                ui = fabs(gi)
            m[i] = mi
            u[i] = ui
            w[i] = w[i] - <floating> lr_t * mi / (ui + <floating> epsilon)


def adadelta_update(floating[::1] w, const floating[::1] g, floating[::1] acc_grad,
                    floating[::1] acc_delta, double lr, double rho, double epsilon,
                    int nthreads):
    """Keras's Adadelta: acc_grad = rho acc_grad + (1 - rho) g^2;
    delta = -sqrt(acc_delta + eps) / sqrt(acc_grad + eps) g;
    acc_delta = rho acc_delta + (1 - rho) delta^2; w += lr delta."""
    cdef Py_ssize_t i
    cdef floating gi, ag, delta
    with nogil:
        for i in prange(w.shape[0], num_threads=nthreads, schedule="static"):
            gi = g[i]
            ag = <floating> rho * acc_grad[i] + <floating> (1 - rho) * gi * gi
            delta = -sqrt(acc_delta[i] + <floating> epsilon) / sqrt(ag + <floating> epsilon) * gi
            acc_grad[i] = ag
            acc_delta[i] = <floating> rho * acc_delta[i] + <floating> (1 - rho) * delta * delta
            w[i] = w[i] + <floating> lr * delta


def lion_update(floating[::1] w, const floating[::1] g, floating[::1] m, double lr,
                double beta1, double beta2, int nthreads):
    """Keras's Lion: w -= lr sign(beta1 m + (1 - beta1) g); m = beta2 m + (1 - beta2) g."""
    cdef Py_ssize_t i
    cdef floating gi, c, s
    with nogil:
        for i in prange(w.shape[0], num_threads=nthreads, schedule="static"):
            gi = g[i]
            c = m[i] * <floating> beta1 + gi * <floating> (1 - beta1)
            s = 1 if c > 0 else (-1 if c < 0 else 0)
            w[i] = w[i] - <floating> lr * s
            m[i] = m[i] * <floating> beta2 + gi * <floating> (1 - beta2)


def nadam_update(floating[::1] w, const floating[::1] g, floating[::1] m, floating[::1] v,
                 double lr, double beta1, double beta2, double epsilon, double u_t,
                 double u_t_1, double u_product_t, double u_product_t_1,
                 double beta2_power, int nthreads):
    """Keras's Nadam, with the step's momentum-schedule scalars computed by the caller:
    m += (g - m)(1 - beta1); v += (g^2 - v)(1 - beta2);
    m_hat = u_t_1 m / (1 - u_product_t_1) + (1 - u_t) g / (1 - u_product_t);
    w -= lr m_hat / (sqrt(v / (1 - beta2_power)) + epsilon)."""
    cdef Py_ssize_t i
    cdef floating gi, mi, vi, m_hat
    with nogil:
        for i in prange(w.shape[0], num_threads=nthreads, schedule="static"):
            gi = g[i]
            mi = m[i] + (gi - m[i]) * <floating> (1 - beta1)
            vi = v[i] + (gi * gi - v[i]) * <floating> (1 - beta2)
            m[i] = mi
            v[i] = vi
            m_hat = (<floating> u_t_1 * mi / <floating> (1 - u_product_t_1)
                     + <floating> (1 - u_t) * gi / <floating> (1 - u_product_t))
            w[i] = w[i] - <floating> lr * m_hat / (
                sqrt(vi / <floating> (1 - beta2_power)) + <floating> epsilon)



def ftrl_update(floating[::1] w, const floating[::1] g, floating[::1] accum,
                floating[::1] linear, double lr, double lr_power, double l1, double l2,
                double l2_shrinkage, int nthreads):
    """Keras 3's FTRL-proximal step: n' = n + g^2; z += g + 2 l2_shrinkage w
    - (n'^-p - n^-p) / lr * w; w = (clip(z, -l1, l1) - z) / (n'^-p / lr + 2 l2); n = n'
    (p = lr_power; l2 already holds beta / (2 lr))."""
    cdef Py_ssize_t i
    cdef double gi, wi, ni, nn, zi, pn
    with nogil:
        for i in prange(w.shape[0], num_threads=nthreads, schedule="static"):
            gi = g[i]
            wi = w[i]
            ni = accum[i]
            nn = ni + gi * gi
            pn = pow(nn, -lr_power)
            zi = linear[i] + gi + 2 * l2_shrinkage * wi - (pn - pow(ni, -lr_power)) / lr * wi
            linear[i] = <floating> zi
            w[i] = <floating> ((min(max(zi, -l1), l1) - zi) / (pn / lr + 2 * l2))
            accum[i] = <floating> nn

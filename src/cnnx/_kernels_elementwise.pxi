# Included by _kernels.pyx (one extension module; see its header).
# Elementwise kernels and losses: ReLU, sigmoid, softmax and the cross-entropies from logits

# ---------------------------------------------------------------------------------
# Elementwise
# ---------------------------------------------------------------------------------

def add(const floating[::1] a, const floating[::1] b, floating[::1] y, bint relu,
        int nthreads):
    """y = a + b, then max(y, 0) when relu (NaN passes through). y may be a or b."""
    if a.shape[0]:
        with nogil:
            _add(&a[0], &b[0], &y[0], a.shape[0], relu, nthreads)


cdef void _add(const floating *a, const floating *b, floating *y, int64_t n, bint relu,
               int nthreads) noexcept nogil:
    cdef int64_t i
    cdef floating v
    if relu:
        for i in prange(n, num_threads=nthreads, schedule="static"):
            v = a[i] + b[i]
            y[i] = 0 if v <= 0 else v
    else:
        for i in prange(n, num_threads=nthreads, schedule="static"):
            y[i] = a[i] + b[i]


def all_finite(x):
    """Whether every value of x (a C-contiguous float32 or float64 array) is finite.
    Not a fused function: their dispatch costs about a microsecond, the whole check
    of one image a tenth of that (the models check every input batch)."""
    cdef Py_buffer view
    cdef bint ok
    PyObject_GetBuffer(x, &view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT)
    try:
        if view.format == b"f":
            with nogil:
                ok = _all_finite(<const float *> view.buf, view.len // 4)
        elif view.format == b"d":
            with nogil:
                ok = _all_finite(<const double *> view.buf, view.len // 8)
        else:
            raise TypeError(f"all_finite: a float32 or float64 array expected, received "
                            f"format {view.format.decode()!r}")
    finally:
        PyBuffer_Release(&view)
    return ok


cdef bint _all_finite(const floating *x, int64_t n) noexcept nogil:
    # Blocks without a branch inside, so the compare-and-or vectorises; an early exit
    # between them.
    cdef int64_t i, start, stop
    cdef int bad = 0
    for start in range(0, n, 4096):
        stop = min(start + 4096, n)
        for i in range(start, stop):
            bad |= not (x[i] - x[i] == 0)    # NaN for infinities and NaN
        if bad:
            return False
    return True


def relu(const floating[::1] x, floating[::1] y, int nthreads):
    """y = x where x > 0, else 0 (NaN passes through). y may be x."""
    if x.shape[0]:
        with nogil:
            _relu(&x[0], &y[0], x.shape[0], nthreads)


cdef void _relu(const floating *x, floating *y, int64_t n, int nthreads) noexcept nogil:
    cdef int64_t i
    cdef floating v
    for i in prange(n, num_threads=nthreads, schedule="static"):
        v = x[i]
        y[i] = 0 if v <= 0 else v


def relu_grad(const floating[::1] dy, const floating[::1] x, floating[::1] dx, int nthreads):
    """dx = dy where x > 0, else 0. x may be ReLU's input or its output."""
    if dy.shape[0] == 0:
        return
    with nogil:
        _relu_grad(&dy[0], &x[0], &dx[0], dy.shape[0], nthreads)


cdef void _relu_grad(const floating *dy, const floating *x, floating *dx, int64_t n,
                     int nthreads) noexcept nogil:
    cdef int64_t i
    cdef floating g
    for i in prange(n, num_threads=nthreads, schedule="static"):
        g = dy[i]  # loaded unconditionally, so the select needs no branch
        dx[i] = g if x[i] > 0 else 0



# ---------------------------------------------------------------------------------
# Softmax and the cross-entropies, from logits
# ---------------------------------------------------------------------------------

cdef inline floating _softmax_row(const floating *z, floating *p, int64_t K) noexcept nogil:
    """p = softmax(z); returns log(sum(exp(z - max))) + max, the log-sum-exp."""
    cdef int64_t j
    cdef floating m = z[0], s = 0
    for j in range(1, K):
        if z[j] > m or z[j] != z[j]:
            m = z[j]
    for j in range(K):
        p[j] = exp(z[j] - m)
        s = s + p[j]
    for j in range(K):
        p[j] = p[j] / s
    return m + log(s)


def softmax(const floating[:, ::1] z, floating[:, ::1] p, int nthreads):
    """Row-wise softmax, shifted by the row maximum for stability."""
    if z.shape[0] * z.shape[1]:
        with nogil:
            _softmax(&z[0, 0], &p[0, 0], z.shape[0], z.shape[1], nthreads)


cdef void _softmax(const floating *z, floating *p, int64_t rows, int64_t K,
                   int nthreads) noexcept nogil:
    cdef int64_t i
    for i in prange(rows, num_threads=nthreads, schedule="static"):
        _softmax_row(z + i * K, p + i * K, K)


def softmax_cross_entropy(const floating[:, ::1] logits, const floating[:, ::1] targets,
                          floating[::1] loss, floating[:, ::1] grad, int nthreads):
    """loss[i] = logsumexp(z_i) - sum_j t_ij z_ij  (= -sum t log softmax(z) when the
    targets sum to 1); grad = softmax(z) - t, per sample (unscaled by the batch)."""
    cdef int64_t i, j, K = logits.shape[1]
    cdef floating lse, tsum, dot
    with nogil:
        for i in prange(logits.shape[0], num_threads=nthreads, schedule="static"):
            lse = _softmax_row(&logits[i, 0], &grad[i, 0], K)
            tsum = 0
            dot = 0
            for j in range(K):
                tsum = tsum + targets[i, j]
                dot = dot + targets[i, j] * logits[i, j]
                grad[i, j] = grad[i, j] - targets[i, j]
            loss[i] = tsum * lse - dot


def sigmoid_cross_entropy(const floating[::1] logits, const floating[::1] targets,
                          floating[::1] loss, floating[::1] grad, int nthreads):
    """Elementwise: loss = max(z, 0) - z t + log1p(exp(-|z|)); grad = sigmoid(z) - t."""
    cdef Py_ssize_t i
    cdef floating z, e
    with nogil:
        for i in prange(logits.shape[0], num_threads=nthreads, schedule="static"):
            z = logits[i]
            e = exp(-fabs(z))
            loss[i] = (z if z > 0 else 0) - z * targets[i] + log1p(e)
            grad[i] = (1 / (1 + e) if z >= 0 else e / (1 + e)) - targets[i]


def sigmoid(const floating[::1] x, floating[::1] y, int nthreads):
    """y = 1 / (1 + exp(-x)), computed without overflow for either sign."""
    if x.shape[0]:
        with nogil:
            _sigmoid(&x[0], &y[0], x.shape[0], nthreads)


cdef void _sigmoid(const floating *x, floating *y, int64_t n, int nthreads) noexcept nogil:
    cdef int64_t i
    cdef floating e, v
    for i in prange(n, num_threads=nthreads, schedule="static"):
        v = x[i]
        e = exp(-fabs(v))
        y[i] = 1 / (1 + e) if v >= 0 else e / (1 + e)


if cnnx_simd_select(NULL) != 0:  # pragma: no cover - the generic path always exists
    raise ImportError("cnnx: no SIMD path could be selected")

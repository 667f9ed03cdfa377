# Included by _kernels.pyx (one extension module; see its header).
# Normalization statistics: group (LayerNormalization, GroupNormalization) and batch

# ---------------------------------------------------------------------------------
# Group statistics normalization (LayerNormalization, GroupNormalization)
# ---------------------------------------------------------------------------------
# x is seen as (N, P, G, K): N independent samples (rows), P positions, G groups of K
# channels; each (n, g) is normalized over its P * K values, then channel c = g * K + k
# is scaled by gamma[c] and shifted by beta[c]. LayerNormalization is P = G = 1;
# GroupNormalization is P = height * width.

cdef enum:
    NORM_CHUNK = 16     # samples per partial of the gamma / beta gradients


def group_norm(const floating[:, :, :, ::1] x, const floating[::1] gamma,
               const floating[::1] beta, double epsilon, floating[:, :, :, ::1] y,
               floating[:, ::1] mean, floating[:, ::1] rstd, int nthreads):
    """y = (x - mean) * rstd * gamma + beta per (sample, group); mean and rstd =
    1 / sqrt(var + epsilon) (N x G) are kept for the backward pass. Two passes (the mean,
    then the centred squares), in a fixed order per (sample, group)."""
    cdef int64_t N = x.shape[0], P = x.shape[1], G = x.shape[2], K = x.shape[3]
    cdef int64_t item, n, g, p, k
    cdef double s, d, m, r
    cdef floating mf, rf
    cdef const floating *row
    cdef floating *out
    cdef bint has_gamma = gamma is not None, has_beta = beta is not None
    if N * G == 0:
        return
    with nogil:
        for item in prange(N * G, num_threads=nthreads, schedule="static"):
            n = item // G
            g = item - n * G
            s = 0
            for p in range(P):
                row = &x[n, p, g, 0]
                for k in range(K):
                    s = s + row[k]
            m = s / (P * K) if P * K else 0.0
            s = 0
            for p in range(P):
                row = &x[n, p, g, 0]
                for k in range(K):
                    d = row[k] - m
                    s = s + d * d
            r = 1.0 / sqrt(s / (P * K) + epsilon) if P * K else 0.0
            mf = <floating> m
            rf = <floating> r
            mean[n, g] = mf
            rstd[n, g] = rf
            for p in range(P):
                row = &x[n, p, g, 0]
                out = &y[n, p, g, 0]
                for k in range(K):
                    out[k] = (row[k] - mf) * rf
                    if has_gamma:
                        out[k] = out[k] * gamma[g * K + k]
                    if has_beta:
                        out[k] = out[k] + beta[g * K + k]


def group_norm_grad(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] dy,
                    const floating[::1] gamma, const floating[:, ::1] mean,
                    const floating[:, ::1] rstd, floating[:, :, :, ::1] dx,
                    floating[::1] dgamma, floating[::1] dbeta, int nthreads, workspace):
    """dx per (sample, group): rstd / M * (M g - sum g - xhat sum g xhat), g = dy * gamma,
    M = P * K (skipped when dx is None); dgamma = sum of dy * xhat and dbeta = sum of dy
    over samples and positions, in fixed chunks of NORM_CHUNK samples added in order
    (skipped when None)."""
    cdef int64_t N = x.shape[0], P = x.shape[1], G = x.shape[2], K = x.shape[3]
    cdef int64_t C = G * K, M = P * K
    cdef int64_t item, n, g, p, k, ch, e, nchunks
    cdef double s1, s2, xh, gk
    cdef floating m, r
    cdef floating *part
    cdef floating *partial
    cdef bint has_gamma = gamma is not None
    if dx is not None and N * G > 0 and M > 0:
        with nogil:
            for item in prange(N * G, num_threads=nthreads, schedule="static"):
                n = item // G
                g = item - n * G
                m = mean[n, g]
                r = rstd[n, g]
                s1 = 0
                s2 = 0
                for p in range(P):
                    for k in range(K):
                        gk = dy[n, p, g, k] * (gamma[g * K + k] if has_gamma else 1)
                        s1 = s1 + gk
                        s2 = s2 + gk * (x[n, p, g, k] - m) * r
                for p in range(P):
                    for k in range(K):
                        gk = dy[n, p, g, k] * (gamma[g * K + k] if has_gamma else 1)
                        xh = (x[n, p, g, k] - m) * r
                        dx[n, p, g, k] = <floating> (r * (gk - s1 / M - xh * s2 / M))
    if dgamma is None and dbeta is None:
        return
    nchunks = _cdiv(N, NORM_CHUNK)
    if nchunks == 0 or C == 0:
        if dgamma is not None:
            dgamma[...] = 0
        if dbeta is not None:
            dbeta[...] = 0
        return
    partial = <floating *> _aligned(_scratch(workspace, nchunks * 2 * C * sizeof(floating)
                                             + ALIGN))
    with nogil:
        for ch in prange(nchunks, num_threads=nthreads, schedule="static"):
            part = partial + ch * 2 * C
            for e in range(2 * C):
                part[e] = 0
            for n in range(ch * NORM_CHUNK, min(N, (ch + 1) * NORM_CHUNK)):
                for p in range(P):
                    for g in range(G):
                        m = mean[n, g]
                        r = rstd[n, g]
                        for k in range(K):
                            part[g * K + k] = part[g * K + k] + dy[n, p, g, k] * (
                                x[n, p, g, k] - m) * r
                            part[C + g * K + k] = part[C + g * K + k] + dy[n, p, g, k]
    if dgamma is not None:
        _sum_chunks(partial, nchunks, 2 * C, 1, C, C, &dgamma[0], nthreads)
    if dbeta is not None:
        _sum_chunks(partial + C, nchunks, 2 * C, 1, C, C, &dbeta[0], nthreads)


# ---------------------------------------------------------------------------------
# Batch normalization over rows (BatchNormalization: statistics per channel)
# ---------------------------------------------------------------------------------
# x is seen as (R, C): R rows (samples x positions), C channels. The per-channel sums
# over rows are cut into chunks of BN_CHUNK rows, each summed in row order into its own
# partial in double precision (runs of 8 rows summed in the dtype first: the template's
# header), and the partials added in chunk order: the same bits for any thread count.

cdef enum:
    BN_CHUNK = 256


cdef void _bn_partial_sums(const floating *x, int64_t R, int64_t C, double *partial,
                           int nthreads) noexcept nogil:
    """partial[ch, c] = sum over chunk ch's rows of x - x[0], partial[nchunks + ch, c] the
    sum of its squares."""
    cdef int64_t nchunks = _cdiv(R, BN_CHUNK), ch, r0
    for ch in prange(nchunks, num_threads=nthreads, schedule="static"):
        r0 = ch * BN_CHUNK
        if floating is float:
            cnnx_k.bn_sums_f32(x + r0 * C, min(R - r0, BN_CHUNK), C, x,
                               partial + ch * C, partial + (nchunks + ch) * C)
        else:
            cnnx_k.bn_sums_f64(x + r0 * C, min(R - r0, BN_CHUNK), C, x,
                               partial + ch * C, partial + (nchunks + ch) * C)


cdef void _bn_chunk_total(const double *partial, int64_t nchunks, int64_t C,
                          double *out) noexcept nogil:
    cdef int64_t ch, c
    for c in range(C):
        out[c] = 0
    for ch in range(nchunks):
        for c in range(C):
            out[c] = out[c] + partial[ch * C + c]


def batch_norm_moments(const floating[:, ::1] x, floating[::1] mean, floating[::1] var,
                       int nthreads, workspace):
    """The mean and (biased) variance of each column of x, in one pass: the sums of
    d = x - x[0] and of d^2 (shifted by the first row, so that the variance
    s2 / R - (s1 / R)^2 keeps its digits: the deviations are of the data's spread). Half
    the reads of the two-pass form (mean, then squared deviations from it)."""
    cdef int64_t R = x.shape[0], C = x.shape[1], c
    cdef int64_t nchunks = _cdiv(R, BN_CHUNK)
    cdef double *partial
    cdef double *total
    cdef double m1
    if C == 0:
        return
    if R == 0:
        mean[...] = 0
        var[...] = 0
        return
    partial = <double *> _aligned(_scratch(workspace, (2 * nchunks + 2) * C * sizeof(double)
                                           + ALIGN))
    total = partial + 2 * nchunks * C
    with nogil:
        _bn_partial_sums(&x[0, 0], R, C, partial, nthreads)
        _bn_chunk_total(partial, nchunks, C, total)
        _bn_chunk_total(partial + nchunks * C, nchunks, C, total + C)
        for c in range(C):
            m1 = total[c] / R
            mean[c] = <floating> (<double> x[0, c] + m1)
            var[c] = <floating> max(total[C + c] / R - m1 * m1, 0.0)


def batch_norm_affine(const floating[::1] mean, const floating[::1] var,
                      const floating[::1] gamma, const floating[::1] beta, double epsilon,
                      floating[::1] rstd, floating[:, ::1] affine):
    """Per channel: rstd = 1 / sqrt(var + epsilon), in double and rounded once; then, in
    the dtype, scale = rstd * gamma (rstd where gamma is None) and shift = -mean * scale
    (+ beta) into affine's two rows: batch_normalization as y = x * scale + shift. (The
    NumPy expressions it replaced gave the same bits; one call for the ten small array
    operations of each BatchNormalization's forward and backward.)"""
    cdef int64_t c, C = mean.shape[0]
    cdef bint has_gamma = gamma is not None, has_beta = beta is not None
    cdef floating s, t
    for c in range(C):
        rstd[c] = <floating> (1.0 / sqrt(<double> var[c] + epsilon))
        s = rstd[c] * gamma[c] if has_gamma else rstd[c]
        t = -mean[c] * s
        affine[0, c] = s
        affine[1, c] = t + beta[c] if has_beta else t


def batch_norm_apply(const floating[:, ::1] x, const floating[::1] scale,
                     const floating[::1] shift, floating[:, ::1] y, bint relu, int nthreads):
    """y = x * scale + shift per column (the normalization and its affine map, folded),
    then max(y, 0) when relu (NaN passes, as in every fused ReLU). Blocks of BN_CHUNK
    rows per work item."""
    cdef int64_t R = x.shape[0], C = x.shape[1], ch, r0
    if R == 0 or C == 0:
        return
    with nogil:
        for ch in prange(_cdiv(R, BN_CHUNK), num_threads=nthreads, schedule="static"):
            r0 = ch * BN_CHUNK
            if floating is float:
                cnnx_k.bn_apply_f32(&x[r0, 0], &scale[0], &shift[0], min(R - r0, BN_CHUNK),
                                    C, relu, &y[r0, 0])
            else:
                cnnx_k.bn_apply_f64(&x[r0, 0], &scale[0], &shift[0], min(R - r0, BN_CHUNK),
                                    C, relu, &y[r0, 0])


def batch_norm_grad(const floating[:, ::1] x, const floating[:, ::1] dy,
                    const floating[::1] mean, const floating[::1] rstd,
                    const floating[::1] gamma, bint training, floating[:, ::1] dx,
                    floating[::1] dgamma, floating[::1] dbeta,
                    const floating[:, ::1] relu_affine, int nthreads, workspace,
                    relu_source=None):
    """dbeta = sum dy, dgamma = sum dy * xhat (xhat = (x - mean) * rstd), per column;
    dx = gamma * rstd * (dy - (dbeta + xhat * dgamma) / R) with batch statistics
    (training), or gamma * rstd * dy with fixed ones. Any output may be None.
    With relu_affine (2 x C: batch_norm_apply's scale and shift, after which a ReLU was
    fused), dy is first masked where s * scale + shift <= 0 (the ReLU's input,
    recomputed), inside both passes: s is relu_source (a C-contiguous array of x's shape
    and dtype, a plain argument: a typed view's parsing code, in both dtypes, cost the
    wheel's size), or x. (Given the ReLU's output as relu_source, scale 1 and shift
    0 mask where it is not > 0, by the same code.) dx is computed as a * dy + b * (x -
    mean) + d
    with per-column a = gamma * rstd, b = -a * rstd * dgamma / R and d = -a * dbeta / R
    (from the double sums)."""
    cdef int64_t R = x.shape[0], C = x.shape[1], c, ch, r0
    cdef int64_t nchunks = _cdiv(R, BN_CHUNK)
    cdef double *partial
    cdef double *s1
    cdef double *s2
    cdef double av
    cdef floating *coef
    cdef bint has_gamma = gamma is not None
    cdef const floating *affine = NULL
    cdef const floating *mx = &x[0, 0] if R and C else NULL
    if C == 0:
        return
    if R == 0:
        if dgamma is not None:
            dgamma[...] = 0
        if dbeta is not None:
            dbeta[...] = 0
        return
    if relu_affine is not None:
        if relu_affine.shape[0] != 2 or relu_affine.shape[1] != C:
            raise ValueError(f"batch_norm_grad: relu_affine must be 2 x {C}, received "
                             f"{relu_affine.shape[0]} x {relu_affine.shape[1]}")
        affine = &relu_affine[0, 0]
        if relu_source is not None:
            if tuple(relu_source.shape) != (R, C) or relu_source.itemsize != sizeof(floating):
                raise ValueError(f"batch_norm_grad: relu_source must be {R} x {C} in x's "
                                 f"dtype, received {relu_source.shape} of "
                                 f"{relu_source.dtype}")
            mx = <const floating *> _address(relu_source, False, R * C * sizeof(floating))
    partial = <double *> _aligned(_scratch(
        workspace, (2 * nchunks + 2) * C * sizeof(double)
        + (3 + 2 * nthreads) * C * sizeof(floating) + 2 * ALIGN))
    s1 = partial + 2 * nchunks * C
    s2 = s1 + C
    coef = <floating *> _aligned(<char *> (s2 + C))   # a, b, d; then 2 x C a thread
    cdef floating *p = NULL
    with nogil, parallel(num_threads=nthreads):
        p = coef + (3 + 2 * threadid()) * C
        for ch in prange(nchunks, schedule="static"):
            r0 = ch * BN_CHUNK
            if floating is float:
                cnnx_k.bn_grad_sums_f32(&x[r0, 0], &dy[r0, 0], mx + r0 * C, affine,
                                        &mean[0], min(R - r0, BN_CHUNK), C,
                                        partial + ch * C, partial + (nchunks + ch) * C, p)
            else:
                cnnx_k.bn_grad_sums_f64(&x[r0, 0], &dy[r0, 0], mx + r0 * C, affine,
                                        &mean[0], min(R - r0, BN_CHUNK), C,
                                        partial + ch * C, partial + (nchunks + ch) * C, p)
    with nogil:   # the chunks' sums of g, then of g * (x - mean), as the moments' are
        _bn_chunk_total(partial, nchunks, C, s1)
        _bn_chunk_total(partial + nchunks * C, nchunks, C, s2)
        for c in range(C):
            s2[c] = s2[c] * rstd[c]      # sum dy * xhat
    if dbeta is not None:
        for c in range(C):
            dbeta[c] = <floating> s1[c]
    if dgamma is not None:
        for c in range(C):
            dgamma[c] = <floating> s2[c]
    if dx is None:
        return
    for c in range(C):
        av = (<double> gamma[c] if has_gamma else 1.0) * rstd[c]
        coef[c] = <floating> av
        coef[C + c] = <floating> (-av * rstd[c] * s2[c] / R) if training else 0
        coef[2 * C + c] = <floating> (-av * s1[c] / R) if training else 0
    with nogil:
        for ch in prange(nchunks, num_threads=nthreads, schedule="static"):
            r0 = ch * BN_CHUNK
            if floating is float:
                cnnx_k.bn_dx_f32(&x[r0, 0], &dy[r0, 0], mx + r0 * C, affine, &mean[0], coef,
                                 coef + C, coef + 2 * C, min(R - r0, BN_CHUNK), C,
                                 &dx[r0, 0])
            else:
                cnnx_k.bn_dx_f64(&x[r0, 0], &dy[r0, 0], mx + r0 * C, affine, &mean[0], coef,
                                 coef + C, coef + 2 * C, min(R - r0, BN_CHUNK), C,
                                 &dx[r0, 0])

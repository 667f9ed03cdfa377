# Included by _kernels.pyx (one extension module; see its header).
# A compiled inference program: a network's forward pass as one array of operations run
# in one call, with no Python between the layers

# ---------------------------------------------------------------------------------
# Program
#
# cnnx.models.program builds one from an inference plan whose every step has a compiled
# form (Layer.compiled_ops): the operations (a convolution, a dense product, a max pool,
# an elementwise activation, a residual sum) name their operands by buffer index; the
# buffers (arrays the caller allocates once; the inputs' are set at each run), the
# weights and one scratch area are fixed when the program is made. Each operation calls
# the same nogil function as its ops wrapper does, with the same thread count, so the
# program's results are the plan's, bit for bit.
# ---------------------------------------------------------------------------------

cimport cython

cdef enum:
    OP_CONV = 1
    OP_DENSE = 2
    OP_MAX_POOL = 3
    OP_RELU = 4
    OP_SIGMOID = 5
    OP_SOFTMAX = 6
    OP_ADD = 7
    OP_DEPTHWISE = 8
    OP_GLOBAL_AVERAGE = 9

PROGRAM_OPS = {"conv2d": OP_CONV, "dense": OP_DENSE, "max_pool2d": OP_MAX_POOL,
               "relu": OP_RELU, "sigmoid": OP_SIGMOID, "softmax": OP_SOFTMAX, "add": OP_ADD,
               "depthwise_conv2d": OP_DEPTHWISE, "global_average_pool2d": OP_GLOBAL_AVERAGE}

cdef struct ProgramOp:
    int kind
    int a, b, out             # buffer indices (b: add's second operand)
    Geometry g                # convolution and pooling windows
    int64_t n, i, f, size     # rows (batch); inputs and outputs of a row; elements
    int relu, nthreads
    const void *w             # kernel, bias (convolution and dense)
    const void *bias
    void *u                   # a Winograd convolution's transformed kernel, or NULL


cdef void *_address(array, bint writable, int64_t nbytes) except NULL:
    """The data of a C-contiguous array of at least nbytes (the caller keeps the array
    alive)."""
    cdef Py_buffer view
    PyObject_GetBuffer(array, &view, PyBUF_C_CONTIGUOUS | (PyBUF_WRITABLE if writable else 0))
    cdef void *p = view.buf
    cdef int64_t size = view.len
    PyBuffer_Release(&view)
    if size < max(nbytes, 1):   # (no program has zero-size arrays)
        raise ValueError(f"Program: an array of {size} bytes where {nbytes} are read or "
                         f"written")
    return p


cdef list _op_extents(kind, n, i, f, size, geometry):
    """Elements of an operation's operands a, b, out."""
    e = [0, 0, 0]
    if kind in ("conv2d", "depthwise_conv2d"):   # geometry: H W C OH OW KH KW ...
        H, W, C, OH, OW, KH, KW = geometry[:7]
        e[0] = n * H * W * C
        e[2] = n * OH * OW * f
        if (KH * KW * C != i) if kind == "conv2d" else (KH * KW != i or C != f):
            raise ValueError("Program: a convolution's kernel does not match its input")
    elif kind == "global_average_pool2d":   # i: the pixels
        e[0] = n * i * f
        e[2] = n * f
    elif kind == "max_pool2d":
        H, W, C, OH, OW = geometry[:5]
        e[0] = n * H * W * C
        e[2] = n * OH * OW * C
    elif kind in ("dense", "softmax"):
        e[0] = n * i
        e[2] = n * f
    else:
        e[0] = e[2] = size
        e[1] = size if kind == "add" else 0
    return e


cdef void _program_run(const ProgramOp *ops, int n_ops, void **buf, char *s,
                       floating *tag) noexcept nogil:
    """Every operation in order (tag only picks the dtype)."""
    cdef const ProgramOp *op
    cdef int k
    for k in range(n_ops):
        op = &ops[k]
        if op.kind == OP_CONV:
            _conv_forward(&op.g, <const floating *> buf[op.a], <const floating *> op.w,
                          op.f, <const floating *> op.bias, <floating *> buf[op.out], op.n,
                          op.relu, s, op.nthreads, op.u)
        elif op.kind == OP_DENSE:
            _dense_forward(<const floating *> buf[op.a], <const floating *> op.w,
                           <const floating *> op.bias, <floating *> buf[op.out], op.n,
                           op.i, op.f, op.relu, s, op.nthreads)
        elif op.kind == OP_MAX_POOL:
            _max_pool_forward(<const floating *> buf[op.a], <floating *> buf[op.out],
                              NULL, op.n, op.g.H, op.g.W, op.g.C,
                              op.g.OH, op.g.OW, op.g.KH, op.g.KW, op.g.sh, op.g.sw,
                              op.g.ph, op.g.pw, op.nthreads)
        elif op.kind == OP_RELU:
            _relu(<const floating *> buf[op.a], <floating *> buf[op.out], op.size,
                  op.nthreads)
        elif op.kind == OP_SIGMOID:
            _sigmoid(<const floating *> buf[op.a], <floating *> buf[op.out], op.size,
                     op.nthreads)
        elif op.kind == OP_SOFTMAX:
            _softmax(<const floating *> buf[op.a], <floating *> buf[op.out], op.n, op.f,
                     op.nthreads)
        elif op.kind == OP_ADD:
            _add(<const floating *> buf[op.a], <const floating *> buf[op.b],
                 <floating *> buf[op.out], op.size, op.relu, op.nthreads)
        elif op.kind == OP_DEPTHWISE:
            _depthwise_forward(&op.g, <const floating *> buf[op.a], <const floating *> op.w,
                               <const floating *> op.bias, <floating *> buf[op.out], op.n,
                               op.relu, op.nthreads)
        elif op.kind == OP_GLOBAL_AVERAGE:
            _global_average_pool(<const floating *> buf[op.a], <floating *> buf[op.out], op.n,
                                 op.i, op.f, op.nthreads)


cdef struct Chunks:
    # A chunked program's run (batch 0: not chunked).
    int64_t batch, chunk        # samples in all; in a chunk
    int nthreads
    int n_outputs
    int *outputs                # the output buffers' indices
    int64_t *sample_bytes       # a sample's bytes, by buffer index (inputs and outputs)
    void **whole                # the inputs' and outputs' whole arrays, by buffer index
    void **stage                # per thread: a partial chunk's inputs, then its outputs
    int64_t scratch_stride      # bytes from one thread's scratch to the next's


cdef void _program_chunks(const ProgramOp *ops, int n_ops, void **buf, int n_buffers,
                          int n_inputs, const Chunks *c, char *s,
                          floating *tag) noexcept nogil:
    """The operations (made for c.chunk samples, one thread each) over the batch, chunk
    by chunk, the chunks shared among the threads. buf: c.nthreads tables of n_buffers
    pointers, each thread's own buffers, where each chunk's slices of the inputs and
    outputs are set here. A last, partial chunk reads a zero-padded copy of its inputs
    and writes its outputs to the staging buffers, copied out after."""
    cdef int64_t q, r, at, n_chunks = _cdiv(c.batch, c.chunk)
    cdef int t, k, j
    cdef void **tb
    cdef void **st
    for q in prange(n_chunks, num_threads=c.nthreads, schedule="static"):
        t = threadid()
        tb = buf + t * n_buffers
        st = c.stage + t * (n_inputs + c.n_outputs)
        r = min(c.chunk, c.batch - q * c.chunk)
        for j in range(n_inputs + c.n_outputs):
            k = j if j < n_inputs else c.outputs[j - n_inputs]
            at = q * c.chunk * c.sample_bytes[k]
            tb[k] = <char *> c.whole[k] + at if r == c.chunk else st[j]
            if r < c.chunk and j < n_inputs:
                memcpy(st[j], <char *> c.whole[k] + at, r * c.sample_bytes[k])
                memset(<char *> st[j] + r * c.sample_bytes[k], 0,
                       (c.chunk - r) * c.sample_bytes[k])
        _program_run(ops, n_ops, tb, s + t * c.scratch_stride, tag)
        if r < c.chunk:
            for j in range(c.n_outputs):
                k = c.outputs[j]
                memcpy(<char *> c.whole[k] + q * c.chunk * c.sample_bytes[k],
                       st[n_inputs + j], r * c.sample_bytes[k])


cdef tuple _config_token():
    """What the kernels' choices depend on besides shapes: the SIMD table, the forced
    convolution algorithm and dense path. A program is valid while it is unchanged."""
    return (<uintptr_t> cnnx_k, _conv_algorithm, _dense_path)


@cython.auto_pickle(False)   # raw pointers: never pickled (nor is anything else)
cdef class Program:
    """A forward pass as one compiled call. Program(dtype, buffers, n_inputs, ops,
    allocate): buffers[k] is the array of buffer k (None for the first n_inputs, the
    inputs, given at each run); ops a list of (kind, a, b, out, n, i, f, size, geometry,
    relu, nthreads, kernel, bias) with kind a key of PROGRAM_OPS, n the rows (batch), i
    and f a row's inputs and outputs (a convolution's: KH*KW*C and F), size the elements
    of an elementwise operation, and geometry _geometry's 13 numbers (or ());
    allocate(nbytes) gives the scratch area. Every array is checked to hold what the
    operations read and write: a wrong program is refused, never run.

    Chunked (batch > 0): the ops are made for `chunk` samples and one thread each, and a
    run takes `batch` samples through them chunk by chunk, nthreads chunks at a time,
    each thread in buffers of its own (buffers[k] is thread 0's; allocate gives the
    others'), so that a chunk's tensors stay in its core's cache. The buffers named in
    `outputs` are arrays for the whole batch, as are the inputs. Every sample's result
    is the one the ops give on its chunk (a last, partial chunk padded with zeros)."""

    cdef ProgramOp *ops
    cdef void **buf           # the buffers' data (chunked: nthreads tables of them)
    cdef Chunks c
    cdef int n_ops, n_buffers, n_inputs
    cdef bint is_f32
    cdef char *s
    cdef object keep          # the buffers, weights and scratch the pointers point into
    cdef object input_bytes   # the bytes each input must hold
    cdef readonly object dtype, token

    def __cinit__(self):
        self.ops = NULL
        self.buf = self.c.whole = self.c.stage = NULL
        self.c.outputs = NULL
        self.c.sample_bytes = NULL

    def __dealloc__(self):
        free(self.ops)
        free(self.buf)
        free(self.c.whole)
        free(self.c.stage)
        free(self.c.outputs)
        free(self.c.sample_bytes)

    @property
    def batch(self):
        """Chunked: the samples a run takes; else 0."""
        return self.c.batch

    @property
    def chunk(self):
        """Chunked: the samples of a chunk; else 0."""
        return self.c.chunk

    def __init__(self, dtype, list buffers, int n_inputs, list ops, allocate,
                 int64_t batch=0, int64_t chunk=0, outputs=(), int nthreads=1):
        cdef int k, t, j
        cdef ProgramOp *op
        cdef Wino w
        cdef int64_t need = 0
        cdef Chunks *c = &self.c
        self.dtype = dtype
        self.is_f32 = dtype.itemsize == 4
        self.n_buffers = len(buffers)
        self.n_inputs = n_inputs
        self.n_ops = len(ops)
        c.batch, c.chunk = batch, chunk
        c.nthreads = max(1, nthreads) if batch else 1
        outputs = sorted(set(outputs)) if batch else []
        c.n_outputs = len(outputs)
        if batch and not 0 < chunk <= batch:
            raise ValueError(f"Program: chunks of {chunk} samples for a batch of {batch}")
        if batch and any(not n_inputs <= k < self.n_buffers for k in outputs):
            raise ValueError(f"Program: outputs {outputs} must name buffers after the "
                             f"{n_inputs} inputs, of {self.n_buffers}")
        self.ops = <ProgramOp *> calloc(max(1, self.n_ops), sizeof(ProgramOp))
        self.buf = <void **> calloc(max(1, c.nthreads * self.n_buffers), sizeof(void *))
        c.whole = <void **> calloc(max(1, self.n_buffers), sizeof(void *))
        c.stage = <void **> calloc(max(1, c.nthreads * (n_inputs + c.n_outputs)),
                                   sizeof(void *))
        c.outputs = <int *> calloc(max(1, c.n_outputs), sizeof(int))
        c.sample_bytes = <int64_t *> calloc(max(1, self.n_buffers), sizeof(int64_t))
        if (self.ops == NULL or self.buf == NULL or c.whole == NULL or c.stage == NULL
                or c.outputs == NULL or c.sample_bytes == NULL):
            raise MemoryError()
        self.keep = [buffers]
        # The bytes each buffer must hold, from the operations that read or write it.
        nbytes = [0] * self.n_buffers
        for spec in ops:
            kind, a, b, out, n, i, f, size, geometry = spec[:9]
            if kind not in PROGRAM_OPS:
                raise ValueError(f"Program: unknown operation {kind!r}")
            e = _op_extents(kind, n, i, f, size, geometry)
            for j, index in enumerate((a, b, out)):
                if index == -1 and (e[j] == 0 or j == 1):
                    continue
                if not 0 <= index < self.n_buffers or (j == 2 and index < n_inputs):
                    raise ValueError(f"Program: operation {kind!r} names buffer {index}, "
                                     f"of {self.n_buffers} ({n_inputs} inputs, read-only)")
                nbytes[index] = max(nbytes[index], e[j] * dtype.itemsize)
        if batch:   # inputs and outputs hold the whole batch: chunk-sized samples
            for k in list(range(n_inputs)) + outputs:
                if nbytes[k] % chunk:
                    raise ValueError(f"Program: buffer {k} of {nbytes[k]} bytes is not "
                                     f"{chunk} samples")
                c.sample_bytes[k] = nbytes[k] // chunk
                nbytes[k] = c.sample_bytes[k] * batch
            for j, k in enumerate(outputs):
                c.outputs[j] = k
        self.input_bytes = nbytes[:n_inputs]
        for k in range(n_inputs, self.n_buffers):
            self.buf[k] = c.whole[k] = _address(buffers[k], True, nbytes[k])
        for t in range(1, c.nthreads):   # the other threads' own buffers
            for k in range(n_inputs, self.n_buffers):
                if k not in outputs:
                    self.buf[t * self.n_buffers + k] = self._area(allocate, nbytes[k])
        for t in range(c.nthreads if batch else 0):
            for j, k in enumerate(list(range(n_inputs)) + outputs):
                c.stage[t * (n_inputs + c.n_outputs) + j] = self._area(
                    allocate, c.sample_bytes[k] * chunk)
        for k, spec in enumerate(ops):
            kind, a, b, out, n, i, f, size, geometry, relu, nthreads, kernel, bias = spec
            op = &self.ops[k]
            op.kind = PROGRAM_OPS[kind]
            op.a, op.b, op.out = a, b, out
            op.n, op.i, op.f, op.size = n, i, f, size
            # chunked: the threads share the chunks, not an operation
            op.relu, op.nthreads = relu, 1 if batch else max(1, nthreads)
            if geometry:
                (H, W, C, OH, OW, KH, KW, sh, sw, ph, pw, dh, dw) = geometry
                op.g = _geometry(H, W, C, OH, OW, KH, KW, sh, sw, ph, pw, dh, dw)
            self.keep.append((kernel, bias))
            op.w = op.bias = op.u = NULL
            if op.kind in (OP_CONV, OP_DENSE, OP_DEPTHWISE):
                op.w = _address(kernel, False, i * f * dtype.itemsize)
                if bias is not None:
                    op.bias = _address(bias, False, f * dtype.itemsize)
            if op.kind == OP_CONV and _forward_kind(&op.g, n, f, self.is_f32) == FWD_WINOGRAD:
                _wino_forward_plan(&w, &op.g, n, f, self.is_f32)
                op.u = _aligned(<char *> self._area(
                    allocate, _wino_u_bytes(&w, dtype.itemsize) + ALIGN))
            if op.kind == OP_CONV:
                need = max(need, _forward_scratch_bytes(&op.g, n, f, dtype.itemsize,
                                                        op.nthreads, self.is_f32))
            elif op.kind == OP_DENSE:
                need = max(need, _dense_scratch_bytes(n, i, f, dtype.itemsize, op.nthreads,
                                                      self.is_f32))
        # Each thread's scratch starts a whole number of cache lines after the last's.
        c.scratch_stride = _align(need) + ALIGN
        self.s = <char *> self._area(allocate, c.nthreads * c.scratch_stride)
        self.token = _config_token()
        self.transform_kernels()

    def transform_kernels(self):
        """Make the Winograd convolutions' transformed kernels from their kernels again:
        at the start, and whenever a kernel the program reads may have changed (the
        caller knows: cnnx.models.program)."""
        cdef int k
        cdef ProgramOp *op
        cdef Wino w
        cdef int nthreads
        for k in range(self.n_ops):
            op = &self.ops[k]
            if op.u == NULL:
                continue
            _wino_forward_plan(&w, &op.g, op.n, op.f, self.is_f32)
            nthreads = max(op.nthreads, self.c.nthreads)
            with nogil:
                if self.is_f32:
                    _wino_kernel_transform(&w, <const float *> op.w, <float *> op.u, nthreads)
                else:
                    _wino_kernel_transform(&w, <const double *> op.w, <double *> op.u,
                                           nthreads)

    cdef void *_area(self, allocate, int64_t nbytes) except NULL:
        """A new area of nbytes from allocate, kept alive with the program."""
        area = allocate(max(nbytes, 64))
        self.keep.append(area)
        return _address(area, True, nbytes)

    def current(self):
        """Whether the kernels' settings are still those the program was made under."""
        return self.token == _config_token()

    def run(self, list inputs):
        """Run every operation on the inputs (C-contiguous arrays of the program's
        dtype, in the shapes it was made for: the caller checks the shapes)."""
        cdef int k
        if len(inputs) != self.n_inputs:
            raise ValueError(f"Program.run: {self.n_inputs} inputs expected, "
                             f"received {len(inputs)}")
        if self.token != _config_token():   # its algorithms and transformed kernels
            raise ValueError("Program.run: the kernels' settings changed since the "
                             "program was made (current() is False); make it again")
        for k in range(self.n_inputs):
            if inputs[k].dtype != self.dtype:
                raise ValueError(f"Program.run: input {k} must be {self.dtype}, "
                                 f"received {inputs[k].dtype}")
            self.buf[k] = self.c.whole[k] = _address(inputs[k], False, self.input_bytes[k])
        with nogil:
            if self.c.batch and self.is_f32:
                _program_chunks(self.ops, self.n_ops, self.buf, self.n_buffers,
                                self.n_inputs, &self.c, self.s, <float *> NULL)
            elif self.c.batch:
                _program_chunks(self.ops, self.n_ops, self.buf, self.n_buffers,
                                self.n_inputs, &self.c, self.s, <double *> NULL)
            elif self.is_f32:
                _program_run(self.ops, self.n_ops, self.buf, self.s, <float *> NULL)
            else:
                _program_run(self.ops, self.n_ops, self.buf, self.s, <double *> NULL)

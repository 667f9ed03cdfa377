"""The compiled inference program (cnnx.models.program): a plan's forward pass as one call.
Its outputs are the step-by-step plan's, bit for bit; it follows the weights and the
kernels' settings; a plan it cannot express runs step by step; a wrong program is
refused, never run."""
import numpy as np
import pytest

import cnnx
from cnnx import _kernels, _memory, layers, ops
from cnnx.models.plan import Plan
from cnnx.models.program import CompiledPlan

from helpers import conv_algorithm

DTYPES = [np.float32, np.float64]


def stepwise(model, x):
    """The plan's outputs layer by layer, the compiled program switched off."""
    plan = Plan(model, False)
    plan.compiled = False
    return [o.copy() for o in plan.forward([x])]


def compiled_plan(model, x):
    """The compiled program predict_on_batch ran for x (None if it ran step by step)."""
    idle = model._plans.get(("inference", False, (x.shape,)))
    compiled = idle[-1].compiled if idle else None
    return compiled or None


def course(dtype, seed=0):
    """W1-W4's layer set: convolutions (valid and same, strided, dilated, with ReLU or
    linear), max pooling (valid and same), Flatten, Dropout, Dense with each activation
    the program has."""
    cnnx.utils.set_random_seed(seed)
    kw = {"dtype": dtype}
    return cnnx.Sequential([
        cnnx.Input((13, 12, 3)),
        layers.Conv2D(8, 3, activation="relu", **kw),
        layers.MaxPooling2D(2, padding="same", **kw),
        layers.Conv2D(16, 3, padding="same", **kw),
        layers.ReLU(**kw),
        layers.Conv2D(12, 2, dilation_rate=2, **kw),
        layers.Activation("sigmoid", **kw),
        layers.Conv2D(32, 3, strides=2, padding="same", activation="relu", **kw),
        layers.MaxPooling2D((2, 1), strides=1, **kw),
        layers.Flatten(**kw),
        layers.Dropout(0.5, **kw),
        layers.Dense(40, activation="relu", **kw),
        layers.Dense(20, **kw),
        layers.Activation("relu", **kw),
        layers.Dense(7, activation="softmax", **kw),
    ])


def residual(dtype, seed=0):
    """A ResNet block at inference: BatchNormalization folded into the convolutions,
    ReLUs fused into them and into the Add."""
    cnnx.utils.set_random_seed(seed)
    kw = {"dtype": dtype}
    inp = cnnx.Input((8, 8, 4))
    x = layers.Conv2D(8, 3, padding="same", use_bias=False, **kw)(inp)
    x = layers.Activation("relu", **kw)(layers.BatchNormalization(**kw)(x))
    y = layers.Conv2D(8, 3, padding="same", **kw)(x)
    y = layers.ReLU(**kw)(layers.BatchNormalization(**kw)(y))
    y = layers.BatchNormalization(**kw)(layers.Conv2D(8, 3, padding="same", **kw)(y))
    x = layers.Activation("relu", **kw)(layers.Add(**kw)([x, y]))
    x = layers.Flatten(**kw)(layers.MaxPooling2D(2, **kw)(x))
    out = layers.Dense(3, activation="softmax", **kw)(x)
    model = cnnx.Model(inp, out)
    rng = np.random.default_rng(seed)
    for layer in model.layers:   # statistics away from the initial 0 and 1
        if isinstance(layer, layers.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.moving_mean.assign(rng.standard_normal(c))
            layer.moving_variance.assign(rng.random(c) + 0.5)
            layer.gamma.assign(rng.random(c) + 0.5)
            layer.beta.assign(rng.standard_normal(c))
    return model


def mobile(dtype, seed=0):
    """A MobileNet block at inference: depthwise, separable and pointwise convolutions
    with BatchNormalization folded in and ReLUs fused, then global average pooling (with
    and without keepdims)."""
    cnnx.utils.set_random_seed(seed)
    kw = {"dtype": dtype}
    inp = cnnx.Input((9, 9, 3))
    x = layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False, **kw)(inp)
    x = layers.ReLU(**kw)(layers.BatchNormalization(**kw)(x))
    x = layers.DepthwiseConv2D(3, padding="same", use_bias=False, **kw)(x)
    x = layers.Activation("relu", **kw)(layers.BatchNormalization(**kw)(x))
    x = layers.DepthwiseConv2D(2, strides=2, activation="relu", **kw)(x)
    x = layers.SeparableConv2D(12, 3, padding="same", use_bias=False, **kw)(x)
    x = layers.ReLU(**kw)(layers.BatchNormalization(**kw)(x))
    x = layers.SeparableConv2D(10, 2, padding="same", activation="relu", **kw)(x)
    x = layers.Conv2D(16, 1, activation="relu", **kw)(x)
    x = layers.GlobalAveragePooling2D(keepdims=True, **kw)(x)
    x = layers.GlobalAveragePooling2D(**kw)(layers.Conv2D(6, 1, **kw)(x))
    out = layers.Dense(4, activation="sigmoid", **kw)(x)
    model = cnnx.Model(inp, out)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.moving_mean.assign(rng.standard_normal(c))
            layer.moving_variance.assign(rng.random(c) + 0.5)
    return model


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("make", [course, residual, mobile])
@pytest.mark.parametrize("batch", [1, 5])
def test_the_program_gives_the_plans_bits(make, dtype, batch, simd_path):
    model = make(dtype)
    shape = (batch,) + model.input_shape[1:]
    x = np.random.default_rng(1).standard_normal(shape).astype(dtype)
    y = model.predict_on_batch(x)
    compiled = compiled_plan(model, x)   # every layer compiled: one program
    assert [type(seg).__name__ for seg in compiled.segments] == ["Program"]
    np.testing.assert_array_equal(y, stepwise(model, x)[0])
    np.testing.assert_array_equal(model(x), y)                  # __call__ runs it too
    np.testing.assert_array_equal(model.predict(x, verbose=0), y)


def test_the_program_gives_the_plans_bits_under_each_conv_algorithm(conv_algorithm):
    model = residual(np.float32)
    x = np.random.default_rng(2).standard_normal((3, 8, 8, 4)).astype(np.float32)
    y = model.predict_on_batch(x)
    assert isinstance(compiled_plan(model, x), CompiledPlan)
    np.testing.assert_array_equal(y, stepwise(model, x)[0])


def test_the_program_gives_the_same_bits_for_any_thread_count(threads):
    model = course(np.float32)
    x = np.random.default_rng(3).standard_normal((4, 13, 12, 3)).astype(np.float32)
    outs = []
    for n in (1, 2, 3, 5):
        threads(n)
        outs.append(model.predict_on_batch(x))
        assert compiled_plan(model, x).threads == n     # remade for the new count
        np.testing.assert_array_equal(outs[-1], stepwise(model, x)[0])
    for other in outs[1:]:
        np.testing.assert_array_equal(outs[0], other)


def test_the_program_follows_the_weights(conv_algorithm):
    """Under each algorithm: Winograd's transformed kernels, which the program keeps,
    are made again after a change."""
    model = residual(np.float64)
    x = np.random.default_rng(4).standard_normal((2, 8, 8, 4))
    before = model.predict_on_batch(x)
    program = compiled_plan(model, x)
    conv, bn = model.layers[1], model.layers[2]
    # In place: a folded normalization's statistics, a kernel (Variable.assign).
    bn.moving_mean.assign(bn.moving_mean.value + 0.5)
    conv.kernel.assign(conv.kernel.value * 2)
    after = model.predict_on_batch(x)
    assert compiled_plan(model, x) is program and not np.array_equal(after, before)
    np.testing.assert_array_equal(after, stepwise(model, x)[0])
    # A weight whose array is replaced: the program is remade.
    dense = model.layers[-1]
    dense.kernel.value = dense.kernel.value + 1.0
    replaced = model.predict_on_batch(x)
    assert compiled_plan(model, x) is not program
    np.testing.assert_array_equal(replaced, stepwise(model, x)[0])
    # Training in between (the optimizer updates the arrays in place).
    model.compile("sgd", "categorical_crossentropy")
    model.fit(x, np.eye(3)[[0, 1]], epochs=1, verbose=0)
    np.testing.assert_array_equal(model.predict_on_batch(x), stepwise(model, x)[0])


def test_the_program_is_remade_when_the_kernels_settings_change():
    model = course(np.float32)
    x = np.random.default_rng(5).standard_normal((1, 13, 12, 3)).astype(np.float32)
    model.predict_on_batch(x)
    program = compiled_plan(model, x)
    with conv_algorithm("gemm"):
        assert not program.current()
        y = model.predict_on_batch(x)
        assert compiled_plan(model, x) is not program
        np.testing.assert_array_equal(y, stepwise(model, x)[0])
        # Run as it is, it would compute with what it made under the old settings.
        with pytest.raises(ValueError, match="settings changed"):
            program.segments[0].run([x])


def test_a_layer_the_program_lacks_runs_in_python_between_programs():
    cnnx.utils.set_random_seed(0)
    model = cnnx.Sequential([cnnx.Input((6, 6, 2)), layers.Conv2D(4, 3),
                             layers.LeakyReLU(), layers.Flatten(), layers.Dense(2)])
    x = np.random.default_rng(6).standard_normal((2, 6, 6, 2)).astype(np.float32)
    np.testing.assert_array_equal(model.predict_on_batch(x), stepwise(model, x)[0])
    kinds = [type(seg).__name__ for seg in compiled_plan(model, x).segments]
    assert kinds == ["Program", "tuple", "Program"]
    np.testing.assert_array_equal(model.predict_on_batch(x), stepwise(model, x)[0])

    # First and in a residual branch: Rescaling, LeakyReLU (two inputs for one Add).
    cnnx.utils.set_random_seed(1)
    inp = cnnx.Input((7, 7, 3))
    a = layers.Conv2D(5, 3, padding="same")(layers.Rescaling(1 / 255, offset=-0.5)(inp))
    b = layers.LeakyReLU(0.1)(layers.Conv2D(5, 1)(a))
    out = layers.Dense(3)(layers.Flatten()(layers.Add()([a, b])))
    model = cnnx.Model(inp, out)
    x = np.random.default_rng(7).random((3, 7, 7, 3)).astype(np.float32) * 255
    np.testing.assert_array_equal(model.predict_on_batch(x), stepwise(model, x)[0])
    assert isinstance(compiled_plan(model, x), CompiledPlan)


def test_a_plan_the_program_cannot_read_runs_step_by_step():
    # A step in Python whose output is in another dtype: the layers after it compute in
    # float64 step by step, which a float32 program would not.
    class ToDouble(layers.Layer):
        def forward(self, ctx, inputs, training=False):  # noqa: ARG002
            return inputs.astype(np.float64)

    cnnx.utils.set_random_seed(0)
    model = cnnx.Sequential([cnnx.Input((4,)), layers.Dense(3), ToDouble(),
                             layers.Dense(2)])
    x = np.random.default_rng(8).standard_normal((2, 4)).astype(np.float32)
    np.testing.assert_array_equal(model.predict_on_batch(x), stepwise(model, x)[0])
    assert compiled_plan(model, x) is None

    class Doubled(layers.Dense):   # overrides forward, not compiled_ops: not trusted
        def forward(self, ctx, inputs, training=False):
            return 2 * super().forward(ctx, inputs, training)

    model = cnnx.Sequential([cnnx.Input((3,)), Doubled(2)])
    x = np.ones((1, 3), np.float32)
    np.testing.assert_array_equal(model.predict_on_batch(x),
                                  2 * (x @ model.layers[0].kernel.value))
    assert compiled_plan(model, x) is None


def test_an_output_that_is_the_input_comes_back_whole():
    model = cnnx.Sequential([cnnx.Input((2, 3)), layers.Flatten(), layers.Dropout(0.3)])
    x = np.arange(12, dtype=np.float32).reshape(2, 2, 3)
    y = model.predict_on_batch(x)
    assert isinstance(compiled_plan(model, x), CompiledPlan)
    np.testing.assert_array_equal(y, x.reshape(2, 6))
    x[0, 0, 0] = 100   # the result is a copy
    assert y[0, 0] == 0


def _dense_program(out_rows=1, in_rows=1, n_inputs=1, dtype=np.float32, kind="dense"):
    kernel = np.ones((4, 3), dtype)
    buffers = [None] * n_inputs + [np.empty((out_rows, 3), dtype)]
    op = (kind, 0, -1, n_inputs, in_rows, 4, 3, 0, (), 0, 1, kernel, None)
    return _kernels.Program(np.dtype(dtype), buffers, n_inputs, [op],
                            lambda n: np.empty(n, np.uint8))


def test_a_wrong_program_is_refused():
    program = _dense_program()
    x = np.ones((1, 4), np.float32)
    program.run([x])
    with pytest.raises(ValueError, match="bytes where 48 are read"):
        _dense_program(in_rows=4)            # the output buffer holds one row
    with pytest.raises(ValueError, match="unknown operation"):
        _dense_program(kind="gemm")
    with pytest.raises(ValueError, match="names buffer"):
        _kernels.Program(np.dtype(np.float32), [None, None], 1,
                         [("relu", 0, -1, 0, 1, 1, 1, 4, (), 0, 1, None, None)],
                         lambda n: np.empty(n, np.uint8))   # writes into its input
    with pytest.raises(ValueError, match="1 inputs expected"):
        program.run([x, x])
    with pytest.raises(ValueError, match="must be float32"):
        program.run([x.astype(np.float64)])
    with pytest.raises(ValueError, match="bytes where 16 are read"):
        program.run([np.ones((1, 2), np.float32)])
    with pytest.raises(ValueError, match="not C-contiguous"):
        program.run([np.ones((4, 2), np.float32).T[:1]])


def chunked(monkeypatch, chunk):
    """Programs run in chunks of `chunk` samples from batches of 2 * chunk (the rule's
    other limits lifted)."""
    from cnnx.models import program
    monkeypatch.setattr(program, "_CHUNK_ABOVE", 0)
    monkeypatch.setattr(program, "_CHUNK_SHARES", 1)
    monkeypatch.setattr(program, "_CHUNK_MAX", chunk)
    monkeypatch.setattr(program, "_CHUNK_MAX_INTENSITY", float("inf"))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("make", [course, residual, mobile])
def test_a_chunked_program_gives_each_chunk_the_step_by_step_bits(make, dtype, monkeypatch,
                                                                   threads):
    """Chunks of 4 samples over a batch of 10: each full chunk has the step-by-step
    plan's bits on it, the last two samples those of their chunk padded with zeros; the
    same bits for 1, 2 and 3 threads (3: a thread left with no chunk)."""
    chunked(monkeypatch, 4)
    model = make(dtype)
    shape = tuple(model.inputs[0].shape[1:])
    x = np.random.default_rng(3).standard_normal((10,) + shape).astype(dtype)
    padded = np.zeros((4,) + shape, dtype)
    padded[:2] = x[8:]
    want = np.concatenate([stepwise(model, x[:4])[0], stepwise(model, x[4:8])[0],
                           stepwise(model, padded)[0][:2]])
    for n in (1, 2, 3):
        threads(n)
        y = model.predict_on_batch(x)
        program = compiled_plan(model, x).segments[0]
        assert (program.batch, program.chunk) == (10, 4)
        np.testing.assert_array_equal(y.view(np.uint8), want.view(np.uint8))
    np.testing.assert_array_equal(model.predict_on_batch(x[:8]), want[:8])   # no padding
    # A sample's bits do not depend on the others in its chunk (nor on the padding).
    np.testing.assert_array_equal(model.predict_on_batch(x[:7]), want[:7])


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_dense_kernel_heavier_than_a_chunk_runs_on_the_whole_batch(dtype, monkeypatch,
                                                                     threads):
    """The convolutions run in chunks of 4; the dense layers, whose 200 x 256 kernel
    outweighs a chunk's tensors, run after them on all 10 samples at once (in chunks the
    kernel would be read once a chunk): the step-by-step plan's bits on any threads."""
    chunked(monkeypatch, 4)
    cnnx.utils.set_random_seed(0)
    model = cnnx.Sequential([
        cnnx.Input((12, 12, 3)), layers.Conv2D(8, 3, activation="relu", dtype=dtype),
        layers.MaxPooling2D(2, dtype=dtype), layers.Flatten(dtype=dtype),
        layers.Dense(256, activation="relu", dtype=dtype),
        layers.Dense(3, activation="softmax", dtype=dtype)])
    x = np.random.default_rng(4).standard_normal((10, 12, 12, 3)).astype(dtype)
    want = stepwise(model, x)[0]
    for n in (1, 2, 3):
        threads(n)
        y = model.predict_on_batch(x)
        head, tail = compiled_plan(model, x).segments
        assert (head.batch, head.chunk, tail.batch) == (10, 4, 0)
        np.testing.assert_array_equal(y.view(np.uint8), want.view(np.uint8))


def test_a_tail_that_reads_the_head_stays_in_chunks():
    """_tail_start splits at the first heavy dense product only where the ops after it
    read nothing the ops before it wrote but that product's input."""
    from cnnx.models import program as P
    kernel = np.ones((100, 50), np.float32)   # 20 KB
    dense = ("dense", 2, -1, 3, 4, 100, 50, 0, (), 0, 1, kernel, None)
    relu = ("relu", 0, -1, 1, 4, 100, 100, 400, (), 0, 1, None, None)
    copy = ("relu", 1, -1, 2, 4, 100, 100, 400, (), 0, 1, None, None)
    assert P._tail_start([relu, copy, dense], 1, [3], 10_000) == 2
    assert P._tail_start([relu, copy, dense], 1, [3], 30_000) == 3    # light: no tail
    assert P._tail_start([relu, copy, dense], 1, [1, 3], 10_000) == 3   # head output
    add = ("add", 3, 1, 4, 4, 50, 50, 200, (), 0, 1, None, None)
    assert P._tail_start([relu, copy, dense, add], 1, [4], 10_000) == 4  # reads buffer 1
    assert P._tail_start([dense], 1, [3], 10_000) == 1   # nothing before it


def test_the_chunk_rule_reads_shapes_alone():
    """Large batches of a network with little arithmetic per byte run in chunks, as
    large as the cache budget and the 16 shares allow; small batches and compute-bound
    networks run whole."""
    from cnnx.models import program as P
    model = cnnx.Sequential([cnnx.Input((64, 64, 3)),
                             layers.Conv2D(32, 3, activation="relu"),
                             layers.MaxPooling2D(2), layers.Flatten(), layers.Dense(10)])
    plan = Plan(model, False)

    def rule(batch, dtype=np.float32):
        b = P._Builder(np.dtype(dtype), [(batch, 64, 64, 3)], 1)
        for step in plan.steps:
            assert b.step(step, step.layer.compiled_ops(step.ctx, np.dtype(np.float32)))
        return P._chunk_size(b, batch)
    # 48 KB of input, 484 KB after the convolution, 121 KB pooled: 653 KB a sample
    assert rule(256) == 4        # 4 x 653 KB within 3 MB
    assert rule(64) == 4
    assert rule(32) == 2         # 16 shares
    assert rule(16) == 0         # 16 x 653 KB: under 12 MB, whole
    deep = cnnx.Sequential([cnnx.Input((16, 16, 256)), layers.Conv2D(256, 3)])
    plan = Plan(deep, False)
    b = P._Builder(np.dtype(np.float32), [(256, 16, 16, 256)], 1)
    assert b.step(plan.steps[0], plan.steps[0].layer.compiled_ops(plan.steps[0].ctx,
                                                                  np.dtype(np.float32)))
    assert P._chunk_size(b, 256) == 0    # 2304 multiply-adds a byte: whole


@pytest.mark.parametrize("dilation,chunk", [(1, 0), (2, 2)])
def test_a_chunk_keeps_the_winograd_layers(dilation, chunk):
    """A 3x3 layer that runs Winograd on the whole batch (8 x 8 32 -> 32 on 32 images:
    128 tiles) but would not on a chunk (2 images, 8 tiles: 8192 tile x C x F products)
    keeps the batch whole; dilated, it runs direct either way and the batch goes in
    chunks of 2 (a sample's 1 MB of 4096 channels)."""
    from cnnx.models import program as P
    model = cnnx.Sequential([
        cnnx.Input((8, 8, 32)),
        layers.Conv2D(32, 3, padding="same", dilation_rate=dilation, activation="relu"),
        layers.Conv2D(4096, 1, activation="relu"), layers.GlobalAveragePooling2D(),
        layers.Dense(10)])
    plan = Plan(model, False)
    b = P._Builder(np.dtype(np.float32), [(32, 8, 8, 32)], 1)
    for step in plan.steps:
        assert b.step(step, step.layer.compiled_ops(step.ctx, np.dtype(np.float32)))
    assert P._chunk_size(b, 32) == chunk


def test_a_wrong_chunked_program_is_refused():
    allocate = lambda n: np.empty(n, np.uint8)   # noqa: E731
    kernel = np.ones((4, 3), np.float32)
    op = ("dense", 0, -1, 1, 2, 4, 3, 0, (), 0, 1, kernel, None)
    made = lambda out, **kw: _kernels.Program(   # noqa: E731
        np.dtype(np.float32), [None, out], 1, [op], allocate, **kw)
    program = made(np.empty((5, 3), np.float32), batch=5, chunk=2, outputs=[1],
                   nthreads=2)
    x = np.arange(20, dtype=np.float32).reshape(5, 4)
    program.run([x])
    with pytest.raises(ValueError, match="bytes where 80 are read"):
        program.run([x[:4]])                                 # the whole batch's input
    with pytest.raises(ValueError, match="bytes where 60 are read"):
        made(np.empty((4, 3), np.float32), batch=5, chunk=2, outputs=[1])
    with pytest.raises(ValueError, match="chunks of 6 samples for a batch of 5"):
        made(np.empty((5, 3), np.float32), batch=5, chunk=6, outputs=[1])
    with pytest.raises(ValueError, match="must name buffers after the 1 inputs"):
        made(np.empty((5, 3), np.float32), batch=5, chunk=2, outputs=[0])


def test_the_reference_kernels_suspend_the_program():
    # testing.reference_kernels swaps the ops functions for their twins: a program,
    # which bypasses them, must not run inside (the benchmarks' NumPy side).
    model = course(np.float64)
    x = np.random.default_rng(7).standard_normal((2, 13, 12, 3))
    y = model.predict_on_batch(x)
    assert isinstance(compiled_plan(model, x), CompiledPlan)
    calls = []
    with cnnx.testing.reference_kernels():
        twin = cnnx.ops.conv2d
        cnnx.ops.conv2d = lambda *a, **k: calls.append(1) or twin(*a, **k)
        reference = model.predict_on_batch(x)
    assert len(calls) == 4     # the four convolutions, on the twin (restored on the way out)
    np.testing.assert_allclose(reference, y, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(model.predict_on_batch(x), y)


def test_a_folded_separable_convolution_follows_its_normalization():
    model = mobile(np.float32)
    x = np.random.default_rng(9).standard_normal((2, 9, 9, 3)).astype(np.float32)
    before = model.predict_on_batch(x)
    separable = next(layer for layer in model.layers
                     if isinstance(layer, layers.SeparableConv2D))
    bn = model.layers[model.layers.index(separable) + 1]
    assert isinstance(bn, layers.BatchNormalization)
    bn.moving_variance.assign(bn.moving_variance.value * 4)
    separable.depthwise_kernel.assign(separable.depthwise_kernel.value * 0.5)
    after = model.predict_on_batch(x)
    assert not np.array_equal(after, before)
    np.testing.assert_array_equal(after, stepwise(model, x)[0])


@pytest.mark.parametrize("channels", [3, 16, 20])
def test_max_pooling_without_indices_keeps_the_plans_bits(channels, simd_path):
    """The program pools without recording the argmax (no backward pass reads it): its
    maxima are the step-by-step plan's to the bit, ties and NaN included (the first NaN
    of a window wins, with its payload), on the vector rows (3 and 16 channels) and the
    plain loop (20)."""
    model = cnnx.Sequential([cnnx.Input((6, 7, channels)),
                             layers.MaxPooling2D(2, padding="same"),
                             layers.MaxPooling2D((2, 1), strides=1)])
    rng = np.random.default_rng(channels)
    x = rng.integers(-2, 3, (2, 6, 7, channels)).astype(np.float32)   # many ties
    bits = x.view(np.uint32)
    nan = rng.random(x.shape) < 0.1
    bits[nan] = 0x7FC00000 | rng.integers(1, 1 << 22, nan.sum()).astype(np.uint32)
    plan = Plan(model, False)    # the plan itself: predict refuses NaN inputs
    y = plan.forward([x])[0]
    assert [type(s).__name__ for s in plan.compiled.segments] == ["Program"]
    assert np.isnan(y).any()
    np.testing.assert_array_equal(y.view(np.uint32), stepwise(model, x)[0].view(np.uint32))


def test_a_folded_normalization_is_folded_again_only_when_a_weight_changed(monkeypatch):
    """The program folds a BatchNormalization into the convolution before it once, and
    again only after one of their weights changed: by assign, by the optimizer, by the
    moving statistics of a training step, or in place followed by touch(); each time
    with the step-by-step plan's bits."""
    model = residual(np.float32)
    x = np.random.default_rng(6).standard_normal((2, 8, 8, 4)).astype(np.float32)
    model.predict_on_batch(x)
    calls = []
    original = layers.BatchNormalization.inference_affine
    monkeypatch.setattr(layers.BatchNormalization, "inference_affine",
                        lambda self, dtype: calls.append(self) or original(self, dtype))
    folded = len(compiled_plan(model, x).refresh)
    assert folded >= 2
    for _ in range(3):
        model.predict_on_batch(x)
    assert calls == []                      # nothing changed: no fold
    bn = next(m for m in model.layers if isinstance(m, layers.BatchNormalization))
    bn.moving_variance.value[...] *= 2      # in place, recorded by touch()
    bn.moving_variance.touch()
    y = model.predict_on_batch(x)
    assert calls == [bn]                    # the one op that reads it
    np.testing.assert_array_equal(y, stepwise(model, x)[0])
    calls.clear()
    bn.epsilon = 0.5                        # a changed epsilon counts too
    np.testing.assert_array_equal(model.predict_on_batch(x), stepwise(model, x)[0])
    conv = next(m for m in model.layers if isinstance(m, layers.Conv2D))
    cnnx.optimizers.SGD(0.1).apply([np.ones_like(conv.kernel.value)], [conv.kernel])
    calls.clear()
    y = model.predict_on_batch(x)           # the optimizer's update of one kernel
    assert calls == [bn]
    np.testing.assert_array_equal(y, stepwise(model, x)[0])
    model.compile("sgd", "categorical_crossentropy")
    model.fit(x, np.eye(3)[[0, 1]], epochs=1, verbose=0)
    np.testing.assert_array_equal(model.predict_on_batch(x), stepwise(model, x)[0])
    calls.clear()
    model.predict_on_batch(x)
    assert calls == []
    stamp = layers.Variable.last_change
    bn.gamma.value = bn.gamma.value * 3     # a new array: a change of its own
    assert layers.Variable.last_change != stamp
    y = model.predict_on_batch(x)
    assert calls == [bn]
    np.testing.assert_array_equal(y, stepwise(model, x)[0])
    calls.clear()
    other = layers.Variable(np.zeros(3), "unrelated")    # any change makes runs look
    other.assign(np.ones(3))                              # again, and find nothing
    model.predict_on_batch(x)
    assert calls == []


def test_the_buffers_kept_between_calls_start_on_a_cache_line():
    # The program's buffers, and each layer's buffers in a training plan: _memory.empty.
    model = residual(np.float32)
    x = np.random.default_rng(3).standard_normal((3, 8, 8, 4)).astype(np.float32)
    model.predict_on_batch(x)
    compiled = compiled_plan(model, x)
    outputs = [buf for buf, _ in compiled.outputs if isinstance(buf, np.ndarray)]
    assert outputs and all(buf.ctypes.data % 64 == 0 for buf in outputs)
    model.compile(optimizer="sgd", loss="mse")
    model.train_on_batch(x, np.zeros((3,) + model.output_shape[1:], np.float32))
    kept = [buf for key, plan in model._plans.items() if key[0] is True
            for step in plan.steps for buf in step.ctx.buffers.values()]
    assert len(kept) > 10
    assert [buf.ctypes.data % 64 for buf in kept] == [0] * len(kept)
    # and the kernels' workspace, grown
    assert ops._workspace(ops._workspace(0).size + 1000).ctypes.data % 64 == 0


@pytest.mark.parametrize("shape", [(3, 5), (0, 4), (7,), ()])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32])
def test_aligned_empty_is_numpys_empty_on_a_cache_line(shape, dtype):
    a = _memory.empty(shape, dtype)
    assert a.shape == shape and a.dtype == dtype
    assert a.ctypes.data % 64 == 0 or a.size == 0   # (no data: any address)
    assert a.flags.c_contiguous and a.flags.writeable
    a[...] = 1
    assert a.sum() == a.size

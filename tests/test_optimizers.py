"""Optimizer steps against Keras's formulas, on values worked out by hand, and the
compiled updates against their NumPy twins."""
import numpy as np
import pytest

import cnnx
from cnnx import _kernels, optimizers
from cnnx import _reference as ref
from cnnx.layers import Variable


def two_steps(opt, w=1.0, g=0.5):
    var = Variable(np.array([w]), "w")
    values = []
    for _ in range(2):
        opt.apply([np.array([g])], [var])
        values.append(float(var.value[0]))
    return values


def test_sgd_plain_default_learning_rate():
    assert two_steps(optimizers.SGD())[0] == pytest.approx(1 - 0.01 * 0.5)


def test_sgd_momentum():
    # m = 0.9 m - 0.1 g; w += m:  m1 = -0.05, w1 = 0.95;  m2 = -0.095, w2 = 0.855
    assert two_steps(optimizers.SGD(0.1, momentum=0.9)) == pytest.approx([0.95, 0.855])


def test_sgd_nesterov():
    # w += 0.9 m - 0.1 g:  w1 = 1 - 0.045 - 0.05 = 0.905;  w2 = 0.905 - 0.0855 - 0.05
    assert two_steps(optimizers.SGD(0.1, momentum=0.9, nesterov=True)) == pytest.approx(
        [0.905, 0.7695])


def test_adam_first_step():
    # m = 0.05, v = 0.00025, lr_t = 0.1 sqrt(0.001) / 0.1 = 0.0316227766
    # w = 1 - 0.0316227766 * 0.05 / (0.0158113883 + 1e-7) = 0.9000006324
    w1, w2 = two_steps(optimizers.Adam(0.1))
    assert w1 == pytest.approx(0.9000006324, abs=1e-9)
    # step 2: m = 0.095, v = 0.00049975, lr_t = 0.1 sqrt(0.001999) / 0.19
    m, v = 0.095, 0.00049975
    lr_t = 0.1 * np.sqrt(1 - 0.999 ** 2) / (1 - 0.9 ** 2)
    assert w2 == pytest.approx(w1 - lr_t * m / (np.sqrt(v) + 1e-7), abs=1e-12)


def test_adamw_decays_before_the_adam_step():
    # w = 1 - 1 * 0.004 * 0.1 = 0.9996, then the Adam step of 0.0999993676
    assert two_steps(optimizers.AdamW(0.1))[0] == pytest.approx(0.8996006324, abs=1e-9)


def test_rmsprop_epsilon_inside_the_root():
    # v = 0.1 * 0.25 = 0.025; w = 1 - 0.1 * 0.5 / sqrt(0.025 + 1e-7) = 0.6837728...
    assert two_steps(optimizers.RMSprop(0.1))[0] == pytest.approx(
        1 - 0.05 / np.sqrt(0.0250001), abs=1e-12)
    assert two_steps(optimizers.RMSprop(0.1))[0] == pytest.approx(0.68377286, abs=1e-8)


def test_adagrad():
    # acc = 0.1 + 0.25 = 0.35; w = 1 - 0.05 / sqrt(0.3500001) = 1 - 0.0845154134
    assert two_steps(optimizers.Adagrad(0.1))[0] == pytest.approx(0.9154845866, abs=1e-9)


def test_clipping():
    var = Variable(np.array([0.0, 0.0]), "w")
    optimizers.SGD(1.0, clipvalue=0.5).apply([np.array([2.0, -0.1])], [var])
    np.testing.assert_allclose(var.value, [-0.5, 0.1])
    var = Variable(np.array([0.0, 0.0]), "w")
    optimizers.SGD(1.0, clipnorm=1.0).apply([np.array([3.0, 4.0])], [var])
    np.testing.assert_allclose(var.value, [-0.6, -0.8])
    a, b = Variable(np.zeros(1), "a"), Variable(np.zeros(1), "b")
    optimizers.SGD(1.0, global_clipnorm=1.0).apply([np.array([3.0]), np.array([4.0])], [a, b])
    np.testing.assert_allclose([a.value[0], b.value[0]], [-0.6, -0.8])


def test_schedules():
    s = optimizers.schedules
    assert s.ExponentialDecay(0.1, 10, 0.5)(10) == pytest.approx(0.05)
    assert s.ExponentialDecay(0.1, 10, 0.5, staircase=True)(15) == pytest.approx(0.05)
    p = s.PiecewiseConstantDecay([10, 20], [1.0, 0.5, 0.1])
    assert [p(0), p(10), p(11), p(21)] == [1.0, 1.0, 0.5, 0.1]
    c = s.CosineDecay(1.0, 100)
    assert c(0) == 1.0 and c(50) == pytest.approx(0.5) and c(100) == pytest.approx(0.0)
    opt = optimizers.SGD(s.ExponentialDecay(0.1, 1, 0.5))
    var = Variable(np.array([0.0]), "w")
    opt.apply([np.array([1.0])], [var])   # lr(0) = 0.1
    opt.apply([np.array([1.0])], [var])   # lr(1) = 0.05
    assert var.value[0] == pytest.approx(-0.15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_updates_match_reference(dtype, rng):
    n = 1000
    w, g, m, v = (rng.standard_normal(n).astype(dtype) for _ in range(4))
    v = np.abs(v)
    tol = dict(rtol=1e-5) if dtype == np.float32 else dict(rtol=1e-12)
    for momentum, nesterov in ((0.0, False), (0.9, False), (0.9, True)):
        ww, mm = w.copy(), m.copy()
        _kernels.sgd_update(ww, g, mm, 0.1, momentum, nesterov, 2)
        rw, rm = ref.sgd_update(w, g, m, 0.1, momentum, nesterov)
        np.testing.assert_allclose(ww, rw, **tol)
        np.testing.assert_allclose(mm, rm, **tol)
    ww, mm, vv = w.copy(), m.copy(), v.copy()
    _kernels.adam_update(ww, g, mm, vv, 0.01, 0.9, 0.999, 1e-7, 0.001, 2)
    for got, want in zip((ww, mm, vv), ref.adam_update(w, g, m, v, 0.01, 0.9, 0.999, 1e-7,
                                                        0.001)):
        np.testing.assert_allclose(got, want, **tol)
    ww, vv, mm = w.copy(), v.copy(), m.copy()
    _kernels.rmsprop_update(ww, g, vv, mm, 0.01, 0.9, 0.5, 1e-7, 2)
    for got, want in zip((ww, vv, mm), ref.rmsprop_update(w, g, v, m, 0.01, 0.9, 0.5, 1e-7)):
        np.testing.assert_allclose(got, want, **tol)
    ww, aa = w.copy(), v.copy()
    _kernels.adagrad_update(ww, g, aa, 0.01, 1e-7, 2)
    for got, want in zip((ww, aa), ref.adagrad_update(w, g, v, 0.01, 1e-7)):
        np.testing.assert_allclose(got, want, **tol)


def test_optimizer_names_and_errors():
    assert isinstance(optimizers.get("adam"), optimizers.Adam)
    assert optimizers.get("sgd").learning_rate == 0.01
    with pytest.raises(ValueError, match="Unknown optimizer 'adamm'"):
        optimizers.get("adamm")
    with pytest.raises(ValueError, match="at most one of clipnorm"):
        optimizers.SGD(clipnorm=1, clipvalue=1)
    with pytest.raises(ValueError, match="`learning_rate` must be a non-negative"):
        optimizers.Adam(-1)


def test_apply_gradients_takes_keras_pairs():
    a, b = Variable(np.array([1.0]), "a"), Variable(np.array([2.0]), "b")
    opt = optimizers.SGD(0.5)
    opt.apply_gradients([(np.array([1.0]), a), (np.array([-2.0]), b)])
    assert (a.value[0], b.value[0], opt.iterations) == (0.5, 3.0, 1)


def test_update_ops_check_their_arrays():
    from cnnx import ops
    w = np.zeros(4, np.float32)
    with pytest.raises(ValueError, match=r"sgd_update: `g` must be a contiguous float32 "
                                         r"array of shape \(4,\), received float64"):
        ops.sgd_update(w, np.zeros(4), w[:0], 0.1)
    with pytest.raises(ValueError, match="adam_update: `m` overlaps `w`"):
        ops.adam_update(w, np.zeros(4, np.float32), w, np.zeros(4, np.float32), 0.1, 0.9,
                        0.999, 1e-7)
    with pytest.raises(TypeError, match="`w` must be a writeable, contiguous 1-D"):
        ops.adagrad_update(np.zeros((2, 2), np.float32), w, w, 0.1, 1e-7)


def _sequential_net():
    return cnnx.Sequential([
        cnnx.Input((7, 7, 2)),
        cnnx.layers.Conv2D(4, 3, activation="relu", dtype="float64"),
        cnnx.layers.MaxPooling2D(2, dtype="float64"),
        cnnx.layers.Flatten(dtype="float64"),
        cnnx.layers.Dense(3, activation="softmax", dtype="float64"),
    ])


def _residual_net():
    # Add with a fused ReLU (into a kept buffer), BatchNormalization, global pooling.
    kw = {"dtype": "float64"}
    inp = cnnx.Input((7, 7, 2))
    a = cnnx.layers.Conv2D(4, 3, padding="same", **kw)(inp)
    b = cnnx.layers.BatchNormalization(**kw)(cnnx.layers.Conv2D(4, 1, **kw)(inp))
    x = cnnx.layers.ReLU(**kw)(cnnx.layers.Add(**kw)([a, b]))
    x = cnnx.layers.GlobalAveragePooling2D(**kw)(x)
    return cnnx.Model(inp, cnnx.layers.Dense(3, activation="softmax", **kw)(x))


@pytest.mark.parametrize("make", [_sequential_net, _residual_net])
def test_a_model_trains_the_same_on_the_reference_kernels(make, rng):
    """The whole training step against its NumPy twin: every kernel, the update included,
    swapped by cnnx.testing.reference_kernels() (float64, so the two agree closely)."""
    x = rng.standard_normal((8, 7, 7, 2))
    y = cnnx.utils.to_categorical(rng.integers(0, 3, 8), 3)
    weights = []
    for reference in (False, True):
        cnnx.utils.set_random_seed(4)
        model = make()
        model.compile(optimizer=cnnx.optimizers.Adam(0.01), loss="categorical_crossentropy")
        start = model.get_weights()
        if reference:
            with cnnx.testing.reference_kernels():
                for _ in range(3):
                    model.train_on_batch(x, y)
        else:
            for _ in range(3):
                model.train_on_batch(x, y)
        weights.append(model.get_weights())
    for a, b in zip(*weights):   # (a bias before BatchNormalization gets only rounding:
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-10)   # values of 1e-12)
    assert all(not np.array_equal(a, b) for a, b in zip(weights[1], start))  # it trained


# Keras 3's own expected values (keras/src/optimizers/*_test.py): one step on
# w = [1, 2, 3, 4] with g = [1, 6, 7, 2] at learning rate 0.5, and five steps of the
# "golden" run: one step with g = 0.01, then g = 0.1, 0.2, ..., 1.0 (rtol 5e-4 there).
SINGLE_STEP = {
    "Adamax": [0.5, 1.5, 2.5, 3.5],
    "Adadelta": [0.9993, 1.9993, 2.9993, 3.9993],
    "Lion": [0.5, 1.5, 2.5, 3.5],
    "Nadam": [0.4686, 1.4686, 2.4686, 3.4686],
    "Ftrl": [0.2218, 1.3954, 2.3651, 2.8814],
}
GOLDEN = {
    "Adamax": (dict(learning_rate=0.2, beta_1=0.85, beta_2=0.95, epsilon=1e-6), [
        [0.8] * 10,
        [0.6827, 0.6873, 0.6888, 0.6896, 0.6901, 0.6904, 0.6906, 0.6908, 0.6909, 0.691],
        [0.5333, 0.5407, 0.5431, 0.5444, 0.5451, 0.5456, 0.546, 0.5462, 0.5464, 0.5466],
        [0.368, 0.3773, 0.3804, 0.382, 0.3829, 0.3835, 0.384, 0.3843, 0.3846, 0.3848],
        [0.1933, 0.204, 0.2076, 0.2094, 0.2105, 0.2112, 0.2117, 0.2121, 0.2124, 0.2126]]),
    "Adadelta": (dict(learning_rate=1.0, rho=0.8, epsilon=1e-6),
                 [[v] * 10 for v in (0.9978, 0.9947, 0.9915, 0.9882, 0.9849)]),
    "Lion": (dict(), [[v] * 10 for v in (0.999, 0.998, 0.997, 0.996, 0.995)]),
    "Ftrl": (dict(learning_rate=0.05, learning_rate_power=-0.2, initial_accumulator_value=0.4,
                  l1_regularization_strength=0.05, l2_regularization_strength=0.15,
                  l2_shrinkage_regularization_strength=0.01, beta=0.3), [
        [0.0] * 10,
        [-0.0034, -0.0077, -0.0118, -0.0157, -0.0194, -0.023, -0.0263, -0.0294, -0.0325,
         -0.0354],
        [-0.0078, -0.0162, -0.0242, -0.0317, -0.0387, -0.0454, -0.0516, -0.0575, -0.0631,
         -0.0685],
        [-0.0121, -0.0246, -0.0363, -0.0472, -0.0573, -0.0668, -0.0757, -0.0842, -0.0922,
         -0.0999],
        [-0.0164, -0.0328, -0.0481, -0.0623, -0.0753, -0.0875, -0.099, -0.1098, -0.1201,
         -0.1299]]),
    "Nadam": (dict(learning_rate=0.5, beta_1=0.5, beta_2=0.67, epsilon=1e-5), [
        [0.4281] * 10,
        [-0.1738, -0.1731, -0.1726, -0.1723, -0.1721, -0.172, -0.1719, -0.1718, -0.1718,
         -0.1717],
        [-0.7115, -0.7103, -0.7096, -0.7092, -0.709, -0.7088, -0.7086, -0.7085, -0.7085,
         -0.7084],
        [-1.2335, -1.2322, -1.2313, -1.2309, -1.2306, -1.2304, -1.2302, -1.2301, -1.23,
         -1.2299],
        [-1.7492, -1.7478, -1.7469, -1.7464, -1.7461, -1.7459, -1.7457, -1.7456, -1.7455,
         -1.7454]]),
}


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_new_optimizers_match_keras_golden_values(name):
    cls = getattr(optimizers, name)
    var = Variable(np.array([1.0, 2.0, 3.0, 4.0]), "w")
    cls(learning_rate=0.5).apply([np.array([1.0, 6.0, 7.0, 2.0])], [var])
    np.testing.assert_allclose(var.value, SINGLE_STEP[name], rtol=1e-4, atol=1e-4)
    kwargs, golden = GOLDEN[name]
    opt = cls(**kwargs)
    x = Variable(np.ones(10), "x")
    opt.apply([np.full(10, 0.01)], [x])
    for expected in golden:
        np.testing.assert_allclose(x.value, expected, rtol=5e-4, atol=5e-4)
        opt.apply([np.arange(0.1, 1.1, 0.1)], [x])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_new_updates_match_their_twins(dtype, rng):
    n = 1000
    w, g, a, b = (rng.standard_normal(n).astype(dtype) for _ in range(4))
    a, b = np.abs(a), np.abs(b)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12)
    cases = [
        ("adamax_update", (a, b), (0.01, 0.9, 0.999, 1e-7)),
        ("adadelta_update", (a, b), (0.5, 0.95, 1e-7)),
        ("lion_update", (a,), (0.01, 0.9, 0.99)),
        ("nadam_update", (a, b), (0.01, 0.9, 0.999, 1e-7, 0.44, 0.45, 0.4, 0.18, 0.99)),
        ("ftrl_update", (a + 0.1, b), (0.05, -0.2, 0.05, 0.15, 0.01)),
    ]
    for name, state, params in cases:
        ww, ss = w.copy(), [s.copy() for s in state]
        getattr(_kernels, name)(ww, g, *ss, *params, 2)
        args = (w, g, *state)
        if name == "ftrl_update":
            # The kernel works in double (its z cancels against clip(z)); a float32 twin
            # rounds pow differently per NumPy SIMD path, so compare with float64's.
            args = tuple(x.astype(np.float64) for x in args)
        want = getattr(ref, name)(*args, *params)
        for got, exp in zip((ww, *ss), want):
            np.testing.assert_allclose(got, exp, err_msg=name, **tol)


def test_nadam_resumes_exactly_from_its_step_count():
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal(5) for _ in range(6)]
    straight = optimizers.Nadam(0.1)
    x = Variable(np.ones(5), "x")
    for g in grads:
        straight.apply([g], [x])
    resumed = optimizers.Nadam(0.1)
    y = Variable(np.ones(5), "y")
    for g in grads[:3]:
        resumed.apply([g], [y])
    again = optimizers.Nadam(0.1)       # as load_model rebuilds it: count and slots
    again.iterations = resumed.iterations
    again._slots[id(y)] = resumed._slots[id(y)]
    for g in grads[3:]:
        again.apply([g], [y])
    np.testing.assert_array_equal(x.value, y.value)


def test_ftrl_saves_and_resumes_exactly(tmp_path):
    """Its two slots (accumulator and z) travel in the file: a reloaded model continues
    as the original does."""
    from helpers import data, small_model
    x, y, _ = data(32)
    model = small_model()
    model.compile(optimizer=optimizers.Ftrl(0.1, l1_regularization_strength=0.01,
                                            beta=0.2),
                  loss="categorical_crossentropy")
    model.fit(x, y, epochs=2, verbose=0, shuffle=False)
    model.save(tmp_path / "m.keras")
    loaded = cnnx.models.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.optimizer, optimizers.Ftrl) and loaded.optimizer.beta == 0.2
    a = model.fit(x, y, epochs=2, verbose=0, shuffle=False).history
    b = loaded.fit(x, y, epochs=2, verbose=0, shuffle=False).history
    assert a == b
    with pytest.raises(ValueError, match="`learning_rate_power` must be a finite number"):
        optimizers.Ftrl(learning_rate_power=0.5)

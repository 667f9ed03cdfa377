"""OpenMP is really there, and results are bitwise identical for any thread count."""
import os

import numpy as np
import pytest

import cnnx
from cnnx import _config, _kernels, ops


def test_openmp_is_compiled_in_unless_serial_was_allowed():
    # setup.py refuses to build without OpenMP unless CNNX_ALLOW_SERIAL=1; a test run
    # with that switch set accepts the serial build it allowed.
    if not _config.openmp_enabled() and os.environ.get("CNNX_ALLOW_SERIAL") == "1":
        pytest.skip("built without OpenMP (CNNX_ALLOW_SERIAL=1)")
    assert _config.openmp_enabled(), "cnnx was built serial without CNNX_ALLOW_SERIAL=1"
    assert _kernels.openmp_threads_used(2) == 2


def test_parallel_region_runs_the_threads_asked_for():
    if not _config.openmp_enabled():
        pytest.skip("built without OpenMP")
    assert _kernels.openmp_threads_used(1) == 1
    assert _kernels.openmp_threads_used(3) == 3


def _all_kernels(rng):
    """Every kernel's outputs on shapes big enough to be split over threads."""
    x = rng.standard_normal((16, 14, 14, 8)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 8, 24)).astype(np.float32)
    bias = rng.standard_normal(24).astype(np.float32)
    y = ops.conv2d(x, kernel, bias, 1, "same", activation="relu")
    dy = rng.standard_normal(y.shape).astype(np.float32)
    out = [y, *ops.conv2d_backward(x, kernel, dy, 2 - 1, "same")]
    big = rng.standard_normal((128, 12, 12, 16)).astype(np.float32)
    bigk = rng.standard_normal((3, 3, 16, 32)).astype(np.float32)
    out += ops.conv2d_backward(big, bigk, rng.standard_normal((128, 10, 10, 32)).astype(
        np.float32))[1:]  # P = 12800: split-K reduction
    first = rng.standard_normal((20, 32, 32, 1)).astype(np.float32)  # a first layer
    first_k = rng.standard_normal((5, 5, 1, 6)).astype(np.float32)
    out += [ops.conv2d(first, first_k, bias[:6], activation="relu"),
            *ops.conv2d_backward(first, first_k, rng.standard_normal((20, 28, 28, 6)).astype(
                np.float32), input_grad=False)[1:]]
    wide = rng.standard_normal((16, 8, 8, 64)).astype(np.float32)  # Winograd under "auto"
    wide_k = rng.standard_normal((3, 3, 64, 64)).astype(np.float32)
    out += [ops.conv2d(wide, wide_k, None, 1, "same", activation="relu"),
            *ops.conv2d_backward(wide, wide_k, wide, 1, "same", use_bias=False)[:2]]
    point = rng.standard_normal((32, 4, 4, 256)).astype(np.float32)  # pointwise, and a
    point_k = rng.standard_normal((1, 1, 256, 512)).astype(np.float32)  # kernel gradient
    out += [ops.conv2d(point, point_k, activation="relu"),            # by the product
            *ops.conv2d_backward(point, point_k, rng.standard_normal(
                (32, 4, 4, 512)).astype(np.float32), use_bias=False)[:2]]
    one = rng.standard_normal((1, 40, 40, 3)).astype(np.float32)  # one image, split up
    for f in (32, 6):   # the channel- and the pixel-vectorised direct kernels
        out.append(ops.conv2d(one, rng.standard_normal((3, 3, 3, f)).astype(np.float32),
                              activation="relu"))
    p, arg = ops.max_pool2d(y, 2)
    out += [p, arg, ops.max_pool2d_backward(p, arg, y.shape)]
    out += list(ops.max_pool2d(np.concatenate([y, y[..., :8]], axis=3), 3, 2, "same"))
    out += [ops.average_pool2d(y, 3, 2, "same"),
            ops.average_pool2d_backward(p, y.shape, 2)]
    out += [ops.relu(dy), ops.relu_backward(dy, y), ops.add(dy, y, "relu")]
    flat = ops.flatten(y)
    w = rng.standard_normal((flat.shape[1], 10)).astype(np.float32)
    z = ops.dense(flat, w, np.ones(10, np.float32), "relu")
    out += [z, *ops.dense_backward(flat, w, z)]
    xb = rng.standard_normal((5000, 40)).astype(np.float32)  # B = 5000: split-K
    out += list(ops.dense_backward(xb, rng.standard_normal((40, 7)).astype(np.float32),
                                   rng.standard_normal((5000, 7)).astype(np.float32)))
    t = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 16)]
    out += [*ops.softmax_cross_entropy(z, t), ops.softmax(z), ops.sigmoid(z)]
    out += [*ops.sigmoid_cross_entropy(z, t)]
    dwk = rng.standard_normal((3, 3, 8, 2)).astype(np.float32)   # depthwise, multiplier 2
    dwy = ops.depthwise_conv2d(x, dwk, rng.standard_normal(16).astype(np.float32), 2, "same")
    out += [dwy, *ops.depthwise_conv2d_backward(x, dwk, dwy, 2, "same")]
    wide = rng.standard_normal((37, 9, 9, 24)).astype(np.float32)  # 10 kernel-grad chunks
    wk = rng.standard_normal((3, 3, 24, 1)).astype(np.float32)
    out += list(ops.depthwise_conv2d_backward(wide, wk, ops.depthwise_conv2d(wide, wk)))
    bm, bv = ops.batch_normalization_moments(big)      # 18432 rows: 72 chunks
    by = ops.batch_normalization(big, bm, bv, np.ones(16, np.float32), None)
    out += [bm, bv, by, *ops.batch_normalization_backward(big, by, bm, bv)]
    bb = np.linspace(-1, 1, 16, dtype=np.float32)             # with a fused ReLU's mask
    out += list(ops.batch_normalization_backward(big, by, bm, bv, activation="relu",
                                                 beta=bb))
    gy, gm, gr = ops.group_normalization(wide, 4, np.ones(24, np.float32), None)
    out += [gy, gm, gr, *ops.group_normalization_backward(wide, gy, gm, gr, 4,
                                                          np.ones(24, np.float32))]
    tk = rng.standard_normal((3, 3, 5, 8)).astype(np.float32)    # transposed convolution
    ty = ops.conv2d_transpose(x, tk, np.ones(5, np.float32), 2, "same")
    out += [ty, *ops.conv2d_transpose_backward(x, tk, ty, 2, "same")]
    return out


@pytest.mark.parametrize("n", [2, 3, 5])
def test_bitwise_identical_for_any_thread_count(n, threads, conv_algorithm):
    threads(1)
    one = _all_kernels(np.random.default_rng(7))
    threads(n)
    many = _all_kernels(np.random.default_rng(7))
    assert len(one) == len(many)
    for i, (a, b) in enumerate(zip(one, many)):
        assert a.dtype == b.dtype and np.array_equal(a, b), f"output {i} differs"


def test_thread_count_api(threads):
    threads(3)
    assert cnnx.get_num_threads() == 3
    with pytest.raises(ValueError, match="1 <= n <= .*received 0"):
        cnnx.set_num_threads(0)
    # Bounded: each thread has a workspace of its own.
    with pytest.raises(ValueError, match=rf"n <= {_config.MAX_THREADS} .*received 100000"):
        cnnx.set_num_threads(100_000)
    with pytest.raises(TypeError, match="expected an int"):
        cnnx.set_num_threads(2.5)
    assert cnnx.get_num_threads() == 3


def test_default_threads_honour_omp_num_threads(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert _config._default_threads() == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "junk")
    assert _config._default_threads() >= 1


def test_small_work_runs_on_one_thread(threads):
    threads(8)
    assert _config.threads_for(10) == 1
    assert _config.threads_for(10 ** 8) == 8


def test_free_threaded_python_keeps_the_gil_off():
    # A free-threaded interpreter turns the GIL back on when an extension does not
    # declare itself safe without it; cnnx's kernels module does.
    import sys
    import sysconfig
    if not sysconfig.get_config_var("Py_GIL_DISABLED"):
        pytest.skip("not a free-threaded interpreter")
    assert not sys._is_gil_enabled()


def test_concurrent_predict_from_four_threads_is_bitwise_equal():
    import threading
    cnnx.utils.set_random_seed(3)
    model = cnnx.Sequential([
        cnnx.Input((12, 12, 3)),
        cnnx.layers.Conv2D(8, 3, activation="relu"),
        cnnx.layers.MaxPooling2D(2),
        cnnx.layers.Conv2D(16, 3, padding="same", activation="relu"),
        cnnx.layers.Flatten(),
        cnnx.layers.Dense(5, activation="softmax"),
    ])
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal((24, 12, 12, 3)).astype(np.float32) for _ in range(4)]
    expected = [model.predict(x, batch_size=8, verbose=0) for x in xs]
    start = threading.Barrier(4)
    results = [[] for _ in range(4)]

    def work(i):
        start.wait()                 # all four predict at once
        for _ in range(15):
            results[i].append(model.predict(xs[i], batch_size=8, verbose=0))

    workers = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    for i in range(4):
        assert len(results[i]) == 15
        for got in results[i]:
            assert got.dtype == expected[i].dtype and np.array_equal(got, expected[i])


def test_layers_keep_no_tensors_of_a_call():
    """Layers keep weights and configuration only: after training and inference from
    several threads, no layer holds an array (the tensors of a call live in the model's
    plan), so concurrent inference needs no copy of any layer."""
    import threading
    model = cnnx.Sequential([cnnx.Input((8, 8, 2)), cnnx.layers.Conv2D(4, 3, activation="relu"),
                             cnnx.layers.MaxPooling2D(2), cnnx.layers.Flatten(),
                             cnnx.layers.Dropout(0.5), cnnx.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    x = np.ones((4, 8, 8, 2), np.float32)
    model.fit(x, np.eye(3, dtype=np.float32)[[0, 1, 2, 0]], epochs=1, verbose=0)
    workers = [threading.Thread(target=model.predict, args=(x,), kwargs={"verbose": 0})
               for _ in range(4)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()

    def arrays(obj, depth=0):
        found = []
        for value in vars(obj).values():
            if isinstance(value, np.ndarray):
                found.append(value)
            elif isinstance(value, dict) and depth < 2:
                found += [v for v in value.values() if isinstance(v, np.ndarray)]
        return found

    for layer in model.layers:
        assert arrays(layer) == [], layer.name

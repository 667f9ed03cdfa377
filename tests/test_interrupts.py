"""A model stays consistent under Ctrl-C and under fit and predict in two threads."""
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

from helpers import data, small_model

# The child trains step by step once, recording a digest of the weights and optimizer
# state after every step; then it runs fit on the same data from the same start, is
# interrupted at a random moment by the parent, and checks that what it holds equals
# the record of the step the optimizer says it is at.
CHILD = textwrap.dedent("""
    import hashlib, signal, sys
    import numpy as np
    # Python's Ctrl-C handler, even when the test run was started with SIGINT ignored
    # (a background job of a shell): the child must see the parent's SIGINT.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.path.insert(0, sys.argv[1])
    import cnnx
    from helpers import data, small_model

    def make():
        model = small_model(seed=3)
        model.compile(optimizer=cnnx.optimizers.Adam(0.01), loss="categorical_crossentropy")
        return model

    def digest(model):
        h = hashlib.sha256()
        for w in model.get_weights() + model.optimizer.variables:
            h.update(np.ascontiguousarray(w).tobytes())
        return h.hexdigest()

    x, y, _ = data(64)
    model = make()
    record = [digest(model)]
    for _ in range(2000):
        model.train_on_batch(x[:16], y[:16])
        record.append(digest(model))
    model = make()
    print("READY", flush=True)
    try:
        for _ in range(2000):
            model.train_on_batch(x[:16], y[:16])
        print("NOT INTERRUPTED", flush=True)
    except KeyboardInterrupt:
        step = int(model.optimizer.iterations)
        print("STEP", step, "OK" if digest(model) == record[step] else "TORN", flush=True)
""")


@pytest.mark.slow
def test_ctrl_c_during_training_never_leaves_a_torn_step(tmp_path):
    tests = os.path.dirname(os.path.abspath(__file__))
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    rng = np.random.default_rng(0)
    outcomes = []
    for _ in range(12):
        child = subprocess.Popen([sys.executable, str(script), tests], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        assert child.stdout.readline().strip() == "READY", child.stderr.read()
        time.sleep(rng.uniform(0.01, 0.3))
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=120)
        outcomes.append(out.strip())
        assert "TORN" not in out, (out, err[-2000:])
    steps = [line for line in outcomes if line.startswith("STEP")]
    assert len(steps) >= 8, outcomes   # interrupted mid-training, not before or after
    assert all(line.endswith("OK") for line in steps), outcomes


def test_fit_in_one_thread_and_predict_in_another_are_both_right():
    model = small_model(seed=1)
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    x, y, _ = data(64)
    errors = []
    done = threading.Event()

    def predictor():
        while not done.is_set():
            p = model.predict(x, batch_size=16, verbose=0)
            # Probabilities, never the logits of the fused training path.
            if not (np.all(p >= 0) and np.allclose(p.sum(axis=1), 1, atol=1e-5)):
                errors.append(p)
                return

    thread = threading.Thread(target=predictor)
    thread.start()
    try:
        history = model.fit(x, y, batch_size=8, epochs=6, verbose=0)
    finally:
        done.set()
        thread.join()
    assert errors == []
    # And training was not disturbed: the same as fit alone, bit for bit.
    alone = small_model(seed=1)
    alone.compile(optimizer="sgd", loss="categorical_crossentropy")
    expected = alone.fit(x, y, batch_size=8, epochs=6, verbose=0)
    assert history.history["loss"] == expected.history["loss"]
    for a, b in zip(model.get_weights(), alone.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_set_weights_checks_every_array_before_assigning_any():
    model = small_model()
    before = model.get_weights()
    bad = [w + 1 for w in before]
    bad[1] = np.zeros(7)
    with pytest.raises(ValueError, match=r"set_weights: variable .* has shape \(4,\), "
                                         r"received shape \(7,\)"):
        model.set_weights(bad)
    bad[1] = np.array(["a"] * 4)
    with pytest.raises(TypeError, match="set_weights: variable .* takes float32 numbers"):
        model.set_weights(bad)
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)

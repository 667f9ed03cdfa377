"""Graph models: residual and branching networks, shared layers, nested and frozen
models, several inputs and outputs, merge layers; their gradients against finite
differences in float64, and their configs and files round-tripping."""
import numpy as np
import pytest

import cnnx
from cnnx import layers

from helpers import EPS, assert_directional_derivatives, assert_grad, numerical_grad


def resnet(dtype="float64", seed=0):
    """A small CIFAR-style ResNet: a stem, two residual stages (the second one
    downsampling, with a 1x1 projection), BatchNormalization, and a head that joins a
    global-average and a global-max branch through one shared Dense layer."""
    cnnx.utils.set_random_seed(seed)
    kw = {"dtype": dtype}
    inp = cnnx.Input((8, 8, 3), name="image")
    x = layers.Conv2D(6, 3, padding="same", activation="relu", **kw)(inp)
    y = layers.Conv2D(6, 3, padding="same", **kw)(x)
    y = layers.Activation("relu", **kw)(layers.BatchNormalization(**kw)(y))
    y = layers.BatchNormalization(**kw)(layers.Conv2D(6, 3, padding="same", **kw)(y))
    x = layers.Activation("relu", **kw)(layers.Add(**kw)([x, y]))       # stage 1
    y = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", **kw)(x)
    y = layers.Conv2D(8, 3, padding="same", **kw)(y)
    shortcut = layers.Conv2D(8, 1, strides=2, **kw)(x)
    x = layers.Activation("relu", **kw)(layers.add([shortcut, y], **kw))   # stage 2
    # x feeds both branches: its ReLU must not be fused into the max pooling.
    average = layers.GlobalAveragePooling2D(**kw)(x)
    peak = layers.GlobalMaxPooling2D(**kw)(layers.MaxPooling2D(2, **kw)(x))
    shared = layers.Dense(5, activation="tanh", name="shared", **kw)
    h = layers.Concatenate(**kw)([shared(average), shared(peak)])
    out = layers.Dense(3, activation="softmax", name="label", **kw)(h)
    return cnnx.Model(inp, out, name="resnet")


def images(n=6, seed=1, dtype=np.float64):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 8, 8, 3)).astype(dtype)
    labels = (x[:, :4].mean(axis=(1, 2, 3)) > x[:, 4:].mean(axis=(1, 2, 3))).astype(int)
    labels += (x[..., 0].mean(axis=(1, 2)) > 0).astype(int)
    return x, cnnx.utils.to_categorical(labels, 3).astype(dtype)


def training_gradient_check(model, x, y, rng, directions=3):
    """The gradient of one training step (BatchNormalization on batch statistics)
    against central differences of the training-mode loss along random directions of
    the trainable weights."""
    trainable = {id(v) for v in model.trainable_weights}
    mask = [id(v) in trainable for v in model.weights]
    before = model.get_weights()
    model.train_on_batch(x, y)   # SGD(1): each weight moves by minus its gradient
    grads = [b - a for b, a in zip(before, model.get_weights())]
    model.set_weights(before)

    def loss():
        return model.loss(y, model(x, training=True))

    for _ in range(directions):
        v = [rng.standard_normal(w.shape) if m else np.zeros_like(w)
             for w, m in zip(before, mask)]
        model.set_weights([w + EPS * d for w, d in zip(before, v)])
        up = loss()
        model.set_weights([w - EPS * d for w, d in zip(before, v)])
        down = loss()
        model.set_weights(before)
        analytic = sum(float(np.vdot(g, d)) for g, d, m in zip(grads, v, mask) if m)
        np.testing.assert_allclose(analytic, (up - down) / (2 * EPS), rtol=1e-6, atol=1e-9)


def test_resnet_gradients_match_finite_differences(rng):
    model = resnet()
    model.compile(optimizer=cnnx.optimizers.SGD(1.0), loss="categorical_crossentropy")
    x, y = images()
    training_gradient_check(model, x, y, rng)


def test_resnet_trains_and_reloads_to_identical_predictions(tmp_path):
    model = resnet("float32")
    model.compile(optimizer=cnnx.optimizers.Adam(0.01), loss="categorical_crossentropy",
                  metrics=["accuracy"])
    x, y = images(64, dtype=np.float32)
    history = model.fit(x, y, batch_size=16, epochs=12, verbose=0).history
    assert history["loss"][-1] < 0.6 * history["loss"][0]
    model.save(tmp_path / "resnet.keras")
    loaded = cnnx.models.load_model(tmp_path / "resnet.keras")
    assert [type(layer).__name__ for layer in loaded.layers] == \
        [type(layer).__name__ for layer in model.layers]
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    # Training resumes identically: same weights, optimizer state and graph.
    a = model.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False).history
    b = loaded.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False).history
    assert a == b
    # The shared layer is one layer in both, with one set of weights.
    assert sum(layer.name == "shared" for layer in loaded.layers) == 1
    assert len(loaded.get_layer("shared")._inbound_nodes) == 2


def test_graph_configs_round_trip_through_json_and_clone():
    model = resnet("float32")
    again = cnnx.models.model_from_json(model.to_json())
    assert again.get_config() == model.get_config()
    clone = cnnx.models.clone_model(model)
    assert clone.get_config() == model.get_config()
    assert all(a is not b for a, b in zip(clone.weights, model.weights))
    x, _ = images(4, dtype=np.float32)
    clone.set_weights(model.get_weights())
    np.testing.assert_array_equal(clone.predict(x, verbose=0), model.predict(x, verbose=0))


def test_a_layer_called_twice_trains_with_the_sum_of_both_gradients(rng):
    cnnx.utils.set_random_seed(2)
    inp = cnnx.Input((4,))
    d = layers.Dense(4, activation="tanh", dtype="float64")
    out = layers.Dense(2, activation="softmax", dtype="float64")(d(d(inp)))
    model = cnnx.Model(inp, out)
    model.compile(optimizer=cnnx.optimizers.SGD(1.0), loss="categorical_crossentropy")
    x = rng.standard_normal((5, 4))
    y = cnnx.utils.to_categorical(rng.integers(0, 2, 5), 2)
    assert len(model.weights) == 4   # d's kernel and bias once
    assert_directional_derivatives(model, x, y, rng)
    model.fit(x, y, epochs=2, verbose=0)


def test_a_frozen_nested_model_stays_put_while_its_head_trains():
    cnnx.utils.set_random_seed(3)
    base = cnnx.Sequential([cnnx.Input((6, 6, 2)), layers.Conv2D(4, 3, activation="relu"),
                            layers.BatchNormalization(), layers.MaxPooling2D(2)],
                           name="base")
    base.trainable = False
    inp = cnnx.Input((6, 6, 2))
    h = layers.Flatten()(base(inp))
    model = cnnx.Model(inp, layers.Dense(3, activation="softmax")(h))
    head_layer = model.layers[-1]
    assert [id(w) for w in model.trainable_weights] == [id(w) for w in head_layer.weights]
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 6, 6, 2)).astype(np.float32)
    y = cnnx.utils.to_categorical(rng.integers(0, 3, 16), 3)
    frozen = base.get_weights()   # kernel, bias, gamma, beta, moving mean and variance
    head = model.layers[-1].get_weights()
    model.fit(x, y, epochs=2, verbose=0)
    for a, b in zip(frozen, base.get_weights()):
        np.testing.assert_array_equal(a, b)   # BatchNormalization ran in inference mode
    assert any(not np.array_equal(a, b) for a, b in zip(head, model.layers[-1].get_weights()))
    # Unfrozen, the same nested model trains, and its gradients are right.
    base.trainable = True
    model.fit(x, y, epochs=1, verbose=0)
    assert any(not np.array_equal(a, b) for a, b in zip(frozen, base.get_weights()))


def test_nested_model_gradients_match_finite_differences(rng):
    cnnx.utils.set_random_seed(4)
    kw = {"dtype": "float64"}
    base = cnnx.Sequential([cnnx.Input((6, 6, 2)), layers.Conv2D(3, 3, activation="relu", **kw),
                            layers.MaxPooling2D(2, **kw)])
    model = cnnx.Sequential([base, layers.Flatten(**kw), layers.Dense(3, activation="softmax",
                                                                      **kw)])
    model.compile(optimizer=cnnx.optimizers.SGD(1.0), loss="categorical_crossentropy")
    x = rng.standard_normal((4, 6, 6, 2))
    y = cnnx.utils.to_categorical(rng.integers(0, 3, 4), 3)
    assert_directional_derivatives(model, x, y, rng)
    # A model inside a Sequential, and a Softmax after a model: Keras's transfer recipe.
    logits = cnnx.Sequential([cnnx.Input((4,)), layers.Dense(3)])
    probabilities = cnnx.Sequential([logits, layers.Softmax()])
    p = probabilities.predict(rng.standard_normal((2, 4)), verbose=0)
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-6)


def two_in_two_out():
    cnnx.utils.set_random_seed(5)
    image = cnnx.Input((6, 6, 2), name="image")
    meta = cnnx.Input((3,), name="meta")
    h = layers.Flatten()(layers.Conv2D(4, 3, activation="relu")(image))
    h = layers.concatenate([h, layers.Dense(4, activation="relu")(meta)])
    kind = layers.Dense(3, activation="softmax", name="kind")(h)
    size = layers.Dense(1, name="size")(h)
    return cnnx.Model(inputs=[image, meta], outputs=[kind, size])


def test_two_inputs_two_outputs_fit_with_dicts_and_loss_weights():
    model = two_in_two_out()
    assert model.input_names == ["image", "meta"] and model.output_names == ["kind", "size"]
    model.compile(optimizer="adam", loss={"kind": "categorical_crossentropy", "size": "mse"},
                  loss_weights={"kind": 1.0, "size": 0.25}, metrics={"kind": ["accuracy"]})
    rng = np.random.default_rng(0)
    n = 32
    x = {"image": rng.standard_normal((n, 6, 6, 2)).astype(np.float32),
         "meta": rng.standard_normal((n, 3)).astype(np.float32)}
    y = {"kind": cnnx.utils.to_categorical(rng.integers(0, 3, n), 3),
         "size": rng.standard_normal((n, 1)).astype(np.float32)}
    history = model.fit(x, y, batch_size=8, epochs=3, verbose=0, validation_split=0.25)
    assert sorted(history.history) == sorted(
        ["loss", "kind_loss", "size_loss", "kind_accuracy", "val_loss", "val_kind_loss",
         "val_size_loss", "val_kind_accuracy"])
    logs = model.evaluate(x, y, batch_size=n, verbose=0, return_dict=True)
    kind, size = model.predict(x, verbose=0)
    assert kind.shape == (n, 3) and size.shape == (n, 1)
    want_kind = cnnx.losses.CategoricalCrossentropy()(y["kind"], kind)
    want_size = cnnx.losses.MeanSquaredError()(y["size"], size)
    np.testing.assert_allclose(logs["kind_loss"], want_kind, rtol=1e-5)
    np.testing.assert_allclose(logs["size_loss"], want_size, rtol=1e-5)
    np.testing.assert_allclose(logs["loss"], want_kind + 0.25 * want_size, rtol=1e-5)
    # Lists in the inputs' and outputs' order mean the same as dicts.
    assert model.evaluate([x["image"], x["meta"]], [y["kind"], y["size"]], batch_size=n,
                          verbose=0, return_dict=True) == logs


def test_loss_weights_scale_the_gradient(rng):
    """With loss_weights, the step follows the gradient of the weighted sum: checked by
    finite differences of evaluate's total loss."""
    cnnx.utils.set_random_seed(6)
    kw = {"dtype": "float64"}
    a, b = cnnx.Input((3,)), cnnx.Input((2,))
    h = layers.concatenate([layers.Dense(4, activation="tanh", **kw)(a), b], **kw)
    out1 = layers.Dense(2, activation="softmax", name="p", **kw)(h)
    out2 = layers.Dense(1, name="q", **kw)(h)
    model = cnnx.Model([a, b], [out1, out2])
    model.compile(optimizer=cnnx.optimizers.SGD(1.0),
                  loss=["categorical_crossentropy", "mse"], loss_weights=[0.3, 2.0])
    x = [rng.standard_normal((5, 3)), rng.standard_normal((5, 2))]
    y = [cnnx.utils.to_categorical(rng.integers(0, 2, 5), 2), rng.standard_normal((5, 1))]
    grads = [w0 - w1 for w0, w1 in zip(model.get_weights(), (
        model.train_on_batch(x, y), model.get_weights())[1])]
    w0 = [w + g for w, g in zip(model.get_weights(), grads)]
    model.set_weights(w0)
    for _ in range(3):
        v = [rng.standard_normal(w.shape) for w in w0]
        model.set_weights([w + EPS * d for w, d in zip(w0, v)])
        up = model.evaluate(x, y, verbose=0)[0]
        model.set_weights([w - EPS * d for w, d in zip(w0, v)])
        down = model.evaluate(x, y, verbose=0)[0]
        model.set_weights(w0)
        analytic = sum(float(np.vdot(g, d)) for g, d in zip(grads, v))
        np.testing.assert_allclose(analytic, (up - down) / (2 * EPS), rtol=1e-6)


@pytest.mark.parametrize("merge,shapes", [
    (layers.Add, [(2, 3, 4), (2, 3, 4), (2, 3, 4)]),
    (layers.Add, [(2, 3, 4), (2, 1, 4)]),            # broadcast
    (layers.Subtract, [(2, 5), (2, 5)]),
    (layers.Multiply, [(2, 3, 4), (2, 3, 1), (2, 3, 4)]),
    (layers.Average, [(2, 4), (2, 4)]),
    (layers.Maximum, [(2, 6), (2, 6), (2, 6)]),
    (layers.Minimum, [(2, 3, 2), (2, 3, 2)]),
    (lambda **kw: layers.Concatenate(axis=1, **kw), [(2, 3, 4), (2, 1, 4)]),
    (layers.Concatenate, [(2, 3, 4), (2, 3, 2)]),
])
def test_merge_layer_gradients(merge, shapes, rng):
    layer = merge(dtype="float64")
    xs = [rng.standard_normal(s) for s in shapes]
    y = layer(xs)
    r = rng.standard_normal(y.shape)
    ctx = layers.Context()
    layer.forward(ctx, xs)
    grads = layer.backward(ctx, r)
    for x, g in zip(xs, grads):
        assert_grad(g, numerical_grad(
            lambda: float(np.sum(layer.forward(layers.Context(), xs) * r)), x))


def test_merge_layers_refuse_shapes_that_do_not_match():
    a, b = cnnx.Input((4, 3)), cnnx.Input((5, 3))
    with pytest.raises(ValueError, match=r"Add .* axis 1 has sizes \[4, 5\]"):
        layers.add([a, b])
    with pytest.raises(ValueError, match="must match on every axis but -1"):
        layers.concatenate([a, b])
    with pytest.raises(ValueError, match="exactly 2 inputs"):
        layers.subtract([a, a, a])
    with pytest.raises(ValueError, match="a list of at least 2"):
        layers.Add()(a)
    with pytest.raises(ValueError, match="axis 0 is the batch"):
        layers.Concatenate(axis=0)


class Doubler(layers.Layer):
    """A user layer that defines Keras's call only."""

    def call(self, inputs, training=False):  # noqa: ARG002
        return inputs * 2


def test_a_layer_without_backward_runs_but_is_not_trained_through():
    inp = cnnx.Input((3,))
    model = cnnx.Model(inp, layers.Dense(2)(Doubler()(inp)))
    model.compile(optimizer="sgd", loss="mse")
    x, y = np.ones((4, 3), np.float32), np.zeros((4, 2), np.float32)
    model.fit(x, y, epochs=1, verbose=0)     # nothing to train before it: fine
    np.testing.assert_allclose(model.predict(x, verbose=0),
                               model.layers[-1](2 * x), rtol=1e-6)
    behind = cnnx.Model(inp, Doubler()(layers.Dense(2)(inp)))
    behind.compile(optimizer="sgd", loss="mse")
    before = behind.get_weights()
    with pytest.raises(NotImplementedError,
                       match="doubler.* has no gradient: it defines no backward"):
        behind.fit(x, y, epochs=1, verbose=0)
    for a, b in zip(before, behind.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_summary_shows_connections_of_a_graph():
    lines = []
    two_in_two_out().summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "Connected to" in text and "image (InputLayer)" in text
    assert "conv2d" in text and "[0][0]" in text
    lines.clear()
    cnnx.Sequential([cnnx.Input((3,)), layers.Dense(2)]).summary(print_fn=lines.append)
    assert "Connected to" not in "\n".join(lines)


def test_residual_relu_keeps_its_own_backward(rng):
    """conv -> relu -> (pool, add): the pool must not apply the ReLU's mask for the
    other consumer; conv -> relu -> pool alone may."""
    cnnx.utils.set_random_seed(7)
    kw = {"dtype": "float64"}
    inp = cnnx.Input((6, 6, 2))
    c = layers.Conv2D(2, 3, padding="same", activation="relu", **kw)(inp)
    other = layers.Conv2D(2, 1, **kw)(c)
    branch = layers.MaxPooling2D(2, **kw)(c)
    h = layers.concatenate([layers.Flatten(**kw)(branch),
                            layers.Flatten(**kw)(layers.MaxPooling2D(2, **kw)(
                                layers.add([c, other], **kw)))], **kw)
    model = cnnx.Model(inp, layers.Dense(2, activation="softmax", **kw)(h))
    model.compile(optimizer=cnnx.optimizers.SGD(1.0), loss="categorical_crossentropy")
    x = rng.standard_normal((3, 6, 6, 2))
    y = cnnx.utils.to_categorical(rng.integers(0, 2, 3), 2)
    assert_directional_derivatives(model, x, y, rng)


# --- Lambda ------------------------------------------------------------------------

SOBEL = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float64)[:, :, None, None]


@pytest.mark.parametrize("function", [
    lambda x: 2.0 * x - x / 3.0 + 1.0,
    lambda x: (-x) ** 2 / (x * x + 1.0),
    lambda x: cnnx.ops.sigmoid(x) * cnnx.ops.relu(x - 0.1),
    lambda x: cnnx.ops.softmax(cnnx.ops.flatten(x)),
    lambda x: cnnx.ops.max_pool(cnnx.ops.conv(x, np.repeat(SOBEL, 2, axis=2), padding="same"),
                                2),
    lambda x: cnnx.ops.average_pool(x, 3, strides=1, padding="same") * x,
])
def test_lambda_gradients_through_its_trace(function, rng):
    layer = layers.Lambda(function, dtype="float64")
    x = rng.standard_normal((2, 6, 6, 2))
    x += rng.permutation(x.size).reshape(x.shape) * 1e-4   # no ties in max pooling
    y = layer(x)
    np.testing.assert_allclose(y, function(x), rtol=1e-12, atol=1e-12)
    r = rng.standard_normal(y.shape)
    ctx = layers.Context()
    layer.forward(ctx, x)
    assert_grad(layer.backward(ctx, r), numerical_grad(
        lambda: float(np.sum(layer.forward(layers.Context(), x) * r)), x))


def test_lambda_on_two_inputs(rng):
    layer = layers.Lambda(lambda t: t[0] * t[1] + t[0] / (t[1] ** 2 + 1.0), dtype="float64")
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((3, 1))
    r = rng.standard_normal((3, 4))
    layer([a, b])    # builds it (traces the function)
    ctx = layers.Context()
    y = layer.forward(ctx, [a, b])
    np.testing.assert_allclose(y, a * b + a / (b ** 2 + 1))
    da, db = layer.backward(ctx, r)
    for x, g in ((a, da), (b, db)):
        assert_grad(g, numerical_grad(
            lambda: float(np.sum(layer.forward(layers.Context(), [a, b]) * r)), x))


def test_lambda_without_gradient_preprocesses_but_is_not_trained_through(tmp_path):
    inp = cnnx.Input((3,))
    scale = layers.Lambda(lambda x: np.clip(x, 0, 1))     # NumPy: no gradient
    model = cnnx.Model(inp, layers.Dense(2)(scale(inp)))
    model.compile(optimizer="sgd", loss="mse")
    x, y = np.full((4, 3), 2.0, np.float32), np.zeros((4, 2), np.float32)
    model.fit(x, y, epochs=1, verbose=0)   # nothing trains before it
    np.testing.assert_allclose(model.predict(x, verbose=0),
                               model.layers[-1](np.ones((4, 3))), rtol=1e-6)
    behind = cnnx.Model(inp, layers.Lambda(lambda x: np.clip(x, 0, 1))(layers.Dense(2)(inp)))
    behind.compile(optimizer="sgd", loss="mse")
    before = behind.get_weights()
    with pytest.raises(NotImplementedError, match="is not made of arithmetic and "
                                                  "differentiable cnnx.ops calls"):
        behind.fit(x, y, epochs=1, verbose=0)
    for a, b in zip(before, behind.get_weights()):
        np.testing.assert_array_equal(a, b)
    # Its code cannot go into a file; its model's weights can.
    with pytest.raises(TypeError, match="cnnx files hold no code"):
        model.save(tmp_path / "m.keras")
    assert not (tmp_path / "m.keras").exists()
    model.save_weights(tmp_path / "m.weights.npz")


class Batches(cnnx.utils.PyDataset):
    def __init__(self, x, y, batch_size, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y, self.batch_size, self.epochs_seen = x, y, batch_size, 0

    def __len__(self):
        return -(-len(self.x["image"]) // self.batch_size)

    def __getitem__(self, index):
        pick = slice(index * self.batch_size, (index + 1) * self.batch_size)
        return {"image": self.x["image"][pick], "meta": self.x["meta"][pick]}, \
            [self.y[0][pick], self.y[1][pick]]

    def on_epoch_end(self):
        self.epochs_seen += 1


def test_a_pydataset_of_dict_batches_feeds_a_two_input_model():
    model = two_in_two_out()
    model.compile(optimizer="adam", loss=["categorical_crossentropy", "mse"])
    rng = np.random.default_rng(1)
    x = {"image": rng.standard_normal((20, 6, 6, 2)), "meta": rng.standard_normal((20, 3))}
    y = [cnnx.utils.to_categorical(rng.integers(0, 3, 20), 3), rng.standard_normal((20, 1))]
    data = Batches(x, y, 8, workers=2, use_multiprocessing=False, max_queue_size=2)
    assert data.num_batches == 3 and cnnx.utils.Sequence is cnnx.utils.PyDataset
    history = model.fit(data, epochs=2, verbose=0, workers=2, max_queue_size=3)
    assert data.epochs_seen == 2 and len(history.history["loss"]) == 2
    kind, size = model.predict(data, verbose=0)
    assert kind.shape == (20, 3) and size.shape == (20, 1)
    logs = model.evaluate(data, verbose=0, return_dict=True)
    direct = model.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)
    for key in logs:
        np.testing.assert_allclose(logs[key], direct[key], rtol=1e-6)
    with pytest.raises(ValueError, match="`workers` must be a positive int"):
        Batches(x, y, 8, workers=0)
    with pytest.raises(TypeError, match="unexpected keyword argument 'threads'"):
        model.fit(data, threads=2)


def test_sequential_add_and_pop_rebuild_its_graph():
    model = cnnx.Sequential([cnnx.Input((4,)), layers.Dense(3)])
    assert model.output.shape == (None, 3)
    model.add(layers.Dense(2))
    assert model.output.shape == (None, 2) and model.output_shape == (None, 2)
    assert model.predict(np.ones((1, 4)), verbose=0).shape == (1, 2)
    model.pop()
    assert model.output.shape == (None, 3)
    assert model.predict(np.ones((1, 4)), verbose=0).shape == (1, 3)
    with pytest.raises(ValueError, match="expects 4-D input"):
        model.add(layers.Conv2D(2, 1))
    assert model.output.shape == (None, 3)      # the refused layer left no trace
    assert not hasattr(cnnx.Model, "add")       # as in Keras 3: a graph has no add


def test_validation_in_fit_is_heard_by_the_test_hooks():
    heard = []

    class Hooks(cnnx.callbacks.Callback):
        def on_test_begin(self, logs=None):  # noqa: ARG002
            heard.append("begin")

        def on_test_end(self, logs=None):
            heard.append(sorted(logs))

    model = cnnx.Sequential([cnnx.Input((3,)), layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x = np.ones((8, 3), np.float32)
    model.fit(x, np.zeros((8, 1)), epochs=2, verbose=0, validation_split=0.25,
              callbacks=[Hooks()])
    assert heard == ["begin", ["loss"], "begin", ["loss"]]


def test_inference_folds_batch_normalization_into_the_layer_before_it(rng):
    """conv -> BN -> relu and dense -> BN: the inference plan drops the BN steps, and
    predicts what the unfolded model computes; a BN after an activation, or after a
    tensor with another consumer, stays."""
    from cnnx.models.plan import Plan
    cnnx.utils.set_random_seed(8)
    kw = {"dtype": "float64"}
    inp = cnnx.Input((6, 6, 3))
    c = layers.Conv2D(4, 3, padding="same", **kw)(inp)
    h = layers.Activation("relu", **kw)(layers.BatchNormalization(**kw)(c))
    side = layers.BatchNormalization(**kw)(layers.Conv2D(4, 1, activation="relu", **kw)(h))
    shared = layers.Conv2D(4, 1, **kw)(h)          # feeds a BN and the Add: not folded
    h = layers.add([layers.BatchNormalization(**kw)(shared), shared, side], **kw)
    h = layers.Dense(5, **kw)(layers.GlobalAveragePooling2D(**kw)(h))
    out = layers.BatchNormalization(**kw)(h)
    model = cnnx.Model(inp, out)
    model.compile(optimizer="adam", loss="mse")
    x = rng.standard_normal((8, 6, 6, 3))
    model.fit(x, rng.standard_normal((8, 5)), epochs=3, verbose=0)   # moving statistics
    folded, plain = Plan(model, False), Plan(model, False, fold=False)
    # the first and the last BN, and the ReLU after the first (into the convolution)
    assert len(plain.steps) - len(folded.steps) == 3
    assert folded.steps[0].ctx.affine is not None and folded.steps[0].ctx.fused_relu
    np.testing.assert_allclose(folded.forward([x])[0], plain.forward([x])[0], rtol=1e-12,
                               atol=1e-12)
    np.testing.assert_allclose(model.predict(x, verbose=0), plain.forward([x])[0],
                               rtol=1e-12, atol=1e-12)


def _residual_model(relu, **kw):
    """conv -> BN -> relu -> conv -> BN, + the input, -> relu, twice; relu() makes each
    ReLU layer."""
    inp = cnnx.Input((6, 6, 4))
    h = inp
    for _ in range(2):
        y = relu()(layers.BatchNormalization(**kw)(layers.Conv2D(4, 3, padding="same",
                                                                 **kw)(h)))
        y = layers.BatchNormalization(**kw)(layers.Conv2D(4, 3, padding="same", **kw)(y))
        h = relu()(layers.add([y, h], **kw))
    out = layers.Dense(3, **kw)(layers.GlobalAveragePooling2D(**kw)(h))
    return cnnx.Model(inp, out)


@pytest.mark.parametrize("relu", ["Activation", "ReLU"])
def test_a_relu_after_batch_normalization_or_add_is_fused_into_it(relu, rng):
    """In training and inference plans, a plain ReLU whose input only it reads, after a
    BatchNormalization or an Add, is applied by that layer (and, at inference, after a
    linear convolution with its BN folded in): the ReLU steps are gone, and the outputs
    and gradients equal those of the same model whose ReLUs cannot fuse (ReLU with a
    max_value, which no data reaches)."""
    from cnnx.models.plan import Plan
    kw = {"dtype": "float64"}
    plain = (lambda: layers.Activation("relu", **kw)) if relu == "Activation" else \
        (lambda: layers.ReLU(**kw))
    cnnx.utils.set_random_seed(3)
    fused = _residual_model(plain, **kw)
    cnnx.utils.set_random_seed(3)
    kept = _residual_model(lambda: layers.ReLU(max_value=1e300, **kw), **kw)
    for m in (fused, kept):
        m.compile(optimizer=cnnx.optimizers.SGD(0.1), loss="mse")
    x, t = rng.standard_normal((5, 6, 6, 4)), rng.standard_normal((5, 3))
    train = Plan(fused, True, fused.trainable_weights)
    assert len(Plan(kept, True, kept.trainable_weights).steps) - len(train.steps) == 4
    assert sum(s.ctx.fused_relu for s in train.steps) == 4
    infer = Plan(fused, False)
    assert sum(s.ctx.fused_relu for s in infer.steps) == 4
    assert not any(s.layer.is_plain_relu for s in infer.steps)
    for m in (fused, kept):   # moving statistics away from their initial values
        m.fit(x, t, epochs=2, batch_size=5, verbose=0, shuffle=False)
    for a, b in zip(fused.get_weights(), kept.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(fused.predict(x, verbose=0), kept.predict(x, verbose=0),
                               rtol=1e-12, atol=1e-12)
    # the gradient through the fused layers, by finite differences
    model = fused
    model.compile(optimizer=cnnx.optimizers.SGD(1.0), loss="mse")
    weights = model.trainable_weights
    grads = Plan(model, True, weights)
    out = grads.forward([x])[0]
    analytic = grads.backward([2 * (out - t) / out.size])
    kernel = weights[0].value

    def loss():
        return float(np.mean((Plan(model, True, weights).forward([x])[0] - t) ** 2))

    np.testing.assert_allclose(analytic[0], numerical_grad(loss, kernel), rtol=1e-5,
                               atol=1e-7)


def test_activity_regularizers_join_the_loss_and_its_gradient(rng):
    """Dense(activity_regularizer=...) and ActivityRegularization add l1 sum|y| +
    l2 sum y^2 of their output (over the batch, as Keras 3) to the loss that fit
    minimises and evaluate reports; the gradient follows (finite differences)."""
    cnnx.utils.set_random_seed(9)
    kw = {"dtype": "float64"}
    model = cnnx.Sequential([
        cnnx.Input((4,)),
        layers.Dense(5, activation="tanh", activity_regularizer=cnnx.regularizers.L2(0.05),
                     **kw),
        layers.ActivityRegularization(l1=0.02, l2=0.01, **kw),
        layers.Dense(2, **kw)])
    model.compile(optimizer=cnnx.optimizers.SGD(1.0), loss="mse")
    x, y = rng.standard_normal((6, 4)), rng.standard_normal((6, 2))
    h = model.layers[0](x)
    want = np.mean((model.predict(x, verbose=0) - y) ** 2) + 0.05 * np.sum(h ** 2) \
        + 0.02 * np.sum(np.abs(h)) + 0.01 * np.sum(h ** 2)
    np.testing.assert_allclose(model.evaluate(x, y, verbose=0), want, rtol=1e-12)
    assert_directional_derivatives(model, x, y, rng)
    config = model.layers[0].get_config()
    assert config["activity_regularizer"]["config"] == {"l2": 0.05}
    again = layers.deserialize(layers.serialize(model.layers[0]))
    assert isinstance(again.activity_regularizer, cnnx.regularizers.L2)


def test_plot_model_draws_the_graph_to_a_file(tmp_path):
    pytest.importorskip("matplotlib")
    from matplotlib.image import imread
    from matplotlib.patches import FancyArrowPatch
    model = two_in_two_out()
    fig = cnnx.utils.plot_model(model, to_file=tmp_path / "m.png", show_shapes=True, dpi=50)
    image = imread(tmp_path / "m.png")
    assert image.ndim == 3 and image.shape[0] > 50 and image.shape[1] > 50
    assert [p.name for p in tmp_path.iterdir()] == ["m.png"]      # written atomically
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert len(texts) == len(model.layers)
    assert any("kind (Dense)" in t and "(None, 3)" in t for t in texts)
    arrows = [p for p in fig.axes[0].patches if isinstance(p, FancyArrowPatch)]
    edges = sum(len(n.inputs) for n in model._nodes)
    assert len(arrows) == edges == 7
    # A layer called twice is one box; a Sequential gets its input box; LR and SVG work.
    inp = cnnx.Input((3,))
    d = layers.Dense(3)
    shared = cnnx.Model(inp, layers.add([d(inp), d(d(inp))]))
    fig = cnnx.utils.plot_model(shared, to_file=tmp_path / "s.svg", rankdir="LR")
    assert sum("dense" in t.get_text() for t in fig.axes[0].texts) == 1
    assert (tmp_path / "s.svg").read_text().lstrip().startswith("<?xml")
    with pytest.raises(NotImplementedError, match="expand_nested"):
        cnnx.utils.plot_model(shared, to_file=tmp_path / "n.png", expand_nested=True)


def test_a_sequential_list_builds_its_graph_once(monkeypatch):
    # Each add() extends the graph by one node: n layers cost O(n), not O(n^2)
    # (1,200 Dense layers took 4.5 s to build when every add rebuilt the graph).
    from cnnx.models.sequential import Sequential
    builds = []
    real = Sequential._build_graph
    monkeypatch.setattr(Sequential, "_build_graph",
                        lambda self, shape: builds.append(1) or real(self, shape))
    model = cnnx.Sequential([cnnx.Input((3,))] + [layers.Dense(3) for _ in range(50)])
    assert len(builds) == 1 and len(model.layers) == 50
    assert model.predict(np.ones((2, 3), np.float32), verbose=0).shape == (2, 3)


@pytest.mark.parametrize("multiplier", [1, 2])
def test_inference_folds_batch_normalization_into_a_depthwise_convolution(rng, multiplier):
    # The scale of output channel c * multiplier + m multiplies the kernel's [:, :, c, m].
    from cnnx.models.plan import Plan
    cnnx.utils.set_random_seed(8)
    kw = {"dtype": "float64"}
    inp = cnnx.Input((6, 6, 3))
    h = layers.DepthwiseConv2D(3, depth_multiplier=multiplier, padding="same", **kw)(inp)
    out = layers.Activation("relu", **kw)(layers.BatchNormalization(**kw)(h))
    model = cnnx.Model(inp, out)
    model.compile(optimizer="adam", loss="mse")
    x = rng.standard_normal((8, 6, 6, 3))
    model.fit(x, rng.standard_normal((8, 6, 6, 3 * multiplier)), epochs=3, verbose=0)
    folded, plain = Plan(model, False), Plan(model, False, fold=False)
    assert len(plain.steps) - len(folded.steps) == 2     # the BN and the ReLU
    np.testing.assert_allclose(folded.forward([x])[0], plain.forward([x])[0], rtol=1e-12,
                               atol=1e-12)

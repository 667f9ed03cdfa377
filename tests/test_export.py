"""ONNX export: onnxruntime runs the exported graph and gives cnnx's predictions, for
every layer with an ONNX form, in both input layouts; layers without one are refused."""
import numpy as np
import pytest

import cnnx
from cnnx import layers as L

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


def run_onnx(path, feeds):
    return ort.InferenceSession(str(path)).run(None, feeds)


def check(model, xs, tmp_path, layouts=("NHWC", "NCHW"), rtol=1e-5, atol=1e-6):
    xs = xs if isinstance(xs, list) else [xs]
    want = model.predict(xs if len(xs) > 1 else xs[0], verbose=0)
    want = want if isinstance(want, list) else [want]
    for layout in layouts:
        path = tmp_path / f"m_{layout}.onnx"
        model.export(path, input_layout=layout)
        feeds = {name: (x.transpose(0, 3, 1, 2).copy() if layout == "NCHW" and x.ndim == 4
                        else x) for name, x in zip(model.input_names, xs)}
        got = run_onnx(path, feeds)
        for g, w in zip(got, want):
            if layout == "NCHW" and w.ndim == 4:
                g = g.transpose(0, 2, 3, 1)
            np.testing.assert_allclose(g, w, rtol=rtol, atol=atol)


def trained(model, x, y, loss="mse"):
    model.compile(optimizer="adam", loss=loss)
    model.fit(x, y, epochs=2, verbose=0)   # moving statistics and weights off their start
    return model


def test_a_branching_cnn(tmp_path):
    cnnx.utils.set_random_seed(0)
    inp = cnnx.Input((16, 16, 3))
    x = L.Rescaling(1 / 255.0, offset=-0.5)(inp)
    x = L.Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)
    x = L.BatchNormalization()(x)
    y = L.DepthwiseConv2D(3, padding="same", depth_multiplier=2)(x)
    y = L.SeparableConv2D(8, 3, padding="same", activation="silu")(y)
    x = L.add([x, y])
    x = L.MaxPooling2D(3, strides=2, padding="same")(x)
    z = L.AveragePooling2D(3, strides=1, padding="same")(x)
    x = L.Concatenate()([x, z])
    t = L.Conv2DTranspose(4, 3, strides=2, padding="same", activation="relu")(x)
    t = L.ZeroPadding2D(((1, 0), (2, 1)))(t)
    g = L.GlobalAveragePooling2D()(t)
    h = L.concatenate([g, L.Dense(6, activation="tanh")(L.Flatten()(x))])
    out = L.Dense(3, activation="softmax")(L.Dropout(0.5)(h))
    model = cnnx.Model(inp, out)
    x = np.random.default_rng(0).uniform(0, 255, (4, 16, 16, 3)).astype(np.float32)
    check(trained(model, x, np.array([0, 1, 2, 0]), "sparse_categorical_crossentropy"),
          x, tmp_path)


@pytest.mark.parametrize("make", [
    lambda: [L.Conv2D(4, 3, dilation_rate=2, activation="elu"), L.GlobalMaxPooling2D()],
    lambda: [L.Conv2D(4, (2, 3), strides=(2, 1), activation="gelu"), L.LeakyReLU(0.1),
             L.MaxPooling2D(2), L.Flatten(), L.BatchNormalization(), L.Dense(2)],
    lambda: [L.Conv2DTranspose(3, 2, strides=3, activation="sigmoid"),
             L.Conv2DTranspose(2, 3, strides=2, padding="same", output_padding=1),
             L.UpSampling2D(2), L.Softmax()],
    lambda: [L.Activation("hard_sigmoid"), L.ELU(0.5), L.ReLU(),
             L.GlobalAveragePooling2D(keepdims=True)],
    lambda: [L.Flatten(), L.Reshape((6, 6, 2)), L.Conv2D(2, 3), L.Activation("selu")],
    lambda: [L.RandomFlip(), L.RandomRotation(0.2), L.GaussianNoise(1.0),
             L.AveragePooling2D(3, strides=2, padding="same"),
             L.Conv2D(2, 1, activation="softplus")],
])
def test_layers_in_sequence(make, tmp_path):
    cnnx.utils.set_random_seed(1)
    model = cnnx.Sequential([cnnx.Input((6, 6, 2))] + make())
    x = np.random.default_rng(1).standard_normal((3, 6, 6, 2)).astype(np.float32)
    check(trained(model, x, model.predict(x, verbose=0) * 0 + 0.5), x, tmp_path)


def test_two_inputs_two_outputs_merges_and_a_nested_model(tmp_path):
    cnnx.utils.set_random_seed(2)
    block = cnnx.Sequential([cnnx.Input((8, 8, 2)), L.Conv2D(3, 3, padding="same"),
                             L.BatchNormalization(), L.Activation("relu")])
    a, b = cnnx.Input((8, 8, 2), name="a"), cnnx.Input((8, 8, 2), name="b")
    fa, fb = block(a), block(b)
    merged = [L.subtract([fa, fb]), L.multiply([fa, fb]), L.maximum([fa, fb]),
              L.minimum([fa, fb]), L.average([fa, fb])]
    maps = L.Concatenate(axis=-1, name="maps")(merged)
    score = L.Dense(1, name="score")(L.GlobalAveragePooling2D()(maps))
    model = cnnx.Model([a, b], [maps, score])
    rng = np.random.default_rng(2)
    xs = [rng.standard_normal((2, 8, 8, 2)).astype(np.float32) for _ in range(2)]
    model.compile(optimizer="adam", loss=["mse", "mse"])
    model.fit(xs, [np.zeros((2, 8, 8, 15)), np.zeros((2, 1))], epochs=2, verbose=0)
    check(model, xs, tmp_path)


def test_what_cannot_be_exported_is_refused_by_name(tmp_path):
    lam = cnnx.Sequential([cnnx.Input((4,)), L.Lambda(lambda x: x * 2.0, name="twice")])
    with pytest.raises(NotImplementedError, match="'twice' is a Lambda"):
        lam.export(tmp_path / "l.onnx")
    perm = cnnx.Sequential([cnnx.Input((3, 4)), L.Permute((2, 1), name="swap")])
    with pytest.raises(NotImplementedError, match="'swap' \\(Permute\\) has no ONNX form"):
        cnnx.export.to_onnx(perm)
    crop = cnnx.Sequential([cnnx.Input((6, 6, 1)), L.RandomCrop(4, 4, name="crop")])
    with pytest.raises(NotImplementedError, match="'crop' \\(RandomCrop\\) has no ONNX"):
        cnnx.export.to_onnx(crop)   # not an identity at inference, unlike the others
    ok = cnnx.Sequential([cnnx.Input((4,)), L.Dense(2)])
    with pytest.raises(ValueError, match="must end in .onnx"):
        ok.export(tmp_path / "model.bin")
    with pytest.raises(NotImplementedError, match="format 'tf_saved_model'"):
        ok.export(tmp_path / "m", format="tf_saved_model")
    assert list(tmp_path.iterdir()) == []

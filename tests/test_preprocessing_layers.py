"""Preprocessing and augmentation layers: values, Keras's semantics on exact cases,
training-only randomness, seeds, gradients, and the warp shared with
ImageDataGenerator."""
from pathlib import Path

import numpy as np
import pytest

import cnnx
from cnnx import layers
from cnnx.preprocessing.image import ImageDataGenerator

from helpers import assert_grad, numerical_grad


def images(n=3, h=6, w=6, c=2, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, h, w, c))


def gradient_check(layer, x, rng, training=True):
    y = layer.forward(layers.Context(), x, training)
    r = rng.standard_normal(y.shape)
    ctx = layers.Context()
    layer.forward(ctx, x, training)
    assert_grad(layer.backward(ctx, r), numerical_grad(
        lambda: float(np.sum(layer.forward(layers.Context(), x, training) * r)), x))


def test_rescaling_values_and_gradient(rng):
    layer = layers.Rescaling(1 / 127.5, offset=-1, dtype="float64")
    x = images()
    np.testing.assert_allclose(layer(x), x / 127.5 - 1)
    gradient_check(layer, x, rng)


def test_normalization_adapts_and_inverts(rng):
    data = rng.normal([3.0, -2.0], [2.0, 0.5], (500, 2))
    norm = layers.Normalization(dtype="float64")
    norm.adapt(data)
    np.testing.assert_allclose(norm.adapt_mean.value, data.mean(axis=0))
    out = norm(data)
    np.testing.assert_allclose(out.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(out.std(axis=0), 1, rtol=1e-12)
    back = layers.Normalization(mean=data.mean(axis=0), variance=data.var(axis=0),
                                invert=True, dtype="float64")
    np.testing.assert_allclose(back(out), data, rtol=1e-12)
    gradient_check(norm, data[:4], rng)
    with pytest.raises(ValueError, match="give both `mean` and `variance`"):
        layers.Normalization(mean=[1.0])


def test_center_crop(rng):
    x = images(2, 7, 8, 3)
    layer = layers.CenterCrop(3, 4, dtype="float64")
    np.testing.assert_array_equal(layer(x), x[:, 2:5, 2:6])
    gradient_check(layer, x, rng)
    with pytest.raises(ValueError, match="smaller than the crop"):
        layers.CenterCrop(9, 2)(x)


def test_random_layers_pass_through_in_inference():
    x = images()
    for layer in (layers.RandomFlip(), layers.RandomRotation(0.3), layers.RandomZoom(0.5),
                  layers.RandomTranslation(0.2, 0.2), layers.RandomContrast(0.5),
                  layers.RandomBrightness(0.3)):
        np.testing.assert_array_equal(layer(x, training=False), x.astype(np.float32))


def test_random_flip_flips_whole_images_and_its_gradient_follows():
    x = images(40)
    layer = layers.RandomFlip("horizontal", seed=1, dtype="float64")
    ctx = layers.Context()
    y = layer.forward(ctx, x, True)
    flipped = [not np.array_equal(a, b) for a, b in zip(x, y)]
    for a, b, f in zip(x, y, flipped):
        np.testing.assert_array_equal(b, a[:, ::-1] if f else a)
    assert 5 < sum(flipped) < 35
    r = np.random.default_rng(2).standard_normal(y.shape)
    # <flip(x), r> = <x, flip(r)>: the gradient is r flipped back, image by image.
    np.testing.assert_array_equal(layer.backward(ctx, r),
                                  [b[:, ::-1] if f else b for b, f in zip(r, flipped)])


def test_random_rotation_by_a_quarter_turn_is_rot90():
    """factor (0.25, 0.25): a quarter of 2 pi, counter-clockwise, as np.rot90 turns."""
    x = images(2, 5, 5, 1)
    y = layers.RandomRotation((0.25, 0.25), dtype="float64")(x, training=True)
    np.testing.assert_allclose(y, np.rot90(x, 1, axes=(1, 2)), atol=1e-9)
    y = layers.RandomRotation((-0.5, -0.5), dtype="float64")(x, training=True)
    np.testing.assert_allclose(y, x[:, ::-1, ::-1], atol=1e-9)


def test_random_zoom_and_translation_on_exact_cases():
    x = images(1, 8, 8, 1)
    same = layers.RandomZoom((0.0, 0.0), dtype="float64")(x, training=True)
    np.testing.assert_allclose(same, x, atol=1e-12)
    out = layers.RandomZoom((1.0, 1.0), fill_mode="constant", fill_value=-1.0,
                            dtype="float64")(x, training=True)
    # Zoomed out by 2 about the centre (3.5, 3.5): output (r, c) samples input
    # (2r - 3.5, 2c - 3.5); the border samples outside (-1).
    assert out[0, 0, 0, 0] == -1 and out[0, 7, 7, 0] == -1
    np.testing.assert_allclose(out[0, 3, 3, 0], x[0, 2:4, 2:4, 0].mean())
    np.testing.assert_allclose(out[0, 4, 4, 0], x[0, 4:6, 4:6, 0].mean())
    shift = layers.RandomTranslation((0.25, 0.25), (0.0, 0.0), fill_mode="constant",
                                     dtype="float64")(x, training=True)
    np.testing.assert_allclose(shift[:, 2:], x[:, :-2], atol=1e-12)
    assert np.all(shift[:, :2] == 0)


def test_random_contrast_and_brightness_on_exact_cases(rng):
    x = images(2, 4, 4, 3)
    mean = x.mean(axis=(1, 2), keepdims=True)
    y = layers.RandomContrast((0.5, -0.5), dtype="float64")(x, training=True)
    np.testing.assert_allclose(y, np.clip((x - mean) * 0.5 + mean, 0, 255))
    y = layers.RandomBrightness((0.1, 0.1), dtype="float64")(x, training=True)
    np.testing.assert_allclose(y, np.clip(x + 25.5, 0, 255))
    gradient_check(layers.RandomBrightness((0.1, 0.1), value_range=(0, 400),
                                           dtype="float64"), x, rng)


def test_random_layers_follow_the_global_seed_and_their_own():
    x = images(4)
    outs = []
    for _ in range(2):
        cnnx.utils.set_random_seed(7)
        model = cnnx.Sequential([cnnx.Input((6, 6, 2)), layers.RandomFlip(),
                                 layers.RandomRotation(0.1), layers.RandomZoom(0.2)])
        outs.append(model(x, training=True))
    np.testing.assert_array_equal(outs[0], outs[1])
    a = layers.RandomTranslation(0.3, 0.3, seed=4)(x, training=True)
    b = layers.RandomTranslation(0.3, 0.3, seed=4)(x, training=True)
    np.testing.assert_array_equal(a, b)


def test_one_warp_for_the_layers_and_the_generator():
    """ImageDataGenerator's rotation and RandomRotation run the same code: with the same
    angle they give the same bits (Keras 2's generator turns the other way)."""
    x = images(1, 7, 7, 3)
    gen = ImageDataGenerator(rotation_range=40, fill_mode="nearest")
    got = gen.random_transform_batch(x.copy(), np.random.default_rng(3))
    theta = np.deg2rad(np.random.default_rng(3).uniform(-40, 40, 1)[0])
    turn = -theta / (2 * np.pi)
    want = layers.RandomRotation((turn, turn), fill_mode="nearest",
                                 dtype="float64")(x, training=True)
    np.testing.assert_array_equal(got, want)


def test_training_through_a_warp_is_refused_with_the_reason():
    inp = cnnx.Input((6, 6, 2))
    h = layers.RandomRotation(0.1)(layers.Conv2D(2, 3, padding="same")(inp))
    model = cnnx.Model(inp, layers.Dense(1)(layers.Flatten()(h)))
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(NotImplementedError, match="random rotation has no gradient"):
        model.fit(images(2), np.zeros((2, 1)), verbose=0)


def test_augmentation_at_the_input_trains():
    cnnx.utils.set_random_seed(0)
    model = cnnx.Sequential([
        cnnx.Input((8, 8, 1)), layers.RandomFlip("horizontal"), layers.RandomRotation(0.05),
        layers.RandomZoom(0.1), layers.Rescaling(1 / 255), layers.Conv2D(4, 3, activation="relu"),
        layers.GlobalAveragePooling2D(), layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = images(32, 8, 8, 1)
    history = model.fit(x, (x.mean(axis=(1, 2, 3)) > 127).astype(int), epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    np.testing.assert_array_equal(model.predict(x, verbose=0), model.predict(x, verbose=0))


def test_a_random_layer_called_directly_augments_as_in_keras_3():
    """keras.io's pipeline calls the augmentation layers on batches in a dataset map,
    with no training argument: Keras 3 augments there."""
    x = images(16)
    flipped = layers.RandomFlip("horizontal", seed=0)(x)
    assert any(not np.array_equal(a, b) for a, b in zip(x, flipped))
    np.testing.assert_array_equal(layers.RandomFlip(seed=0)(x, training=False),
                                  x.astype(np.float32))
    dense = layers.Dense(2)
    np.testing.assert_array_equal(dense(x[:, 0, 0]), dense(x[:, 0, 0], training=False))


def test_resizing_is_tensorflows_half_pixel_resize_and_differentiable(rng):
    x = np.array([1.0, 2.0]).reshape(1, 1, 2, 1)
    np.testing.assert_allclose(layers.Resizing(1, 4, dtype="float64")(x).ravel(),
                               [1, 1.25, 1.75, 2])             # tf.image.resize's values
    np.testing.assert_array_equal(layers.Resizing(1, 4, interpolation="nearest",
                                                  dtype="float64")(x).ravel(), [1, 1, 2, 2])
    wide = images(2, 4, 8, 3)
    out = layers.Resizing(4, 4, crop_to_aspect_ratio=True, dtype="float64")(wide)
    np.testing.assert_allclose(out, wide[:, :, 2:6], rtol=1e-12)   # same size: the crop
    gradient_check(layers.Resizing(5, 3, dtype="float64"), images(2, 4, 6, 2), rng)
    gradient_check(layers.Resizing(3, 3, interpolation="nearest", crop_to_aspect_ratio=True,
                                   dtype="float64"), images(2, 4, 6, 2), rng)
    with pytest.raises(NotImplementedError, match="interpolation 'lanczos3'"):
        layers.Resizing(2, 2, interpolation="lanczos3")


def test_random_crop_in_training_takes_one_window_for_the_batch(rng):
    x = images(3, 7, 9, 2)
    layer = layers.RandomCrop(4, 5, seed=3, dtype="float64")
    seen = set()
    for _ in range(30):
        y = layer(x, training=True)
        matches = [(r, c) for r in range(4) for c in range(5)
                   if np.array_equal(y, x[:, r:r + 4, c:c + 5])]
        assert len(matches) == 1          # one window, the same for every image
        seen.add(matches[0])
    assert len(seen) > 5                  # and it moves from call to call
    again = layers.RandomCrop(4, 5, seed=3, dtype="float64")
    np.testing.assert_array_equal(again(x, training=True),
                                  layers.RandomCrop(4, 5, seed=3, dtype="float64")(
                                      x, training=True))
    # the window is fixed within one forward pass: its gradient goes back to it
    ctx = layers.Context()
    y = layer.forward(ctx, x, True)
    dx = layer.backward(ctx, np.ones_like(y))
    assert dx.sum() == y.size and set(np.unique(dx)) == {0.0, 1.0}


def test_random_crop_in_inference_resizes_the_centred_window(rng):
    # 6 x 8 to 4 x 4: the largest centred square is 6 x 6 (columns 1-6), resized.
    x = images(2, 6, 8, 3)
    layer = layers.RandomCrop(4, 4, dtype="float64")
    want = layers.Resizing(4, 4, dtype="float64")(x[:, :, 1:7])
    np.testing.assert_allclose(layer(x, training=False), want, rtol=1e-12)
    # in training too, when the images are not larger than the crop in both directions
    np.testing.assert_allclose(layers.RandomCrop(6, 4, dtype="float64")(x, training=True),
                               x[:, :, 2:6], rtol=1e-12)   # 6 x 4: no resize
    gradient_check(layer, x, rng, training=False)
    config = layer.get_config()
    assert layers.RandomCrop.from_config(config).get_config() == config
    with pytest.raises(ValueError, match="`height` must be a positive int"):
        layers.RandomCrop(0, 4)


TF_RESIZE = np.load(Path(__file__).resolve().parent / "data" / "tf_resize_expected.npz")


@pytest.mark.parametrize("key", sorted(k for k in TF_RESIZE.files if k != "image"))
def test_resizing_equals_tensorflows_resize(key):
    # tests/data/make_tf_resize_fixtures.py: tf.image.resize, as Keras's Resizing calls
    # it, on 7 x 6 images to larger, smaller and mixed sizes (antialias off).
    method, size = key.split("_")
    h, w = (int(v) for v in size.split("x"))
    got = layers.Resizing(h, w, interpolation=method)(TF_RESIZE["image"])
    np.testing.assert_allclose(got, TF_RESIZE[key], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("method", ["bicubic", "area"])
def test_bicubic_and_area_resizing_are_differentiable(rng, method):
    # (images in [0, 1]: a linear map, checked where finite differences are exact)
    gradient_check(layers.Resizing(5, 4, interpolation=method, dtype="float64"),
                   images(2, 7, 6, 2) / 255, rng)


def test_upsampling_bicubically_is_tensorflows_resize():
    image = TF_RESIZE["image"]
    up = layers.UpSampling2D(2, interpolation="bicubic")(image)
    np.testing.assert_allclose(up, layers.Resizing(14, 12, interpolation="bicubic")(image),
                               rtol=1e-6)

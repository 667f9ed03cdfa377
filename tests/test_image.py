"""cnnx.preprocessing.image: loading, augmentation by its defining properties, iterators,
and fit / evaluate / predict on data sources."""
import sys
import warnings

import numpy as np
import pytest

pytest.importorskip("PIL")
import cnnx as keras  # noqa: E402
from cnnx import _warp  # noqa: E402
from cnnx.preprocessing import image  # noqa: E402
from cnnx.preprocessing.image import ImageDataGenerator  # noqa: E402


@pytest.fixture
def photo(shared_data):
    return shared_data / "catsdogs" / "training_set" / "cats" / "cat.1.jpg"


def test_load_img_to_array_and_back(tmp_path, photo):
    img = image.load_img(photo, target_size=(48, 64))
    assert img.size == (64, 48) and img.mode == "RGB"
    x = image.img_to_array(img)
    assert x.shape == (48, 64, 3) and x.dtype == np.float32 and x.max() <= 255
    gray = image.img_to_array(image.load_img(photo, color_mode="grayscale"))
    assert gray.shape[2] == 1
    assert keras.utils.load_img is image.load_img
    image.save_img(tmp_path / "x.png", x, scale=False)
    again = image.img_to_array(image.load_img(tmp_path / "x.png"))
    np.testing.assert_array_equal(again, np.round(x))  # PNG is lossless


def test_a_corrupt_image_is_reported_by_name(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(ValueError, match=r"cannot decode '.*broken\.jpg' as an image"):
        image.load_img(bad)


def test_missing_pillow_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match=r"pip install 'cnnx\[image\]'"):
        image.load_img("whatever.jpg")


def _batch():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (4, 8, 10, 3)).astype(np.float64)


def test_no_augmentation_is_the_identity_then_rescale():
    x = _batch()
    out = ImageDataGenerator(rescale=1 / 255).standardize(x.copy())
    np.testing.assert_allclose(out, (x / 255).astype(np.float32))


def test_flips_rotation_and_shift_by_their_definitions():
    x = _batch()
    rng = np.random.default_rng(1)
    flipped = ImageDataGenerator(horizontal_flip=True).random_transform_batch(x.copy(), rng)
    for a, b in zip(flipped, x):
        assert np.array_equal(a, b) or np.array_equal(a, b[:, ::-1])
    square = np.random.default_rng(2).random((1, 6, 6, 1))
    gen = ImageDataGenerator(rotation_range=90)
    # The batch's affine matrices are a private step; this test pins it to exact angles
    # and shifts, to check the warp against np.rot90 and slicing.
    m = gen._matrices(1, 6, 6, np.random.default_rng(0))
    # Force exactly 90 degrees: output pixel (r, c) reads input (c, 5 - r) or its mirror.
    theta = np.pi / 2
    gen._matrices = lambda b, h, w, rng: _rotation(theta, h, w)
    rotated = gen.random_transform_batch(square.copy(), np.random.default_rng(0))
    assert np.allclose(rotated[0, :, :, 0], np.rot90(square[0, :, :, 0], -1)) or np.allclose(
        rotated[0, :, :, 0], np.rot90(square[0, :, :, 0], 1))
    assert m.shape == (1, 3, 3)
    shift = ImageDataGenerator(width_shift_range=2, fill_mode="constant", cval=-1)
    shift._matrices = lambda b, h, w, rng: _translation(0, 2)
    shifted = shift.random_transform_batch(square.copy(), None)
    np.testing.assert_allclose(shifted[0, :, :4, 0], square[0, :, 2:, 0])
    assert np.all(shifted[0, :, 4:, 0] == -1)  # filled with cval


def _rotation(theta, h, w):
    c, s = np.cos(theta), np.sin(theta)
    oh, ow = h / 2 - 0.5, w / 2 - 0.5
    rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    offset = np.array([[1, 0, oh], [0, 1, ow], [0, 0, 1.0]])
    reset = np.array([[1, 0, -oh], [0, 1, -ow], [0, 0, 1.0]])
    return (offset @ rot @ reset)[None]


def _translation(tr, tc):
    m = np.eye(3)
    m[0, 2], m[1, 2] = tr, tc
    return m[None]


@pytest.mark.parametrize("mode,expected", [("nearest", [0, 0, 0, 1, 2, 3, 3, 3]),
                                           ("reflect", [1, 0, 0, 1, 2, 3, 3, 2]),
                                           ("wrap", [2, 3, 0, 1, 2, 3, 0, 1])])
def test_fill_modes(mode, expected):
    # The index map behind every fill_mode, a private helper, checked on its own.
    idx, _ = _warp._fill_index(np.arange(-2, 6), 4, mode)
    assert idx.tolist() == expected


def test_zoom_and_shear_keep_shape_and_range():
    x = _batch()
    gen = ImageDataGenerator(shear_range=20, zoom_range=0.3, rotation_range=30,
                             brightness_range=(0.5, 1.5))
    out = gen.random_transform_batch(x.copy(), np.random.default_rng(3))
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 255
    assert not np.allclose(out, x)


def test_flow_and_subsets():
    x = np.arange(10 * 4 * 4 * 1, dtype=np.float32).reshape(10, 4, 4, 1)
    y = np.arange(10)
    it = ImageDataGenerator(validation_split=0.3).flow(x, y, batch_size=4, shuffle=False,
                                                       subset="training")
    assert len(it) == 2 and it.n == 7
    xb, yb = it[0]
    assert yb.tolist() == [3, 4, 5, 6] and xb.dtype == np.float32
    val = ImageDataGenerator(validation_split=0.3).flow(x, y, subset="validation")
    assert val.n == 3
    seen = [next(it)[1].tolist() for _ in range(3)]
    assert seen == [[3, 4, 5, 6], [7, 8, 9], [3, 4, 5, 6]]


def test_flow_from_directory_modes_and_split(capsys, shared_data):
    root = shared_data / "catsdogs" / "test_set"
    gen = ImageDataGenerator(rescale=1 / 255, validation_split=0.25)
    train = gen.flow_from_directory(root, target_size=(16, 16), batch_size=8,
                                    class_mode="categorical", subset="training", shuffle=False)
    val = gen.flow_from_directory(root, target_size=(16, 16), batch_size=8,
                                  class_mode="sparse", subset="validation", shuffle=False)
    assert "Found 120 images belonging to 2 classes." in capsys.readouterr().out
    assert train.samples == 120 and val.samples == 40
    assert val.filenames[0].endswith("cat.4001.jpg")  # validation: each class's first part
    xb, yb = train[0]
    assert xb.shape == (8, 16, 16, 3) and yb.shape == (8, 2) and xb.max() <= 1
    assert yb[:, 0].all()  # sorted: cats first
    gray = ImageDataGenerator().flow_from_directory(root, target_size=(8, 8),
                                                    color_mode="grayscale", class_mode=None,
                                                    batch_size=4)
    assert gray[0].shape == (4, 8, 8, 1)
    inp = ImageDataGenerator().flow_from_directory(root, target_size=(8, 8), class_mode="input",
                                                   batch_size=2)
    a, b = inp[0]
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="class_mode must be"):
        ImageDataGenerator().flow_from_directory(root, class_mode="onehot")
    with pytest.raises(FileNotFoundError, match="no such directory"):
        ImageDataGenerator().flow_from_directory(root / "nope")


def _small_model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def test_fit_evaluate_predict_on_generators_and_sequences():
    rng = np.random.default_rng(0)
    x = rng.random((12, 4, 4, 1)).astype(np.float32)
    y = rng.integers(0, 3, 12)

    def generator():
        while True:
            for i in range(0, 12, 4):
                yield x[i:i + 4], y[i:i + 4]

    model = _small_model()
    history = model.fit(generator(), steps_per_epoch=3, epochs=2, verbose=0,
                        validation_data=generator(), validation_steps=3)
    assert sorted(history.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    seq = ImageDataGenerator().flow(x, y, batch_size=5, shuffle=False)
    loss, acc = model.evaluate(seq, verbose=0)
    assert loss == pytest.approx(model.evaluate(x, y, verbose=0)[0], rel=1e-5)
    np.testing.assert_allclose(model.predict(ImageDataGenerator().flow(x, batch_size=5,
                                                                        shuffle=False),
                                             verbose=0), model.predict(x, verbose=0),
                               rtol=1e-6)
    with pytest.raises(ValueError, match="pass steps_per_epoch"):
        model.fit(generator(), epochs=1, verbose=0)
    with pytest.raises(ValueError, match="`y` must not be given"):
        model.fit(seq, y, verbose=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit_generator(generator(), steps_per_epoch=3, epochs=1, verbose=0)
    assert any("fit_generator is deprecated" in str(w.message) for w in caught)


def test_errors_in_the_data_thread_reach_the_caller():
    def broken():
        yield np.zeros((2, 4, 4, 1)), np.zeros(2)
        raise RuntimeError("decoder failed")

    model = _small_model()
    with pytest.raises(RuntimeError, match="decoder failed"):
        model.fit(broken(), steps_per_epoch=3, verbose=0)


def test_image_dataset_from_directory(shared_data):
    root = shared_data / "catsdogs" / "test_set"
    train, val = keras.utils.image_dataset_from_directory(
        root, image_size=(20, 24), batch_size=16, validation_split=0.5, subset="both",
        seed=3)
    assert train.class_names == ["cats", "dogs"]
    assert len(train.file_paths) == len(val.file_paths) == 80 and len(train) == 5
    xb, yb = next(iter(train))
    assert xb.shape == (16, 20, 24, 3) and xb.dtype == np.float32 and xb.max() > 1
    assert yb.dtype == np.int32 and set(yb.numpy().tolist()) <= {0, 1}
    cat = keras.utils.image_dataset_from_directory(root, image_size=(8, 8),
                                                   label_mode="categorical", batch_size=4)
    assert next(iter(cat))[1].shape == (4, 2)
    # A tutorial's pipeline: augment in map, prefetch; fit takes it as it is.
    flip = keras.layers.RandomFlip("horizontal")
    train = train.map(lambda x, y: (flip(x, training=True), y)).prefetch(keras.utils.dataset
                                                                        .AUTOTUNE)
    model = keras.Sequential([keras.Input((20, 24, 3)), keras.layers.Flatten(),
                              keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(train, epochs=1, verbose=0, validation_data=val)


def test_only_regular_files_are_read(tmp_path):
    import os
    fifo = tmp_path / "x.png"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match=r"load_img: .*x.png' is not a regular file"):
        image.load_img(fifo)        # before the fix: hung forever in open()
    zero = tmp_path / "zero.png"
    zero.symlink_to("/dev/zero")
    with pytest.raises(ValueError, match="zero.png' is not a regular file"):
        image.load_img(zero)        # before the fix: read until memory ran out
    folder = tmp_path / "classes" / "a"
    folder.mkdir(parents=True)
    os.mkfifo(folder / "y.png")
    with pytest.raises(ValueError, match=r"flow_from_directory: .*y.png' is not a regular"):
        ImageDataGenerator().flow_from_directory(tmp_path / "classes")


def test_images_over_the_size_bound_are_refused(tmp_path, monkeypatch):
    big = tmp_path / "big.png"
    big.write_bytes(b"\x89PNG" + bytes(2000))
    monkeypatch.setattr(image, "MAX_IMAGE_BYTES", 1000)
    with pytest.raises(ValueError, match=r"big.png' has 2004 bytes, more than an image may"):
        image.load_img(big)


def test_sixteen_bit_and_float_images_keep_their_range(tmp_path):
    from PIL import Image
    values = np.array([[0, 1000], [40000, 65535]], np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)   # a 16-bit grayscale PNG
    gray = image.img_to_array(image.load_img(path, color_mode="grayscale"))
    np.testing.assert_array_equal(gray[..., 0], values)   # as Keras: 0..65535
    rgb = image.img_to_array(image.load_img(path))
    np.testing.assert_array_equal(rgb[..., 0], np.round(values / 257))   # not clipped
    floats = np.array([[0.0, 0.25], [0.5, 1.0]], np.float32)
    tif = tmp_path / "float.tif"
    Image.fromarray(floats, "F").save(tif)
    rgb = image.img_to_array(image.load_img(tif))
    np.testing.assert_array_equal(rgb[..., 1], np.round(floats * 255))


def test_featurewise_statistics_learnt_by_fit():
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, (200, 4, 4, 3)) * np.array([1.0, 2.0, 0.5])
    gen = ImageDataGenerator(featurewise_center=True, featurewise_std_normalization=True)
    with pytest.warns(UserWarning) as record:
        gen.standardize(x[:2].copy())
    assert [str(w.message).split(",")[0] for w in record] == [
        "This ImageDataGenerator specifies featurewise_center",
        "This ImageDataGenerator specifies featurewise_std_normalization"]
    gen.fit(x)
    np.testing.assert_allclose(gen.mean.ravel(), x.mean(axis=(0, 1, 2)))
    out = gen.standardize(x.copy())
    np.testing.assert_allclose(out.mean(axis=(0, 1, 2)), 0, atol=1e-10)
    np.testing.assert_allclose(out.std(axis=(0, 1, 2)), 1, atol=1e-5)
    # ZCA: the whitened data's covariance is the identity (less the epsilon's shrinkage).
    small = rng.normal(0, 1, (500, 2, 2, 1)) @ np.ones((1, 1)) + np.linspace(0, 1, 4).reshape(
        1, 2, 2, 1) * rng.normal(0, 1, (500, 1, 1, 1))
    zca = ImageDataGenerator(zca_whitening=True, zca_epsilon=1e-9).fit(small)
    white = zca.standardize(small.copy()).reshape(500, -1)
    np.testing.assert_allclose(white.T @ white / 500, np.eye(4), atol=1e-6)
    with pytest.raises(NotImplementedError, match="`channel_shift_range`"):
        ImageDataGenerator(channel_shift_range=10.0)


def test_image_dataset_from_directory_is_also_in_preprocessing():
    import cnnx
    assert cnnx.preprocessing.image_dataset_from_directory is \
        cnnx.utils.image_dataset_from_directory

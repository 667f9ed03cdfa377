"""The demo: the course CNN trained end to end, saved, reloaded, and asked about one image.

    python -m cnnx demo [--data shapes|mnist|fashion_mnist|DIR] [--epochs N] [--out DIR]

The default data set is drawn by cnnx itself (no download): 64x64 colour images of
circles and squares of random size, position and colour on noisy backgrounds, the same
for the same --seed. DIR is a folder of one subfolder per class, read with
flow_from_directory as in the course.
"""
import argparse
import os
import sys
import time

import numpy as np

SHAPES = ["circle", "square"]


def draw_shapes(n, seed, size=64):
    """n images (n, size, size, 3) float32 in [0, 1] and labels (0 circle, 1 square)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float32)
    cy, cx = (rng.uniform(0.3, 0.7, (2, n, 1, 1)) * size).astype(np.float32)
    radius = (rng.uniform(0.18, 0.3, (n, 1, 1)) * size).astype(np.float32)
    dy, dx = rows - cy, cols - cx
    circle = dy ** 2 + dx ** 2 <= radius ** 2
    square = np.maximum(np.abs(dx), np.abs(dy)) <= radius * 0.886  # the circle's area
    mask = np.where(labels[:, None, None] == 0, circle, square)[..., None]
    background = rng.uniform(0, 0.5, (n, 1, 1, 3)) + rng.normal(0, 0.08, (n, size, size, 3))
    colour = rng.uniform(0.5, 1.0, (n, 1, 1, 3))
    images = np.clip(np.where(mask, colour, background), 0, 1).astype(np.float32)
    return images, labels


def course_cnn(input_shape, num_classes):
    """The course's CNN: Conv 32 3x3 relu, pool 2, Conv 32 3x3 relu, pool 2, Flatten,
    Dense 128 relu, then Dense 1 sigmoid (two classes) or Dense K softmax."""
    import cnnx
    from cnnx import layers
    binary = num_classes == 2
    model = cnnx.Sequential([
        cnnx.Input(input_shape),
        layers.Conv2D(32, (3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Conv2D(32, (3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
        layers.Dense(1 if binary else num_classes, activation="sigmoid" if binary
                     else "softmax"),
    ], name="course_cnn")
    model.compile(optimizer="adam", loss="binary_crossentropy" if binary
                  else "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _load(data, seed):
    """(x_train, y_train, x_test, y_test, class names) for the array data sets."""
    import cnnx
    if data == "shapes":
        x, y = draw_shapes(2400, seed)
        return x[:2000], y[:2000], x[2000:], y[2000:], SHAPES
    loader = {"mnist": cnnx.datasets.mnist, "fashion_mnist": cnnx.datasets.fashion_mnist}[data]
    (x_train, y_train), (x_test, y_test) = loader.load_data()
    names = (list(cnnx.datasets.fashion_mnist.CLASS_NAMES) if data == "fashion_mnist"
             else [str(i) for i in range(10)])
    scale = lambda a: (a.astype(np.float32) / 255)[..., None]  # noqa: E731
    return scale(x_train), y_train, scale(x_test), y_test, names


def run(data="shapes", epochs=5, out="cnnx-demo", seed=0, batch_size=32):
    import cnnx
    cnnx.utils.set_random_seed(seed)
    os.makedirs(out, exist_ok=True)
    start = time.perf_counter()
    if data in ("shapes", "mnist", "fashion_mnist"):
        x_train, y_train, x_test, y_test, names = _load(data, seed)
        print(f"Data: {data}, {len(x_train)} training and {len(x_test)} test images of "
              f"shape {x_train.shape[1:]}, classes {names}")
        model = course_cnn(x_train.shape[1:], len(names))
        model.summary()
        model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs,
                  validation_split=0.1)
        loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
        sample, truth = x_test[0], names[int(y_test[0])]
    else:
        from cnnx.preprocessing.image import ImageDataGenerator
        train = ImageDataGenerator(rescale=1 / 255, shear_range=0.2, zoom_range=0.2,
                                   horizontal_flip=True, validation_split=0.2)
        flow = dict(target_size=(64, 64), batch_size=batch_size, seed=seed)
        probe = ImageDataGenerator().flow_from_directory(data, class_mode=None, **flow)
        names = list(probe.class_indices)
        mode = "binary" if len(names) == 2 else "sparse"
        training = train.flow_from_directory(data, class_mode=mode, subset="training", **flow)
        testing = ImageDataGenerator(rescale=1 / 255, validation_split=0.2).flow_from_directory(
            data, class_mode=mode, subset="validation", shuffle=False, **flow)
        model = course_cnn((64, 64, 3), len(names))
        model.summary()
        model.fit(training, epochs=epochs, validation_data=testing)
        loss, accuracy = model.evaluate(testing, verbose=0)
        images, labels = testing[0]
        sample, truth = images[0], names[int(labels[0])]
    print(f"Test accuracy: {accuracy:.4f} (loss {loss:.4f})")

    path = os.path.join(out, "course_cnn.keras")
    model.save(path)
    reloaded = cnnx.models.load_model(path)
    p = reloaded.predict(sample[None], verbose=0)[0]
    guess = (names[int(p[0] > 0.5)], float(max(p[0], 1 - p[0]))) if p.shape[0] == 1 \
        else (names[int(np.argmax(p))], float(np.max(p)))
    print(f"Saved to {path}, reloaded; one test image, a {truth}: predicted {guess[0]} "
          f"({guess[1]:.1%})")
    try:
        from cnnx import viz
        conv = reloaded.layers[0]
        viz.plot_filters(conv, os.path.join(out, "filters.png"))
        viz.plot_feature_maps(reloaded, sample, conv, os.path.join(out, "feature_maps.png"))
        print(f"Wrote {os.path.join(out, 'filters.png')} and "
              f"{os.path.join(out, 'feature_maps.png')}")
    except ImportError:
        print("Install matplotlib (pip install 'cnnx[plot]') for pictures of the learned "
              "filters and feature maps.")
    print(f"Done in {time.perf_counter() - start:.1f} s.")
    return accuracy


def main(argv=None):
    parser = argparse.ArgumentParser(prog="cnnx demo", description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="shapes",
                        help="shapes (default, drawn by cnnx), mnist, fashion_mnist, or a "
                             "folder with one subfolder per class")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--out", default="cnnx-demo", help="where to write the model and PNGs")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.data not in ("shapes", "mnist", "fashion_mnist") and not os.path.isdir(args.data):
        parser.error(f"--data: {args.data!r} is neither a known data set nor a folder")
    try:
        run(args.data, args.epochs, args.out, args.seed)
    except OSError as e:   # a data set that cannot be downloaded: say so, no traceback
        print(f"cnnx demo: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

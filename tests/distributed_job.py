"""The jobs tests/test_distributed.py launches with mpiexec (or plain python, for the
one-process run without MPI). Each process writes what it saw to <out>/<tag>-<rank>.json.

    python distributed_job.py MODE OUT TAG [ARGS...]
"""
import hashlib
import json
import os
import signal
import sys

import numpy as np

import cnnx
from cnnx import distributed as hvd
from cnnx import layers


def digest(model):
    return hashlib.sha256(b"".join(w.tobytes() for w in model.get_weights())).hexdigest()


def data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((110, 8, 8, 2)).astype("float32")
    y = rng.integers(0, 3, 110)
    w = rng.uniform(0.5, 1.5, 110)
    return x, y, w


def build(seed=3):
    cnnx.utils.set_random_seed(seed)
    # Random augmentation, Dropout and BatchNormalization: every kind of state a step
    # has beside the gradient (random draws, moving statistics).
    model = cnnx.Sequential([
        cnnx.Input((8, 8, 2)), layers.RandomFlip("horizontal"),
        layers.Conv2D(4, 3, activation="relu"), layers.BatchNormalization(),
        layers.Dropout(0.25), layers.Flatten(),
        layers.Dense(3, activation="softmax", kernel_regularizer="l2")])
    model.compile(optimizer=hvd.DistributedOptimizer(cnnx.optimizers.Adam(0.01)),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def write(out, tag, record):
    with open(os.path.join(out, f"{tag}-{hvd.rank()}.json"), "w") as f:
        json.dump(record, f)


def train(out, tag, epochs="3"):
    model = build()
    x, y, w = data()
    history = model.fit(x[:90], y[:90], sample_weight=w[:90], batch_size=28,
                        epochs=int(epochs), verbose=0, validation_data=(x[90:], y[90:]),
                        callbacks=[hvd.callbacks.BroadcastGlobalVariablesCallback(0),
                                   hvd.callbacks.MetricAverageCallback()])
    write(out, tag, {"size": hvd.size(), "digest": digest(model),
                     "history": history.history})


def checkpointed(out, tag, epochs):
    """Trains the first `epochs` epochs of train(), rank 0 saving each epoch."""
    model = build()
    x, y, w = data()
    save = cnnx.callbacks.ModelCheckpoint(os.path.join(out, "ckpt.keras"), monitor="loss")
    model.fit(x[:90], y[:90], sample_weight=w[:90], batch_size=28, epochs=int(epochs),
              verbose=0, validation_data=(x[90:], y[90:]), callbacks=[save])
    write(out, tag, {"digest": digest(model)})


def resume(out, tag, epochs="3"):
    cnnx.utils.set_random_seed(3)
    model = hvd.load_model(os.path.join(out, "ckpt.keras"))
    done = model.optimizer.iterations // 4   # 4 steps per epoch
    x, y, w = data()
    model.fit(x[:90], y[:90], sample_weight=w[:90], batch_size=28, epochs=int(epochs),
              initial_epoch=done, verbose=0, validation_data=(x[90:], y[90:]))
    write(out, tag, {"digest": digest(model), "resumed_at": done})


def inference(out, tag):
    model = build()
    x, y, w = data()
    # 110 samples in batches of 16: 7 batches, the last of 14, over 2 or 4 processes.
    predicted = hvd.predict(model, x, batch_size=16)
    at_root = hvd.predict(model, x, batch_size=16, root=0)
    evaluated = hvd.evaluate(model, x, y, batch_size=16, sample_weight=w, return_dict=True)
    local = model.predict(x, batch_size=16, verbose=0)
    write(out, tag, {
        "predict_equal": bool(np.array_equal(predicted, local)),
        "root": None if at_root is None else bool(np.array_equal(at_root, local)),
        "evaluate": evaluated,
        "local_evaluate": model.evaluate(x, y, batch_size=16, sample_weight=w, verbose=0,
                                         return_dict=True)})


def images(out, tag, folder):
    cnnx.utils.set_random_seed(5)   # the same model in every process
    model = cnnx.Sequential([cnnx.Input((6, 5, 3)), layers.Rescaling(1 / 255),
                             layers.Conv2D(2, 3), layers.GlobalAveragePooling2D()])
    for name in ("p.csv", "p.npz"):
        count = hvd.predict_directory(model, folder, os.path.join(out, name),
                                      batch_size=3)
    if hvd.rank() == 0:
        model.save(os.path.join(out, "images.keras"))
    write(out, tag, {"count": count})


def progress(out, tag):
    """fit with verbose=2 and a CSVLogger: the lines and the file come from rank 0."""
    model = build()
    x, y, _ = data()
    log = cnnx.callbacks.CSVLogger(os.path.join(out, f"log-{hvd.rank()}.csv"))
    model.fit(x, y, batch_size=32, epochs=2, verbose=2, callbacks=[log])
    write(out, tag, {})


def average(out, tag):
    """A log that differs between processes, averaged by MetricAverageCallback; the
    learning rate warmed up by LearningRateWarmupCallback."""
    model = build()
    x, y, _ = data()

    class PerRank(cnnx.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["rank_value"] = float(hvd.rank())

    rates = []
    record = cnnx.callbacks.LambdaCallback(
        on_train_batch_begin=lambda batch, logs=None: rates.append(
            model.optimizer.learning_rate))
    warm = hvd.callbacks.LearningRateWarmupCallback(0.01, warmup_epochs=2, verbose=1)
    average = hvd.callbacks.MetricAverageCallback()
    history = model.fit(x, y, batch_size=32, epochs=3, verbose=0,
                        callbacks=[warm, record, PerRank(), average])
    write(out, tag, {"history": history.history, "rates": rates})


def directory_fit(out, tag, folder):
    """flow_from_directory with augmentation: each process decodes only its images."""
    cnnx.utils.set_random_seed(4)
    gen = cnnx.preprocessing.image.ImageDataGenerator(
        rescale=1 / 255, rotation_range=20, width_shift_range=0.1, zoom_range=0.2,
        horizontal_flip=True, brightness_range=(0.8, 1.2))
    flow = gen.flow_from_directory(folder, target_size=(8, 8), batch_size=10,
                                   class_mode="binary", seed=7)
    model = cnnx.Sequential([cnnx.Input((8, 8, 3)), layers.Conv2D(3, 3, activation="relu"),
                             layers.Flatten(), layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=hvd.DistributedOptimizer("adam"), loss="binary_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(flow, epochs=2, verbose=0)
    write(out, tag, {"digest": digest(model), "history": history.history})


def unseeded(out, tag, folder):
    """No seed anywhere: each process starts from its own random state; the job must
    still agree (rank 0's weights, generator and shuffles)."""
    gen = cnnx.preprocessing.image.ImageDataGenerator(rescale=1 / 255, rotation_range=20,
                                                      horizontal_flip=True)
    flow = gen.flow_from_directory(folder, target_size=(8, 8), batch_size=10,
                                   class_mode="binary")
    model = cnnx.Sequential([cnnx.Input((8, 8, 3)), layers.Conv2D(3, 3, activation="relu"),
                             layers.Dropout(0.3), layers.Flatten(),
                             layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=hvd.DistributedOptimizer("adam"), loss="binary_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(flow, epochs=2, verbose=0,
                        callbacks=[hvd.callbacks.BroadcastGlobalVariablesCallback(0)])
    write(out, tag, {"digest": digest(model), "history": history.history})


def fail(out, tag, how):
    model = build()
    x, y, _ = data()

    class Fail(cnnx.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if batch == 2 and hvd.rank() == hvd.size() - 1:
                if how == "raise":
                    raise RuntimeError(f"failing on purpose on rank {hvd.rank()}")
                os.kill(os.getpid(), signal.SIGKILL)

    model.fit(np.repeat(x, 100, axis=0), np.repeat(y, 100), batch_size=16, epochs=50,
              verbose=0, callbacks=[Fail()])


if __name__ == "__main__":
    mode, out, tag, *args = sys.argv[1:]
    hvd.init()
    globals()[mode](out, tag, *args)

"""Step 4: full connection. A small fully connected classifier (Flatten, Dense, Dense) on
the circles and squares that the demo draws, without any convolution."""

import cnnx
from cnnx.demo import draw_shapes

from _common import args, can_plot, save

a = args(__doc__)
cnnx.utils.set_random_seed(0)
x, y = draw_shapes(600 if a.quick else 3000, seed=1, size=24)
split = int(len(x) * 0.8)
model = cnnx.Sequential([
    cnnx.Input(x.shape[1:]),
    cnnx.layers.Flatten(),
    cnnx.layers.Dense(64, activation="relu"),
    cnnx.layers.Dense(1, activation="sigmoid"),
])
model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
model.summary()
history = model.fit(x[:split], y[:split], batch_size=32, epochs=3 if a.quick else 15,
                    verbose=2, validation_split=0.1)
loss, accuracy = model.evaluate(x[split:], y[split:], verbose=0)
print(f"test accuracy of the fully connected network: {accuracy:.3f}")
if can_plot():
    save(cnnx.viz.plot_history(history, title="a fully connected network on shapes"), a,
         "fully_connected_history.png")

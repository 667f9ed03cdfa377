"""Step 4b: softmax turns the scores into probabilities, and three ways of measuring two
networks' errors on the same three images (dog, cat, dog): classification error, mean
squared error and cross-entropy. Classification error cannot tell the two apart; mean
squared error and cross-entropy both rank NN1 first (cross-entropy's gradient, p - t, is
why it is the loss of classifiers)."""
import numpy as np

import cnnx

from _common import args, can_plot, figure, save

a = args(__doc__)
z = np.array([[np.log(19.0), 0.0]])
print(f"softmax of the dog/cat scores (z1 - z2 = ln 19): {cnnx.ops.softmax(z)[0].round(4)}")
targets = np.array([[1, 0], [0, 1], [1, 0]], np.float64)
nn1 = np.array([[0.9, 0.1], [0.1, 0.9], [0.4, 0.6]])
nn2 = np.array([[0.6, 0.4], [0.3, 0.7], [0.1, 0.9]])
print(f"{'':6s} {'classification error':>22s} {'mean squared error':>20s} "
      f"{'cross-entropy':>15s}")
measures = {}
for name, p in (("NN1", nn1), ("NN2", nn2)):
    error = np.mean(np.argmax(p, 1) != np.argmax(targets, 1))
    mse = np.mean(np.sum((p - targets) ** 2, axis=1))
    ce = np.mean(cnnx.ops.categorical_crossentropy(targets, p))
    measures[name] = (error, mse, ce)
    print(f"{name:6s} {f'{error:.2f} (1/3)':>22s} {mse:20.2f} {ce:15.2f}")
if can_plot():
    fig = figure(7, 3)
    ax = fig.add_subplot(1, 1, 1)
    kinds = ["classification error", "mean squared error", "cross-entropy"]
    for k, (name, values) in enumerate(measures.items()):
        bars = ax.bar(np.arange(3) + (k - 0.5) * 0.38, values, 0.38, label=name)
        ax.bar_label(bars, fmt="%.2f", fontsize=8)
    ax.set_xticks(np.arange(3), kinds)
    ax.set_ylabel("error (lower is better)")
    ax.set_title("two networks on the same three images: classification error ties")
    ax.legend()
    save(fig, a, "errors.png")

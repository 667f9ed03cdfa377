"""cnnx.viz: pictures of what a CNN learned, with matplotlib (the optional extra
cnnx[plot]). Figures are drawn on matplotlib's Agg canvas, without pyplot's global
state, so they work on machines without a display."""
import numpy as np

__all__ = ["plot_filters", "plot_feature_maps", "plot_history", "plot_model"]


def _figure(n, cols, cell=1.2):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("cnnx.viz needs matplotlib: pip install 'cnnx[plot]' "
                          "(or pip install matplotlib)") from None
    cols = max(1, min(cols, n))
    rows = -(-n // cols)
    fig = Figure(figsize=(cols * cell, rows * cell + 0.4))
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(rows, cols, i + 1) for i in range(n)]
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    return fig, axes


def _normalise(a):
    a = a - a.min()
    top = a.max()
    return a / top if top > 0 else a


def plot_filters(layer, path=None, cols=8, title=None):
    """The kernels of a Conv2D layer, one tile per filter (RGB when the layer reads 3
    channels, else the mean over input channels). Saved as PNG when `path` is given."""
    kernel = layer.kernel.value  # (kh, kw, in, out)
    fig, axes = _figure(kernel.shape[3], cols)
    for i, ax in enumerate(axes):
        k = kernel[:, :, :, i]
        if k.shape[2] == 3:
            ax.imshow(_normalise(k), interpolation="nearest")
        else:
            ax.imshow(k.mean(axis=2), cmap="gray", interpolation="nearest")
    fig.suptitle(title or f"{layer.name}: {kernel.shape[3]} learned filters "
                          f"{kernel.shape[0]}x{kernel.shape[1]}")
    if path is not None:
        fig.savefig(path, dpi=80)
    return fig


def plot_feature_maps(model, x, layer, path=None, cols=8, title=None):
    """The feature maps of `layer` for one input image x (H, W, C): one tile per channel,
    computed through Model(model.inputs, layer.output). Saved as PNG when `path` is given."""
    from .models import Model
    maps = Model(model.inputs, layer.output).predict(np.asarray(x)[None], verbose=0)[0]
    fig, axes = _figure(maps.shape[-1], cols)
    for i, ax in enumerate(axes):
        ax.imshow(maps[:, :, i], cmap="gray", interpolation="nearest")
    fig.suptitle(title or f"{layer.name}: {maps.shape[-1]} feature maps "
                          f"{maps.shape[0]}x{maps.shape[1]}")
    if path is not None:
        fig.savefig(path, dpi=80)
    return fig


def plot_history(history, path=None, title=None):
    """Loss and accuracy curves from fit's History (or its .history dict): one panel per
    quantity, training and validation together."""
    logs = getattr(history, "history", history)
    keys = [k for k in sorted(logs) if not k.startswith("val_")]
    if not keys:
        raise ValueError("plot_history: the history holds no logs")
    fig, axes = _figure(len(keys), len(keys), cell=3.2)
    for ax, key in zip(axes, keys):
        epochs = np.arange(1, len(logs[key]) + 1)
        ax.plot(epochs, logs[key], "o-", label=key)
        if f"val_{key}" in logs:
            ax.plot(epochs, logs[f"val_{key}"], "s--", label=f"val_{key}")
        ax.set_xticks(epochs)
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.legend()
    fig.suptitle(title or "training history")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=80)
    return fig


def plot_model(model, show_shapes=True, print_fn=None):
    """A text picture of the model: each layer with its output shape, top to bottom.
    Returns the text; prints it when print_fn is given."""
    rows = [f"Input {tuple(model.input_shape)}" if show_shapes else "Input"]
    for layer in model.layers:
        label = f"{layer.name} ({type(layer).__name__})"
        act = getattr(layer, "_act", None)
        if act and act != "linear" and type(layer).__name__ != "Activation":
            label += f" + {act}"
        rows.append(label + (f" -> {tuple(layer.output_shape)}" if show_shapes else ""))
    width = max(len(r) for r in rows) + 4
    lines = []
    for i, r in enumerate(rows):
        lines += ["+" + "-" * (width - 2) + "+", "| " + r.ljust(width - 4) + " |",
                  "+" + "-" * (width - 2) + "+"]
        if i < len(rows) - 1:
            lines.append(" " * (width // 2) + "|")
            lines.append(" " * (width // 2) + "v")
    text = "\n".join(lines)
    if print_fn is not None:
        print_fn(text)
    return text

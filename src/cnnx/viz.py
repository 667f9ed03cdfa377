"""cnnx.viz: pictures of what a CNN learned, with matplotlib (the optional extra
cnnx[plot]). Figures are drawn on matplotlib's Agg canvas, without pyplot's global
state, so they work on machines without a display."""
import numpy as np

__all__ = ["plot_filters", "plot_feature_maps"]


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

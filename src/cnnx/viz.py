"""cnnx.viz: pictures of what a CNN learned, with matplotlib (the optional extra
cnnx[plot]). Figures are drawn on matplotlib's Agg canvas, without pyplot's global
state, so they work on machines without a display."""
import numpy as np

__all__ = ["plot_filters", "plot_feature_maps", "plot_history", "plot_model", "model_figure",
           "save_model_figure"]


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


def _colorbar(fig, axes, image, label):
    """One colour bar for all the tiles, which share one scale."""
    bar = fig.colorbar(image, ax=axes, shrink=0.8, pad=0.02)
    bar.set_label(label)


def plot_filters(layer, path=None, cols=8, title=None):
    """The kernels of a Conv2D layer, one tile per filter: RGB when the layer reads 3
    channels (scaled together, so tiles compare), else the mean over input channels on
    one shared diverging scale (blue < 0 < red) with a colour bar. Saved as PNG when
    `path` is given.

    >>> conv = cnnx.layers.Conv2D(4, 3)
    >>> conv.build((None, 8, 8, 1))
    >>> figure = cnnx.viz.plot_filters(conv, "filters.png")
    >>> len([ax for ax in figure.axes if ax.get_images()])   # one tile per filter
    4
    """
    kernel = layer.kernel.value  # (kh, kw, in, out)
    fig, axes = _figure(kernel.shape[3], cols)
    if kernel.shape[2] == 3:
        scaled = _normalise(kernel)
        for i, ax in enumerate(axes):
            ax.imshow(scaled[:, :, :, i], interpolation="nearest")
            ax.set_title(f"filter {i}", fontsize=8)
    else:
        means = kernel.mean(axis=2)
        top = float(np.abs(means).max()) or 1.0
        for i, ax in enumerate(axes):
            image = ax.imshow(means[:, :, i], cmap="RdBu_r", vmin=-top, vmax=top,
                              interpolation="nearest")
            ax.set_title(f"filter {i}", fontsize=8)
        _colorbar(fig, axes, image, "weight")
    fig.suptitle(title or f"{layer.name}: {kernel.shape[3]} learned filters "
                          f"{kernel.shape[0]}x{kernel.shape[1]}")
    if path is not None:
        fig.savefig(path, dpi=80)
    return fig


def plot_feature_maps(model, x, layer, path=None, cols=8, title=None):
    """The feature maps of `layer` for one input image x (H, W, C): the input first,
    then one tile per channel on one shared scale with a colour bar, computed through
    Model(model.inputs, layer.output). Saved as PNG when `path` is given.

    >>> model = cnnx.Sequential([cnnx.Input((8, 8, 1)), cnnx.layers.Conv2D(3, 3)])
    >>> figure = cnnx.viz.plot_feature_maps(model, np.ones((8, 8, 1)), model.layers[0])
    >>> [ax.get_title() for ax in figure.axes if ax.get_images()]
    ['input', 'channel 0', 'channel 1', 'channel 2']
    """
    from .models import Model
    x = np.asarray(x)
    maps = Model(model.inputs, layer.output).predict(x[None], verbose=0)[0]
    fig, axes = _figure(maps.shape[-1] + 1, cols)
    shown = x[..., 0] if x.shape[-1] != 3 else _normalise(x)
    axes[0].imshow(shown, cmap="gray" if x.shape[-1] != 3 else None,
                   interpolation="nearest")
    axes[0].set_title("input", fontsize=8)
    low, high = float(maps.min()), float(maps.max())
    for i, ax in enumerate(axes[1:]):
        image = ax.imshow(maps[:, :, i], cmap="viridis", vmin=low, vmax=high or 1.0,
                          interpolation="nearest")
        ax.set_title(f"channel {i}", fontsize=8)
    _colorbar(fig, axes[1:], image, "activation")
    fig.suptitle(title or f"{layer.name}: {maps.shape[-1]} feature maps "
                          f"{maps.shape[0]}x{maps.shape[1]}")
    if path is not None:
        fig.savefig(path, dpi=80)
    return fig


def plot_history(history, path=None, title=None):
    """Loss and accuracy curves from fit's History (or its .history dict): one panel per
    quantity, training and validation together.

    >>> figure = cnnx.viz.plot_history({"loss": [1.0, 0.5], "val_loss": [1.1, 0.7]})
    >>> [ax.get_title() for ax in figure.axes if ax.get_title()]
    ['loss']
    """
    from matplotlib.ticker import AutoLocator
    logs = getattr(history, "history", history)
    keys = [k for k in sorted(logs) if not k.startswith("val_")]
    if not keys:
        raise ValueError("plot_history: the history holds no logs")
    fig, axes = _figure(len(keys), len(keys), cell=3.2)
    for ax, key in zip(axes, keys):
        ax.tick_params(left=True, labelleft=True, bottom=True, labelbottom=True)
        ax.yaxis.set_major_locator(AutoLocator())   # _figure cleared the ticks
        ax.grid(alpha=0.3)
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
    Returns the text; prints it when print_fn is given.

    >>> model = cnnx.Sequential([cnnx.Input((3,)), cnnx.layers.Dense(2, name="out")])
    >>> print(cnnx.viz.plot_model(model))
    +--------------------------+
    | Input (None, 3)          |
    +--------------------------+
                  |
                  v
    +--------------------------+
    | out (Dense) -> (None, 2) |
    +--------------------------+
    """
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


def model_figure(model, show_shapes=False, show_dtype=False, show_layer_names=True,
                 rankdir="TB", show_layer_activations=False, show_trainable=False):
    """The model's graph as a matplotlib figure: one box per layer (an input box for a
    Sequential), placed by its depth from the inputs, with an arrow per connection.

    >>> model = cnnx.Sequential([cnnx.Input((3,)), cnnx.layers.Dense(2)])
    >>> figure = cnnx.viz.model_figure(model)
    >>> type(figure).__name__
    'Figure'
    """
    boxes, edges = _graph(model)
    depth = {}
    for name, parents in boxes:
        # A shared layer's box may read itself (d(d(x))): only earlier boxes count.
        depth[name] = 1 + max((depth[p] for p in parents if p in depth), default=-1)
    ranks = {}
    for name, _ in boxes:
        ranks.setdefault(depth[name], []).append(name)
    layers = {layer.name: layer for layer in _all_layers(model)}
    labels = {name: _label(layers.get(name), name, show_shapes, show_dtype,
                           show_layer_names, show_layer_activations, show_trainable)
              for name, _ in boxes}
    widest = max(len(line) for text in labels.values() for line in text.split("\n"))
    tallest = max(text.count("\n") + 1 for text in labels.values())
    box_w, box_h = 0.09 * widest + 0.4, 0.2 * tallest + 0.25   # inches, at 9 pt
    across = max(len(r) for r in ranks.values())
    vertical = rankdir.upper() in ("TB", "BT")
    step_rank, step_within = (box_h + 0.6, box_w + 0.4) if vertical else (box_w + 0.8,
                                                                           box_h + 0.4)
    where = {}
    for r, names in ranks.items():
        for i, name in enumerate(names):
            offset = (i - (len(names) - 1) / 2) * step_within
            along = r * step_rank
            if rankdir.upper() in ("BT", "RL"):
                along = -along
            where[name] = (offset, -along) if vertical else (along, -offset)
    fig, ax = _figure(1, 1)
    ax = ax[0]
    ax.axis("off")
    ax.set_position([0, 0, 1, 1])   # one data unit is one inch of the figure
    span_x = (across * step_within if vertical else len(ranks) * step_rank) + 1
    span_y = (len(ranks) * step_rank if vertical else across * step_within) + 1
    xs = [p[0] for p in where.values()]
    ys = [p[1] for p in where.values()]
    width = max(xs) - min(xs) + 2 * box_w
    height = max(ys) - min(ys) + 2 * box_h
    del span_x, span_y
    fig.set_size_inches(width, height)
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
    for name, (x, y) in where.items():
        ax.add_patch(FancyBboxPatch((x - box_w / 2, y - box_h / 2), box_w, box_h,
                                    boxstyle="round,pad=0.02", facecolor="#e8eef7",
                                    edgecolor="#31507a", linewidth=1.2))
        ax.text(x, y, labels[name], ha="center", va="center", fontsize=9,
                family="monospace")
    for a, b in edges:
        if a == b:
            continue   # a layer applied to its own output: its one box says it
        (xa, ya), (xb, yb) = where[a], where[b]
        if vertical:
            start, end = (xa, ya - box_h / 2), (xb, yb + box_h / 2)
        else:
            start, end = (xa + box_w / 2, ya), (xb - box_w / 2, yb)
        ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=12,
                                     color="#31507a", linewidth=1.0))
    ax.set_xlim(min(xs) - box_w, max(xs) + box_w)
    ax.set_ylim(min(ys) - box_h, max(ys) + box_h)
    ax.set_aspect("equal")
    return fig


def _all_layers(model):
    layers = list(model.layers)
    if getattr(model, "_input_layer", None) is not None:
        layers.insert(0, model._input_layer)
    return layers


def _graph(model):
    """[(layer name, [names of the layers it reads])] in topological order, and the
    edges between them, from the model's nodes."""
    boxes, seen, edges = [], set(), []
    for node in model._nodes:
        name = node.layer.name
        parents = [t.node.layer.name for t in node.inputs if t.node is not None]
        if name not in seen:
            seen.add(name)
            boxes.append((name, parents))
        else:   # a shared layer: its box gathers the parents of every call
            for i, (n, ps) in enumerate(boxes):
                if n == name:
                    boxes[i] = (n, ps + [p for p in parents if p not in ps])
        edges += [(p, name) for p in parents if (p, name) not in edges]
    return boxes, edges


def _label(layer, name, show_shapes, show_dtype, show_names, show_activations,
           show_trainable):
    if layer is None:
        return name
    kind = type(layer).__name__
    lines = [f"{name} ({kind})" if show_names else kind]
    if show_activations and getattr(layer, "_act", "linear") not in ("linear", None) \
            and kind != "Activation":
        lines.append(f"activation: {layer._act}")
    if show_shapes:
        shape = layer.output_shape
        lines.append(f"output: {tuple(shape) if isinstance(shape, tuple) else shape}")
    if show_dtype:
        lines.append(f"dtype: {layer.dtype.name}")
    if show_trainable:
        lines.append(f"trainable: {layer.trainable}")
    return "\n".join(lines)


def save_model_figure(model, to_file="model.png", dpi=200, **options):
    """Draw the model (model_figure) and save it to to_file (its suffix names the
    format: png, svg, pdf, ...), written atomically.

    >>> model = cnnx.Sequential([cnnx.Input((3,)), cnnx.layers.Dense(2)])
    >>> figure = cnnx.viz.save_model_figure(model, "graph.svg")
    >>> open("graph.svg").read(5)
    '<?xml'
    """
    import os

    from .models.saving import _Atomic
    fig = model_figure(model, **options)
    fmt = os.path.splitext(os.fspath(to_file))[1].lstrip(".").lower() or "png"
    with _Atomic(to_file, overwrite=True) as f:
        fig.savefig(f, format=fmt, dpi=dpi, bbox_inches="tight")
    return fig

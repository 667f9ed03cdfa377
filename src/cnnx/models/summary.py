"""Model.summary: Keras 3's table of layers, output shapes and parameter counts, with a
"Connected to" column for a graph that is not a chain."""
import numpy as np

__all__ = ["print_summary"]


def _rows(model):
    """(layer (type), output shape, params, connected to) for each layer, and whether
    the connections are worth a column."""
    chain = model._is_chain()
    index = model._node_index()
    own = {id(n) for n in model._nodes}
    rows = []
    for layer in model.layers:
        shape = layer.output_shape
        connected = []
        if not chain:
            for node in layer._inbound_nodes:
                if id(node) in own and node.inputs:
                    connected += [f"{t.node.layer.name}[{index.get(id(t.node), 0)}][{t.index}]"
                                  for t in node.inputs]
        rows.append([f"{layer.name} ({type(layer).__name__})",
                     str(tuple(shape)) if isinstance(shape, tuple) else str(shape),
                     f"{layer.count_params():,}",
                     ", ".join(connected) if connected else "-"])
    return rows, not chain


def print_summary(model, line_length=None, positions=None, print_fn=None):
    print_fn = print_fn or print
    if not model.built:
        raise ValueError(f"{type(model).__name__} {model.name!r} is not built yet: give it "
                         f"an Input or call build(input_shape) first")
    rows, connections = _rows(model)
    heads = ["Layer (type)", "Output Shape", "Param #", "Connected to"]
    if not connections:
        rows = [r[:3] for r in rows]
        heads = heads[:3]
    widths = [max(31, *(len(r[0]) + 2 for r in rows)),
              max(24, *(len(r[1]) + 2 for r in rows)), 15]
    if connections:
        widths.append(max(20, *(len(r[3]) + 2 for r in rows)))
    if line_length is not None or positions is not None:
        # Keras's meaning: the table's total width, and where each column ends (as
        # fractions of it, or as character positions).
        line_length = int(line_length or sum(widths) + len(widths) + 1)
        if positions is None:
            positions = np.cumsum(widths) / sum(widths)
        ends = [p * line_length if p <= 1 else p for p in positions][:len(widths)]
        widths = [max(4, int(round(b - a))) for a, b in zip([0, *ends[:-1]], ends)]

    def line(left, mid, right, fill):
        return left + mid.join(fill * w for w in widths) + right

    def fit(text, width):   # a cell too long for its column ends in an ellipsis
        return text if len(text) <= width else text[:width - 1] + "\u2026"

    def row(cells, sep="\u2502"):
        parts = []
        for i, (cell, w) in enumerate(zip(cells, widths)):
            if i == 2:
                parts.append(f"{fit(cell, w - 1):>{w - 1}} ")
            else:
                parts.append(f" {fit(cell, w - 1):<{w - 1}}")
        return sep + sep.join(parts) + sep

    total = model.count_params()
    trainable = sum(w.value.size for w in model.trainable_weights)
    itemsize = np.dtype(model.dtype).itemsize

    def size(count):
        nbytes = count * itemsize
        for unit in ("B", "KB", "MB", "GB"):
            if nbytes < 1024 or unit == "GB":
                return f"{nbytes:.2f} {unit}"
            nbytes /= 1024

    print_fn(f'Model: "{model.name}"')
    print_fn(line("\u250f", "\u2533", "\u2513", "\u2501"))
    print_fn(row(heads, "\u2503"))
    print_fn(line("\u2521", "\u2547", "\u2529", "\u2501"))
    for i, r in enumerate(rows):
        print_fn(row(r))
        if i < len(rows) - 1:
            print_fn(line("\u251c", "\u253c", "\u2524", "\u2500"))
    print_fn(line("\u2514", "\u2534", "\u2518", "\u2500"))
    print_fn(f" Total params: {total:,} ({size(total)})")
    print_fn(f" Trainable params: {trainable:,} ({size(trainable)})")
    print_fn(f" Non-trainable params: {total - trainable:,} ({size(total - trainable)})")

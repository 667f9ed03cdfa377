"""Shared by the examples: command-line flags and where the course's data is."""
import argparse
import os
from pathlib import Path


def args(description):
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="a short run (used by the tests)")
    parser.add_argument("--out", default="examples-out", help="folder for the PNGs")
    a = parser.parse_args()
    os.makedirs(a.out, exist_ok=True)
    return a


def shared_data():
    """The course's data: $CNNX_TEST_DATA, else ../shared/data beside the repository."""
    env = os.environ.get("CNNX_TEST_DATA")
    path = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"
    return path if path.exists() else None


def photo():
    """A cat photo from the course's data, or None."""
    data = shared_data()
    path = data / "catsdogs" / "training_set" / "cats" / "cat.1.jpg" if data else None
    return path if path and path.exists() else None


def can_plot():
    try:
        import matplotlib  # noqa: F401
        return True
    except ImportError:
        print("(install matplotlib, pip install 'cnnx[plot]', for the pictures)")
        return False


def figure(width, height):
    """A matplotlib figure on the Agg canvas (no display needed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def number_grid(ax, values, title, cmap="Blues"):
    """A small array drawn as coloured cells with its numbers written in them."""
    import numpy as np
    values = np.atleast_2d(values)
    low, high = min(0, values.min()), max(1, values.max())
    ax.imshow(values, cmap=cmap, vmin=low, vmax=high)
    for (i, j), v in np.ndenumerate(values):   # white on the dark cells
        ax.text(j, i, f"{v:g}", ha="center", va="center", fontsize=9,
                color="white" if v > (low + high) / 2 else "black")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def save(fig, a, name):
    out = os.path.join(a.out, name)
    fig.savefig(out, dpi=100, bbox_inches="tight")
    print(f"wrote {out}")

"""Step 1c: the ReLU layer. A feature map has negative and positive values; ReLU keeps the
positive ones (white) and sets the negative ones to zero (black)."""
import os

import numpy as np

import cnnx

from _common import args, can_plot, photo

a = args(__doc__)
path = photo()
image = (cnnx.utils.img_to_array(cnnx.utils.load_img(path, color_mode="grayscale"))[..., 0]
         if path else np.random.default_rng(0).random((100, 100)).astype(np.float32) * 255)
fmap = cnnx.filters.apply_filter(image, "edge_detect")
rectified = cnnx.ops.relu(fmap)
negative = float(np.mean(fmap < 0))
print(f"feature map: {fmap.size} values, {negative:.0%} negative, range "
      f"[{fmap.min():.1f}, {fmap.max():.1f}]")
print(f"after ReLU: range [{rectified.min():.1f}, {rectified.max():.1f}], "
      f"{float(np.mean(rectified == 0)):.0%} zeros")
if can_plot():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(8, 4))
    FigureCanvasAgg(fig)
    # A 64 x 64 crop from the middle, drawn pixel by pixel: an edge detector's negative
    # and positive values sit side by side, and at full size they blur into one colour.
    # The scale stops at the 95th percentile of |value|, so a few strong edges do not
    # wash the rest out to white.
    h, w = fmap.shape
    crop = (slice(h // 2 - 32, h // 2 + 32), slice(w // 2 - 32, w // 2 + 32))
    limit = float(np.percentile(np.abs(fmap[crop]), 95)) or 1.0
    for i, (title, m, cmap) in enumerate([("feature map (red < 0 < blue)", fmap, "RdBu"),
                                          ("after ReLU (black = 0)", rectified, "gray")]):
        ax = fig.add_subplot(1, 2, i + 1)
        shown = ax.imshow(m[crop], cmap=cmap, vmin=-limit if i == 0 else 0, vmax=limit,
                          interpolation="nearest")
        fig.colorbar(shown, ax=ax, shrink=0.8)
        ax.set_title(title)
        ax.axis("off")
    fig.suptitle("edge detection on the middle 64 x 64 pixels, before and after ReLU")
    out = os.path.join(a.out, "relu.png")
    fig.savefig(out, dpi=70)
    print(f"wrote {out}")

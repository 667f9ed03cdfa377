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
    for i, (title, m, cmap) in enumerate([("feature map (red < 0 < blue)", fmap, "bwr_r"),
                                          ("after ReLU", rectified, "gray")]):
        ax = fig.add_subplot(1, 2, i + 1)
        limit = np.abs(m).max()
        ax.imshow(m, cmap=cmap, vmin=-limit if i == 0 else 0, vmax=limit)
        ax.set_title(title)
        ax.axis("off")
    out = os.path.join(a.out, "relu.png")
    fig.savefig(out, dpi=70)
    print(f"wrote {out}")

"""Step 1b: the classic feature detectors on a real photo (GIMP's sharpen, blur, edge
enhance, edge detect, emboss; and Sobel), each a 3x3 or 5x5 convolution."""
import os

import numpy as np

import cnnx

from _common import args, can_plot, photo

a = args(__doc__)
path = photo()
if path is not None:
    image = cnnx.utils.img_to_array(cnnx.utils.load_img(path, color_mode="grayscale"))[..., 0]
    print(f"photo: {path.name}, {image.shape[1]}x{image.shape[0]} grayscale")
else:  # no data: draw a disc on a gradient
    rows, cols = np.mgrid[0:120, 0:160]
    image = (cols * 1.2 + 120 * ((rows - 60) ** 2 + (cols - 80) ** 2 < 40 ** 2)).astype(
        np.float32)
    print("photo: none found, using a drawn disc on a gradient")

maps = {name: cnnx.filters.apply_filter(image, k) for name, k in cnnx.filters.FILTERS.items()}
for name, m in maps.items():
    print(f"{name:13s} kernel {cnnx.filters.FILTERS[name].shape}  "
          f"output range [{m.min():8.1f}, {m.max():8.1f}]  mean {m.mean():7.2f}")
if can_plot():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(12, 6))
    FigureCanvasAgg(fig)
    for i, (name, m) in enumerate([("original", image)] + list(maps.items())):
        ax = fig.add_subplot(2, 4, i + 1)
        ax.imshow(m, cmap="gray")
        ax.set_title(name)
        ax.axis("off")
    out = os.path.join(a.out, "filters.png")
    fig.savefig(out, dpi=70)
    print(f"wrote {out}")

"""The course's first slide: a 7x7 image, a 3x3 feature detector, the feature map."""
import numpy as np

import cnnx

from _common import args, can_plot, figure, number_grid, save

a = args(__doc__)
image = np.array([[0, 0, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 1, 0], [0, 0, 0, 0, 0, 0, 0],
                  [0, 0, 0, 1, 0, 0, 0], [0, 1, 0, 0, 0, 1, 0], [0, 0, 1, 1, 1, 0, 0],
                  [0, 0, 0, 0, 0, 0, 0]], np.float32)
detector = np.array([[0, 0, 1], [1, 0, 0], [0, 1, 1]], np.float32)

fmap = cnnx.ops.conv(image.reshape(1, 7, 7, 1), detector.reshape(3, 3, 1, 1))
pooled = cnnx.ops.max_pool(fmap, pool_size=2, strides=2, padding="same")
print("feature map:\n", fmap[0, :, :, 0].astype(int))
print("max pooled:\n", pooled[0, :, :, 0].astype(int))
print("flattened:", cnnx.ops.flatten(pooled)[0].astype(int))
if can_plot():
    fig = figure(10, 3)
    for i, (title, values) in enumerate([("input image", image), ("feature detector", detector),
                                         ("feature map", fmap[0, :, :, 0]),
                                         ("max pooled", pooled[0, :, :, 0])]):
        number_grid(fig.add_subplot(1, 4, i + 1), values, title)
    save(fig, a, "convolution.png")

"""Steps 2 and 3: max pooling (2x2, stride 2, "same") of the course's feature map, then
flattening row by row into the input of the fully connected layers."""
import numpy as np

import cnnx

from _common import args, can_plot, figure, number_grid, save

a = args(__doc__)
fmap = np.array([[0, 1, 0, 0, 0], [0, 1, 1, 1, 0], [1, 0, 0, 2, 1], [1, 4, 2, 1, 0],
                 [0, 0, 1, 2, 1]], np.float32)
pooled = cnnx.ops.max_pool(fmap.reshape(1, 5, 5, 1), pool_size=2, strides=2, padding="same")
print("feature map:\n", fmap.astype(int))
print("max pooled (each 2x2 window's largest value; the odd row and column are padded):\n",
      pooled[0, :, :, 0].astype(int))
flat = cnnx.ops.flatten(pooled)
print("flattened, row by row:", flat[0].astype(int))
assert flat[0].tolist() == [1, 1, 0, 4, 2, 1, 0, 2, 1]
if can_plot():
    fig = figure(9, 3)
    number_grid(fig.add_subplot(1, 3, 1), fmap, "feature map")
    number_grid(fig.add_subplot(1, 3, 2), pooled[0, :, :, 0], "max pooled (2x2, stride 2)")
    number_grid(fig.add_subplot(1, 3, 3), flat[0][:, None], "flattened")
    save(fig, a, "pooling_flattening.png")

"""cnnx.filters: the course's feature detectors (the GIMP filters it shows on photos), and
a helper that applies one to a grayscale or RGB image through cnnx.ops.conv.

    import cnnx
    edges = cnnx.filters.apply_filter(photo, cnnx.filters.edge_detect)

Like the course, these are cross-correlations (no kernel flip). The helper pads the image
by reflecting it (or by "edge", "wrap" or "zero" padding), so the result has the image's
shape and a constant region gives a filter's exact response to a constant.
"""
import numpy as np

from . import ops

__all__ = ["sharpen", "blur", "edge_enhance", "edge_detect", "emboss", "sobel_x", "sobel_y",
           "FILTERS", "apply_filter"]


def _k(rows):
    k = np.array(rows, np.float32)
    k.setflags(write=False)
    return k


#: 5x5: 5 at the centre, -1 on the cross around it (weights sum to 1).
sharpen = _k([[0, 0, 0, 0, 0],
              [0, 0, -1, 0, 0],
              [0, -1, 5, -1, 0],
              [0, 0, -1, 0, 0],
              [0, 0, 0, 0, 0]])
#: 5x5 box blur over the central 3x3, normalised to sum to 1.
blur = _k([[0, 0, 0, 0, 0],
           [0, 1, 1, 1, 0],
           [0, 1, 1, 1, 0],
           [0, 1, 1, 1, 0],
           [0, 0, 0, 0, 0]]) / np.float32(9)
blur.setflags(write=False)
edge_enhance = _k([[0, 0, 0],
                   [-1, 1, 0],
                   [0, 0, 0]])
#: The Laplacian.
edge_detect = _k([[0, 1, 0],
                  [1, -4, 1],
                  [0, 1, 0]])
emboss = _k([[-2, -1, 0],
             [-1, 1, 1],
             [0, 1, 2]])
sobel_x = _k([[-1, 0, 1],
              [-2, 0, 2],
              [-1, 0, 1]])
sobel_y = _k([[-1, -2, -1],
              [0, 0, 0],
              [1, 2, 1]])

FILTERS = {"sharpen": sharpen, "blur": blur, "edge_enhance": edge_enhance,
           "edge_detect": edge_detect, "emboss": emboss, "sobel_x": sobel_x,
           "sobel_y": sobel_y}

_PAD = {"reflect": "reflect", "edge": "edge", "wrap": "wrap", "zero": "constant"}


def apply_filter(image, kernel, padding="reflect"):
    """The image filtered by a 2-D kernel, channel by channel, as an array of the image's
    shape (float32): (H, W), (H, W, 1) or (H, W, 3) in, the same shape out.

    Parameters
    ----------
    image : array (H, W), (H, W, 1) or (H, W, 3)
    kernel : a name from FILTERS ("sharpen", "blur", "edge_enhance", "edge_detect",
        "emboss", "sobel_x", "sobel_y") or a 2-D array
    padding : how the border is extended so that the output keeps the image's size:
        "reflect" (default), "edge", "wrap" or "zero"

    Examples
    --------
    Edge detection answers a single bright pixel with its kernel, -4 in the middle:

    >>> image = np.zeros((5, 5), np.float32)
    >>> image[2, 2] = 1
    >>> cnnx.filters.apply_filter(image, "edge_detect")
    array([[ 0.,  0.,  0.,  0.,  0.],
           [ 0.,  0.,  1.,  0.,  0.],
           [ 0.,  1., -4.,  1.,  0.],
           [ 0.,  0.,  1.,  0.,  0.],
           [ 0.,  0.,  0.,  0.,  0.]], dtype=float32)
    """
    if isinstance(kernel, str):
        if kernel not in FILTERS:
            raise ValueError(f"apply_filter: unknown filter {kernel!r}; expected one of "
                             f"{sorted(FILTERS)} or a 2-D array")
        kernel = FILTERS[kernel]
    kernel = np.asarray(kernel, np.float32)
    image = np.asarray(image, np.float32)
    if kernel.ndim != 2 or min(kernel.shape) < 1:
        raise ValueError(f"apply_filter: `kernel` must be a 2-D array, received shape "
                         f"{kernel.shape}")
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
        raise ValueError(f"apply_filter: `image` must be (height, width) or (height, width, "
                         f"1, 3 or 4 channels), received shape {image.shape}")
    if padding not in _PAD:
        raise ValueError(f"apply_filter: padding must be one of {sorted(_PAD)}, "
                         f"received {padding!r}")
    planes = image[None] if image.ndim == 2 else np.moveaxis(image, 2, 0)  # (C, H, W)
    kh, kw = kernel.shape
    pads = ((0, 0), (kh // 2, kh - 1 - kh // 2), (kw // 2, kw - 1 - kw // 2))
    padded = np.pad(planes, pads, mode=_PAD[padding])
    out = ops.conv(padded[..., None], kernel[:, :, None, None])[..., 0]      # (C, H, W)
    return out[0] if image.ndim == 2 else np.moveaxis(out, 0, 2)

"""Image warps shared by ImageDataGenerator and the random preprocessing layers: one
implementation of each, vectorised over the batch.

A warp is a 3 x 3 matrix per image mapping output (row, col, 1) to input (row, col, 1);
`affine_batch` samples the input there bilinearly, filling outside points by
`fill_mode` (Keras's "constant", "nearest", "reflect", "wrap"). The matrix builders
place each transform about the image centre, as Keras's layers and generator do.
"""
import numpy as np

__all__ = ["FILL_MODES", "affine_batch", "centered", "rotation", "zoom", "translation"]

FILL_MODES = ("constant", "nearest", "reflect", "wrap")


def _fill_index(i, n, mode):
    """Integer indices mapped into [0, n) by a fill mode (also returns a validity mask)."""
    if mode == "nearest":
        return np.clip(i, 0, n - 1), None
    if mode == "wrap":
        return np.mod(i, n), None
    if mode == "reflect":  # d c b a | a b c d | d c b a
        i = np.mod(i, 2 * n)
        return np.where(i >= n, 2 * n - 1 - i, i), None
    valid = (i >= 0) & (i < n)
    return np.clip(i, 0, n - 1), valid


def affine_batch(x, matrices, fill_mode, cval):
    """Warps each image of x (B, H, W, C) by its 3x3 matrix, which maps output (row, col)
    to input (row, col), with bilinear sampling. Returns float64 images."""
    b, h, w, c = x.shape
    rows, cols = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64),
                             indexing="ij")
    grid = np.stack([rows.ravel(), cols.ravel(), np.ones(h * w)])           # (3, HW)
    src = np.einsum("bij,jk->bik", matrices[:, :2, :], grid)                  # (B, 2, HW)
    r, q = src[:, 0], src[:, 1]
    r0, q0 = np.floor(r).astype(np.int64), np.floor(q).astype(np.int64)
    fr, fq = (r - r0)[..., None], (q - q0)[..., None]
    batch = np.arange(b)[:, None]
    out = np.zeros((b, h * w, c))
    for dr, dq, weight in ((0, 0, (1 - fr) * (1 - fq)), (0, 1, (1 - fr) * fq),
                           (1, 0, fr * (1 - fq)), (1, 1, fr * fq)):
        ri, rv = _fill_index(r0 + dr, h, fill_mode)
        qi, qv = _fill_index(q0 + dq, w, fill_mode)
        value = x[batch, ri, qi]
        if rv is not None:
            value = np.where((rv & qv)[..., None], value, cval)
        out += weight * value
    return out.reshape(b, h, w, c)


def centered(matrices, h, w):
    """The (B, 3, 3) matrices, given about the image centre, as matrices about the
    top-left pixel (the frame affine_batch works in)."""
    cy, cx = h / 2 - 0.5, w / 2 - 0.5
    offset = np.array([[1, 0, cy], [0, 1, cx], [0, 0, 1.0]])
    reset = np.array([[1, 0, -cy], [0, 1, -cx], [0, 0, 1.0]])
    return offset @ matrices @ reset


def _batch_of(top_left):
    b = top_left.shape[0]
    m = np.tile(np.eye(3), (b, 1, 1))
    m[:, :2, :2] = top_left
    return m


def rotation(theta):
    """Output-to-input matrices (about the centre) that turn each image's content by
    theta radians counter-clockwise, as Keras's RandomRotation draws them."""
    cos, sin = np.cos(theta), np.sin(theta)
    return _batch_of(np.stack([np.stack([cos, sin], -1), np.stack([-sin, cos], -1)], 1))


def zoom(zy, zx):
    """Output-to-input scaling (about the centre): a factor above 1 zooms out."""
    return _batch_of(np.stack([np.stack([zy, np.zeros_like(zy)], -1),
                               np.stack([np.zeros_like(zx), zx], -1)], 1))


def translation(ty, tx):
    """Output-to-input shifts that move each image's content by (ty, tx) pixels."""
    m = _batch_of(np.tile(np.eye(2), (len(ty), 1, 1)))
    m[:, 0, 2], m[:, 1, 2] = -ty, -tx
    return m

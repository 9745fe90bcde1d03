"""Drawing a localization heatmap over its image (numpy and PIL only: no torch, no matplotlib).

overlay = draw_heatmap(image, localize(model, image, "red dress"))
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from fashion_clip.errors import InvalidInputError

__all__ = ["colorize", "draw_heatmap"]

# A perceptually ordered "turbo"-like ramp: dark blue (0) -> cyan -> green -> yellow -> red (1).
_STOPS = np.array([0.0, 0.15, 0.35, 0.5, 0.65, 0.85, 1.0])
_COLOURS = np.array(
    [
        [48, 18, 59],
        [50, 101, 230],
        [27, 207, 212],
        [97, 252, 108],
        [210, 233, 53],
        [251, 128, 34],
        [180, 20, 10],
    ],
    dtype=np.float32,
)


def heatmap_peak(heatmap: np.ndarray) -> tuple[int, int]:
    """(x, y) in pixels of the heatmap's maximum; where several pixels share it, the one
    nearest their centre.

    A map resampled from a patch grid is flat from a border patch's centre to the image's
    edge, so "the first maximum" put the peak on the edge itself (x = 0 or y = 0) whenever
    a border patch won; the middle of the flat stretch is where that patch points.
    """
    array = np.asarray(heatmap)
    if array.ndim != 2 or array.size == 0:
        raise InvalidInputError(f"heatmap must be a non-empty (H, W) array, not {array.shape}")
    first = np.unravel_index(int(np.argmax(array)), array.shape)
    top = array[first]
    # Ties: equal to within a few units in the last place of the map's own float type (the
    # resampled flat stretch differs by rounding alone); integers must be equal.
    slack = 4 * np.spacing(np.abs(top)) if np.issubdtype(array.dtype, np.floating) else 0
    ties = array >= top - slack  # all False when top is NaN
    count = int(np.count_nonzero(ties))
    if count <= 1:
        return int(first[1]), int(first[0])
    # Their centre from the row and column sums: no index arrays the size of the map.
    cy = float(np.dot(ties.sum(axis=1, dtype=np.int64), np.arange(ties.shape[0]))) / count
    cx = float(np.dot(ties.sum(axis=0, dtype=np.int64), np.arange(ties.shape[1]))) / count
    y, x = round(cy), round(cx)
    if ties[y, x]:  # a flat stretch is one block: its centre is in it
        return x, y
    rows = np.flatnonzero(ties.any(axis=1))  # else the tie nearest the centre, in their box
    cols = np.flatnonzero(ties.any(axis=0))
    box = ties[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    ys, xs = np.nonzero(box)
    nearest = int(np.argmin((xs + cols[0] - cx) ** 2 + (ys + rows[0] - cy) ** 2))
    return int(xs[nearest] + cols[0]), int(ys[nearest] + rows[0])


def colorize(heatmap: np.ndarray) -> np.ndarray:
    """`(H, W)` values in [0, 1] -> `(H, W, 3)` uint8 colours of the ramp."""
    values = np.clip(np.nan_to_num(np.asarray(heatmap, dtype=np.float32)), 0.0, 1.0)
    channels = [np.interp(values, _STOPS, _COLOURS[:, c]) for c in range(3)]
    return np.stack(channels, axis=-1).round().astype(np.uint8)


def draw_heatmap(
    image: Image.Image, heatmap: np.ndarray, *, alpha: float = 0.5, mark_peak: bool = True
) -> Image.Image:
    """The image with the colour-mapped heatmap blended over it; RGB, the image's size.

    `heatmap` is `(H, W)` in [0, 1] for an image of width W and height H (as `localize`
    returns). `alpha` is the heatmap's opacity (0 = image only, 1 = heatmap only). With
    `mark_peak`, a ring marks the maximum.
    """
    array = np.asarray(heatmap)
    if array.ndim != 2 or array.shape != (image.height, image.width):
        raise InvalidInputError(
            f"heatmap shape {array.shape} does not match the image "
            f"(height, width) = {(image.height, image.width)}"
        )
    if not 0.0 <= alpha <= 1.0:
        raise InvalidInputError(f"alpha must be between 0 and 1, not {alpha}")
    base = np.asarray(image.convert("RGB"), dtype=np.float32)
    blended = base * (1.0 - alpha) + colorize(array).astype(np.float32) * alpha
    out = Image.fromarray(blended.round().astype(np.uint8))
    if mark_peak and array.size:
        x, y = heatmap_peak(array)
        radius = max(4, round(min(image.size) * 0.03))
        # A peak near the edge gets a whole ring that still encloses it, not half a ring.
        x = min(max(x, radius), max(radius, image.width - 1 - radius))
        y = min(max(y, radius), max(radius, image.height - 1 - radius))
        width = max(2, radius // 3)
        draw = ImageDraw.Draw(out)
        ring = (x - radius, y - radius, x + radius, y + radius)
        draw.ellipse(ring, outline=(255, 255, 255), width=width + 2)  # white halo: any backdrop
        draw.ellipse(ring, outline=(0, 0, 0), width=max(1, width - 1))
    return out

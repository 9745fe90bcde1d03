"""A region of a picture, framed as a catalog photo: the query of a search by region.

Catalog photos show one garment, centred on a square with some background around it; the
model's preprocessing crops the centre square. A tight, oblong box would lose the ends of
a long garment to that crop, so the region is padded to a square with its own border's
colour and a margin. On two-garment composites of the demo catalog the top hit was the
boxed garment 0.88-0.90 of the time framed so, against 0.30-0.40 for the bare box
(benchmarks/relevance.py).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

MARGIN = 0.15  # of the region's longer side, on each side


def frame_region(
    picture: Image.Image, box: tuple[int, int, int, int], margin: float = MARGIN
) -> Image.Image:
    """`picture`'s pixels inside `box` = (x0, y0, x1, y1), centred on a square of their
    border's median colour, `margin` of the longer side around them. RGB."""
    crop = picture.convert("RGB").crop(box)
    width, height = crop.size
    side = round(max(width, height) * (1 + 2 * margin))
    pixels = np.asarray(crop)  # (height, width, 3)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    fill = tuple(int(v) for v in np.median(border, axis=0))
    canvas = Image.new("RGB", (side, side), fill)
    canvas.paste(crop, ((side - width) // 2, (side - height) // 2))
    return canvas

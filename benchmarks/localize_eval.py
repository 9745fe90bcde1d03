"""Localization evaluation: composites of demo garments with known boxes, and map metrics.

One composite is a backdrop with 2-4 garments of the demo catalog's kinds pasted apart from
each other; it is queried with the caption of one of them ("red striped dress"). Garments on
a canvas differ in category and in colour, so the caption names exactly one. Used by both
`tests/test_localize.py` and `benchmarks/localize.py`, so both measure the same thing.

    cases = make_composites(48, seed=0)
    figures = evaluate(lambda case: localize(model, case.image, case.query), cases)
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from fashion_clip.demo.garments import (
    CATEGORIES,
    COLORS,
    PATTERNS,
    caption_for,
    render_background,
    render_garment_rgba,
)
from fashion_clip.tasks.overlay import heatmap_peak

Box = tuple[int, int, int, int]  # (x0, y0, x1, y1) in pixels, x1/y1 exclusive

# Canvas (width, height): squares, landscape and portrait, small and large.
CANVAS_SIZES: tuple[tuple[int, int], ...] = ((320, 320), (448, 448), (448, 336), (336, 448))


@dataclass(frozen=True)
class Composite:
    """One test image: garments with their boxes and captions, and the one to find."""

    image: Image.Image  # RGB
    boxes: tuple[Box, ...]
    captions: tuple[str, ...]
    target: int  # index into boxes/captions

    @property
    def query(self) -> str:
        return self.captions[self.target]

    @property
    def box(self) -> Box:
        return self.boxes[self.target]


def make_composites(n: int, seed: int = 0) -> list[Composite]:
    """`n` composites; composite `i` depends only on `seed` and `i`."""
    return [make_composite(np.random.default_rng([seed, i, 0x10CA7E])) for i in range(n)]


def make_composite(rng: np.random.Generator) -> Composite:
    """2-4 garments of distinct category and colour, placed without overlap on a backdrop."""
    width, height = CANVAS_SIZES[int(rng.integers(len(CANVAS_SIZES)))]
    count = int(rng.integers(2, 5))
    categories = rng.choice(len(CATEGORIES), size=count, replace=False)
    colors = rng.choice(len(COLORS), size=count, replace=False)
    kinds = [
        (CATEGORIES[c], COLORS[k], PATTERNS[int(rng.integers(len(PATTERNS)))])
        for c, k in zip(categories, colors, strict=True)
    ]
    # Bigger garments when there are fewer: 0.36-0.6 of the short side for 2, 0.3-0.45 for 4.
    short = min(width, height)
    low, high = {2: (0.36, 0.6), 3: (0.32, 0.5), 4: (0.3, 0.45)}[count]
    layers = [
        render_garment_rgba(*kind, rng, size=round(short * rng.uniform(low, high)))
        for kind in kinds
    ]
    dim = any(color == "white" for _, color, _ in kinds)
    side = max(width, height)
    canvas = render_background(side, rng, dim=dim).crop((0, 0, width, height))
    boxes = _place([layer.size for layer in layers], width, height, rng)
    for layer, (x0, y0, x1, y1) in zip(layers, boxes, strict=True):
        if layer.size != (x1 - x0, y1 - y0):
            layer = layer.resize((x1 - x0, y1 - y0), Image.Resampling.BICUBIC)
        alpha = layer.getchannel("A")
        shadow = alpha.filter(ImageFilter.BoxBlur(max(1, side // 90))).point(lambda a: a * 0.3)
        offset = max(1, round(side * 0.012))
        canvas.paste((0, 0, 0), (x0 + offset, y0 + offset), shadow)
        canvas.paste(layer, (x0, y0), alpha)
    captions = tuple(caption_for(color, pattern, category) for category, color, pattern in kinds)
    return Composite(canvas, tuple(boxes), captions, int(rng.integers(count)))


def _place(sizes: Sequence[tuple[int, int]], width: int, height: int,
           rng: np.random.Generator) -> list[Box]:  # fmt: skip
    """Random non-overlapping boxes for `(w, h)` sizes, shrunk a little until they fit."""
    gap = round(min(width, height) * 0.02)
    for attempt in itertools.count():
        scale = 0.93**attempt
        boxes: list[Box] = []
        for w, h in sizes:
            w, h = max(1, round(w * scale)), max(1, round(h * scale))
            for _ in range(50):
                x = int(rng.integers(gap, max(gap, width - w - gap) + 1))
                y = int(rng.integers(gap, max(gap, height - h - gap) + 1))
                box = (x, y, x + w, y + h)
                if all(not _overlap(box, other, gap) for other in boxes):
                    boxes.append(box)
                    break
            else:
                break  # this size found no room: shrink all and start over
        if len(boxes) == len(sizes):
            return boxes
    raise AssertionError("unreachable")


def _overlap(a: Box, b: Box, gap: int) -> bool:
    return not (
        a[2] + gap <= b[0] or b[2] + gap <= a[0] or a[3] + gap <= b[1] or b[3] + gap <= a[1]
    )


# ---------------------------------------------------------------------- metrics
def score_heatmap(heatmap: np.ndarray, box: Box, threshold: float = 0.5) -> dict[str, float]:
    """Pointing (1 if the maximum is in `box`), energy share in `box`, IoU of map > threshold.

    `heatmap` is `(H, W)` in [0, 1], aligned with the image the box refers to.
    """
    x0, y0, x1, y1 = box
    x, y = heatmap_peak(heatmap)  # the point the app and the API report
    inside = np.zeros(heatmap.shape, dtype=bool)
    inside[y0:y1, x0:x1] = True
    total = float(heatmap.sum())
    energy = float(heatmap[inside].sum()) / total if total > 0 else 0.0
    hot = heatmap >= threshold * float(heatmap.max()) if total > 0 else np.zeros_like(inside)
    union = int(np.count_nonzero(hot | inside))
    iou = int(np.count_nonzero(hot & inside)) / union if union else 0.0
    return {"pointing": float(x0 <= x < x1 and y0 <= y < y1), "energy": energy, "iou": iou}


def evaluate(heatmap_of: Callable[[Composite], np.ndarray],
             cases: Sequence[Composite]) -> dict[str, float]:  # fmt: skip
    """Mean pointing / energy / IoU over `cases`, plus the median seconds per heatmap."""
    rows, seconds = [], []
    for case in cases:
        start = time.perf_counter()
        heatmap = heatmap_of(case)
        seconds.append(time.perf_counter() - start)
        rows.append(score_heatmap(heatmap, case.box))
    figures = {key: float(np.mean([row[key] for row in rows])) for key in rows[0]}
    figures["seconds"] = float(np.median(seconds))
    return figures

"""Garment silhouettes, drawn in unit coordinates onto a mask plus a list of detail strokes.

Each category is one small function of a `Painter`; (0, 0) is the top-left and (1, 1) the
bottom-right of the garment's box, whose width/height ratio is `ASPECT[category]`. Details
(seams, collars, buttons) are kept apart from the mask so they can be stroked after the
fabric pattern is laid down.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PIL import Image, ImageDraw

Point = tuple[float, float]

# Width / height of each garment's box: what makes trousers tall and shoes long.
ASPECT: dict[str, float] = {
    "t-shirt": 1.05,
    "shirt": 0.95,
    "dress": 0.62,
    "skirt": 0.85,
    "trousers": 0.52,
    "shorts": 1.05,
    "jacket": 1.0,
    "shoes": 2.0,
    "bag": 0.95,
    "hat": 1.55,
}


class Painter:
    """Scales unit coordinates to pixels and records the garment's layers.

    `mask` is the silhouette, `inner` the parts shown in a neutral second colour (a jacket's
    lining, a shoe's sole, a hat's band), `strokes` the detail lines and dots.
    """

    def __init__(self, width: int, height: int, pad: int) -> None:
        self.width, self.height, self.pad = width, height, pad
        canvas = (width + 2 * pad, height + 2 * pad)
        self.mask = Image.new("L", canvas, 0)
        self.inner = Image.new("L", canvas, 0)
        self._mask = ImageDraw.Draw(self.mask)
        self._inner = ImageDraw.Draw(self.inner)
        self.strokes: list[tuple[str, list[Point], float]] = []

    def xy(self, points: Sequence[Point]) -> list[Point]:
        """Unit coordinates -> pixel coordinates on the padded canvas."""
        return [(self.pad + x * self.width, self.pad + y * self.height) for x, y in points]

    def poly(self, points: Sequence[Point], value: int = 255) -> None:
        self._mask.polygon(self.xy(points), fill=value)

    def ellipse(self, x0: float, y0: float, x1: float, y1: float, value: int = 255) -> None:
        self._mask.ellipse(self.xy([(x0, y0), (x1, y1)]), fill=value)

    def inner_poly(self, points: Sequence[Point]) -> None:
        self.poly(points)
        self._inner.polygon(self.xy(points), fill=255)

    def line(self, *points: Point, width: float = 1.0) -> None:
        self.strokes.append(("line", self.xy(points), width))

    def dot(self, x: float, y: float, radius: float) -> None:
        # radius is a fraction of the garment's width, so buttons stay round on any aspect
        self.strokes.append(("dot", self.xy([(x, y)]), radius * self.width))


def _tshirt(p: Painter) -> None:
    p.poly([(0.36, 0.03), (0.2, 0.07), (0.0, 0.3), (0.12, 0.42), (0.22, 0.33), (0.22, 1.0),
            (0.78, 1.0), (0.78, 0.33), (0.88, 0.42), (1.0, 0.3), (0.8, 0.07),
            (0.64, 0.03)])  # fmt: skip
    p.ellipse(0.36, -0.09, 0.64, 0.13, value=0)  # round neck
    p.line((0.035, 0.265), (0.155, 0.385))
    p.line((0.965, 0.265), (0.845, 0.385))
    p.line((0.22, 0.95), (0.78, 0.95))


def _shirt(p: Painter) -> None:
    p.poly([(0.4, 0.02), (0.24, 0.06), (0.12, 0.2), (0.0, 0.92), (0.12, 0.95), (0.22, 0.42),
            (0.24, 1.0), (0.76, 1.0), (0.78, 0.42), (0.88, 0.95), (1.0, 0.92), (0.88, 0.2),
            (0.76, 0.06), (0.6, 0.02)])  # fmt: skip
    # pointed collar, placket and a column of buttons: what tells a shirt from a jacket
    p.line((0.4, 0.02), (0.5, 0.15), (0.36, 0.19), (0.4, 0.02), width=1.5)
    p.line((0.6, 0.02), (0.5, 0.15), (0.64, 0.19), (0.6, 0.02), width=1.5)
    p.line((0.5, 0.15), (0.5, 1.0))
    for y in (0.24, 0.38, 0.52, 0.66, 0.8, 0.93):
        p.dot(0.535, y, 0.022)
    p.line((0.015, 0.84), (0.13, 0.87), width=1.5)
    p.line((0.985, 0.84), (0.87, 0.87), width=1.5)


def _jacket(p: Painter) -> None:
    p.poly([(0.38, 0.0), (0.18, 0.05), (0.08, 0.18), (0.0, 0.95), (0.14, 0.98), (0.2, 0.45),
            (0.2, 1.0), (0.8, 1.0), (0.8, 0.45), (0.86, 0.98), (1.0, 0.95), (0.92, 0.18),
            (0.82, 0.05), (0.62, 0.0)])  # fmt: skip
    # open front: the lining shows in a V down to the hem
    p.inner_poly([(0.4, 0.0), (0.6, 0.0), (0.53, 0.5), (0.53, 1.0), (0.47, 1.0), (0.47, 0.5)])
    p.line((0.4, 0.0), (0.32, 0.24), (0.47, 0.5), width=1.5)  # lapels
    p.line((0.6, 0.0), (0.68, 0.24), (0.53, 0.5), width=1.5)
    p.line((0.26, 0.72), (0.4, 0.72), width=1.5)  # pocket flaps
    p.line((0.6, 0.72), (0.74, 0.72), width=1.5)
    p.line((0.02, 0.86), (0.16, 0.89), width=1.5)
    p.line((0.98, 0.86), (0.84, 0.89), width=1.5)


def _dress(p: Painter) -> None:
    p.poly([(0.34, 0.18), (0.36, 0.0), (0.39, 0.0), (0.41, 0.13), (0.59, 0.13), (0.61, 0.0),
            (0.64, 0.0), (0.66, 0.18), (0.62, 0.42), (0.97, 1.0), (0.03, 1.0),
            (0.38, 0.42)])  # fmt: skip
    p.line((0.38, 0.42), (0.62, 0.42), width=1.5)
    p.line((0.45, 0.46), (0.33, 0.97))
    p.line((0.55, 0.46), (0.67, 0.97))


def _skirt(p: Painter) -> None:
    p.poly([(0.22, 0.0), (0.78, 0.0), (0.79, 0.12), (1.0, 1.0), (0.0, 1.0), (0.21, 0.12)])
    p.line((0.21, 0.12), (0.79, 0.12), width=1.5)
    for top, bottom in ((0.35, 0.2), (0.5, 0.5), (0.65, 0.8)):
        p.line((top, 0.12), (bottom, 1.0))


def _trousers(p: Painter) -> None:
    p.poly([(0.08, 0.0), (0.92, 0.0), (1.0, 1.0), (0.56, 1.0), (0.5, 0.28), (0.44, 1.0),
            (0.0, 1.0)])  # fmt: skip
    p.line((0.075, 0.06), (0.925, 0.06), width=1.5)
    p.line((0.5, 0.06), (0.5, 0.22))
    p.line((0.27, 0.1), (0.22, 1.0))
    p.line((0.73, 0.1), (0.78, 1.0))


def _shorts(p: Painter) -> None:
    p.poly([(0.1, 0.0), (0.9, 0.0), (1.0, 0.86), (0.56, 0.96), (0.5, 0.42), (0.44, 0.96),
            (0.0, 0.86)])  # fmt: skip
    p.line((0.095, 0.1), (0.905, 0.1), width=1.5)
    p.line((0.5, 0.1), (0.5, 0.36))
    p.line((0.02, 0.77), (0.45, 0.87))
    p.line((0.98, 0.77), (0.55, 0.87))


def _shoes(p: Painter) -> None:
    p.poly([(0.03, 0.12), (0.16, 0.1), (0.22, 0.3), (0.38, 0.3), (0.55, 0.38), (0.78, 0.48),
            (0.95, 0.6), (1.0, 0.75), (1.0, 0.82), (0.0, 0.82), (0.0, 0.4)])  # fmt: skip
    p.inner_poly([(0.0, 0.78), (1.0, 0.78), (0.99, 0.95), (0.96, 1.0), (0.02, 1.0), (0.0, 0.95)])
    for x in (0.4, 0.48, 0.56):  # laces
        p.line((x, 0.31 + (x - 0.4) * 0.45), (x + 0.05, 0.44 + (x - 0.4) * 0.5), width=1.5)
    p.line((0.8, 0.5), (0.84, 0.78))  # toe cap


def _bag(p: Painter) -> None:
    p.ellipse(0.25, 0.0, 0.75, 0.6)  # handle: a ring, hollowed before the body is drawn
    p.ellipse(0.32, 0.07, 0.68, 0.53, value=0)
    p.poly([(0.09, 0.32), (0.91, 0.32), (0.95, 0.36), (0.97, 0.96), (0.93, 1.0), (0.07, 1.0),
            (0.03, 0.96), (0.05, 0.36)])  # fmt: skip
    p.line((0.05, 0.48), (0.5, 0.62), (0.95, 0.48), width=1.5)
    p.dot(0.5, 0.65, 0.035)


def _hat(p: Painter) -> None:
    p.ellipse(0.0, 0.62, 1.0, 0.98)  # brim
    p.poly([(0.26, 0.1), (0.4, 0.04), (0.6, 0.04), (0.74, 0.1), (0.78, 0.78), (0.22, 0.78)])
    p.inner_poly([(0.23, 0.56), (0.77, 0.56), (0.775, 0.68), (0.225, 0.68)])  # band
    p.line((0.42, 0.06), (0.5, 0.16), (0.58, 0.06))


SHAPES: dict[str, Callable[[Painter], None]] = {
    "t-shirt": _tshirt,
    "shirt": _shirt,
    "dress": _dress,
    "skirt": _skirt,
    "trousers": _trousers,
    "shorts": _shorts,
    "jacket": _jacket,
    "shoes": _shoes,
    "bag": _bag,
    "hat": _hat,
}

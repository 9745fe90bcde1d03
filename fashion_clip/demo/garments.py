"""Synthetic fashion product photos: one garment, one colour, one fabric pattern, a backdrop.

Everything is drawn with PIL and numpy from a `numpy.random.Generator`, so the same seed gives
the same pixels. Captions read "{color} {pattern} {category}" for every item, solid ones
included ("red solid dress"), so each (colour, pattern, category) has exactly one caption.

    rng = np.random.default_rng(0)
    image, box = render_garment("dress", "red", "striped", rng)   # RGB 256x256, (x0, y0, x1, y1)
    layer = render_garment_rgba("hat", "blue", "dotted", rng, size=80)  # RGBA, tight crop
"""

from __future__ import annotations

import colorsys
import io
import itertools
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from fashion_clip.demo._silhouettes import ASPECT, SHAPES, Painter

__all__ = [
    "BACKGROUNDS",
    "CATEGORIES",
    "COLORS",
    "PATTERNS",
    "caption_for",
    "generate_items",
    "render_array",
    "render_background",
    "render_garment",
    "render_garment_rgba",
]

CATEGORIES: tuple[str, ...] = tuple(SHAPES)
COLORS: tuple[str, ...] = (
    "red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white",
)  # fmt: skip
PATTERNS: tuple[str, ...] = ("solid", "striped", "dotted", "checked")
BACKGROUNDS: tuple[str, ...] = ("plain", "gradient", "texture")

# Ranges (hue in degrees, saturation, value) that stay inside what people call each colour.
_HSV: dict[str, tuple[tuple[float, float], tuple[float, float], tuple[float, float]]] = {
    "red": ((-6, 5), (0.78, 0.95), (0.68, 0.9)),
    "orange": ((22, 32), (0.85, 1.0), (0.92, 1.0)),
    "yellow": ((48, 57), (0.75, 0.95), (0.93, 1.0)),
    "green": ((100, 145), (0.55, 0.85), (0.42, 0.72)),
    "blue": ((205, 228), (0.65, 0.9), (0.6, 0.9)),
    "purple": ((268, 290), (0.5, 0.75), (0.42, 0.68)),
    "pink": ((325, 345), (0.3, 0.5), (0.94, 1.0)),
    "brown": ((18, 30), (0.55, 0.75), (0.3, 0.48)),
    "black": ((0, 360), (0.0, 0.15), (0.06, 0.16)),
    "white": ((0, 360), (0.0, 0.04), (0.96, 1.0)),
}
_LIGHT = np.array([242.0, 242.0, 236.0])
_DARK = np.array([34.0, 40.0, 62.0])


def caption_for(color: str, pattern: str, category: str) -> str:
    """The catalog caption, e.g. "red striped dress"; solid items say so ("red solid dress")."""
    return f"{color} {pattern} {category}"


def _shade(color: str, rng: np.random.Generator) -> np.ndarray:
    """A random shade of a named colour: float RGB in 0..255, shape (3,)."""
    if color not in _HSV:
        raise ValueError(f"unknown colour {color!r}; available colours = {list(COLORS)}")
    (h0, h1), (s0, s1), (v0, v1) = _HSV[color]
    h, s, v = rng.uniform(h0, h1) % 360, rng.uniform(s0, s1), rng.uniform(v0, v1)
    return np.array(colorsys.hsv_to_rgb(h / 360, s, v)) * 255


def _luma(rgb: np.ndarray) -> float:
    return float(rgb @ np.array([0.299, 0.587, 0.114]))


def _fabric(base: np.ndarray, pattern: str, shape: tuple[int, int], period: float,
            rng: np.random.Generator) -> np.ndarray:  # fmt: skip
    """Fabric of `shape` (h, w) as float RGB (h, w, 3); the base colour covers most of it."""
    h, w = shape
    # open grids (h, 1) and (1, w): broadcasting builds full planes only where needed
    yy = np.arange(h, dtype=np.float32)[:, None]
    xx = np.arange(w, dtype=np.float32)[None, :]
    contrast = _DARK if _luma(base) > 140 else _LIGHT
    mix: np.ndarray | float = 0.0  # 0 = base colour, 1 = contrast colour
    if pattern == "striped":
        u = [xx, yy, (xx + yy) * 0.7071][rng.choice(3, p=[0.45, 0.4, 0.15])]
        mix = ((u + rng.uniform(0, period)) % period < period * 0.38).astype(np.float32)
    elif pattern == "dotted":
        row = np.floor((yy + rng.uniform(0, period)) / period)
        dx = (xx + (row % 2) * period / 2) % period - period / 2
        dy = (yy + rng.uniform(0, period)) % period - period / 2
        radius = period * rng.uniform(0.24, 0.3)
        mix = (dx * dx + dy * dy < radius * radius).astype(np.float32)
    elif pattern == "checked":  # gingham: bands of contrast cross in darker squares
        hb = ((yy + rng.uniform(0, period)) % period < period / 2).astype(np.float32)
        vb = ((xx + rng.uniform(0, period)) % period < period / 2).astype(np.float32)
        mix = (hb + vb) * 0.36
    elif pattern != "solid":
        raise ValueError(f"unknown pattern {pattern!r}; available patterns = {list(PATTERNS)}")
    mix = np.broadcast_to(mix, (h, w))
    light = 1.05 - 0.12 * yy / max(h - 1, 1)  # soft top light, so a flat fill looks like cloth
    rgb = base.astype(np.float32) + mix[..., None] * (contrast - base).astype(np.float32)
    return rgb * light[..., None]


def render_garment_rgba(category: str, color: str, pattern: str, rng: np.random.Generator,
                        size: int = 200, rotate: float = 7.0) -> Image.Image:  # fmt: skip
    """One garment alone on a transparent background.

    `size` is the longest side of the unrotated garment in pixels; the garment is turned by up
    to `rotate` degrees either way. Returns an RGBA image cropped tight to the garment (alpha
    > 0 exactly where it is), ready to paste into composites.
    """
    if category not in SHAPES:
        raise ValueError(f"unknown category {category!r}; available categories = {CATEGORIES}")
    aspect = ASPECT[category]
    w, h = (size, round(size / aspect)) if aspect >= 1 else (round(size * aspect), size)
    stroke = max(1.0, size / 110)
    pad = int(stroke) + 2
    painter = Painter(w, h, pad)
    SHAPES[category](painter)

    base = _shade(color, rng)
    canvas = painter.mask.size[::-1]
    rgb = _fabric(base, pattern, canvas, period=size * rng.uniform(0.07, 0.1), rng=rng)
    inner_rgb = _DARK + 30 if _luma(base) > 170 else _LIGHT - 10
    rgb[np.asarray(painter.inner) > 0] = inner_rgb
    rgb += rng.standard_normal(rgb.shape, dtype=np.float32) * 2.0
    rgb = np.clip(rgb, 0, 255).astype(np.uint8)

    # White needs a grey edge to be seen; black a lighter one; the rest a darker own shade.
    line = np.array([150.0, 150.0, 150.0]) if color == "white" else base * 0.55
    if color == "black":
        line = np.array([105.0, 105.0, 110.0])
    line_rgb = tuple(int(c) for c in line)
    layer = Image.fromarray(rgb)
    draw = ImageDraw.Draw(layer)
    for kind, points, width in painter.strokes:
        if kind == "line":
            draw.line(points, fill=line_rgb, width=max(1, round(stroke * width)), joint="curve")
        else:
            (x, y), r = points[0], width
            draw.ellipse((x - r, y - r, x + r, y + r), fill=line_rgb)

    mask = np.asarray(painter.mask) > 0
    grown = np.asarray(painter.mask.filter(ImageFilter.MaxFilter(3 if stroke < 2 else 5))) > 0
    out = np.asarray(layer).copy()
    out[~mask] = line_rgb  # the outline ring, and no dark fringe when rotated
    rgba = Image.fromarray(out).convert("RGBA")
    rgba.putalpha(Image.fromarray(grown.astype(np.uint8) * 255))
    if rng.random() < 0.5:  # garments are symmetric except shoes: facing either way is fine
        rgba = rgba.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    rgba = rgba.rotate(rng.uniform(-rotate, rotate), Image.Resampling.BILINEAR, expand=True)
    return rgba.crop(rgba.getchannel("A").getbbox())


def _light_color(rng: np.random.Generator, dim: bool) -> np.ndarray:
    # Backdrops are pale and nearly grey so they never read as a garment colour; behind white
    # garments they are dimmer so the garment still stands out.
    v = rng.uniform(0.7, 0.86) if dim else rng.uniform(0.86, 0.98)
    s = rng.uniform(0.0, 0.14)
    return np.array(colorsys.hsv_to_rgb(rng.uniform(0, 1), s, v)) * 255


def render_background(size: int, rng: np.random.Generator, kind: str = "random",
                      dim: bool = False) -> Image.Image:  # fmt: skip
    """A pale backdrop, RGB `size`x`size`: "plain", "gradient", "texture" or "random".

    `dim` keeps it darker than about 86% grey, for white garments.
    """
    if kind == "random":
        kind = BACKGROUNDS[rng.choice(3, p=[0.35, 0.35, 0.3])]
    if kind not in BACKGROUNDS:
        raise ValueError(f"unknown background {kind!r}; available = {['random', *BACKGROUNDS]}")
    a = _light_color(rng, dim).astype(np.float32)
    if kind == "plain":
        return Image.new("RGB", (size, size), tuple(int(c) for c in a))
    # Smooth parts are built at 32x32 and upsampled: cheap, and invisible after bilinear.
    low = 32
    img = np.broadcast_to(a, (low, low, 3))
    if kind == "gradient" or rng.random() < 0.8:
        b = _light_color(rng, dim).astype(np.float32)
        angle = rng.uniform(0, 2 * np.pi)
        ramp = np.linspace(0, 1, low, dtype=np.float32)
        t = ramp[None, :] * np.cos(angle) + ramp[:, None] * np.sin(angle)
        t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
        img = a + t[..., None] * (b - a)
    if kind == "texture":  # soft mottling from upsampled noise
        coarse = rng.standard_normal((12, 12), dtype=np.float32) * rng.uniform(3, 8)
        img = img + np.asarray(Image.fromarray(coarse, "F").resize((low, low)))[..., None]
    small = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    full = small.resize((size, size), Image.Resampling.BILINEAR)
    if kind != "texture":
        return full
    grain = rng.integers(-3, 4, (size, size, 1), dtype=np.int16)  # a little film grain
    return Image.fromarray(np.clip(np.asarray(full, np.int16) + grain, 0, 255).astype(np.uint8))


def render_garment(category: str, color: str, pattern: str, rng: np.random.Generator,
                   size: int = 256, background: str | tuple[int, int, int] = "random",
                   ) -> tuple[Image.Image, tuple[int, int, int, int]]:  # fmt: skip
    """A product photo: the garment at a random scale, near the centre, with a soft shadow.

    `background` is "random", "plain", "gradient", "texture" or an RGB colour. Returns the RGB
    image (`size`x`size`) and the garment's box (x0, y0, x1, y1) in pixels, x1/y1 exclusive.
    """
    longest = round(size * rng.uniform(0.6, 0.84))
    layer = render_garment_rgba(category, color, pattern, rng, size=longest)
    if isinstance(background, str):
        canvas = render_background(size, rng, background, dim=color == "white")
    else:
        canvas = Image.new("RGB", (size, size), tuple(background))
    if max(layer.size) > size * 0.96:  # only when rotation pushed it past the frame
        scale = size * 0.96 / max(layer.size)
        shrunk = (max(1, round(layer.width * scale)), max(1, round(layer.height * scale)))
        layer = layer.resize(shrunk, Image.Resampling.BICUBIC)
    # Near the centre, as product shots are: a shifted garment stays whole in the frame.
    margin = round(size * 0.02)
    x, y = (round((size - side) / 2 + rng.normal(0, size * 0.05)) for side in layer.size)
    x = min(max(x, margin), max(margin, size - layer.width - margin))
    y = min(max(y, margin), max(margin, size - layer.height - margin))

    alpha = layer.getchannel("A")
    shadow = alpha.filter(ImageFilter.BoxBlur(max(1, size // 90))).point(lambda a: a * 0.3)
    offset = round(size * 0.015)
    canvas.paste((0, 0, 0), (x + offset, y + offset), shadow)
    canvas.paste(layer, (x, y), alpha)
    return canvas, (x, y, x + layer.width, y + layer.height)


def generate_items(n: int | None = None, seed: int = 0, size: int = 256,
                   ) -> Iterator[tuple[dict[str, Any], Image.Image]]:  # fmt: skip
    """Yield `(item, image)` pairs; `item` has category, color, pattern, caption and box.

    With `n=None`, one item per (category, colour, pattern) in that nested order (400 items);
    otherwise `n` items with combinations drawn at random. Item `i` depends only on `seed` and
    `i`, so a prefix of a longer run is the same as a shorter run.
    """
    combos = list(itertools.product(CATEGORIES, COLORS, PATTERNS))
    count = len(combos) if n is None else n
    pick = np.random.default_rng([seed, 0xC0FFEE])
    for i in range(count):
        if n is None:
            category, color, pattern = combos[i]
        else:
            category, color, pattern = combos[int(pick.integers(len(combos)))]
        rng = np.random.default_rng([seed, i])
        image, box = render_garment(category, color, pattern, rng, size=size)
        item = {
            "category": category,
            "color": color,
            "pattern": pattern,
            "caption": caption_for(color, pattern, category),
            "box": box,
        }
        yield item, image


def render_array(combos: Sequence[tuple[str, str, str]], seed: int, start: int = 0,
                 size: int = 256, out_size: int | None = None,
                 jpeg_quality: int | None = None) -> np.ndarray:  # fmt: skip
    """Render (category, colour, pattern) triples into one uint8 array (n, out, out, 3).

    Item `i` is drawn with the generator seeded `[seed, start + i]`, so chunks rendered apart
    (in worker processes) join into the same array as one call. Images are drawn at `size`,
    optionally round-tripped through JPEG at `jpeg_quality` (as catalog files are), then, when
    `out_size` is given, shrunk with bicubic resampling as CLIP's image processor does.
    """
    out = out_size or size
    array = np.empty((len(combos), out, out, 3), np.uint8)
    for i, (category, color, pattern) in enumerate(combos):
        rng = np.random.default_rng([seed, start + i])
        image, _ = render_garment(category, color, pattern, rng, size)
        if jpeg_quality is not None:
            buffer = io.BytesIO()
            image.save(buffer, "JPEG", quality=jpeg_quality)
            image = Image.open(buffer).convert("RGB")
        if out != size:
            image = image.resize((out, out), Image.Resampling.BICUBIC)
        array[i] = np.asarray(image)
    return array

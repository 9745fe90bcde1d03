"""Makes the corpus of odd and bad image files that the loader, the indexer and the app meet."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def photo(width: int = 120, height: int = 90, seed: int = 0) -> Image.Image:
    """A smooth, photo-like RGB image with some noise (compresses like a real photo)."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 1, width)[None, :, None]
    y = np.linspace(0, 1, height)[:, None, None]
    phase = rng.uniform(0, 6, size=3)
    base = 0.5 + 0.5 * np.sin(rng.uniform(2, 9) * x + rng.uniform(1, 5) * y + phase)
    noise = rng.normal(0, 0.04, size=(height, width, 3))
    return Image.fromarray((np.clip(base + noise, 0, 1) * 255).astype(np.uint8))


def jpeg_bytes(image: Image.Image, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", **kwargs)
    return buffer.getvalue()


def png_bytes(image: Image.Image, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", **kwargs)
    return buffer.getvalue()


def bomb_png(width: int = 50_000, height: int = 50_000) -> bytes:
    """A tiny PNG whose header claims `width` x `height` pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    row = b"\x00" + b"\x00" * width
    idat = zlib.compress(row * 4)  # only a few rows: the header is what matters
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def exif_rotated_jpeg() -> bytes:
    """A 60x30 (wide) JPEG with EXIF orientation 6: it should load as 30x60 (tall)."""
    image = Image.new("RGB", (60, 30), (200, 30, 30))
    image.paste((30, 30, 200), (0, 0, 20, 30))  # a blue band at the left edge
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    return jpeg_bytes(image, exif=exif.tobytes(), quality=95)


def good_files() -> dict[str, bytes]:
    """Odd but valid files: each must load as an RGB image."""
    base = photo()
    cmyk = io.BytesIO()
    base.convert("CMYK").save(cmyk, "JPEG")
    sixteen = Image.fromarray((np.linspace(0, 65535, 64 * 32).reshape(32, 64)).astype(np.uint16))
    rgba = base.convert("RGBA")
    alpha = np.array(rgba)
    alpha[:, : base.width // 2, 3] = 0  # left half fully transparent
    palette = base.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    gif = io.BytesIO()
    frames = [Image.new("RGB", (40, 40), color) for color in ((255, 0, 0), (0, 255, 0))]
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return {
        "photo.jpg": jpeg_bytes(base),
        "cmyk.jpg": cmyk.getvalue(),
        "grey16.png": png_bytes(sixteen),
        "rgba.png": png_bytes(Image.fromarray(alpha, "RGBA")),
        "palette.png": png_bytes(palette),
        "animated.gif": gif.getvalue(),
        "rotated.jpg": exif_rotated_jpeg(),
        "one_pixel.png": png_bytes(Image.new("RGB", (1, 1), (10, 20, 30))),
        "greyscale.jpg": jpeg_bytes(base.convert("L")),
        "webp.webp": _webp(base),
    }


def bad_files() -> dict[str, tuple[bytes, str]]:
    """Files that must be refused, with a word the error message must contain."""
    whole = jpeg_bytes(photo(200, 150))
    return {
        "empty.jpg": (b"", "empty"),
        "truncated.jpg": (whole[: len(whole) // 2], "truncated"),
        "text.jpg": (b"this is not an image, just some text\n" * 5, "not an image"),
        "page.jpg": (b"<!DOCTYPE html><html><body>404</body></html>", "HTML"),
        "garbage.png": (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "image"),
        "bomb.png": (bomb_png(), "pixel"),
    }


def _webp(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "WEBP")
    return buffer.getvalue()


def write_corpus(folder: Path) -> tuple[dict[str, Path], dict[str, tuple[Path, str]]]:
    """Write the good and bad files into `folder`; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    good = {}
    for name, data in good_files().items():
        (folder / name).write_bytes(data)
        good[name] = folder / name
    bad = {}
    for name, (data, word) in bad_files().items():
        (folder / name).write_bytes(data)
        bad[name] = (folder / name, word)
    return good, bad

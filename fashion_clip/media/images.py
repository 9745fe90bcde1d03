"""Image loading: path, bytes, URL or S3 URI -> an RGB `PIL.Image`, or one clear error.

Every odd file a catalog holds ends up here: EXIF-rotated photos, CMYK JPEGs, palette and
alpha PNGs, 16-bit scans, animated GIFs, truncated uploads, HTML error pages saved as `.jpg`,
decompression bombs. Each is either turned into a plain RGB image or refused with an
`ImageLoadError` that names the source and the problem.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from fashion_clip.errors import FashionCLIPError, ImageLoadError, InvalidInputError
from fashion_clip.media import s3
from fashion_clip.media.web import HTTP_RETRIES, HTTP_TIMEOUT_S, fetch_http

ImageSource = str | os.PathLike | bytes | bytearray | memoryview | Image.Image | IO[bytes]
_SOURCE_TYPES = (str, os.PathLike, bytes, bytearray, memoryview, Image.Image)
SOURCE_HINT = "a path, http(s):// URL, s3:// URI, bytes, a binary file object or a PIL image"

# What the web serves and phones send; the app decodes uploads in these alone, leaving the
# rest of Pillow's decoders (dozens of rarely used formats) out of a stranger's reach.
WEB_FORMATS = ("JPEG", "PNG", "WebP", "GIF", "BMP", "AVIF")  # JPEG takes MPO too
UNKNOWN_FORMAT = "unknown format"
MAX_PIXELS = 64_000_000  # 8000 x 8000; larger images are refused as possible decompression bombs
MAX_BYTES = 50 * 1024 * 1024  # cap on bytes fetched for one image
_ORIENTATION_TAG = 0x0112  # EXIF Orientation
_QUARTER_TURNS = {5, 6, 7, 8}  # its values that swap width and height


def is_image_source(value: object) -> bool:
    """True for the kinds of value `load_image` accepts (see `ImageSource`)."""
    return isinstance(value, _SOURCE_TYPES) or callable(getattr(value, "read", None))


def is_remote(source: object) -> bool:
    """True for an `http(s)://` URL or an `s3://` URI (what is fetched, not read from disk)."""
    return isinstance(source, str) and source.startswith(("http://", "https://", "s3://"))


def image_from_array(array: np.ndarray) -> Image.Image:
    """A uint8 `(H, W)` or `(H, W, C)` array (C of 1 to 4: grey, grey+alpha, RGB, RGBA) as a
    PIL image; anything else is an `ImageLoadError` naming its shape and dtype.

    Other dtypes are refused, not cast: a float image in [0, 1] cast to uint8 is black.
    """
    described = f"<array {array.shape} {array.dtype}>"
    if array.dtype != np.uint8:
        raise ImageLoadError(
            described,
            "an image array must be uint8 (0-255); scale a float image in [0, 1] with "
            "(array * 255).round().astype(np.uint8)",
        )
    if 0 in array.shape or not (array.ndim == 2 or (array.ndim == 3 and 1 <= array.shape[2] <= 4)):
        raise ImageLoadError(
            described, "an image array must be non-empty (H, W) or (H, W, C) with C of 1 to 4"
        )
    return Image.fromarray(array[:, :, 0] if array.ndim == 3 and array.shape[2] == 1 else array)


def fetch_bytes(
    source: str | os.PathLike[str],
    *,
    max_bytes: int = MAX_BYTES,
    timeout: float = HTTP_TIMEOUT_S,
    retries: int = HTTP_RETRIES,
    public_only: bool = False,
    deadline: float | None = None,
) -> bytes:
    """Read the raw bytes behind a local path, an `http(s)://` URL or an `s3://` URI.

    `public_only`: fetch web addresses on the public internet only (`fashion_clip.media.web`).
    `deadline`: seconds a web fetch may take in all, retries included (None: no limit).
    """
    text = os.fspath(source)
    if text.startswith(("http://", "https://")):
        return fetch_http(
            text,
            max_bytes=max_bytes,
            timeout=timeout,
            retries=retries,
            public_only=public_only,
            deadline=deadline,
        )
    if text.startswith("s3://"):
        try:
            return s3.read_bytes(text, max_bytes=max_bytes)
        except FashionCLIPError as exc:
            raise ImageLoadError(text, str(exc).removeprefix(f"{text}: ")) from exc
    if "://" in text and not Path(text).exists():
        scheme = text.split("://", 1)[0]
        raise ImageLoadError(
            text, f"unsupported scheme {scheme!r}; use a path, http(s):// or s3://"
        )
    path = Path(text)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise ImageLoadError(text, f"file is {size} bytes, over the {max_bytes}-byte cap")
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise ImageLoadError(text, "no such file") from exc
    except IsADirectoryError as exc:
        raise ImageLoadError(text, "is a directory, not an image file") from exc
    except PermissionError as exc:
        raise ImageLoadError(text, "permission denied") from exc


def load_image(
    source: ImageSource,
    *,
    min_side: int | None = None,
    min_long_side: int | None = None,
    max_pixels: int = MAX_PIXELS,
    max_bytes: int = MAX_BYTES,
    formats: Sequence[str] | None = None,
) -> Image.Image:
    """Open any supported source as an RGB image, upright, alpha composited on white.

    `min_side` lets JPEGs decode in draft mode (DCT scaling, 2-8x faster) at the smallest
    scale whose shorter side still covers `min_side` pixels: enough for a model whose input
    is that size, and the reason decoding all but vanishes from the indexing cost.
    `min_long_side` does the same for the longer side: enough for a picture shown that big.
    `formats`: decode only these (Pillow's names, e.g. `WEB_FORMATS`); None: any.
    """
    return load_image_sized(
        source,
        min_side=min_side,
        min_long_side=min_long_side,
        max_pixels=max_pixels,
        max_bytes=max_bytes,
        formats=formats,
    )[0]


def load_image_sized(
    source: ImageSource,
    *,
    min_side: int | None = None,
    min_long_side: int | None = None,
    max_pixels: int = MAX_PIXELS,
    max_bytes: int = MAX_BYTES,
    formats: Sequence[str] | None = None,
) -> tuple[Image.Image, tuple[int, int]]:
    """`load_image`, and the `(width, height)` of the whole upright image, which a JPEG
    decoded in draft mode is smaller than (for positions given in the original's pixels).
    `formats`: decode only these (Pillow's names, e.g. `WEB_FORMATS`); None: any."""
    if not is_image_source(source):
        raise InvalidInputError(
            f"an image of type {type(source).__name__} cannot be read; pass {SOURCE_HINT}"
        )
    if isinstance(source, Image.Image):
        if source.width < 1 or source.height < 1:  # nothing to resize: a division by zero later
            name = getattr(source, "filename", None) or "PIL image"
            raise ImageLoadError(name, f"image has no pixels ({source.width}x{source.height})")
        image = to_rgb(_upright(source), source)
        return image, image.size
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, name = bytes(source), source
    elif hasattr(source, "read"):
        data, name = _read_capped(source, max_bytes), source
    else:
        data, name = fetch_bytes(source, max_bytes=max_bytes), os.fspath(source)
    return decode_image_sized(
        data,
        name=name,
        min_side=min_side,
        min_long_side=min_long_side,
        max_pixels=max_pixels,
        formats=formats,
    )


def _read_capped(stream: IO[bytes], max_bytes: int) -> bytes:
    """At most `max_bytes` of a file object, read no further: a stream (a pipe, a socket, a
    huge file) is refused at the cap rather than read whole into memory."""
    data = stream.read(max_bytes + 1)
    if not isinstance(data, (bytes, bytearray)):
        raise ImageLoadError(stream, "the file object is not opened in binary mode ('rb')")
    if len(data) > max_bytes:
        raise ImageLoadError(stream, f"file is over the {max_bytes}-byte cap")
    return bytes(data)


def decode_image(
    data: bytes,
    *,
    name: object = None,
    min_side: int | None = None,
    min_long_side: int | None = None,
    max_pixels: int = MAX_PIXELS,
    formats: Sequence[str] | None = None,
) -> Image.Image:
    """Decode encoded image bytes into an upright RGB image (see `load_image`)."""
    return decode_image_sized(
        data,
        name=name,
        min_side=min_side,
        min_long_side=min_long_side,
        max_pixels=max_pixels,
        formats=formats,
    )[0]


def decode_image_sized(
    data: bytes,
    *,
    name: object = None,
    min_side: int | None = None,
    min_long_side: int | None = None,
    max_pixels: int = MAX_PIXELS,
    formats: Sequence[str] | None = None,
) -> tuple[Image.Image, tuple[int, int]]:
    """`decode_image`, and the whole upright image's `(width, height)` (see `load_image_sized`)."""
    name = name if name is not None else data
    if not data:
        raise ImageLoadError(name, "empty file (0 bytes)")
    try:
        image = Image.open(io.BytesIO(data), formats=_installed(formats))
    except Image.DecompressionBombError as exc:
        raise ImageLoadError(name, f"too many pixels (over {max_pixels}); refused") from exc
    except UnidentifiedImageError as exc:
        raise ImageLoadError(name, _unreadable(data, formats)) from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageLoadError(name, f"corrupt image ({exc})") from exc

    width, height = image.size
    if width * height > max_pixels:
        raise ImageLoadError(
            name, f"{width}x{height} is over the {max_pixels}-pixel cap (decompression bomb?)"
        )
    if width < 1 or height < 1:
        raise ImageLoadError(name, f"image has no pixels ({width}x{height})")
    # MPO: a phone camera's JPEG with extra frames (depth, preview); its first is a JPEG.
    if image.format in ("JPEG", "MPO") and (min_side or min_long_side):
        scale = max(
            min_side / min(width, height) if min_side else 0.0,
            min_long_side / max(width, height) if min_long_side else 0.0,
        )
        if scale < 1:
            # draft() keeps both sides >= the requested ones, so each stays >= its minimum.
            image.draft("RGB", (int(np.ceil(width * scale)), int(np.ceil(height * scale))))
    try:
        if getattr(image, "is_animated", False):
            image.seek(0)  # the first frame stands for an animated image
        image.load()
    except Image.DecompressionBombError as exc:
        raise ImageLoadError(name, f"too many pixels (over {max_pixels}); refused") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        problem = "truncated image" if "truncated" in str(exc) else f"corrupt image ({exc})"
        raise ImageLoadError(name, problem) from exc
    decoded, orientation = image.size, _orientation(image)  # read before _upright drops it
    upright = to_rgb(_upright(image), name)
    # EXIF orientations 5-8 turn the picture a quarter turn: its whole size turns with it.
    turned = orientation in _QUARTER_TURNS and upright.size == decoded[::-1]
    return upright, (height, width) if turned else (width, height)


def _orientation(image: Image.Image) -> int | None:
    try:
        return image.getexif().get(_ORIENTATION_TAG)
    except Exception:  # a malformed EXIF block: _upright leaves the picture as it is
        return None


def _upright(image: Image.Image) -> Image.Image:
    """Apply the EXIF orientation tag, so phone photos are not sideways."""
    try:
        return ImageOps.exif_transpose(image) or image
    except Exception:  # a malformed EXIF block must not cost us an otherwise good image
        return image


def to_rgb(image: Image.Image, name: object = None) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB; transparency is composited on white."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return _high_depth_to_rgb(image)
    try:
        if mode == "P":
            image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        elif mode == "La":
            # Premultiplied alpha: PIL converts it only to LA (un-premultiplying on the way).
            image = image.convert("LA").convert("RGBA")
        elif mode in ("LA", "PA", "RGBa"):
            image = image.convert("RGBA")
        if image.mode == "RGBA":
            background = Image.new("RGB", image.size, (255, 255, 255))
            background.paste(image, mask=image.getchannel("A"))
            return background
        return image.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV
    except (ValueError, OSError) as exc:
        raise ImageLoadError(
            name if name is not None else "image", f"unsupported mode {mode}"
        ) from exc


def _high_depth_to_rgb(image: Image.Image) -> Image.Image:
    """16-bit and 32-bit greyscale: scale to 8 bits instead of clipping everything to white."""
    # float32 and in place: an 8000x8000 scan is 256 MB as float32 (float64 copies: ~2 GB).
    values = np.asarray(image, dtype=np.float32)
    if image.mode.startswith("I;16"):
        values /= 257.0  # 65535 -> 255
    else:
        low, high = float(values.min()), float(values.max())
        values -= low
        values *= 255.0 / (high - low) if high > low else 0.0
    np.rint(values, out=values)
    np.clip(values, 0, 255, out=values)
    return Image.fromarray(values.astype(np.uint8)).convert("RGB")


def _installed(formats: Sequence[str] | None) -> list[str] | None:
    """Those of `formats` this Pillow decodes (AVIF needs a build with libavif); None: any."""
    if formats is None:
        return None
    Image.init()
    return [name.upper() for name in formats if name.upper() in Image.OPEN]


def _unreadable(data: bytes, formats: Sequence[str] | None) -> str:
    """Why no allowed decoder took `data`: another kind of file (named), or not an image.

    Named from its first bytes, never by Pillow's other decoders: those are what `formats`
    keeps out of reach."""
    looks = _sniff(data)
    if formats is None or looks != UNKNOWN_FORMAT:  # text, JSON, a web page
        return f"not an image ({looks})"
    allowed = f"{', '.join(formats[:-1])} or {formats[-1]}" if len(formats) > 1 else formats[0]
    other = next((what for magic, what in _OTHER_FILES if magic(data[:32])), None)
    return f"{other}, not a {allowed} image" if other else f"not a {allowed} image ({looks})"


_OTHER_FILES: list[tuple[Callable[[bytes], bool], str]] = [
    (lambda head: head.startswith((b"II*\0", b"MM\0*")), "a TIFF image"),
    (lambda head: head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"mif1", b"msf1"),
     "a HEIC image (an iPhone's; export it as JPEG)"),
    (lambda head: head.startswith(b"8BPS"), "a Photoshop file"),
    (lambda head: head.startswith(b"\0\0\1\0"), "an icon file"),
    (lambda head: head.startswith(b"%PDF"), "a PDF document"),
    (lambda head: head.lstrip().lower().startswith((b"<svg", b"<?xml")), "an SVG drawing"),
]  # fmt: skip


def _sniff(data: bytes) -> str:
    head = data[:64].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")):
        return "looks like an HTML page"
    if head.startswith((b"{", b"[")):
        return "looks like JSON"
    if all(32 <= b < 127 or b in (9, 10, 13) for b in data[:256]):
        return "looks like text"
    return UNKNOWN_FORMAT

"""Text-conditioned localization: where in an image is the text concept, as a heatmap.

    heatmap = localize(model, "look.jpg", "red striped dress")  # (H, W) float32 in [0, 1]
    x, y = heatmap_peak(heatmap)                                 # pixels of the input image

The model sees the whole image: it is letterboxed to a square (padded with its own border
colour, so a product photo's backdrop simply continues) and resized to the model's input
side, or to `resolution` (e.g. 336 or 448; position embeddings are interpolated). The map
is cut back out of the letterbox and resized, so it is aligned pixel for pixel with the
input image, whatever its shape; nothing of the image is cropped away.

Methods (see `localize_methods`): "groups" (one pass with a CLS token per patch that sees
only the patches like its own), "surgery" (one pass, ClearCLIP-style last block), "masking"
(occlusion, 197 passes: the reference) and "default" (the one the benchmark picked). Models
the single-pass methods cannot serve (SigLIP, non-ViT towers) fall back to masking.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from fashion_clip.errors import ImageLoadError, InvalidInputError
from fashion_clip.media.images import ImageSource, image_from_array, is_image_source, load_image
from fashion_clip.model.text import visible_text
from fashion_clip.tasks import localize_methods as methods
from fashion_clip.tasks.overlay import heatmap_peak  # public here: where the map comes from

if TYPE_CHECKING:
    from fashion_clip.model.clip import ClipModel

__all__ = ["DEFAULT_METHOD", "METHODS", "heatmap_peak", "localize", "resolve_method"]

log = logging.getLogger(__name__)

DEFAULT_METHOD = "groups"  # measured in benchmarks/HISTORY.md (Localization)
METHODS = ("default", "groups", "surgery", "masking")
_RUN = {"groups": methods.groups, "surgery": methods.surgery, "masking": methods.masking}
_OPTIONS = {
    "groups": ("share",),
    "surgery": ("attention", "residual", "mlp"),
    "masking": ("grid", "window", "batch_size"),
}


def resolve_method(model: ClipModel, method: str = "default") -> str:
    """The method that will run for `model`: "default" resolved, fallback applied."""
    if not isinstance(method, str) or method not in METHODS:
        raise InvalidInputError(
            f"unknown localization method {method!r}; available methods = {list(METHODS)}"
        )
    name = DEFAULT_METHOD if method == "default" else method
    if name != "masking" and not methods.supports_single_pass(model):
        log.info("%s: single-pass localization needs a CLIP ViT; using masking", model.info.name)
        return "masking"
    return name


def localize(
    model: ClipModel,
    image: ImageSource | np.ndarray,
    text: str,
    *,
    method: str = "default",
    resolution: int | None = None,
    size: tuple[int, int] | None = None,
    **options: Any,
) -> np.ndarray:
    """Heatmap of where `text` is in `image`: `(H, W)` float32 in [0, 1], H x W the image's.

    `image` is anything `load_image` takes (path, URL, bytes, PIL image) or an `(H, W[, C])`
    uint8 array; `model` a loaded `ClipModel`. `resolution` is the side of the square the
    vision tower sees (default: its own input size; a multiple of its patch size). `options`
    go to the method (see `localize_methods`). `size` = `(W, H)` samples the map on another
    grid over the same picture (e.g. the size it is shown at): a 1024-pixel map of an
    8000-pixel photo costs 1/60 of the memory. The maximum is 1 unless the map is flat.
    Raises `InvalidInputError` (empty text, unknown method or option, bad resolution) or
    `ImageLoadError`.
    """
    query = _check_text(text)
    name = resolve_method(model, method)
    unknown = sorted(set(options) - set(_OPTIONS[name]))
    if unknown:
        raise InvalidInputError(
            f"unknown option(s) {unknown} for method {name!r}; available = {list(_OPTIONS[name])}"
        )
    picture = _load(image)
    side = _check_resolution(model, resolution, name)
    canvas, box = letterbox(picture, side, model.preprocessor.resample)
    pixels = _normalise(canvas, model.preprocessor)[None]  # (1, 3, side, side)
    vector = model.encode_text([query])[0]  # (dim,) unit
    grid = _RUN[name](model, pixels, vector, **options)  # (g, g) over the square view, in [0, 1]
    return unletterbox(grid, side, box, _check_size(size, picture.size))


# ---------------------------------------------------------------------- view geometry
def letterbox(
    image: Image.Image, side: int, resample: int = Image.Resampling.BICUBIC
) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """The image fitted into a `side` x `side` square; returns it and the image's box in it.

    The padding takes the median colour of the fitted image's border, so a studio backdrop
    continues instead of a grey band the model might read as an object.
    """
    width, height = image.size
    scale = side / max(width, height)
    fit_w, fit_h = max(1, round(width * scale)), max(1, round(height * scale))
    fitted = image if (fit_w, fit_h) == image.size else image.resize(
        (fit_w, fit_h), resample, reducing_gap=3.0
    )  # fmt: skip
    if (fit_w, fit_h) == (side, side):
        return fitted, (0, 0, side, side)
    pixels = np.asarray(fitted)
    ring = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])  # (k, 3)
    colour = tuple(int(c) for c in np.median(ring, axis=0))
    canvas = Image.new("RGB", (side, side), colour)
    left, top = (side - fit_w) // 2, (side - fit_h) // 2
    canvas.paste(fitted, (left, top))
    return canvas, (left, top, left + fit_w, top + fit_h)


def unletterbox(
    grid: np.ndarray, side: int, box: tuple[int, int, int, int], size: tuple[int, int]
) -> np.ndarray:
    """A `(g, g)` map over the square view -> `(height, width)` over the image in `box`.

    One bilinear resample from the grid straight to the image's pixels (grid cells are
    treated as samples at their centres), then min-max scaled again over the image.
    """
    cell = side / grid.shape[0]
    source = Image.fromarray(np.ascontiguousarray(grid, dtype=np.float32), mode="F")
    region = tuple(edge / cell for edge in box)
    resized = np.asarray(source.resize(size, Image.Resampling.BILINEAR, box=region))
    return methods.rescale(resized)  # the image's own maximum is 1


# ---------------------------------------------------------------------- checks
def _check_size(size: tuple[int, int] | None, image_size: tuple[int, int]) -> tuple[int, int]:
    if size is None:
        return image_size
    if len(size) != 2 or not all(isinstance(v, int) and v > 0 for v in size):
        raise InvalidInputError(f"size must be (width, height) in whole pixels, not {size!r}")
    return int(size[0]), int(size[1])


def _check_text(text: object) -> str:
    if not isinstance(text, str):
        raise InvalidInputError(f"text must be a string, not {type(text).__name__}")
    query = visible_text(text)  # what the app checks too: a zero-width space is no query
    if not query:
        raise InvalidInputError(
            f"text {text[:40]!r} is empty; describe what to find, for example 'red striped dress'"
        )
    return query


def _check_resolution(model: Any, resolution: int | None, method: str) -> int:
    native = methods.native_size(model)
    if resolution is None:
        return native
    patch = methods.patch_size(model)
    if (
        isinstance(resolution, bool)
        or not isinstance(resolution, int)
        or resolution < patch
        or resolution % patch
    ):
        raise InvalidInputError(
            f"resolution {resolution!r} must be a whole multiple of the patch size {patch} "
            f"(the model's own is {native}; e.g. {native * 3 // 2 // patch * patch} or "
            f"{2 * native})"
        )
    if method == "masking" and model.info.kind != "clip" and resolution != native:
        raise InvalidInputError(
            f"resolution {resolution} is only available for CLIP models; this one takes {native}"
        )
    return resolution


def _load(image: Any) -> Image.Image:
    if isinstance(image, np.ndarray):
        image = image_from_array(image)
    if not is_image_source(image):
        raise ImageLoadError(
            repr(image)[:80], "not an image; give a path, URL, bytes, PIL image or uint8 array"
        )
    return load_image(image)


def _normalise(canvas: Image.Image, preprocessor: Any) -> np.ndarray:
    """RGB image -> (3, h, w) float32 with the model's rescale, mean and std."""
    pixels = np.asarray(canvas, dtype=np.float32).transpose(2, 0, 1) * preprocessor.rescale_factor
    if preprocessor.do_normalize:
        mean = np.asarray(preprocessor.mean, dtype=np.float32)[:, None, None]
        std = np.asarray(preprocessor.std, dtype=np.float32)[:, None, None]
        pixels = (pixels - mean) / std
    return np.ascontiguousarray(pixels, dtype=np.float32)

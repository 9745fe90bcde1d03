"""Image embedding pipeline: fetch/decode -> preprocess -> model, overlapped.

Decoding and preprocessing run in worker threads (PIL releases the GIL) while the model
works on the previous batch, so on a CPU the model's matrix multiplies are nearly all
that is left of the cost.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

import numpy as np

from fashion_clip.errors import InvalidInputError, check_count
from fashion_clip.media.images import SOURCE_HINT, ImageSource, is_image_source, load_image
from fashion_clip.model.preprocess import ImagePreprocessor


class PixelEncoder(Protocol):
    preprocessor: ImagePreprocessor
    dim: int

    def encode_pixels(self, pixel_values: np.ndarray, *, normalize: bool = True) -> np.ndarray: ...


def image_list(images: ImageSource | Iterable[ImageSource]) -> list[ImageSource]:
    """One image or an iterable of them -> a list; anything else is an `InvalidInputError`.

    A single path, bytes or PIL image counts as one image: iterating it would split a path
    into characters and bytes into integers.
    """
    if is_image_source(images):
        return [images]  # type: ignore[list-item]
    if isinstance(images, np.ndarray):
        raise InvalidInputError(
            f"images is a numpy array {images.shape}; pass {SOURCE_HINT} "
            "(PIL.Image.fromarray turns an (H, W, 3) uint8 array into one), or a list of them"
        )
    try:
        items = list(images)  # type: ignore[arg-type]
    except TypeError:
        raise InvalidInputError(
            f"images is of type {type(images).__name__}; pass {SOURCE_HINT}, or a list of them"
        ) from None
    for position, item in enumerate(items):
        if not is_image_source(item):
            raise InvalidInputError(
                f"images[{position}] is of type {type(item).__name__}, not an image; "
                f"pass {SOURCE_HINT}"
            )
    return items


def prepare_image(source: ImageSource, preprocessor: ImagePreprocessor) -> np.ndarray:
    """One source -> (3, H, W) float32 model input; raises `ImageLoadError` for bad input."""
    image = load_image(source, min_side=preprocessor.min_decode_side)
    return preprocessor([image])[0]


def prepared_batches(
    sources: Iterable[ImageSource],
    preprocessor: ImagePreprocessor,
    *,
    batch_size: int = 32,
    workers: int = 2,
) -> Iterator[np.ndarray]:
    """Yield (b, 3, H, W) batches in order, decoding ahead of the consumer.

    At most about two batches are in flight, so memory stays flat for any number of sources.
    """
    batch_size = check_count(batch_size)
    items = iter(sources)
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="decode") as pool:
        pending = []

        def submit_batch() -> bool:
            chunk = list(itertools.islice(items, batch_size))
            batch = [pool.submit(prepare_image, source, preprocessor) for source in chunk]
            if batch:
                pending.append(batch)
            return bool(batch)

        submit_batch()
        while pending:
            submit_batch()  # the next batch decodes while this one is consumed
            futures = pending.pop(0)
            try:
                yield np.stack([future.result() for future in futures])
            except BaseException:
                for batch in pending:
                    for future in batch:
                        future.cancel()
                raise


def encode_images(
    model: PixelEncoder,
    sources: ImageSource | Iterable[ImageSource],
    *,
    batch_size: int = 32,
    normalize: bool = True,
    workers: int = 2,
) -> np.ndarray:
    """Sources (or one source) -> (n, dim) float32 embeddings (unit length when `normalize`).

    The first source that cannot be loaded raises `ImageLoadError` naming it; callers that
    must skip bad items decode each one and catch that error themselves (the indexer does,
    in `fashion_clip.ingest.decoding.decode_crop`).
    """
    sources = image_list(sources)
    batch_size = check_count(batch_size)
    if not sources:
        return np.empty((0, model.dim), dtype=np.float32)
    out = np.empty((len(sources), model.dim), dtype=np.float32)
    start = 0
    for pixels in prepared_batches(
        sources, model.preprocessor, batch_size=batch_size, workers=workers
    ):
        out[start : start + len(pixels)] = model.encode_pixels(pixels, normalize=normalize)
        start += len(pixels)
    return out

"""Reading what the page and API callers send: text, lists, counts, labels and images.

Each reader returns the value the handlers work with, or raises an `InvalidInputError` (an
`ImageLoadError` for pictures) whose message names the input and says what would work.
"""

from __future__ import annotations

import ast
import contextlib
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from fashion_clip.api.search import SearchOptions, check_mode
from fashion_clip.errors import InvalidInputError
from fashion_clip.media.images import (
    WEB_FORMATS,
    decode_image_sized,
    fetch_bytes,
    image_from_array,
    load_image_sized,
)
from fashion_clip.media.region import frame_region
from fashion_clip.model.text import split_items, visible_text
from fashion_clip.tasks.classify import parse_labels, prompt_text

MAX_RESULTS = 48
DEFAULT_RESULTS = 12
MAX_LABELS = 64
MAX_TEXT_CHARS = 500  # longer text is surely pasted by mistake; the model reads ~77 tokens
# A picture typed into the URL box is fetched once (no retries) within this many seconds in
# all: connecting, redirects and the body. A server that drips bytes cannot hold a request.
URL_DEADLINE_S = 10.0
IMAGE_HINT = "Upload a JPEG, PNG or WebP photo and try again."
IMAGE_OR_URL_HINT = "Upload a JPEG, PNG or WebP photo (or paste an image URL) and try again."


def read_text(value: str | None, what: str, *, required: bool = False, hint: str = "") -> str:
    """Visible, whitespace-normalised text; an empty required one is refused with `hint`."""
    if value is not None and not isinstance(value, str):  # an API caller's number or list
        raise InvalidInputError(f"the {what} must be text, not {_kind(value)}")
    text = visible_text(value)
    if required and not text:
        raise InvalidInputError(f"the {what} is empty: {hint or 'type some text'}")
    if len(text) > MAX_TEXT_CHARS:
        raise InvalidInputError(
            f"the {what} is {len(text)} characters long; keep it under {MAX_TEXT_CHARS}"
        )
    return text


def read_limit(limit: float | None) -> int:
    if limit is None:
        return DEFAULT_RESULTS
    try:
        # The number box sends 12.0; 3.7 or True is a caller's mistake, not 3 or 1.
        whole = not isinstance(limit, bool) and float(limit).is_integer()
        count = int(limit) if whole else None
    except (TypeError, ValueError, OverflowError):  # None-like, text, NaN, infinity
        count = None
    if count is None:
        raise InvalidInputError(f"the number of results must be a whole number, not {limit!r}")
    if not 1 <= count <= MAX_RESULTS:
        raise InvalidInputError(f"the number of results must be between 1 and {MAX_RESULTS}")
    return count


def read_items(value: str | Sequence[Any] | None, what: str = "items") -> list[str]:
    """Items from text (one per line or comma-separated) or a list; blanks and repeats dropped.

    A list sent to the API's text box arrives as its repr (or as JSON), and is read as a list.
    Anything else (a number, an object, a list holding lists) is refused naming `what`.
    """
    if value is None:
        return []
    _check_items(value, what)
    if isinstance(value, str) and value.strip().startswith("["):
        with contextlib.suppress(ValueError, SyntaxError):
            parsed = ast.literal_eval(value.strip())
            if isinstance(parsed, (list, tuple)):
                value = [str(v) for v in parsed]
    items = split_items(value) if isinstance(value, str) else [str(v).strip() for v in value]
    return list(dict.fromkeys(item for item in items if item))


def _check_items(value: Any, what: str) -> None:
    if isinstance(value, str):
        return
    if not isinstance(value, (list, tuple)):
        raise InvalidInputError(
            f"the {what} must be text (comma-separated) or a list of texts, not {_kind(value)}"
        )
    odd = next(
        (item for item in value if isinstance(item, bool) or not isinstance(item, (str, int))), None
    )
    if odd is not None:
        raise InvalidInputError(
            f"the {what} must be a list of texts or whole numbers; it holds {_kind(odd)}"
        )


def _kind(value: Any) -> str:
    """What a caller sent, for a message: its JSON type and the start of its text."""
    names = {bool: "true/false", int: "a number", float: "a number", dict: "an object"}
    kind = names.get(
        type(value), "a list" if isinstance(value, (list, tuple)) else type(value).__name__
    )
    shown = repr(value)
    return f"{kind} ({shown[:40]}{'…' if len(shown) > 40 else ''})"


def read_ids(value: str | Sequence[str | int] | None, what: str = "example ids") -> list[str]:
    """Catalog ids from comma-separated text or a list (ids are matched as text)."""
    return read_items(value, what)


def read_labels(value: str | Sequence[str] | None) -> list[str]:
    """Classify labels: at least two, at most `MAX_LABELS` (as `parse_labels` reads them)."""
    given = read_items(value, "labels")
    if not any(prompt_text(item) for item in given):
        # Said here, not by `parse_labels` (at least one): the app compares two or more.
        raise InvalidInputError(
            "no labels given: give at least two labels to compare, e.g. 'dress, shirt'"
        )
    names = parse_labels(given)
    if len(names) > MAX_LABELS:
        raise InvalidInputError(f"{len(names)} labels given; use at most {MAX_LABELS}")
    if len(names) == 1 and len(given) > 1:
        raise InvalidInputError(
            f"the labels {', '.join(map(repr, given))} read as one label, {names[0]!r} (case "
            "and spacing aside); give at least two different labels to compare"
        )
    if len(names) == 1:
        # Refused rather than answered with a warning: the probabilities are shared among the
        # labels, so one label always gets 100%, which reads as a confident yes; API callers
        # never see a warning, and a user would rather learn to add a second label.
        raise InvalidInputError(
            f"only one label given ({names[0]!r}): probabilities are shared among the labels, "
            f"so a single label always gets 100%; add at least one more to compare with, "
            f"e.g. '{names[0]}, something else'"
        )
    return names


def read_image(
    image: Any,
    url: str | None = None,
    *,
    min_side: int | None = None,
    private_urls: bool = False,
) -> Image.Image:
    """An upload (a file path, a PIL image or an array) or else a URL, as an RGB image.

    `min_side`: a JPEG may be decoded at the smallest scale that keeps its shorter side at
    least this long (draft mode), as the indexer decodes the catalog's photos.
    `private_urls`: the URL may name a host on a private network or this machine; by default
    only public web addresses are fetched (`fashion_clip.media.web`).
    """
    return read_image_sized(image, url, min_side=min_side, private_urls=private_urls)[0]


def is_missing(image: Any) -> bool:
    """Whether no picture was sent (an empty upload box)."""
    return image is None or (isinstance(image, str) and not image.strip())


def read_image_sized(
    image: Any,
    url: str | None = None,
    *,
    min_side: int | None = None,
    min_long_side: int | None = None,
    private_urls: bool = False,
) -> tuple[Image.Image, tuple[int, int]]:
    """`read_image`, and the whole picture's `(width, height)`: a JPEG decoded in draft mode
    (`min_long_side`: to keep its longer side at least this long) is smaller than that."""
    if is_missing(image):
        if url is not None and not isinstance(url, str):
            raise InvalidInputError(f"the image URL must be text, not {_kind(url)}")
        address = (url or "").strip()
        if address:
            # Only the web: a path or s3:// URI here would let callers read the server's files.
            if not address.lower().startswith(("http://", "https://")):
                raise InvalidInputError(
                    f"the image URL {address[:100]!r} must start with http:// or https://"
                )
            data = fetch_bytes(
                address, public_only=not private_urls, retries=0, deadline=URL_DEADLINE_S
            )
            return decode_image_sized(
                data,
                name=address,
                min_side=min_side,
                min_long_side=min_long_side,
                formats=WEB_FORMATS,
            )
        else:
            # Only the image search has a URL box (it passes `url`, even empty): say so there.
            hint = IMAGE_OR_URL_HINT if url is not None else IMAGE_HINT
            raise InvalidInputError(f"no image given: {hint[0].lower()}{hint[1:]}")
    if isinstance(image, np.ndarray):
        image = image_from_array(image)
    # Strangers' files: decoded by the web's formats' decoders only, not by every Pillow has.
    return load_image_sized(
        image, min_side=min_side, min_long_side=min_long_side, formats=WEB_FORMATS
    )


MAX_OFFSET = 1000  # results skipped; the ranked stages stop at their relevance cut-off anyway


def read_ranking(
    sort: str | None, offset: float | None, diversity: float | None, mode: str | None = None
) -> SearchOptions:
    """The ranking controls of a search, each checked and named when wrong."""
    if mode is not None and not isinstance(mode, str):
        raise InvalidInputError(
            f"the mode must be text (hybrid, semantic or keyword), not {mode!r}"
        )
    if sort is not None and not isinstance(sort, str):
        raise InvalidInputError(f"the sort must be text such as 'price_asc', not {sort!r}")
    skip = 0 if offset is None else _whole_number(offset, "offset")
    if not 0 <= skip <= MAX_OFFSET:
        raise InvalidInputError(f"the offset must be between 0 and {MAX_OFFSET}, not {skip}")
    spread = 0.0 if diversity is None else _number(diversity, "diversity")
    if not 0.0 <= spread <= 1.0:
        raise InvalidInputError(f"the diversity must be between 0 and 1, not {spread:g}")
    return SearchOptions(
        mode=check_mode(mode) if mode is not None else "hybrid",
        sort=sort or None, offset=skip, diversity=spread,
    )  # fmt: skip


def read_box(box: Sequence[float] | str | None) -> tuple[float, float, float, float] | None:
    """`[x0, y0, x1, y1]` (a list, or its text) as four numbers; None for no box."""
    if box is None or (isinstance(box, str) and not box.strip()) or box == []:
        return None
    if isinstance(box, str):
        with contextlib.suppress(ValueError, SyntaxError):
            box = ast.literal_eval(box)
    if not isinstance(box, (list, tuple)) or len(box) != 4:
        raise InvalidInputError(
            f"the box must be [x0, y0, x1, y1] in the picture's pixels, not {box!r}"
        )
    x0, y0, x1, y1 = (_number(v, "box") for v in box)
    return x0, y0, x1, y1


def crop_box(picture: Image.Image, box: tuple[float, float, float, float] | None) -> Image.Image:
    """The part of `picture` inside `box` (its pixels); all of it for no box."""
    if box is None:
        return picture
    x0, y0, x1, y1 = box
    width, height = picture.size
    if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
        raise InvalidInputError(
            f"the box [{x0:g}, {y0:g}, {x1:g}, {y1:g}] is empty or outside the picture, which is "
            f"{width}x{height} pixels; give 0 <= x0 < x1 <= {width} and 0 <= y0 < y1 <= {height}"
        )
    return frame_region(picture, (round(x0), round(y0), round(x1), round(y1)))


def _number(value: Any, what: str) -> float:
    try:
        number = None if isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        number = None
    if number is None or not np.isfinite(number):
        raise InvalidInputError(f"the {what} must be a number, not {value!r}")
    return number


def _whole_number(value: Any, what: str) -> int:
    number = _number(value, what)
    if not number.is_integer():
        raise InvalidInputError(f"the {what} must be a whole number, not {value!r}")
    return int(number)

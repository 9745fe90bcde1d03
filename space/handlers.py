"""What each tab (and API endpoint) does, as plain functions of a `Backend` and the inputs.

These run without a browser or a server, so the tests call them directly. `space.inputs`
reads and checks what callers send; the library raises `FashionCLIPError`s, which
`space.errors.user_errors` turns into `gr.Error` messages; `space.threads.runs_as` gives
each kind of request its torch threads.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from fashion_clip.api.search import SearchOptions, base_ranking, search_text, search_vector
from fashion_clip.errors import InvalidInputError
from fashion_clip.model.clip import ClipModel
from fashion_clip.model.text import visible_text
from fashion_clip.store import Collection, Filter, Hit, Point
from fashion_clip.store.vectors import compose
from fashion_clip.tasks import overlay
from fashion_clip.tasks.classify import DEFAULT_TEMPLATES, label_probabilities
from space.errors import user_errors
from space.filters import Facets, build_filter, narrows, shown_values
from space.inputs import (
    DEFAULT_RESULTS,
    MAX_LABELS,
    MAX_TEXT_CHARS,
    crop_box,
    is_missing,
    read_box,
    read_ids,
    read_image,
    read_image_sized,
    read_labels,
    read_limit,
    read_ranking,
    read_text,
)
from space.results import GalleryItem, Pictures, hit_record
from space.textcache import CachedText
from space.threads import runs_as, thread_plan

log = logging.getLogger(__name__)

MAX_OVERLAY_SIDE = 1024  # the overlay shown; the peak is still in the input's pixels
NEGATIVE_WEIGHT = 0.5  # "less of" text and disliked examples pull half as hard as the query
MODIFIER_WEIGHT = 1.0  # "same, but in blue": the text counts as much as the picture
# Caps on what one request may send, checked before any parsing: the page sends a few
# clicked examples and a label box, and a public endpoint must not parse megabytes.
MAX_EXAMPLES = 100  # liked or disliked ids per search
MAX_IDS_CHARS = 20_000  # the ids as sent (text or list)
MAX_LABELS_CHARS = MAX_LABELS * (MAX_TEXT_CHARS + 2)  # the labels as sent (text or list)


@dataclass
class Backend:
    """Everything the handlers need, loaded once at start-up and shared by all requests."""

    model: ClipModel
    collection: Collection
    facets: Facets
    pictures: Pictures
    # The image URL box may fetch private and local hosts (FASHION_CLIP_ALLOW_PRIVATE_URLS).
    allow_private_urls: bool = False
    texts: CachedText = field(init=False)  # query and label embeddings, remembered
    threads: dict[str, int] = field(init=False)  # torch CPU threads per kind of request
    # The vision tower runs one request at a time (a second would only queue inside torch).
    # Held around the model only: a picture is fetched and decoded before it is taken, so a
    # slow image URL cannot keep image search, classify and localize waiting for everyone.
    vision_slot: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.texts = CachedText(self.model)
        self.threads = thread_plan()


SearchOutput = tuple[list[GalleryItem], list[dict[str, Any]]]


def _image_vector(model: ClipModel, image: Image.Image) -> np.ndarray:
    """(dim,) unit embedding of one image."""
    return model.encode_pixels(model.preprocessor([image]))[0]


# ---------------------------------------------------------------------- search
@user_errors
@runs_as("query")
def text_search(
    backend: Backend,
    query: str | None,
    negative: str | None = None,
    categories: Sequence[str] | str | None = None,
    colours: Sequence[str] | str | None = None,
    brands: Sequence[str] | str | None = None,
    price_min: float | None = None,
    price_max: float | None = None,
    limit: float | None = DEFAULT_RESULTS,
    like_ids: str | Sequence[str] | None = None,
    unlike_ids: str | Sequence[str] | None = None,
    mode: str | None = "hybrid",
    sort: str | None = "relevance",
    offset: float | None = 0,
    diversity: float | None = 0.0,
) -> SearchOutput:
    """Products for a text query, optionally steered by examples.

    With liked examples it is "more like these, less like those" over their pictures (the
    query text only says where the examples came from). Without, the query's embedding,
    minus the "less of" text and the captions of disliked examples, searches the pictures.
    """
    like = read_ids(_sized(like_ids, MAX_IDS_CHARS, "liked example ids"), "liked example ids")
    unlike = read_ids(
        _sized(unlike_ids, MAX_IDS_CHARS, "disliked example ids"), "disliked example ids"
    )
    for ids, what in ((like, "liked"), (unlike, "disliked")):
        if len(ids) > MAX_EXAMPLES:
            raise InvalidInputError(f"{len(ids)} {what} examples given; use at most {MAX_EXAMPLES}")
    query = read_text(
        query,
        "query",
        required=not like,
        hint="type what you are looking for, e.g. 'red summer dress'",
    )
    negative = read_text(negative, "'less of' text")
    count = read_limit(limit)
    options = read_ranking(sort, offset, diversity, mode)
    collection = backend.collection
    where = build_filter(backend.facets, categories, colours, brands, price_min, price_max)
    if like:
        return _answer(backend, _by_examples(collection, like, unlike, options, where, count))

    texts = [query, negative] if negative else [query]
    vectors = backend.texts.encode_text(texts)  # (1 or 2, dim), unit
    terms = [(vectors[0], 1.0)]
    if negative:
        terms.append((vectors[1], -NEGATIVE_WEIGHT))
    if unlike:
        # A disliked example's caption embedding sits in the same (text) space as the query,
        # so it steers away at the query's scale; its picture would swamp the query.
        held = _known(collection, unlike, "disliked examples", with_vectors=True)
        for point in held:
            if "text" in point.vectors:
                terms.append((point.vectors["text"], -NEGATIVE_WEIGHT))
        where = build_filter(
            backend.facets, categories, colours, brands, price_min, price_max, unlike
        )
    dense = vectors[0] if len(terms) == 1 else compose(terms, collection.dim)
    hits = search_text(collection, query, dense, options, filter=where, limit=count)
    return _answer(backend, hits)


def _by_examples(
    collection: Collection,
    like: list[str],
    unlike: list[str],
    options: SearchOptions,
    where: Filter | None,
    count: int,
) -> list[Hit]:
    """ "More like these, less like those" over the pictures, the examples left out.

    By relevance, the store's recommendation (each candidate scored by its best example).
    Sorted, diversified or boosted, the examples' pictures are composed into one query (liked ones
    added, disliked ones taken away at `NEGATIVE_WEIGHT`) that the ranking stages re-rank,
    as they re-rank a typed query's results.
    """
    # base_ranking also checks the sort and adds the collection's default boosts.
    if not base_ranking(collection, options, where, count).reranks():
        _known(collection, like, "liked examples")
        _known(collection, unlike, "disliked examples")
        return collection.recommend(
            like, unlike, using="image", filter=where, limit=count, offset=options.offset
        )
    liked = _known(collection, like, "liked examples", with_vectors=True)
    disliked = _known(collection, unlike, "disliked examples", with_vectors=True)
    terms = [(p.vectors["image"], 1.0) for p in liked if "image" in p.vectors]
    if not terms:
        raise InvalidInputError("the liked examples have no pictures to search by")
    terms += [(p.vectors["image"], -NEGATIVE_WEIGHT) for p in disliked if "image" in p.vectors]
    base = where or Filter()
    without = Filter(base.equals, base.any_of, base.ranges, [*base.exclude_ids, *like, *unlike])
    vector = compose(terms, collection.dim)
    return search_vector(collection, vector, options, filter=without, limit=count)


def _known(
    collection: Collection, ids: list[str], what: str, *, with_vectors: bool = False
) -> list[Point]:
    """The stored points of `ids`; ids the collection lacks are refused, in product terms."""
    if not ids:
        return []
    held = collection.retrieve(ids, with_vectors=with_vectors)
    missing = sorted(set(ids) - {str(point.id) for point in held})
    if missing:
        raise InvalidInputError(
            f"{what}: collection {collection.name!r} has no products with ids "
            f"[{shown_values(missing)}]; use ids from the hits of a search"
        )
    return held


def _sized(value: Any, limit: int, what: str) -> Any:
    """`value` (text, or a list of texts) if its size is within `limit` characters."""
    if isinstance(value, str):
        size = len(value)
    elif isinstance(value, (list, tuple)):
        size = sum(len(str(item)) + 1 for item in value)
    else:
        return value
    if size > limit:
        raise InvalidInputError(f"the {what} are {size} characters long; keep them under {limit}")
    return value


@user_errors
@runs_as("vision")
def image_search(
    backend: Backend,
    image: Any,
    modifier: str | None = None,
    categories: Sequence[str] | str | None = None,
    colours: Sequence[str] | str | None = None,
    brands: Sequence[str] | str | None = None,
    price_min: float | None = None,
    price_max: float | None = None,
    limit: float | None = DEFAULT_RESULTS,
    url: str | None = None,
    box: Sequence[float] | str | None = None,
    sort: str | None = "relevance",
    offset: float | None = 0,
    diversity: float | None = 0.0,
) -> SearchOutput:
    """Products that look like the image; a modifier text composes with it ("but in blue")."""
    region = read_box(box)
    # url="" rather than None: this tab has the URL box, and its hints say so. A region is
    # cut from the whole picture (its pixels are the caller's), never from a reduced decode.
    picture = read_image(
        image,
        url or "",
        min_side=None if region else backend.model.preprocessor.min_decode_side,
        private_urls=backend.allow_private_urls,
    )
    picture = crop_box(picture, region)
    modifier = read_text(modifier, "modifier")
    count = read_limit(limit)
    options = read_ranking(sort, offset, diversity)
    where = build_filter(backend.facets, categories, colours, brands, price_min, price_max)
    with backend.vision_slot:
        vector = _image_vector(backend.model, picture)
    if modifier:
        text = backend.texts.encode_text([modifier])[0]
        vector = compose([(vector, 1.0), (text, MODIFIER_WEIGHT)], backend.collection.dim)
    hits = search_vector(backend.collection, vector, options, filter=where, limit=count)
    return _answer(backend, hits)


@user_errors
def more_results(
    shown: Sequence[GalleryItem] | None,
    hits: Sequence[dict[str, Any]] | None,
    search: Callable[[int], SearchOutput],
) -> SearchOutput:
    """The page's results with the next page appended: `search(offset)` runs the same
    request from `offset`, the number of results shown (pages never repeat an item)."""
    shown, hits = list(shown or []), list(hits or [])
    if len(shown) != len(hits):
        raise InvalidInputError("the results on the page changed while loading; search again")
    gallery, found = search(len(hits))
    return [*shown, *gallery], [*hits, *found]


@user_errors
def search_on_show(
    search: Callable[..., SearchOutput], backend: Backend, asked: dict[str, Any] | None
) -> Callable[[int], SearchOutput]:
    """`search` (`text_search` or `image_search`) from an offset, with the inputs of the
    search on show (`asked`, by name): the pages "More results" appends."""
    if not asked:
        raise InvalidInputError("there are no results to add to yet; search first")

    def page(offset: int) -> SearchOutput:
        return search(backend, **asked, offset=offset)

    return page


def region_corner(box: str | None, point: Any) -> str:
    """The region box's text after a click at `point` (`[x, y]`, the picture's pixels): the
    first click shows its corner, `[x, y]`; the second, from that corner, the box the two span
    with both clicked pixels inside it, `[x0, y0, x1, y1]`. The box itself keeps the first
    corner, so what the page shows is all there is (two quick clicks cannot race a state)."""
    try:
        x, y = (int(v) for v in point)
    except (TypeError, ValueError):
        return ""  # a click outside the picture: start again
    corner = re.fullmatch(r"\s*\[\s*(\d+)\s*,\s*(\d+)\s*\]\s*", box or "")
    if corner is None:
        return f"[{x}, {y}]"
    x0, y0 = int(corner.group(1)), int(corner.group(2))
    return f"[{min(x, x0)}, {min(y, y0)}, {max(x, x0) + 1}, {max(y, y0) + 1}]"


@user_errors
def region_searched(image: Any, box: Sequence[float] | str | None) -> Image.Image | None:
    """The region of `image` a search with `box` looks at, framed as the search frames it;
    None without a picture or a box."""
    region = read_box(box)
    if region is None or is_missing(image):
        return None
    return crop_box(read_image(image, min_side=None), region)


def more_available(hits: Sequence[dict[str, Any]] | None, limit: Any) -> bool:
    """Whether a page of `hits` asked for `limit` came back full, so more may follow."""
    try:
        count = read_limit(limit)
    except InvalidInputError:
        return False
    return bool(hits) and len(hits) >= count


def results_note(
    hits: Sequence[dict[str, Any]] | None,
    categories: Sequence[str] | str | None = None,
    colours: Sequence[str] | str | None = None,
    brands: Sequence[str] | str | None = None,
    price_min: float | None = None,
    price_max: float | None = None,
) -> str:
    """What the page says in place of an empty gallery; "" when there are results."""
    if hits:
        return ""
    if narrows(categories, colours, brands, price_min, price_max):
        return (
            "**No products match these filters.** Clear some of them or widen the price "
            "range, and search again."
        )
    return "**No products found.** Try other words, or fewer examples."


def examples_note(state: dict[str, Any]) -> str:
    """What steers the results: "More like: …  Less like: …" with captions; "" with none.

    With liked examples `text_search` ignores the typed text (it recommends from the
    examples' pictures) while the boxes still show it, so the note says so and how to get
    the text back; with only disliked ones the text still leads, and nothing is added.
    """
    names = state.get("names", {})
    parts = []
    for key, title in (("like", "More like"), ("unlike", "Less like")):
        if state.get(key):
            chosen = ", ".join(f"`{names.get(i, i)}`" for i in state[key])
            parts.append(f"**{title}:** {chosen}")
    note = " · ".join(parts)
    if state.get("like"):
        note += (
            "  \n_Searching by these examples: the Search and 'Less of' text is not used. "
            "Press Search to search by the text again._"
        )
    return note


def _answer(backend: Backend, hits: list[Hit]) -> SearchOutput:
    return backend.pictures.gallery(hits), [hit_record(hit) for hit in hits]


# ---------------------------------------------------------------------- classify, localize
@user_errors
@runs_as("vision")
def classify(backend: Backend, image: Any, labels: str | Sequence[str] | None) -> dict[str, float]:
    """Label -> probability for the image, as the model was trained to score them."""
    names = read_labels(_sized(labels, MAX_LABELS_CHARS, "labels"))
    long = next((name for name in names if len(name) > MAX_TEXT_CHARS), None)
    if long is not None:
        raise InvalidInputError(
            f"the label {long[:40]!r}… is {len(long)} characters long; keep each label under "
            f"{MAX_TEXT_CHARS}"
        )
    # Decoded at the model's size, as the indexer decodes the catalog: a 12 MP phone photo's
    # JPEG is read at a quarter or an eighth of its sides, several times faster.
    picture = read_image(image, min_side=backend.model.preprocessor.min_decode_side)
    with backend.vision_slot:
        vector = _image_vector(backend.model, picture)[None, :]  # (1, dim)
    probabilities = label_probabilities(backend.texts, vector, names, DEFAULT_TEMPLATES)[0]
    return {name: float(p) for name, p in zip(names, probabilities, strict=True)}


@user_errors
@runs_as("vision")
def localize(backend: Backend, image: Any, text: str | None) -> tuple[Image.Image, dict[str, Any]]:
    """Where in the image the text's concept sits: a heatmap overlay and its peak.

    The peak is `[x, y]` and the size `[width, height]`, both in the input image's pixels.
    """
    # torch: only the localize handler needs the library's torch code, at its first call
    from fashion_clip.tasks.localize import heatmap_peak
    from fashion_clip.tasks.localize import localize as locate  # deferred: torch

    if is_missing(image) and not visible_text(text if isinstance(text, str) else ""):
        # Both boxes empty: one message for both, not one for the text, then the image.
        raise InvalidInputError(
            "no image and no text given: upload a JPEG, PNG or WebP photo and type what to "
            "find in it, e.g. 'collar'"
        )
    concept = read_text(
        text, "text", required=True, hint="type what to find in the image, e.g. 'collar'"
    )
    # Decoded, mapped and drawn at the size shown: a JPEG is decoded in draft mode, just big
    # enough for it, and the peak is still given in the input's pixels (`size`). Drawing an
    # 8000-pixel photo's full-size overlay only to shrink it took most of the time and
    # gigabytes of memory. The model still sees the whole picture.
    picture, size = read_image_sized(image, min_long_side=MAX_OVERLAY_SIDE)
    shown = display_size(size)
    with backend.vision_slot:
        heatmap = locate(backend.model, picture, concept, size=shown)  # (h, w) in [0, 1]
    if shown != picture.size:
        picture = picture.resize(shown, Image.Resampling.BILINEAR, reducing_gap=2.0)
    drawn = overlay.draw_heatmap(picture, heatmap)  # the peak is ringed
    x, y = to_input_pixels(heatmap_peak(heatmap), shown, size)
    return drawn, {"peak": [x, y], "size": list(size), "text": concept}


PEAK_REGION = 0.5  # the square searched around a heatmap's peak, of the picture's shorter side


def peak_box(found: Any) -> list[int]:
    """A square around the localized peak (`localize`'s second answer), inside the picture,
    in its pixels: the region "Find this in the catalog" searches."""
    try:
        (x, y), (width, height) = found["peak"], found["size"]
        x, y, width, height = (int(v) for v in (x, y, width, height))
    except (TypeError, KeyError, ValueError):
        raise InvalidInputError(
            "nothing localized yet: localize a concept in the picture first, then find it"
        ) from None
    side = max(1, round(min(width, height) * PEAK_REGION))
    x0 = min(max(0, x - side // 2), width - side)
    y0 = min(max(0, y - side // 2), height - side)
    return [x0, y0, x0 + side, y0 + side]


@user_errors
def find_peak_region(backend: Backend, image: Any, found: Any) -> SearchOutput:
    """Products like the region around the heatmap's peak ("shop the look")."""
    return image_search(backend, image, box=peak_box(found))


def display_size(size: tuple[int, int], limit: int = MAX_OVERLAY_SIDE) -> tuple[int, int]:
    """`(width, height)` scaled down (never up) so the longer side is at most `limit`."""
    width, height = size
    scale = min(1.0, limit / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def to_input_pixels(
    point: tuple[int, int], shown: tuple[int, int], size: tuple[int, int]
) -> tuple[int, int]:
    """A pixel `(x, y)` of the `shown` image -> the input pixel at its centre."""
    (x, y), (w, h), (width, height) = point, shown, size
    return min(width - 1, int((x + 0.5) * width / w)), min(height - 1, int((y + 0.5) * height / h))


@user_errors
def add_example(
    hits: Sequence[dict[str, Any]] | None,
    index: int | None,
    mode: str | None,
    like: Sequence[str],
    unlike: Sequence[str],
) -> tuple[list[str], list[str]]:
    """The example lists after a click on hit `index`: liked, or disliked when `mode` says so.

    An id moves between the lists rather than sitting in both.
    """
    if not hits or index is None or not 0 <= int(index) < len(hits):
        raise InvalidInputError("that result is no longer on the page; search again")
    chosen = str(hits[int(index)]["id"])
    like = [i for i in like if i != chosen]
    unlike = [i for i in unlike if i != chosen]
    if mode and mode.lower().startswith("less"):
        return like, [*unlike, chosen]
    return [*like, chosen], unlike


def ping() -> str:
    """A trivial endpoint: the floor of a round trip, for the load test and health checks."""
    return "ok"

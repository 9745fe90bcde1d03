"""Search filters built from what the collection holds: multi-selects and a price range.

The choices come from the collection's payload indexes (a keyword field gets a multi-select
filled with its values, counted by the store's facets) and are read once, when the app is
built. The same `Facets` also give the classify tab its label presets.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from fashion_clip.errors import FashionCLIPError, InvalidInputError
from fashion_clip.store import Collection, Filter, Range
from fashion_clip.store.ranking import sortable_fields

log = logging.getLogger(__name__)

# The filters the app offers, and the payload field names each may go by in a catalog.
FILTER_FIELDS: dict[str, tuple[str, ...]] = {
    "category": ("category", "categories", "product_type", "type"),
    "colour": ("color", "colour", "colors", "colours"),
    "brand": ("brand", "brands", "designer"),
}
PRESET_FIELDS: dict[str, tuple[str, ...]] = {
    "category": FILTER_FIELDS["category"],
    "colour": FILTER_FIELDS["colour"],
    "pattern": ("pattern", "patterns", "print"),
}
PRICE_FIELDS = ("price", "price_usd", "price_eur")
SORT_WAYS = ("asc", "desc")  # a sort is FIELD_asc or FIELD_desc (`store.ranking.parse_sort`)
MAX_CHOICES = 200  # a multi-select longer than this is no help; the most frequent stay
SHOWN_VALUES = 10  # values an error message lists before "and N more"
PRICE_SCAN_LIMIT = 20_000  # points read to find the price range (it only labels the inputs)

# Label presets for a collection without those fields (e.g. one indexed from a bare catalog).
DEFAULT_PRESETS = {
    "category": "dress, shirt, t-shirt, trousers, skirt, jacket, shoes, bag",
    "colour": "red, blue, green, black, white, yellow, pink, grey",
    "pattern": "solid, striped, checked, dotted, floral",
}


@dataclass(frozen=True)
class Facets:
    """The filterable fields of one collection and their values.

    `fields` maps each offered filter (`category`, `colour`, `brand`) to the payload field
    that holds it; `values` maps the same names to their values, most frequent first.
    `sort_fields` are the numeric fields a search may sort by, the price first.
    """

    fields: dict[str, str] = field(default_factory=dict)
    values: dict[str, list[str]] = field(default_factory=dict)
    price_field: str | None = None
    price_range: tuple[float, float] | None = None
    presets: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_PRESETS))
    sort_fields: list[str] = field(default_factory=list)

    def choices(self, name: str) -> list[str]:
        return self.values.get(name, [])

    def sorts(self) -> list[str]:
        """The sort orders this collection supports: `relevance`, then `FIELD_asc` and
        `FIELD_desc` for each sortable field (the names the search's `sort` takes)."""
        return ["relevance", *(f"{name}_{way}" for name in self.sort_fields for way in SORT_WAYS)]


def read_facets(collection: Collection) -> Facets:
    """Look at the collection's payload indexes and count the values of the useful ones."""
    indexes = collection.info().payload_indexes

    def pick(candidates: Sequence[str], kinds: tuple[str, ...]) -> str | None:
        return next((name for name in candidates if indexes.get(name) in kinds), None)

    fields: dict[str, str] = {}
    values: dict[str, list[str]] = {}
    presets = dict(DEFAULT_PRESETS)
    for name, candidates in {**FILTER_FIELDS, **PRESET_FIELDS}.items():
        key = pick(candidates, ("keyword",))
        if key is None:
            continue
        try:
            counts = collection.facet(key, limit=MAX_CHOICES)
        except FashionCLIPError as exc:  # a filter we cannot offer is not worth failing for
            log.warning("no %s filter: %s", name, exc)
            continue
        found = [str(value) for value, _ in sorted(counts.items(), key=lambda kv: -kv[1])]
        if not found:
            continue
        if name in FILTER_FIELDS:
            fields[name], values[name] = key, found
        if name in PRESET_FIELDS and len(found) > 1:  # one value is no choice to classify
            presets[name] = ", ".join(found[:30])

    price_field = pick(PRICE_FIELDS, ("float", "integer"))
    # The fields the store's sort accepts (numeric, range-indexed); a shop's price first.
    numeric = sortable_fields(indexes)
    return Facets(
        fields=fields,
        values=values,
        price_field=price_field,
        price_range=_value_range(collection, price_field) if price_field else None,
        presets=presets,
        sort_fields=sorted(numeric, key=lambda name: name != price_field),
    )


def _value_range(collection: Collection, key: str) -> tuple[float, float] | None:
    low, high = math.inf, -math.inf
    for i, point in enumerate(collection.iter_points(batch_size=1024)):
        if i >= PRICE_SCAN_LIMIT:
            break
        value = point.payload.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            low, high = min(low, value), max(high, value)
    return (float(low), float(high)) if low <= high else None


def build_filter(
    facets: Facets,
    categories: Sequence[str] | str | None = None,
    colours: Sequence[str] | str | None = None,
    brands: Sequence[str] | str | None = None,
    price_min: float | None = None,
    price_max: float | None = None,
    exclude_ids: Sequence[str | int] = (),
) -> Filter | None:
    """The store filter for the chosen values; None when nothing narrows the search.

    A multi-select with nothing chosen does not filter. Choosing values of a field this
    collection does not have is refused, so a typo in an API call does not silently match
    nothing.
    """
    any_of: dict[str, list[str]] = {}
    for name, values in (("category", categories), ("colour", colours), ("brand", brands)):
        chosen = _chosen(values, name)
        if not chosen:
            continue
        if name not in facets.fields:
            raise InvalidInputError(
                f"this collection has no {name} field to filter on; leave the {name} filter empty"
            )
        offered = facets.choices(name)
        unknown = sorted(set(chosen) - set(offered))
        if unknown:
            raise InvalidInputError(
                f"{name} filter: {shown_values(unknown)} is not one of this collection's "
                f"values; choose among {', '.join(offered[:12])}"
                + (f" and {len(offered) - 12} more" if len(offered) > 12 else "")
            )
        any_of[facets.fields[name]] = chosen

    ranges: dict[str, Range] = {}
    low, high = _price_bounds(price_min, price_max)
    if low is not None or high is not None:
        if facets.price_field is None:
            raise InvalidInputError(
                "this collection has no price field; leave the price range empty"
            )
        if low is not None and high is not None and low > high:
            raise InvalidInputError(
                f"the price range is upside down ({low:g} to {high:g}); swap the two values"
            )
        ranges[facets.price_field] = Range(gte=low, lte=high)

    result = Filter(any_of=any_of, ranges=ranges, exclude_ids=tuple(exclude_ids))
    return None if result.is_empty() else result


def narrows(
    categories: Sequence[str] | str | None = None,
    colours: Sequence[str] | str | None = None,
    brands: Sequence[str] | str | None = None,
    price_min: float | None = None,
    price_max: float | None = None,
) -> bool:
    """Whether these filter values narrow a search, read as `build_filter` reads them."""
    if any(_chosen(values) for values in (categories, colours, brands)):
        return True
    try:
        return _price_bounds(price_min, price_max) != (None, None)
    except InvalidInputError:  # a bad bound was already refused by the search itself
        return True


def _chosen(values: Sequence[str] | str | None, name: str = "") -> list[str]:
    """The values chosen in a multi-select; one string sent on its own is one value."""
    if isinstance(values, str):
        values = [values]
    elif values is not None and not isinstance(values, (list, tuple)):  # an API caller's 7
        raise InvalidInputError(
            f"the {name} filter must be a list of values, not {type(values).__name__} {values!r}"
        )
    return [str(value) for value in (values or []) if str(value).strip()]


def _price_bounds(
    price_min: float | str | None, price_max: float | str | None
) -> tuple[float | None, float | None]:
    low, high = _number(price_min, "price from"), _number(price_max, "price to")
    for bound, name in ((low, "price from"), (high, "price to")):
        if bound is not None and bound < 0:
            raise InvalidInputError(
                f"{name} cannot be negative ({bound:g}); give a price of 0 or more (0 = no limit)"
            )
    # 0 is no bound: Gradio 6's number box turns an empty value into 0 as soon as it is shown
    # (`props.value ??= 0` in its frontend), so opening the filters would otherwise ask for
    # free products only and find none. No shopper means "up to 0".
    return (None if low == 0 else low), (None if high == 0 else high)


def _number(value: float | str | None, name: str) -> float | None:
    """A bound from a number box; None or blank means no bound."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name} must be a number, not {value!r}") from None
    if not math.isfinite(number):
        raise InvalidInputError(f"{name} must be a finite number, not {value!r}")
    return number


def shown_values(values: Sequence[str]) -> str:
    """Values for an error message: the first `SHOWN_VALUES`, each cut short, then a count
    (an API caller's megabyte of values is not echoed back, nor written to the log)."""
    shown = ", ".join(
        repr(value if len(value) <= 40 else value[:40] + "…") for value in values[:SHOWN_VALUES]
    )
    more = len(values) - SHOWN_VALUES
    return f"{shown}{f' and {more} more' if more > 0 else ''}"

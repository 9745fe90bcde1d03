"""Sorted searches on the demo catalog: are the products listed by price the ones asked for?

    python -m benchmarks.sort_relevance

Queries: every "COLOUR CATEGORY", "CATEGORY" and "BRAND CATEGORY" the demo catalog holds (a
product matches when it has those values). Each is searched with `sort=price_asc`, in each
mode, and two figures are taken over the queries:

- precision@12: the share of the first 12 products listed that match;
- recall: the share of the matching products that are in the sorted list at all.

Compared: the candidates sorted as the search keeps them (`SORT_RELEVANCE_SHARE`) against
all 200 candidates sorted (the share set to 1), in the same run. Used by
tests/test_search_quality.py on the demo model.
"""

from __future__ import annotations

from collections.abc import Callable
from unittest import mock

import numpy as np

from benchmarks.common import machine, print_table, result_line
from benchmarks.relevance import demo_rows, on_demo_catalog
from fashion_clip.api import search as search_module
from fashion_clip.api.search import MODES, SearchOptions, search_text
from fashion_clip.model.clip import ClipModel
from fashion_clip.store import Collection
from fashion_clip.store.base import CANDIDATES

SHOWN = 12
Match = Callable[[dict], bool]


def queries(rows: list[dict]) -> dict[str, Match]:
    """Each query the catalog's values make, with what a product must have to match it."""
    found: dict[str, Match] = {}
    for row in rows:
        color, category, brand = row["color"], row["category"], row["brand"]
        found[f"{color} {category}"] = lambda p, c=color, k=category: (
            p.get("color") == c and p.get("category") == k
        )
        found[category] = lambda p, k=category: p.get("category") == k
        found[f"{brand} {category}"] = lambda p, b=brand, k=category: (
            p.get("brand") == b and p.get("category") == k
        )
    return found


def sorted_figures(
    collection: Collection, model: ClipModel, mode: str, share: float | None = None
) -> dict[str, float]:
    """Mean precision@12 and recall of `price_asc` searches in `mode`; `share` replaces the
    search's `SORT_RELEVANCE_SHARE` (1: every candidate is sorted)."""
    rows = demo_rows()
    asked = queries(rows)
    vectors = dict(zip(asked, model.encode_text(list(asked)), strict=True))
    options = SearchOptions(mode=mode, sort="price_asc")
    share = search_module.SORT_RELEVANCE_SHARE if share is None else share
    precision, recall = [], []
    with mock.patch.object(search_module, "SORT_RELEVANCE_SHARE", share):
        for text, match in asked.items():
            hits = search_text(collection, text, vectors[text], options, limit=CANDIDATES)
            wanted = sum(match(row) for row in rows)
            precision.append(np.mean([match(h.payload) for h in hits[:SHOWN]]) if hits else 0.0)
            recall.append(sum(match(h.payload) for h in hits) / wanted)
    return {"precision_at_12": float(np.mean(precision)), "recall": float(np.mean(recall))}


def measure(collection: Collection, model: ClipModel) -> dict[str, float]:
    figures: dict[str, float] = {}
    for mode in MODES:
        for name, share in (("cut", None), ("all", 1.0)):
            for key, value in sorted_figures(collection, model, mode, share).items():
                figures[f"{mode}_{name}_{key}"] = value
    return figures


def main() -> None:
    figures = on_demo_catalog(measure)
    print(f"demo catalog, demo model, sort=price_asc; {machine()}")
    rows = [
        (mode, *(f"{figures[f'{mode}_{name}_{key}']:.3f}" for name in ("cut", "all")
                 for key in ("precision_at_12", "recall")))
        for mode in MODES
    ]  # fmt: skip
    print_table(rows, ("mode", "precision@12", "recall", "all 200: precision@12", "recall"))
    print(result_line(figures))


if __name__ == "__main__":
    main()

"""Diversity on the demo catalog: how varied the first 12 get, and how many still match.

    python -m benchmarks.diversity [--novelty W]

Text queries: every "COLOUR CATEGORY", "CATEGORY" and "BRAND CATEGORY" the demo catalog
holds, in each mode
(a product matches when it has those values). Picture queries: every tenth product's own
picture (a product matches when it has the query product's category). Each at diversity
0, 0.3, 0.5, 0.8 and 1, two figures over the queries:

- precision: the share of the first 12 that match, over the most that could (a query with
  4 matching products scores 1 when all 4 are among its 12);
- likeness: the mean cosine between the pictures of the first 12 (lower: more varied).

`--novelty` replaces `NOVELTY_AT_FULL_DIVERSITY` (1: the former mapping, MMR's weight of
novelty equal to the diversity). Used by tests/test_search_quality.py on the demo model.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from unittest import mock

import numpy as np

from benchmarks.common import machine, print_table, result_line
from benchmarks.relevance import demo_rows, on_demo_catalog
from benchmarks.sort_relevance import Match, queries
from fashion_clip.api import search as search_module
from fashion_clip.api.search import MODES, SearchOptions, search_text, search_vector
from fashion_clip.model.clip import ClipModel
from fashion_clip.store import Collection, Hit

SHOWN = 12
DIVERSITIES = (0.0, 0.3, 0.5, 0.8, 1.0)
Search = Callable[[float], list[Hit]]


def likeness(collection: Collection, hits: list[Hit]) -> float:
    """Mean cosine between the hits' pictures, each pair once."""
    points = collection.retrieve([hit.id for hit in hits], with_vectors=True)
    pictures = np.stack([point.vectors["image"] for point in points])
    cosines = pictures @ pictures.T
    n = len(pictures)
    return float((cosines.sum() - np.trace(cosines)) / (n * (n - 1))) if n > 1 else 1.0


def figures_of(
    collection: Collection,
    searches: dict[str, tuple[Search, Match]],
    rows: list[dict],
    name: str,
    diversities: Sequence[float],
) -> dict[str, float]:
    """Mean precision and likeness of `searches` at each diversity, keyed `NAME_d0.5_...`."""
    figures: dict[str, float] = {}
    for diversity in diversities:
        precision, alike, shown = [], [], []
        for search, match in searches.values():
            hits = search(diversity)[:SHOWN]
            most = min(SHOWN, sum(match(row) for row in rows))
            precision.append(sum(match(hit.payload) for hit in hits) / most)
            alike.append(likeness(collection, hits))
            shown.append(len(hits))
        figures[f"{name}_d{diversity}_precision"] = float(np.mean(precision))
        figures[f"{name}_d{diversity}_likeness"] = float(np.mean(alike))
        figures[f"{name}_d{diversity}_shown"] = float(np.mean(shown))
    return figures


def text_searches(
    collection: Collection, model: ClipModel, rows: list[dict], mode: str
) -> dict[str, tuple[Search, Match]]:
    asked = queries(rows)
    vectors = dict(zip(asked, model.encode_text(list(asked)), strict=True))

    def search(text: str) -> Search:
        return lambda d: search_text(
            collection, text, vectors[text], SearchOptions(mode=mode, diversity=d), limit=SHOWN
        )

    return {text: (search(text), match) for text, match in asked.items()}


def picture_searches(collection: Collection, rows: list[dict]) -> dict[str, tuple[Search, Match]]:
    picked = rows[::10]
    stored = {p.id: p for p in collection.retrieve([r["id"] for r in picked], with_vectors=True)}

    def search(vector: np.ndarray) -> Search:
        return lambda d: search_vector(collection, vector, SearchOptions(diversity=d), limit=SHOWN)

    return {
        row["id"]: (
            search(stored[row["id"]].vectors["image"]),
            lambda p, k=row["category"]: p.get("category") == k,
        )
        for row in picked
    }


def measure(
    collection: Collection,
    model: ClipModel,
    modes: Sequence[str] = MODES,
    diversities: Sequence[float] = DIVERSITIES,
) -> dict[str, float]:
    rows = demo_rows()
    figures: dict[str, float] = {}
    for mode in modes:
        searches = text_searches(collection, model, rows, mode)
        figures |= figures_of(collection, searches, rows, mode, diversities)
    searches = picture_searches(collection, rows)
    return figures | figures_of(collection, searches, rows, "picture", diversities)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--novelty", type=float, help="MMR's weight of novelty at diversity 1")
    args = parser.parse_args()
    # (a tree from before the weight existed is measured as it is)
    weight = getattr(search_module, "NOVELTY_AT_FULL_DIVERSITY", None)
    if args.novelty is not None:
        weight = args.novelty
    with mock.patch.object(search_module, "NOVELTY_AT_FULL_DIVERSITY", weight, create=True):
        figures = on_demo_catalog(measure)
    print(f"demo catalog, demo model; {machine()}")
    names = (*MODES, "picture")
    table = [
        (f"{name} d={d}", f"{figures[f'{name}_d{d}_precision']:.3f}",
         f"{figures[f'{name}_d{d}_likeness']:.3f}", f"{figures[f'{name}_d{d}_shown']:.1f}")
        for name in names for d in DIVERSITIES
    ]  # fmt: skip
    print_table(table, ("queries", "precision@12", "likeness of the 12", "shown"))
    print(result_line(figures))


if __name__ == "__main__":
    main()

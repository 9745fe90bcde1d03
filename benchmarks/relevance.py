"""Search relevance on the demo catalog, for each mode: semantic, keyword, hybrid.

    python -m benchmarks.relevance

- id lookup top-1: a product's id typed in; is it the first result?
- brand+category precision@k: "BRAND CATEGORY" queries (the brand is payload, not caption);
  the share of the top k (k = min(10, products of that brand and category)) that match both.
- recall@10 on meaning-only queries: "COLOUR PATTERN CATEGORY" and "COLOUR CATEGORY" queries;
  the share of matching products (up to 10) found in the top 10.
- region search: composites of two garments (benchmarks/localize_eval.py); the share where
  the top hit for the target garment's box has its category and colour (and, for contrast,
  for the whole picture).

Goals (issue 19): hybrid id top-1 = 1.00, brand+category precision >= 0.90, hybrid recall@10
within 0.02 of semantic, region search >= 0.90. Also used by tests/test_search_quality.py
on the demo model.
"""

from __future__ import annotations

import json
import random
import tempfile
from collections.abc import Callable

import numpy as np

from benchmarks.common import machine, print_table, result_line
from benchmarks.localize_eval import make_composites
from fashion_clip.api.search import MODES, SearchOptions, search_text, search_vector
from fashion_clip.demo import DEMO_CATALOG_FILE
from fashion_clip.media.region import frame_region
from fashion_clip.model.clip import ClipModel
from fashion_clip.store import Collection

Search = Callable[[str, int], list[str]]


def demo_rows() -> list[dict]:
    return [json.loads(line) for line in DEMO_CATALOG_FILE.read_text().splitlines() if line]


def searcher(collection: Collection, model: ClipModel, mode: str) -> Search:
    def search(text: str, limit: int) -> list[str]:
        vector = model.encode_text([text])[0]
        options = SearchOptions(mode=mode, exact=True)
        return [str(h.id) for h in search_text(collection, text, vector, options, limit=limit)]

    return search


def id_top1(search: Search, rows: list[dict], n: int = 40, seed: int = 0) -> float:
    picked = random.Random(seed).sample(rows, min(n, len(rows)))
    return float(np.mean([search(row["id"], 1)[:1] == [row["id"]] for row in picked]))


def brand_category_precision(search: Search, rows: list[dict]) -> float:
    groups: dict[tuple[str, str], set[str]] = {}
    for row in rows:
        groups.setdefault((row["brand"], row["category"]), set()).add(row["id"])
    scores = []
    for (brand, category), wanted in sorted(groups.items()):
        k = min(10, len(wanted))
        scores.append(len(set(search(f"{brand} {category}", k)) & wanted) / k)
    return float(np.mean(scores))


def meaning_recall(search: Search, rows: list[dict]) -> float:
    groups: dict[str, set[str]] = {}
    for row in rows:
        groups.setdefault(row["caption"], set()).add(row["id"])
        groups.setdefault(f"{row['color']} {row['category']}", set()).add(row["id"])
    scores = []
    for query, wanted in sorted(groups.items()):
        scores.append(len(set(search(query, 10)) & wanted) / min(10, len(wanted)))
    return float(np.mean(scores))


def region_rates(collection: Collection, model: ClipModel, n: int = 80) -> dict[str, float]:
    """On composites of two garments: how often the top hit is the target garment (category
    and colour) when searching with its box, and with the whole picture."""
    cases = [c for c in make_composites(n * 5, seed=11) if len(c.boxes) == 2][:n]
    right = {"region": [], "whole": []}
    for case in cases:
        caption = case.captions[case.target]
        color, category = caption.split(" ")[0], caption.split(" ", 2)[2]
        for name, picture in (
            ("region", frame_region(case.image, case.boxes[case.target])),
            ("whole", case.image),
        ):
            vector = model.encode_pixels(model.preprocessor([picture]))[0]
            top = search_vector(collection, vector, SearchOptions(exact=True), limit=1)
            hit = top[0].payload if top else {}
            right[name].append(hit.get("category") == category and hit.get("color") == color)
    return {f"{k}_right_garment_rate": float(np.mean(v)) for k, v in right.items()}


def measure(collection: Collection, model: ClipModel) -> dict[str, float]:
    rows = demo_rows()
    figures: dict[str, float] = {}
    for mode in MODES:
        search = searcher(collection, model, mode)
        figures[f"{mode}_id_top1"] = id_top1(search, rows)
        figures[f"{mode}_brand_category_precision"] = brand_category_precision(search, rows)
        figures[f"{mode}_recall_at_10"] = meaning_recall(search, rows)
    figures.update(region_rates(collection, model))
    return figures


def on_demo_catalog(
    measure: Callable[[Collection, ClipModel], dict[str, float]],
) -> dict[str, float]:
    """`measure` on the bundled catalog, indexed with the demo model in a temporary store."""
    from fashion_clip.ingest.job import index_demo
    from fashion_clip.store.embedded import EmbeddedStore

    model = ClipModel.load("demo")
    with tempfile.TemporaryDirectory() as folder:
        store = EmbeddedStore(folder)
        collection, _ = index_demo(store, model)
        figures = measure(collection, model)
        store.close()
    return figures


def main() -> None:
    figures = on_demo_catalog(measure)
    print(f"demo catalog, demo model, {machine()}")
    rows = [
        (
            mode,
            *(
                f"{figures[f'{mode}_{k}']:.3f}"
                for k in ("id_top1", "brand_category_precision", "recall_at_10")
            ),
        )
        for mode in MODES
    ]
    print_table(rows, ("mode", "id top-1", "brand+category precision", "recall@10 (meaning)"))
    print(
        f"region search, right garment at top-1 on two-garment composites: "
        f"{figures['region_right_garment_rate']:.3f} with the box, "
        f"{figures['whole_right_garment_rate']:.3f} with the whole picture"
    )
    print(result_line(figures))


if __name__ == "__main__":
    main()

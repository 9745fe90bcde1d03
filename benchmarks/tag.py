"""Tagging benchmark: `indexer tag`'s work on N points of an embedded store (Qdrant Edge).

    python -m benchmarks.tag --n 100000

Loads N random 512-d unit image vectors (payload: a brand) into a fresh embedded store,
then times `tag_collection` with one attribute of 8 categories: the store's scroll with
vectors, the scores against the labels' text vectors, and the batched payload writes. The
labels' text vectors come from a stand-in encoder (fixed random unit vectors): encoding 8
prompts once is not what grows with N. Goal: 100,000 points in 30 s or less.
The last line is `RESULT {json}`.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from fashion_clip.ingest.tagging import Attribute, tag_collection
from fashion_clip.store import CollectionSpec, Point
from fashion_clip.store.embedded import EmbeddedStore

DIM = 512
LABELS = ("dress", "shirt", "t-shirt", "trousers", "skirt", "jacket", "shoes", "bag")
LOAD_BATCH = 1000


class RandomTextEncoder:
    """Each prompt gets a fixed random unit vector: the labels' scores as a model gives them,
    without loading one."""

    logit_scale = 100.0
    logit_bias = None

    def encode_text(self, texts, *, batch_size: int = 32) -> np.ndarray:
        rng = np.random.default_rng(abs(hash(tuple(texts))) % (1 << 32))
        vectors = rng.normal(size=(len(texts), DIM)).astype(np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def load(root: Path, n: int) -> float:
    """N random points into collection `tags`; returns the seconds it took."""
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    with EmbeddedStore(root) as store, store.create("tags", CollectionSpec("bench", DIM)) as col:
        for start in range(0, n, LOAD_BATCH):
            count = min(LOAD_BATCH, n - start)
            vectors = rng.normal(size=(count, DIM)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            col.upsert(
                [
                    Point(f"sku-{start + i}", {"image": vectors[i]}, {"brand": "acme"})
                    for i in range(count)
                ]
            )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="points (default: 100000)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-tag-") as tmp:
        load_s = load(Path(tmp), args.n)
        with EmbeddedStore(tmp) as store, store.open("tags") as col:
            started = time.perf_counter()
            summary = tag_collection(col, RandomTextEncoder(), [Attribute("category", LABELS)])
            tag_s = time.perf_counter() - started
            tagged = summary.tagged["category"]
            written = col.count()
    figures = {
        "points": args.n,
        "load_s": round(load_s, 2),
        "tag_s": round(tag_s, 2),
        "tag_points_per_s": round(args.n / tag_s),
        "tagged": tagged,
        "goal_s": 30.0,
    }
    assert tagged == args.n == written, (tagged, written)
    print(f"{'figure':<18} value")
    for key, value in figures.items():
        print(f"{key:<18} {value}")
    print("RESULT " + json.dumps(figures))


if __name__ == "__main__":
    main()

"""Helpers for the indexer tests: small catalogs and images, running the CLI, reading points.

Kept out of conftest.py: only the indexer tests import them.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import numpy as np

from tests.image_corpus import jpeg_bytes, photo

REPO = Path(__file__).resolve().parent.parent
COLORS = ["red", "blue", "green", "black"]
CATEGORIES = ["dress", "shirt", "skirt"]


def write_photos(folder: Path, n: int, *, seed: int = 0) -> list[str]:
    """`n` small JPEGs named `img-<i>.jpg` in `folder`; returns the names."""
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(n):
        name = f"img-{i}.jpg"
        (folder / name).write_bytes(jpeg_bytes(photo(64, 48, seed=seed + i)))
        names.append(name)
    return names


def product_rows(n: int, *, prefix: str = "") -> list[dict[str, Any]]:
    """Catalog rows for `img-<i>.jpg`: ids, captions, and payload of several types."""
    return [
        {
            "id": f"sku-{i}",
            "image": f"{prefix}img-{i}.jpg",
            "caption": f"a {COLORS[i % 4]} {CATEGORIES[i % 3]} number {i}",
            "category": CATEGORIES[i % 3],
            "color": COLORS[i % 4],
            "price": round(9.5 + i, 2),
            "stock": i * 3,
        }
        for i in range(n)
    ]


def write_catalog(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Write `rows` as CSV, JSON lines or a JSON list, by `path`'s extension."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".csv":
        columns = list(dict.fromkeys(key for row in rows for key in row))
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, columns)
            writer.writeheader()
            writer.writerows(rows)
    elif path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    else:
        path.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return path


def use_store(monkeypatch, qdrant: Path, model_dir: Path) -> None:
    """Point the settings at an embedded store and the tiny model; no .env, no AWS profile."""
    monkeypatch.setenv("QDRANT_PATH", str(qdrant))
    monkeypatch.setenv("FASHION_CLIP_MODEL", str(model_dir))
    for name in ("QDRANT_URL", "FASHION_CLIP_COLLECTION", "FASHION_CLIP_DEVICE"):
        monkeypatch.delenv(name, raising=False)


def run_indexer(capsys, *argv: str) -> tuple[int, str, str]:
    """Run `python -m indexer ARGV` in this process; returns (exit code, stdout, stderr)."""
    from indexer.__main__ import main

    capsys.readouterr()
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def points(qdrant: Path, collection: str) -> dict[str, Any]:
    """Every point of an embedded collection: str(id) -> Point (vectors included)."""
    from fashion_clip.store.embedded import EmbeddedStore

    with EmbeddedStore(qdrant) as store, store.open(collection) as col:
        return {str(p.id): p for p in col.iter_points(with_vectors=True)}


def assert_same_points(left: dict[str, Any], right: dict[str, Any]) -> None:
    """Same ids, same payloads, same vectors (to float32 rounding across batch shapes)."""
    assert sorted(left) == sorted(right)
    for key, point in left.items():
        other = right[key]
        assert point.payload == other.payload, key
        assert sorted(point.vectors) == sorted(other.vectors), key
        for name, vector in point.vectors.items():
            np.testing.assert_allclose(vector, other.vectors[name], atol=1e-5, err_msg=key)


# ---------------------------------------------------------------------- kill hook
def run_and_kill() -> None:
    """Run the indexer CLI (argv from sys.argv) and SIGKILL this process at a chosen moment.

    `INDEXER_KILL_AT=method:n:when` kills before or after the n-th call of the store
    collection method (`upsert`, `delete`, `optimize`, `set_extra`). Run with `python -c`.
    """
    from fashion_clip.store.edge import EdgeCollection
    from indexer.__main__ import main

    method, nth, when = os.environ["INDEXER_KILL_AT"].split(":")
    original = getattr(EdgeCollection, method)
    calls = {"n": 0}

    def hooked(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == int(nth) and when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        result = original(self, *args, **kwargs)
        if calls["n"] == int(nth) and when == "after":
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    setattr(EdgeCollection, method, hooked)
    sys.exit(main(sys.argv[1:]))

"""Helpers for the vector-store tests: synthetic catalogs, brute-force references, backends.

Kept out of conftest.py on purpose: only the store tests use them, and they import them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

from fashion_clip.store import CollectionSpec, Point, Store

DIM = 32
MODEL = "test/tiny-clip"
COLORS = ["red", "blue", "green", "black"]


def unit(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    """`(n, dim)` float32 unit vectors."""
    v = rng.normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@dataclass
class Catalog:
    """A synthetic catalog: ids, `(n, dim)` image and text vectors, payloads, text mask."""

    ids: list
    image: np.ndarray
    text: np.ndarray
    has_text: np.ndarray  # (n,) bool: rows without a caption have no text vector
    payloads: list[dict]

    def points(self) -> list[Point]:
        return [
            Point(
                id=self.ids[i],
                vectors={
                    "image": self.image[i],
                    **({"text": self.text[i]} if self.has_text[i] else {}),
                },
                payload=self.payloads[i],
            )
            for i in range(len(self.ids))
        ]


def catalog(n: int = 300, seed: int = 0, dim: int = DIM) -> Catalog:
    rng = np.random.default_rng(seed)
    ids: list = [f"sku-{i}" if i % 10 else i for i in range(n)]  # mostly strings, some ints
    payloads = [
        {
            "color": COLORS[i % len(COLORS)],
            "size": i % 5,
            "price": round(float(rng.uniform(5, 200)), 2),
            "in_stock": bool(i % 3),
            "image": f"img/{i}.jpg",
            "caption": f"item {i}",
        }
        for i in range(n)
    ]
    return Catalog(ids, unit(rng, n, dim), unit(rng, n, dim), np.arange(n) % 3 != 0, payloads)


def spec(**overrides) -> CollectionSpec:
    fields = {
        "model_id": MODEL,
        "dim": DIM,
        "model_revision": "abc123",
        "catalog": "synthetic",
        "payload_indexes": {"color": "keyword", "size": "integer", "price": "float"},
    }
    return CollectionSpec(**{**fields, **overrides})


def brute_force(
    matrix: np.ndarray, query: np.ndarray, ids: list, k: int, mask: np.ndarray | None = None
) -> list:
    """The ids of the `k` rows of `matrix` most similar to `query` (cosine), among `mask`."""
    scores = matrix @ query
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    order = np.argsort(-scores, kind="stable")
    return [ids[i] for i in order[:k] if np.isfinite(scores[i])]


@dataclass
class Backend:
    """One store implementation under test; `new_store()` opens another store on the same data."""

    name: str
    new_store: Callable[[], Store]
    prefix: str = ""  # collection-name prefix, so runs on a shared server never collide


def embedded_backend(root: str | os.PathLike[str]) -> Backend:
    from fashion_clip.store.embedded import EmbeddedStore

    return Backend("embedded", lambda: EmbeddedStore(root))


def local_mode_backend() -> Backend:
    from qdrant_client import QdrantClient

    from fashion_clip.store.remote import RemoteStore

    client = QdrantClient(location=":memory:")
    return Backend("local", lambda: RemoteStore(client=client))


def server_backend(url: str, api_key: str | None) -> Backend:
    from fashion_clip.store.remote import RemoteStore

    prefix = f"fcs_test_{uuid.uuid4().hex[:8]}_"
    return Backend("server", lambda: RemoteStore(url, api_key), prefix)


def drop_prefixed(backend: Backend) -> None:
    """Drop the collections a server run created (throwaway stores need nothing)."""
    if backend.prefix:
        store = backend.new_store()
        for name in store.list_collections():
            if name.startswith(backend.prefix):
                store.drop(name)
        store.close()


def backend_for(kind: str, root: str | os.PathLike[str]) -> Backend:
    """The store a parametrized test names: `embedded` (under `root`), `local` (qdrant-client's
    local mode) or `server` (QDRANT_URL and QDRANT_API_KEY; the test skips without them)."""
    if kind == "embedded":
        return embedded_backend(root)
    if kind == "local":
        return local_mode_backend()
    url = os.environ.get("QDRANT_URL")
    if not url:
        pytest.skip(
            "QDRANT_URL is not set, so there is no Qdrant server to run the store contract "
            "against; set QDRANT_URL (and QDRANT_API_KEY) to run it"
        )
    return server_backend(url, os.environ.get("QDRANT_API_KEY"))

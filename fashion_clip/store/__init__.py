"""The vector store: the embedded Qdrant Edge engine by default, a Qdrant server when configured.

    store = open_store(settings)                       # QDRANT_URL set: remote, else embedded
    col = store.open_or_create("demo", CollectionSpec(model_id=..., dim=512))
    col.upsert([Point(id="sku-1", vectors={"image": v, "text": t}, payload={...})])
    col.optimize()                                     # after a bulk load (embedded store)
    hits = col.search(query_vector, filter=Filter(equals={"color": "red"}), limit=10)

Importing this package loads neither engine; `open_store` imports the one it needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fashion_clip.store.base import (
    ID_FIELD,
    VECTOR_NAMES,
    CatalogId,
    Collection,
    CollectionInfo,
    CollectionSpec,
    Filter,
    Group,
    Hit,
    Point,
    Range,
    Store,
)
from fashion_clip.store.embedded import EmbeddedStore
from fashion_clip.store.ids import point_id
from fashion_clip.store.meta import add_payload_indexes, infer_payload_indexes

if TYPE_CHECKING:
    from fashion_clip.settings import Settings

__all__ = [
    "ID_FIELD",
    "VECTOR_NAMES",
    "CatalogId",
    "Collection",
    "CollectionInfo",
    "CollectionSpec",
    "Filter",
    "Group",
    "Hit",
    "Point",
    "Range",
    "Store",
    "add_payload_indexes",
    "infer_payload_indexes",
    "open_store",
    "point_id",
]


def open_store(settings: Settings, *, prefer_grpc: bool = False) -> Store:
    """The store the settings name: `QDRANT_URL` (+ `QDRANT_API_KEY`), else `QDRANT_PATH`.

    `prefer_grpc` talks gRPC to a server, which is faster for bulk upserts.
    """
    if settings.qdrant_url:
        # deferred: qdrant_client, for a server only
        from fashion_clip.store.remote import RemoteStore

        return RemoteStore(settings.qdrant_url, settings.qdrant_api_key, prefer_grpc=prefer_grpc)
    return EmbeddedStore(settings.qdrant_path)

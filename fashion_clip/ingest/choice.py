"""Which collection the app serves, and the indexer's commands act on, when none is named.

`FASHION_CLIP_COLLECTION` when set; else the catalog indexed last (each run records when, in
the collection's `indexed_at`); else `demo`, the bundled catalog. Collections the Python
API made for its datasets are caches, not catalogs to show, and are never chosen.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from fashion_clip.errors import StoreError
from fashion_clip.settings import DEFAULT_COLLECTION, Settings
from fashion_clip.store import Store

log = logging.getLogger(__name__)

# The `catalog` a Python API dataset's collection is created with (`api.catalog_vectors`):
# the mark that leaves it out of the choice.
DATASET_CATALOG_PREFIX = "FCLIPDataset:"


@dataclass(frozen=True)
class CollectionChoice:
    """The collection chosen, and why, in words fit to follow its name ("the last indexed")."""

    name: str
    reason: str


def choose_collection(settings: Settings, store: Store) -> CollectionChoice:
    """`FASHION_CLIP_COLLECTION`, else the most recently indexed catalog, else `demo`.

    Reads each collection's record only (an embedded collection's without loading its
    points), so choosing costs little however large the store.
    """
    if settings.collection:
        return CollectionChoice(settings.collection, "FASHION_CLIP_COLLECTION")
    catalogs = {}
    for name in store.list_collections():
        if name != DEFAULT_COLLECTION:
            indexed_at = _indexed_catalog(store, name)
            if indexed_at is not None:
                catalogs[name] = indexed_at
    if not catalogs:
        return CollectionChoice(DEFAULT_COLLECTION, "the bundled demo: no catalog indexed yet")
    latest = max(catalogs, key=lambda name: (catalogs[name], name))
    if len(catalogs) == 1:
        return CollectionChoice(latest, "the last indexed catalog")
    return CollectionChoice(
        latest, f"the last indexed of {len(catalogs)} catalogs: {', '.join(sorted(catalogs))}"
    )


def _indexed_catalog(store: Store, name: str) -> str | None:
    """When the catalog in `name` was last indexed ("" if never finished), or None when it
    is a Python API dataset's collection, no catalog to show."""
    catalog, extra = _record(store, name)
    if (catalog or "").startswith(DATASET_CATALOG_PREFIX):
        return None
    return str(extra.get("indexed_at") or "")


def _record(store: Store, name: str) -> tuple[str | None, dict[str, Any]]:
    """The catalog and the run record of collection `name` (`Store.record`: an embedded
    collection's is read without loading its shard, for each collection in the store)."""
    try:
        return store.record(name)
    except StoreError as exc:
        # An unreadable record, or a server that cannot answer for it now: a catalog stays
        # a candidate, so choosing it stops with the cause named, rather than quietly
        # taking the demo instead.
        log.warning("collection %r cannot be read now: %s", name, exc)
        return None, {}

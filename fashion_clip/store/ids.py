"""Point ids: a UUID5 of the catalog id, so re-indexing the same item overwrites it.

The catalog id is hashed as text, so `1` from a JSON catalog and `"1"` from a CSV name the same
point. The original id (with its type) stays in the payload and is what results return.
"""

from __future__ import annotations

import uuid

from fashion_clip.errors import StoreError

# Fixed forever: changing it would orphan every point of every existing collection.
NAMESPACE = uuid.UUID("6f1c3a52-5b0e-4d2a-9f3e-0c8a7e1d2b44")


def point_id(catalog_id: str | int) -> str:
    """The point id (a UUID string) of a catalog id."""
    if isinstance(catalog_id, bool) or not isinstance(catalog_id, (str, int)):
        raise StoreError(f"catalog ids are strings or integers, not {type(catalog_id).__name__}")
    return str(uuid.uuid5(NAMESPACE, str(catalog_id)))

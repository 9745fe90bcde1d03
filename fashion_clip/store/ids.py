"""Point ids: a UUID5 of the catalog id, so re-indexing the same item overwrites it.

The catalog id is hashed as text, so `1` from a JSON catalog and `"1"` from a CSV name the same
point. The original id (with its type) stays in the payload and is what results return.
"""

from __future__ import annotations

import hashlib
import uuid

from fashion_clip.errors import StoreError

# Fixed forever: changing it would orphan every point of every existing collection.
NAMESPACE = uuid.UUID("6f1c3a52-5b0e-4d2a-9f3e-0c8a7e1d2b44")
_NAMESPACE_BYTES = NAMESPACE.bytes


def point_id(catalog_id: str | int) -> str:
    """The point id (a UUID string) of a catalog id."""
    if isinstance(catalog_id, bool) or not isinstance(catalog_id, (str, int)):
        raise StoreError(f"catalog ids are strings or integers, not {type(catalog_id).__name__}")
    # uuid.uuid5, written out: a re-run computes one per row, and the UUID objects it builds
    # cost twice the hash (the result is the same string; tests/test_store_embedded.py checks).
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + str(catalog_id).encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    text = digest.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"

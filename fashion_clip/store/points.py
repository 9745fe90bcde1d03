"""Checking and converting points on their way into either backend.

A bad point is refused with a message naming it (and the field or vector at fault) before
anything of its batch is written.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fashion_clip.errors import (
    InvalidInputError,
    ModelMismatchError,
    StoreError,
)
from fashion_clip.store.base import (
    ID_FIELD,
    VECTOR_NAMES,
    CatalogId,
    Collection,
    Hit,
    Point,
    SparseVector,
)
from fashion_clip.store.ids import point_id
from fashion_clip.store.keywords import KEYWORDS_VECTOR, changes_words, keyword_text

Prepared = tuple[str, dict[str, list[float]], dict[str, Any], SparseVector | None]


def prepare(
    collection: Collection, points: Sequence[Point], keywords_of: Callable[[str], SparseVector]
) -> list[Prepared]:
    """`(point uuid, {name: float list}, JSON-safe payload with the catalog id, keywords)` per
    point; keywords (BM25 weights of its text fields) where the collection keeps them and the
    point has words."""
    prepared = []
    fields = collection.keyword_fields()
    for point in points:
        uuid = point_id(point.id)
        dense = {k: v for k, v in point.vectors.items() if k != KEYWORDS_VECTOR}
        vectors = {name: _vector(collection, point, name, v) for name, v in dense.items()}
        if not vectors:
            raise StoreError(f"point {point.id!r} has no vectors")
        payload = {str(k): _json(point.id, k, v) for k, v in point.payload.items()}
        payload[ID_FIELD] = point.id
        keywords = None
        if fields is not None:
            keywords = keywords_of(keyword_text(payload, fields))
        prepared.append(
            (uuid, vectors, payload, None if keywords is None or keywords.is_empty() else keywords)
        )
    return prepared


@dataclass(frozen=True)
class PayloadUpdate:
    """Fields to merge into one stored point's payload, and its keywords after the merge."""

    uuid: str
    fields: dict[str, Any]
    words_change: bool  # the fields are among the words keyword search matches
    keywords: SparseVector | None = None  # where `words_change`: the new ones (None: no words)


def payload_updates(
    collection: Collection,
    updates: Mapping[CatalogId, Mapping[str, Any]],
    keywords_of: Callable[[str], SparseVector],
) -> list[PayloadUpdate]:
    """`updates` of the points that exist (the others are dropped: `set_payloads` ignores
    them), each with its keywords as its merged payload will give them where the update may
    change its words (a tag does; the picture's path does not)."""
    stored = {point_id(p.id): p.payload for p in collection.retrieve(list(updates))}
    words = collection.keyword_fields()
    planned = []
    for key, fields in updates.items():
        uuid = point_id(key)
        if uuid not in stored:
            continue
        if words is None or not changes_words(fields, words):
            planned.append(PayloadUpdate(uuid, dict(fields), words_change=False))
            continue
        keywords = keywords_of(keyword_text({**stored[uuid], **fields}, words))
        planned.append(
            PayloadUpdate(uuid, dict(fields), True, None if keywords.is_empty() else keywords)
        )
    return planned


def _vector(collection: Collection, point: Point, name: str, vector: Any) -> list[float]:
    if name not in VECTOR_NAMES:
        expected = ", ".join(VECTOR_NAMES)
        raise StoreError(f"point {point.id!r}: unknown vector {name!r}; expected one of {expected}")
    array = np.asarray(vector, dtype=np.float32)
    if array.shape != (collection.dim,):
        raise ModelMismatchError(
            f"point {point.id!r}: {name} vector has shape {array.shape}, but collection "
            f"{collection.name!r} holds {collection.dim}-d vectors of model "
            f"{collection.model_id!r}; embed with that model, or rebuild the collection with "
            "the new one (`python -m indexer index CATALOG --recreate`)"
        )
    if not np.all(np.isfinite(array)):
        raise StoreError(f"point {point.id!r}: {name} vector has NaN or inf values")
    return array.tolist()


def _json(point: Any, key: str, value: Any) -> Any:
    """`value` as plain JSON types (numpy scalars unwrapped); NaN, inf and objects refused."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise StoreError(
                f"point {point!r}: payload field {key!r} is {value}; use null (None) for a "
                "missing value"
            )
        return value
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_json(point, key, v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json(point, f"{key}.{k}", v) for k, v in value.items()}
    raise StoreError(
        f"point {point!r}: payload field {key!r} holds a {type(value).__name__}, which JSON "
        "cannot store; convert it to text or a number"
    )


def examples(
    collection: Collection,
    positive: Sequence[CatalogId],
    negative: Sequence[CatalogId],
    *,
    with_vectors: bool = True,
) -> dict[str, Point]:
    """The example points of a recommendation, by id as text; all must exist.

    `with_vectors=False` only checks that they exist (an engine that recommends by id needs
    no vectors sent back)."""
    if not positive:
        raise InvalidInputError("'more like this' needs at least one positive example; got none")
    wanted = [*positive, *negative]
    found = {str(p.id): p for p in collection.retrieve(wanted, with_vectors=with_vectors)}
    missing = [i for i in wanted if str(i) not in found]
    if missing:
        raise StoreError(f"collection {collection.name!r} has no points with ids {missing}")
    return found


def to_hit(record: Any) -> Hit:
    """A scored point of either library as our `Hit` (the catalog id comes from the payload)."""
    payload = dict(record.payload or {})
    return Hit(id=_catalog_id(payload, record), score=float(record.score), payload=payload)


def _catalog_id(payload: dict[str, Any], record: Any) -> Any:
    # The point's UUID only when the payload lacks the id (not made eagerly: a re-run
    # converts one record per catalog row)
    return payload[ID_FIELD] if ID_FIELD in payload else str(record.id)


def to_point(record: Any, with_vectors: bool) -> Point:
    """A stored record of either library as our `Point`, vectors as float32 arrays."""
    payload = dict(record.payload or {})
    vectors: dict[str, np.ndarray] = {}
    if with_vectors and isinstance(record.vector, dict):
        # the dense spaces only: keywords are derived from the payload whenever it is written
        vectors = {
            k: np.asarray(v, dtype=np.float32)
            for k, v in record.vector.items()
            if k in VECTOR_NAMES
        }
    return Point(id=_catalog_id(payload, record), vectors=vectors, payload=payload)


def rewrite_points(collection: Collection, batch_size: int = 256) -> int:
    """Write every point again as it is (vectors copied, not recomputed), so that what the
    store derives on writing, the keywords, is derived anew. Returns how many were written."""
    written = 0
    batch: list[Point] = []
    for point in collection.iter_points(batch_size=batch_size, with_vectors=True):
        batch.append(point)
        if len(batch) == batch_size:
            collection.upsert(batch)
            written, batch = written + len(batch), []
    if batch:
        collection.upsert(batch)
    return written + len(batch)

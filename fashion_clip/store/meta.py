"""The collection record (model, dimension, catalog) and the guard that checks it.

Both backends keep the same JSON object: the embedded store in `collection.json` next to the
engine's files, a Qdrant server in the collection's own `metadata` (Qdrant >= 1.16), under the
key `fashion_clip`.
"""

from __future__ import annotations

import datetime as _dt
import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

from fashion_clip.errors import (
    ConfigurationError,
    InvalidInputError,
    ModelMismatchError,
    StoreError,
)
from fashion_clip.model.checkpoints import is_content_digest
from fashion_clip.store.base import (
    DISTANCE,
    ID_FIELD,
    PAYLOAD_INDEX_TYPES,
    VECTOR_NAMES,
    Collection,
    CollectionInfo,
    CollectionSpec,
)
from fashion_clip.store.keywords import check_keyword_fields

log = logging.getLogger(__name__)

META_KEY = "fashion_clip"
META_VERSION = 1
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
_MODEL_KEYS = ("model_id", "model_revision", "dim", "distance", "catalog")
# Fields never worth a payload index: free text, references, bookkeeping.
_NOT_INDEXED = {ID_FIELD, "image", "caption", "fingerprint", "_fingerprint", "description"}
# Qdrant reads a field name as a JSON path ("a.b" is b inside a): a top-level key made of
# anything else ("Variant Price", "color.name") must be written in double quotes, which
# cannot themselves hold a quote or a backslash.
# Plain keys as every version of Qdrant's parser reads them unquoted (older ones want a
# first character that is not a digit); anything else is quoted, which always works.
_PLAIN_KEY = re.compile(r"[A-Za-z_-][A-Za-z0-9_-]*")
_UNQUOTABLE = ('"', "\\")
_MAX_KEYWORD_LENGTH = 64  # longer strings are prose, not categories to filter on
# How the engine refuses a facet on a field without a keyword, integer or bool index: the
# same words from Qdrant Edge and from a server ("Wrong input: No appropriate index for
# faceting: `color`. Please create one to facet on this field. ..."). Matched whole, so
# another error that merely mentions an index ("index out of range") is not mistaken for it.
_NO_FACET_INDEX = "no appropriate index for faceting"


def check_name(name: str) -> str:
    """Refuse collection names that could escape the store directory or upset a server."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigurationError(
            f"collection name {name!r} is not allowed: use 1-64 letters, digits, '_', '-' or "
            "'.', not starting with '-' or '.'"
        )
    return name


def new_meta(spec: CollectionSpec) -> dict[str, Any]:
    """The record of a collection about to be created with `spec`."""
    if spec.dim <= 0:
        raise ConfigurationError(f"vector dimension must be positive, not {spec.dim}")
    if not spec.model_id:
        raise ConfigurationError("a collection needs the id of the model that fills it")
    return {
        "format": META_VERSION,
        "model_id": spec.model_id,
        "model_revision": spec.model_revision,
        "dim": int(spec.dim),
        "distance": DISTANCE,
        "vectors": list(VECTOR_NAMES),
        "catalog": spec.catalog,
        "quantization": "int8" if spec.quantization else None,
        "payload_indexes": {k: check_index_type(k, v) for k, v in spec.payload_indexes.items()},
        "keyword_fields": check_keyword_fields(spec.keyword_fields),
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "extra": {},
    }


def check_index_type(field_name: str, field_type: str) -> str:
    if field_type not in PAYLOAD_INDEX_TYPES:
        raise ConfigurationError(
            f"payload index for {field_name!r}: unknown type {field_type!r}; expected one of "
            f"{', '.join(PAYLOAD_INDEX_TYPES)}"
        )
    return field_type


def parse_meta(name: str, raw: Any, where: str) -> dict[str, Any]:
    """Validate a record read back from disk or a server."""
    if not isinstance(raw, Mapping) or not raw.get("model_id") or not raw.get("dim"):
        raise StoreError(
            f"collection {name!r} at {where} has no FashionCLIP record of its model; it was not "
            "built by this project's indexer. Rebuild it with "
            f"`python -m indexer index CATALOG --collection {name} --recreate`"
        )
    meta = dict(raw)
    meta.setdefault("payload_indexes", {})
    meta.setdefault("extra", {})
    return meta


def guard(
    name: str,
    meta: Mapping[str, Any],
    model_id: str | None,
    model_revision: str | None,
    dim: int | None,
) -> None:
    """Refuse a collection built with another model, revision or dimension than the caller's."""
    built = describe_model(meta["model_id"], meta.get("model_revision"), meta["dim"])
    wanted = describe_model(model_id or meta["model_id"], model_revision, dim or meta["dim"])
    built_revision = meta.get("model_revision")
    revisions_differ = bool(model_revision and built_revision and model_revision != built_revision)
    # An equal content digest is the same model under another name: a local folder's
    # revision digests its files (`ClipModel`), so "./my-model" and a copy elsewhere match.
    same_revision = is_content_digest(model_revision) and model_revision == built_revision
    if (
        (model_id is not None and model_id != meta["model_id"] and not same_revision)
        or revisions_differ
        or (dim is not None and int(dim) != int(meta["dim"]))
    ):
        mismatch = f"collection {name!r} was built with {built}, but the model in use is {wanted}"
        raise ModelMismatchError(
            f"{mismatch}; vectors of different models cannot be compared. Rebuild the "
            f"collection with `python -m indexer index CATALOG --collection {name} --recreate`, "
            "or use the model it was built with",
            mismatch=mismatch,
        )


def describe_model(model_id: str, revision: str | None, dim: int | None) -> str:
    text = f"model {model_id!r}"
    if revision:
        text += f" (revision {revision})"
    return text + (f", {dim}-d" if dim else "")


def to_info(name: str, meta: Mapping[str, Any], count: int) -> CollectionInfo:
    return CollectionInfo(
        name=name,
        model_id=meta["model_id"],
        model_revision=meta.get("model_revision"),
        dim=int(meta["dim"]),
        distance=meta.get("distance", DISTANCE),
        catalog=meta.get("catalog"),
        count=count,
        payload_indexes=dict(meta.get("payload_indexes", {})),
        extra=dict(meta.get("extra", {})),
    )


def merge_extra(meta: dict[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """`meta` with `values` merged into its free-form part; the model fields stay untouched."""
    clash = sorted(set(values) & set(_MODEL_KEYS))
    if clash:
        raise StoreError(f"{', '.join(clash)} cannot change; rebuild the collection instead")
    return {**meta, "extra": {**meta.get("extra", {}), **values}}


def with_payload_index(meta: dict[str, Any], field_name: str, field_type: str) -> dict[str, Any]:
    """`meta` recording a payload index of `field_type` on `field_name`."""
    indexes = {**meta.get("payload_indexes", {}), field_name: field_type}
    return {**meta, "payload_indexes": indexes}


def missing_facet_index(exc: BaseException, key: str, collection: str) -> StoreError | None:
    """The error to raise when the engine refused to count values of `key` for want of a
    payload index (`exc` is what it raised), or None when `exc` is about something else."""
    if _NO_FACET_INDEX not in str(exc).lower():
        return None
    return StoreError(
        f"cannot count values of {key!r} in collection {collection!r}: the field has no "
        "keyword, integer or bool payload index (create one first)"
    )


def field_path(key: str) -> str:
    """The engine's path for the top-level payload field `key` (see `_PLAIN_KEY`)."""
    if _PLAIN_KEY.fullmatch(key):
        return key
    if any(c in key for c in _UNQUOTABLE):
        raise InvalidInputError(
            f"payload field {key!r} cannot be filtered on: Qdrant field names cannot hold "
            "a double quote or a backslash"
        )
    return f'"{key}"'


def infer_payload_indexes(rows: Iterable[Mapping[str, Any]], sample: int = 1000) -> dict[str, str]:
    """Payload index types for the catalog fields worth filtering on, from up to `sample` rows.

    Short strings (and lists of them) get `keyword`, numbers `float`, booleans `bool`. A
    field whose values mix kinds, or hold long prose, gets none; nor does a name Qdrant
    cannot address (`field_path`). Whole numbers get `float` too: an `integer` index leaves
    out the values that are not whole, so a price of 19.99 arriving after a sample of whole
    prices would be missed by every price filter. A float index serves ranges and equality.
    """
    kinds: dict[str, set[str]] = {}
    skipped_names: set[str] = set()
    for i, row in enumerate(rows):
        if i >= sample:
            break
        for key, value in row.items():
            if key in _NOT_INDEXED or key.startswith("_") or value is None or value == "":
                continue
            if any(c in key for c in _UNQUOTABLE):
                skipped_names.add(key)
                continue
            kinds.setdefault(key, set()).add(_kind(value))
    for key in sorted(skipped_names):
        log.warning(
            "payload field %r gets no index: Qdrant cannot name a field holding a "
            "double quote or a backslash; rename the column to filter on it",
            key,
        )
    result = {}
    for key, found in kinds.items():
        if found <= {"integer", "float"}:
            found = {"float"}
        if len(found) == 1 and (kind := found.pop()) in PAYLOAD_INDEX_TYPES:
            result[key] = kind
    return result


def add_payload_indexes(collection: Collection, wanted: Mapping[str, str]) -> None:
    """Index the fields an existing collection lacks (a column added to the catalog), and
    widen the `integer` indexes older versions chose for whole numbers to `float`: those
    left out every fractional value, so a price of 19.99 matched no price filter."""
    have = collection.info().payload_indexes
    for name, kind in wanted.items():
        if have.get(name) is None or (have[name], kind) == ("integer", "float"):
            collection.create_payload_index(name, kind)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "keyword" if len(value) <= _MAX_KEYWORD_LENGTH else "text"
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return "keyword" if max(len(v) for v in value) <= _MAX_KEYWORD_LENGTH else "text"
    return "other"

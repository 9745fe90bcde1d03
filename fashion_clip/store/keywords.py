"""What a point's `keywords` (BM25) vector is built from: its caption and text fields.

The engine weighs the terms: `qdrant_edge.Bm25` turns text into term frequencies over hashed
token ids (`fashion_clip.store.bm25`), and the collection's sparse space has
the IDF modifier, so rare words (a brand, a product code) count more than common ones. Both
stores get their vectors from the same `Bm25`, so token ids always agree between index and
query time and between the embedded store and a server.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fashion_clip.errors import ConfigurationError
from fashion_clip.store.base import ID_FIELD

KEYWORDS_VECTOR = "keywords"
ALL_TEXT_FIELDS = "*"  # the default: every string field of the payload
# Where a row's picture lives is not a word a shopper types; fields starting with "_" are
# bookkeeping (fingerprints, the resolved image source).
_NOT_WORDS = frozenset({"image"})


def check_keyword_fields(fields: Sequence[str] | str | None) -> list[str] | str:
    """`fields` as recorded: a list of field names, or `ALL_TEXT_FIELDS` for None/"*"."""
    if fields is None or fields == ALL_TEXT_FIELDS:
        return ALL_TEXT_FIELDS
    names = [fields] if isinstance(fields, str) else list(fields)
    cleaned = [str(name).strip() for name in names if str(name).strip()]
    if not cleaned:
        raise ConfigurationError(
            "keyword fields: give at least one payload field name (e.g. caption,brand,id), "
            f"or {ALL_TEXT_FIELDS!r} for every text field"
        )
    return list(dict.fromkeys(cleaned))


def keyword_text(payload: Mapping[str, Any], fields: Sequence[str] | str) -> str:
    """The words of `payload` that keyword search matches, one field after another.

    With `ALL_TEXT_FIELDS`, the catalog id and every string (or list of strings) field but
    the picture's reference and bookkeeping fields; else the named fields, whatever their type.
    """
    if fields == ALL_TEXT_FIELDS:
        chosen = [
            value
            for key, value in payload.items()
            if key not in _NOT_WORDS
            and not str(key).startswith("_")
            and (_is_text(value) or key == ID_FIELD)
        ]
    else:
        chosen = [payload[key] for key in fields if payload.get(key) is not None]
    return " ".join(_words(value) for value in chosen).strip()


def changes_words(fields: Mapping[str, Any], keyword_fields: Sequence[str] | str) -> bool:
    """Whether setting `fields` in a payload can change its keyword text (a tag can; the
    picture's path or a bookkeeping field cannot)."""
    if keyword_fields == ALL_TEXT_FIELDS:
        return any(key not in _NOT_WORDS and not str(key).startswith("_") for key in fields)
    return any(key in keyword_fields for key in fields)


def _is_text(value: Any) -> bool:
    if isinstance(value, str):
        return True
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) for v in value)


def _words(value: Any) -> str:
    if isinstance(value, list):
        return " ".join(_words(v) for v in value)
    return str(value)

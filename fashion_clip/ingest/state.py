"""Fingerprints: what makes a re-run skip a row, reuse its vectors, or embed it again.

Every point carries two hashes in its payload, written in the same upsert as its vectors (so
a point is never "done" without them, and never has them without its vectors):

- `_vectors_key`: model (name, revision, precision), the pipeline version, the image bytes'
  SHA-256 and the caption. Equal means the stored vectors are what embedding would give.
  fp32 and bf16 count as one precision (`vectors_precision`): a catalog indexed on a CPU
  with native bf16 and re-run on one without is not embedded again; int8 is.
- `_fingerprint`: `_vectors_key` plus the whole payload. Equal means nothing changed at all.

A row whose fingerprint matches is skipped without decoding; one whose vectors key matches
(a price changed, say) keeps its vectors and gets the new payload; anything else is embedded.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

FINGERPRINT_FIELD = "_fingerprint"
VECTORS_FIELD = "_vectors_key"
# What the image's source said about its version, and the image bytes' SHA-256 it vouches
# for (`ingest.stamps`): a re-run whose source says the same skips reading the image.
STAMP_FIELD = "_source_stamp"
IMAGE_HASH_FIELD = "_image_sha256"
SOURCE_FIELD = "_image_source"  # the image reference resolved (the app shows it from there)
# Bump when decoding or preprocessing changes what vectors a given image gets.
PIPELINE_VERSION = 1
_SAME_VECTORS = {"bf16": "fp32"}  # precisions whose vectors count as another's


@dataclass(frozen=True)
class ModelTag:
    """The model facts a vector depends on."""

    name: str
    revision: str | None
    precision: str = "fp32"


def vectors_precision(image: str, text: str) -> str:
    """The precision part of a vectors key for towers run in `image` and `text` modes.

    bf16 vectors are fp32's rounded (cosine >= 0.999), so both read "fp32" and moving a
    collection between machines does not re-embed it; int8's differ more and read "int8".
    A text tower in another mode than the image one is named after it ("fp32, text int8":
    the Space indexes with its query model), so a run with the usual one re-embeds captions.
    """
    image, text = (_SAME_VECTORS.get(mode, mode) for mode in (image, text))
    return image if text == image else f"{image}, text {text}"


def content_hash(data: bytes) -> str:
    """SHA-256 of an image's bytes, hex."""
    return hashlib.sha256(data).hexdigest()


# Canonical JSON: key order and spacing never change the hash; odd values hash by str().
# One encoder for every digest (json.dumps builds one per call, a third of a digest's cost).
_CANONICAL = json.JSONEncoder(
    sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str
)


def _digest(value: Any) -> str:
    return hashlib.sha256(_CANONICAL.encode(value).encode("utf-8")).hexdigest()[:32]


def vectors_key(model: ModelTag, image_sha256: str, caption: str | None) -> str:
    """Hash of everything the image and text vectors of a row depend on."""
    # The canonical JSON of {"pipeline", "model", "image", "caption"}, its keys in sorted order,
    # written out: a re-run computes one per catalog row, and the encoder's walk of the dict
    # cost twice this (tests/test_ingest_state.py checks the text is the encoder's).
    caption_json = "null" if caption is None else _CANONICAL.encode(caption)
    image_json = _CANONICAL.encode(image_sha256)
    text = f'{{"caption":{caption_json},"image":{image_json},{_tail(model)}'
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


@functools.lru_cache(maxsize=16)
def _tail(model: ModelTag) -> str:
    """The vectors key's JSON after its image: the same for every row of a run."""
    model_json = _CANONICAL.encode([model.name, model.revision, model.precision])
    return f'"model":{model_json},"pipeline":{_CANONICAL.encode(PIPELINE_VERSION)}}}'


def fingerprint(vectors: str, payload: Mapping[str, Any]) -> str:
    """Hash of the vectors key and the payload (bookkeeping fields left out)."""
    user_fields = payload
    if not _NOT_FINGERPRINTED.isdisjoint(payload):  # a stored payload; a catalog row has none
        user_fields = {k: v for k, v in payload.items() if k not in _NOT_FINGERPRINTED}
    return _digest({"vectors": vectors, "payload": user_fields})


# Bookkeeping, not content: a touched file (a new stamp, the same bytes) changes no fingerprint.
_NOT_FINGERPRINTED = frozenset({FINGERPRINT_FIELD, VECTORS_FIELD, STAMP_FIELD, IMAGE_HASH_FIELD})

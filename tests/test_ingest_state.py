"""Fingerprints are stored in every point: the way they are computed must never change, or
every re-run after an upgrade would embed (or rewrite) every catalog again."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import pytest

from fashion_clip.ingest.state import PIPELINE_VERSION, ModelTag, fingerprint, vectors_key


def _canonical_digest(value: object) -> str:
    # The format as first written: canonical JSON (sorted keys, no spaces, UTF-8), SHA-256.
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


PAYLOADS = [
    {},
    {"image": "a.jpg", "caption": "a red dress", "price": 19.99, "in_stock": True},
    {"caption": "ünïcödé ß 衣服 👗", "tags": ["b", "a"], "size": {"eu": 38, "us": 8}},
    {"z": 1, "a": 1.0, "m": None, "n": [1, [2, {"y": 0, "x": -0.0}]]},
    {"when": dt.date(2026, 12, 7), "big": 2**62},  # a Parquet date hashes by its text
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_fingerprints_are_the_canonical_json_digest(payload):
    tag = ModelTag("patrickjohncyh/fashion-clip", "abc123", "fp32")
    key = vectors_key(tag, "f" * 64, payload.get("caption"))
    assert key == _canonical_digest(
        {"pipeline": PIPELINE_VERSION, "model": list(tag.__dict__.values()), "image": "f" * 64,
         "caption": payload.get("caption")}
    )  # fmt: skip
    assert fingerprint(key, payload) == _canonical_digest({"vectors": key, "payload": payload})


def test_bookkeeping_fields_do_not_change_a_fingerprint():
    plain = {"image": "a.jpg"}
    noted = {**plain, "_fingerprint": "x", "_vectors_key": "y", "_source_stamp": "file:1"}
    assert fingerprint("k", noted) == fingerprint("k", plain) != fingerprint("k2", plain)

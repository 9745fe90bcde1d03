"""What only the embedded store does (index builds, quantization, locking, layout), plus the
store package's small pieces: ids, record inference, `open_store`, lazy imports."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest

from fashion_clip.errors import StoreError, StoreLockedError
from fashion_clip.settings import Settings
from fashion_clip.store import Point, infer_payload_indexes, open_store, point_id
from fashion_clip.store.embedded import EmbeddedStore
from fashion_clip.store.ids import NAMESPACE
from tests.store_fixtures import brute_force, catalog, spec, unit

REPO = Path(__file__).resolve().parents[1]


def test_index_build_keeps_results_and_new_points_stay_searchable(tmp_path):
    cat = catalog(n=2000, dim=32)
    store = EmbeddedStore(tmp_path)
    col = store.create("big", spec(indexing_threshold_kb=10, payload_indexes={}))
    col.upsert(cat.points())
    assert col.indexed_count() == 0  # before the build: searched by brute force
    assert col.optimize() is True
    assert col.indexed_count() >= 2000
    recall = []
    for q in range(0, 2000, 100):
        approx = col.search(cat.image[q], limit=10, ef=128)
        recall.append(
            len(set(h.id for h in approx) & set(brute_force(cat.image, cat.image[q], cat.ids, 10)))
        )
    assert np.mean(recall) / 10 >= 0.95
    fresh = unit(np.random.default_rng(99), 1)[0]
    col.upsert([Point("fresh", {"image": fresh}, {"color": "red"})])
    assert col.search(fresh, limit=1)[0].id == "fresh"  # unindexed, yet found
    assert col.search(fresh, limit=1, filter=None, exact=True)[0].id == "fresh"
    store.close()


def test_quantized_on_disk_collection_rescoring_finds_exact_neighbours(tmp_path):
    cat = catalog(n=1500, dim=32)
    store = EmbeddedStore(tmp_path)
    col = store.create(
        "q",
        spec(quantization=True, on_disk_vectors=True, indexing_threshold_kb=10, payload_indexes={}),
    )
    col.upsert(cat.points())
    col.optimize()
    for q in (3, 300, 1200):
        assert col.search(cat.image[q], limit=1)[0].id == cat.ids[q]
        assert col.search(cat.image[q], limit=1)[0].score == pytest.approx(1.0, abs=1e-3)
    store.close()


def _spy_flushes(col) -> list[bool]:
    """Counts the flushes `col`'s shard is asked for, forwarding everything to it."""
    engine, flushes = col._shard, []

    class Spy:
        def __getattr__(self, name):
            return getattr(engine, name)

        def flush(self):
            flushes.append(True)
            engine.flush()

    col._shard = Spy()
    return flushes


def test_bulk_loads_flush_as_they_go(tmp_path, monkeypatch):
    from fashion_clip.store import edge

    monkeypatch.setattr(edge, "FLUSH_EVERY_POINTS", 100)
    col = EmbeddedStore(tmp_path).create("bulk", spec())
    flushes = _spy_flushes(col)
    points = catalog(n=250).points()
    for start in range(0, 250, 50):
        col.upsert(points[start : start + 50])
    assert len(flushes) == 2  # after 100 and 200 points: the WAL never holds a whole load
    col.close()


WRITES = {
    "upsert": lambda col: col.upsert(catalog(n=3).points()),
    "set payloads": lambda col: col.set_payloads({"sku-1": {"tag": "x"}}),
    "delete": lambda col: col.delete(["sku-1"]),
    "payload index": lambda col: col.create_payload_index("color", "keyword"),
    "optimize": lambda col: col.optimize(),
}


@pytest.mark.parametrize("write", WRITES)
def test_close_flushes_only_what_was_written(tmp_path, write):
    store = EmbeddedStore(tmp_path)
    store.create("c", spec()).upsert(catalog(n=10).points())
    store.close()
    col = EmbeddedStore(tmp_path).open("c")
    flushes = _spy_flushes(col)
    col.retrieve(["sku-1", 0])
    col.count()
    col.close()
    assert flushes == []  # a read-only session (a re-run that changed nothing) syncs nothing
    col = EmbeddedStore(tmp_path).open("c")
    flushes = _spy_flushes(col)
    WRITES[write](col)
    col.close()
    assert flushes == [True]


def test_same_store_shares_one_handle_and_another_store_is_locked_out(tmp_path):
    store = EmbeddedStore(tmp_path)
    col = store.create("shop", spec())
    assert store.open("shop") is col
    with pytest.raises(StoreLockedError, match="already open"):
        EmbeddedStore(tmp_path).open("shop")
    col.close()
    with pytest.raises(StoreError, match="closed"):
        col.count()
    other = EmbeddedStore(tmp_path)
    assert other.open("shop").count() == 0
    other.close()


def test_layout_record_and_unfinished_creations(tmp_path):
    store = EmbeddedStore(tmp_path)
    store.create("shop", spec()).close()
    record = json.loads((tmp_path / "shop" / "collection.json").read_text())
    assert record["model_id"] == spec().model_id and record["dim"] == spec().dim
    assert (tmp_path / "shop" / "shard").is_dir()
    (tmp_path / "half").mkdir()  # a creation that crashed before writing its record
    (tmp_path / "half" / "shard").mkdir()
    assert store.list_collections() == ["shop"] and not store.exists("half")
    assert store.create("half", spec()).count() == 0  # the leftovers are cleared
    (tmp_path / "shop" / "collection.json").write_text("{}")
    with pytest.raises(StoreError, match="no FashionCLIP record"):
        EmbeddedStore(tmp_path).open("shop")
    store.close()


def test_a_folder_it_cannot_write_is_one_error_naming_it_and_qdrant_path(tmp_path):
    # A read-only app folder (as a Space's can be) crashed the app's start with a traceback.
    # Root ignores permissions, so two other refusals of the OS stand in for read-only.
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreError, match=r"cannot write in .*file/q.*set QDRANT_PATH"):
        EmbeddedStore(tmp_path / "file" / "q").create("shop", spec())  # mkdir refused
    store = EmbeddedStore(tmp_path / "store")
    store.create("shop", spec()).close()
    (tmp_path / "store" / "shop" / ".lock").unlink()
    (tmp_path / "store" / "shop" / ".lock").mkdir()  # its lock file cannot be opened
    with pytest.raises(StoreError, match=r"cannot write in .*shop.*set QDRANT_PATH"):
        store.open("shop")


def test_point_ids_are_stable_uuid5_of_the_text_id():
    assert point_id("sku-1") == point_id("sku-1") != point_id("sku-2")
    assert point_id(7) == point_id("7")
    assert uuid.UUID(point_id("x")).version == 5
    # Pinned: a changed namespace would orphan every point of every existing collection.
    assert point_id("sku-1") == "26a898bc-5f82-5a7e-9c87-e97fc0ae897c"
    with pytest.raises(StoreError):
        point_id(1.5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "catalog_id",
    ["sku-1", "", " padded ", "ünïcödé-ß-衣服", "emoji-👗", "a" * 1000, 0, -1, 2**63 - 1, -(2**63)],
)
def test_point_ids_are_exactly_uuid5(catalog_id):
    # point_id writes uuid.uuid5 out by hand (for speed); it must never give another id
    assert point_id(catalog_id) == str(uuid.uuid5(NAMESPACE, str(catalog_id)))


def test_payload_indexes_are_inferred_from_catalog_fields():
    rows = [
        {"id": 1, "image": "a.jpg", "caption": "a red dress", "color": "red", "size": 3,
         "price": 9.5, "sale": True, "tags": ["summer"], "notes": "x" * 200, "mixed": 1},
        {"id": 2, "image": "b.jpg", "caption": "shoes", "color": "blue", "size": 4,
         "price": 10, "sale": False, "tags": ["winter", "wool"], "notes": None, "mixed": "one",
         "Variant Price": 3, "colour.name": "red", 'say "hi"': "x"},
    ]  # fmt: skip
    assert infer_payload_indexes(rows) == {
        "color": "keyword",
        "size": "float",  # whole numbers too: an integer index drops a later 3.5
        "price": "float",
        "sale": "bool",
        "tags": "keyword",
        "Variant Price": "float",  # spreadsheet-style names are indexed, quoted for Qdrant
        "colour.name": "keyword",
    }  # 'say "hi"': Qdrant cannot address a name holding a double quote


def test_open_store_follows_settings(tmp_path):
    embedded = open_store(Settings(qdrant_path=tmp_path / "q"))
    assert embedded.kind == "embedded" and embedded.location == str(tmp_path / "q")
    remote = open_store(Settings(qdrant_url="http://127.0.0.1:9", qdrant_api_key=None))
    assert remote.kind == "remote" and remote.location == "http://127.0.0.1:9"
    with pytest.raises(StoreError, match=r"Qdrant at http://127\.0\.0\.1:9"):
        remote.list_collections()  # nothing listens there: one clear error
    remote.close()


def test_importing_the_store_loads_no_engine():
    code = (
        "import sys, fashion_clip.store, fashion_clip.store.embedded, fashion_clip.store.snapshot;"
        "print(sorted(m for m in ('qdrant_edge', 'qdrant_client', 'boto3') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert out.stdout.strip() == "[]"


def test_filtered_searches_look_wider_unless_told() -> None:
    from fashion_clip.store.base import FILTERED_EF, Filter, search_breadth

    some = Filter(equals={"category": "dress"})
    assert search_breadth(None, some, exact=False) == FILTERED_EF
    assert search_breadth(64, some, exact=False) == 64  # the caller's choice wins
    assert search_breadth(None, None, exact=False) is None  # the engine's default
    assert search_breadth(None, Filter(), exact=False) is None  # an empty filter is none
    assert search_breadth(None, some, exact=True) is None  # exact search has no breadth

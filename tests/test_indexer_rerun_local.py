"""A local re-run settles the rows whose file's stamp is unchanged before the workers (no task,
no read), and sends the others to them: mixed in one batch, it still equals a clean run.
A JSON Lines catalog is counted for the progress bar without parsing it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from fashion_clip.errors import CatalogError
from tests.image_corpus import jpeg_bytes, photo
from tests.indexer_fixtures import (
    assert_same_points,
    points,
    product_rows,
    run_indexer,
    use_store,
    write_catalog,
    write_photos,
)

N = 10


@pytest.fixture
def shop(tmp_path, monkeypatch, tiny_model_dir):
    use_store(monkeypatch, tmp_path / "qdrant", tiny_model_dir)
    write_photos(tmp_path / "images", N)
    write_catalog(tmp_path / "c.jsonl", product_rows(N))
    return tmp_path


def _args(shop: Path) -> tuple:
    # Batches of 4: each mixes rows settled before the workers with rows sent to them.
    return ("index", shop / "c.jsonl", "--images", shop / "images", "--collection", "shop",
            "--batch-size", "4", "--workers", "2")  # fmt: skip


def _counting_worker_rows(monkeypatch) -> list[str]:
    import fashion_clip.ingest.workers as workers

    handed: list[str] = []
    prepare = workers._prepare_row
    monkeypatch.setattr(
        workers,
        "_prepare_row",
        lambda row, *a, **kw: handed.append(row.id) or prepare(row, *a, **kw),
    )
    return handed


def test_an_unchanged_local_rerun_hands_no_row_to_a_worker(shop, capsys, monkeypatch):
    handed = _counting_worker_rows(monkeypatch)
    assert run_indexer(capsys, *_args(shop))[0] == 0
    assert len(handed) == N

    handed.clear()
    code, out, err = run_indexer(capsys, *_args(shop))
    assert code == 0 and f"indexed 0, unchanged {N}" in out, err
    assert handed == []

    os.utime(shop / "images" / "img-4.jpg")  # a new stamp: a worker reads and hashes it
    code, out, err = run_indexer(capsys, *_args(shop))
    assert code == 0 and f"unchanged {N - 1}" in out, err
    assert handed == ["sku-4"]


@pytest.mark.parametrize("decode", ["threads", "processes"])
def test_a_mixed_local_rerun_equals_a_clean_run(shop, capsys, monkeypatch, decode):
    args = (*_args(shop), "--decode", decode)
    assert run_indexer(capsys, *args)[0] == 0
    images = shop / "images"
    for i, seed in ((3, 300), (6, 600)):  # new pictures, the same size class and names
        (images / f"img-{i}.jpg").write_bytes(jpeg_bytes(photo(64, 48, seed=seed)))
    os.utime(images / "img-5.jpg")  # touched, the same bytes
    rows = product_rows(N)
    rows[1]["caption"] = "changed: " + rows[1]["caption"]  # file unchanged, caption not
    rows[8]["price"] = 9.5  # file unchanged, payload not: its vectors are kept
    write_catalog(shop / "c.jsonl", rows)

    code, out, err = run_indexer(capsys, *args)
    assert code == 0 and "indexed 5, unchanged 5" in out, (out, err)
    rerun = points(shop / "qdrant", "shop")

    monkeypatch.setenv("QDRANT_PATH", str(shop / "clean"))
    assert run_indexer(capsys, *args)[0] == 0
    assert_same_points(rerun, points(shop / "clean", "shop"))


def test_a_missing_file_among_settled_rows_is_reported_at_its_row(shop, capsys):
    assert run_indexer(capsys, *_args(shop))[0] == 0
    (shop / "images" / "img-6.jpg").unlink()
    code, out, err = run_indexer(capsys, *_args(shop))
    assert code == 1 and "unchanged 9, skipped 1" in out, (out, err)
    assert "row 7" in out + err and "img-6.jpg" in out + err


def _jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_a_jsonl_catalog_is_counted_as_the_run_reads_it(tmp_path):
    from fashion_clip.ingest.job import open_catalog

    rows = [json.dumps({"id": f"s{i}", "image": f"{i}.jpg"}) for i in range(1500)]
    rows[10:10] = ["", "   ", "{not json"]  # blank lines are no record; a broken one is
    with open_catalog(str(_jsonl(tmp_path / "c.jsonl", rows))) as catalog:
        assert catalog.total == 1501 == sum(1 for _ in catalog.rows())
        assert len(catalog.sample) == 1000  # only the sample is parsed up front


def test_a_jsonl_catalog_not_utf8_past_the_sample_is_refused_before_the_run(tmp_path):
    from fashion_clip.ingest.job import open_catalog

    path = _jsonl(
        tmp_path / "c.jsonl", [json.dumps({"id": i, "image": "a.jpg"}) for i in range(1500)]
    )
    with open(path, "ab") as f:
        f.write(b'{"id": "x", "image": "caf\xe9.jpg"}\n')
    refused = pytest.raises(CatalogError, match=r"not UTF-8 text \(line 1501, byte 0xe9")
    with refused, open_catalog(str(path)):
        pass


def test_a_jsonl_catalog_is_parsed_once_and_streams_as_read_anew(tmp_path, monkeypatch):
    import fashion_clip.ingest.catalog as catalog_module
    from fashion_clip.ingest.job import open_catalog

    rows = [json.dumps({"id": f"s{i}", "image": f"{i}.jpg"}) for i in range(1500)]
    rows[1200] = json.dumps({"id": "s5", "image": "again.jpg"})  # past the sample: a repeat
    path = _jsonl(tmp_path / "c.jsonl", rows)
    fresh = list(catalog_module.read_rows(path, "jsonl", name=str(path)))
    parsed = []
    check = catalog_module.check_record
    monkeypatch.setattr(
        catalog_module, "check_record", lambda n, record: parsed.append(n) or check(n, record)
    )
    with open_catalog(str(path)) as catalog:
        streamed = list(catalog.rows())
        assert sorted(parsed) == list(range(1, 1501))  # each record once, pre-scan included
        assert streamed == fresh and list(catalog.rows()) == fresh  # a second stream reads anew
    assert "duplicate id 's5' (first at row 6)" in streamed[1200].reason


def _decided_by_fingerprint(row, stored: dict, spec) -> bool:
    # The reference: the row is unchanged when its fingerprint is the stored one.
    from fashion_clip.ingest.state import FINGERPRINT_FIELD, SOURCE_FIELD, fingerprint, vectors_key

    source = stored[SOURCE_FIELD]
    key = vectors_key(spec.tag, stored["_image_sha256"], row.caption)
    return fingerprint(key, {**row.payload, SOURCE_FIELD: source}) == stored[FINGERPRINT_FIELD]


BASE = {"id": "sku", "image": "a.jpg", "caption": "a red dress", "price": 12.0, "in_stock": True}


@pytest.mark.parametrize(
    ("written", "change", "tagged", "same"),
    [
        ({}, {}, {}, True),
        ({}, {"price": 12.5}, {}, False),
        ({}, {"price": 12}, {}, False),  # 12.0 stored: the fingerprint's JSON tells them apart
        ({}, {"in_stock": 1}, {}, False),  # True stored
        ({}, {"new": "field"}, {}, False),
        ({}, {"caption": "another caption"}, {}, False),
        ({"sizes": ["s", "m"]}, {}, {}, True),  # a list: settled by the fingerprint
        ({"sizes": ["s", "m"]}, {"sizes": ["s"]}, {}, False),
        ({}, {}, {"kind": "dress", "kind_confidence": 0.9}, True),  # tagged since: unchanged
    ],
)
def test_a_settled_row_is_decided_as_its_fingerprint_would_decide_it(
    tmp_path, monkeypatch, written, change, tagged, same
):
    """Rows whose stored fields equal the catalog's, by value and type, are settled without
    hashing; every other case goes to the fingerprint, and both agree."""
    from fashion_clip.ingest import workers
    from fashion_clip.ingest.catalog import check_record
    from fashion_clip.ingest.sources import ImageRoot
    from fashion_clip.ingest.stamps import file_stamp
    from fashion_clip.ingest.state import STAMP_FIELD, ModelTag

    (tmp_path / "a.jpg").write_bytes(jpeg_bytes(photo(32, 32)))
    spec = workers.PrepareSpec(ImageRoot(str(tmp_path)), ModelTag("m", None), None, 1, 5.0, 0)
    source = str(tmp_path / "a.jpg")
    stored = workers._payload(check_record(1, {**BASE, **written}), source, "ab" * 32, spec.tag)
    stored |= {STAMP_FIELD: file_stamp(source), "id": "sku", **tagged}  # as the store holds it
    row = check_record(1, {**BASE, **written, **change})

    decided = workers.unchanged_by_file_stamp(row, workers.stored_state(stored), spec)
    assert decided is same
    assert decided == _decided_by_fingerprint(row, stored, spec)
    if same and not written and not tagged:  # the usual unchanged row: no hashing at all
        monkeypatch.setattr(workers, "fingerprint", None)
        assert workers.unchanged_by_file_stamp(row, workers.stored_state(stored), spec)

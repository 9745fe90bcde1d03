"""`indexer index --shard K/N`: N indexers split one catalog and fill one collection."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from fashion_clip.ingest.shards import Shard, parse_shard, shard_of
from tests.indexer_fixtures import (
    assert_same_points,
    points,
    product_rows,
    run_indexer,
    use_store,
    write_catalog,
    write_photos,
)

N = 12
SHARDS = 3


@pytest.fixture
def shop(tmp_path, monkeypatch, tiny_model_dir):
    use_store(monkeypatch, tmp_path / "qdrant", tiny_model_dir)
    write_photos(tmp_path / "images", N)
    return tmp_path


def _counts(out: str, name: str) -> dict[str, int]:
    """The summary line's counts for collection (and shard) `name`."""
    line = next(line for line in out.splitlines() if line.startswith(f"{name}: "))
    found = re.findall(r"(indexed|unchanged|skipped|deleted) (\d+)", line)
    return {key: int(value) for key, value in found}


def _index(capsys, shop, catalog, collection, *extra):
    args = ("index", catalog, "--images", shop / "images", "--collection", collection, *extra)
    code, out, err = run_indexer(capsys, *args)
    assert code == 0, err
    return out


def test_shards_one_after_another_equal_a_whole_run(shop, capsys):
    catalog = write_catalog(shop / "c.jsonl", product_rows(N))
    _index(capsys, shop, catalog, "whole")
    indexed = []
    for k in range(1, SHARDS + 1):
        out = _index(capsys, shop, catalog, "split", "--shard", f"{k}/{SHARDS}")
        counts = _counts(out, f"split shard {k}/{SHARDS}")  # each shard's summary is its own
        assert counts["indexed"] > 0 and counts["unchanged"] == 0, out
        indexed.append(counts["indexed"])
    assert sum(indexed) == N
    assert_same_points(points(shop / "qdrant", "split"), points(shop / "qdrant", "whole"))


def test_a_shard_rerun_changes_nothing(shop, capsys):
    catalog = write_catalog(shop / "c.jsonl", product_rows(N))
    first = _counts(_index(capsys, shop, catalog, "s", "--shard", "2/3"), "s shard 2/3")
    before = points(shop / "qdrant", "s")
    assert len(before) == first["indexed"] > 0
    assert {shard_of(key, 3) for key in before} == {2}  # its rows only
    again = _counts(_index(capsys, shop, catalog, "s", "--shard", "2/3"), "s shard 2/3")
    assert again == {"indexed": 0, "unchanged": first["indexed"], "skipped": 0, "deleted": 0}
    after = points(shop / "qdrant", "s")
    assert_same_points(after, before)
    for key, point in before.items():  # not even rewritten: the same vectors, bit for bit
        assert after[key].vectors["image"].tolist() == point.vectors["image"].tolist()


def test_prune_with_a_shard_prunes_only_that_shards_ids(shop, capsys):
    rows = product_rows(N)
    catalog = write_catalog(shop / "c.jsonl", rows)
    for k in range(1, SHARDS + 1):
        _index(capsys, shop, catalog, "p", "--shard", f"{k}/{SHARDS}")
    by_shard = {k: [r["id"] for r in rows if shard_of(r["id"], SHARDS) == k] for k in (1, 2)}
    gone = {by_shard[1][0], by_shard[2][0]}  # one product of shard 1 and one of shard 2 leave
    write_catalog(catalog, [r for r in rows if r["id"] not in gone])
    out = _index(capsys, shop, catalog, "p", "--shard", f"1/{SHARDS}", "--prune")
    assert _counts(out, f"p shard 1/{SHARDS}")["deleted"] == 1
    left = points(shop / "qdrant", "p")
    assert by_shard[1][0] not in left  # its own: pruned
    assert by_shard[2][0] in left  # shard 2's: untouched until shard 2 runs with --prune
    assert len(left) == N - 1


def test_a_row_without_an_id_is_reported_by_shard_1_alone(shop, capsys):
    rows = product_rows(N)
    rows[4].pop("id")
    catalog = write_catalog(shop / "c.jsonl", rows)
    args = ("index", catalog, "--images", shop / "images", "--collection", "m")
    reported = []
    for k in range(1, SHARDS + 1):
        code, _, err = run_indexer(capsys, *args, "--shard", f"{k}/{SHARDS}")
        reported.append(code == 1 and "row 5" in err and "missing id" in err)
    assert reported == [True, False, False]


@pytest.mark.parametrize(
    ("shard", "message"),
    [
        ("0/3", "K must be from 1 to N: shards are numbered 1/3 to 3/3, not 0/3"),
        ("4/3", "shards are numbered 1/3 to 3/3, not 4/3"),
        ("1/0", "N must be from 1 to 65536, not 0"),
        ("2", "'2' is not K/N: two whole numbers"),
        ("a/b", "'a/b' is not K/N"),
    ],
)
def test_a_wrong_shard_is_a_usage_error(shop, capsys, shard, message):
    catalog = write_catalog(shop / "c.jsonl", product_rows(N))
    code, _, err = run_indexer(capsys, "index", catalog, "--collection", "w", "--shard", shard)
    assert code == 2
    assert "argument --shard: " in err and message in err
    assert not (shop / "qdrant").exists()  # refused before anything was opened


def test_the_shard_hash_is_stable_and_even():
    # Fixed forever, as the point ids are: a fleet's shards must agree across versions.
    assert [shard_of(f"sku-{i}", 4) for i in range(8)] == [3, 3, 1, 2, 1, 3, 1, 2]
    assert shard_of(7, 5) == shard_of("7", 5)  # one point, one shard
    spread = Counter(shard_of(f"id-{i}", 4) for i in range(4000))
    assert sorted(spread) == [1, 2, 3, 4] and min(spread.values()) > 900
    assert parse_shard(" 3/4 ") == Shard(3, 4) and str(Shard(3, 4)) == "3/4"
    assert all(Shard(k, 4).holds("sku-1") == (k == shard_of("sku-1", 4)) for k in range(1, 5))

"""`--prune` never deletes a product still in the catalog: rows that could not be read to
their ids, and catalogs cut short, make the run refuse to prune (exit 1, nothing deleted),
while every readable row is still indexed."""

from __future__ import annotations

import json

import pytest

from tests.indexer_fixtures import (
    points,
    product_rows,
    run_indexer,
    use_store,
    write_catalog,
    write_photos,
)

N = 6


@pytest.fixture
def shop(tmp_path, monkeypatch, tiny_model_dir):
    use_store(monkeypatch, tmp_path / "qdrant", tiny_model_dir)
    write_photos(tmp_path / "images", N + 1)
    return tmp_path


def _index(capsys, shop, catalog, *extra):
    args = ("index", catalog, "--images", shop / "images", "--collection", "shop", "--prune")
    return run_indexer(capsys, *args, *extra)


def _first_run(capsys, shop, catalog, text: str) -> None:
    catalog.write_text(text, encoding="utf-8")
    code, _, err = _index(capsys, shop, catalog)
    assert code == 0, err
    assert len(points(shop / "qdrant", "shop")) == N


def _jsonl(rows) -> list[str]:
    return [json.dumps(row) + "\n" for row in rows]


def _csv(rows) -> list[str]:
    return ["id,image,caption\n"] + [f"{r['id']},{r['image']},{r['caption']}\n" for r in rows]


def _assert_refused_naming(code, out, err, rows: str) -> None:
    assert code == 1, err
    assert "deleted 0" in out
    assert "--prune refused" in err and f"row(s) {rows} could not be read" in err
    assert "Traceback" not in err


def test_a_malformed_jsonl_line_refuses_the_prune_and_the_rest_is_indexed(shop, capsys):
    rows = product_rows(N + 1)
    catalog = shop / "c.jsonl"
    _first_run(capsys, shop, catalog, "".join(_jsonl(rows[:N])))
    lines = _jsonl(rows)  # a new product, row 7, arrives with the broken row
    lines[2] = lines[2][:25] + "\n"  # row 3's JSON broken: no id can be read from it
    catalog.write_text("".join(lines), encoding="utf-8")
    code, out, err = _index(capsys, shop, catalog)
    _assert_refused_naming(code, out, err, "3")
    assert "indexed 1, unchanged 5, skipped 1" in out and "row 3: skipped: malformed JSON" in err
    assert sorted(points(shop / "qdrant", "shop")) == sorted(r["id"] for r in rows)


@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_a_record_without_an_id_past_the_first_refuses_the_prune(shop, capsys, suffix):
    """A catalog whose first records have ids is read; one without, later, is a bad row
    that may stand for a product still in the catalog."""
    rows = product_rows(N + 1)
    catalog = shop / f"c{suffix}"
    write_catalog(catalog, rows[:N])
    assert _index(capsys, shop, catalog)[0] == 0
    del rows[3]["id"]
    write_catalog(catalog, rows)
    code, out, err = _index(capsys, shop, catalog)
    assert code == 1 and f"indexed 1, unchanged {N - 1}, skipped 1" in out
    assert "row 4: skipped: missing id" in err
    assert "--prune refused" in err and "deleted 0" in out
    assert len(points(shop / "qdrant", "shop")) == N + 1


def test_a_csv_quote_left_open_refuses_the_prune(shop, capsys):
    rows = product_rows(N)
    catalog = shop / "c.csv"
    _first_run(capsys, shop, catalog, "".join(_csv(rows)))
    lines = _csv(rows)
    lines[3] = lines[3].replace(",a ", ',"a ')  # row 3's caption opens a quote never closed
    catalog.write_text("".join(lines), encoding="utf-8")
    code, out, err = _index(capsys, shop, catalog)
    _assert_refused_naming(code, out, err, "3")  # rows 4 to 6 were swallowed by the quote
    assert "malformed CSV" in err
    assert len(points(shop / "qdrant", "shop")) == N


@pytest.mark.parametrize(
    "broken",
    [["sku-2", "img-2.jpg"], "sku-2", {"ID": "sku-2", "image": "img-2.jpg"}],
    ids=["a list", "a string", "id misspelt"],
)
def test_a_broken_element_of_a_json_list_refuses_the_prune(shop, capsys, broken):
    rows = product_rows(N)
    catalog = shop / "c.json"
    _first_run(capsys, shop, catalog, json.dumps(rows))
    rows[2] = broken
    catalog.write_text(json.dumps(rows), encoding="utf-8")
    code, out, err = _index(capsys, shop, catalog)
    _assert_refused_naming(code, out, err, "3")
    assert "unchanged 5, skipped 1" in out
    assert len(points(shop / "qdrant", "shop")) == N


def test_a_catalog_cut_mid_line_refuses_the_prune(shop, capsys):
    catalog = shop / "c.jsonl"
    text = "".join(_jsonl(product_rows(N)))
    _first_run(capsys, shop, catalog, text)
    half = text[: len(text) // 2]  # an interrupted upload
    catalog.write_text(half, encoding="utf-8")
    cut_row = half.count("\n") + 1
    assert not half.endswith("\n")
    code, out, err = _index(capsys, shop, catalog)
    _assert_refused_naming(code, out, err, str(cut_row))
    assert len(points(shop / "qdrant", "shop")) == N


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_a_catalog_cut_between_rows_refuses_a_prune_of_half_the_collection(shop, capsys, suffix):
    catalog = shop / f"c{suffix}"
    lines = (_jsonl if suffix == ".jsonl" else _csv)(product_rows(N))
    _first_run(capsys, shop, catalog, "".join(lines))
    catalog.write_text("".join(lines[: len(lines) - 3]), encoding="utf-8")  # 3 rows of 6 left
    code, out, err = _index(capsys, shop, catalog)
    assert code == 1 and "unchanged 3, skipped 0, deleted 0" in out, err
    assert "would delete 3 of the 6 points" in err and "(50%)" in err
    assert "--max-prune-fraction 0.2 allows" in err
    assert "run again with --max-prune-fraction 0.5" in err
    assert len(points(shop / "qdrant", "shop")) == N

    code, out, err = _index(capsys, shop, catalog, "--max-prune-fraction", "0.5")
    assert code == 0 and "deleted 3" in out, err
    assert len(points(shop / "qdrant", "shop")) == 3


def test_a_prune_within_the_share_deletes_and_a_bad_share_is_a_usage_error(shop, capsys):
    catalog = shop / "c.jsonl"
    lines = _jsonl(product_rows(N))
    _first_run(capsys, shop, catalog, "".join(lines))
    catalog.write_text("".join(lines[:5]), encoding="utf-8")  # 1 of 6 left: 17 %
    code, out, err = _index(capsys, shop, catalog)
    assert code == 0 and "deleted 1" in out, err
    for bad in ("1.5", "-0.1", "nan", "half"):
        code, _, err = _index(capsys, shop, catalog, "--max-prune-fraction", bad)
        assert code == 2 and "--max-prune-fraction" in err


@pytest.mark.parametrize("shard", ["1/2", "2/2"])
def test_every_shard_refuses_to_prune_when_a_row_was_not_read(shop, capsys, shard):
    """A row without a readable id is reported by shard 1 only, but its product may be in
    any shard: each shard's prune must refuse."""
    rows = product_rows(N)
    catalog = shop / "c.jsonl"
    catalog.write_text("".join(_jsonl(rows)), encoding="utf-8")
    for part in ("1/2", "2/2"):
        assert _index(capsys, shop, catalog, "--shard", part)[0] == 0
    lines = _jsonl(rows)
    lines[2] = lines[2][:25] + "\n"
    catalog.write_text("".join(lines), encoding="utf-8")
    code, out, err = _index(capsys, shop, catalog, "--shard", shard)
    _assert_refused_naming(code, out, err, "3")
    assert len(points(shop / "qdrant", "shop")) == N

"""`indexer index` on a local folder: formats, payload, incremental re-runs, prune, recreate."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fashion_clip.ingest.state import FINGERPRINT_FIELD, SOURCE_FIELD, VECTORS_FIELD
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

N = 12


@pytest.fixture
def shop(tmp_path, monkeypatch, tiny_model_dir):
    """A folder of N photos, a store and the tiny model in the settings."""
    use_store(monkeypatch, tmp_path / "qdrant", tiny_model_dir)
    write_photos(tmp_path / "images", N)
    return tmp_path


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".json"])
def test_each_format_indexes_every_row(shop, capsys, suffix):
    rows = product_rows(N)
    rows[3].pop("caption")
    catalog = write_catalog(shop / f"products{suffix}", rows)
    code, out, err = run_indexer(capsys, "index", catalog, "--images", shop / "images")
    assert code == 0, err
    assert f"products: indexed {N}, unchanged 0, skipped 0, deleted 0" in out
    stored = points(shop / "qdrant", "products")  # default collection: the file's name
    assert sorted(stored) == sorted(r["id"] for r in rows)
    point = stored["sku-5"]
    assert point.payload["price"] == 14.5 and point.payload["stock"] == 15
    assert point.payload["caption"] == rows[5]["caption"] and point.payload["color"] == "blue"
    assert point.payload[SOURCE_FIELD] == str((shop / "images" / "img-5.jpg").resolve())
    assert point.payload[FINGERPRINT_FIELD] and point.payload[VECTORS_FIELD]
    assert set(point.vectors) == {"image", "text"}
    assert set(stored["sku-3"].vectors) == {"image"}  # no caption, no text vector
    for name in ("image", "text"):
        assert point.vectors[name].shape == (16,)
        assert np.linalg.norm(point.vectors[name]) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("decode", ["threads", "processes"])  # the decisions made in either
def test_rerun_skips_unchanged_and_reembeds_what_changed(shop, capsys, decode):
    rows = product_rows(N)
    catalog = write_catalog(shop / "c.jsonl", rows)
    args = ("index", catalog, "--images", shop / "images", "--collection", "shop")
    args += ("--decode", decode, "--batch-size", "5")  # batches of 5 over 2 processes
    assert run_indexer(capsys, *args)[0] == 0
    before = points(shop / "qdrant", "shop")

    code, out, _ = run_indexer(capsys, *args)
    assert code == 0 and "indexed 0, unchanged 12" in out
    assert points(shop / "qdrant", "shop")["sku-0"].payload == before["sku-0"].payload

    rows[1]["caption"] = "a completely new caption"  # text changes: re-embed
    rows[2]["price"] = 99.0  # payload only: vectors are kept
    (shop / "images" / "img-4.jpg").write_bytes(jpeg_bytes(photo(64, 48, seed=1000)))
    write_catalog(catalog, rows)
    code, out, _ = run_indexer(capsys, *args)
    assert code == 0 and "indexed 3, unchanged 9, skipped 0, deleted 0" in out
    after = points(shop / "qdrant", "shop")
    assert not np.allclose(after["sku-1"].vectors["text"], before["sku-1"].vectors["text"])
    assert after["sku-2"].payload["price"] == 99.0
    np.testing.assert_array_equal(after["sku-2"].vectors["image"], before["sku-2"].vectors["image"])
    assert not np.allclose(after["sku-4"].vectors["image"], before["sku-4"].vectors["image"])
    # Same caption, re-encoded in another batch: equal up to float rounding.
    np.testing.assert_allclose(
        after["sku-4"].vectors["text"], before["sku-4"].vectors["text"], atol=1e-5
    )
    for key in set(after) - {"sku-1", "sku-2", "sku-4"}:
        assert after[key].payload == before[key].payload


def test_prune_deletes_points_that_left_the_catalog(shop, capsys):
    rows = product_rows(N)
    catalog = write_catalog(shop / "c.csv", rows)
    args = ("index", catalog, "--images", shop / "images", "--collection", "shop")
    assert run_indexer(capsys, *args)[0] == 0
    write_catalog(catalog, rows[:9])
    code, out, _ = run_indexer(capsys, *args)  # without --prune nothing is deleted
    assert code == 0 and "unchanged 9, skipped 0, deleted 0" in out
    assert len(points(shop / "qdrant", "shop")) == N
    code, out, _ = run_indexer(capsys, *args, "--prune", "--max-prune-fraction", "0.25")
    assert code == 0 and "deleted 3" in out
    assert sorted(points(shop / "qdrant", "shop")) == sorted(r["id"] for r in rows[:9])


def test_prune_keeps_rows_that_are_only_skipped_this_time(shop, capsys):
    rows = product_rows(4)
    catalog = write_catalog(shop / "c.jsonl", rows)
    args = ("index", catalog, "--images", shop / "images", "--collection", "shop", "--prune")
    assert run_indexer(capsys, *args)[0] == 0
    (shop / "images" / "img-2.jpg").write_bytes(b"")  # broken now: skipped, but still listed
    code, out, err = run_indexer(capsys, *args)
    assert code == 1 and "skipped 1, deleted 0" in out and "empty" in err
    assert len(points(shop / "qdrant", "shop")) == 4
    write_catalog(catalog, [])
    code, _, err = run_indexer(capsys, *args)
    assert code == 2 and "refusing to --prune" in err
    assert len(points(shop / "qdrant", "shop")) == 4


def test_recreate_embeds_everything_again(shop, capsys):
    catalog = write_catalog(shop / "c.jsonl", product_rows(N))
    args = ("index", catalog, "--images", shop / "images", "--collection", "shop")
    assert run_indexer(capsys, *args)[0] == 0
    code, out, err = run_indexer(capsys, *args, "--recreate", "--batch-size", "5", "--progress")
    assert code == 0 and f"indexed {N}, unchanged 0" in out
    assert f"{N}/{N}" in err and "row/s" in err  # the bar: count of total, rate (and ETA)
    code, out, err = run_indexer(capsys, *args, "--no-progress")
    assert code == 0 and "row/s" not in err


def test_another_model_is_refused_with_both_names(shop, capsys, tmp_path):
    from tests.conftest import build_tiny_clip

    other = build_tiny_clip(tmp_path / "other-model", seed=1)
    catalog = write_catalog(shop / "c.jsonl", product_rows(3))
    args = ("index", catalog, "--images", shop / "images", "--collection", "shop")
    assert run_indexer(capsys, *args)[0] == 0
    code, out, err = run_indexer(capsys, *args, "--model", other)
    assert code == 2 and out == ""
    assert "other-model" in err and "tiny-clip" in err and "--recreate" in err
    assert "Traceback" not in err
    assert [line for line in err.splitlines() if line.startswith("indexer:")] == [
        err.strip().splitlines()[-1]
    ]
    assert run_indexer(capsys, *args, "--model", other, "--recreate")[0] == 0


def test_info_evaluate_and_snapshot_commands(shop, capsys, monkeypatch):
    catalog = write_catalog(shop / "c.jsonl", product_rows(N))
    args = ("index", catalog, "--images", shop / "images", "--collection", "shop")
    assert run_indexer(capsys, *args)[0] == 0

    code, out, _ = run_indexer(capsys, "info", "--collection", "shop", "--json")
    info = json.loads(out)
    assert code == 0 and info["count"] == N and info["dimension"] == 16
    assert info["model"].endswith("tiny-clip0") or "tiny-clip" in info["model"]
    assert info["catalog"] == str(catalog) and info["store"].startswith("embedded")
    code, out, _ = run_indexer(capsys, "info")
    assert code == 0 and "shop" in out and "count" in out

    code, out, err = run_indexer(
        capsys, "evaluate", catalog, "--collection", "shop", "--label-column", "category", "--json"
    )
    figures = json.loads(out)
    assert code == 0, err
    assert figures["queries"] == N and figures["labelled"] == N and figures["labels"] == 3
    for key in (
        "recall_at_1", "recall_at_5", "recall_at_10", "mrr", "category_precision_at_1",
        "category_precision_at_10", "category_mrr", "zero_shot_accuracy", "weighted_f1",
    ):  # fmt: skip
        assert 0.0 <= figures[key] <= 1.0
    assert figures["recall_at_1"] <= figures["recall_at_5"] <= figures["recall_at_10"]
    code, out, _ = run_indexer(
        capsys, "evaluate", catalog, "--collection", "shop", "--label-column", "category"
    )
    assert code == 0 and "recall_at_10" in out and "weighted_f1" in out
    assert "category_precision_at_10" in out

    snapshot = shop / "snap" / "shop.tar"
    code, out, _ = run_indexer(capsys, "snapshot", "push", snapshot, "--collection", "shop")
    assert code == 0 and snapshot.is_file()
    code, out, err = run_indexer(capsys, "snapshot", "pull", snapshot, "--collection", "copy")
    assert code == 0 and f"({N} points" in out, err
    code, _, err = run_indexer(capsys, "snapshot", "pull", snapshot, "--collection", "copy")
    assert code == 2 and "already exists" in err
    assert (
        run_indexer(capsys, "snapshot", "pull", snapshot, "--collection", "copy", "--recreate")[0]
        == 0
    )
    assert len(points(shop / "qdrant", "copy")) == N


def test_spreadsheet_column_names_and_prices_that_turn_fractional_can_be_filtered(shop, capsys):
    from fashion_clip.store import Filter, Range
    from fashion_clip.store.embedded import EmbeddedStore

    rows = [
        {"id": f"sku-{i}", "image": f"img-{i}.jpg", "Variant Price": 10 * (i + 1)} for i in range(4)
    ]  # whole prices only, as a first export often has
    catalog = write_catalog(shop / "c.csv", rows)
    args = ("index", catalog, "--images", shop / "images", "--collection", "shop")
    code, _, err = run_indexer(capsys, *args)
    assert code == 0, err
    with EmbeddedStore(shop / "qdrant") as store, store.open("shop") as collection:
        # What the version before this one chose for whole numbers, to see it widened below.
        collection.create_payload_index("Variant Price", "integer")

    rows[0]["Variant Price"] = 9.99
    rows.append({"id": "sku-4", "image": "img-4.jpg", "Variant Price": 5.5, "season": "summer"})
    write_catalog(catalog, rows)
    code, _, err = run_indexer(capsys, *args)
    assert code == 0, err
    with EmbeddedStore(shop / "qdrant") as store, store.open("shop") as collection:
        assert collection.info().payload_indexes == {"Variant Price": "float", "season": "keyword"}
        cheap = Filter(ranges={"Variant Price": Range(lt=15)})
        assert sorted(p.id for p in collection.iter_points(filter=cheap)) == ["sku-0", "sku-4"]
        assert collection.count(Filter(equals={"season": "summer"})) == 1


def test_a_model_folder_spelled_another_way_or_copied_reuses_the_vectors(
    shop, capsys, tiny_model_dir, monkeypatch
):
    import shutil

    catalog = write_catalog(shop / "c.csv", product_rows(4))
    models = shop / "models"
    shutil.copytree(tiny_model_dir, models / "m")
    monkeypatch.chdir(models)
    args = ("index", catalog, "--images", shop / "images", "--collection", "shop")
    code, out, err = run_indexer(capsys, *args, "--model", "./m")
    assert code == 0 and "indexed 4" in out, err
    (models / "sub").mkdir()
    monkeypatch.chdir(models / "sub")
    code, out, err = run_indexer(capsys, *args, "--model", "../m")
    assert code == 0 and "indexed 0, unchanged 4" in out, err
    moved = shutil.copytree(models / "m", shop / "elsewhere" / "m")  # a pulled snapshot's case
    code, out, err = run_indexer(capsys, *args, "--model", str(moved))
    assert code == 0 and "indexed 0, unchanged 4" in out, err


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".json"])
def test_fields_named_by_options_index_as_the_catalog_renamed_would(shop, capsys, suffix):
    rows = product_rows(N)
    export = [
        {"SKU": r["id"], "Picture": r["image"], "Title": r["caption"], "price": r["price"]}
        for r in rows
    ]
    named = ("--id-column", "SKU", "--image-column", "Picture", "--caption-column", "Title")
    catalog = write_catalog(shop / f"c{suffix}", export)
    args = ("index", catalog, "--images", shop / "images", "--collection")
    code, out, err = run_indexer(capsys, *args, "named", *named)
    assert code == 0 and f"indexed {N}, unchanged 0, skipped 0" in out, err

    # The catalog with the fields renamed, indexed without the options: the same points
    # (payloads, fingerprints and stamps), and a re-run of the first collection does nothing.
    renamed = [
        {"id": e["SKU"], "image": e["Picture"], "caption": e["Title"], "price": e["price"]}
        for e in export
    ]
    write_catalog(catalog, renamed)
    assert run_indexer(capsys, *args, "renamed")[0] == 0
    assert_same_points(points(shop / "qdrant", "named"), points(shop / "qdrant", "renamed"))
    code, out, err = run_indexer(capsys, *args, "named")
    assert code == 0 and f"indexed 0, unchanged {N}" in out, err

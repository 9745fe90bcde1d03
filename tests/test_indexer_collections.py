"""Which collections a run leaves behind, and which one the commands act on without
`--collection`: the one the app serves (`FASHION_CLIP_COLLECTION`, else the last indexed)."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fashion_clip.ingest.choice import choose_collection
from fashion_clip.settings import load_settings
from fashion_clip.store.embedded import EmbeddedStore
from tests.indexer_fixtures import (
    points,
    product_rows,
    run_indexer,
    use_store,
    write_catalog,
    write_photos,
)

N = 4
REMOVED = "removed collection 'new': this run created it and wrote nothing to it"


@pytest.fixture
def shop(tmp_path, monkeypatch, tiny_model_dir):
    """N photos under `images`, an `elsewhere` folder without them, a store, the tiny model."""
    use_store(monkeypatch, tmp_path / "qdrant", tiny_model_dir)
    write_photos(tmp_path / "images", N)
    (tmp_path / "elsewhere").mkdir()
    return tmp_path


def _collections(shop) -> list[str]:
    with EmbeddedStore(shop / "qdrant") as store:
        return store.list_collections()


def test_a_run_that_creates_a_collection_and_writes_nothing_removes_it(shop, capsys):
    catalog = write_catalog(shop / "c.jsonl", product_rows(N))
    wrong = ("index", catalog, "--images", shop / "elsewhere", "--collection", "new")
    code, out, err = run_indexer(capsys, *wrong)
    assert code == 1 and f"new: indexed 0, unchanged 0, skipped {N}" in out
    assert f"indexer: {REMOVED}" in err
    assert _collections(shop) == []
    # With the right folder the same command fills it; a re-run then writes nothing new,
    # and the collection, with its points, stays.
    right = ("index", catalog, "--images", shop / "images", "--collection", "new")
    assert run_indexer(capsys, *right)[0] == 0
    code, out, err = run_indexer(capsys, *right)
    assert code == 0 and f"indexed 0, unchanged {N}" in out and "removed" not in err
    assert len(points(shop / "qdrant", "new")) == N


def test_a_run_that_fails_half_way_removes_the_collection_it_left_empty(shop, capsys):
    # More rows than the pre-scan samples, all naming missing pictures, then a damaged row
    # group: the run has created the collection, skipped rows and written nothing.
    rows = [{"id": f"s{i}", "image": f"missing-{i}.jpg"} for i in range(1100)]
    catalog = shop / "c.parquet"
    pq.write_table(pa.Table.from_pylist(rows), catalog, row_group_size=1050, compression="NONE")
    second = pq.ParquetFile(catalog).metadata.row_group(1).column(0)
    start = second.dictionary_page_offset or second.data_page_offset
    data = bytearray(catalog.read_bytes())
    data[start : start + 64] = b"\xff" * 64
    catalog.write_bytes(bytes(data))
    code, out, err = run_indexer(capsys, "index", catalog, "--collection", "new")
    assert code == 2 and out == ""
    assert "the Parquet file is damaged after row" in err and REMOVED in err
    assert _collections(shop) == []


def test_a_collection_that_existed_or_is_filled_by_shards_is_kept_empty(shop, capsys):
    catalog = write_catalog(shop / "c.jsonl", product_rows(N))
    wrong = ("index", catalog, "--images", shop / "elsewhere", "--collection", "new")
    # Shards fill one collection together: another may write to it at any moment.
    code, _, err = run_indexer(capsys, *wrong, "--shard", "1/1")
    assert code == 1 and "removed" not in err
    assert _collections(shop) == ["new"]
    # Now it existed before the run: kept, emptied by --recreate or not.
    for extra in ((), ("--recreate",)):
        code, _, err = run_indexer(capsys, *wrong, *extra)
        assert code == 1 and "removed" not in err
        assert _collections(shop) == ["new"]
    assert points(shop / "qdrant", "new") == {}


def _index_two_catalogs(shop, capsys) -> None:
    """`summer` and `products`, `products` recorded as indexed last (though `summer` comes
    after it by name, which only breaks ties)."""
    for name in ("products", "summer"):
        catalog = write_catalog(shop / f"{name}.jsonl", product_rows(N))
        assert run_indexer(capsys, "index", catalog, "--images", shop / "images")[0] == 0
    with EmbeddedStore(shop / "qdrant") as store:
        for name, when in (("summer", "2026-06-01T10:00:00+00:00"), ("products", "2026-06-02")):
            with store.open(name) as collection:
                collection.set_extra({"indexed_at": when})


def test_commands_without_a_collection_act_on_the_one_the_app_serves(shop, capsys):
    _index_two_catalogs(shop, capsys)
    with EmbeddedStore(shop / "qdrant") as store:
        assert choose_collection(load_settings(), store).name == "products"  # the app's
    said = (
        "indexer: collection 'products' (the last indexed of 2 catalogs: products, summer; "
        "--collection chooses another)"
    )

    code, out, err = run_indexer(capsys, "tag", "--attribute", "kind=dress,shirt,skirt")
    assert code == 0 and out.startswith(f"products: {N} points; kind: tagged {N}"), err
    assert said in err
    assert all("kind" in p.payload for p in points(shop / "qdrant", "products").values())
    assert not any("kind" in p.payload for p in points(shop / "qdrant", "summer").values())

    snapshot = shop / "out.snapshot"
    code, out, err = run_indexer(capsys, "snapshot", "push", snapshot)
    assert code == 0 and out.startswith("pushed collection 'products'") and said in err

    code, out, _ = run_indexer(capsys, "info")
    assert code == 0 and out.rstrip().endswith(
        "without --collection the app and the commands use 'products' "
        "(the last indexed of 2 catalogs: products, summer)"
    )


def test_evaluate_takes_the_catalogs_own_collection_never_another_catalogs(shop, capsys):
    _index_two_catalogs(shop, capsys)
    evaluate = ("evaluate", "--label-column", "category", "--json")
    code, out, err = run_indexer(capsys, *evaluate, shop / "summer.jsonl")
    assert code == 0 and json.loads(out)["collection"] == "summer", err
    assert "collection 'summer' (named after the catalog" in err
    # A catalog under a name no collection has: refused, not scored against 'products'.
    copy = write_catalog(shop / "export.jsonl", product_rows(N))
    code, out, err = run_indexer(capsys, *evaluate, copy)
    assert code == 2 and out == "" and "no collection 'export'" in err, err
    code, out, err = run_indexer(capsys, *evaluate, copy, "--collection", "products")
    assert code == 0 and json.loads(out)["collection"] == "products", err


def test_fashion_clip_collection_chooses_for_the_commands_as_for_the_app(shop, capsys, monkeypatch):
    _index_two_catalogs(shop, capsys)
    monkeypatch.setenv("FASHION_CLIP_COLLECTION", "summer")
    code, out, err = run_indexer(capsys, "tag", "--attribute", "kind=dress,shirt,skirt")
    assert code == 0 and out.startswith("summer: "), err
    assert "collection 'summer' (FASHION_CLIP_COLLECTION; --collection chooses another)" in err
    code, out, err = run_indexer(
        capsys, "evaluate", shop / "products.jsonl", "--label-column", "category", "--json"
    )
    assert code == 0 and json.loads(out)["collection"] == "summer", err


def test_with_no_catalog_indexed_the_commands_name_the_demo(shop, capsys):
    code, out, err = run_indexer(capsys, "tag", "--attribute", "kind=dress,shirt")
    assert code == 2 and out == ""
    assert "collection 'demo' (the bundled demo: no catalog indexed yet" in err
    assert "no collection 'demo'" in err

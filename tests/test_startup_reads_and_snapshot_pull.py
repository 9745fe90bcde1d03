"""Two small promises: the app's start-up loads no shard to choose its collection (only the
one it serves is opened), and `snapshot pull` without `--collection` honours
FASHION_CLIP_COLLECTION as its help says."""

from __future__ import annotations

from fashion_clip.ingest.choice import DATASET_CATALOG_PREFIX, choose_collection
from fashion_clip.settings import Settings
from fashion_clip.store.embedded import EmbeddedStore
from tests.indexer_fixtures import run_indexer, use_store
from tests.store_fixtures import catalog, spec


def test_choosing_the_collection_loads_no_shard(tmp_path, monkeypatch):
    import fashion_clip.store.edge_shard as edge_shard

    with EmbeddedStore(tmp_path) as store:
        store.create("cache", spec(catalog=f"{DATASET_CATALOG_PREFIX}x")).close()
        for name, when in (("spring", "2026-03-01"), ("summer", "2026-06-01")):
            with store.create(name, spec(catalog=f"{name}.csv")) as shop:
                shop.upsert(catalog(n=20).points())
                shop.set_extra({"indexed_at": when})
    loaded = []
    load = edge_shard.load_shard
    monkeypatch.setattr(edge_shard, "load_shard", lambda path: loaded.append(path) or load(path))
    with EmbeddedStore(tmp_path) as store:
        assert choose_collection(Settings(qdrant_path=tmp_path), store).name == "summer"
        assert loaded == []  # the records beside the shards told
        with store.open("summer") as served:
            assert served.count() == 20
    assert [path.parent.name for path in loaded] == ["summer"]


def test_snapshot_pull_goes_into_fashion_clip_collection(tmp_path, monkeypatch, capsys):
    use_store(monkeypatch, tmp_path / "qdrant", tmp_path / "no-model-needed")
    with EmbeddedStore(tmp_path / "qdrant") as store, store.create("shop", spec()) as shop:
        shop.upsert(catalog(n=12).points())
    snapshot = tmp_path / "shop.snapshot"
    code, _, err = run_indexer(capsys, "snapshot", "push", snapshot, "--collection", "shop")
    assert code == 0, err
    monkeypatch.setenv("FASHION_CLIP_COLLECTION", "copy")
    code, out, err = run_indexer(capsys, "snapshot", "pull", snapshot)
    assert code == 0, err
    assert "into collection 'copy' (12 points" in out
    with EmbeddedStore(tmp_path / "qdrant") as store:
        assert set(store.list_collections()) == {"shop", "copy"}

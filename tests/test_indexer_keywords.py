"""The indexer's keywords: built on every run (`--keyword-fields` to choose), and given to a
collection made before keyword search on its next run, without embedding anything again."""

from __future__ import annotations

import numpy as np
import pytest

from fashion_clip.store.base import Ranking
from fashion_clip.store.bm25 import query_vector
from tests.indexer_fixtures import points, product_rows, run_indexer, use_store, write_catalog
from tests.indexer_fixtures import write_photos as write_pictures

N = 8


@pytest.fixture
def shop(tmp_path, monkeypatch, tiny_model_dir):
    use_store(monkeypatch, tmp_path / "qdrant", tiny_model_dir)
    write_pictures(tmp_path / "images", N)
    rows = product_rows(N)
    rows[5]["brand"] = "Atelier Nova"
    return tmp_path, write_catalog(tmp_path / "c.jsonl", rows)


def keyword_ids(folder, words: str) -> list:
    from fashion_clip.store.embedded import EmbeddedStore

    with EmbeddedStore(folder / "qdrant") as store:
        hits = store.open("shop").query(Ranking(keywords=query_vector(words), limit=3))
        return [h.id for h in hits]


def test_keyword_fields_choose_what_keyword_search_matches(shop, capsys):
    folder, catalog = shop
    args = ("index", catalog, "--images", folder / "images", "--collection", "shop")
    assert run_indexer(capsys, *args)[0] == 0
    assert keyword_ids(folder, "atelier nova") == ["sku-5"]  # a text field, by default
    assert keyword_ids(folder, "sku-3")[0] == "sku-3"  # the id too
    code, out, err = run_indexer(capsys, *args, "--keyword-fields", "caption")
    assert code == 0 and "indexed 0, unchanged 8" in out, err
    assert keyword_ids(folder, "atelier nova") == []
    code, _, err = run_indexer(capsys, *args, "--keyword-fields", " , ")
    assert code == 2 and "keyword fields" in err


def test_a_collection_made_before_keywords_gains_them_without_embedding(shop, capsys, monkeypatch):
    import qdrant_edge as qe

    from fashion_clip.store import edge_shard, embedded
    from fashion_clip.store.edge import EdgeCollection

    def shard_without_keywords(path, wanted):
        params = qe.EdgeVectorParams(size=wanted.dim, distance=qe.Distance.Cosine)
        config = qe.EdgeConfig(vectors={"image": params, "text": params})
        return qe.EdgeShard.create(str(path), config)

    folder, catalog = shop
    args = ("index", catalog, "--images", folder / "images", "--collection", "shop")
    made = embedded.new_meta
    with monkeypatch.context() as old_code:  # as this project made collections before
        old_code.setattr(edge_shard, "create_shard", shard_without_keywords)
        old_code.setattr(embedded, "new_meta", lambda spec: {**made(spec), "keyword_fields": None})
        old_code.setattr(EdgeCollection, "set_keyword_fields", lambda self, fields: False)
        code, _, err = run_indexer(capsys, *args)
        assert code == 0, err
    before = points(folder / "qdrant", "shop")

    code, out, err = run_indexer(capsys, *args)
    assert code == 0 and "indexed 0, unchanged 8" in out, err
    assert keyword_ids(folder, "atelier nova") == ["sku-5"]
    after = points(folder / "qdrant", "shop")
    for key, point in before.items():
        np.testing.assert_array_equal(after[key].vectors["image"], point.vectors["image"])
        assert after[key].payload == point.payload

"""Issue 19's relevance goals on the demo model and catalog (benchmarks/relevance.py):
hybrid search finds typed ids first and brand+category products, loses no recall on
meaning-only queries against semantic search, and search by region finds the boxed garment."""

from __future__ import annotations

import pytest

from benchmarks import relevance


@pytest.fixture(scope="module")
def figures(demo_model, tmp_path_factory):
    from fashion_clip.ingest.job import index_demo
    from fashion_clip.store.embedded import EmbeddedStore

    store = EmbeddedStore(tmp_path_factory.mktemp("relevance"))
    collection, _ = index_demo(store, demo_model)
    yield relevance.measure(collection, demo_model)
    store.close()


def test_hybrid_finds_typed_ids_and_brands(figures):
    assert figures["hybrid_id_top1"] == 1.0
    assert figures["hybrid_brand_category_precision"] >= 0.90
    # what the keywords add: meaning alone finds neither
    assert figures["semantic_id_top1"] < 0.1 and figures["semantic_brand_category_precision"] < 0.5


def test_hybrid_keeps_the_recall_of_meaning(figures):
    assert figures["hybrid_recall_at_10"] >= figures["semantic_recall_at_10"] - 0.02


def test_search_by_region_finds_the_boxed_garment(figures):
    assert figures["region_right_garment_rate"] >= 0.90
    assert figures["whole_right_garment_rate"] < 0.5  # the box is what finds it

"""Keywords and ranked queries (`Collection.query`), the same tests against every store.

`embedded` is Qdrant Edge; `local` is qdrant-client's in-memory local mode standing in for a
server; `server` runs only when QDRANT_URL is set (as in test_store_contract.py).
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import pytest

from fashion_clip.errors import InvalidInputError, StoreError
from fashion_clip.store import Filter, Point
from fashion_clip.store.base import Boost, Ranking, SortBy
from fashion_clip.store.bm25 import query_vector
from fashion_clip.store.ranking import RRF_K
from tests.store_fixtures import (
    backend_for,
    brute_force,
    catalog,
    drop_prefixed,
    local_mode_backend,
    spec,
)

BRANDS = ["Atelier Nova", "Urban Loom", "Northwind"]
INDEXES = {"color": "keyword", "size": "integer", "price": "float", "in_stock": "bool"}


@pytest.fixture(params=["embedded", "local", "server"])
def backend(request, tmp_path):
    chosen = backend_for(request.param, tmp_path / "qdrant")
    yield chosen
    drop_prefixed(chosen)


@pytest.fixture
def store(backend):
    opened = backend.new_store()
    yield opened
    opened.close()


@pytest.fixture
def cat():
    shop = catalog()
    for i, payload in enumerate(shop.payloads):
        payload["brand"] = BRANDS[i % len(BRANDS)]
    shop.payloads[7]["caption"] = "item 7 in pure linen"  # the one linen product
    return shop


@pytest.fixture
def col(store, backend, cat):
    collection = store.create(backend.prefix + "shop", spec(payload_indexes=INDEXES))
    collection.upsert(cat.points())
    return collection


def ids_of(hits):
    return [h.id for h in hits]


def test_keywords_find_ids_rare_words_and_brands(col, cat):
    assert ids_of(col.query(Ranking(keywords=query_vector("sku-42"), limit=1))) == ["sku-42"]
    assert ids_of(col.query(Ranking(keywords=query_vector("linen"), limit=3))) == ["sku-7"]
    hits = col.query(Ranking(keywords=query_vector("northwind"), limit=50))
    assert hits and {h.payload["brand"] for h in hits} == {"Northwind"}
    # the engine's IDF: a rare word outweighs a word every product has
    both = col.query(Ranking(keywords=query_vector("item linen"), limit=2))
    assert both[0].id == "sku-7" and both[0].score > 2 * both[1].score


def test_keyword_fields_choose_what_is_matched(col):
    assert col.keyword_fields() == "*"
    assert col.set_keyword_fields(["caption"]) is True
    assert col.query(Ranking(keywords=query_vector("northwind"), limit=5)) == []
    assert ids_of(col.query(Ranking(keywords=query_vector("linen"), limit=1))) == ["sku-7"]
    assert col.set_keyword_fields(["caption"]) is False  # already so: nothing rewritten


def test_set_payloads_derive_the_keywords_anew_and_keep_the_dense_vectors(col, cat):
    words = query_vector("tangerine")
    assert col.query(Ranking(keywords=words, limit=5)) == []
    col.set_payloads({"sku-5": {"color": "tangerine", "color_confidence": 0.91}, "absent": {}})
    assert ids_of(col.query(Ranking(keywords=words, limit=5))) == ["sku-5"]  # at once
    (point,) = col.retrieve(["sku-5"], with_vectors=True)
    assert np.allclose(point.vectors["image"], cat.image[5], atol=1e-6)
    assert np.allclose(point.vectors["text"], cat.text[5], atol=1e-6)
    assert point.payload["brand"] == cat.payloads[5]["brand"]  # merged, not replaced

    col.set_payloads({"sku-5": {"color": "red"}})  # a word that goes away is not found
    assert col.query(Ranking(keywords=words, limit=5)) == []
    before = ids_of(col.query(Ranking(keywords=query_vector("item"), limit=400)))
    col.set_payloads({"sku-6": {"image": "tangerine.jpg", "_source": "tangerine"}})
    assert col.query(Ranking(keywords=words, limit=5)) == []  # a path and bookkeeping: no words
    assert ids_of(col.query(Ranking(keywords=query_vector("item"), limit=400))) == before


def test_a_point_whose_words_all_go_has_no_keywords(store, backend, cat):
    collection = store.create(backend.prefix + "captions", spec(payload_indexes=INDEXES))
    collection.upsert(cat.points()[:3])
    assert collection.set_keyword_fields(["caption"]) is True
    collection.set_payloads({"sku-1": {"caption": ""}})
    hits = collection.query(Ranking(keywords=query_vector("item"), limit=5))
    assert sorted(map(str, ids_of(hits))) == ["0", "sku-2"]  # not sku-1
    assert collection.count() == 3


def rrf(*rankings, k=RRF_K):
    """Reciprocal rank fusion's score per id."""
    scores: dict = {}
    for ranking in rankings:
        for rank, hit_id in enumerate(ranking):
            scores[hit_id] = scores.get(hit_id, 0.0) + 1.0 / (k + rank)  # ranks from 0
    return scores


def test_hybrid_fuses_both_rankings_by_rrf_in_the_engine(col, cat):
    query, words = cat.image[11], query_vector("item linen northwind")
    # The engine's own orders (`_ranked`): `query` puts ties in id order after the engine
    # has fused, and the engine fuses the rankings with its ties as it found them.
    dense = ids_of(col._ranked(Ranking(dense=query, exact=True, limit=40)))
    keywords = ids_of(col._ranked(Ranking(keywords=words, limit=40)))
    fused = col.query(Ranking(dense=query, keywords=words, exact=True, candidates=40, limit=10))
    expected = rrf(dense, keywords)
    # ties (products with the same words) may come in either order: compare the scores
    assert [h.score for h in fused] == pytest.approx(sorted(expected.values())[::-1][:10])
    assert [h.score for h in fused] == pytest.approx([expected[h.id] for h in fused])
    dbsf = col.query(Ranking(dense=query, keywords=words, fusion="dbsf", limit=10))
    assert set(ids_of(dbsf)) <= set(dense) | set(keywords) and ids_of(dbsf) != ids_of(fused)


def test_sort_reorders_the_relevant_candidates_only(col, cat):
    query = cat.image[3]
    relevant = brute_force(cat.image, query, cat.ids, 30)
    price = {i: p["price"] for i, p in zip(cat.ids, cat.payloads, strict=True)}
    hits = col.query(Ranking(dense=query, sort=SortBy("price"), candidates=30, limit=10))
    assert ids_of(hits) == sorted(relevant, key=lambda i: price[i])[:10]
    down = col.query(Ranking(dense=query, sort=SortBy("price", True), candidates=30, limit=30))
    assert ids_of(down) == sorted(relevant, key=lambda i: -price[i])
    assert col.query(Ranking(dense=query, sort=SortBy("price"), candidates=30, offset=30)) == []


def test_only_ids_limits_every_stage_to_those_products(col, cat):
    query = cat.image[3]
    price = {i: p["price"] for i, p in zip(cat.ids, cat.payloads, strict=True)}
    chosen = brute_force(cat.image, query, cat.ids, 40)[::3]  # not simply the best ones
    words = query_vector("item northwind")
    for ranking in (
        Ranking(dense=query, sort=SortBy("price"), limit=30),
        Ranking(dense=query, keywords=words, fusion="dbsf", sort=SortBy("price"), limit=30),
        Ranking(keywords=words, limit=30),
    ):
        hits = col.query(replace(ranking, filter=Filter(only_ids=chosen)))
        assert set(ids_of(hits)) <= set(chosen)
        if ranking.dense is not None:  # the picture's ranking holds every one of them
            assert ids_of(hits) == sorted(chosen, key=lambda i: price[i])
    assert col.query(Ranking(dense=query, filter=Filter(only_ids=[]), limit=5)) == []


def test_formula_boosts_by_numbers_and_flags(col, cat):
    query = cat.image[5]
    cosine = cat.image @ query
    relevant = brute_force(cat.image, query, cat.ids, 40)
    row = {i: n for n, i in enumerate(cat.ids)}

    def boosted(score_of):
        return sorted(relevant, key=lambda i: -score_of(row[i]))[:10]

    by_price = col.query(Ranking(dense=query, boosts=[Boost("price", 0.01)], candidates=40))
    expected = boosted(lambda n: cosine[n] * (1 + 0.01 * cat.payloads[n]["price"]))
    assert ids_of(by_price) == expected
    stock = col.query(Ranking(dense=query, boosts=[Boost("in_stock", 5.0)], candidates=40))
    assert all(h.payload["in_stock"] for h in stock)
    expected = boosted(lambda n: cosine[n] * (1 + 5.0 * cat.payloads[n]["in_stock"]))
    assert ids_of(stock) == expected


def test_diversity_spreads_near_copies(store, backend, cat):
    col = store.create(backend.prefix + "copies", spec(payload_indexes=INDEXES))
    col.upsert(cat.points())
    rng = np.random.default_rng(1)
    base = rng.normal(size=cat.image.shape[1]).astype(np.float32)
    base /= np.linalg.norm(base)
    copies = []
    for n in range(8):  # eight near-identical pictures right at the query
        v = base + rng.normal(scale=0.01, size=base.shape).astype(np.float32)
        copies.append(Point(f"copy-{n}", {"image": v / np.linalg.norm(v)}, {"caption": "copy"}))
    col.upsert(copies)
    plain = ids_of(col.query(Ranking(dense=base, limit=6, exact=True)))
    assert sum(str(i).startswith("copy-") for i in plain) == 6
    diverse = ids_of(col.query(Ranking(dense=base, diversity=0.8, limit=6, exact=True)))
    assert sum(str(i).startswith("copy-") for i in diverse) <= 2


def test_collapse_keeps_the_best_hit_per_value(col, cat):
    query = cat.image[9]
    hits = col.query(Ranking(dense=query, collapse="color", limit=10, exact=True))
    assert len(hits) == 4 and len({h.payload["color"] for h in hits}) == 4
    firsts: dict = {}
    for hit_id in brute_force(cat.image, query, cat.ids, 300):
        firsts.setdefault(cat.payloads[cat.ids.index(hit_id)]["color"], hit_id)
    assert ids_of(hits) == list(firsts.values())


@pytest.mark.parametrize(
    "extra",
    [{}, {"sort": SortBy("price")}, {"diversity": 0.4}, {"boosts": [Boost("size", 0.2)]}],
)
def test_pages_never_repeat_and_are_stable(col, cat, extra):
    request = {"dense": cat.image[2], "keywords": query_vector("item northwind"), **extra}
    whole = ids_of(col.query(Ranking(limit=36, **request)))
    pages = [ids_of(col.query(Ranking(limit=12, offset=o, **request))) for o in (0, 12, 24)]
    assert [i for p in pages for i in p] == whole and len(set(whole)) == 36
    assert pages[1] == ids_of(col.query(Ranking(limit=12, offset=12, **request)))


def test_filters_apply_to_every_stage(col, cat):
    where = Filter(equals={"color": "red"})
    ranking = Ranking(
        dense=cat.image[4], keywords=query_vector("northwind"), filter=where,
        sort=SortBy("price"), diversity=0.2, limit=20,
    )  # fmt: skip
    hits = col.query(ranking)
    assert hits and all(h.payload["color"] == "red" for h in hits)


@pytest.mark.parametrize(
    ("ranking", "named"),
    [
        (Ranking(), "query vector, keywords"),
        (Ranking(dense=np.ones(3, np.float32)), "shape"),
        (Ranking(keywords=query_vector("x"), offset=-1), "offset"),
        (Ranking(keywords=query_vector("x"), diversity=1.5), "diversity"),
        (Ranking(keywords=query_vector("x"), fusion="max"), "fusion"),
    ],
)
def test_bad_rankings_are_refused_naming_the_value(col, ranking, named):
    with pytest.raises(InvalidInputError, match=named):
        col.query(ranking)


def test_embedded_collection_made_before_keywords_gains_them(tmp_path, cat, monkeypatch):
    import qdrant_edge as qe

    from fashion_clip.store import edge_shard, embedded

    def shard_without_keywords(path, wanted):
        params = qe.EdgeVectorParams(size=wanted.dim, distance=qe.Distance.Cosine)
        config = qe.EdgeConfig(vectors={"image": params, "text": params})
        return qe.EdgeShard.create(str(path), config)

    new_meta = embedded.new_meta
    monkeypatch.setattr(edge_shard, "create_shard", shard_without_keywords)
    monkeypatch.setattr(embedded, "new_meta", lambda s: {**new_meta(s), "keyword_fields": None})
    store = embedded.EmbeddedStore(tmp_path)
    store.create("old", spec(payload_indexes=INDEXES)).upsert(cat.points())
    store.close()
    monkeypatch.undo()

    store = embedded.EmbeddedStore(tmp_path)
    col = store.open("old")
    with pytest.raises(StoreError, match="no keywords yet"):
        col.query(Ranking(keywords=query_vector("linen")))
    assert col.set_keyword_fields(None) is True
    assert ids_of(col.query(Ranking(keywords=query_vector("linen"), limit=1))) == ["sku-7"]
    store.close()
    col = embedded.EmbeddedStore(tmp_path).open("old")  # what was written stays
    assert col.count() == len(cat.ids) and col.keyword_fields() == "*"
    held = {p.id: p for p in col.retrieve(cat.ids[:20], with_vectors=True)}
    for n, hit_id in enumerate(cat.ids[:20]):
        np.testing.assert_allclose(held[hit_id].vectors["image"], cat.image[n], atol=1e-6)
    assert sorted(p.name for p in (tmp_path / "old").iterdir()) == [
        ".lock", "collection.json", "shard",
    ]  # fmt: skip
    col.close()


def test_a_server_collection_made_before_keywords_keeps_working(caplog):
    from fashion_clip.store.remote import RemoteStore

    backend = local_mode_backend()
    store = backend.new_store()
    col = store.create("old", spec())
    col.meta = {**col.meta, "keyword_fields": None}  # as one made before keyword search
    assert isinstance(store, RemoteStore)
    with caplog.at_level(logging.WARNING):
        assert col.set_keyword_fields(None) is False
    assert "--recreate" in caplog.text


def test_pages_of_equal_scores_never_repeat_a_product(col, cat):
    # BM25 gives every product of a brand with captions of one length the same score, and
    # the engine orders equal scores differently for each limit and offset.
    words = query_vector("northwind")
    whole = col.query(Ranking(keywords=words, limit=42))
    assert len({h.score for h in whole}) < len(whole)  # there are ties to order
    pages = [col.query(Ranking(keywords=words, limit=3, offset=o)) for o in range(0, 42, 3)]
    assert [h.id for page in pages for h in page] == ids_of(whole)
    fused = Ranking(dense=cat.image[5], keywords=words, limit=40)
    pages = [col.query(replace(fused, limit=4, offset=o)) for o in range(0, 40, 4)]
    assert [h.id for page in pages for h in page] == ids_of(col.query(fused))


def test_collapse_groups_in_the_engine_where_it_can(col, backend, cat):
    query, words = cat.image[9], query_vector("item northwind")
    for request in ({"dense": query}, {"dense": query, "keywords": words}):
        ranking = Ranking(collapse="color", limit=10, candidates=2, exact=True, **request)
        hits = col.query(ranking)
        if backend.name == "embedded":  # the bindings have no group-by: the 2 candidates
            assert 1 <= len(hits) <= 2
        else:  # the engine's group-by; fused, within the 2 candidates the fusion keeps
            assert len({h.payload["color"] for h in hits}) == len(hits)
            assert len(hits) == (4 if "keywords" not in request else 2)
        pages = [col.query(replace(ranking, limit=1, offset=o)) for o in range(len(hits))]
        assert [h.id for page in pages for h in page] == ids_of(hits)

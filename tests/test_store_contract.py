"""The store contract: the same tests against every implementation.

`embedded` is Qdrant Edge; `local` is qdrant-client's in-memory local mode standing in for a
server (same client API); `server` is a real Qdrant server and runs only when QDRANT_URL is set.
"""

from __future__ import annotations

import datetime
from collections import Counter

import numpy as np
import pytest

from fashion_clip.errors import (
    ConfigurationError,
    InvalidInputError,
    ModelMismatchError,
    StoreError,
)
from fashion_clip.store import Filter, Point, Range
from tests.store_fixtures import (
    DIM,
    MODEL,
    backend_for,
    brute_force,
    catalog,
    drop_prefixed,
    spec,
    unit,
)


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
    return catalog()


@pytest.fixture
def col(store, backend, cat):
    collection = store.create(backend.prefix + "items", spec())
    collection.upsert(cat.points())
    return collection


def ids_of(hits):
    return [h.id for h in hits]


def test_collection_records_model_and_counts(store, backend, col, cat):
    info = col.info()
    assert (info.model_id, info.model_revision, info.dim) == (MODEL, "abc123", DIM)
    assert (info.distance, info.catalog, info.count) == ("cosine", "synthetic", len(cat.ids))
    assert info.payload_indexes == {"color": "keyword", "size": "integer", "price": "float"}
    assert store.exists(col.name) and col.name in store.list_collections()
    assert not store.exists(backend.prefix + "nothing")


def test_reopen_keeps_points_vectors_and_record(store, backend, col, cat):
    col.set_extra({"catalog_path": "s3://bucket/catalog.csv"})
    name = col.name
    store.close()
    again = backend.new_store()
    reopened = again.open(name, model_id=MODEL, dim=DIM)
    assert reopened.count() == len(cat.ids)
    assert reopened.info().extra == {"catalog_path": "s3://bucket/catalog.csv"}
    (point,) = reopened.retrieve([cat.ids[1]], with_vectors=True)
    assert point.vectors["image"].dtype == np.float32
    np.testing.assert_allclose(point.vectors["image"], cat.image[1], atol=1e-6)
    np.testing.assert_allclose(point.vectors["text"], cat.text[1], atol=1e-6)
    again.close()


def test_a_collections_record_is_read_without_its_points(store, backend, col):
    col.set_extra({"indexed_at": "2026-12-07T10:00:00+00:00"})
    name = col.name
    store.close()
    again = backend.new_store()
    assert again.record(name) == ("synthetic", {"indexed_at": "2026-12-07T10:00:00+00:00"})
    again.close()


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"model_id": "other/model"}, "other/model"),
        ({"model_id": MODEL, "dim": DIM * 2}, f"{DIM * 2}-d"),
        ({"model_id": MODEL, "model_revision": "def456"}, "def456"),
    ],
)
def test_opening_with_another_model_is_refused(store, col, kwargs, named):
    with pytest.raises(ModelMismatchError) as err:
        store.open(col.name, **kwargs)
    message = str(err.value)
    assert MODEL in message and named in message and "--recreate" in message
    assert store.open(col.name, model_id=MODEL, model_revision="abc123", dim=DIM).count() > 0


def test_open_or_create_guards_and_recreate_rebuilds(store, col):
    with pytest.raises(ModelMismatchError):
        store.open_or_create(col.name, spec(model_id="other/model"))
    assert store.open_or_create(col.name, spec()).count() == col.count()
    with pytest.raises(StoreError, match="already exists"):
        store.create(col.name, spec())
    rebuilt = store.open_or_create(col.name, spec(model_id="other/model", dim=8), recreate=True)
    assert rebuilt.count() == 0 and rebuilt.info().model_id == "other/model"


def test_open_or_create_opens_what_another_indexer_created_meanwhile(store, col, monkeypatch):
    # Shards started together all see no collection; one creates it first, the others
    # (whose create is refused) open it, guarded as ever.
    real_exists, looks = store.exists, []

    def created_after_the_first_look(name: str) -> bool:
        looks.append(name)
        return len(looks) > 1 and real_exists(name)

    monkeypatch.setattr(store, "exists", created_after_the_first_look)
    assert store.open_or_create(col.name, spec()).count() == col.count()
    looks.clear()
    with pytest.raises(ModelMismatchError):
        store.open_or_create(col.name, spec(model_id="other/model"))


def test_bad_vectors_are_refused_and_nothing_is_written(col, cat):
    before = col.count()
    wrong_dim = Point("new-1", {"image": np.ones(DIM + 1, np.float32)}, {})
    with pytest.raises(ModelMismatchError, match=MODEL):
        col.upsert([*cat.points()[:3], wrong_dim])
    with pytest.raises(StoreError, match="NaN"):
        col.upsert([Point("new-2", {"image": np.full(DIM, np.nan, np.float32)}, {})])
    with pytest.raises(StoreError, match="unknown vector"):
        col.upsert([Point("new-3", {"sketch": cat.image[0]}, {})])
    with pytest.raises(ModelMismatchError):
        col.search(np.ones(DIM + 1, np.float32))
    assert col.count() == before


def test_payload_is_stored_as_plain_json(col, cat):
    nested = {"price": np.float32(12.5), "size": np.int64(3), "tags": np.array(["a", "b"]),
              "dims": {"w": 10, "h": [1.5, 2]}, "note": None}  # fmt: skip
    col.upsert([Point("json-1", {"image": cat.image[0]}, nested)])
    (back,) = col.retrieve(["json-1"])
    expected = {**nested, "price": 12.5, "size": 3, "tags": ["a", "b"], "id": "json-1"}
    assert back.payload == expected
    assert type(back.payload["size"]) is int
    with pytest.raises(StoreError, match=r"'json-2'.*'price' is nan.*None"):
        col.upsert([Point("json-2", {"image": cat.image[0]}, {"price": float("nan")})])
    with pytest.raises(StoreError, match=r"'json-3'.*'when'.*date"):
        col.upsert([Point("json-3", {"image": cat.image[0]}, {"when": datetime.date(2020, 1, 1)})])
    assert col.retrieve(["json-2", "json-3"]) == []


def test_upsert_is_idempotent_per_catalog_id(col, cat):
    points = cat.points()[:5]
    points[0].payload = {**points[0].payload, "color": "purple"}
    col.upsert(points)
    assert col.count() == len(cat.ids)
    (first,) = col.retrieve([cat.ids[0]])
    assert first.payload["color"] == "purple"
    assert first.id == cat.ids[0] == 0 and isinstance(first.id, int)
    # The id is hashed as text: "0" from a CSV names the same point as 0 from JSON.
    assert col.retrieve(["0"])[0].payload["id"] == 0


def test_delete_retrieve_and_count(col, cat):
    col.delete([cat.ids[1], cat.ids[2], "no-such-id"])
    assert col.count() == len(cat.ids) - 2
    found = col.retrieve([cat.ids[1], cat.ids[3], "no-such-id"])
    assert [p.id for p in found] == [cat.ids[3]]
    assert found[0].payload["image"] == "img/3.jpg" and found[0].vectors == {}
    assert col.count(Filter(equals={"color": "red"})) == sum(
        p["color"] == "red" for i, p in enumerate(cat.payloads) if i not in (1, 2)
    )


def test_scroll_pages_through_every_point_once(col, cat):
    seen, offset, pages = [], None, 0
    while True:
        points, offset = col.scroll(limit=64, offset=offset)
        seen += [p.id for p in points]
        pages += 1
        if offset is None:
            break
    assert pages == 5 and sorted(map(str, seen)) == sorted(map(str, cat.ids))
    blue = list(col.iter_points(Filter(equals={"color": "blue"}), batch_size=7))
    assert {p.id for p in blue} == {
        i for i, p in zip(cat.ids, cat.payloads, strict=True) if p["color"] == "blue"
    }


def test_exact_search_matches_brute_force_with_limit_offset_threshold(col, cat):
    query = cat.image[7]
    expected = brute_force(cat.image, query, cat.ids, 15)
    hits = col.search(query, limit=10, exact=True)
    assert ids_of(hits) == expected[:10]
    assert hits[0].score == pytest.approx(1.0, abs=1e-5) and hits[0].payload["caption"] == "item 7"
    assert ids_of(col.search(query, limit=5, offset=10, exact=True)) == expected[10:15]
    threshold = float(cat.image[cat.ids.index(expected[4])] @ query) - 1e-4
    above = col.search(query, limit=50, score_threshold=threshold, exact=True)
    assert ids_of(above) == expected[:5]
    approx = col.search(query, limit=10, ef=128)
    assert ids_of(approx) == expected[:10]  # a small collection is searched in full anyway


def test_text_space_skips_points_without_captions(col, cat):
    hits = col.search(cat.text[1], using="text", limit=300, exact=True)
    assert len(hits) == int(cat.has_text.sum())
    assert ids_of(hits)[:10] == brute_force(cat.text, cat.text[1], cat.ids, 10, cat.has_text)
    with pytest.raises(InvalidInputError, match="unknown vector space 'sketch'"):
        col.search(cat.text[1], using="sketch")


@pytest.mark.parametrize(
    ("filt", "keep"),
    [
        (Filter(equals={"color": "red"}), lambda p: p["color"] == "red"),
        (Filter(equals={"size": 3}), lambda p: p["size"] == 3),
        (Filter(equals={"in_stock": False}), lambda p: not p["in_stock"]),
        (Filter(any_of={"color": ["red", "green"]}), lambda p: p["color"] in ("red", "green")),
        (Filter(any_of={"size": [0, 4]}), lambda p: p["size"] in (0, 4)),
        (Filter(any_of={"in_stock": [True]}), lambda p: p["in_stock"]),
        (Filter(ranges={"price": Range(gte=50, lt=100)}), lambda p: 50 <= p["price"] < 100),
        (
            Filter(equals={"color": "blue"}, ranges={"size": Range(gt=1)}),
            lambda p: p["color"] == "blue" and p["size"] > 1,
        ),
    ],
)
def test_filtered_search_matches_brute_force_over_the_subset(col, cat, filt, keep):
    mask = np.array([keep(p) for p in cat.payloads])
    query = cat.image[11]
    hits = col.search(query, filter=filt, limit=10, exact=True)
    assert ids_of(hits) == brute_force(cat.image, query, cat.ids, 10, mask)
    assert col.count(filt) == int(mask.sum())


def test_exclude_ids_filter(col, cat):
    query = cat.image[0]
    top = brute_force(cat.image, query, cat.ids, 4)
    hits = col.search(query, filter=Filter(exclude_ids=top[:2]), limit=2, exact=True)
    assert ids_of(hits) == top[2:4]


def _best_score_ranking(cat, positive, negative, k):
    """Qdrant's best-score recommendation, ranks only: nearer a positive than any negative
    first (by that similarity), then the rest (farthest from the negatives first)."""
    rows = {pid: i for i, pid in enumerate(cat.ids)}
    pos = cat.image @ cat.image[[rows[p] for p in positive]].T
    neg = cat.image @ cat.image[[rows[n] for n in negative]].T if negative else None
    keys = []
    for i, pid in enumerate(cat.ids):
        if pid in positive or pid in negative:
            continue
        best_pos = pos[i].max()
        best_neg = neg[i].max() if neg is not None else -np.inf
        keys.append(((1, best_pos) if best_pos > best_neg else (0, -best_neg), pid))
    keys.sort(key=lambda kv: kv[0], reverse=True)
    return [pid for _, pid in keys[:k]]


def test_recommend_from_stored_points(col, cat):
    positive, negative = [cat.ids[5], cat.ids[6]], [cat.ids[8]]
    hits = col.recommend(positive, negative, limit=10, exact=True)
    assert ids_of(hits) == _best_score_ranking(cat, positive, negative, 10)
    alone = col.recommend([cat.ids[5]], limit=5, exact=True)
    assert ids_of(alone) == brute_force(cat.image, cat.image[5], cat.ids, 6)[1:]
    red = col.recommend(positive, filter=Filter(equals={"color": "red"}), limit=5, exact=True)
    assert red and all(h.payload["color"] == "red" for h in red)
    with pytest.raises(StoreError, match="no-such-id"):
        col.recommend(["no-such-id"])
    with pytest.raises(InvalidInputError, match="at least one positive example"):
        col.recommend([], [cat.ids[1]])


def test_composed_query_ranks_by_weighted_similarities(col, cat):
    rng = np.random.default_rng(5)
    image, text, unwanted = cat.image[20], unit(rng, 1)[0], unit(rng, 1)[0]
    terms = [(image, 1.0), (text, 0.6), (unwanted, -0.4)]
    combined = sum(w * (cat.image @ v) for v, w in terms)
    expected = [cat.ids[i] for i in np.argsort(-combined)[:10]]
    assert ids_of(col.search_composed(terms, limit=10, exact=True)) == expected
    with pytest.raises(InvalidInputError, match=r"cancel out \(weights 1, -1\)"):
        col.search_composed([(image, 1.0), (image, -1.0)])
    with pytest.raises(InvalidInputError, match="at least one"):
        col.search_composed([])


def test_group_search_by_payload_field(col, cat):
    query = cat.image[3]
    groups = col.search_groups(query, "color", limit=3, group_size=2, exact=True)
    ranked = brute_force(cat.image, query, cat.ids, len(cat.ids))
    color = {pid: p["color"] for pid, p in zip(cat.ids, cat.payloads, strict=True)}
    expected: dict[str, list] = {}
    for pid in ranked:
        expected.setdefault(color[pid], [])
        if len(expected[color[pid]]) < 2:
            expected[color[pid]].append(pid)
    assert [(g.value, ids_of(g.hits)) for g in groups] == list(expected.items())[:3]
    with pytest.raises(InvalidInputError, match="positive limit, not 0"):
        col.search_groups(query, "color", limit=0)
    with pytest.raises(InvalidInputError, match="positive group_size, not -1"):
        col.search_groups(query, "color", group_size=-1)


def test_facet_counts_for_filter_menus(col, cat):
    assert col.facet("color") == dict(Counter(p["color"] for p in cat.payloads))
    cheap = Filter(ranges={"price": Range(lt=60)})
    expected = Counter(p["size"] for p in cat.payloads if p["price"] < 60)
    assert col.facet("size", filter=cheap) == dict(expected)
    assert sum(col.facet("color", limit=2).values()) <= len(cat.ids)
    assert len(col.facet("color", limit=2)) == 2


def test_facet_on_a_field_without_an_index_says_to_create_one(col, cat, backend):
    if backend.name == "local":  # qdrant-client's local mode counts any field, indexed or not
        expected = Counter(p["in_stock"] for p in cat.payloads)
        assert col.facet("in_stock") == dict(expected)
        return
    with pytest.raises(StoreError, match="'in_stock' .* has no keyword, integer or bool payload"):
        col.facet("in_stock")  # a bool field the spec left without an index


# What each engine says when a facet fails: the missing index, in Qdrant Edge's and a
# server's words (as qdrant-client's UnexpectedResponse prints it), and another failure that
# merely mentions an index.
_NO_INDEX = (
    "No appropriate index for faceting: `color`. Please create one to facet on this field. "
    "Check https://qdrant.tech/documentation/concepts/indexing/#payload-index to see which "
    "payload schemas support Match conditions"
)
_SERVER_NO_INDEX = (
    "Unexpected Response: 400 (Bad Request)\nRaw response content:\n"
    f'b\'{{"status":{{"error":"Wrong input: {_NO_INDEX}"}},"time":0.0004}}\''
)


@pytest.mark.parametrize(
    ("engine_says", "expected"),
    [
        (_NO_INDEX, "'color' .* has no keyword, integer or bool payload index"),
        (_SERVER_NO_INDEX, "'color' .* has no keyword, integer or bool payload index"),
        ("index out of range", "'color'.*: index out of range"),
    ],
)
def test_facet_failures_are_told_apart(col, backend, monkeypatch, engine_says, expected):
    class Refusing:
        def facet(self, *args, **kwargs):
            raise RuntimeError(engine_says)

    monkeypatch.setattr(col, "_shard" if backend.name == "embedded" else "_c", Refusing())
    with pytest.raises(StoreError, match=expected) as raised:
        col.facet("color")
    assert ("payload index" in str(raised.value)) == ("faceting" in engine_says)


def test_field_names_with_spaces_and_dots_and_numbers_that_turn_fractional(store, backend):
    # Catalog exports name columns "Variant Price"; Qdrant reads names as JSON paths, where a
    # space is invalid and a dot means nesting. And whole prices first, fractional ones later.
    indexes = {"Variant Price": "float", "colour.name": "keyword", "size": "float", "2024": "float"}
    col = store.create(backend.prefix + "odd", spec(payload_indexes=indexes))
    prices = [20, 30, 19.99, 9.5, 40]
    vectors = unit(np.random.default_rng(5), len(prices))
    col.upsert([
        Point(id=f"p{i}", vectors={"image": vectors[i]},
              payload={"Variant Price": price, "colour.name": ["red", "blue"][i % 2], "size": i,
                       "2024": i * 10})
        for i, price in enumerate(prices)
    ])  # fmt: skip
    col.optimize()
    query = unit(np.random.default_rng(6), 1)[0]

    def found(filter):
        return sorted(h.id for h in col.search(query, filter=filter, limit=10))

    assert found(Filter(ranges={"Variant Price": Range(lte=25)})) == ["p0", "p2", "p3"]
    assert found(Filter(equals={"Variant Price": 19.99})) == ["p2"]
    assert found(Filter(equals={"size": 3})) == ["p3"]
    assert found(Filter(equals={"colour.name": "blue"})) == ["p1", "p3"]
    assert found(Filter(any_of={"colour.name": ["red"]})) == ["p0", "p2", "p4"]
    assert col.count(Filter(ranges={"Variant Price": Range(gt=25)})) == 2
    assert col.facet("colour.name") == {"red": 3, "blue": 2}
    assert found(Filter(ranges={"2024": Range(gte=30)})) == ["p3", "p4"]
    with pytest.raises(InvalidInputError, match="double quote"):
        col.count(Filter(equals={'say "hi"': "x"}))


def test_payload_index_and_extra_metadata_are_recorded(store, col):
    col.create_payload_index("in_stock", "bool")
    assert col.info().payload_indexes["in_stock"] == "bool"
    with pytest.raises(ConfigurationError, match="unknown type"):
        col.create_payload_index("color", "fulltext")
    with pytest.raises(StoreError, match="cannot change"):
        col.set_extra({"model_id": "sneaky/other"})
    assert store.open(col.name).info().payload_indexes["in_stock"] == "bool"


def test_drop_missing_and_bad_names(store, backend, col):
    with pytest.raises(StoreError, match="no collection"):
        store.open(backend.prefix + "missing")
    with pytest.raises(ConfigurationError, match="not allowed"):
        store.create("../escape", spec())
    store.drop(col.name)
    assert not store.exists(col.name)
    store.drop(col.name)  # dropping twice is fine

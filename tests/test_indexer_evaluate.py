"""`evaluate`: streamed exact ranks equal a brute-force reference; zero-shot metrics by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fashion_clip.errors import CatalogError, InvalidInputError
from fashion_clip.ingest import evaluate as evaluate_module
from fashion_clip.ingest.catalog import Row
from fashion_clip.ingest.evaluate import evaluate
from fashion_clip.store import CollectionSpec, Point
from fashion_clip.store.embedded import EmbeddedStore
from fashion_clip.tasks.metrics import classification_metrics, retrieval_metrics

DIM = 8


def unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


class FakeModel:
    """Texts map to fixed vectors: captions to given ones, label prompts to axis vectors."""

    logit_scale = 100.0
    logit_bias = None

    def __init__(self, captions: dict[str, np.ndarray], labels: list[str]) -> None:
        self.vectors = dict(captions)
        for i, label in enumerate(labels):
            self.vectors[f"a photo of a {label}"] = np.eye(DIM, dtype=np.float32)[i]
            self.vectors.setdefault(label, np.eye(DIM, dtype=np.float32)[i])  # category query

    def encode_text(self, texts, *, batch_size: int = 32) -> np.ndarray:
        return np.stack([self.vectors[text] for text in texts])


@pytest.fixture
def collection(tmp_path):
    rng = np.random.default_rng(0)
    n = 60
    labels = ["dress", "shirt", "skirt"]
    truth = [labels[i % 3] for i in range(n)]
    # Images lean towards their label's axis, with noise: some are misclassified.
    images = unit(np.eye(DIM)[[i % 3 for i in range(n)]] + rng.normal(0, 0.6, (n, DIM)))
    captions = unit(images + rng.normal(0, 0.5, (n, DIM)))  # noisy: ranks spread past 10
    extra = unit(rng.normal(size=(15, DIM)))  # in the collection, not in the catalog
    store = EmbeddedStore(tmp_path / "q")
    col = store.create("c", CollectionSpec(model_id="fake", dim=DIM))
    col.upsert([Point(f"p{i}", {"image": images[i]}, {}) for i in range(n)])
    col.upsert([Point(f"x{i}", {"image": extra[i]}, {}) for i in range(15)])
    rows = [
        Row(i + 1, f"p{i}", f"{i}.jpg", f"caption {i}", {"category": truth[i]}) for i in range(n)
    ]
    rows.append(Row(n + 1, "not-indexed", "z.jpg", "caption z", {"category": "dress"}))
    model = FakeModel(
        {f"caption {i}": captions[i] for i in range(n)} | {"caption z": captions[0]}, labels
    )
    yield col, rows, model, images, captions, extra, truth, labels
    store.close()


def test_ranks_and_classification_match_brute_force(collection, monkeypatch):
    col, rows, model, images, captions, extra, truth, labels = collection
    monkeypatch.setattr(evaluate_module, "QUERY_BLOCK", 16)  # several blocks
    monkeypatch.setattr(evaluate_module, "PAGE", 7)  # several pages per scan
    result = evaluate(rows, col, model, "category")

    # Brute force over all 75 images: query i's answer is image i; the extra images compete.
    everything = np.concatenate([images, extra])
    scores = captions @ everything.T
    ranks = 1 + np.sum(scores > np.sum(captions * images, axis=1)[:, None] + 1e-6, axis=1)
    assert result.recall_at_1 == pytest.approx(np.mean(ranks <= 1))
    assert result.recall_at_5 == pytest.approx(np.mean(ranks <= 5))
    assert result.recall_at_10 == pytest.approx(np.mean(ranks <= 10))
    assert result.mrr == pytest.approx(np.mean(1 / ranks))
    assert 0 < result.recall_at_1 < result.recall_at_10 < 1  # a test that can tell

    predicted = [labels[i] for i in np.argmax(images[:, :3], axis=1)]
    expected = classification_metrics(truth, predicted)
    assert result.zero_shot_accuracy == pytest.approx(expected["accuracy"])
    assert result.weighted_f1 == pytest.approx(expected["weighted_f1"])
    assert 0 < result.zero_shot_accuracy < 1
    assert (result.queries, result.labelled, result.labels) == (60, 60, 3)
    assert result.not_indexed == 1 and result.collection_size == 75


def test_without_distractors_it_matches_the_shared_metrics(collection):
    col, rows, model, images, captions, *_ = collection
    col.delete([f"x{i}" for i in range(15)])
    result = evaluate(rows, col, model, "category")
    reference = retrieval_metrics(captions, images)
    assert result.recall_at_1 == pytest.approx(reference["recall@1"])
    assert result.recall_at_10 == pytest.approx(reference["recall@10"])
    assert result.mrr == pytest.approx(reference["mrr"])


def test_metrics_refuse_unpaired_inputs_naming_both_shapes():
    with pytest.raises(InvalidInputError, match=r"truth has shape \(3,\) but predicted has \(2,\)"):
        classification_metrics(["a", "b", "a"], ["a", "b"])
    with pytest.raises(InvalidInputError, match=r"queries \(2, 4\) and items \(3, 4\)"):
        retrieval_metrics(np.zeros((2, 4)), np.zeros((3, 4)))


def test_rows_without_captions_or_labels(collection):
    col, rows, model, *_ = collection
    bare = [Row(r.number, r.id, r.image, None, {}) for r in rows]
    with pytest.raises(CatalogError, match="label column 'category'"):
        evaluate(bare, col, model, "category")
    half = [Row(r.number, r.id, r.image, None, r.payload) for r in rows]
    result = evaluate(half, col, model, "category")
    assert result.recall_at_1 is None and result.mrr is None and result.queries == 0
    assert result.labelled == 60 and result.zero_shot_accuracy is not None


def test_a_catalog_with_none_of_its_rows_in_the_collection_is_an_error(collection):
    col, rows, model, *_ = collection
    strangers = [Row(r.number, f"other-{r.id}", r.image, r.caption, r.payload) for r in rows]
    with pytest.raises(CatalogError, match=r"none of the catalog's 61 rows are in collection 'c'"):
        evaluate(strangers, col, model, "category")


def brute_force(images, image_ids, captions_of, labels_of, caption_vectors, label_vectors):
    """The leaderboard's figures by exhaustive sorting, right answers first among equals.

    `captions_of` / `labels_of`: id -> caption / label of the catalog's indexed products."""
    figures = {}
    ranks = []
    for caption in captions_of.values():  # every row is a query
        scores = images @ caption_vectors[caption]
        relevant = np.array([captions_of.get(i) == caption for i in image_ids])
        order = np.lexsort((~relevant, -scores))
        ranks.append(1 + int(np.argmax(relevant[order])))
    ranks = np.array(ranks)
    if len(ranks):
        for k in (1, 5, 10):
            figures[f"recall_at_{k}"] = np.mean(ranks <= k)
        figures["mrr"] = np.mean(1 / ranks)
    p1, p10, rr = [], [], []
    for label in sorted(set(labels_of.values())):
        scores = images @ label_vectors[label]
        relevant = np.array([labels_of.get(i) == label for i in image_ids])
        ordered = relevant[np.lexsort((~relevant, -scores))]
        p1.append(ordered[0])
        p10.append(ordered[:10].sum() / 10)
        rr.append(1 / (1 + int(np.argmax(ordered))))
    figures["category_precision_at_1"] = np.mean(p1)
    figures["category_precision_at_10"] = np.mean(p10)
    figures["category_mrr"] = np.mean(rr)
    return figures


def test_leaderboard_metrics_match_brute_force_with_ties_and_repeated_captions(
    tmp_path, monkeypatch
):
    """One-hot pictures make exact ties (a score is one coordinate of the query, whatever the
    summation order); captions repeat every 10 products, labels every 3."""
    monkeypatch.setattr(evaluate_module, "QUERY_BLOCK", 4)
    monkeypatch.setattr(evaluate_module, "PAGE", 7)
    rng = np.random.default_rng(1)
    labels = ["dress", "shirt", "skirt"]
    n = 40
    axes = rng.integers(0, DIM, n + 6)
    images = np.eye(DIM, dtype=np.float32)[axes]
    ids = [f"p{i}" for i in range(n)] + [f"x{i}" for i in range(6)]  # x: not in the catalog
    captions_of = {f"p{i}": f"caption {i % 10}" for i in range(n)}
    labels_of = {f"p{i}": labels[i % 3] for i in range(n)}
    caption_vectors = {f"caption {j}": unit(rng.normal(size=DIM)) for j in range(10)}
    label_vectors = {label: unit(rng.normal(size=DIM)) for label in labels}
    store = EmbeddedStore(tmp_path / "q")
    col = store.create("c", CollectionSpec(model_id="fake", dim=DIM))
    col.upsert([Point(key, {"image": images[i]}, {}) for i, key in enumerate(ids)])
    rows = [
        Row(i + 1, key, f"{i}.jpg", captions_of[key], {"category": labels_of[key]})
        for i, key in enumerate(ids[:n])
    ]
    model = FakeModel(caption_vectors, labels)
    model.vectors.update(label_vectors)
    try:
        result = evaluate(rows, col, model, "category").as_dict()
    finally:
        store.close()

    expected = brute_force(images, ids, captions_of, labels_of, caption_vectors, label_vectors)
    for key, value in expected.items():
        assert result[key] == pytest.approx(value), key
    assert 0 < result["category_precision_at_10"] < 1 and 0 < result["mrr"] < 1
    assert result["queries"] == n  # every row a query, repeated captions included


def test_repeated_captions_all_count_as_right_answers(tmp_path):
    """Ten products share one caption; the query's best match among them is what counts."""
    store = EmbeddedStore(tmp_path / "q")
    col = store.create("c", CollectionSpec(model_id="fake", dim=DIM))
    images = np.eye(DIM, dtype=np.float32)
    col.upsert([Point(f"p{i}", {"image": images[i]}, {}) for i in range(DIM)])
    rows = [Row(i + 1, f"p{i}", "x.jpg", "a dress", {"category": "dress"}) for i in range(DIM)]
    model = FakeModel({"a dress": images[3]}, ["dress"])
    try:
        result = evaluate(rows, col, model, "category")
    finally:
        store.close()
    assert result.recall_at_1 == 1.0 and result.mrr == 1.0  # one product per caption: 1/8
    assert result.category_precision_at_1 == 1.0 and result.category_precision_at_10 == 0.8


def test_category_queries_go_through_the_prompt_templates(tmp_path):
    rng = np.random.default_rng(2)
    labels = ["dress", "shirt", "skirt"]
    images = unit(rng.normal(size=(30, DIM)))
    ids = [f"p{i}" for i in range(30)]
    labels_of = {key: labels[i % 3] for i, key in enumerate(ids)}
    store = EmbeddedStore(tmp_path / "q")
    col = store.create("c", CollectionSpec(model_id="fake", dim=DIM))
    col.upsert([Point(key, {"image": images[i]}, {}) for i, key in enumerate(ids)])
    rows = [
        Row(i + 1, key, "x.jpg", None, {"category": labels_of[key]}) for i, key in enumerate(ids)
    ]
    model = FakeModel({}, labels)
    bare = {label: unit(rng.normal(size=DIM)) for label in labels}
    model.vectors.update(bare)  # the bare labels point elsewhere than their prompts
    try:
        plain = evaluate(rows, col, model, "category").as_dict()
        prompted = evaluate(rows, col, model, "category", category_templates=["a photo of a {}"])
    finally:
        store.close()
    prompts = {label: model.vectors[f"a photo of a {label}"] for label in labels}
    for vectors, result in ((bare, plain), (prompts, prompted.as_dict())):
        expected = brute_force(images, ids, {}, labels_of, {}, vectors)
        for key in ("category_precision_at_1", "category_precision_at_10", "category_mrr"):
            assert result[key] == pytest.approx(expected[key]), key
    assert plain["category_mrr"] != pytest.approx(prompted.category_mrr)


def test_the_demo_model_on_the_demo_catalog(tmp_path, monkeypatch, capsys):
    """Quality floors of the leaderboard's metrics on the bundled model and catalog (measured:
    recall@10 1.00, category precision@1 1.00, @10 0.99, zero-shot accuracy 0.93)."""
    from fashion_clip.demo import DEMO_CATALOG_FILE
    from tests.indexer_fixtures import run_indexer, use_store

    use_store(monkeypatch, tmp_path / "qdrant", "demo")
    assert run_indexer(capsys, "demo")[0] == 0
    code, out, err = run_indexer(
        capsys, "evaluate", DEMO_CATALOG_FILE, "--collection", "demo",
        "--label-column", "category", "--json",
    )  # fmt: skip
    assert code == 0, err
    figures = json.loads(out)
    assert figures["recall_at_10"] >= 0.95 and figures["mrr"] >= 0.9
    assert figures["category_precision_at_1"] >= 0.9
    assert figures["category_precision_at_10"] >= 0.9 and figures["category_mrr"] >= 0.9
    assert figures["zero_shot_accuracy"] >= 0.9

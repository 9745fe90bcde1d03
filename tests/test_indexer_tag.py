"""`indexer tag`: zero-shot labels from the stored image vectors into the payload, on both
stores; the demo catalog's categories recovered from its pictures alone."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fashion_clip.errors import InvalidInputError
from fashion_clip.ingest.tagging import Attribute, parse_attribute, tag_collection
from fashion_clip.store import CollectionSpec, Point
from fashion_clip.store.base import Ranking
from fashion_clip.store.bm25 import query_vector
from tests.indexer_fixtures import points, run_indexer, use_store
from tests.store_fixtures import backend_for

DIM = 8
LABELS = ("dress", "shirt", "skirt")


class AxisModel:
    """Label prompts map to axis vectors: label i ("a photo of a …") to axis i."""

    logit_scale = 100.0
    logit_bias = None

    def encode_text(self, texts, *, batch_size: int = 32) -> np.ndarray:
        rows = [LABELS.index(text.removeprefix("a photo of a ")) for text in texts]
        return np.eye(DIM, dtype=np.float32)[rows]


@pytest.fixture(params=["embedded", "local"])
def store(request, tmp_path):
    opened = backend_for(request.param, tmp_path / "q").new_store()
    yield opened
    opened.close()


def test_labels_confidence_floor_and_kept_values(store, monkeypatch):
    monkeypatch.setattr("fashion_clip.ingest.tagging.PAGE", 4)  # several pages
    eye = np.eye(DIM, dtype=np.float32)
    unsure = (eye[0] + eye[1]) / np.sqrt(2)  # halfway between dress and shirt: p = 0.5 each
    vectors = [eye[i % 3] for i in range(9)] + [unsure]
    col = store.create("c", CollectionSpec(model_id="axis", dim=DIM))
    payloads = [{"brand": "acme"} for _ in vectors]
    payloads[2]["category"] = "hand-written"
    col.upsert([Point(f"p{i}", {"image": v}, payloads[i]) for i, v in enumerate(vectors)])
    attribute = Attribute("category", LABELS)

    summary = tag_collection(col, AxisModel(), [attribute], min_confidence=0.6)
    assert (summary.tagged, summary.unsure, summary.kept) == (
        {"category": 8}, {"category": 1}, {"category": 1},
    )  # fmt: skip
    stored = {p.id: p.payload for p in col.iter_points()}
    for i in range(9):
        expected = "hand-written" if i == 2 else LABELS[i % 3]
        assert stored[f"p{i}"]["category"] == expected
        assert stored[f"p{i}"]["brand"] == "acme"  # other fields untouched
    assert stored["p0"]["category_confidence"] == pytest.approx(1.0, abs=1e-3)
    assert "category" not in stored["p9"] and "category_confidence" not in stored["p9"]
    assert col.info().payload_indexes["category"] == "keyword"
    assert col.facet("category")["dress"] == 3
    assert all(set(p.vectors) == {"image"} for p in col.iter_points(with_vectors=True))

    # keyword search finds the tagged values at once, not only once a point is written again
    skirts = col.query(Ranking(keywords=query_vector("skirt"), limit=20))
    assert sorted(h.id for h in skirts) == ["p5", "p8"]  # p2's own "hand-written" kept

    tag_collection(col, AxisModel(), [attribute], overwrite=True)
    skirts = col.query(Ranking(keywords=query_vector("skirt"), limit=20))
    assert sorted(h.id for h in skirts) == ["p2", "p5", "p8"]
    stored = {p.id: p.payload for p in col.iter_points()}
    assert stored["p2"]["category"] == "skirt"
    assert stored["p9"]["category"] in ("dress", "shirt")  # no floor: the best label


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("category", "FIELD=label1,label2"),
        ("category=dress", "at least two labels"),
        ("_fingerprint=a,b", "not a field tags may write"),
        ("=a,b", "FIELD=label1,label2"),
    ],
)
def test_bad_attributes_name_the_problem(text, expected):
    with pytest.raises(InvalidInputError, match=expected):
        parse_attribute(text)


def test_the_demo_catalogs_categories_are_recovered_from_its_pictures(
    tmp_path, monkeypatch, capsys
):
    """Demo catalog without its category and caption columns: tagging `category` among the
    catalog's categories recovers it for at least 90 % of products."""
    from fashion_clip.demo import DEMO_CATALOG_DIR, DEMO_CATALOG_FILE

    records = [json.loads(line) for line in DEMO_CATALOG_FILE.read_text().splitlines() if line]
    truth = {record["id"]: record.pop("category") for record in records}
    for record in records:
        record.pop("caption", None)
        record["image"] = str(DEMO_CATALOG_DIR / record["image"])
    bare = tmp_path / "bare.jsonl"
    bare.write_text("".join(json.dumps(r) + "\n" for r in records))
    use_store(monkeypatch, tmp_path / "qdrant", "demo")
    code, _, err = run_indexer(capsys, "index", bare, "--collection", "bare")
    assert code == 0, err

    labels = ",".join(sorted(set(truth.values())))
    code, out, err = run_indexer(
        capsys, "tag", "--collection", "bare", "--attribute", f"category={labels}"
    )
    assert code == 0, err
    assert f"tagged {len(records)}" in out
    stored = points(tmp_path / "qdrant", "bare")
    right = sum(stored[str(key)].payload.get("category") == label for key, label in truth.items())
    assert right / len(truth) >= 0.90, f"{right} of {len(truth)}"
    print(f"recovered {right} of {len(truth)}")

    code, out, _ = run_indexer(capsys, "info", "--collection", "bare", "--json")
    assert "category:keyword" in json.loads(out)["payload_indexes"]  # the app's filter


def test_tag_usage_errors_exit_2(tmp_path, monkeypatch, capsys):
    use_store(monkeypatch, tmp_path / "qdrant", "demo")
    code, _, err = run_indexer(capsys, "tag", "--attribute", "colour=red")
    assert code == 2 and "at least two labels" in err
    code, _, err = run_indexer(capsys, "tag", "--attribute", "a=b,c", "--min-confidence", "2")
    assert code == 2 and "between 0 and 1" in err


def test_an_index_run_keeps_tags_while_it_keeps_the_vectors(tmp_path, monkeypatch, capsys):
    """A changed price keeps the row's tags; a changed picture drops them (they described the
    old one) and tagging again fills only that row; a catalog column of the tag's name wins."""
    from fashion_clip.demo import DEMO_CATALOG_DIR, DEMO_CATALOG_FILE

    records = [json.loads(line) for line in DEMO_CATALOG_FILE.read_text().splitlines()][:6]
    for record in records:
        record.pop("category")
        record["image"] = str(DEMO_CATALOG_DIR / record["image"])
    catalog = tmp_path / "shop.jsonl"

    def write(rows):
        catalog.write_text("".join(json.dumps(r) + "\n" for r in rows))

    write(records)
    use_store(monkeypatch, tmp_path / "qdrant", "demo")
    assert run_indexer(capsys, "index", catalog, "--collection", "shop")[0] == 0
    tag = ("tag", "--collection", "shop", "--attribute", "kind=dress,shirt,shoes,bag")
    assert run_indexer(capsys, *tag)[0] == 0
    tagged = {key: p.payload["kind"] for key, p in points(tmp_path / "qdrant", "shop").items()}

    changed = [dict(r) for r in records]
    changed[0]["price"] = 1234.5  # payload only: vectors (and tags) kept
    changed[1]["image"] = records[2]["image"]  # another picture: embedded again
    changed[3]["kind"] = "from the catalog"
    write(changed)
    code, out, err = run_indexer(capsys, "index", catalog, "--collection", "shop")
    assert code == 0, err
    assert "indexed 3, unchanged 3" in out
    stored = {key: p.payload for key, p in points(tmp_path / "qdrant", "shop").items()}
    first, second, fourth = (str(records[i]["id"]) for i in (0, 1, 3))
    assert stored[first]["price"] == 1234.5
    assert stored[first]["kind"] == tagged[first] and "kind_confidence" in stored[first]
    assert "kind" not in stored[second] and "kind_confidence" not in stored[second]
    assert stored[fourth]["kind"] == "from the catalog"
    assert "kind_confidence" not in stored[fourth]  # the tag's, not the catalog's
    for key in (str(records[i]["id"]) for i in (2, 4, 5)):  # unchanged rows
        assert stored[key]["kind"] == tagged[key]

    code, _, err = run_indexer(capsys, *tag)
    assert code == 0, err
    stored = {key: p.payload for key, p in points(tmp_path / "qdrant", "shop").items()}
    assert stored[second]["kind"] == tagged[str(records[2]["id"])]  # its picture's tag
    assert stored[fourth]["kind"] == "from the catalog"  # a value it has is kept

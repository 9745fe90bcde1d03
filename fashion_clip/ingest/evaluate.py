"""Retrieval and zero-shot metrics of an indexed collection, as FashionCLIP's paper and Marqo's
fashion leaderboard report them. Every query ranks every image vector in the collection.

- caption → image: each catalog caption, embedded by the model, is a query; every product
  whose caption is identical is a right answer (catalogs repeat captions per class). Rank =
  1 + the images scoring above the best right answer; recall@1/5/10 and the mean reciprocal
  rank (MRR) are exact (ranks past 10 count for MRR).
- category → product: each distinct label of the label column, through the prompt templates
  (the bare label by default), is a query; every product with that label is relevant.
  precision@1, precision@10 (relevant among the first 10, over 10) and MRR (of the first
  relevant), averaged over the labels.
- zero-shot: each indexed image is classified among the label column's distinct values
  ("a photo of a {label}"); accuracy and F1 per label, averaged weighted by support.

Ties go to the right answers, so the figures match an exhaustive search that sorts them
first. Queries are ranked in blocks, each against one page-by-page scan of the collection, so
memory holds one block of query vectors and one page of image vectors (plus the catalog's
ids, captions and labels).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from fashion_clip.errors import CatalogError
from fashion_clip.ingest.catalog import Row
from fashion_clip.model.clip import ClipModel
from fashion_clip.store import Collection
from fashion_clip.tasks.classify import DEFAULT_TEMPLATES, label_embeddings, scores_to_probabilities
from fashion_clip.tasks.metrics import classification_metrics, higher_counts, rank_metrics

QUERY_BLOCK = 2048  # captions ranked per scan of the collection
PAGE = 1024  # points read per page of a scan


@dataclass(frozen=True)
class Evaluation:
    """Metrics in [0, 1] (None where nothing could be measured) and the counts behind them."""

    recall_at_1: float | None
    recall_at_5: float | None
    recall_at_10: float | None
    mrr: float | None
    category_precision_at_1: float | None
    category_precision_at_10: float | None
    category_mrr: float | None
    zero_shot_accuracy: float | None
    weighted_f1: float | None
    queries: int  # captions ranked
    labelled: int  # images classified
    labels: int  # distinct labels
    not_indexed: int  # catalog rows whose id is not in the collection
    collection_size: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def normalize_label(value: Any) -> str | None:
    """A label cell as text (whitespace collapsed), or None for empty and non-scalar cells."""
    if value is None or isinstance(value, (list, dict)):
        return None
    text = " ".join(str(value).split())
    return text or None


@dataclass
class _Catalog:
    """What evaluation needs of the catalog's rows that are in the collection."""

    captions: dict[str, list[str]]  # caption -> ids (as text) of the products it describes
    label_list: list[str]  # distinct labels, first spelling of each
    label_of: dict[str, int]  # id (as text) -> index in label_list
    not_indexed: int


def evaluate(
    rows: Iterable[Row],
    collection: Collection,
    model: ClipModel,
    label_column: str,
    templates: Sequence[str] = DEFAULT_TEMPLATES,
    category_templates: Sequence[str] = ("{}",),
) -> Evaluation:
    """Measure `collection` against the catalog `rows` (only `Row`s; problems filtered out).

    `templates` make zero-shot prompts, `category_templates` the category queries.
    """
    catalog = _read_catalog(rows, collection, label_column)
    ranks = _caption_ranks(collection, model, catalog.captions)
    recall = rank_metrics(ranks, (1, 5, 10)) if len(ranks) else {}
    category = _category_retrieval(collection, model, catalog, category_templates)
    accuracy, f1, labelled = _zero_shot(collection, model, catalog, templates)
    return Evaluation(
        recall_at_1=recall.get("recall@1"),
        recall_at_5=recall.get("recall@5"),
        recall_at_10=recall.get("recall@10"),
        mrr=recall.get("mrr"),
        category_precision_at_1=category[0],
        category_precision_at_10=category[1],
        category_mrr=category[2],
        zero_shot_accuracy=accuracy,
        weighted_f1=f1,
        queries=len(ranks),
        labelled=labelled,
        labels=len(catalog.label_list),
        not_indexed=catalog.not_indexed,
        collection_size=collection.count(),
    )


def _read_catalog(rows: Iterable[Row], collection: Collection, label_column: str) -> _Catalog:
    items = [
        (str(row.id), row.caption, normalize_label(row.payload.get(label_column))) for row in rows
    ]
    spelling = _label_spellings(label for _, _, label in items)
    if not spelling:
        raise CatalogError(f"no catalog row has a value in the label column {label_column!r}")
    present = _present_ids(collection, [item[0] for item in items])
    if items and not present:
        # All-null figures with exit 0 would read as a measurement; it is a wrong pairing.
        raise CatalogError(
            f"none of the catalog's {len(items)} rows are in collection {collection.name!r}; "
            "index the catalog into it first, or name its collection with --collection"
        )
    label_list = list(spelling.values())
    index = {label.lower(): i for i, label in enumerate(label_list)}
    captions: dict[str, list[str]] = {}
    label_of: dict[str, int] = {}
    for key, caption, label in items:
        if key not in present:
            continue
        if caption:
            captions.setdefault(caption, []).append(key)
        if label is not None:
            label_of[key] = index[label.lower()]
    not_indexed = sum(item[0] not in present for item in items)
    return _Catalog(captions, label_list, label_of, not_indexed)


def _label_spellings(labels: Iterable[str | None]) -> dict[str, str]:
    """Lower-case label -> its first spelling, as `classify.parse_labels` dedups them."""
    spellings: dict[str, str] = {}
    for label in labels:
        if label is not None:
            spellings.setdefault(label.lower(), label)
    return spellings


def _present_ids(collection: Collection, ids: list[str]) -> set[str]:
    """The ids among `ids` whose point has an image vector."""
    present: set[str] = set()
    for start in range(0, len(ids), QUERY_BLOCK):
        held = collection.retrieve(ids[start : start + QUERY_BLOCK], with_vectors=True)
        present.update(str(p.id) for p in held if "image" in p.vectors)
    return present


def _image_vectors(collection: Collection, ids: Sequence[str]) -> dict[str, np.ndarray]:
    vectors: dict[str, np.ndarray] = {}
    for start in range(0, len(ids), QUERY_BLOCK):
        for point in collection.retrieve(list(ids[start : start + QUERY_BLOCK]), True):
            if "image" in point.vectors:
                vectors[str(point.id)] = point.vectors["image"]
    return vectors


def _caption_ranks(
    collection: Collection, model: ClipModel, captions: dict[str, list[str]]
) -> np.ndarray:
    """(rows,) the rank of each captioned row's query. Rows with the same caption ask the
    same question, so each distinct caption is ranked once and its rank repeated."""
    groups = list(captions.items())
    ranks: list[np.ndarray] = []
    for start in range(0, len(groups), QUERY_BLOCK):
        block = groups[start : start + QUERY_BLOCK]
        text = model.encode_text([caption for caption, _ in block])  # (q, dim), unit
        vectors = _image_vectors(collection, [key for _, keys in block for key in keys])
        best = np.array(
            [
                np.max(np.stack([vectors[k] for k in keys]) @ text[i])
                for i, (_, keys) in enumerate(block)
            ]
        )  # (q,) each query's best-scoring right answer: the target of its rank
        higher = np.zeros(len(block), dtype=np.int64)
        for page, _ in _pages(collection):
            higher += higher_counts(text, page, best)
        ranks.append(np.repeat(1 + higher, [len(keys) for _, keys in block]))
    return np.concatenate(ranks) if ranks else np.zeros(0, dtype=np.int64)


def _pages(collection: Collection):
    """(image vectors (p, dim), their ids as text) of the collection, page by page."""
    vectors: list[np.ndarray] = []
    ids: list[str] = []
    for point in collection.iter_points(batch_size=PAGE, with_vectors=True):
        vector = point.vectors.get("image")
        if vector is not None:
            vectors.append(vector)
            ids.append(str(point.id))
        if len(vectors) >= PAGE:
            yield np.stack(vectors), ids
            vectors, ids = [], []
    if vectors:
        yield np.stack(vectors), ids


def _category_retrieval(
    collection: Collection, model: ClipModel, catalog: _Catalog, templates: Sequence[str]
) -> tuple[float | None, float | None, float | None]:
    """Precision@1, precision@10 and MRR of the labels as queries, averaged over the labels
    with at least one indexed product.

    Two scans: the first finds each label's best-scoring relevant product, the second counts
    what scores above it (the MRR's rank) and keeps each label's 10 best (relevant first among
    equals). Both score each page the same way, so a product ties with itself exactly.
    """
    asked = sorted(set(catalog.label_of.values()))
    if not asked:
        return None, None, None
    text = label_embeddings(model, [catalog.label_list[i] for i in asked], templates)
    position = {label: row for row, label in enumerate(asked)}
    best = np.full(len(asked), -np.inf)
    for page, ids in _pages(collection):
        scores, relevant = _scored(text, page, ids, catalog.label_of, position)
        best = np.maximum(best, np.max(np.where(relevant, scores, -np.inf), axis=1))
    above = np.zeros(len(asked), dtype=np.int64)
    top_scores = np.full((len(asked), 0), -np.inf, dtype=np.float32)
    top_relevant = np.zeros((len(asked), 0), dtype=bool)
    for page, ids in _pages(collection):
        scores, relevant = _scored(text, page, ids, catalog.label_of, position)
        above += np.sum(scores > best[:, None], axis=1)
        top_scores = np.concatenate([top_scores, scores], axis=1)
        top_relevant = np.concatenate([top_relevant, relevant], axis=1)
        order = np.lexsort((~top_relevant, -top_scores), axis=1)[:, :10]
        top_scores = np.take_along_axis(top_scores, order, axis=1)
        top_relevant = np.take_along_axis(top_relevant, order, axis=1)
    precision_1 = float(np.mean(top_relevant[:, :1].sum(axis=1)))
    precision_10 = float(np.mean(top_relevant.sum(axis=1) / 10))
    return precision_1, precision_10, float(np.mean(1.0 / (1 + above)))


def _scored(
    text: np.ndarray,
    page: np.ndarray,
    ids: list[str],
    label_of: dict[str, int],
    position: dict[int, int],
) -> tuple[np.ndarray, np.ndarray]:
    """(labels, p) scores of a page's images, and whether each image is relevant to each."""
    rows = np.array([position.get(label_of.get(key, -1), -1) for key in ids])
    relevant = rows[None, :] == np.arange(len(text))[:, None]
    return text @ page.T, relevant


def _zero_shot(
    collection: Collection, model: ClipModel, catalog: _Catalog, templates: Sequence[str]
) -> tuple[float | None, float | None, int]:
    """(accuracy, weighted F1, images classified) of the indexed labelled products."""
    keys = list(catalog.label_of)
    if not keys:
        return None, None, 0
    text = label_embeddings(model, catalog.label_list, templates)
    truth: list[int] = []
    predicted: list[int] = []
    for start in range(0, len(keys), QUERY_BLOCK):
        block = keys[start : start + QUERY_BLOCK]
        vectors = _image_vectors(collection, block)
        images = np.stack([vectors[key] for key in block])
        probabilities = scores_to_probabilities(model, images @ text.T)
        predicted.extend(np.argmax(probabilities, axis=1).tolist())
        truth.extend(catalog.label_of[key] for key in block)
    names = catalog.label_list
    figures = classification_metrics([names[i] for i in truth], [names[i] for i in predicted])
    return figures["accuracy"], figures["weighted_f1"], len(truth)

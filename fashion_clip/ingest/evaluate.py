"""Retrieval and zero-shot metrics of an indexed collection, as FashionCLIP's paper reports them.

- caption → image: each catalog caption, embedded by the model, is a query against every image
  vector in the collection; the row's own image is the one right answer. Its rank gives
  recall@1/5/10 and the mean reciprocal rank (MRR), exact (ranks past 10 count for MRR).
- zero-shot: each indexed image is classified among the label column's distinct values
  ("a photo of a {label}"); accuracy and F1 per label, averaged weighted by support.

Captions are ranked in blocks, each against one page-by-page scan of the collection, so
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
from fashion_clip.tasks.classify import DEFAULT_TEMPLATES, label_probabilities
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


def evaluate(
    rows: Iterable[Row],
    collection: Collection,
    model: ClipModel,
    label_column: str,
    templates: Sequence[str] = DEFAULT_TEMPLATES,
) -> Evaluation:
    """Measure `collection` against the catalog `rows` (only `Row`s; problems filtered out)."""
    items = [(row.id, row.caption, normalize_label(row.payload.get(label_column))) for row in rows]
    labels = _label_spellings(label for _, _, label in items)
    if not labels:
        raise CatalogError(f"no catalog row has a value in the label column {label_column!r}")
    label_list = list(labels.values())

    ranks: list[int] = []
    truth: list[int] = []
    predicted: list[int] = []
    not_indexed = 0
    for start in range(0, len(items), QUERY_BLOCK):
        block = items[start : start + QUERY_BLOCK]
        held = collection.retrieve([item[0] for item in block], with_vectors=True)
        images = {str(p.id): p.vectors["image"] for p in held if "image" in p.vectors}
        not_indexed += sum(str(item[0]) not in images for item in block)
        present = [item for item in block if str(item[0]) in images]

        queries = [item for item in present if item[1]]
        if queries:
            text = model.encode_text([item[1] for item in queries])  # (q, dim), unit
            targets = np.stack([images[str(item[0])] for item in queries])  # (q, dim)
            ranks.extend(_ranks(collection, text, targets).tolist())

        labelled = [item for item in present if item[2] is not None]
        if labelled:
            vectors = np.stack([images[str(item[0])] for item in labelled])
            probabilities = label_probabilities(model, vectors, label_list, templates)
            predicted.extend(np.argmax(probabilities, axis=1).tolist())
            truth.extend(label_list.index(labels[item[2].lower()]) for item in labelled)

    if items and not_indexed == len(items):
        # All-null figures with exit 0 would read as a measurement; it is a wrong pairing.
        raise CatalogError(
            f"none of the catalog's {len(items)} rows are in collection {collection.name!r}; "
            "index the catalog into it first, or name its collection with --collection"
        )
    recall = rank_metrics(np.asarray(ranks), (1, 5, 10)) if ranks else {}
    accuracy = f1 = None
    if truth:
        figures = classification_metrics(
            [label_list[i] for i in truth], [label_list[i] for i in predicted]
        )
        accuracy, f1 = figures["accuracy"], figures["weighted_f1"]
    return Evaluation(
        recall_at_1=recall.get("recall@1"),
        recall_at_5=recall.get("recall@5"),
        recall_at_10=recall.get("recall@10"),
        mrr=recall.get("mrr"),
        zero_shot_accuracy=accuracy,
        weighted_f1=f1,
        queries=len(ranks),
        labelled=len(truth),
        labels=len(label_list),
        not_indexed=not_indexed,
        collection_size=collection.count(),
    )


def _label_spellings(labels: Iterable[str | None]) -> dict[str, str]:
    """Lower-case label -> its first spelling, as `classify.parse_labels` dedups them."""
    spellings: dict[str, str] = {}
    for label in labels:
        if label is not None:
            spellings.setdefault(label.lower(), label)
    return spellings


def _ranks(collection: Collection, queries: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """(q,) 1-based rank of each query's target among all image vectors of the collection,
    counted page by page (`tasks.metrics.higher_counts`)."""
    target_scores = np.sum(queries * targets, axis=1)  # (q,)
    higher = np.zeros(len(queries), dtype=np.int64)
    batch: list[np.ndarray] = []
    for point in collection.iter_points(batch_size=PAGE, with_vectors=True):
        vector = point.vectors.get("image")
        if vector is not None:
            batch.append(vector)
        if len(batch) >= PAGE:
            higher += higher_counts(queries, np.stack(batch), target_scores)
            batch.clear()
    if batch:
        higher += higher_counts(queries, np.stack(batch), target_scores)
    return higher + 1

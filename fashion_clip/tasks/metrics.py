"""Retrieval and classification metrics, as FashionCLIP's paper and Marqo's leaderboard report."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fashion_clip.errors import InvalidInputError

# Scores this close above a target's count as ties, in its favour: the same pair of vectors
# scored by two float paths (a product here, a page of a scan there) differs by ~1e-7.
TIE_SLACK = 1e-6


def higher_counts(
    queries: np.ndarray, candidates: np.ndarray, target_scores: np.ndarray
) -> np.ndarray:
    """(q,) how many of `candidates` (n, dim) each query (q, dim) scores above its target.

    `target_scores` (q,) are the queries' cosines with their own targets. A target's rank is
    1 + its count over all candidates, which may come page by page: ties go in the target's
    favour, so the rank matches an exhaustive search.
    """
    return np.sum(queries @ candidates.T > target_scores[:, None] + TIE_SLACK, axis=1)


def rank_metrics(ranks: np.ndarray, ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """Recall@k (the share of 1-based `ranks` within k) and the mean reciprocal rank."""
    ranks = np.asarray(ranks, dtype=np.float64)
    figures = {f"recall@{k}": float(np.mean(ranks <= k)) for k in ks}
    figures["mrr"] = float(np.mean(1.0 / ranks))
    return figures


def retrieval_metrics(
    queries: np.ndarray, items: np.ndarray, ks: Sequence[int] = (1, 5, 10)
) -> dict[str, float]:
    """Recall@k and MRR when query i's one relevant item is item i.

    `queries` (n, dim) and `items` (n, dim) are unit vectors; ranking is by cosine.
    """
    if queries.shape != items.shape:
        raise InvalidInputError(f"queries {queries.shape} and items {items.shape} must pair up")
    relevant = np.sum(queries * items, axis=1)  # (n,)
    return rank_metrics(1 + higher_counts(queries, items, relevant), ks)


def classification_metrics(truth: Sequence[str], predicted: Sequence[str]) -> dict[str, float]:
    """Accuracy and support-weighted macro F1 over the labels present in `truth`."""
    truth_array, predicted_array = np.asarray(truth), np.asarray(predicted)
    if truth_array.shape != predicted_array.shape:
        raise InvalidInputError(
            f"truth has shape {truth_array.shape} but predicted has {predicted_array.shape}; "
            "they must pair up one label per item"
        )
    accuracy = float(np.mean(truth_array == predicted_array)) if len(truth_array) else 0.0
    weighted_f1 = 0.0
    for label in np.unique(truth_array):
        true_positive = np.sum((predicted_array == label) & (truth_array == label))
        precision = true_positive / max(np.sum(predicted_array == label), 1)
        recall = true_positive / max(np.sum(truth_array == label), 1)
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        weighted_f1 += f1 * np.sum(truth_array == label) / len(truth_array)
    return {"accuracy": accuracy, "weighted_f1": float(weighted_f1)}

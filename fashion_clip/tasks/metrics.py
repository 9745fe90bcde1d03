"""Retrieval and classification metrics, as FashionCLIP's paper and Marqo's leaderboard report."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fashion_clip.errors import InvalidInputError


def retrieval_metrics(
    queries: np.ndarray, items: np.ndarray, ks: Sequence[int] = (1, 5, 10)
) -> dict[str, float]:
    """Recall@k and MRR when query i's one relevant item is item i.

    `queries` (n, dim) and `items` (n, dim) are unit vectors; ranking is by cosine.
    """
    if queries.shape != items.shape:
        raise InvalidInputError(f"queries {queries.shape} and items {items.shape} must pair up")
    scores = queries @ items.T  # (n, n)
    relevant = np.diag(scores)[:, None]
    # rank of the relevant item = 1 + items scoring strictly higher (ties counted in its favour)
    ranks = 1 + np.sum(scores > relevant, axis=1)
    figures = {f"recall@{k}": float(np.mean(ranks <= k)) for k in ks}
    figures["mrr"] = float(np.mean(1.0 / ranks))
    return figures


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

"""The metrics themselves, on cases worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from fashion_clip.tasks.metrics import classification_metrics, retrieval_metrics


def test_retrieval_metrics_by_hand() -> None:
    items = np.eye(3, dtype=np.float32)
    # query 0 finds item 0 first; query 1 ranks item 1 second; query 2 ranks item 2 third
    queries = np.array([[1, 0, 0], [0.8, 0.6, 0], [0.6, 0.48, 0.4]], dtype=np.float32)
    figures = retrieval_metrics(queries, items, ks=(1, 2, 3))
    assert figures["recall@1"] == pytest.approx(1 / 3)
    assert figures["recall@2"] == pytest.approx(2 / 3)
    assert figures["recall@3"] == pytest.approx(1.0)
    assert figures["mrr"] == pytest.approx((1 + 1 / 2 + 1 / 3) / 3)
    with pytest.raises(ValueError):
        retrieval_metrics(queries[:2], items)


def test_classification_metrics_by_hand() -> None:
    truth = ["a", "a", "b", "c"]
    predicted = ["a", "b", "b", "c"]
    figures = classification_metrics(truth, predicted)
    assert figures["accuracy"] == pytest.approx(0.75)
    # F1: a = 2/3 (p=1, r=.5), b = 2/3 (p=.5, r=1), c = 1; weights 2/4, 1/4, 1/4
    assert figures["weighted_f1"] == pytest.approx(0.5 * 2 / 3 + 0.25 * 2 / 3 + 0.25)

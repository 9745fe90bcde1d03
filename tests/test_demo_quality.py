"""Quality of the bundled demo model on the shipped demo catalog (never used in training).

The issue's thresholds, asserted as they stand: caption->image recall@10 >= 0.90, zero-shot
category accuracy >= 0.90 and colour accuracy >= 0.85. Recall@1, MRR and pattern accuracy
are held to floors a little under what the shipped model reaches, so a worse retrain shows.
Everything is measured through the library's own path.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from fashion_clip.demo import DEMO_CATALOG_DIR, DEMO_CATALOG_FILE
from fashion_clip.tasks.classify import best_labels, label_probabilities
from fashion_clip.tasks.embed import encode_images
from fashion_clip.tasks.metrics import classification_metrics, retrieval_metrics

log = logging.getLogger(__name__)


@pytest.fixture(scope="module")
def catalog() -> list[dict]:
    return [json.loads(line) for line in DEMO_CATALOG_FILE.read_text().splitlines() if line]


@pytest.fixture(scope="module")
def image_vectors(demo_model, catalog) -> np.ndarray:
    return encode_images(demo_model, [DEMO_CATALOG_DIR / item["image"] for item in catalog])


def test_the_shipped_catalog_has_what_the_issue_asks(catalog) -> None:
    assert len(catalog) >= 300
    assert len({item["id"] for item in catalog}) == len(catalog)
    assert len({item["category"] for item in catalog}) >= 8
    assert len({item["color"] for item in catalog}) >= 10
    assert {"solid", "striped", "dotted", "checked"} <= {item["pattern"] for item in catalog}
    for item in catalog[:20]:
        assert {"id", "image", "caption", "category", "color", "pattern", "price", "brand"} <= set(
            item
        )
        assert (DEMO_CATALOG_DIR / item["image"]).is_file()


def test_caption_to_image_retrieval(demo_model, catalog, image_vectors) -> None:
    captions = demo_model.encode_text([item["caption"] for item in catalog])
    figures = retrieval_metrics(captions, image_vectors, ks=(1, 5, 10))
    log.info("demo retrieval: %s", figures)
    assert figures["recall@10"] >= 0.90, figures
    assert figures["recall@1"] >= 0.85, figures  # chance is 1/400
    assert figures["mrr"] >= 0.90, figures


@pytest.mark.parametrize(
    ("field", "threshold"),
    [("category", 0.90), ("color", 0.85), ("pattern", 0.85)],  # chance: 0.10, 0.10, 0.25
)
def test_zero_shot_classification(demo_model, catalog, image_vectors, field, threshold) -> None:
    labels = sorted({item[field] for item in catalog})
    probabilities = label_probabilities(demo_model, image_vectors, labels)
    predicted = best_labels(probabilities, labels)
    figures = classification_metrics([item[field] for item in catalog], predicted)
    log.info("demo zero-shot %s: %s", field, figures)
    assert figures["accuracy"] >= threshold, figures

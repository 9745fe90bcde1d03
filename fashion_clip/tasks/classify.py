"""Zero-shot classification: images against free-text labels, with prompt templates.

Probabilities follow the model's own training objective: a softmax over labels of the
learned logit scale x cosine for CLIP, an independent sigmoid per label for SigLIP.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from fashion_clip.errors import InvalidInputError
from fashion_clip.model.text import split_items, visible_text

# FashionCLIP's paper and the original package prompt with "a photo of a {}".
DEFAULT_TEMPLATES: tuple[str, ...] = ("a photo of a {}",)


class TextEncoder(Protocol):
    @property
    def logit_scale(self) -> float: ...

    @property
    def logit_bias(self) -> float | None: ...

    def encode_text(self, texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray: ...


def parse_labels(labels: str | Sequence[str]) -> list[str]:
    """Comma-separated text or a list -> unique, stripped, non-empty labels (order kept).

    The app's label box wants this forgiving reading ("Dress, dress," is one label); the
    Python API keeps the caller's labels as they are (`label_list`).
    """
    items = split_items(labels) if isinstance(labels, str) else [str(label) for label in labels]
    kept: dict[str, str] = {}  # lowercased -> the first spelling: one lookup per item
    for item in items:
        label = prompt_text(item)
        if label:
            kept.setdefault(label.lower(), label)
    if not kept:
        raise InvalidInputError("no labels given: pass at least one label, e.g. 'dress, shirt'")
    return list(kept.values())


def label_list(labels: str | Sequence[str]) -> list[str]:
    """The caller's labels, in their order and number, each exactly as given.

    A string is read as labels separated by commas or new lines (stripped; empty parts such
    as a trailing comma's are dropped). Every label must have some visible text: its column
    could mean nothing.
    """
    if isinstance(labels, str):
        items = split_items(labels)
    else:
        items = list(labels)
        for position, label in enumerate(items):
            if not isinstance(label, str) or not visible_text(label):
                raise InvalidInputError(
                    f"label {position} ({label!r}) is not a non-empty text; "
                    "pass labels such as ['dress', 'shirt']"
                )
    if not items:
        raise InvalidInputError("no labels given: pass at least one label, e.g. 'dress, shirt'")
    return items


def prompt_text(label: str) -> str:
    """A label as the model reads it: its visible text, whitespace runs made one space."""
    return visible_text(label)


def label_embeddings(
    model: TextEncoder, labels: str | Sequence[str], templates: Sequence[str] = DEFAULT_TEMPLATES
) -> np.ndarray:
    """(n_labels, dim) unit vectors, one row per label given: its prompts averaged."""
    labels = label_list(labels)
    templates = list(templates) or ["{}"]
    bad = [t for t in templates if "{}" not in t]
    if bad:
        raise InvalidInputError(f"prompt template {bad[0]!r} has no '{{}}' for the label")
    # Labels that read alike (" dress " and "dress") are encoded once and share a row's values.
    texts = list(dict.fromkeys(prompt_text(label) for label in labels))
    prompts = [template.format(text) for text in texts for template in templates]
    # (n_texts * n_templates, dim) -> (n_texts, n_templates, dim) -> mean over templates
    vectors = model.encode_text(prompts).reshape(len(texts), len(templates), -1).mean(axis=1)
    vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    rows = {text: i for i, text in enumerate(texts)}
    return vectors[[rows[prompt_text(label)] for label in labels]].astype(np.float32)


def scores_to_probabilities(model: TextEncoder, similarities: np.ndarray) -> np.ndarray:
    """(n_images, n_labels) cosines -> probabilities as the model was trained to give them."""
    logits = model.logit_scale * similarities
    bias = model.logit_bias
    if bias is not None:  # SigLIP: each label judged on its own
        return (1.0 / (1.0 + np.exp(-(logits + bias)))).astype(np.float32)
    logits = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)


def label_probabilities(
    model: TextEncoder,
    image_embeddings: np.ndarray,
    labels: str | Sequence[str],
    templates: Sequence[str] = DEFAULT_TEMPLATES,
) -> np.ndarray:
    """(n_images, dim) unit image embeddings -> (n_images, n_labels) probabilities.

    One column per label in `label_list(labels)`, in the caller's order, duplicates included.
    """
    text = label_embeddings(model, labels, templates)
    return scores_to_probabilities(model, np.atleast_2d(image_embeddings) @ text.T)


def best_labels(probabilities: np.ndarray, labels: str | Sequence[str]) -> list[str]:
    """The most probable label per row, exactly as the caller gave it (first of equals)."""
    labels = label_list(labels)
    return [labels[i] for i in np.argmax(probabilities, axis=1)]

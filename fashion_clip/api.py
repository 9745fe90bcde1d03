"""The original fashion-clip API, `FashionCLIP`, on top of this project's parts.

Same names and arguments as `patrickjohncyh/fashion-clip` (`FashionCLIP(model_name,
dataset, normalize, approx, auth_token)`, `encode_images`, `encode_text`,
`zero_shot_classification`), but nothing happens at construction beyond loading the model:
no prints, no hard-coded dimension, and any CLIP-family checkpoint or local folder loads.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from fashion_clip.classify import DEFAULT_TEMPLATES, best_labels, label_probabilities
from fashion_clip.embed import encode_images
from fashion_clip.images import ImageSource
from fashion_clip.model import ClipModel
from fashion_clip.settings import load_settings


class FashionCLIP:
    """A CLIP-family model (FashionCLIP by default) with the original package's methods."""

    def __init__(
        self,
        model_name: str = "fashion-clip",
        dataset: Any = None,
        normalize: bool = True,
        approx: bool = True,
        auth_token: str | None = None,
        *,
        device: str | None = None,
        quantize: str | None = None,
        model: ClipModel | None = None,
    ) -> None:
        token = auth_token if auth_token is not None else load_settings().hf_token
        self.model = model or ClipModel.load(
            model_name, token=token, device=device, quantize=quantize
        )
        self.model_name = self.model.info.name
        self.dataset = dataset
        self.normalize = normalize
        self.approx = approx

    @property
    def dim(self) -> int:
        return self.model.dim

    def encode_images(self, images: Sequence[ImageSource], batch_size: int = 32) -> np.ndarray:
        """Paths, URLs, `s3://` URIs, bytes or PIL images -> float32 `(n, dim)`.

        Unit length when the object was built with `normalize=True` (the default).
        """
        sources = list(images)
        return encode_images(self.model, sources, batch_size=batch_size, normalize=self.normalize)

    def encode_text(self, text: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Texts -> float32 `(n, dim)`, unit length when `normalize=True`."""
        texts = [text] if isinstance(text, str) else list(text)
        return self.model.encode_text(texts, batch_size=batch_size, normalize=self.normalize)

    def label_probabilities(
        self,
        images: Sequence[ImageSource],
        text_labels: Sequence[str] | str,
        *,
        templates: Sequence[str] = DEFAULT_TEMPLATES,
        batch_size: int = 32,
    ) -> np.ndarray:
        """`(n_images, n_labels)` probabilities; rows sum to 1 for CLIP (softmax)."""
        vectors = encode_images(self.model, list(images), batch_size=batch_size)
        return label_probabilities(self.model, vectors, text_labels, templates)

    def zero_shot_classification(
        self,
        images: Sequence[ImageSource],
        text_labels: Sequence[str] | str,
        *,
        templates: Sequence[str] = DEFAULT_TEMPLATES,
        batch_size: int = 32,
    ) -> list[str]:
        """The most probable label for each image, as the original returned."""
        probabilities = self.label_probabilities(
            images, text_labels, templates=templates, batch_size=batch_size
        )
        return best_labels(probabilities, text_labels)

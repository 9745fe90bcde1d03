"""The original fashion-clip API, `FashionCLIP`, on top of this project's parts.

Same names and arguments as `patrickjohncyh/fashion-clip` (`FashionCLIP(model_name,
dataset, normalize, approx, auth_token)`, `encode_images`, `encode_text`,
`zero_shot_classification`, `retrieval`), with none of its surprises: no prints, no
hard-coded dimension, any CLIP-family checkpoint or local folder loads, and a dataset's
vectors live in Qdrant, keyed by the dataset's content hash and the model, so they are
computed once (or pulled from an S3 snapshot) instead of on every start.
"""

from __future__ import annotations

import hashlib
import logging
import re
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from fashion_clip.api.catalog_vectors import ensure_dataset_vectors
from fashion_clip.api.dataset import FCLIPDataset
from fashion_clip.api.search import SearchOptions, check_mode, search_text
from fashion_clip.errors import ConfigurationError, StoreError, check_count
from fashion_clip.media.images import ImageSource
from fashion_clip.model.checkpoints import is_content_digest
from fashion_clip.model.clip import ClipModel
from fashion_clip.settings import PYTHON_TEXT_PRECISION, Settings, load_settings
from fashion_clip.store.shared import lease_collection
from fashion_clip.tasks.classify import (
    DEFAULT_TEMPLATES,
    best_labels,
    label_list,
    label_probabilities,
)
from fashion_clip.tasks.embed import encode_images

if TYPE_CHECKING:
    from fashion_clip.store.base import Collection, Store

log = logging.getLogger(__name__)


class FashionCLIP:
    """A CLIP-family model (FashionCLIP by default) with the original package's methods."""

    def __init__(
        self,
        model_name: str = "fashion-clip",
        dataset: FCLIPDataset | str | None = None,
        normalize: bool = True,
        approx: bool = True,
        auth_token: str | None = None,
        *,
        device: str | None = None,
        quantize: str | None = None,
        model: ClipModel | None = None,
        store: Store | None = None,
        settings: Settings | None = None,
        snapshots: str | None = None,
    ) -> None:
        """Load the model; with a `dataset`, make sure its vectors are in the store.

        `dataset` is an `FCLIPDataset` or the name of a pre-included one (`"demo"`).
        `store` defaults to the one the settings name (embedded, or `QDRANT_URL`);
        `snapshots` (default: `FASHION_CLIP_SNAPSHOTS`) is a folder or `s3://` prefix where a
        snapshot named after the collection is looked for before computing anything.

        Objects on the same dataset and model in one process share the open collection, so
        a second one (a re-run notebook cell, `approx=False` beside `approx=True`) works.
        Each holds it until `close()`, the end of a `with` block, or garbage collection.
        """
        self.settings = settings or load_settings()
        token = auth_token if auth_token is not None else self.settings.hf_token
        self.model = model or ClipModel.load(
            model_name,
            token=token,
            device=device or self.settings.device,
            quantize=quantize or self.settings.image_precision,
            text_precision=self.settings.text_precision or PYTHON_TEXT_PRECISION,
        )
        self.model_name = self.model.info.name
        if isinstance(dataset, str):  # the original accepted a pre-included dataset's name
            dataset = FCLIPDataset(dataset)
        self.dataset = dataset
        self.normalize = normalize
        self.approx = approx
        self.collection: Collection | None = None
        self.vectors_source: str | None = None  # "store", "snapshot" or "computed"
        self._closed = False
        self._finalizer: weakref.finalize | None = None
        if dataset is not None:
            self._lease_vectors(dataset, store, snapshots)

    def _lease_vectors(
        self, dataset: FCLIPDataset, store: Store | None, snapshots: str | None
    ) -> None:
        """Hold the dataset's collection, its vectors reused, pulled or computed first."""
        name = collection_name(dataset, self.model)
        snapshots = snapshots if snapshots is not None else self.settings.snapshots
        lease, self.vectors_source = lease_collection(
            name,
            lambda opened, sole_user: ensure_dataset_vectors(
                dataset, self.model, opened, name,
                snapshots=snapshots, close_on_error=sole_user,
            ),
            store=store,
            settings=self.settings,
        )  # fmt: skip
        self.collection = lease.collection
        # Released when this object is collected (or at exit) if `close()` never is;
        # the callback holds the lease, not `self`, so it does not keep `self` alive.
        self._finalizer = weakref.finalize(self, lease.release_soon)
        self._lease = lease

    @property
    def dim(self) -> int:
        return self.model.dim

    def encode_images(
        self, images: Sequence[ImageSource] | ImageSource, batch_size: int = 32
    ) -> np.ndarray:
        """Paths, URLs, `s3://` URIs, bytes or PIL images (or one of them) -> float32 `(n, dim)`.

        Unit length when the object was built with `normalize=True` (the default).
        """
        return encode_images(self.model, images, batch_size=batch_size, normalize=self.normalize)

    def encode_text(self, text: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Texts -> float32 `(n, dim)`, unit length when `normalize=True`."""
        texts = [text] if isinstance(text, str) else list(text)
        return self.model.encode_text(texts, batch_size=batch_size, normalize=self.normalize)

    def label_probabilities(
        self,
        images: Sequence[ImageSource] | ImageSource,
        text_labels: Sequence[str] | str,
        *,
        templates: Sequence[str] = DEFAULT_TEMPLATES,
        batch_size: int = 32,
    ) -> np.ndarray:
        """`(n_images, n_labels)` probabilities; rows sum to 1 for CLIP (softmax).

        One column per label, in the order given; a string is read as comma-separated labels.
        """
        labels = label_list(text_labels)  # before the images: a bad label list fails fast
        vectors = encode_images(self.model, images, batch_size=batch_size)
        return label_probabilities(self.model, vectors, labels, templates)

    def zero_shot_classification(
        self,
        images: Sequence[ImageSource] | ImageSource,
        text_labels: Sequence[str] | str,
        *,
        templates: Sequence[str] = DEFAULT_TEMPLATES,
        batch_size: int = 32,
    ) -> list[str]:
        """The most probable label for each image, exactly as given (as the original returned)."""
        labels = label_list(text_labels)
        probabilities = self.label_probabilities(
            images, labels, templates=templates, batch_size=batch_size
        )
        return best_labels(probabilities, labels)

    # ------------------------------------------------------------------ with a dataset
    def _bound(self) -> Collection:
        if self._closed and self.dataset is not None:
            raise StoreError(
                f"this FashionCLIP (dataset {getattr(self.dataset, 'name', None)!r}) was closed; "
                "make a new one to search again"
            )
        if self.collection is None:
            raise ConfigurationError(
                "this FashionCLIP has no dataset: pass one, e.g. FashionCLIP('demo', "
                "FCLIPDataset('demo'))"
            )
        return self.collection

    def retrieval(
        self, queries: Sequence[str] | str, top_k: int = 10, mode: str = "semantic"
    ) -> list[list[str | int]]:
        """Catalog ids of the `top_k` products best matching each text query, best first.

        `mode`: `semantic` (meaning only: the original package's behaviour, the default),
        `hybrid` (meaning and keywords fused: brand names, product codes and ids typed in
        count too, as in the app) or `keyword` (words only). `approx=True` searches the HNSW
        index; `approx=False` compares with every product.
        """
        top_k = check_count(top_k, "top_k")  # before the work; Qdrant's own errors are raw
        mode = check_mode(mode)
        texts = [queries] if isinstance(queries, str) else list(queries)
        vectors = self.model.encode_text(texts) if mode != "keyword" else [None] * len(texts)
        collection = self._bound()
        options = SearchOptions(mode=mode, exact=not self.approx)
        return [
            [hit.id for hit in search_text(collection, text, vector, options, limit=top_k)]
            for text, vector in zip(texts, vectors, strict=True)
        ]

    def image_retrieval(
        self, images: Sequence[ImageSource] | ImageSource, top_k: int = 10
    ) -> list[list[str | int]]:
        """Catalog ids of the products whose images look most like each query image."""
        top_k = check_count(top_k, "top_k")
        collection = self._bound()
        return [
            [hit.id for hit in collection.search(vector, limit=top_k, exact=not self.approx)]
            for vector in encode_images(self.model, images)
        ]

    def localize(self, image: ImageSource, text: str, **options: Any) -> np.ndarray:
        """`(H, W)` float32 map in [0, 1]: where in `image` the `text` concept sits."""
        from fashion_clip.tasks.localize import localize  # deferred: torch

        return localize(self.model, image, text, **options)

    def close(self) -> None:
        """Close the collection and the store opened for it, once no other object uses them.

        Other `FashionCLIP` objects on the same collection keep working; closing twice is
        harmless. A closed object still encodes, but searching says it was closed.
        """
        self._closed = True
        self.collection: Collection | None = None
        if self._finalizer is not None:
            self._finalizer.detach()  # closing is this call's job, not the collector's
            self._lease.release()

    def __enter__(self) -> FashionCLIP:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def collection_name(dataset: FCLIPDataset, model: ClipModel) -> str:
    """`{dataset}-{content hash}-{model digest}`: one collection per (dataset, model) pair."""
    revision = model.info.revision
    # A local folder is known by its files' digest, so its spelling or place does not matter.
    model_key = revision if is_content_digest(revision) else f"{model.info.name}@{revision or ''}"
    model_digest = hashlib.sha256(model_key.encode()).hexdigest()[:8]
    slug = re.sub(r"[^A-Za-z0-9_-]+", "_", dataset.name).strip("_")[:40] or "dataset"
    return f"{slug}-{dataset.hash[:12]}-{model_digest}"

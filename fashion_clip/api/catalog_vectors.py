"""A dataset's vectors in the store: reuse them, pull a snapshot, or compute them once.

`FashionCLIP(model, dataset)` calls `ensure_dataset_vectors`: the collection is named after
the dataset's content hash and the model, so a second construction with the same pair finds
its vectors, a changed catalog gets a new collection, and nothing is re-encoded needlessly.
Computing goes through the indexer's pipeline (the same code as `python -m indexer index`),
so bad images are skipped and logged rather than fatal, and an interrupted run resumes.
A build that skipped rows records their ids, and the next construction retries those rows
alone: a dead image URL costs one fetch per construction, not a pass over the catalog.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fashion_clip.errors import CatalogError
from fashion_clip.ingest.catalog import check_record
from fashion_clip.ingest.choice import DATASET_CATALOG_PREFIX  # marks its collections as caches
from fashion_clip.ingest.pipeline import IndexOptions, index_rows
from fashion_clip.ingest.report import Reporter
from fashion_clip.ingest.sources import ImageRoot
from fashion_clip.media import s3
from fashion_clip.model.clip import ClipModel
from fashion_clip.store import CollectionSpec, add_payload_indexes, infer_payload_indexes
from fashion_clip.store.snapshot import pull_snapshot

if TYPE_CHECKING:
    from fashion_clip.api.dataset import FCLIPDataset
    from fashion_clip.store.base import Collection, Store

log = logging.getLogger(__name__)

COMPLETE_KEY = "dataset_complete"  # set in the collection's record once a build finished
SKIPPED_KEY = "dataset_skipped"  # ids of the rows that build skipped, retried next time
MAX_REMEMBERED = 10_000  # more skipped rows than this: the next construction re-reads all


def ensure_dataset_vectors(
    dataset: FCLIPDataset,
    model: ClipModel,
    store: Store,
    name: str,
    *,
    snapshots: str | None = None,
    close_on_error: bool = True,
) -> tuple[Collection, str]:
    """Open (or build) collection `name` holding `dataset`'s vectors for `model`.

    Returns the open collection and where its vectors came from: "store" (already there),
    "snapshot" (pulled from `snapshots`) or "computed". If building fails (or is
    interrupted), the collection is closed again unless `close_on_error` is False (someone
    else in this process holds it open), so that its lock never outlives the failure.
    """
    guard = {"model_id": model.info.name, "model_revision": model.info.revision, "dim": model.dim}
    if store.exists(name):
        collection = store.open(name, **guard)
        try:
            # Widens the integer indexes older versions chose (see `add_payload_indexes`).
            add_payload_indexes(collection, infer_payload_indexes(dataset))
            extra = collection.info().extra
        except BaseException:  # its lock must not outlive the failure (see the docstring)
            if close_on_error:
                collection.close()
            raise
        if extra.get(COMPLETE_KEY) == dataset.hash:
            skipped = {str(i) for i in extra.get(SKIPPED_KEY) or ()}
            if not skipped:
                return collection, "store"
            log.info("retrying the %d products of %s skipped last time", len(skipped), name)
            indexed = _build_or_close(dataset, model, collection, close_on_error, skipped)
            return collection, "computed" if indexed else "store"
        log.info("collection %s is incomplete (an interrupted build?)", name)
        _build_or_close(dataset, model, collection, close_on_error)
        return collection, "computed"
    snapshot = _snapshot_uri(snapshots, name)
    if snapshot is not None:
        log.info("pulling the vectors of %s from %s", name, snapshot)
        pull_snapshot(store, snapshot, name, **guard)
        return store.open(name, **guard), "snapshot"
    spec = CollectionSpec(
        model_id=model.info.name,
        dim=model.dim,
        model_revision=model.info.revision,
        catalog=f"{DATASET_CATALOG_PREFIX}{dataset.name}",
        payload_indexes=infer_payload_indexes(dataset),  # reads the first 1,000 rows
    )
    collection = store.create(name, spec)
    _build_or_close(dataset, model, collection, close_on_error)
    return collection, "computed"


def _build_or_close(
    dataset: FCLIPDataset,
    model: ClipModel,
    collection: Collection,
    close: bool,
    only: set[str] | None = None,
) -> int:
    try:
        return _build(dataset, model, collection, only)
    except BaseException:
        if close:
            collection.close()
        raise


def _build(
    dataset: FCLIPDataset, model: ClipModel, collection: Collection, only: set[str] | None
) -> int:
    """Index the products (`only` these ids, if given), skipping and logging bad images, and
    record the build as complete with the ids it skipped. Returns how many were indexed.

    Raises `CatalogError` naming the reasons when no product at all is in the collection.
    """
    numbered = enumerate(dataset, start=1)
    chosen = [(n, row) for n, row in numbered if only is None or str(row.get("id")) in only]
    rows = (check_record(number, dict(row)) for number, row in chosen)
    root = ImageRoot(dataset.image_source_path or ".")
    reasons: list[str] = []
    skipped: list[str | int] = []

    def on_skip(skip: Any) -> None:
        log.warning("%s", skip.message())
        reasons.append(skip.message())
        if skip.id is not None:
            skipped.append(skip.id)

    with Reporter(on_skip=on_skip) as reporter:
        summary = index_rows(
            rows, collection, model, root, reporter, IndexOptions(progress=True), total=len(chosen)
        )
    log.info("dataset %s: %s", dataset.name, summary.line())
    if collection.count() == 0:
        more = f"; … {len(reasons) - 5} more" if len(reasons) > 5 else ""
        shown = "; ".join(reasons[:5]) + more
        raise CatalogError(
            f"dataset {dataset.name!r}: none of its {len(dataset)} products could be indexed, "
            f"so there is nothing to search: {shown or 'no reason reported'}"
        )
    if len(skipped) <= MAX_REMEMBERED and len(skipped) == summary.skipped:
        collection.set_extra({COMPLETE_KEY: dataset.hash, SKIPPED_KEY: skipped})
    # Else not marked complete: the next construction goes over every row again (the rows
    # already stored are recognised as unchanged and not re-encoded).
    if summary.skipped:
        log.warning(
            "dataset %s: %d of %d products skipped; they are retried the next time a "
            "FashionCLIP is built on this dataset",
            dataset.name, summary.skipped, len(dataset),
        )  # fmt: skip
    if summary.indexed or only is None:  # a resumed build may have nothing left to index
        collection.optimize()
    return summary.indexed


def _snapshot_uri(snapshots: str | None, name: str) -> str | None:
    """`{snapshots}/{name}.snapshot` if such a snapshot exists, else None."""
    if not snapshots:
        return None
    if snapshots.startswith("s3://"):
        uri = s3.join_s3(snapshots, f"{name}.snapshot")
        return uri if s3.exists(uri) else None
    path = Path(os.path.expanduser(snapshots)) / f"{name}.snapshot"
    return str(path) if path.is_file() else None

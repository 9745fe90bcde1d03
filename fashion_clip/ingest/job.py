"""One indexing run, end to end: open the catalog, check it whole, index it, record the run.

The catalog is read twice: a first pass counts its records (for the progress bar's time
estimate) and finds file-level problems (not UTF-8, broken JSON) before anything is written;
the second pass streams the rows into the pipeline. Where the count needs no parsing (JSON
Lines: a record a line; Parquet: its metadata) the first pass parses only the sample (and a
JSON Lines run goes on from there: each record is parsed once).
`index_demo` is the run on the bundled demo catalog, for `indexer demo` and the app's first
start.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import itertools
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fashion_clip import demo  # its paths are read per call: tests swap them
from fashion_clip.errors import ConfigurationError, ModelMismatchError, StoreError
from fashion_clip.ingest.catalog import (
    Row,
    RowProblem,
    catalog_format,
    count_jsonl_records,
    local_copy,
    read_rows,
)
from fashion_clip.ingest.pipeline import IndexOptions, index_rows
from fashion_clip.ingest.report import Reporter, Summary
from fashion_clip.ingest.sources import ImageRoot
from fashion_clip.model.clip import ClipModel
from fashion_clip.settings import DEFAULT_COLLECTION
from fashion_clip.store import (
    Collection,
    CollectionSpec,
    Store,
    add_payload_indexes,
    infer_payload_indexes,
)
from fashion_clip.store.embedded import PICTURES_ROOT

log = logging.getLogger(__name__)

_SAMPLE = 1000  # rows looked at to choose payload indexes


@dataclass
class OpenCatalog:
    """A catalog ready to stream: a local file, its format, record count and a sample."""

    location: str  # as the user gave it (a path or an s3:// URI)
    path: Path  # the local file (a temporary copy for S3)
    fmt: str
    total: int = 0
    sample: list[dict[str, Any]] = field(default_factory=list)
    columns: dict[str, str] = field(default_factory=dict)  # id/image/caption -> its column
    # The pre-scan's read of a JSON Lines file, paused after the sample: the rows it parsed
    # and the rest of the stream. The first `rows()` goes on from there instead of reading
    # the sample's rows again (taken once: a second `rows()` reads the file anew).
    _paused: tuple[list[Row | RowProblem], Iterator[Row | RowProblem]] | None = field(
        default=None, repr=False, compare=False
    )

    @functools.cached_property
    def payload_indexes(self) -> dict[str, str]:
        """The payload indexes the sample asks for (see `infer_payload_indexes`)."""
        return infer_payload_indexes(self.sample)

    def rows(self) -> Iterator[Row | RowProblem]:
        if self._paused is not None:
            (head, rest), self._paused = self._paused, None
            return itertools.chain(head, rest)
        if self.fmt == "parquet":
            from fashion_clip.ingest.parquet import read_parquet_rows  # pyarrow: Parquet only

            return read_parquet_rows(self.path, name=self.location, columns=self.columns)
        return read_rows(self.path, self.fmt, name=self.location, columns=self.columns)


@contextlib.contextmanager
def open_catalog(
    location: str,
    fmt: str | None = None,
    *,
    split: str | None = None,
    revision: str | None = None,
    columns: dict[str, str] | None = None,
) -> Iterator[OpenCatalog]:
    """Open and pre-scan a catalog; `CatalogError` for problems with the file as a whole.

    `split` and `revision`: of an `hf://` dataset. `columns`: the catalog's fields that hold
    the id, image and caption, where they go by other names (`{"id": "item_ID"}`).
    """
    fmt = catalog_format(location, fmt)
    with local_copy(location, split=split, revision=revision) as path:
        catalog = OpenCatalog(location, path, fmt, columns=dict(columns or {}))
        if fmt == "parquet":
            _prescan_parquet(catalog)
        elif fmt == "jsonl":
            _prescan_jsonl(catalog)
        else:
            for item in catalog.rows():
                catalog.total += 1
                if isinstance(item, Row) and len(catalog.sample) < _SAMPLE:
                    catalog.sample.append(item.payload)
        yield catalog


def _prescan_parquet(catalog: OpenCatalog) -> None:
    """A Parquet file tells its row count and checks its schema up front, so only the sample
    is read here: its pictures, often most of its bytes, are read once, by the run."""
    from fashion_clip.ingest.parquet import parquet_row_count  # pyarrow: Parquet only

    catalog.total = parquet_row_count(catalog.path, name=catalog.location)
    _read_sample(catalog)


def _prescan_jsonl(catalog: OpenCatalog) -> None:
    """A JSON Lines file has one record per line: its lines are counted (and checked to be
    UTF-8), not parsed; the read that parses the sample pauses there, for the run to go on.
    (Not Parquet's: its rows may hold pictures, too many bytes to keep waiting.)"""
    catalog.total = count_jsonl_records(catalog.path, name=catalog.location)
    rows, head = catalog.rows(), []
    for item in rows:
        head.append(item)
        if isinstance(item, Row):
            catalog.sample.append(item.payload)
            if len(catalog.sample) >= _SAMPLE:
                break
    catalog._paused = (head, rows)


def _read_sample(catalog: OpenCatalog) -> None:
    for item in catalog.rows():
        if isinstance(item, Row):
            catalog.sample.append(item.payload)
            if len(catalog.sample) >= _SAMPLE:
                break


def catalog_name(location: str) -> str:
    """A collection name made from the catalog's file name (`s3://b/shop/items.csv` → `items`)."""
    stem = Path(location.split("?", 1)[0]).stem
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", stem).lstrip(".-")[:64]
    return name or "catalog"


def collection_spec(model: ClipModel, catalog: OpenCatalog) -> CollectionSpec:
    """What a new collection for `catalog` is created with: the model, and payload indexes."""
    return CollectionSpec(
        model_id=model.info.name,
        dim=model.dim,
        model_revision=model.info.revision,
        catalog=catalog.location,
        payload_indexes=catalog.payload_indexes,
    )


@contextlib.contextmanager
def run_collection(
    store: Store,
    name: str,
    spec: CollectionSpec,
    *,
    recreate: bool = False,
    shared: bool = False,
    on_removed: Callable[[str], None] = log.warning,
) -> Iterator[Collection]:
    """Collection `name`, opened for `spec`'s model or created, for one run; closed after.

    A collection this run created and left without a point (every row skipped, a catalog
    that failed half-way, an interrupted first run) is removed at the end, and `on_removed`
    is told: left there, the app would take it for the last indexed catalog. One that
    existed before the run is kept, `recreate`d or not, and so is a `shared` one (shards
    filling it together: another indexer may write to it at any moment).
    """
    created = not recreate and not store.exists(name)
    collection = store.open_or_create(name, spec, recreate=recreate)
    try:
        yield collection
    finally:
        remove = created and not shared and _holds_nothing(collection)
        collection.close()
        if remove:
            _drop_empty(store, name, on_removed)


def _drop_empty(store: Store, name: str, on_removed: Callable[[str], None]) -> None:
    try:
        store.drop(name)
    except StoreError as exc:  # said, not raised: it would hide why the run failed
        on_removed(f"collection {name!r} was left empty by this run and cannot be removed: {exc}")
    else:
        on_removed(f"removed collection {name!r}: this run created it and wrote nothing to it")


def _holds_nothing(collection: Collection) -> bool:
    """Whether `collection` has no point; False when that cannot be told (never a guess)."""
    try:
        return collection.count() == 0
    except StoreError:
        return False


def index_catalog(
    catalog: OpenCatalog,
    root: ImageRoot,
    collection: Collection,
    model: ClipModel,
    reporter: Reporter,
    options: IndexOptions | None = None,
) -> Summary:
    """Index `catalog` into `collection`, record the run in its metadata, build the index."""
    options = options or IndexOptions()
    add_payload_indexes(collection, catalog.payload_indexes)
    # Before the rows: a collection made before keyword search gains it (vectors copied).
    if collection.set_keyword_fields(options.keyword_fields):
        log.info("%s: keywords built from %s", collection.name, collection.keyword_fields())
    # A shard's share of the catalog is only known once read: no total for its progress bar.
    total = catalog.total if options.shard is None else None
    summary = index_rows(catalog.rows(), collection, model, root, reporter, options, total=total)
    extra = {
        "catalog_source": catalog.location,
        "images_root": str(root),
        "indexed_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        # each shard records its own run beside the others'
        "last_run" + (f" shard {options.shard}" if options.shard else ""): summary.as_dict(),
    }
    if options.pictures is not None:  # the app serves embedded pictures from there too
        extra[PICTURES_ROOT] = str(options.pictures)
    collection.set_extra(extra)
    if summary.indexed or summary.deleted:
        collection.optimize()  # the embedded store builds its HNSW index only when asked
    return summary


def index_demo(
    store: Store,
    model: ClipModel,
    reporter: Reporter | None = None,
    options: IndexOptions | None = None,
    *,
    name: str = DEFAULT_COLLECTION,
    recreate: bool = False,
    on_rebuild: Callable[[str], None] = log.warning,
) -> tuple[Collection, Summary]:
    """Index the bundled demo catalog into `name`; returns the open collection and the run.

    A collection holding another model's vectors is rebuilt (its vectors are derived from the
    bundled catalog, so nothing is lost) after `on_rebuild` is told why. Skips go to
    `reporter`, by default to the log.
    """
    if not demo.DEMO_CATALOG_FILE.is_file():
        raise ConfigurationError(f"the bundled demo catalog is missing ({demo.DEMO_CATALOG_FILE})")
    if reporter is None:
        reporter = Reporter(on_skip=lambda skip: log.warning("demo catalog %s", skip.message()))
    log.info("indexing the bundled demo catalog into %r with model %r", name, model.info.name)
    with open_catalog(str(demo.DEMO_CATALOG_FILE)) as catalog:
        root = ImageRoot(str(demo.DEMO_CATALOG_DIR), str(demo.DEMO_CATALOG_FILE))
        spec = collection_spec(model, catalog)
        try:
            collection = store.open_or_create(name, spec, recreate=recreate)
        except ModelMismatchError as exc:
            # exc.mismatch: which models differ, without the message's advice to run
            # --recreate, which this rebuild is doing already.
            on_rebuild(f"rebuilding collection {name!r}: {exc.mismatch}")
            collection = store.create(name, spec, recreate=True)
        try:
            summary = index_catalog(catalog, root, collection, model, reporter, options)
        except BaseException:
            collection.close()
            raise
    return collection, summary

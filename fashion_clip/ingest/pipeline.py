"""The indexing pipeline: rows → fetch, hash, decode (workers) → embed (batched) → upsert.

Workers (`ingest.workers`: threads on a CPU, processes beside a GPU) fetch each row's image,
hash it and compare the row's fingerprint with the one stored in its point; only rows that
changed are decoded and cropped. While the model encodes one batch, the workers are already
preparing the next two and a writer thread is storing the previous one. On a CPU, where the
model's threads use every core, the workers fetch and hash meanwhile but decode between
batches: decoding beside the model would stall its threads (benchmarks/HISTORY.md). What is left of
the cost is the model and the decode's own CPU time. Crops travel as uint8, a quarter of the
model input's bytes, and memory holds at most four batches, whatever the catalog size (plus
the set of catalog ids, which `--prune` needs).

Each batch is written with one upsert carrying vectors and fingerprints together, in catalog
order by a single writer; the store returns once it is durable. So a run killed at any
moment leaves whole points only, and a re-run skips exactly the rows already written.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from fashion_clip.errors import check_count
from fashion_clip.ingest.catalog import Row, RowProblem
from fashion_clip.ingest.decoding import decode_mode
from fashion_clip.ingest.pictures import prune_pictures
from fashion_clip.ingest.prune import DEFAULT_MAX_FRACTION, prune
from fashion_clip.ingest.report import Reporter, Skip, Summary
from fashion_clip.ingest.shards import Shard, select
from fashion_clip.ingest.sources import ImageRoot
from fashion_clip.ingest.state import ModelTag, vectors_precision
from fashion_clip.ingest.tagging import CONFIDENCE_SUFFIX, tagged_fields
from fashion_clip.ingest.workers import CpuTurns, PreparedBatch, PrepareSpec, Workers, stored_state
from fashion_clip.machine import usable_cores
from fashion_clip.media.images import MAX_BYTES
from fashion_clip.media.web import HTTP_RETRIES, HTTP_TIMEOUT_S
from fashion_clip.model.checkpoints import is_content_digest
from fashion_clip.model.clip import ClipModel
from fashion_clip.store import Collection, Point

log = logging.getLogger(__name__)

LOOKAHEAD = 2  # batches being fetched and decoded while the model works on the current one


def default_batch_size(device: str) -> int:
    """Images per model call and upsert: 32 on the CPU, 256 on a GPU, where each call's fixed
    cost is a larger share (benchmarks/HISTORY.md: 562 rows/s at 32 on an H100, 757 images/s
    at 256)."""
    return 32 if device == "cpu" else 256


def default_workers() -> int:
    """Images fetched at once: one per usable CPU core, at least 4 (network waits), at most 32.

    In threads, decoding releases the GIL, so they scale with cores; beside a GPU they run in
    min(workers, cores) decoding processes (`fashion_clip.ingest.workers`).
    """
    return min(32, max(4, usable_cores()))


@dataclass(frozen=True)
class IndexOptions:
    """How a run fetches, batches and reports. Sizes in bytes, times in seconds."""

    batch_size: int = 32
    workers: int = field(default_factory=default_workers)
    prune: bool = False
    max_prune_fraction: float = DEFAULT_MAX_FRACTION  # of the collection one prune may delete
    progress: bool | None = None  # None: a progress bar when stderr is a terminal
    max_bytes: int = MAX_BYTES
    timeout: float = HTTP_TIMEOUT_S
    retries: int = HTTP_RETRIES
    shard: Shard | None = None  # index (and prune) only this shard's rows; None: all
    # "threads", "processes", or "auto": processes when the model is on a GPU. Threads by
    # default here: spawned processes need the calling script to guard its top level with
    # `if __name__ == "__main__":`; the CLI (which has one) asks for "auto".
    decode: str = "threads"
    pictures: Path | None = None  # where pictures the catalog embeds are kept for the app
    # What keyword search matches: None for the id, caption and every text field.
    keyword_fields: Sequence[str] | None = None


def model_tag(model: ClipModel, precision: str) -> ModelTag:
    """What a row's vectors are keyed by. A local folder is known by its files' digest, not by
    the path it was given as ("./m" today, "../m" or a copy tomorrow: no re-embedding)."""
    revision = model.info.revision
    name = revision if is_content_digest(revision) else model.info.name
    return ModelTag(name, revision, precision)


def index_rows(
    rows: Iterable[Row | RowProblem],
    collection: Collection,
    model: ClipModel,
    root: ImageRoot,
    reporter: Reporter,
    options: IndexOptions | None = None,
    *,
    total: int | None = None,
) -> Summary:
    """Index `rows` into `collection`; bad rows go to `reporter`. Returns the run's counts."""
    options = options or IndexOptions()
    check_count(options.batch_size, "batch_size")
    check_count(options.workers, "workers")
    started, started_at = time.perf_counter(), time.time()
    summary = Summary()
    turns = CpuTurns(model.device == "cpu")
    workers = _start_workers(root, model, options, turns)
    unread: list[int] = []  # rows not read to their ids, in any shard: see `_noting_unread`
    rows = _noting_unread(rows, unread)
    if options.shard is not None:  # a layer per row less when the whole catalog is indexed
        rows = select(rows, options.shard)
    feed = _Feed(rows, options.batch_size, collection, workers)
    writer = _OrderedWriter(collection)
    tagged = tagged_fields(collection)
    bar = tqdm(
        total=total, unit="row", desc=f"indexing {collection.name}", disable=_no_bar(options),
        smoothing=0.1, dynamic_ncols=True,
    )  # fmt: skip
    try:
        for _ in range(LOOKAHEAD):
            feed.submit()
        while feed.pending:
            problems, preparing = feed.pending.popleft()
            with _timed(summary.stages, "wait_s"):
                batch = preparing.result()
            feed.submit()  # the workers prepare the next batch while the model encodes this one
            with _timed(summary.stages, "encode_s"):
                points, failed = _embed(
                    batch, collection, model, summary, options, turns, tagged=tagged
                )
            with _timed(summary.stages, "write_s"):
                writer.write(points)
            summary.indexed += len(points)
            summary.unchanged += sum(item.kind == "unchanged" for item in batch.rows)
            skips = [Skip(p.number, p.id, p.reason) for p in problems]
            for skip in sorted(skips + failed, key=lambda s: s.row):  # in catalog order
                summary.skipped += 1
                reporter.skip(skip)
            bar.update(len(problems) + len(batch.rows))
        with _timed(summary.stages, "write_s"):
            writer.finish()
    except BaseException:
        writer.tell_failure()
        raise
    finally:
        turns.release()  # no worker stays blocked: the pool's threads are joined at exit
        bar.close()
        feed.workers.close()
        writer.close()  # a write in progress finishes: points stay whole

    if options.prune:
        outcome = prune(
            collection,
            feed.seen,
            shard=options.shard,
            unread_rows=unread,
            max_fraction=options.max_prune_fraction,
        )
        summary.deleted, summary.prune_refused = outcome.deleted, outcome.refused
        # With shards, others may be keeping pictures for points they have not written yet.
        if options.pictures is not None and options.shard is None and not outcome.refused:
            summary.pictures_deleted = prune_pictures(
                collection,
                options.pictures,
                older_than=started_at - 1.0,  # file clocks lag
            )
    summary.seconds = time.perf_counter() - started
    log.info("%s: %s", collection.name, summary.line())
    log.info(  # what bounded the run: see _timed
        "%s: seconds spent waiting for images %.1f, in the model %.1f, waiting for the store %.1f",
        collection.name, *(summary.stages.get(k, 0.0) for k in ("wait_s", "encode_s", "write_s")),
    )  # fmt: skip
    return summary


def _start_workers(
    root: ImageRoot, model: ClipModel, options: IndexOptions, turns: CpuTurns
) -> Workers:
    spec = PrepareSpec(
        root,
        model_tag(model, vectors_precision(model.image_precision, model.text_precision)),
        model.preprocessor,
        options.max_bytes,
        options.timeout,
        options.retries,
        options.pictures,
    )
    return Workers(
        spec,
        decode_mode(options.decode, model.device),
        threads=options.workers,
        processes=min(options.workers, usable_cores()),  # more threads may wait on I/O
        turns=turns,
    )


class _Feed:
    """Chunks of rows handed to the workers ahead of the model, each with its rows' stored
    state (what a re-run compares), in catalog order; and every catalog id seen (for prune)."""

    def __init__(
        self,
        rows: Iterable[Row | RowProblem],
        batch_size: int,
        collection: Collection,
        workers: Workers,
    ) -> None:
        self.workers = workers
        self.seen: set[str] = set()
        self.pending: deque[tuple[list[RowProblem], Future[PreparedBatch]]] = deque()
        self._chunks = _chunks(rows, batch_size)
        self._collection = collection

    def submit(self) -> None:
        """Hand the next chunk (if any) to the workers."""
        chunk = next(self._chunks, None)
        if chunk is None:
            return
        problems = [item for item in chunk if isinstance(item, RowProblem)]
        good = [item for item in chunk if isinstance(item, Row)]
        self.seen.update(str(item.id) for item in chunk if item.id is not None)
        held = self._collection.retrieve([r.id for r in good]) if good else []
        stored = {str(p.id): p.payload for p in held}
        states = [stored_state(stored.get(str(row.id))) for row in good]
        self.pending.append((problems, self.workers.submit(good, states)))


class _OrderedWriter:
    """Stores one batch at a time, in catalog order, while the model encodes the next."""

    def __init__(self, collection: Collection) -> None:
        self._collection = collection
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="write")
        self._writing: Future[None] | None = None

    def write(self, points: list[Point]) -> None:
        self.finish()  # at most one batch in the writer: memory stays bounded
        self._writing = self._pool.submit(self._collection.upsert, points) if points else None

    def finish(self) -> None:
        """Wait for the batch in the writer (if any); its error, if any, is raised here."""
        if self._writing is not None:
            done, self._writing = self._writing, None
            done.result()

    def tell_failure(self) -> None:
        """The run failed: if a batch was being stored, wait for it and log how it went."""
        if self._writing is not None:
            self._pool.shutdown(wait=True)
            if not self._writing.cancelled() and self._writing.exception() is not None:
                log.error("storing the last batch failed too: %s", self._writing.exception())

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def _embed(
    batch: PreparedBatch,
    collection: Collection,
    model: ClipModel,
    summary: Summary,
    options: IndexOptions,
    turns: CpuTurns,
    *,
    tagged: frozenset[str] = frozenset(),
) -> tuple[list[Point], list[Skip]]:
    """Embed what changed and keep the vectors of what did not: the batch's points to upsert.
    A point whose vectors are kept keeps its `tagged` fields too (`ingest.tagging`).

    Also returns the rows that failed, for the caller to report.
    """
    points: list[Point] = []
    prepared = batch.rows
    embed = [p for p in prepared if p.kind == "embed"]
    if batch.crops is not None:
        captioned = [i for i, p in enumerate(embed) if p.row.caption]
        with turns.model_running():
            images = model.encode_crops(batch.crops)  # (n, dim), unit
            texts = model.encode_text(
                [embed[i].row.caption for i in captioned], batch_size=options.batch_size
            )  # (n_captioned, dim), unit
        text_of = dict(zip(captioned, texts, strict=True))
        for i, item in enumerate(embed):
            vectors = {"image": images[i]}
            if i in text_of:
                vectors["text"] = text_of[i]
            points.append(Point(item.row.id, vectors, item.payload))

    reuse = [p for p in prepared if p.kind == "reuse"]
    if reuse:
        held = collection.retrieve([p.row.id for p in reuse], with_vectors=True)
        stored_of = {str(point.id): point for point in held}
        for item in reuse:
            stored = stored_of.get(str(item.row.id))
            if stored is None or not stored.vectors:  # not while this process owns it
                item.kind, item.reason = "failed", "its stored vectors could not be read back"
                continue
            # Tags describe the picture, and the picture is the same: they stay.
            tags = {
                k: v
                for k, v in stored.payload.items()
                if k in tagged and k.removesuffix(CONFIDENCE_SUFFIX) not in item.payload
            }  # a catalog column of a tag's name replaces the tag, confidence and all
            points.append(Point(item.row.id, stored.vectors, {**tags, **item.payload}))
            summary.reused_vectors += 1

    failed = [
        Skip(item.row.number, item.row.id, item.reason, item.row.image)
        for item in prepared
        if item.kind == "failed"
    ]
    return points, failed


@contextlib.contextmanager
def _timed(stages: dict[str, float], name: str) -> Iterator[None]:
    """Adds the seconds spent in the block to `stages[name]`.

    The stages say what bounds a run: `wait_s` large means fetching and decoding (more
    --workers), `encode_s` the model, `write_s` the store.
    """
    started = time.perf_counter()
    try:
        yield
    finally:
        stages[name] = stages.get(name, 0.0) + time.perf_counter() - started


def _noting_unread(
    rows: Iterable[Row | RowProblem], unread: list[int]
) -> Iterator[Row | RowProblem]:
    """`rows`, noting in `unread` the numbers of those not read to their ids: the products
    they stand for may still be listed, and in any shard (their ids are unknown), so every
    shard's prune must hear of them, not only the shard that reports them."""
    for item in rows:
        if isinstance(item, RowProblem) and item.hides_an_id:
            unread.append(item.number)
        yield item


def _chunks(rows: Iterable[Row | RowProblem], size: int) -> Iterator[list[Row | RowProblem]]:
    iterator = iter(rows)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def _no_bar(options: IndexOptions) -> bool | None:
    return None if options.progress is None else not options.progress

"""The indexer's workers: each row's image fetched, hashed, compared with its stored point and,
if it changed, decoded and cropped; in threads of the indexer or in processes beside it.

Threads (on a CPU): one task per row, decoding only while the model is idle (`CpuTurns`).
Processes (on a GPU): everything a row needs happens in a decoding process, and a whole
slice of a batch travels as one message each way. On a GPU the thread driving the model gives
up and retakes the GIL at every PyTorch call, so any Python work elsewhere in the indexer's
process slows it down: with a task per row (threads fetching and hashing, a process decoding),
that work came to 1.3 ms of CPU per row on the 2-core machine, against 0.2-0.3 with slices
and 0.28 ms per image for the model itself on an H100 (benchmarks/HISTORY.md, "On a GPU" and "Since
then: a slice of a batch per decoding process").

Before either, a row whose local file's stamp and fingerprint equal its point's is settled
in the indexer's thread (`unchanged_by_file_stamp`): a `stat`, the vectors key's digest and a
comparison with the stored fields (the fingerprint's digest only where they differ), cheaper
than handing it to a worker, so an unchanged local catalog is re-run without the workers.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from fashion_clip.errors import ImageLoadError
from fashion_clip.ingest.catalog import Row
from fashion_clip.ingest.decoding import DecoderFailed, become_a_decoder, decode_crop
from fashion_clip.ingest.pictures import keep_picture, picture_path
from fashion_clip.ingest.sources import ImageRoot
from fashion_clip.ingest.stamps import fetch_unless_unchanged, file_stamp
from fashion_clip.ingest.state import (
    FINGERPRINT_FIELD,
    IMAGE_HASH_FIELD,
    SOURCE_FIELD,
    STAMP_FIELD,
    VECTORS_FIELD,
    ModelTag,
    content_hash,
    fingerprint,
    vectors_key,
)
from fashion_clip.media.s3 import ObjectVersions
from fashion_clip.model.preprocess import ImagePreprocessor
from fashion_clip.store import ID_FIELD

log = logging.getLogger(__name__)

# Terminating a pool's processes can leave its manager thread blocked on a half-sent slice in
# Pythons without the fix for CPython gh-94777 (in 3.12's and 3.11.7's concurrent.futures,
# not in 3.10's): there close() waits for the slices in hand instead.
_CAN_TERMINATE = sys.version_info >= (3, 11, 7)


class StoredState(NamedTuple):
    """What a row's stored point says about it (None for a new row): its payload, and the
    bookkeeping fields a worker compares with, read from it."""

    payload: dict[str, Any]

    @property
    def fingerprint(self) -> str | None:
        return self.payload.get(FINGERPRINT_FIELD)

    @property
    def vectors_key(self) -> str | None:
        return self.payload.get(VECTORS_FIELD)

    @property
    def stamp(self) -> str | None:
        """What the image's source said about its version."""
        return self.payload.get(STAMP_FIELD)

    @property
    def image_sha256(self) -> str | None:
        """The image bytes' hash that the stamp vouches for."""
        return self.payload.get(IMAGE_HASH_FIELD)

    @property
    def source(self) -> str | None:
        """The image reference, resolved."""
        return self.payload.get(SOURCE_FIELD)


Stored = StoredState | None


@dataclass(frozen=True)
class PrepareSpec:
    """Everything a worker needs besides the rows; sent once to each decoding process."""

    root: ImageRoot
    tag: ModelTag
    preprocessor: ImagePreprocessor
    max_bytes: int
    timeout: float
    retries: int
    pictures: Path | None = None  # where embedded pictures are kept for the app


@dataclass
class Prepared:
    """A row after its worker: `kind` is embed, reuse, unchanged or failed."""

    kind: str
    row: Row
    payload: dict[str, Any] | None = None
    crop: np.ndarray | None = None  # (H, W, 3) uint8, for kind == "embed"
    reason: str = ""


@dataclass
class PreparedBatch:
    """A batch's rows after the workers, in order, with the crops of those to embed."""

    rows: list[Prepared]
    crops: np.ndarray | None  # (number of "embed" rows, H, W, 3) uint8, in their order


@dataclass
class _Fetched:
    """A row's image bytes and new payload, or why they could not be had."""

    data: bytes | None = b""  # None: not downloaded, the source says it is unchanged
    source: str = ""
    payload: dict[str, Any] | None = None
    problem: str = ""


def stored_state(payload: dict[str, Any] | None) -> Stored:
    """A stored point's payload as a worker compares with it (None for a new row)."""
    return None if payload is None else StoredState(payload)


def _fetch(row: Row, stored: Stored, spec: PrepareSpec, versions: ObjectVersions) -> _Fetched:
    """The row's new payload and, unless its source says it is unchanged since `stored`
    (then `data` is None), its image bytes."""
    try:
        stamp = None
        if row.data is not None:
            data, digest = row.data, content_hash(row.data)
            source = _embedded_source(row, data, digest, spec)
        else:
            source = spec.root.resolve(row.image)
            known = stored is not None and stored.source == source and stored.image_sha256
            data, stamp = fetch_unless_unchanged(
                source, stored.stamp if known else None, versions,
                max_bytes=spec.max_bytes, timeout=spec.timeout, retries=spec.retries,
            )  # fmt: skip
            digest = stored.image_sha256 if data is None else content_hash(data)
        payload = _payload(row, source, digest, spec.tag)
        if stamp is not None:
            payload[STAMP_FIELD] = stamp
        return _Fetched(data, source, payload)
    except ImageLoadError as exc:
        return _Fetched(problem=str(exc))
    except Exception as exc:  # a network surprise costs one row, not the run
        return _Fetched(problem=f"unexpected {type(exc).__name__}: {exc}")


def _payload(row: Row, source: str, digest: str, tag: ModelTag) -> dict[str, Any]:
    """The row's payload as stored, with its fingerprints, for an image of SHA-256 `digest`."""
    key = vectors_key(tag, digest, row.caption)
    payload = {**row.payload, SOURCE_FIELD: source}
    payload[FINGERPRINT_FIELD] = fingerprint(key, payload)
    payload[VECTORS_FIELD] = key
    payload[IMAGE_HASH_FIELD] = digest
    return payload


def unchanged_by_file_stamp(row: Row, stored: Stored, spec: PrepareSpec) -> bool:
    """Whether the row's local file has the stamp its point records (one `stat`, no read)
    and the row the same fingerprint: unchanged. Decided in the indexer's thread, before the
    workers: a worker task per row cost more than the `stat` it ran (benchmarks/rerun.py).
    False sends the row to a worker, which reads and compares what it must, as before."""
    if stored is None or row.data is not None or not stored.image_sha256:
        return False
    if not (stored.stamp or "").startswith("file:"):  # remote sources are asked by workers
        return False
    try:
        source = spec.root.resolve(row.image)
    except Exception:  # a refused reference: the worker meets it again and reports it
        return False
    if source != stored.source or file_stamp(source) != stored.stamp:
        return False
    key = vectors_key(spec.tag, stored.image_sha256, row.caption)
    if key != stored.vectors_key:  # then the fingerprint differs too
        return False
    fields = {**row.payload, SOURCE_FIELD: source}
    if _stored_as_they_are(fields, stored.payload):
        return True  # the fingerprint would hash what it hashed when written
    return fingerprint(key, fields) == stored.fingerprint


# What a stored payload holds beside the row's fields (`_payload`, and the catalog id).
_BOOKKEEPING = (FINGERPRINT_FIELD, VECTORS_FIELD, STAMP_FIELD, IMAGE_HASH_FIELD, ID_FIELD)


def _stored_as_they_are(fields: dict[str, Any], stored: dict[str, Any]) -> bool:
    """Whether `stored` holds exactly `fields` and the bookkeeping: the same keys, and values
    equal and of the same type (1, 1.0 and True differ, as in the fingerprint's JSON). A list
    or object is left to the fingerprint (its items compare loosely). Cheaper than hashing,
    and settles the usual unchanged row; False only means "ask the fingerprint"."""
    if len(stored) != len(fields) + len(_BOOKKEEPING):
        return False
    for key, value in fields.items():
        kind = type(value)
        if kind is list or kind is dict:
            return False
        held = stored.get(key, _ABSENT)
        if type(held) is not kind or held != value:
            return False
    return all(key in stored for key in _BOOKKEEPING)


_ABSENT = object()


def _embedded_source(row: Row, data: bytes, digest: str, spec: PrepareSpec) -> str:
    """Where the app will find a picture the catalog embeds: its kept file (when there is a
    folder to keep it in; written once the row is known to be good), else only a name."""
    if len(data) > spec.max_bytes:
        raise ImageLoadError(row.image, f"embedded picture is {len(data)} bytes, over the cap")
    if spec.pictures is None:
        return f"{row.image} (row {row.number})"
    return str(picture_path(spec.pictures, data, digest))


def _keep(row: Row, fetched: _Fetched) -> None:
    try:
        keep_picture(Path(fetched.source), fetched.data)
    except OSError as exc:  # a full or read-only disk: the row is still searchable
        log.warning("cannot keep the picture of row %s: %s", row.number, exc)


def _prepare_row(
    row: Row,
    stored: Stored,
    spec: PrepareSpec,
    versions: ObjectVersions,
    before_decoding: Callable[[], None] | None = None,
) -> Prepared:
    """Fetch the row's image (unless its source says it is unchanged), compare the row with
    its stored point, and decode and crop the image if it changed (`before_decoding` first:
    the CPU's turns). A good row's embedded picture is kept for the app (again, if its file
    went missing)."""
    fetched = _fetch(row, stored, spec, versions)
    if _must_embed(stored, fetched) and fetched.data is None:
        # Unchanged at the source, but to embed again (a new caption, another model).
        fetched = _fetch(row, None, spec, versions)
    prepared = _compare_and_decode(row, stored, spec, fetched, before_decoding)
    if row.data is not None and spec.pictures is not None and prepared.kind != "failed":
        _keep(row, fetched)
    return prepared


def _must_embed(stored: Stored, fetched: _Fetched) -> bool:
    """Whether the row's vectors must be made (again): it is new or its vectors key changed."""
    payload = fetched.payload
    if payload is None or stored is None:
        return payload is not None
    return payload[FINGERPRINT_FIELD] != stored.fingerprint and (
        payload[VECTORS_FIELD] != stored.vectors_key
    )


def _compare_and_decode(
    row: Row,
    stored: Stored,
    spec: PrepareSpec,
    fetched: _Fetched,
    before_decoding: Callable[[], None] | None,
) -> Prepared:
    payload = fetched.payload
    if payload is None:
        return Prepared("failed", row, reason=fetched.problem)
    if stored is not None:
        if stored.fingerprint == payload[FINGERPRINT_FIELD]:
            if stored.stamp == payload.get(STAMP_FIELD) and stored.image_sha256:
                return Prepared("unchanged", row)
            return Prepared("reuse", row, payload)  # the same content: record its new stamp
        if stored.vectors_key == payload[VECTORS_FIELD]:
            return Prepared("reuse", row, payload)
    if before_decoding is not None:
        before_decoding()
    # An embedded picture is named as the catalog names it, not by the file it is kept in.
    name = f"{row.image} (embedded)" if row.data is not None else fetched.source
    crop, problem = decode_crop(fetched.data, name, spec.preprocessor)
    if crop is None:
        return Prepared("failed", row, reason=problem)
    return Prepared("embed", row, payload, crop=crop)


class CpuTurns:
    """On the CPU, workers decode while the model is idle, not beside it.

    The model's threads use every core, so a decode beside them costs twice: its own time and
    the model's threads stalled waiting for the one it displaced. Fetching and hashing go on
    meanwhile. On a GPU the model leaves the cores free and nothing waits.
    """

    def __init__(self, active: bool) -> None:
        self._active = active
        self._model_idle = threading.Event()
        self._model_idle.set()

    def wait_for_the_model(self) -> None:
        if self._active:
            self._model_idle.wait()

    @contextlib.contextmanager
    def model_running(self) -> Iterator[None]:
        if self._active:
            self._model_idle.clear()
        try:
            yield
        finally:
            self._model_idle.set()

    def release(self) -> None:
        self._model_idle.set()


class Workers:
    """Prepares rows in `threads` of this process or in `processes` spawned ones.

    `submit(rows, stored)` returns at once, with a future of the rows' `PreparedBatch`. An
    assembler thread waits for the rows and stacks their crops into the model's batch: on a
    GPU that 38 MB copy (a batch of 256) happens while the model works on the batch before,
    not between batches while the GPU idles.

    Processes are not held back while a CPU model runs (`CpuTurns` gates threads only): on a
    CPU, threads are the faster choice.
    """

    def __init__(
        self, spec: PrepareSpec, mode: str, *, threads: int, processes: int, turns: CpuTurns
    ) -> None:
        self._spec = spec
        self._turns = turns
        self._threads: ThreadPoolExecutor | None = None
        self._processes: ProcessPoolExecutor | None = None
        if mode == "processes":
            # `threads` rows in flight across the processes (network waits), at least one each.
            threads_each = max(1, math.ceil(threads / processes))
            self._processes = ProcessPoolExecutor(
                max_workers=processes,
                mp_context=multiprocessing.get_context("spawn"),  # forking beside CUDA is unsafe
                initializer=_start_process,
                initargs=(os.getpid(), spec, threads_each),
            )
            self._slices = processes
        else:
            self._threads = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="fetch")
        # One thread: batches come out in the order they went in.
        self._versions = ObjectVersions()  # S3 listings, for this run only
        self._assembler = ThreadPoolExecutor(max_workers=1, thread_name_prefix="assemble")

    def submit(self, rows: list[Row], stored: list[Stored]) -> Future[PreparedBatch]:
        # Rows whose local file's stamp says unchanged are settled here; the rest go out.
        settled = [
            Prepared("unchanged", row) if unchanged_by_file_stamp(row, state, self._spec) else None
            for row, state in zip(rows, stored, strict=True)
        ]
        todo = [i for i, item in enumerate(settled) if item is None]
        if not todo:  # no worker needed: no thread to wake and wait for either
            done: Future[PreparedBatch] = Future()
            done.set_result(PreparedBatch([item for item in settled if item is not None], None))
            return done
        waiting = self._send([rows[i] for i in todo], [stored[i] for i in todo])
        return self._assembler.submit(_assemble, _merged(settled, waiting))

    def _send(self, rows: list[Row], stored: list[Stored]) -> Callable[[], list[Prepared]]:
        """Hand the rows to the workers; the function returned waits for them, in order."""
        if self._processes is None:
            assert self._threads is not None
            futures = [
                self._threads.submit(self._prepare_here, row, state)
                for row, state in zip(rows, stored, strict=True)
            ]
            return lambda: [future.result() for future in futures]
        # One message per slice, up to one slice per process, near-equal sizes.
        if not rows:  # a chunk of bad rows only
            return list
        count = min(self._slices, len(rows))
        bounds = [len(rows) * i // count for i in range(count + 1)]
        sent = []
        for a, b in itertools.pairwise(bounds):
            try:
                future = self._processes.submit(_prepare_slice, rows[a:b], stored[a:b])
            except BrokenProcessPool as exc:  # it broke while an earlier batch was prepared
                raise _decoders_stopped(rows[a:b]) from exc
            sent.append((rows[a:b], future))
        return lambda: [prepared for part, future in sent for prepared in _received(part, future)]

    def _prepare_here(self, row: Row, stored: Stored) -> Prepared:
        return _prepare_row(row, stored, self._spec, self._versions, self._turns.wait_for_the_model)

    def close(self) -> None:
        """Stop the workers at once; rows not prepared yet are dropped (a re-run resumes).

        Threads finish the row in hand (one fetch at most). Processes are terminated: they
        only read, and a slice of slow URLs could otherwise keep a stopped run waiting for
        minutes.
        """
        # First: batches not assembled yet are dropped, not assembled from cancelled rows.
        self._assembler.shutdown(wait=False, cancel_futures=True)
        if self._threads is not None:
            self._threads.shutdown(wait=False, cancel_futures=True)
        if self._processes is not None:
            pool, self._processes = self._processes, None
            if not _CAN_TERMINATE:
                pool.shutdown(wait=True, cancel_futures=True)
                return
            # What Python 3.14's ProcessPoolExecutor.terminate_workers does.
            running = list(pool._processes.values())
            pool.shutdown(wait=False, cancel_futures=True)
            for process in running:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    if process.is_alive():
                        process.terminate()
            deadline = time.monotonic() + 5
            for process in running:
                process.join(timeout=max(0.0, deadline - time.monotonic()))


def _merged(
    settled: list[Prepared | None], waiting: Callable[[], list[Prepared]]
) -> Callable[[], list[Prepared]]:
    """The batch's rows in order: those settled before the workers, the workers' in the gaps."""

    def merged() -> list[Prepared]:
        prepared = iter(waiting())
        return [item if item is not None else next(prepared) for item in settled]

    return merged


def _assemble(waiting: Callable[[], list[Prepared]]) -> PreparedBatch:
    rows = waiting()
    embed = [item for item in rows if item.kind == "embed"]
    if not embed:
        return PreparedBatch(rows, None)
    crops = np.stack([item.crop for item in embed])
    for item in embed:
        item.crop = None  # the batch holds them now: one copy in memory
    return PreparedBatch(rows, crops)


def _decoders_stopped(rows: list[Row]) -> DecoderFailed:
    return DecoderFailed(
        "the image decoding processes stopped (killed, out of memory, or unable to start "
        f"from this program) while catalog rows {rows[0].number}-{rows[-1].number} were "
        f"waiting for them (first image: {rows[0].image}); re-run to go on where this run "
        "stopped, or prepare images in threads (--decode threads) if it stops there again"
    )


def _received(rows: list[Row], future: Future[list[tuple[Any, ...]]]) -> list[Prepared]:
    try:
        results = future.result()
    except BrokenProcessPool as exc:
        raise _decoders_stopped(rows) from exc
    except CancelledError:
        raise  # the run is stopping
    except Exception as exc:
        # The slice could not be sent (its rows did not pickle) or its process raised (a bug:
        # logged with its traceback). Its rows are skipped, not the run.
        log.error(
            "preparing catalog rows %s-%s failed", rows[0].number, rows[-1].number, exc_info=exc
        )
        reason = f"unexpected {type(exc).__name__} in a decoding process: {exc}"
        return [Prepared("failed", row, reason=reason) for row in rows]
    return [Prepared(kind, row, *rest) for row, (kind, *rest) in zip(rows, results, strict=True)]


# In a decoding process: the spec, its fetch threads and its S3 listings, set at its start.
_spec: PrepareSpec | None = None
_fetchers: ThreadPoolExecutor | None = None
_versions: ObjectVersions | None = None


def _start_process(parent: int, spec: PrepareSpec, threads: int) -> None:
    global _spec, _fetchers, _versions
    become_a_decoder(parent)
    _spec, _versions = spec, ObjectVersions()
    if threads > 1:
        _fetchers = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="fetch")


def _prepare_in_process(row: Row, stored: Stored) -> tuple[Any, ...]:
    """One row, start to end, in a decoding process: its image bytes are dropped as soon as
    it is decoded, so a process holds at most one image per fetch thread."""
    assert _spec is not None and _versions is not None, "not a decoding process"
    prepared = _prepare_row(row, stored, _spec, _versions)
    return prepared.kind, prepared.payload, prepared.crop, prepared.reason


def _prepare_slice(rows: list[Row], stored: list[Stored]) -> list[tuple[Any, ...]]:
    """Runs in a decoding process: the slice's rows as (kind, payload, crop, reason), the row
    itself left out (the indexer has it)."""
    if _fetchers is None:
        return [_prepare_in_process(row, state) for row, state in zip(rows, stored, strict=True)]
    return list(_fetchers.map(_prepare_in_process, rows, stored))

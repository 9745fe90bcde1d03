"""The indexer's workers: each row's image fetched, hashed, compared with its stored point and,
if it changed, decoded and cropped; in threads of the indexer or in processes beside it.

Threads (on a CPU): one task per row, decoding only while the model is idle (`CpuTurns`).
Processes (on a GPU): everything a row needs happens in a decoding process, and a whole
slice of a batch travels as one message each way. On a GPU the thread driving the model gives
up and retakes the GIL at every PyTorch call, so any Python work elsewhere in the indexer's
process slows it down: with a task per row (threads fetching and hashing, a process decoding),
that work came to ~0.8 ms of CPU per row on the 2-core machine, more than the model's own
0.28 ms per image on an H100 (BENCHMARKS.md, "On a GPU").
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

import numpy as np

from fashion_clip.errors import ImageLoadError
from fashion_clip.images import fetch_bytes
from fashion_clip.preprocess import ImagePreprocessor
from indexer.catalog import Row
from indexer.decoding import DecoderFailed, become_a_decoder, decode_crop
from indexer.sources import ImageRoot
from indexer.state import (
    FINGERPRINT_FIELD,
    SOURCE_FIELD,
    VECTORS_FIELD,
    ModelTag,
    content_hash,
    fingerprint,
    vectors_key,
)

# What a row's stored point says about it: (fingerprint, vectors key), or None when new.
Stored = tuple[str | None, str | None] | None


@dataclass(frozen=True)
class PrepareSpec:
    """Everything a worker needs besides the rows; sent once to each decoding process."""

    root: ImageRoot
    tag: ModelTag
    preprocessor: ImagePreprocessor
    max_bytes: int
    timeout: float
    retries: int


@dataclass
class Prepared:
    """A row after its worker: `kind` is embed, reuse, unchanged or failed."""

    kind: str
    row: Row
    payload: dict[str, Any] | None = None
    crop: np.ndarray | None = None  # (H, W, 3) uint8, for kind == "embed"
    reason: str = ""


@dataclass
class _Fetched:
    """A row's image bytes and new payload, or why they could not be had."""

    data: bytes = b""
    source: str = ""
    payload: dict[str, Any] | None = None
    problem: str = ""


def stored_state(payload: dict[str, Any] | None) -> Stored:
    """The part of a stored point's payload a worker compares with."""
    if payload is None:
        return None
    return payload.get(FINGERPRINT_FIELD), payload.get(VECTORS_FIELD)


def _fetch(row: Row, spec: PrepareSpec) -> _Fetched:
    try:
        source = spec.root.resolve(row.image)
        data = fetch_bytes(
            source, max_bytes=spec.max_bytes, timeout=spec.timeout, retries=spec.retries
        )
        key = vectors_key(spec.tag, content_hash(data), row.caption)
        payload = {**row.payload, SOURCE_FIELD: source}
        payload[FINGERPRINT_FIELD] = fingerprint(key, payload)
        payload[VECTORS_FIELD] = key
        return _Fetched(data, source, payload)
    except ImageLoadError as exc:
        return _Fetched(problem=str(exc))
    except Exception as exc:  # a network surprise costs one row, not the run
        return _Fetched(problem=f"unexpected {type(exc).__name__}: {exc}")


def _finish(
    row: Row,
    fetched: _Fetched,
    stored: Stored,
    preprocessor: ImagePreprocessor,
    before_decoding: Callable[[], None] | None = None,
) -> Prepared:
    """Compare the fetched row with its stored point; decode and crop it if it changed."""
    payload = fetched.payload
    if payload is None:
        return Prepared("failed", row, reason=fetched.problem)
    if stored is not None:
        if stored[0] == payload[FINGERPRINT_FIELD]:
            return Prepared("unchanged", row)
        if stored[1] == payload[VECTORS_FIELD]:
            return Prepared("reuse", row, payload)
    if before_decoding is not None:
        before_decoding()
    crop, problem = decode_crop(fetched.data, fetched.source, preprocessor)
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

    `submit(rows, stored)` returns at once; the function it returns waits for the rows'
    `Prepared`, in order.
    """

    def __init__(
        self, spec: PrepareSpec, mode: str, *, threads: int, processes: int, turns: CpuTurns
    ) -> None:
        self.mode = mode
        self._spec = spec
        self._turns = turns
        self._threads: ThreadPoolExecutor | None = None
        self._processes: ProcessPoolExecutor | None = None
        if mode == "processes":
            # Each process fetches with its share of the threads (network waits), then decodes.
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

    def submit(self, rows: list[Row], stored: list[Stored]) -> Callable[[], list[Prepared]]:
        if self._processes is None:
            assert self._threads is not None
            futures = [
                self._threads.submit(self._prepare_here, row, state)
                for row, state in zip(rows, stored, strict=True)
            ]
            return lambda: [future.result() for future in futures]
        # One message per slice, as many slices as processes: every process has work.
        size = max(1, math.ceil(len(rows) / self._slices))
        slices = [(start, start + size) for start in range(0, len(rows), size)]
        sent = [
            (rows[a:b], self._processes.submit(_prepare_slice, rows[a:b], stored[a:b]))
            for a, b in slices
        ]
        return lambda: [prepared for part, future in sent for prepared in _received(part, future)]

    def _prepare_here(self, row: Row, stored: Stored) -> Prepared:
        fetched = _fetch(row, self._spec)
        return _finish(
            row, fetched, stored, self._spec.preprocessor, self._turns.wait_for_the_model
        )

    def close(self) -> None:
        """Stop the workers; queued rows are dropped, a decode in progress finishes."""
        if self._threads is not None:
            self._threads.shutdown(wait=False, cancel_futures=True)
        if self._processes is not None:
            self._processes.shutdown(wait=True, cancel_futures=True)
            self._processes = None


def _received(rows: list[Row], future: Future[list[tuple[Any, ...]]]) -> list[Prepared]:
    try:
        results = future.result()
    except BrokenProcessPool as exc:
        raise DecoderFailed(
            f"the image decoding processes stopped while preparing catalog rows "
            f"{rows[0].number}-{rows[-1].number} (first image: {rows[0].image}; killed, out of "
            "memory, or unable to start from this program); re-run to go on where this run "
            "stopped, or decode in threads (--decode threads) if it stops at the same rows again"
        ) from exc
    return [Prepared(kind, row, *rest) for row, (kind, *rest) in zip(rows, results, strict=True)]


# In a decoding process: the spec and the fetch threads, set once when it starts.
_spec: PrepareSpec | None = None
_fetchers: ThreadPoolExecutor | None = None


def _start_process(parent: int, spec: PrepareSpec, threads: int) -> None:
    global _spec, _fetchers
    become_a_decoder(parent)
    _spec = spec
    if threads > 1:
        _fetchers = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="fetch")


def _prepare_slice(rows: list[Row], stored: list[Stored]) -> list[tuple[Any, ...]]:
    """Runs in a decoding process: the slice's rows as (kind, payload, crop, reason), the row
    itself left out (the indexer has it)."""
    spec = _spec
    assert spec is not None, "not a decoding process"
    if _fetchers is None:
        fetched = [_fetch(row, spec) for row in rows]
    else:
        fetched = list(_fetchers.map(_fetch, rows, [spec] * len(rows)))
    out = []
    for row, got, state in zip(rows, fetched, stored, strict=True):
        prepared = _finish(row, got, state, spec.preprocessor)
        out.append((prepared.kind, prepared.payload, prepared.crop, prepared.reason))
    return out

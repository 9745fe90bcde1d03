"""Where the indexer decodes: its threads or spawned processes, the uint8 crops, the stages."""

from __future__ import annotations

import copy
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import fashion_clip.ingest.workers
from fashion_clip.errors import InvalidInputError
from fashion_clip.ingest.catalog import Row
from fashion_clip.ingest.decoding import DecoderFailed, decode_mode
from fashion_clip.ingest.job import collection_spec, index_catalog, open_catalog
from fashion_clip.ingest.pipeline import (
    IndexOptions,
    default_batch_size,
    default_workers,
    index_rows,
)
from fashion_clip.ingest.report import Reporter
from fashion_clip.ingest.sources import ImageRoot
from fashion_clip.ingest.state import ModelTag
from fashion_clip.ingest.workers import CpuTurns, PrepareSpec, Workers
from fashion_clip.media.images import load_image
from fashion_clip.store.embedded import EmbeddedStore
from tests.image_corpus import jpeg_bytes, photo
from tests.indexer_fixtures import REPO, product_rows, write_catalog, write_photos

N = 10


def index_with(tmp_path, model, decode: str, name: str, *, recreate: bool = True):
    """Index the catalog under `tmp_path` into collection `name`: (summary, skips, points by
    id, collection extra)."""
    store = EmbeddedStore(tmp_path / "qdrant")
    skips = []
    reporter = Reporter(on_skip=skips.append)
    with open_catalog(str(tmp_path / "c.jsonl")) as catalog, reporter:
        spec = collection_spec(model, catalog)
        opened = store.create(name, spec) if recreate else store.open_or_create(name, spec)
        with opened as collection:
            options = IndexOptions(batch_size=4, workers=2, decode=decode, progress=False)
            root = ImageRoot(str(tmp_path / "images"))
            summary = index_catalog(catalog, root, collection, model, reporter, options)
            stored = {str(p.id): p for p in collection.iter_points(with_vectors=True)}
            extra = collection.info().extra
    store.close()
    return summary, skips, stored, extra


@pytest.fixture
def catalog_with_a_bad_image(tmp_path):
    write_photos(tmp_path / "images", N)
    (tmp_path / "images" / "img-6.jpg").write_bytes(b"GIF89a and then nothing")
    write_catalog(tmp_path / "c.jsonl", product_rows(N))
    return tmp_path


def test_processes_index_exactly_what_threads_do(tiny_model, catalog_with_a_bad_image):
    threads = index_with(catalog_with_a_bad_image, tiny_model, "threads", "by_threads")
    processes = index_with(catalog_with_a_bad_image, tiny_model, "processes", "by_processes")
    for summary, skips, stored, _ in (threads, processes):
        assert (summary.indexed, summary.skipped) == (N - 1, 1)
        assert [(s.row, s.id) for s in skips] == [(7, "sku-6")]
        assert "img-6.jpg" in skips[0].reason and "not an image" in skips[0].reason
        assert len(stored) == N - 1
    for key, point in threads[2].items():
        np.testing.assert_array_equal(point.vectors["image"], processes[2][key].vectors["image"])


@pytest.mark.parametrize("decode", ["threads", "processes"])
def test_a_batch_of_bad_rows_only_is_reported_and_the_run_goes_on(tmp_path, tiny_model, decode):
    write_photos(tmp_path / "images", N)
    rows = product_rows(N)
    write_catalog(tmp_path / "c.jsonl", rows + rows[:8])  # rows 11-18: duplicate ids only
    summary, skips, stored, _ = index_with(tmp_path, tiny_model, decode, "twice")
    assert (summary.indexed, summary.skipped) == (N, 8) and len(stored) == N
    assert [s.row for s in skips] == list(range(N + 1, N + 9))
    assert all("duplicate id" in s.reason for s in skips)


def test_a_run_records_where_its_time_went(tiny_model, catalog_with_a_bad_image):
    summary, _, _, extra = index_with(catalog_with_a_bad_image, tiny_model, "auto", "timed")
    assert set(summary.stages) == {"wait_s", "encode_s", "write_s"}
    assert summary.stages["encode_s"] > 0  # the model ran
    assert sum(summary.stages.values()) <= summary.seconds  # parts of the run, not more
    last_run = extra["last_run"]
    assert last_run["indexed"] == N - 1 and set(last_run["stages"]) == set(summary.stages)
    json.dumps(last_run)  # stored in the collection's metadata: plain JSON


def test_on_the_cpu_images_are_decoded_between_batches_not_beside_the_model(
    tiny_model, catalog_with_a_bad_image, monkeypatch
):
    if tiny_model.device != "cpu":
        pytest.skip("the model runs on a GPU here: decoding goes on beside it by design")
    decode_starts: list[float] = []
    encoding: list[tuple[float, float]] = []
    decode, encode = fashion_clip.ingest.workers.decode_crop, tiny_model.encode_crops

    def recorded_decode(*args):
        decode_starts.append(time.perf_counter())
        return decode(*args)

    def slow_encode(*args, **kwargs):
        start = time.perf_counter()
        time.sleep(0.05)  # room for the workers to decode beside the model, were they allowed
        try:
            return encode(*args, **kwargs)
        finally:
            encoding.append((start, time.perf_counter()))

    monkeypatch.setattr(fashion_clip.ingest.workers, "decode_crop", recorded_decode)
    # A copy: monkeypatch would leave the session's model holding a bound method afterwards.
    model = copy.copy(tiny_model)
    model.encode_crops = slow_encode
    summary, *_ = index_with(catalog_with_a_bad_image, model, "threads", "gated")
    assert summary.indexed == N - 1 and len(encoding) == 3 and len(decode_starts) == N
    # Ungated, the first 50 ms encode has the next two batches (6 rows) decoded beside it.
    # Gated, a worker that passed the gate just before the model started may still decode
    # once beside it: at most one image per worker (index_with runs 2) in each batch.
    beside_the_model = [sum(s < t < e for t in decode_starts) for s, e in encoding]
    assert max(beside_the_model) <= 2, beside_the_model


def test_auto_decodes_in_threads_on_the_cpu_and_in_processes_elsewhere():
    assert decode_mode("auto", "cpu") == "threads"
    assert decode_mode("auto", "cuda") == "processes"
    assert decode_mode("auto", "mps") == "processes"
    assert decode_mode("threads", "cuda") == "threads"
    with pytest.raises(InvalidInputError, match="'gpu' is not one of auto, threads, processes"):
        decode_mode("gpu", "cpu")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (IndexOptions(batch_size=0), "batch_size must be 1 or more, got 0"),
        (IndexOptions(workers=-2), "workers must be 1 or more, got -2"),
    ],
)
def test_a_run_with_no_batch_or_no_workers_is_refused_naming_the_value(options, message):
    # Checked before anything else is touched, so no collection or model is needed.
    with pytest.raises(InvalidInputError, match=message):
        index_rows([], None, None, None, None, options)


def test_crops_embed_exactly_as_the_float_preprocessing(tiny_model):
    images = [photo(300, 400, seed=i) for i in range(3)]
    crops = np.stack([tiny_model.preprocessor.crop_pixels(image) for image in images])
    height, width = tiny_model.preprocessor.output_size
    assert crops.dtype == np.uint8 and crops.shape == (3, height, width, 3)
    expected = tiny_model.encode_pixels(tiny_model.preprocessor(images))
    np.testing.assert_allclose(tiny_model.encode_crops(crops), expected, atol=1e-6)


@pytest.mark.parametrize("quantize", ["int8", "bf16"])
def test_crops_embed_as_the_float_preprocessing_in_the_fast_precisions(tiny_model_dir, quantize):
    from fashion_clip.model.clip import ClipModel

    model = ClipModel.load(str(tiny_model_dir), quantize=quantize)
    images = [photo(200, 260, seed=i) for i in range(3)]
    crops = np.stack([model.preprocessor.crop_pixels(image) for image in images])
    ours = model.encode_crops(crops)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, model.encode_pixels(model.preprocessor(images)), atol=1e-6)


def process_workers(folder, preprocessor, processes: int = 1) -> Workers:
    spec = PrepareSpec(ImageRoot(str(folder)), ModelTag("m", None), preprocessor, 1 << 20, 5.0, 0)
    return Workers(spec, "processes", threads=processes, processes=processes, turns=CpuTurns(False))


def test_a_decoder_process_that_dies_stops_the_run_with_a_message(tiny_model, tmp_path):
    (tmp_path / "first.jpg").write_bytes(jpeg_bytes(photo(64, 48)))
    rows = [Row(n, f"sku-{n}", "first.jpg", None, {"image": "first.jpg"}) for n in (1, 2)]
    workers = process_workers(tmp_path, tiny_model.preprocessor)
    try:
        batch = workers.submit(rows, [None, None]).result()
        assert [(p.kind, p.row) for p in batch.rows] == [("embed", rows[0]), ("embed", rows[1])]
        side = tiny_model.preprocessor.min_decode_side
        expected = tiny_model.preprocessor.crop_pixels(
            load_image(tmp_path / "first.jpg", min_side=side)
        )
        assert batch.crops.shape == (2, *expected.shape)  # stacked for the model, in order
        np.testing.assert_array_equal(batch.crops[0], expected)
        for pid in list(workers._processes._processes):  # what the OOM killer would do
            os.kill(pid, signal.SIGKILL)
        later = [Row(n, f"sku-{n}", "second.jpg", None, {}) for n in (3, 4)]
        with pytest.raises(DecoderFailed, match="rows 3-4 .*second.jpg.*re-run"):
            workers.submit(later, [None, None]).result()
    finally:
        workers.close()


def test_a_slice_that_cannot_reach_its_process_fails_its_rows_not_the_run(tiny_model, tmp_path):
    (tmp_path / "a.jpg").write_bytes(jpeg_bytes(photo(64, 48)))
    good = [Row(n, f"sku-{n}", "a.jpg", None, {"n": n}) for n in (1, 2)]
    odd = [Row(n, f"sku-{n}", "a.jpg", None, {"n": threading.Lock()}) for n in (3, 4)]
    workers = process_workers(tmp_path, tiny_model.preprocessor, processes=2)
    try:
        batch = workers.submit(good + odd, [None] * 4).result()  # slices: rows 1-2 and 3-4
        assert [p.kind for p in batch.rows] == ["embed", "embed", "failed", "failed"]
        assert "unexpected" in batch.rows[2].reason and "lock" in batch.rows[2].reason
        assert batch.crops.shape[0] == 2
        again = workers.submit(good, [None, None]).result()  # the processes still serve
        assert [p.kind for p in again.rows] == ["embed", "embed"]
    finally:
        workers.close()


@pytest.mark.skipif(
    not fashion_clip.ingest.workers._CAN_TERMINATE,
    reason="this Python's concurrent.futures lacks the gh-94777 fix: close() waits instead",
)
def test_stopping_does_not_wait_for_slow_images_in_the_processes(tiny_model, tmp_path):
    """Ctrl-C during a slice of slow URLs: the processes are stopped, not waited for."""
    served = threading.Event()

    class Slow(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            served.set()
            time.sleep(30)  # an unresponsive image server

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    spec = PrepareSpec(
        ImageRoot(f"http://127.0.0.1:{server.server_address[1]}/"),
        ModelTag("m", None), tiny_model.preprocessor, 1 << 20, 60.0, 2,
    )  # fmt: skip
    workers = Workers(spec, "processes", threads=1, processes=1, turns=CpuTurns(False))
    rows = [Row(n, f"sku-{n}", f"img-{n}.jpg", None) for n in range(4)]
    preparing = workers.submit(rows, [None] * 4)
    try:
        assert served.wait(30)  # the process is fetching the first of its four slow images
        [pid] = workers._processes._processes
        started = time.monotonic()
        workers.close()
        assert time.monotonic() - started < 10
        # Gone (the pool's own thread may reap it first, so ask the system, not the object).
        while _alive(pid) and time.monotonic() - started < 10:
            time.sleep(0.05)
        assert not _alive(pid)
        with pytest.raises(Exception):  # noqa: B017 (cancelled or broken: either ends the wait)
            preparing.result(timeout=10)
    finally:
        workers.close()
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(("cores", "workers"), [(1, 4), (2, 4), (16, 16), (96, 32)])
def test_defaults_follow_the_cores_and_the_device(monkeypatch, cores, workers):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)))
    assert default_workers() == workers
    assert (default_batch_size("cpu"), default_batch_size("cuda")) == (32, 256)


def test_captions_embedded_by_a_faster_text_tower_are_embedded_again_in_fp32(
    tiny_model_dir, tiny_model, catalog_with_a_bad_image
):
    """The Space indexes with its query model (int8 text on a CPU); the indexer's fp32 run
    must not take those caption vectors for its own."""
    from fashion_clip.model.clip import ClipModel

    int8_text = ClipModel.load(str(tiny_model_dir), text_precision="int8")
    first = index_with(catalog_with_a_bad_image, int8_text, "threads", "shop")
    again = index_with(catalog_with_a_bad_image, int8_text, "threads", "shop", recreate=False)
    exact = index_with(catalog_with_a_bad_image, tiny_model, "threads", "shop", recreate=False)
    assert (first[0].indexed, again[0].unchanged) == (N - 1, N - 1)
    assert (exact[0].indexed, exact[0].unchanged, exact[0].reused_vectors) == (N - 1, 0, 0)
    reference = index_with(catalog_with_a_bad_image, tiny_model, "threads", "reference")[2]
    for key, point in exact[2].items():
        np.testing.assert_array_equal(point.vectors["text"], reference[key].vectors["text"])


def test_decoding_processes_die_with_a_killed_indexer(tmp_path):
    """SIGKILL leaves no orphaned decoders waiting forever on their queue."""
    script = tmp_path / "indexer_stand_in.py"
    script.write_text(
        "import sys, time\n"
        "from fashion_clip.model.preprocess import ImagePreprocessor\n"
        "from fashion_clip.ingest.catalog import Row\n"
        "from tests.test_indexer_decoding import process_workers\n"
        "if __name__ == '__main__':\n"
        "    workers = process_workers(sys.argv[1], ImagePreprocessor(), processes=2)\n"
        "    rows = [Row(n, n, 'x.jpg', None) for n in range(4)]\n"
        "    batch = workers.submit(rows, [None] * 4).result()\n"
        "    assert {p.kind for p in batch.rows} == {'embed'}\n"
        "    print(*workers._processes._processes, flush=True)\n"
        "    time.sleep(60)\n"
    )
    (tmp_path / "x.jpg").write_bytes(jpeg_bytes(photo(64, 48)))
    indexer = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path)], stdout=subprocess.PIPE, text=True, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    decoders = [int(pid) for pid in indexer.stdout.readline().split()]
    assert decoders and all(_alive(pid) for pid in decoders)
    indexer.kill()
    indexer.wait()
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in decoders) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in decoders)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False

"""Parquet catalogs: pictures as paths, bytes or Hugging Face Image structs; on disk, on S3
(moto's server) and behind a local HTTP server; bad files and bad rows; flat memory."""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fashion_clip.ingest.catalog import Row, RowProblem
from fashion_clip.ingest.parquet import read_parquet_rows
from fashion_clip.ingest.pictures import PICTURES_FOLDER
from fashion_clip.store.embedded import EmbeddedStore
from space.results import Pictures
from tests.image_corpus import jpeg_bytes, photo
from tests.indexer_fixtures import points, product_rows, run_indexer, use_store, write_photos


@pytest.fixture
def env(tmp_path, monkeypatch, tiny_model_dir):
    use_store(monkeypatch, tmp_path / "qdrant", tiny_model_dir)
    return tmp_path


def pictures(n: int, *, seed: int = 0) -> list[bytes]:
    return [jpeg_bytes(photo(64, 48, seed=seed + i)) for i in range(n)]


def write_parquet(path: Path, rows: list[dict], **options) -> Path:
    """`rows` as a Parquet file (pyarrow infers the types: bytes, structs, text)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path, **options)
    return path


def embedded_rows(n: int, *, as_struct: bool = True) -> list[dict]:
    """Product rows whose image is the picture's bytes: a `datasets` Image struct, or raw."""
    rows = product_rows(n)
    for row, data in zip(rows, pictures(n), strict=True):
        name = row["image"]
        row["image"] = {"bytes": data, "path": name} if as_struct else data
    return rows


def test_embedded_pictures_index_rerun_and_prune(env, capsys):
    rows = embedded_rows(8)
    catalog = write_parquet(env / "shop.parquet", rows, row_group_size=3)

    code, out, err = run_indexer(capsys, "index", catalog, "--collection", "shop")
    assert code == 0, err
    assert "indexed 8, unchanged 0, skipped 0" in out
    stored = points(env / "qdrant", "shop")
    assert sorted(stored) == sorted(row["id"] for row in rows)
    folder = env / "qdrant" / PICTURES_FOLDER / "shop"
    for row in rows:
        payload = stored[row["id"]].payload
        kept = Path(payload["_image_source"])
        assert kept.parent == folder and kept.suffix == ".jpg"
        assert kept.read_bytes() == row["image"]["bytes"]  # the picture itself, kept for the app
        assert payload["image"] == row["image"]["path"]
        assert payload["category"] == row["category"] and payload["price"] == row["price"]
        assert set(stored[row["id"]].vectors) == {"image", "text"}

    lost = Path(stored[rows[0]["id"]].payload["_image_source"])
    lost.unlink()  # a kept picture gone (a cleaned disk): the next run writes it again
    code, out, _ = run_indexer(capsys, "index", catalog, "--collection", "shop")
    assert code == 0 and "indexed 0, unchanged 8, skipped 0" in out
    assert lost.read_bytes() == rows[0]["image"]["bytes"]

    rows[0]["price"] = 1.0  # payload only: vectors reused
    write_parquet(catalog, rows[:6])
    (folder / "notes.txt").write_text("not a kept picture")  # not ours to delete
    hour_ago = time.time() - 3600
    for kept in folder.iterdir():  # kept by an earlier day's run
        os.utime(kept, (hour_ago, hour_ago))
    code, out, _ = run_indexer(
        capsys, "index", catalog, "--collection", "shop", "--prune", "--max-prune-fraction", "0.3"
    )  # 2 of 8 points: over the default share a prune may delete
    assert (
        code == 0 and "indexed 1, unchanged 5, skipped 0, deleted 2 (and 2 unused pictures)" in out
    )
    assert sorted(points(env / "qdrant", "shop")) == sorted(row["id"] for row in rows[:6])
    still = {p.payload["_image_source"] for p in points(env / "qdrant", "shop").values()}
    assert {str(p) for p in folder.iterdir()} == still | {str(folder / "notes.txt")}


def test_a_snapshot_carries_the_embedded_pictures_to_another_store(
    env, capsys, monkeypatch, tiny_model_dir
):
    rows = embedded_rows(5)
    catalog = write_parquet(env / "shop.parquet", rows)
    assert run_indexer(capsys, "index", catalog, "--collection", "shop")[0] == 0
    snapshot = env / "shop.snapshot"
    code, _, err = run_indexer(capsys, "snapshot", "push", snapshot, "--collection", "shop")
    assert code == 0, err

    use_store(monkeypatch, env / "elsewhere", tiny_model_dir)  # another machine's store
    code, _, err = run_indexer(capsys, "snapshot", "pull", snapshot)
    assert code == 0, err
    folder = (env / "elsewhere" / PICTURES_FOLDER / "shop").absolute()
    stored = points(env / "elsewhere", "shop")
    for row in rows:
        kept = Path(stored[row["id"]].payload["_image_source"])
        assert kept.parent == folder  # named where the pictures are now
        assert kept.read_bytes() == row["image"]["bytes"]
    with EmbeddedStore(env / "elsewhere") as store, store.open("shop") as pulled:
        assert pulled.info().extra["pictures_root"] == str(folder)  # where the app looks
    shown = Pictures([folder], cache_dir=env / "served")(stored[rows[0]["id"]].payload)
    assert Path(shown).read_bytes() == rows[0]["image"]["bytes"]  # the page shows it

    # The first run there rewrites those rows' payloads once (their recorded picture moved),
    # keeping their vectors; the next finds them unchanged.
    code, out, err = run_indexer(capsys, "index", catalog, "--collection", "shop")
    assert code == 0 and "indexed 5, unchanged 0, skipped 0" in out, err
    with EmbeddedStore(env / "elsewhere") as store:
        assert store.record("shop")[1]["last_run"]["reused_vectors"] == 5  # none embedded
    code, out, err = run_indexer(capsys, "index", catalog, "--collection", "shop")
    assert code == 0 and "indexed 0, unchanged 5, skipped 0" in out, err
    assert all(
        Path(p.payload["_image_source"]).parent == folder
        for p in points(env / "elsewhere", "shop").values()
    )


def test_raw_bytes_and_path_columns(env, capsys):
    raw = write_parquet(env / "raw.parquet", embedded_rows(4, as_struct=False))
    code, out, err = run_indexer(capsys, "index", raw, "--collection", "raw")
    assert code == 0 and "indexed 4" in out, err
    kept = {Path(p.payload["_image_source"]) for p in points(env / "qdrant", "raw").values()}
    assert all(path.is_file() and path.parent.name == "raw" for path in kept)

    write_photos(env / "photos", 3)
    paths = write_parquet(env / "photos" / "paths.parquet", product_rows(3))
    code, out, err = run_indexer(capsys, "index", paths, "--collection", "paths")
    assert code == 0 and "indexed 3" in out, err
    stored = points(env / "qdrant", "paths")
    assert stored["sku-0"].payload["_image_source"] == str(env / "photos" / "img-0.jpg")

    # A struct holding only a path (a `datasets` Image not embedded) is a reference too.
    rows = product_rows(2)
    for row in rows:
        row["image"] = {"bytes": None, "path": row["image"]}
    structs = write_parquet(env / "photos" / "structs.parquet", rows)
    code, out, err = run_indexer(capsys, "index", structs, "--collection", "structs")
    assert code == 0 and "indexed 2" in out, err


def test_bad_rows_are_skipped_and_reported(env, capsys):
    rows = embedded_rows(6)
    rows[1]["id"] = None
    rows[2]["image"] = {"bytes": b"not a picture at all", "path": "broken.jpg"}
    rows[3]["image"] = None
    rows[4]["id"] = rows[0]["id"]
    catalog = write_parquet(env / "bad.parquet", rows)
    report = env / "report.jsonl"

    code, out, err = run_indexer(
        capsys, "index", catalog, "--collection", "bad", "--report", report
    )
    assert code == 1
    assert "indexed 2, unchanged 0, skipped 4" in out
    reasons = {entry["row"]: entry["reason"] for entry in map(json.loads, report.open())}
    assert sorted(reasons) == [2, 3, 4, 5]
    assert "missing id" in reasons[2] and "missing image" in reasons[4]
    assert "duplicate id" in reasons[5] and "broken.jpg" in err
    assert sorted(points(env / "qdrant", "bad")) == ["sku-0", "sku-5"]
    kept = sorted((env / "qdrant" / PICTURES_FOLDER / "bad").iterdir())
    assert len(kept) == 2 and all(p.suffix == ".jpg" for p in kept)  # not the broken one


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"PAR1 this is not parquet at all", "not a readable Parquet file"),
        ([{"id": 1, "image": 5}], "the 'image' column holds int64"),
        ([{"id": 1, "picture": "a.jpg"}], "has no 'image' column"),
    ],
)
def test_a_bad_file_is_one_message_and_exit_2(env, capsys, content, expected):
    catalog = env / "broken.parquet"
    if isinstance(content, bytes):
        catalog.write_bytes(content)
    else:
        write_parquet(catalog, content)
    code, _out, err = run_indexer(capsys, "index", catalog, "--collection", "x")
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and str(catalog) in lines[0], err
    assert "Traceback" not in err


def test_on_s3(env, capsys, s3_bucket):
    from fashion_clip.media import s3

    catalog = write_parquet(env / "local.parquet", embedded_rows(3))
    s3.upload_file(catalog, f"s3://{s3_bucket}/shop/catalog.parquet")
    code, out, err = run_indexer(
        capsys, "index", f"s3://{s3_bucket}/shop/catalog.parquet", "--collection", "s3shop"
    )
    assert code == 0 and "indexed 3" in out, err
    assert len(points(env / "qdrant", "s3shop")) == 3


@contextlib.contextmanager
def serving(folder: Path):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_behind_an_http_server(env, capsys):
    write_parquet(env / "web" / "catalog.parquet", embedded_rows(3))
    with serving(env / "web") as base:
        code, out, err = run_indexer(
            capsys, "index", f"{base}/catalog.parquet", "--collection", "web"
        )
        assert code == 0 and "indexed 3" in out, err
        code, _, err = run_indexer(capsys, "index", f"{base}/missing.parquet", "--collection", "w")
    assert code == 2 and "HTTP 404" in err
    assert len(points(env / "qdrant", "web")) == 3


def test_rows_stream_with_flat_memory(tmp_path):
    """Arrow memory while reading stays near one batch of rows, not the file's size."""
    n, blob = 400, 50_000
    rows = [{"id": i, "image": bytes([i % 256]) * blob, "caption": f"item {i}"} for i in range(n)]
    catalog = write_parquet(tmp_path / "big.parquet", rows, row_group_size=50, compression="none")
    del rows
    baseline = pa.total_allocated_bytes()
    peak, count = 0, 0
    for row in read_parquet_rows(catalog, name="big.parquet"):
        assert isinstance(row, Row) and len(row.data) == blob
        count += 1
        peak = max(peak, pa.total_allocated_bytes() - baseline)
    assert count == n
    assert peak < n * blob / 2, f"{peak} bytes held while reading a {n * blob}-byte catalog"


def test_reader_names_rows_like_the_text_formats(tmp_path):
    rows = [{"id": "a", "image": "a.jpg", "price": float("nan")}, {"id": "b", "image": "b.jpg"}]
    items = list(read_parquet_rows(write_parquet(tmp_path / "c.parquet", rows), name="c"))
    assert isinstance(items[0], RowProblem) and "finite" in items[0].reason
    assert isinstance(items[1], Row) and items[1].number == 2 and items[1].data is None


def test_columns_under_other_names(env, capsys):
    """Marqo's evaluation sets name the id `item_ID` and the caption `text`."""
    rows = embedded_rows(6)
    for row in rows:
        row["item_ID"], row["text"] = row.pop("id"), row.pop("caption")
        row["id"] = "not the id"  # a column already called id gives way
    catalog = write_parquet(env / "marqo.parquet", rows)
    columns = ("--id-column", "item_ID", "--caption-column", "text")
    code, out, err = run_indexer(capsys, "index", catalog, "--collection", "m", *columns)
    assert code == 0 and "indexed 6" in out, err
    stored = points(env / "qdrant", "m")
    assert sorted(stored) == sorted(row["item_ID"] for row in rows)
    assert stored["sku-0"].payload["caption"] == rows[0]["text"]
    assert stored["sku-0"].payload["id_original"] == "not the id"
    code, out, err = run_indexer(
        capsys, "evaluate", catalog, "--collection", "m", "--label-column", "category",
        "--json", *columns,
    )  # fmt: skip
    assert code == 0 and json.loads(out)["queries"] == 6, err

    code, _, err = run_indexer(capsys, "index", catalog, "--id-column", "sku", "--collection", "m")
    assert code == 2 and "no column 'sku'" in err
    (env / "c.csv").write_text("id,image\n1,a.jpg\n")  # every format: tests/test_indexer_catalog.py
    code, _, err = run_indexer(capsys, "index", env / "c.csv", "--id-column", "x")
    assert code == 2 and "no column 'x' (columns: id, image)" in err


def test_a_relative_store_path_records_where_the_pictures_really_are(env, capsys, monkeypatch):
    catalog = write_parquet(env / "shop.parquet", embedded_rows(2))
    monkeypatch.chdir(env)
    monkeypatch.setenv("QDRANT_PATH", "relative-store")
    code, _, err = run_indexer(capsys, "index", catalog, "--collection", "shop")
    assert code == 0, err
    for point in points(env / "relative-store", "shop").values():
        kept = Path(point.payload["_image_source"])
        assert kept.is_absolute() and kept.is_file()
        assert kept.parent == env / "relative-store" / PICTURES_FOLDER / "shop"


def test_opening_reads_the_sample_not_the_whole_file(tmp_path, monkeypatch):
    """The row count comes from the file's metadata: the pictures are read once, by the run."""
    from fashion_clip.ingest import job

    rows = [{"id": i, "image": bytes([i % 256]) * 1000} for i in range(400)]
    catalog = write_parquet(tmp_path / "c.parquet", rows, row_group_size=50)
    batches = []
    original = pq.ParquetFile.iter_batches

    def counting(self, *args, **kwargs):
        for batch in original(self, *args, **kwargs):
            batches.append(batch.num_rows)
            yield batch

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", counting)
    monkeypatch.setattr(job, "_SAMPLE", 5)
    with job.open_catalog(str(catalog)) as opened:
        assert opened.total == 400 and len(opened.sample) == 5
        assert sum(batches) <= 64  # one batch, not the file's 400 rows
        assert sum(1 for _ in opened.rows()) == 400


def test_decoding_processes_get_the_embedded_bytes(env, capsys):
    """Beside a GPU rows go to decoding processes: the pictures' bytes travel with them, and
    the points equal a run in threads."""
    catalog = write_parquet(env / "shop.parquet", embedded_rows(5))
    for mode in ("threads", "processes"):
        code, out, err = run_indexer(
            capsys, "index", catalog, "--collection", mode, "--decode", mode, "--workers", "2"
        )
        assert code == 0 and "indexed 5" in out, err
    threads, processes = points(env / "qdrant", "threads"), points(env / "qdrant", "processes")
    assert sorted(threads) == sorted(processes)
    for key, point in threads.items():
        for name, vector in point.vectors.items():
            np.testing.assert_allclose(vector, processes[key].vectors[name], atol=1e-5)
        assert Path(processes[key].payload["_image_source"]).is_file()

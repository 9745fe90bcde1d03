"""Images and catalogs from S3 (moto's HTTP server, real boto3 calls) and from an HTTP server."""

from __future__ import annotations

import contextlib
import http.server
import json
import socket
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from fashion_clip.media import s3
from tests.indexer_fixtures import (
    points,
    product_rows,
    run_indexer,
    use_store,
    write_catalog,
    write_photos,
)

N = 6


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def env(tmp_path, monkeypatch, tiny_model_dir):
    use_store(monkeypatch, tmp_path / "qdrant", tiny_model_dir)
    write_photos(tmp_path / "images", N)
    return tmp_path


@pytest.fixture
def bucket(s3_bucket):
    return s3_bucket


@pytest.mark.parametrize("decode", ["threads", "processes"])
def test_catalog_and_images_in_s3(env, bucket, capsys, decode):
    for i in range(N):
        s3.upload_file(env / "images" / f"img-{i}.jpg", f"s3://{bucket}/shop/media/img-{i}.jpg")
    rows = product_rows(N, prefix="media/")
    rows[0]["image"] = f"s3://{bucket}/shop/media/img-0.jpg"  # absolute URIs work too
    rows.append({"id": "gone", "image": "media/missing.jpg"})
    write_catalog(env / "c.jsonl", rows)
    s3.upload_file(env / "c.jsonl", f"s3://{bucket}/shop/catalog.jsonl")

    # No --images: relative paths are relative to the catalog's own S3 prefix.
    args = ("index", f"s3://{bucket}/shop/catalog.jsonl", "--report", env / "report.jsonl")
    args += ("--decode", decode)  # processes: each spawned process reads S3 with its own client
    code, out, err = run_indexer(capsys, *args)
    assert code == 1 and f"catalog: indexed {N}, unchanged 0, skipped 1" in out
    assert f"s3://{bucket}/shop/media/missing.jpg: no such key" in err
    stored = points(env / "qdrant", "catalog")
    assert len(stored) == N
    assert stored["sku-3"].payload["_image_source"] == f"s3://{bucket}/shop/media/img-3.jpg"
    [skip] = [json.loads(line) for line in (env / "report.jsonl").read_text().splitlines()]
    assert skip["id"] == "gone" and skip["row"] == N + 1

    code, out, _ = run_indexer(capsys, *args)
    assert code == 1 and f"indexed 0, unchanged {N}, skipped 1" in out

    # A local catalog with --images s3://bucket/prefix, into another collection.
    local = write_catalog(env / "local.csv", product_rows(N))
    code, out, err = run_indexer(
        capsys, "index", local, "--images", f"s3://{bucket}/shop/media", "--collection", "l"
    )
    assert code == 0, err
    assert len(points(env / "qdrant", "l")) == N

    code, out, err = run_indexer(
        capsys, "snapshot", "push", f"s3://{bucket}/snapshots/l.tar", "--collection", "l"
    )
    assert code == 0 and s3.exists(f"s3://{bucket}/snapshots/l.tar"), err
    code, out, err = run_indexer(
        capsys, "snapshot", "pull", f"s3://{bucket}/snapshots/l.tar", "--collection", "l2"
    )
    assert code == 0 and f"({N} points" in out, err


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves `root`; `/flaky/...` fails once with 503, `/slow/...` answers too late."""

    root: Path
    hits: Counter
    lock = threading.Lock()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, directory=str(self.root), **kwargs)

    def do_GET(self):
        with self.lock:
            self.hits[self.path] += 1
            first = self.hits[self.path] == 1
        if self.path.startswith("/flaky/"):
            if first:
                self.send_error(503, "try again")
                return
            self.path = self.path[len("/flaky") :]
        if self.path.startswith("/slow/"):
            time.sleep(1.5)
            self.path = self.path[len("/slow") :]
        # The client gives up waiting on the slow path: that is the point.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture
def http_root(env):
    handler = type("Handler", (_Handler,), {"root": env / "images", "hits": Counter()})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler.hits
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("decode", ["threads", "processes"])
def test_images_from_an_http_server(env, http_root, capsys, decode):
    base, hits = http_root
    rows = product_rows(N)
    rows[1]["image"] = "flaky/img-1.jpg"  # 503 once: retried, then indexed
    rows[2]["image"] = f"{base}/img-2.jpg"  # absolute URL
    rows.append({"id": "404", "image": "missing.jpg"})
    rows.append({"id": "slow", "image": "slow/img-3.jpg"})
    rows.append({"id": "refused", "image": f"http://127.0.0.1:{free_port()}/x.jpg"})
    catalog = write_catalog(env / "c.csv", rows)
    args = ("index", catalog, "--images", base + "/", "--timeout", "0.5", "--retries", "1")
    args += ("--decode", decode)
    code, out, err = run_indexer(capsys, *args)
    assert code == 1 and f"indexed {N}, unchanged 0, skipped 3" in out
    assert "missing.jpg: HTTP 404" in err
    assert "slow/img-3.jpg: unreachable" in err and "timed out" in err
    assert "x.jpg: unreachable" in err
    assert hits["/flaky/img-1.jpg"] == 2 and hits["/missing.jpg"] == 1  # 404 is not retried
    assert hits["/slow/img-3.jpg"] == 2
    stored = points(env / "qdrant", "c")
    assert sorted(stored) == sorted(f"sku-{i}" for i in range(N))
    assert stored["sku-1"].payload["_image_source"] == f"{base}/flaky/img-1.jpg"

    code, out, _ = run_indexer(capsys, *args)  # re-run: fetched and hashed, not re-embedded
    assert code == 1 and f"indexed 0, unchanged {N}, skipped 3" in out

"""Re-running an unchanged catalog reads no image again: the source is asked whether each
image changed (S3: one listing per folder; the web: a conditional GET answered 304; local
files: size, times and inode) and only changed ones are downloaded. Bytes are counted where
they are served or received: the local HTTP server's bodies, the S3 client's GetObjects."""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.image_corpus import jpeg_bytes, photo
from tests.indexer_fixtures import product_rows, run_indexer, use_store, write_catalog, write_photos

N = 10


@pytest.fixture
def shop(tmp_path, monkeypatch, tiny_model_dir):
    use_store(monkeypatch, tmp_path / "qdrant", tiny_model_dir)
    write_photos(tmp_path / "images", N)
    write_catalog(tmp_path / "c.jsonl", product_rows(N))
    return tmp_path


def _image_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.iterdir())


def _change(path: Path, seed: int) -> None:
    """A new picture, dated a minute later: `Last-Modified` has whole seconds only."""
    path.write_bytes(jpeg_bytes(photo(64, 48, seed=seed)))
    later = path.stat().st_mtime + 60
    os.utime(path, (later, later))


@contextlib.contextmanager
def serving(folder: Path, *, etags: bool) -> Iterator[tuple[str, dict[str, int]]]:
    """`folder` over HTTP, with `Last-Modified` (and `ETag` when asked); counts the body
    bytes sent and the answers by status."""
    counts = {"body_bytes": 0, "200": 0, "304": 0}

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def send_response(self, code, message=None):
            counts[str(code)] = counts.get(str(code), 0) + 1
            super().send_response(code, message)

        def end_headers(self):
            if etags and self.path.endswith(".jpg"):
                self.send_header("ETag", self._etag())
            super().end_headers()

        def _etag(self) -> str:
            st = os.stat(self.translate_path(self.path))
            return f'"{st.st_size:x}-{st.st_mtime_ns:x}"'

        def send_head(self):
            if etags and self.headers.get("If-None-Match") == self._etag():
                self.send_response(304)
                self.end_headers()
                return None
            return super().send_head()

        def copyfile(self, source, outputfile):
            data = source.read()
            counts["body_bytes"] += len(data)
            outputfile.write(data)

    handler = functools.partial(Handler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", counts
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("etags", [True, False], ids=["etag", "last-modified"])
def test_an_http_rerun_downloads_only_what_changed(shop, capsys, etags):
    images = shop / "images"
    with serving(images, etags=etags) as (base, counts):
        args = ("index", shop / "c.jsonl", "--images", base, "--collection", "shop")
        code, out, err = run_indexer(capsys, *args)
        assert code == 0, err
        assert counts["body_bytes"] == _image_bytes(images) and counts["200"] == N

        counts.update(body_bytes=0, **{"200": 0, "304": 0})
        code, out, err = run_indexer(capsys, *args)
        assert code == 0 and f"indexed 0, unchanged {N}" in out, err
        assert counts == {"body_bytes": 0, "200": 0, "304": N}  # no picture sent again

        _change(images / "img-3.jpg", seed=500)
        code, out, err = run_indexer(capsys, *args)
        assert code == 0 and f"indexed 1, unchanged {N - 1}" in out, err
        assert counts["body_bytes"] == (images / "img-3.jpg").stat().st_size


def test_an_s3_rerun_lists_instead_of_downloading(shop, capsys, s3_bucket):
    from fashion_clip.media import s3

    client = s3.s3_client()
    images = shop / "images"
    for path in images.iterdir():
        client.put_object(Bucket=s3_bucket, Key=f"photos/{path.name}", Body=path.read_bytes())
    received: list[int] = []

    def count(parsed, **kwargs):
        received.append(int(parsed.get("ContentLength") or 0))

    client.meta.events.register("after-call.s3.GetObject", count)
    try:
        args = ("index", shop / "c.jsonl", "--images", f"s3://{s3_bucket}/photos")
        args += ("--collection", "shop")
        assert run_indexer(capsys, *args)[0] == 0
        assert sum(received) == _image_bytes(images) and len(received) == N

        received.clear()
        code, out, err = run_indexer(capsys, *args)
        assert code == 0 and f"indexed 0, unchanged {N}" in out, err
        assert received == []  # one listing, no object read

        changed = jpeg_bytes(photo(64, 48, seed=600))
        client.put_object(Bucket=s3_bucket, Key="photos/img-5.jpg", Body=changed)
        code, out, err = run_indexer(capsys, *args)
        assert code == 0 and f"indexed 1, unchanged {N - 1}" in out, err
        assert received == [len(changed)]
    finally:
        client.meta.events.unregister("after-call.s3.GetObject", count)


def test_a_local_rerun_reads_no_unchanged_file(shop, capsys, monkeypatch):
    import fashion_clip.ingest.stamps as stamps

    read: list[str] = []
    fetch = stamps.fetch_bytes
    monkeypatch.setattr(
        stamps, "fetch_bytes", lambda source, **kw: read.append(source) or fetch(source, **kw)
    )
    images = shop / "images"
    args = ("index", shop / "c.jsonl", "--images", images, "--collection", "shop")
    assert run_indexer(capsys, *args)[0] == 0
    assert len(read) == N

    read.clear()
    code, out, err = run_indexer(capsys, *args)
    assert code == 0 and f"indexed 0, unchanged {N}" in out, err
    assert read == []

    (images / "img-7.jpg").write_bytes(jpeg_bytes(photo(64, 48, seed=700)))
    os.utime(images / "img-2.jpg")  # touched, the same bytes: read, hashed, not embedded
    code, out, err = run_indexer(capsys, *args)
    assert code == 0 and f"unchanged {N - 2}" in out and "indexed 2" in out, err
    assert sorted(Path(p).name for p in read) == ["img-2.jpg", "img-7.jpg"]
    read.clear()
    code, out, err = run_indexer(capsys, *args)  # the touched file's new stamp was recorded
    assert code == 0 and f"indexed 0, unchanged {N}" in out and read == [], err

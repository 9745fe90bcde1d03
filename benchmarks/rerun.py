"""Re-running an unchanged catalog: first run vs re-run, local, over HTTP and on S3.

A re-run asks each image's source whether it changed before downloading it
(`fashion_clip.ingest.stamps`): S3 by one listing per folder, the web by conditional GETs
answered 304, local files by size, times and inode. This measures, for a catalog of `--n`
images (embedded by a FashionCLIP-sized model, or `--model demo`), the first run and the
re-run of each source, the image bytes the re-run transferred, and for local files the
re-run as it was before stamps (every image read and hashed), in the same process,
alternating.

`python -m benchmarks.rerun [--n 2000]`; the last line is `RESULT {json}`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from benchmarks.common import (
    OUT,
    machine,
    print_table,
    result_line,
    vitb32_folder,
    write_photos,
)

DISTINCT = 100  # photos drawn; the catalog's files repeat them under their own names
SOURCES = ("local", "http", "s3")


def catalog_files(n: int, size: tuple[int, int]) -> tuple[Path, Path, int]:
    """`n` JPEG files and a JSONL catalog naming them; returns their folder, the catalog
    and the files' total bytes."""
    photos = write_photos(OUT / "photos", DISTINCT, size)
    folder = OUT / f"rerun-{n}-{size[0]}x{size[1]}"
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        path = folder / f"img-{i:05d}.jpg"
        if not path.exists():
            shutil.copyfile(photos[i % DISTINCT], path)
        rows.append({"id": f"sku-{i:05d}", "image": path.name, "caption": f"product {i}"})
    catalog = OUT / f"rerun-{n}-{size[0]}x{size[1]}.jsonl"
    catalog.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return folder, catalog, sum(p.stat().st_size for p in folder.iterdir())


def index(
    store_dir: Path, catalog: Path, images: str, model, workers: int | None = None
) -> tuple[float, object]:
    """One `indexer index` run (the library's job, in this process): seconds and summary."""
    # deferred (as below): the library loads torch; `--help` should not wait for it
    from fashion_clip.ingest.job import collection_spec, index_catalog, open_catalog
    from fashion_clip.ingest.pipeline import IndexOptions
    from fashion_clip.ingest.report import Reporter
    from fashion_clip.ingest.sources import ImageRoot
    from fashion_clip.store.embedded import EmbeddedStore

    options = IndexOptions(workers=workers) if workers else IndexOptions()
    started = time.perf_counter()
    with (
        open_catalog(str(catalog)) as opened,
        Reporter() as reporter,
        EmbeddedStore(store_dir) as store,
        store.open_or_create("bench", collection_spec(model, opened)) as collection,
    ):
        summary = index_catalog(
            opened, ImageRoot(images, str(catalog)), collection, model, reporter, options
        )
    if summary.skipped:
        raise RuntimeError(f"rows were skipped: {summary.line()}")
    return time.perf_counter() - started, summary


# The web server, in a process of its own as a real one would be: Python's file server
# (`Last-Modified`, `If-Modified-Since` answered 304), counting the body bytes it sends;
# GET /__sent tells the count.
_SERVER = """
import functools, http.server, sys
sent = [0]
class Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass
    def do_GET(self):
        if self.path == "/__sent":
            body = str(sent[0]).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()
    def copyfile(self, source, outputfile):
        data = source.read()
        sent[0] += len(data)
        outputfile.write(data)
class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 128  # the listen backlog: 5 by default drops concurrent connects
server = Server(("127.0.0.1", int(sys.argv[1])), functools.partial(Handler, directory=sys.argv[2]))
server.serve_forever()
"""


class _Sent:
    """The server's count of body bytes sent, read from it; `reset` starts counting anew."""

    def __init__(self, base: str) -> None:
        self.base, self.start = base, 0

    def _read(self) -> int:
        with urllib.request.urlopen(self.base + "__sent", timeout=30) as response:
            return int(response.read())

    def reset(self) -> None:
        self.start = self._read()

    def __getitem__(self, key: str) -> int:
        return self._read() - self.start


@contextlib.contextmanager
def http_server(folder: Path) -> Iterator[tuple[str, _Sent]]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-c", _SERVER, str(port), str(folder)])
    base = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(100):  # until it answers
            with contextlib.suppress(OSError):
                urllib.request.urlopen(base + "__sent", timeout=5).close()
                break
            time.sleep(0.1)
        yield base, _Sent(base)
    finally:
        server.terminate()
        server.wait(timeout=30)


@contextlib.contextmanager
def s3_bucket(folder: Path) -> Iterator[tuple[str, dict[str, int]]]:
    """`folder`'s files in a bucket of moto's S3 server; counts the bytes GetObject returns."""
    from moto.server import ThreadedMotoServer  # deferred: a test dependency, S3 runs only

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs each request

    from fashion_clip.media import s3  # deferred: boto3

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    os.environ.update(
        AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}", AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1",
    )  # fmt: skip
    client = s3.s3_client()
    client.create_bucket(Bucket="bench")
    for path in sorted(folder.iterdir()):
        client.put_object(Bucket="bench", Key=f"photos/{path.name}", Body=path.read_bytes())
    received = {"bytes": 0}

    def count(parsed, **kwargs):
        received["bytes"] += int(parsed.get("ContentLength") or 0)

    client.meta.events.register("after-call.s3.GetObject", count)
    try:
        yield "s3://bench/photos", received
    finally:
        client.meta.events.unregister("after-call.s3.GetObject", count)
        server.stop()


def _reset(moved) -> None:
    if isinstance(moved, _Sent):
        moved.reset()
    else:
        moved["bytes"] = 0


@contextlib.contextmanager
def without_stamps() -> Iterator[None]:
    """The re-run as it was before stamps: every image read and hashed (the stored stamp is
    not given to the source, which then always sends the picture)."""
    import fashion_clip.ingest.workers as workers  # deferred: loads torch, as the model does

    original, settle = workers.fetch_unless_unchanged, workers.unchanged_by_file_stamp

    def always_read(source, stored, versions, **kwargs):
        return original(source, None, versions, **kwargs)

    workers.fetch_unless_unchanged = always_read
    workers.unchanged_by_file_stamp = lambda row, stored, spec: False  # every row to a worker
    try:
        yield
    finally:
        workers.fetch_unless_unchanged, workers.unchanged_by_file_stamp = original, settle


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="catalog rows (image files)")
    parser.add_argument("--repeat", type=int, default=2, help="local re-runs of each kind")
    parser.add_argument(
        "--size", default="320x427", help="photo width x height (product photos: 1000x1333)"
    )
    parser.add_argument(
        "--sources", default=",".join(SOURCES), help=f"which of {', '.join(SOURCES)} to run"
    )
    parser.add_argument(
        "--model", default="vitb32",
        help="vitb32 (FashionCLIP's size, random weights: what a real first run costs) or demo",
    )  # fmt: skip
    parser.add_argument(
        "--workers", type=int, help="images fetched at once (default: the indexer's)"
    )
    args = parser.parse_args()
    width, height = (int(side) for side in args.size.split("x"))
    chosen = args.sources.split(",")

    from fashion_clip.model.clip import ClipModel

    folder, catalog, total = catalog_files(args.n, (width, height))
    source = str(vitb32_folder()) if args.model == "vitb32" else args.model
    model = ClipModel.load(source, text_precision="fp32")
    work = Path(tempfile.mkdtemp(prefix="rerun-"))
    figures: dict[str, float] = {"n": args.n, "image_mb": total / 1e6}
    rows = []
    sources = {
        "local": (contextlib.nullcontext((str(folder), {"bytes": 0})), False),
        "http": (http_server(folder), True),
        "s3": (s3_bucket(folder), True),
    }
    for name, (serving, counted) in sources.items():
        if name not in chosen:
            continue
        with serving as (images, moved):
            first, summary = index(work / name, catalog, images, model, args.workers)
            assert summary.indexed == args.n, summary.line()
            _reset(moved)
            again, summary = index(work / name, catalog, images, model, args.workers)
            assert summary.unchanged == args.n, summary.line()
            share = moved["bytes"] / total if counted else float("nan")
        figures |= {f"{name}_first_s": first, f"{name}_rerun_s": again}
        figures[f"{name}_speedup"] = first / again
        if counted:
            figures[f"{name}_rerun_bytes_share"] = share
        rows.append((name, f"{first:.1f}", f"{again:.2f}", f"{first / again:.0f}x",
                     f"{share:.2%}" if counted else "-"))  # fmt: skip

    old, new = [], []
    if "local" not in chosen:
        index(work / "local", catalog, str(folder), model)
    for _ in range(args.repeat):  # alternating: the machine's load hits both alike
        with without_stamps():
            old.append(index(work / "local", catalog, str(folder), model)[0])
        new.append(index(work / "local", catalog, str(folder), model)[0])
    figures |= {"local_rerun_before_s": min(old), "local_rerun_now_s": min(new)}
    figures["local_rerun_vs_before"] = min(old) / min(new)
    rows.append(("local, before stamps", "-", f"{min(old):.2f}", "-", "100%"))
    print(f"{args.n} {args.size} images ({total / 1e6:.1f} MB), model {args.model}; {machine()}")
    print_table(rows, ("source", "first run s", "re-run s", "first/re-run", "re-run bytes"))
    print(f"local re-run: {min(old) / min(new):.1f}x faster than before stamps")
    shutil.rmtree(work, ignore_errors=True)
    print(result_line(figures))


if __name__ == "__main__":
    main()

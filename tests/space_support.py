"""Helpers for the Space tests: a small indexed store, a live server on a free port.

A slice of the bundled demo catalog (its real payloads and pictures) is indexed through the
indexer's own pipeline into a temporary embedded store, with whatever model the test uses.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fashion_clip.demo import DEMO_CATALOG_DIR, DEMO_CATALOG_FILE
from fashion_clip.model.clip import ClipModel
from fashion_clip.settings import Settings
from fashion_clip.store import Collection, open_store


def demo_records(rows: int = 60) -> list[dict[str, Any]]:
    """`rows` items of the demo catalog, image paths made absolute."""
    lines = DEMO_CATALOG_FILE.read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines if line.strip()]
    # Every 7th row: spread over categories and colours, not only the first few.
    chosen = records[:: max(1, len(records) // rows)][:rows]
    for record in chosen:
        record["image"] = str((DEMO_CATALOG_DIR / record["image"]).resolve())
    return chosen


def demo_slice(folder: Path, rows: int = 60) -> Path:
    """The catalog file of `demo_records(rows)` in `folder`."""
    return write_records(folder, demo_records(rows))


def write_records(folder: Path, records: list[dict[str, Any]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "catalog.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def index_slice(model: ClipModel, store_dir: Path, rows: int = 60) -> Settings:
    """Index a demo slice into collection `shop` under `store_dir`; settings that point at it."""
    return index_catalog_file(
        model, store_dir, demo_slice(store_dir.parent / f"{store_dir.name}-catalog", rows)
    )


def index_records(model: ClipModel, store_dir: Path, records: list[dict[str, Any]]) -> Settings:
    """`index_slice` of catalog rows of the test's own (image paths absolute)."""
    return index_catalog_file(
        model, store_dir, write_records(store_dir.parent / f"{store_dir.name}-catalog", records)
    )


def index_catalog_file(model: ClipModel, store_dir: Path, catalog_path: Path) -> Settings:
    """Index the catalog at `catalog_path` into collection `shop` under `store_dir`."""
    from fashion_clip.ingest.job import collection_spec, index_catalog, open_catalog
    from fashion_clip.ingest.pipeline import IndexOptions
    from fashion_clip.ingest.report import Reporter
    from fashion_clip.ingest.sources import ImageRoot

    settings = Settings(model=model.info.name, qdrant_path=store_dir, collection="shop")
    with open_store(settings) as store, open_catalog(str(catalog_path)) as catalog:
        root = ImageRoot(str(DEMO_CATALOG_DIR), str(catalog_path))
        with store.create("shop", collection_spec(model, catalog)) as collection, Reporter() as r:
            summary = index_catalog(catalog, root, collection, model, r, IndexOptions(workers=2))
    assert summary.skipped == 0, summary
    return settings


_INDEXED: dict[tuple[str, int], Settings] = {}


def shared_shop(model: ClipModel, tmp_path_factory: Any, rows: int = 60) -> Settings:
    """`index_slice` once per test session and model; later callers reuse the store.

    (The embedded store lets one holder open a collection at a time: each test module opens
    it in its fixture and closes it at its teardown, and modules run one after another.)
    """
    key = (model.info.name, rows)
    if key not in _INDEXED:
        _INDEXED[key] = index_slice(model, tmp_path_factory.mktemp("space-shop") / "store", rows)
    return _INDEXED[key]


def open_shop(settings: Settings, model: ClipModel) -> Collection:
    info = model.info
    store = open_store(settings)
    return store.open("shop", model_id=info.name, model_revision=info.revision, dim=info.dim)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serving(demo: Any, **launch: Any) -> Iterator[str]:
    """Launch `demo` on a free local port in this process; yield its URL; close it after."""
    port = free_port()
    demo.launch(
        server_name="127.0.0.1",
        server_port=port,
        prevent_thread_lock=True,
        quiet=True,
        **launch,
    )
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


@contextlib.contextmanager
def serving_pictures() -> Iterator[str]:
    """The demo catalog's pictures over plain HTTP on 127.0.0.1, for the image-URL input."""
    handler = functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=str(DEMO_CATALOG_DIR / "images")
    )
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()

"""Pictures a catalog embeds (Parquet bytes), kept as files beside the store for the app.

The indexer embeds them straight from the catalog's bytes; the app, which shows a hit's
picture from a file or URL, needs them somewhere. Each is written once, named by its content's
SHA-256 (a re-run or a duplicate writes nothing), under `{QDRANT_PATH}/_pictures/{collection}`:
on a Space that is the persistent `/data` volume, so they survive restarts. The embedded store
lists only folders holding a collection, so this one is not taken for one; a snapshot of the
collection carries them (`store.snapshot`). A `--prune` run removes those no point names any
more (`prune_pictures`).
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

from fashion_clip.files import write_atomic
from fashion_clip.ingest.state import SOURCE_FIELD
from fashion_clip.store import Collection
from fashion_clip.store.embedded import PICTURES_FOLDER, pictures_folder

__all__ = [
    "PICTURES_FOLDER", "keep_picture", "picture_path", "picture_suffix", "pictures_folder",
    "prune_pictures",
]  # fmt: skip
_KEPT_NAME = re.compile(r"[0-9a-f]{64}\.[a-z]+")  # what `picture_path` names a picture

# Magic numbers of the formats a browser shows as they are; anything else keeps `.bin` and
# the app shows a thumbnail of it.
_SIGNATURES = (
    (b"\xff\xd8\xff", ".jpg"),
    (b"\x89PNG\r\n\x1a\n", ".png"),
    (b"GIF8", ".gif"),
    (b"BM", ".bmp"),
)


def picture_suffix(data: bytes) -> str:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    return next((suffix for magic, suffix in _SIGNATURES if data.startswith(magic)), ".bin")


def picture_path(folder: Path, data: bytes, sha256: str) -> Path:
    """Where `data` (whose SHA-256 is `sha256`) is kept in `folder`."""
    return folder / (sha256 + picture_suffix(data))


def keep_picture(target: Path, data: bytes) -> None:
    """Write `data` to `target` unless it is there already (same name, same content), whole:
    the app never serves half a picture. Not flushed to the disk: a picture lost in a power
    cut is written again by the next run."""
    if target.is_file():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(target, data, durable=False)


def prune_pictures(collection: Collection, folder: Path, *, older_than: float) -> int:
    """Delete the pictures kept in `folder` that no point of `collection` names: those of
    products pruned, or whose picture changed. Only files named as this module names them,
    and only those last written before `older_than` (a time.time()): a picture kept for a
    point not yet written is never taken for an unused one. Returns how many went."""
    if not folder.is_dir():
        return 0
    named = {
        os.path.basename(str(point.payload.get(SOURCE_FIELD) or ""))
        for point in collection.iter_points()
    }
    deleted = 0
    for picture in folder.iterdir():
        if picture.name in named or not _KEPT_NAME.fullmatch(picture.name):
            continue
        with contextlib.suppress(FileNotFoundError):
            if picture.is_file() and picture.stat().st_mtime < older_than:
                picture.unlink()
                deleted += 1
    return deleted

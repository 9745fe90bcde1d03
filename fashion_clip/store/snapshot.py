"""Snapshots of embedded collections: one tar file, to a path or to S3 and back.

A snapshot holds a manifest (`fashion_clip_snapshot.json`: the collection record and point
count) followed by the collection's files as the engine wrote them, HNSW index included, so a
Space that pulls one searches at full speed without rebuilding anything. The manifest comes
first, so the model guard runs before anything is unpacked.

The pictures a catalog embeds (kept beside the store, `pictures_folder`) travel with it, under
`pictures/`: a pull puts them in its own store's folder and points the collection at them
(the points' picture paths, and the record's `pictures_root`, name where they are now).
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path
from typing import Any

from fashion_clip.errors import StoreError
from fashion_clip.media import s3
from fashion_clip.store.base import Collection, CollectionInfo, Store
from fashion_clip.store.embedded import (
    META_FILE,
    PICTURES_ROOT,
    SHARD_DIR,
    EmbeddedStore,
    make_directory,
    pictures_folder,
    write_json_atomic,
)
from fashion_clip.store.meta import check_name, guard, parse_meta

MANIFEST = "fashion_clip_snapshot.json"
PICTURES = "pictures"  # the snapshot's folder of embedded pictures
_SIZE_HEADER = "FASHIONCLIP.size"  # full size of a file stored without its trailing zeros
# What a missing, truncated or corrupt archive raises while being read.
_BROKEN = (OSError, EOFError, tarfile.TarError, zlib.error)
FORMAT = 1


def _embedded(store: Store) -> EmbeddedStore:
    if not isinstance(store, EmbeddedStore):
        raise StoreError(
            f"snapshots are made of embedded collections; {store.location} is a Qdrant server, "
            "which has its own snapshot API (see Qdrant's documentation on snapshots)"
        )
    return store


def export_snapshot(store: Store, name: str, destination: str | os.PathLike[str]) -> Path:
    """Write collection `name` to the tar file `destination` (gzipped if it ends in `.gz`).

    Writers are held off while the files are copied; the file appears only once complete.
    """
    store = _embedded(store)
    destination = Path(destination)
    was_open = store.is_open(name)
    collection = store.open(name)
    try:
        with collection.write_lock:
            collection.flush()
            manifest = {"format": FORMAT, "name": name, "count": collection.count()}
            manifest["collection"] = collection.meta
            partial = destination.with_name(destination.name + ".partial")
            try:
                destination.parent.mkdir(parents=True, exist_ok=True)
                pictures = pictures_folder(store.root, name)
                _write_tar(partial, manifest, store.directory(name), pictures)
                os.replace(partial, destination)
            except OSError as exc:
                with contextlib.suppress(OSError):  # its folder may be what failed
                    partial.unlink()
                raise StoreError(f"cannot write the snapshot {destination}: {exc}") from exc
    finally:
        if not was_open:
            collection.close()
    return destination


def read_manifest(source: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of a snapshot file (read without unpacking the rest)."""
    try:
        with tarfile.open(source) as tar:
            first = tar.next()
            if first is None or first.name != MANIFEST:
                raise StoreError(f"{source}: not a FashionCLIP snapshot (no manifest first)")
            handle = tar.extractfile(first)
            manifest = json.loads(handle.read()) if handle else None
    except (*_BROKEN, ValueError) as exc:
        # tarfile lists why each compression failed, one line each; the user needs one line.
        why = "not a tar archive" if isinstance(exc, tarfile.ReadError) else str(exc)
        raise StoreError(
            f"{source}: not a readable snapshot ({why}); push one with `indexer snapshot push`"
        ) from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise StoreError(f"{source}: unknown snapshot format; made by another version?")
    manifest["collection"] = parse_meta(
        manifest.get("name", "?"), manifest.get("collection"), str(source)
    )
    return manifest


def import_snapshot(
    store: Store,
    source: str | os.PathLike[str],
    name: str | None = None,
    *,
    model_id: str | None = None,
    model_revision: str | None = None,
    dim: int | None = None,
    recreate: bool = False,
) -> CollectionInfo:
    """Load a snapshot file as collection `name` (default: the name it was exported under).

    With `model_id` (and `model_revision`, `dim`) given, a snapshot built with another model is
    refused before anything changes. An existing collection is replaced only with `recreate`.
    """
    store = _embedded(store)
    manifest = read_manifest(source)
    name = check_name(name or manifest["name"])
    meta = manifest["collection"]
    guard(name, meta, model_id, model_revision, dim)
    if store.exists(name) and not recreate:
        raise StoreError(
            f"collection {name!r} already exists at {store.directory(name)}; pass recreate "
            "(`--recreate`) to replace it with the snapshot"
        )
    if store.is_open(name):
        store.open(name).close()
    make_directory(store.root)
    with (
        store.locked(name) as directory,
        tempfile.TemporaryDirectory(prefix=f".{name}.import-", dir=store.root) as staging,
    ):
        _unpack(source, Path(staging))
        _check_loads(Path(staging) / SHARD_DIR, manifest["count"], source)
        # Before the swap: a folder that cannot take them stops the pull with nothing lost.
        moved_from = _move_pictures(Path(staging) / PICTURES, meta, store, name)
        # Swap in: the record goes last, so a crash here leaves no half-made collection.
        (directory / META_FILE).unlink(missing_ok=True)
        shutil.rmtree(directory / SHARD_DIR, ignore_errors=True)
        os.replace(Path(staging) / SHARD_DIR, directory / SHARD_DIR)
        write_json_atomic(directory / META_FILE, meta)
    collection = store.open(name)
    try:
        if moved_from:
            _repoint(collection, moved_from, meta["extra"][PICTURES_ROOT])
        return collection.info()
    finally:
        collection.close()


def _move_pictures(unpacked: Path, meta: dict[str, Any], store: EmbeddedStore, name: str) -> str:
    """Put the snapshot's pictures in this store's folder for `name` (one it has already is
    the same picture: they are named by their content) and record that folder in `meta`.
    Returns the folder the points still name, if they must be pointed here ("" if not)."""
    if not unpacked.is_dir():
        return ""
    here = pictures_folder(store.root, name)
    here.mkdir(parents=True, exist_ok=True)
    for picture in unpacked.iterdir():
        if not (here / picture.name).exists():
            os.replace(picture, here / picture.name)  # staging is in the store: no copy
    extra = meta.setdefault("extra", {})
    before, extra[PICTURES_ROOT] = extra.get(PICTURES_ROOT), str(here)
    return before if before and before != str(here) else ""


def _repoint(collection: Collection, before: str, here: str) -> None:
    """Every payload text naming a picture under `before` names it under `here` instead."""
    prefix = before.rstrip("/") + "/"
    updates: dict[Any, dict[str, Any]] = {}
    for point in collection.iter_points(batch_size=512):
        moved = {
            key: here + "/" + value[len(prefix) :]
            for key, value in point.payload.items()
            if isinstance(value, str) and value.startswith(prefix)
        }
        if moved:
            updates[point.id] = moved
        if len(updates) >= 512:
            collection.set_payloads(updates)
            updates = {}
    if updates:
        collection.set_payloads(updates)


def _write_tar(path: Path, manifest: dict[str, Any], directory: Path, pictures: Path) -> None:
    gz = path.name.removesuffix(".partial").endswith(".gz")
    with tarfile.open(path, "w:gz" if gz else "w", format=tarfile.PAX_FORMAT) as tar:
        data = json.dumps(manifest, indent=2).encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        _add_trimmed(tar, directory / META_FILE, META_FILE)
        for path_in in sorted((directory / SHARD_DIR).rglob("*")):
            arcname = str(path_in.relative_to(directory))
            if path_in.is_dir():
                tar.add(path_in, arcname=arcname, recursive=False)
            else:
                _add_trimmed(tar, path_in, arcname)
        if pictures.is_dir():
            for picture in sorted(p for p in pictures.iterdir() if p.is_file()):
                tar.add(picture, arcname=f"{PICTURES}/{picture.name}", recursive=False)


def push_snapshot(store: Store, name: str, uri: str) -> str:
    """Export collection `name` to `uri`: a file path or `s3://bucket/key`. A folder (an
    existing directory, or any `uri` ending in `/`) gets `{name}.snapshot` inside it, the
    name `FASHION_CLIP_SNAPSHOTS` looks for."""
    if uri.endswith("/") or (not uri.startswith("s3://") and Path(uri).is_dir()):
        uri = uri.rstrip("/") + f"/{name}.snapshot"
    if not uri.startswith("s3://"):
        return str(export_snapshot(store, name, uri))
    store = _embedded(store)
    make_directory(store.root)
    with tempfile.TemporaryDirectory(prefix=".snapshot-", dir=store.root) as tmp:
        local = export_snapshot(store, name, Path(tmp) / Path(uri).name)
        s3.upload_file(local, uri)
    return uri


def pull_snapshot(store: Store, uri: str, name: str | None = None, **kwargs: Any) -> CollectionInfo:
    """Import a snapshot from a file path or `s3://bucket/key`; arguments as `import_snapshot`."""
    if not uri.startswith("s3://"):
        return import_snapshot(store, uri, name, **kwargs)
    store = _embedded(store)
    make_directory(store.root)
    with tempfile.TemporaryDirectory(prefix=".snapshot-", dir=store.root) as tmp:
        local = s3.download_file(uri, Path(tmp) / "snapshot.tar")
        return import_snapshot(store, local, name, **kwargs)


def _add_trimmed(tar: tarfile.TarFile, path: Path, arcname: str) -> None:
    """Add a file without its trailing zeros, noting its full size in a PAX header.

    The engine preallocates files (WAL segments, payload pages: 32 MB each, mostly holes);
    stored whole they would make a small collection's snapshot hundreds of megabytes.
    """
    info = tar.gettarinfo(path, arcname)
    end = _data_end(path, info.size)
    if end != info.size:
        info.pax_headers = {_SIZE_HEADER: str(info.size)}
        info.size = end
    with open(path, "rb") as f:
        tar.addfile(info, f)


def _data_end(path: Path, size: int, chunk: int = 1 << 20) -> int:
    """The offset just past the last non-zero byte of the file."""
    with open(path, "rb") as f:
        end = _last_extent_end(f.fileno(), size)
        while end > 0:
            start = max(0, end - chunk)
            f.seek(start)
            block = f.read(end - start).rstrip(b"\0")
            if block:
                return start + len(block)
            end = start
    return 0


def _last_extent_end(fd: int, size: int) -> int:
    """Where the file's last allocated extent ends: holes after it need no scanning."""
    end, offset = 0, 0
    try:
        while offset < size:
            data = os.lseek(fd, offset, os.SEEK_DATA)
            offset = end = os.lseek(fd, data, os.SEEK_HOLE)
    except OSError as exc:
        # ENXIO: no data past `offset`; anything else: no hole support, so scan it all.
        return end if exc.errno == errno.ENXIO else size
    return min(end, size)


def _unpack(source: str | os.PathLike[str], staging: Path) -> None:
    """Extract the collection files, refusing members that would land outside `staging`."""
    try:
        with tarfile.open(source) as tar:
            members = []
            for member in tar:
                if member.name == MANIFEST:
                    continue
                parts = Path(member.name).parts
                unsafe = member.name.startswith("/") or ".." in parts
                if unsafe or parts[0] not in (META_FILE, SHARD_DIR, PICTURES):
                    raise StoreError(f"{source}: unexpected member {member.name!r} in snapshot")
                if not (member.isfile() or member.isdir()):
                    raise StoreError(f"{source}: snapshot member {member.name!r} is not a file")
                members.append(member)
            tar.extractall(staging, members=members, filter="data")
        for member in members:  # give trimmed files back their size (the tail is a hole)
            if _SIZE_HEADER in member.pax_headers:
                os.truncate(staging / member.name, int(member.pax_headers[_SIZE_HEADER]))
    except _BROKEN as exc:
        raise StoreError(f"{source}: cannot unpack snapshot: {exc}") from exc


def _check_loads(shard_dir: Path, expected: int, source: object) -> None:
    from fashion_clip.store.edge_shard import count_shard  # deferred: qdrant_edge

    count = count_shard(shard_dir)
    if count != expected:
        raise StoreError(f"{source}: snapshot holds {count} points, its manifest says {expected}")

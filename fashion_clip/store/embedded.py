"""The embedded store: a directory (`QDRANT_PATH`) with one sub-directory per collection.

    QDRANT_PATH/<collection>/collection.json   the record: model, revision, dim, catalog, ...
    QDRANT_PATH/<collection>/shard/            the Qdrant Edge shard (segments, WAL, config)
    QDRANT_PATH/<collection>/.lock             flock'ed while a process has it open

One process at a time may open a collection: the engine owns its files, so a second writer
would corrupt them. The lock is an advisory `flock`, released by the kernel even when the
holder is killed, so a crash never leaves a collection locked.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fashion_clip.errors import ConfigurationError, StoreError, StoreLockedError
from fashion_clip.files import write_atomic
from fashion_clip.store.base import CollectionSpec, Store
from fashion_clip.store.meta import check_name, guard, new_meta, parse_meta

if TYPE_CHECKING:
    from fashion_clip.store.edge import EdgeCollection

META_FILE = "collection.json"
SHARD_DIR = "shard"
LOCK_FILE = ".lock"
# Beside the collections, not one of them: the pictures a catalog embeds (Parquet bytes), kept
# for the app as `{root}/_pictures/{collection}/{sha256}{suffix}` (`ingest.pictures`).
PICTURES_FOLDER = "_pictures"
PICTURES_ROOT = "pictures_root"  # the collection record's `extra` key naming that folder


class DirectoryLock:
    """An exclusive, non-blocking `flock` on `<directory>/.lock`."""

    def __init__(self, directory: Path, name: str) -> None:
        self.path = directory / LOCK_FILE
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:  # a read-only folder (a Space's app folder can be)
            raise _unwritable(directory, exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StoreLockedError(
                f"collection {name!r} at {directory} is already open in another process "
                f"(pid {holder}) or by another store object. The embedded store lets one "
                "process use a collection at a time: stop the other one (the app or an indexer "
                "run), or use a Qdrant server (QDRANT_URL) for several processes"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def pictures_folder(root: str | os.PathLike[str], collection: str) -> Path:
    """Where collection `collection`'s embedded pictures are kept, for a store at `root`: an
    absolute path, since the points record it and the app, started elsewhere, must find it
    (QDRANT_PATH may be relative, `data/qdrant` by default)."""
    return Path(root).expanduser().absolute() / PICTURES_FOLDER / collection


def make_directory(directory: Path) -> None:
    """`mkdir -p`, or one StoreError naming the folder and the setting that moves it."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _unwritable(directory, exc) from None


def _unwritable(directory: Path, exc: OSError) -> StoreError:
    return StoreError(
        f"cannot write in {directory} ({exc.strerror or exc}): the embedded store needs a "
        "folder it can write to; set QDRANT_PATH to one (on a Space: /data/qdrant with "
        "persistent storage, else a folder under /tmp)"
    )


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so that a crash leaves either the old file or the new one, never half."""
    write_atomic(path, json.dumps(data, indent=2, sort_keys=True).encode("utf-8"))


def read_meta(directory: Path, name: str) -> dict[str, Any]:
    try:
        raw = json.loads((directory / META_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raw = None
    except (OSError, ValueError) as exc:
        where = directory / META_FILE
        raise StoreError(f"collection {name!r}: cannot read {where}: {exc}") from exc
    return parse_meta(name, raw, str(directory))


class EmbeddedStore(Store):
    """Collections as Qdrant Edge shards under `root`; collections open here are cached."""

    kind = "embedded"

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.location = str(self.root)
        if self.root.exists() and not self.root.is_dir():
            # Else "no collections yet" from `info`, and a NotADirectoryError mid-`index`.
            raise ConfigurationError(
                f"QDRANT_PATH {self.root}: is a file; the embedded store needs a folder"
            )
        self._open: dict[str, EdgeCollection] = {}

    def directory(self, name: str) -> Path:
        return self.root / check_name(name)

    def list_collections(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / META_FILE).is_file())

    def record(self, name: str) -> tuple[str | None, dict[str, Any]]:
        # The small file beside the shard: opening would load the shard whole (every segment).
        meta = read_meta(self.directory(name), name)
        return meta.get("catalog"), meta.get("extra") or {}

    def exists(self, name: str) -> bool:
        return (self.directory(name) / META_FILE).is_file()

    def create(self, name: str, spec: CollectionSpec, *, recreate: bool = False) -> EdgeCollection:
        from fashion_clip.store import edge, edge_shard  # deferred: qdrant_edge

        directory = self.directory(name)
        meta = new_meta(spec)
        if self.exists(name) and not recreate:
            raise StoreError(
                f"collection {name!r} already exists at {directory}; open it, or pass "
                "recreate (`--recreate`) to rebuild it"
            )
        self._close_cached(name)
        make_directory(directory)
        lock = DirectoryLock(directory, name)
        shard = collection = None
        try:
            # Under the lock nobody uses the old files: clear them (or a half-made collection).
            (directory / META_FILE).unlink(missing_ok=True)
            shutil.rmtree(directory / SHARD_DIR, ignore_errors=True)
            shard = edge_shard.create_shard(directory / SHARD_DIR, spec)
            collection = edge.EdgeCollection(
                name, shard, meta, self._saver(directory), self._releaser(name, lock),
                path=directory / SHARD_DIR,
            )  # fmt: skip
            for field_name, field_type in spec.payload_indexes.items():
                collection.index_field(field_name, field_type)
            # Written last: a directory without it is an unfinished creation.
            write_json_atomic(directory / META_FILE, meta)
        except BaseException:
            # The shard's files and threads go too, not only the lock; the first error is the
            # one to tell, so a failure to close is not raised over it.
            with contextlib.suppress(Exception):
                if collection is not None:
                    collection.close()  # closes the shard, releases the lock
                elif shard is not None:
                    shard.close()
            if collection is None:
                lock.release()
            raise
        self._open[name] = collection
        return collection

    def open(
        self,
        name: str,
        *,
        model_id: str | None = None,
        model_revision: str | None = None,
        dim: int | None = None,
    ) -> EdgeCollection:
        from fashion_clip.store import edge, edge_shard  # deferred: qdrant_edge

        directory = self.directory(name)
        if name in self._open:
            collection = self._open[name]
            guard(name, collection.meta, model_id, model_revision, dim)
            return collection
        if not self.exists(name):
            known = ", ".join(self.list_collections()) or "none"
            raise StoreError(
                f"no collection {name!r} in the embedded store at {self.root} "
                f"(collections: {known}); index a catalog into it first"
            )
        lock = DirectoryLock(directory, name)
        try:
            meta = read_meta(directory, name)
            guard(name, meta, model_id, model_revision, dim)
            edge_shard.recover_shard(directory / SHARD_DIR)
            shard = edge_shard.load_shard(directory / SHARD_DIR)
        except BaseException:
            lock.release()
            raise
        collection = edge.EdgeCollection(
            name, shard, meta, self._saver(directory), self._releaser(name, lock),
            path=directory / SHARD_DIR,
        )  # fmt: skip
        self._open[name] = collection
        return collection

    def drop(self, name: str) -> None:
        self._close_cached(name)
        directory = self.directory(name)
        if not directory.exists():
            return
        lock = DirectoryLock(directory, name)
        try:
            (directory / META_FILE).unlink(missing_ok=True)  # first: never half a collection
            shutil.rmtree(directory)
        finally:
            lock.release()

    def is_open(self, name: str) -> bool:
        """Whether this store object holds `name` open."""
        return name in self._open

    def close(self) -> None:
        for name in list(self._open):
            self._close_cached(name)

    def _close_cached(self, name: str) -> None:
        collection = self._open.pop(name, None)
        if collection is not None:
            collection.close()

    def _saver(self, directory: Path):
        return lambda meta: write_json_atomic(directory / META_FILE, meta)

    def _releaser(self, name: str, lock: DirectoryLock):
        def release() -> None:
            lock.release()
            self._open.pop(name, None)

        return release

    @contextlib.contextmanager
    def locked(self, name: str) -> Iterator[Path]:
        """Hold the collection's lock without opening it (e.g. to replace its files)."""
        directory = self.directory(name)
        make_directory(directory)
        lock = DirectoryLock(directory, name)
        try:
            yield directory
        finally:
            lock.release()

"""Open collections shared by the users of one process (the `FashionCLIP` objects), counted.

The embedded store lets one open handle use a collection's files at a time, so two
`FashionCLIP` objects on the same dataset in one process (a notebook cell run twice,
`approx=False` next to `approx=True`) must share one handle instead of each locking the
directory. Each user holds a `Lease`; the collection, and a store opened on the users'
behalf, close when the last lease is released.

Opening and building run under one lock, so a second user of a collection waits for the
first build instead of starting another on the same files. A lease dropped by garbage
collection may be released in any thread, including an indexer worker the build is waiting
for: it must not wait for that lock, so `release_soon` hands it to the lock's holder.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fashion_clip.store import open_store

if TYPE_CHECKING:
    from fashion_clip.settings import Settings
    from fashion_clip.store.base import Collection, Store

log = logging.getLogger(__name__)

_LOCK = threading.RLock()  # re-entrant: a finalizer may run in the thread holding it


@dataclass
class _Shared:
    value: Any  # a Store or a Collection
    users: int = 0


_STORES: dict[tuple[str, ...], _Shared] = {}
_COLLECTIONS: dict[tuple[int, str], _Shared] = {}
_PENDING: list[Lease] = []  # released by garbage collection while the lock was busy


class Lease:
    """One user's claim on a shared open collection; `release()` is safe to call twice."""

    def __init__(self, store: Store, collection: Collection, store_key: tuple[str, ...] | None):
        self.store = store
        self.collection = collection
        self._collection_key = (id(store), collection.name)
        self._store_key = store_key
        self.released = False

    def release(self) -> None:
        """Give the claim back; the last one out closes the collection (and a shared store)."""
        with _LOCK:
            self._release()
            _release_pending()
        _drain()

    def release_soon(self) -> None:
        """`release()` now if the lock is free, else as soon as its holder lets go of it."""
        _PENDING.append(self)  # first: a holder letting go after this will see it
        _drain()

    def _release(self) -> None:
        if self.released:
            return
        self.released = True
        try:
            _drop(_COLLECTIONS, self._collection_key)
        finally:
            if self._store_key is not None:
                _drop(_STORES, self._store_key)


def lease_collection(
    name: str,
    open_collection: Callable[[Store, bool], tuple[Collection, Any]],
    *,
    store: Store | None = None,
    settings: Settings | None = None,
) -> tuple[Lease, Any]:
    """A lease on collection `name` in `store` (or in the store `settings` name, shared).

    `open_collection(store, sole_user)` opens or builds the collection and returns it with
    any result of its own; it runs under this module's lock, and `sole_user` tells it that
    nobody else holds the collection, so that it must close it if it fails. The collection
    already shared under `name` is the one leased, whatever `open_collection` returned.
    """
    try:
        return _lease(name, open_collection, store, settings)
    finally:
        _drain()  # the lock is free now: what was handed over while we held it is released


def _lease(
    name: str,
    open_collection: Callable[[Store, bool], tuple[Collection, Any]],
    store: Store | None,
    settings: Settings | None,
) -> tuple[Lease, Any]:
    with _LOCK:
        store_key = None
        if store is None:
            if settings is None:
                raise TypeError("lease_collection needs a store or the settings naming one")
            store_key = _store_key(settings)
            shared_store = _STORES.get(store_key)
            if shared_store is None:
                shared_store = _STORES[store_key] = _Shared(open_store(settings))
            shared_store.users += 1
            store = shared_store.value
        key = (id(store), name)
        shared = _COLLECTIONS.get(key)
        if shared is not None:  # counted now: another user's release must not close it mid-build
            shared.users += 1
        try:
            collection, result = open_collection(store, shared is None)
        except BaseException:
            if shared is not None:
                _drop(_COLLECTIONS, key)
            if store_key is not None:
                _drop(_STORES, store_key)
            _release_pending()
            raise
        if shared is None:
            shared = _COLLECTIONS[key] = _Shared(collection, users=1)
        lease = Lease(store, shared.value, store_key)
        _release_pending()
        return lease, result


def _release_pending() -> None:
    """Release the leases handed over by `release_soon` (the caller holds the lock)."""
    while _PENDING:
        lease = _PENDING.pop()
        try:
            lease._release()
        except Exception:  # closing another user's collection must not fail this caller
            log.exception("closing a released collection (%s) failed", lease.collection.name)


def _drain() -> None:
    """Release handed-over leases if the lock is free. Called after letting go of the lock:
    a lease handed over while it was held (after its holder's last drain) is not stranded."""
    while _PENDING and _LOCK.acquire(blocking=False):
        try:
            _release_pending()
        finally:
            _LOCK.release()


def _drop(table: dict[Any, _Shared], key: Any) -> None:
    shared = table.get(key)
    if shared is None:
        return
    shared.users -= 1
    if shared.users <= 0:
        del table[key]
        shared.value.close()


def _store_key(settings: Settings) -> tuple[str, ...]:
    """Which store `settings` name: a server (URL and key) or an embedded directory."""
    if settings.qdrant_url:
        return ("remote", settings.qdrant_url, settings.qdrant_api_key or "")
    return ("embedded", str(Path(settings.qdrant_path).expanduser().resolve()))

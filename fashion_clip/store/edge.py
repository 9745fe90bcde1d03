"""The embedded engine: one Qdrant Edge shard per collection. With `edge_query` (how rankings
and filters become the engine's requests), the modules importing qdrant_edge.

Qdrant Edge does not optimize on its own: new points land in an appendable segment that is
searched by brute force, and `optimize()` (called by the indexer after a bulk load) builds the
HNSW index. Points written after that stay searchable while unindexed. Every update goes
through the engine's write-ahead log before `update` returns, so it survives a process crash.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as qe

from fashion_clip.errors import StoreError
from fashion_clip.store.base import (
    Collection,
    CollectionInfo,
    CollectionSpec,
    Filter,
    Group,
    Hit,
    Point,
    Ranking,
    Scalar,
    SparseVector,
    search_breadth,
)
from fashion_clip.store.bm25 import document_vector
from fashion_clip.store.edge_query import query_filter, ranking_stages
from fashion_clip.store.edge_shard import (
    NEW_SUFFIX,
    SCHEMAS,
    copy_points,
    create_shard,
    engine,
    load_shard,
    swap_in,
)
from fashion_clip.store.ids import point_id
from fashion_clip.store.keywords import KEYWORDS_VECTOR, check_keyword_fields
from fashion_clip.store.meta import (
    check_index_type,
    field_path,
    merge_extra,
    missing_facet_index,
    to_info,
    with_payload_index,
)
from fashion_clip.store.points import (
    PayloadUpdate,
    examples,
    payload_updates,
    prepare,
    rewrite_points,
    to_hit,
    to_point,
)
from fashion_clip.store.query import check_query, group_by_overfetch
from fashion_clip.store.ranking import run_query

FLUSH_EVERY_POINTS = 20_000  # bounds the WAL (~50 MB at 512-d) during bulk loads
OVERSAMPLING = 2.0  # quantized search: candidates fetched per result, then rescored


class EdgeCollection(Collection):
    """A collection backed by one Qdrant Edge shard.

    `save_meta` persists the collection record; `release` frees the directory lock on close.
    """

    def __init__(
        self,
        name: str,
        shard: Any,
        meta: dict[str, Any],
        save_meta: Callable[[dict[str, Any]], None],
        release: Callable[[], None],
        path: Path | None = None,
    ) -> None:
        self.name = name
        self.dim = int(meta["dim"])
        self.model_id = meta["model_id"]
        self._shard = shard
        self._meta = meta
        self._path = path  # the shard's folder, for adding the keyword space to an old one
        self._save_meta = save_meta
        self._release = release
        # Quantized collections search the int8 copies, then rescore the best candidates
        # with the originals: without it scores are off by about 1% and ranks shuffle.
        self._rescore = None
        if meta.get("quantization"):
            self._rescore = qe.QuantizationSearchParams(rescore=True, oversampling=OVERSAMPLING)
        # Writers are serialised so that a snapshot can hold them off while it copies files.
        self.write_lock = threading.RLock()
        self._unflushed = 0
        self._changed = False  # anything written since the last flush (points, indexes)

    @property
    def shard(self) -> Any:
        if self._shard is None:
            raise StoreError(f"collection {self.name!r} is closed")
        return self._shard

    def info(self) -> CollectionInfo:
        return to_info(self.name, self._meta, self.count())

    def indexed_count(self) -> int:
        """Vectors (of both spaces) already in an HNSW index."""
        indexed = int(engine("read shard info", self.shard.info).indexed_vectors_count)
        # The engine counts keyword vectors too, which are indexed as soon as written.
        with_keywords = qe.Filter(must=[qe.HasVectorCondition(KEYWORDS_VECTOR)])
        sparse = engine("count points", self.shard.count, qe.CountRequest(True, with_keywords))
        return indexed - int(sparse)

    def upsert(self, points: Sequence[Point]) -> None:
        edge_points = [
            qe.Point(uuid, _with_keywords(vectors, keywords), payload)
            for uuid, vectors, payload, keywords in prepare(self, points, document_vector)
        ]
        if edge_points:
            self._update("upsert points", qe.UpdateOperation.upsert_points(edge_points))
            self._maybe_flush(len(edge_points))

    def _maybe_flush(self, written: int) -> None:
        # Edge never flushes on its own, so a bulk load would pile every point into the WAL
        # (about 2.5 KB per 512-d point) and make a reopen after a crash replay all of it.
        with self.write_lock:
            self._unflushed += written
            if self._unflushed >= FLUSH_EVERY_POINTS:
                self.flush()

    def delete(self, ids: Sequence[Any]) -> None:
        if ids:
            uuids = [point_id(i) for i in ids]
            self._update("delete points", qe.UpdateOperation.delete_points(uuids))

    def keyword_fields(self) -> list[str] | str | None:
        return self._meta.get("keyword_fields")

    def set_keyword_fields(self, fields: Sequence[str] | str | None = None) -> bool:
        wanted = check_keyword_fields(fields)
        if self._meta.get("keyword_fields") == wanted and self._meta.get("keywords_ready", True):
            return False
        with self.write_lock:
            if self._meta.get("keyword_fields") is None:  # made before keyword search
                self._add_keyword_space()
            self._save_meta({**self._meta, "keyword_fields": wanted, "keywords_ready": False})
            self._meta = {**self._meta, "keyword_fields": wanted, "keywords_ready": False}
            rewrite_points(self)
            self._meta = {**self._meta, "keywords_ready": True}
            self._save_meta(self._meta)
        return True

    def _add_keyword_space(self) -> None:
        """Copy the points (vectors and payload as stored) into a new shard that has the
        keyword space, then swap the folders: an engine cannot add a space to a shard."""
        if self._path is None:
            raise StoreError(f"collection {self.name!r}: its shard's folder is unknown")
        fresh = self._path.with_name(self._path.name + NEW_SUFFIX)
        shutil.rmtree(fresh, ignore_errors=True)  # an unfinished copy of an earlier run
        spec = CollectionSpec(
            model_id=self.model_id, dim=self.dim, quantization=bool(self._meta.get("quantization"))
        )
        target = create_shard(fresh, spec)
        try:
            copy_points(self.shard, target)
            for name, kind in self._meta.get("payload_indexes", {}).items():
                schema = SCHEMAS[check_index_type(name, kind)]
                operation = qe.UpdateOperation.create_field_index(field_path(name), schema)
                engine(f"index payload field {name!r}", target.update, operation)
            engine("build the index", target.optimize)
        finally:
            engine("close the new shard", target.close)
        old, self._shard = self._shard, None
        engine("close", old.close)
        swap_in(fresh, self._path)
        self._shard = load_shard(self._path)
        self._unflushed, self._changed = 0, False

    def set_payloads(self, updates: Mapping[Any, Mapping[str, Any]]) -> None:
        # Edge takes one payload per operation: a batch is a run of them under one lock.
        with self.write_lock:
            planned = payload_updates(self, updates, document_vector)
            for update in planned:
                operation = qe.UpdateOperation.set_payload([update.uuid], update.fields)
                engine("set payload", self.shard.update, operation)
                self._changed = True
            self._set_keywords([update for update in planned if update.words_change])
        self._maybe_flush(len(updates))

    def _set_keywords(self, updates: list[PayloadUpdate]) -> None:
        """Replace the points' keyword vectors (the dense ones untouched); no words, none."""
        given = [
            qe.PointVectors(u.uuid, _with_keywords({}, u.keywords))
            for u in updates
            if u.keywords is not None
        ]
        if given:
            engine("set keywords", self.shard.update, qe.UpdateOperation.update_vectors(given))
        wordless = [u.uuid for u in updates if u.keywords is None]
        if wordless:
            operation = qe.UpdateOperation.delete_vectors(wordless, [KEYWORDS_VECTOR])
            engine("drop keywords", self.shard.update, operation)

    def count(self, filter: Filter | None = None) -> int:
        request = qe.CountRequest(exact=True, filter=query_filter(filter))
        return int(engine("count points", self.shard.count, request))

    def retrieve(self, ids: Sequence[Any], with_vectors: bool = False) -> list[Point]:
        uuids = [point_id(i) for i in ids]
        records = engine("retrieve points", self.shard.retrieve, uuids, True, with_vectors)
        return [to_point(r, with_vectors) for r in records]

    def scroll(
        self,
        filter: Filter | None = None,
        limit: int = 256,
        offset: str | None = None,
        with_vectors: bool = False,
    ) -> tuple[list[Point], str | None]:
        request = qe.ScrollRequest(
            offset=offset, limit=limit, filter=query_filter(filter), with_payload=True,
            with_vector=with_vectors,
        )  # fmt: skip
        records, next_offset = engine("scroll points", self.shard.scroll, request)
        return [to_point(r, with_vectors) for r in records], (
            None if next_offset is None else str(next_offset)
        )

    def search(
        self,
        vector: np.ndarray,
        *,
        using: str = "image",
        filter: Filter | None = None,
        limit: int = 10,
        offset: int = 0,
        score_threshold: float | None = None,
        exact: bool = False,
        ef: int | None = None,
    ) -> list[Hit]:
        query = qe.Query.Nearest(check_query(vector, self.dim, using), using=using)
        return self._query(query, filter, limit, offset, score_threshold, exact, ef)

    def recommend(
        self,
        positive: Sequence[Any],
        negative: Sequence[Any] = (),
        *,
        using: str = "image",
        filter: Filter | None = None,
        limit: int = 10,
        offset: int = 0,
        score_threshold: float | None = None,
        exact: bool = False,
    ) -> list[Hit]:
        check_query(np.zeros(self.dim), self.dim, using)
        found = examples(self, positive, negative)

        def vectors(ids: Sequence[Any]) -> list[list[float]]:
            held = [found[str(i)].vectors.get(using) for i in ids]
            return [v.tolist() for v in held if v is not None]

        positives = vectors(positive)
        if not positives:
            raise StoreError(f"none of the positive examples has a {using!r} vector")
        query = qe.Query.RecommendBestScore(
            qe.RecommendQuery(positives, vectors(negative)), using=using
        )
        base = filter or Filter()
        excluded = Filter(
            base.equals, base.any_of, base.ranges, [*base.exclude_ids, *positive, *negative]
        )
        return self._query(query, excluded, limit, offset, score_threshold, exact, None)

    def search_groups(
        self,
        vector: np.ndarray,
        group_by: str,
        *,
        using: str = "image",
        filter: Filter | None = None,
        limit: int = 10,
        group_size: int = 3,
        exact: bool = False,
    ) -> list[Group]:
        # The Python bindings have no grouped query, so rank ungrouped and group here.
        def fetch(n: int) -> list[Hit]:
            return self.search(vector, using=using, filter=filter, limit=n, exact=exact)

        return group_by_overfetch(fetch, group_by, limit, group_size)

    def facet(self, key: str, filter: Filter | None = None, limit: int = 50) -> dict[Scalar, int]:
        request = qe.FacetRequest(
            field_path(key), limit=limit, exact=True, filter=query_filter(filter)
        )
        try:
            response = self.shard.facet(request)
        except Exception as exc:
            missing = missing_facet_index(exc, key, self.name)
            raise missing or StoreError(f"embedded store: facet on {key!r} failed: {exc}") from exc
        return {hit.value: int(hit.count) for hit in response.hits}

    def create_payload_index(self, field_name: str, field_type: str) -> None:
        self.index_field(field_name, field_type)
        with self.write_lock:
            self._meta = with_payload_index(self._meta, field_name, field_type)
            self._save_meta(self._meta)

    def index_field(self, field_name: str, field_type: str) -> None:
        """Create the engine's payload index only (the record is the caller's business)."""
        schema = SCHEMAS[check_index_type(field_name, field_type)]
        self._update(
            f"index payload field {field_name!r}",
            qe.UpdateOperation.create_field_index(field_path(field_name), schema),
        )

    @property
    def meta(self) -> dict[str, Any]:
        """The collection record as last saved."""
        return self._meta

    def set_extra(self, values: Mapping[str, Any]) -> None:
        with self.write_lock:
            self._meta = merge_extra(self._meta, values)
            self._save_meta(self._meta)

    def optimize(self) -> bool:
        """Build the HNSW index (blocking: about 2 minutes per 100,000 512-d points on 2 cores)."""
        with self.write_lock:
            self._changed = True
            return bool(engine("build the index", self.shard.optimize))

    def flush(self) -> None:
        with self.write_lock:
            engine("flush", self.shard.flush)
            self._unflushed, self._changed = 0, False

    def close(self) -> None:
        with self.write_lock:
            if self._shard is None:
                return
            shard, self._shard = self._shard, None
            try:
                if self._changed:  # a flush with nothing to write still syncs every file
                    engine("flush", shard.flush)
                engine("close", shard.close)
            finally:
                self._release()

    def _update(self, what: str, operation: Any) -> None:
        with self.write_lock:
            engine(what, self.shard.update, operation)
            self._changed = True

    def query(self, ranking: Ranking) -> list[Hit]:
        return run_query(self, ranking, self._ranked)

    def _ranked(self, ranking: Ranking) -> list[Hit]:
        query, prefetches = ranking_stages(ranking, self._params(ranking), self._bools())
        limit = ranking.limit
        if ranking.reranks():  # nothing below the relevance cut-off is returned
            limit = min(limit, ranking.candidates - ranking.offset)
        request = qe.QueryRequest(
            limit=limit, offset=ranking.offset or None, query=query, prefetches=prefetches,
            filter=query_filter(ranking.filter), params=self._params(ranking), with_payload=True,
        )  # fmt: skip
        return [to_hit(p) for p in engine("search", self.shard.query, request)]

    def _bools(self) -> set[str]:
        """The boolean payload fields (a boost counts them 1 where true)."""
        return {k for k, v in self._meta.get("payload_indexes", {}).items() if v == "bool"}

    def _params(self, ranking: Ranking) -> Any:
        ef = search_breadth(ranking.ef, ranking.filter, ranking.exact)
        return qe.SearchParams(hnsw_ef=ef, exact=ranking.exact, quantization=self._rescore)

    def _query(
        self,
        query: Any,
        filter: Filter | None,
        limit: int,
        offset: int,
        score_threshold: float | None,
        exact: bool,
        ef: int | None,
    ) -> list[Hit]:
        request = qe.QueryRequest(
            limit=limit,
            offset=offset or None,
            query=query,
            filter=query_filter(filter),
            score_threshold=score_threshold,
            params=qe.SearchParams(
                hnsw_ef=search_breadth(ef, filter, exact), exact=exact, quantization=self._rescore
            ),
            with_payload=True,
        )
        points = engine("search", self.shard.query, request)
        return [to_hit(p) for p in points]


def _with_keywords(vectors: dict[str, Any], keywords: SparseVector | None) -> dict[str, Any]:
    if keywords is None:
        return vectors
    return {
        **vectors,
        KEYWORDS_VECTOR: qe.SparseVector(list(keywords.indices), list(keywords.values)),
    }

"""A collection on a Qdrant server, cluster or Qdrant Cloud (`remote.RemoteStore` opens it).

Its record (model, payload indexes, keyword fields, free-form extra) is the collection's own
`metadata` under `META_KEY`; every request goes through the store's `call`, which turns the
client's errors into `StoreError`s naming the server without its secrets.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
from qdrant_client import QdrantClient
from qdrant_client import models as qm

from fashion_clip.errors import StoreError
from fashion_clip.store.base import (
    Collection,
    CollectionInfo,
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
from fashion_clip.store.ids import point_id
from fashion_clip.store.keywords import KEYWORDS_VECTOR, check_keyword_fields
from fashion_clip.store.meta import (
    META_KEY,
    check_index_type,
    field_path,
    merge_extra,
    missing_facet_index,
    to_info,
    with_payload_index,
)
from fashion_clip.store.points import (
    examples,
    payload_updates,
    prepare,
    rewrite_points,
    to_hit,
    to_point,
)
from fashion_clip.store.query import check_group_sizes, check_query
from fashion_clip.store.ranking import run_query
from fashion_clip.store.remote_query import query_filter, ranking_stages, top_space

log = logging.getLogger(__name__)


class Connection(Protocol):
    """What a collection needs of its store (`remote.RemoteStore`)."""

    client: QdrantClient

    def call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """`fn(*args, **kwargs)`, the client's errors as `StoreError`s saying `what` failed."""
        ...


_SCHEMAS = {
    "keyword": qm.PayloadSchemaType.KEYWORD,
    "integer": qm.PayloadSchemaType.INTEGER,
    "float": qm.PayloadSchemaType.FLOAT,
    "bool": qm.PayloadSchemaType.BOOL,
}
OVERSAMPLING = 2.0  # quantized search: candidates fetched per result, then rescored
_UPSERT_BATCH = 256  # points per request: keeps REST bodies a few MB at 512-d


class RemoteCollection(Collection):
    """A collection on a Qdrant server; writes wait until the server has applied them."""

    def __init__(self, store: Connection, name: str, meta: dict[str, Any]) -> None:
        self.store = store
        self.name = name
        self.meta = meta
        self.dim = int(meta["dim"])
        self.model_id = meta["model_id"]
        self._c = store.client

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return self.store.call(f"{what} in {self.name!r}", fn, self.name, *args, **kwargs)

    def info(self) -> CollectionInfo:
        return to_info(self.name, self.meta, self.count())

    def indexed_count(self) -> int | None:
        described = self._call("read collection info", self._c.get_collection)
        return described.indexed_vectors_count

    def upsert(self, points: Sequence[Point]) -> None:
        structs = [
            qm.PointStruct(id=uuid, vector=_with_keywords(vectors, keywords), payload=payload)
            for uuid, vectors, payload, keywords in prepare(self, points, document_vector)
        ]
        for start in range(0, len(structs), _UPSERT_BATCH):
            batch = structs[start : start + _UPSERT_BATCH]
            self._call("upsert points", self._c.upsert, points=batch, wait=True)

    def set_payloads(self, updates: Mapping[Any, Mapping[str, Any]]) -> None:
        # The keywords come from the payloads read just before: two callers setting words of
        # the same points at once (two `tag` runs) may each miss the other's (the embedded
        # store holds its write lock; a server has none to hold).
        planned = payload_updates(self, updates, document_vector)
        operations: list[Any] = [
            qm.SetPayloadOperation(set_payload=qm.SetPayload(payload=u.fields, points=[u.uuid]))
            for u in planned
        ]
        rewords = [u for u in planned if u.words_change]
        given = [
            qm.PointVectors(id=u.uuid, vector=_with_keywords({}, u.keywords))
            for u in rewords
            if u.keywords is not None
        ]
        if given:  # the keyword vector replaced, the dense ones untouched
            operations.append(
                qm.UpdateVectorsOperation(update_vectors=qm.UpdateVectors(points=given))
            )
        wordless = [u.uuid for u in rewords if u.keywords is None]
        if wordless:
            deletion = qm.DeleteVectors(points=wordless, vector=[KEYWORDS_VECTOR])
            operations.append(qm.DeleteVectorsOperation(delete_vectors=deletion))
        self._batches("set payload", operations)

    def _batches(self, doing: str, operations: Sequence[Any]) -> None:
        for start in range(0, len(operations), _UPSERT_BATCH):
            batch = operations[start : start + _UPSERT_BATCH]
            self._call(doing, self._c.batch_update_points, update_operations=batch, wait=True)

    def delete(self, ids: Sequence[Any]) -> None:
        if ids:
            selector = qm.PointIdsList(points=[point_id(i) for i in ids])
            self._call("delete points", self._c.delete, points_selector=selector, wait=True)

    def keyword_fields(self) -> list[str] | str | None:
        return self.meta.get("keyword_fields")

    def set_keyword_fields(self, fields: Sequence[str] | str | None = None) -> bool:
        wanted = check_keyword_fields(fields)
        recorded = self.meta.get("keyword_fields")
        if recorded == wanted and self.meta.get("keywords_ready", True):
            return False
        if recorded is None:
            # A server collection cannot gain a vector space; its points keep working by meaning.
            log.warning(
                "collection %r was created before keyword search; rebuild it with --recreate "
                "to search it by keywords too",
                self.name,
            )
            return False
        self._save({**self.meta, "keyword_fields": wanted, "keywords_ready": False})
        rewrite_points(self)
        self._save({**self.meta, "keywords_ready": True})
        return True

    def count(self, filter: Filter | None = None) -> int:
        result = self._call("count points", self._c.count, count_filter=query_filter(filter))
        return int(result.count)

    def retrieve(self, ids: Sequence[Any], with_vectors: bool = False) -> list[Point]:
        records = self._call(
            "retrieve points", self._c.retrieve, [point_id(i) for i in ids],
            with_payload=True, with_vectors=with_vectors,
        )  # fmt: skip
        return [to_point(r, with_vectors) for r in records]

    def scroll(
        self,
        filter: Filter | None = None,
        limit: int = 256,
        offset: str | None = None,
        with_vectors: bool = False,
    ) -> tuple[list[Point], str | None]:
        records, next_offset = self._call(
            "scroll points", self._c.scroll, scroll_filter=query_filter(filter), limit=limit,
            offset=offset, with_payload=True, with_vectors=with_vectors,
        )  # fmt: skip
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
        query = check_query(vector, self.dim, using)
        return self._query(query, using, filter, limit, offset, score_threshold, exact, ef)

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
        # only checked, so both backends refuse missing ids alike; the server has the vectors
        examples(self, positive, negative, with_vectors=False)
        query = qm.RecommendQuery(
            recommend=qm.RecommendInput(
                positive=[point_id(i) for i in positive],
                negative=[point_id(i) for i in negative],
                strategy=qm.RecommendStrategy.BEST_SCORE,
            )
        )
        return self._query(query, using, filter, limit, offset, score_threshold, exact, None)

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
        check_group_sizes(limit, group_size)
        result = self._call(
            "search groups", self._c.query_points_groups, group_by=field_path(group_by),
            query=check_query(vector, self.dim, using), using=using,
            query_filter=query_filter(filter), search_params=self._params(exact, None, filter),
            limit=limit, group_size=group_size, with_payload=True,
        )  # fmt: skip
        return [Group(value=g.id, hits=[to_hit(p) for p in g.hits]) for g in result.groups]

    def facet(self, key: str, filter: Filter | None = None, limit: int = 50) -> dict[Scalar, int]:
        try:
            response = self._call(
                f"count values of {key!r}", self._c.facet, field_path(key),
                facet_filter=query_filter(filter), limit=limit, exact=True,
            )  # fmt: skip
        except StoreError as exc:
            missing = missing_facet_index(exc, key, self.name)
            if missing:
                raise missing from exc
            raise
        return {hit.value: int(hit.count) for hit in response.hits}

    def index_field(self, field_name: str, field_type: str) -> None:
        schema = _SCHEMAS[check_index_type(field_name, field_type)]
        self._call(
            f"index payload field {field_name!r}", self._c.create_payload_index,
            field_name=field_path(field_name), field_schema=schema, wait=True,
        )  # fmt: skip

    def create_payload_index(self, field_name: str, field_type: str) -> None:
        self.index_field(field_name, field_type)
        self._save(with_payload_index(self.meta, field_name, field_type))

    def set_extra(self, values: Mapping[str, Any]) -> None:
        self._save(merge_extra(self.meta, values))

    def close(self) -> None:
        """Nothing to release per collection; `RemoteStore.close` closes the connection."""

    def _save(self, meta: dict[str, Any]) -> None:
        update = self._c.update_collection
        self._call("save the collection record", update, metadata={META_KEY: meta})
        self.meta = meta

    def _bools(self) -> set[str]:
        """The boolean payload fields (a boost counts them 1 where true)."""
        return {k for k, v in self.meta.get("payload_indexes", {}).items() if v == "bool"}

    def _params(self, exact: bool, ef: int | None, filter: Filter | None) -> qm.SearchParams:
        rescore = None
        if self.meta.get("quantization"):  # int8 search, rescored with the originals
            rescore = qm.QuantizationSearchParams(rescore=True, oversampling=OVERSAMPLING)
        return qm.SearchParams(
            hnsw_ef=search_breadth(ef, filter, exact), exact=exact, quantization=rescore
        )

    def query(self, ranking: Ranking) -> list[Hit]:
        return run_query(self, ranking, self._ranked, self._collapsed)

    def _ranked(self, ranking: Ranking) -> list[Hit]:
        query, prefetches = ranking_stages(
            ranking, self._params(ranking.exact, ranking.ef, ranking.filter), self._bools()
        )
        limit = ranking.limit
        if ranking.reranks():  # nothing below the relevance cut-off is returned
            limit = min(limit, ranking.candidates - ranking.offset)
        response = self._call(
            "search", self._c.query_points, query=query, prefetch=prefetches,
            using=top_space(query, ranking), query_filter=query_filter(ranking.filter), limit=limit,
            offset=ranking.offset or None,
            search_params=self._params(ranking.exact, ranking.ef, ranking.filter),
            with_payload=True,
        )  # fmt: skip
        return [to_hit(p) for p in response.points]

    def _collapsed(self, ranking: Ranking) -> list[Hit]:
        """The best hit per value of `ranking.collapse`, from the top through the page's end,
        by the engine's group-by (groups of one) over the same stages: the whole ranking is
        grouped, not only the candidates; products without the field are left out."""
        query, prefetches = ranking_stages(
            ranking, self._params(ranking.exact, ranking.ef, ranking.filter), self._bools()
        )
        groups = ranking.offset + ranking.limit
        if ranking.reranks():  # nothing below the relevance cut-off is returned
            groups = min(groups, ranking.candidates)
        result = self._call(
            "collapse", self._c.query_points_groups, group_by=field_path(ranking.collapse),
            query=query, prefetch=prefetches, using=top_space(query, ranking),
            query_filter=query_filter(ranking.filter), limit=groups, group_size=1,
            search_params=self._params(ranking.exact, ranking.ef, ranking.filter),
            with_payload=True,
        )  # fmt: skip
        return [to_hit(group.hits[0]) for group in result.groups if group.hits]

    def _query(
        self,
        query: Any,
        using: str,
        filter: Filter | None,
        limit: int,
        offset: int,
        score_threshold: float | None,
        exact: bool,
        ef: int | None,
    ) -> list[Hit]:
        response = self._call(
            "search", self._c.query_points, query=query, using=using,
            query_filter=query_filter(filter), search_params=self._params(exact, ef, filter),
            limit=limit, offset=offset or None, score_threshold=score_threshold,
            with_payload=True,
        )  # fmt: skip
        return [to_hit(p) for p in response.points]


def _with_keywords(vectors: dict[str, Any], keywords: SparseVector | None) -> dict[str, Any]:
    if keywords is None:
        return vectors
    sparse = qm.SparseVector(indices=list(keywords.indices), values=list(keywords.values))
    return {**vectors, KEYWORDS_VECTOR: sparse}

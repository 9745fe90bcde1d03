"""The store interface: our own small types, and the abstract `Store` and `Collection`.

Everything outside `fashion_clip/store/` speaks these types only; the two implementations
(`edge.py` for the embedded Qdrant Edge engine, `remote.py` for a Qdrant server through
`qdrant-client`) translate them to their library's types. Vectors go in and come out as float32
numpy arrays, unit length; every vector space is cosine.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fashion_clip.errors import StoreError
from fashion_clip.store.vectors import compose

CatalogId = str | int
Scalar = str | int | float | bool
VECTOR_NAMES = ("image", "text")  # `text` is the caption's embedding
DISTANCE = "cosine"
ID_FIELD = "id"  # the catalog id is kept in the payload under this key
PAYLOAD_INDEX_TYPES = ("keyword", "integer", "float", "bool")
CANDIDATES = 200  # the relevance cut-off where a stage re-ranks (README, "Ranking controls")


@dataclass(frozen=True)
class Range:
    """A numeric range; unset bounds are open."""

    gte: float | None = None
    gt: float | None = None
    lte: float | None = None
    lt: float | None = None


@dataclass(frozen=True)
class Filter:
    """Payload conditions, all of which must hold.

    `equals`: field == value; `any_of`: field is one of the values (or, for a list field, holds
    one of them); `ranges`: numeric bounds; `exclude_ids`: catalog ids left out of the results;
    `only_ids`: where given, the catalog ids results may come from.
    """

    equals: Mapping[str, Scalar] = field(default_factory=dict)
    any_of: Mapping[str, Sequence[str | int | bool]] = field(default_factory=dict)
    ranges: Mapping[str, Range] = field(default_factory=dict)
    exclude_ids: Sequence[CatalogId] = ()
    only_ids: Sequence[CatalogId] | None = None

    def is_empty(self) -> bool:
        restricted = self.only_ids is not None
        return not (self.equals or self.any_of or self.ranges or self.exclude_ids or restricted)


@dataclass
class Point:
    """One catalog item: its id, its vectors by name (each `(dim,)` float32) and its payload."""

    id: CatalogId
    vectors: dict[str, np.ndarray] = field(default_factory=dict)
    payload: dict[str, Any] = field(default_factory=dict)


# HNSW search breadth for filtered searches that ask for none. A filter leaves the graph's
# walk fewer usable nodes: at 1,000,000 points (benchmarks/search.py, a filter keeping 2.5 %)
# recall@10 was 0.80 at ef 128 and 0.93 at 512, for 8.6 -> 11.6 ms p50. Unfiltered searches
# keep the engine's default (recall 1.00 at 1M there).
FILTERED_EF = 512


def search_breadth(ef: int | None, filter: Filter | None, exact: bool) -> int | None:
    """The `ef` to send: the caller's, else `FILTERED_EF` for filtered approximate searches."""
    if ef is not None or exact or filter is None or filter.is_empty():
        return ef
    return FILTERED_EF


@dataclass(frozen=True)
class Hit:
    """A search result: the catalog id, its score (cosine similarity, higher is closer), payload."""

    id: CatalogId
    score: float
    payload: dict[str, Any]


@dataclass(frozen=True)
class SparseVector:
    """Term weights by token id (a BM25 vector)."""

    indices: tuple[int, ...]
    values: tuple[float, ...]

    def is_empty(self) -> bool:
        return not self.indices


@dataclass(frozen=True)
class SortBy:
    """Order the relevant results by a numeric payload field (which needs a range index)."""

    field: str
    descending: bool = False


@dataclass(frozen=True)
class Boost:
    """Multiply the relevance score by `1 + weight * value` of a payload field.

    A boolean field counts 1 where true; a missing numeric value counts 0.
    """

    field: str
    weight: float


@dataclass(frozen=True)
class Ranking:
    """What to rank by and how; see the module's docstring. `dense` is `(dim,)`, unit length."""

    dense: np.ndarray | None = None
    using: str = "image"
    keywords: SparseVector | None = None
    fusion: str = "rrf"
    filter: Filter | None = None
    limit: int = 10
    offset: int = 0
    boosts: Sequence[Boost] = ()
    diversity: float = 0.0  # 0: off; 1: most diverse (MMR's lambda is 1 - diversity)
    sort: SortBy | None = None
    collapse: str | None = None  # keep the best hit per value of this payload field
    candidates: int = CANDIDATES
    exact: bool = False
    ef: int | None = None
    keyword_weight: float = 1.0  # RRF weight of the keyword ranking against the dense one

    def reranks(self) -> bool:
        """Whether any stage re-ranks, so the relevance cut-off applies."""
        fused = self.dense is not None and self.keywords is not None
        return fused or bool(self.boosts) or self.diversity > 0 or self.sort is not None


@dataclass(frozen=True)
class Group:
    """Hits sharing one value of the payload field results were grouped by."""

    value: Scalar
    hits: list[Hit]


@dataclass(frozen=True)
class CollectionSpec:
    """What a new collection is built with. The model fields are recorded and guarded.

    `payload_indexes` maps payload fields to `keyword`, `integer`, `float` or `bool`
    (see `infer_payload_indexes`). The tuning fields apply where the backend has them:
    `quantization` keeps int8 copies of the vectors for search and rescores with the originals;
    `on_disk_vectors` leaves the originals memory-mapped; `shard_number` and
    `replication_factor` only mean something on a Qdrant server or cluster.
    """

    model_id: str
    dim: int
    model_revision: str | None = None
    catalog: str | None = None
    payload_indexes: Mapping[str, str] = field(default_factory=dict)
    hnsw_m: int = 16
    hnsw_ef_construct: int = 100
    quantization: bool = False
    on_disk_vectors: bool = False
    indexing_threshold_kb: int | None = None  # None: the engine's default (about 10 MB)
    shard_number: int | None = None
    replication_factor: int | None = None
    # Fields the `keywords` (BM25) vector is built from: "*" for every text field, a list
    # to choose (`fashion_clip.store.keywords`).
    keyword_fields: Sequence[str] | str = "*"


@dataclass(frozen=True)
class CollectionInfo:
    """What a collection records about itself, plus its current point count."""

    name: str
    model_id: str
    model_revision: str | None
    dim: int
    distance: str
    catalog: str | None
    count: int
    payload_indexes: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


class Collection(ABC):
    """One collection of catalog points. Obtain it from `Store.open` or `Store.create`."""

    name: str
    dim: int
    model_id: str

    @abstractmethod
    def info(self) -> CollectionInfo: ...

    @abstractmethod
    def upsert(self, points: Sequence[Point]) -> None:
        """Insert or replace points (one batch). Returns once the write is durable."""

    @abstractmethod
    def delete(self, ids: Sequence[CatalogId]) -> None:
        """Delete points by catalog id; unknown ids are ignored."""

    @abstractmethod
    def set_payloads(self, updates: Mapping[CatalogId, Mapping[str, Any]]) -> None:
        """Merge each point's fields into its payload (other fields and the dense vectors
        kept), one batch; points that do not exist are ignored. Where the fields are among
        the words keyword search matches (a tag is), the point's keywords are derived anew
        from the merged payload, so keyword search finds the new values at once."""

    @abstractmethod
    def count(self, filter: Filter | None = None) -> int: ...

    @abstractmethod
    def retrieve(self, ids: Sequence[CatalogId], with_vectors: bool = False) -> list[Point]:
        """The points that exist among `ids` (in no particular order)."""

    @abstractmethod
    def scroll(
        self,
        filter: Filter | None = None,
        limit: int = 256,
        offset: str | None = None,
        with_vectors: bool = False,
    ) -> tuple[list[Point], str | None]:
        """One page of points and the opaque offset of the next page (None at the end)."""

    @abstractmethod
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
        """Nearest points to `vector` (`(dim,)`) in the `using` space, best first.

        Approximate (HNSW, `ef` candidates; higher is slower and more accurate) unless `exact`.
        """

    @abstractmethod
    def recommend(
        self,
        positive: Sequence[CatalogId],
        negative: Sequence[CatalogId] = (),
        *,
        using: str = "image",
        filter: Filter | None = None,
        limit: int = 10,
        offset: int = 0,
        score_threshold: float | None = None,
        exact: bool = False,
    ) -> list[Hit]:
        """ "More like these, less like those" from stored points (best-score strategy).

        The examples themselves are left out of the results.
        """

    @abstractmethod
    def query(self, ranking: Ranking) -> list[Hit]:
        """Rank by meaning, keywords or both, then boost, diversify and sort (`Ranking`).

        One request to the engine; `ranking.collapse` then keeps the best hit per value of
        a payload field among the candidates, and the page is cut from what remains.
        """

    @abstractmethod
    def _ranked(self, ranking: Ranking) -> list[Hit]:
        """`query` without the checks and the collapse: the engine's ranking, one page."""

    def keyword_fields(self) -> list[str] | str | None:
        """What the `keywords` vectors are built from; None where the collection has none."""
        return None

    def set_keyword_fields(self, fields: Sequence[str] | str | None = None) -> bool:
        """Build every point's keywords from `fields` (None or "*": every text field), unless
        they already are. Vectors are copied, never recomputed. True if anything was rewritten;
        False also where the backend cannot add keywords to an older collection (logged)."""
        return False

    @abstractmethod
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
        """Up to `limit` groups (one per value of `group_by`), each its best `group_size` hits."""

    @abstractmethod
    def facet(self, key: str, filter: Filter | None = None, limit: int = 50) -> dict[Scalar, int]:
        """Point counts per value of `key` (which needs a keyword, integer or bool index)."""

    @abstractmethod
    def create_payload_index(self, field_name: str, field_type: str) -> None: ...

    @abstractmethod
    def set_extra(self, values: Mapping[str, Any]) -> None:
        """Merge free-form JSON metadata (not the model fields) into the collection record."""

    def indexed_count(self) -> int | None:
        """Vectors (of both spaces) already in an HNSW index; None where unknown."""
        return None

    def optimize(self) -> bool:
        """Build the vector index after a bulk load; True if anything was rebuilt."""
        return False

    def flush(self) -> None:  # noqa: B027 (a no-op where the backend persists by itself)
        """Persist everything written so far (writes are already durable once they return)."""

    @abstractmethod
    def close(self) -> None: ...

    def search_composed(
        self, terms: Sequence[tuple[np.ndarray, float]], **kwargs: Any
    ) -> list[Hit]:
        """Search with a weighted sum of query vectors (e.g. an image plus texts).

        `terms` holds `((dim,) vector, weight)` pairs; a negative weight steers away. Because
        every space is cosine over unit vectors, ranking by the normalised sum is ranking by
        the weighted sum of the terms' similarities. Other arguments as in `search`.
        """
        return self.search(compose(terms, self.dim), **kwargs)

    def iter_points(
        self, filter: Filter | None = None, batch_size: int = 256, with_vectors: bool = False
    ) -> Iterator[Point]:
        """Every point (matching `filter`), page by page."""
        offset: str | None = None
        while True:
            points, offset = self.scroll(filter, batch_size, offset, with_vectors)
            yield from points
            if offset is None:
                return

    def __enter__(self) -> Collection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Store(ABC):
    """A place holding collections: the embedded engine's directory, or a Qdrant server."""

    kind: str  # "embedded" or "remote"
    location: str  # a directory or a URL, for messages and `indexer info`

    @abstractmethod
    def list_collections(self) -> list[str]: ...

    @abstractmethod
    def exists(self, name: str) -> bool: ...

    @abstractmethod
    def create(self, name: str, spec: CollectionSpec, *, recreate: bool = False) -> Collection:
        """Create a collection; with `recreate`, drop an existing one first, else refuse."""

    @abstractmethod
    def open(
        self,
        name: str,
        *,
        model_id: str | None = None,
        model_revision: str | None = None,
        dim: int | None = None,
    ) -> Collection:
        """Open an existing collection, refusing it when built with another model or dimension."""

    @abstractmethod
    def drop(self, name: str) -> None:
        """Delete a collection and all its points (no error if it does not exist)."""

    def open_or_create(
        self, name: str, spec: CollectionSpec, *, recreate: bool = False
    ) -> Collection:
        """Open `name` for `spec`'s model (guarded), or create it; `recreate` rebuilds it."""
        if recreate or not self.exists(name):
            try:
                return self.create(name, spec, recreate=recreate)
            except StoreError:
                # Another indexer (a shard on another machine) created it since exists():
                # open theirs, guarded like any other.
                if recreate or not self.exists(name):
                    raise
        return self.open(
            name, model_id=spec.model_id, model_revision=spec.model_revision, dim=spec.dim
        )

    def record(self, name: str) -> tuple[str | None, dict[str, Any]]:
        """Collection `name`'s catalog and free-form record (`extra`: the runs, tags, ...).
        Here it opens the collection to ask; a store that keeps the record apart reads it
        without loading any points."""
        with self.open(name) as collection:
            info = collection.info()
        return info.catalog, info.extra

    def close(self) -> None:  # noqa: B027 (a no-op where nothing is held open)
        """Close every collection this store opened."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

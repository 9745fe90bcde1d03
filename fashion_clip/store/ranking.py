"""A ranked search in one Query API call: meaning, keywords, fusion, boosts, diversity, sort.

    Ranking(dense=v, keywords=edge.bm25_query("atelier nova dress"), limit=12)   # hybrid
    Ranking(dense=v, sort=SortBy("price"), diversity=0.3, offset=12)             # page 2

Both stores translate a `Ranking` into one request of stages, each re-ranking the previous
one's candidates: (dense and keyword rankings, fused by RRF or DBSF) → formula boost → MMR →
order by a payload field. Where anything re-ranks, the first stages keep the best
`candidates` (the relevance cut-off) and nothing below them is returned, so every page of a
request comes from the same fixed candidates: pages never repeat and never shift.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from fashion_clip.errors import InvalidInputError

if TYPE_CHECKING:  # base imports this module: its types are for annotations here
    from fashion_clip.store.base import Filter, Hit

FUSIONS = ("rrf", "dbsf")
RRF_K = 60  # the usual constant: a rank's weight 1/(60 + rank) fades slowly down the list
CANDIDATES = 200  # the relevance cut-off where a stage re-ranks (README, "Ranking controls")
SORT_SUFFIXES = {"asc": False, "desc": True}


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


def check_ranking(ranking: Ranking, dim: int, spaces: Sequence[str]) -> None:
    """Refuse a ranking that cannot run, naming the value at fault."""
    if ranking.dense is None and ranking.keywords is None:
        raise InvalidInputError("a search needs a query vector, keywords, or both; got neither")
    if ranking.using not in spaces:
        raise InvalidInputError(
            f"unknown vector space {ranking.using!r}; expected one of {', '.join(spaces)}"
        )
    if ranking.dense is not None and np.shape(ranking.dense) != (dim,):
        raise InvalidInputError(
            f"the query vector has shape {np.shape(ranking.dense)}; the collection holds "
            f"{dim}-d vectors"
        )
    if ranking.fusion not in FUSIONS:
        raise InvalidInputError(f"unknown fusion {ranking.fusion!r}; expected rrf or dbsf")
    for name, value in (("limit", ranking.limit), ("candidates", ranking.candidates)):
        if value <= 0:
            raise InvalidInputError(f"search needs a positive {name}, not {value}")
    if ranking.offset < 0:
        raise InvalidInputError(f"offset must be 0 or more, not {ranking.offset}")
    if not 0.0 <= ranking.diversity <= 1.0:
        raise InvalidInputError(f"diversity must be between 0 and 1, not {ranking.diversity}")
    if ranking.diversity > 0 and ranking.dense is None:
        raise InvalidInputError("diversity compares pictures: it needs a query vector")


def parse_sort(text: str | None, sortable: Sequence[str]) -> SortBy | None:
    """`relevance` (or nothing) → None; `FIELD_asc` / `FIELD_desc` → a `SortBy` on FIELD.

    `sortable`: the numeric fields with a range index (the engine orders by those only).
    """
    value = (text or "relevance").strip()
    if value == "relevance":
        return None
    match = re.fullmatch(r"(.+)_(asc|desc)", value)
    options = ", ".join(["relevance", *(f"{f}_asc, {f}_desc" for f in sortable)])
    if not match:
        raise InvalidInputError(f"sort {value!r}: expected one of {options}")
    name, direction = match.group(1), match.group(2)
    if name not in sortable:
        raise InvalidInputError(
            f"sort {value!r}: {name!r} is not a numeric field of this catalog; expected one "
            f"of {options}"
        )
    return SortBy(name, SORT_SUFFIXES[direction])


def sortable_fields(payload_indexes: Mapping[str, str]) -> list[str]:
    """The payload fields a sort may name: those with a numeric (range) index."""
    return sorted(k for k, v in payload_indexes.items() if v in ("integer", "float"))


def parse_boosts(values: Mapping[str, float] | None) -> list[Boost]:
    """`{field: weight}` (a collection's `boost` record, or a request's) as `Boost`s."""
    boosts = []
    for name, weight in (values or {}).items():
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            raise InvalidInputError(f"boost {name!r}: the weight must be a number, not {weight!r}")
        boosts.append(Boost(str(name), float(weight)))
    return boosts


def collapse_hits(hits: Sequence[Hit], field_name: str) -> list[Hit]:
    """The best hit per value of `field_name` (hits without one stay), in rank order."""
    seen: set[Any] = set()
    kept = []
    for hit in hits:
        value = hit.payload.get(field_name)
        key = tuple(value) if isinstance(value, list) else value
        if key is not None and key in seen:
            continue
        seen.add(key)
        kept.append(hit)
    return kept


def page(hits: Sequence[Hit], ranking: Ranking) -> list[Hit]:
    """One page (`offset`, `limit`) of hits ranked over all candidates."""
    return list(hits[ranking.offset : ranking.offset + ranking.limit])

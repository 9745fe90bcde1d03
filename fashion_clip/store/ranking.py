"""A ranked search in one Query API call: meaning, keywords, fusion, boosts, diversity, sort.

    Ranking(dense=v, keywords=bm25.query_vector("atelier nova dress"), limit=12)   # hybrid
    Ranking(dense=v, sort=SortBy("price"), diversity=0.3, offset=12)             # page 2

Both stores translate a `Ranking` into one request of stages, each re-ranking the previous
one's candidates: (dense and keyword rankings, fused by RRF or DBSF) → formula boost → MMR →
order by a payload field. Where anything re-ranks, the first stages keep the best
`candidates` (the relevance cut-off) and nothing below them is returned, so every page of a
request comes from the same fixed candidates: pages never repeat and never shift. Hits of
equal score are put in catalog id order, so ties cannot shift between pages either.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from fashion_clip.errors import InvalidInputError, StoreError
from fashion_clip.store.base import VECTOR_NAMES, Boost, Collection, Hit, Ranking, SortBy

FUSIONS = ("rrf", "dbsf")
RRF_K = 60  # the usual constant: a rank's weight 1/(60 + rank) fades slowly down the list
SORT_SUFFIXES = {"asc": False, "desc": True}


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


def run_query(
    collection: Collection,
    ranking: Ranking,
    ranked: Callable[[Ranking], list[Hit]],
    collapsed: Callable[[Ranking], list[Hit]] | None = None,
) -> list[Hit]:
    """`Collection.query` for both stores: checks, then `ranked` (the engine's request for one
    page). A collapse runs in the engine where it groups (`collapsed`: its best hit per
    value, from the top through the page's end); elsewhere here, over the candidates."""
    check_ranking(ranking, collection.dim, VECTOR_NAMES)
    if ranking.keywords is not None and collection.keyword_fields() is None:
        raise StoreError(
            f"collection {collection.name!r} has no keywords yet; run the indexer on it again "
            "(an embedded collection gains them on its next run), or search by meaning"
        )
    if ranking.collapse and collapsed is not None:
        return page(collapsed(ranking), ranking)
    if ranking.collapse:
        every = replace(ranking, collapse=None, offset=0, limit=ranking.candidates)
        hits = ties_in_id_order(ranked(every), ranking)
        return page(collapse_hits(hits, ranking.collapse), ranking)
    if ranking.reranks() and ranking.offset >= ranking.candidates:
        return []  # past the relevance cut-off: nothing more is relevant
    return page(ties_in_id_order(_through_the_page(ranking, ranked), ranking), ranking)


MAX_TIE_FETCH = 4096  # hits fetched at most to see the end of a tie at a page's end


def _through_the_page(ranking: Ranking, ranked: Callable[[Ranking], list[Hit]]) -> list[Hit]:
    """The ranking from the top through the page's end and on to where the score changes.

    The engine orders hits of equal score as it finds them, which differs with the limit and
    offset asked for: BM25 gives every product with the same words in the same length the
    same score, and pages cut from it repeated some products and skipped others. Fetched
    from the top past the last tie, and ties put in id order, every page is cut from the
    same order.
    """
    end = ranking.offset + ranking.limit
    cap = min(ranking.candidates, MAX_TIE_FETCH) if ranking.reranks() else MAX_TIE_FETCH
    wanted = min(end + 1, cap)
    while True:
        hits = ranked(replace(ranking, offset=0, limit=wanted))
        if len(hits) < wanted or wanted >= cap:
            return hits
        if _rank_value(hits[-1], ranking) != _rank_value(hits[end - 1], ranking):
            return hits
        wanted = min(wanted * 2, cap)


def ties_in_id_order(hits: Sequence[Hit], ranking: Ranking) -> list[Hit]:
    """`hits` in their order, each run of equal rank values in catalog id order."""
    ordered: list[Hit] = []
    start = 0
    for i in range(1, len(hits) + 1):
        if i == len(hits) or _rank_value(hits[i], ranking) != _rank_value(hits[start], ranking):
            ordered.extend(sorted(hits[start:i], key=lambda hit: (str(type(hit.id)), str(hit.id))))
            start = i
    return ordered


def _rank_value(hit: Hit, ranking: Ranking) -> Any:
    """What `ranking` orders `hit` by: the sort field's value where it sorts, else its score."""
    if ranking.sort is not None:
        return hit.payload.get(ranking.sort.field)
    return hit.score

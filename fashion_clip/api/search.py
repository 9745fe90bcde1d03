"""Searching a catalog like a shop: by meaning, by keywords or both, sorted, diverse, in pages.

    options = SearchOptions(mode="hybrid", sort="price_asc", offset=12, diversity=0.3)
    hits = search_text(collection, "atelier nova dress", query_vector, options, limit=12)

Text queries search the pictures (`image` space) with the query's embedding and, unless the
mode is `semantic`, the caption and text fields with BM25 keywords; the engine fuses both
rankings (`fashion_clip.store.ranking`). A product whose id or text field is exactly what was
typed (a product code) comes first.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

import numpy as np

from fashion_clip.errors import InvalidInputError
from fashion_clip.store import Collection, Filter, Hit
from fashion_clip.store.base import CANDIDATES, CatalogId, Ranking
from fashion_clip.store.bm25 import query_vector
from fashion_clip.store.ranking import parse_boosts, parse_sort, sortable_fields

MODES = ("hybrid", "semantic", "keyword")
BOOST_KEY = "boost"  # a collection's default boosts, `{field: weight}` in its extra record
COLLAPSE_KEY = "collapse"  # a collection's default collapse field (a product family), ditto
# A sorted search orders only the candidates whose relevance is within this share of the
# top score's lead over the last candidate's: on the demo catalog, "COLOUR CATEGORY"-style
# queries sorted by price showed 2.5 % of matching products among the first 12 when all 200
# candidates were sorted, 82 % (hybrid) with this cut, which keeps 99 % of the matching
# products (benchmarks/sort_relevance.py).
SORT_RELEVANCE_SHARE = 0.35
# MMR's weight of novelty at full diversity. MMR scores a candidate (1 - novelty) * its
# similarity to the query - novelty * its largest similarity to those already chosen, and
# CLIP's similarities to a query span a narrower range than pictures' to each other, so
# novelty soon outweighs relevance (and a picture query that is in the catalog ties every
# candidate at 0.5). With the weight equal to the diversity, the demo catalog's searches at
# 0.5 kept 74 % of their precision@12 by meaning and 33 % by picture, and were near random
# at 0.8. At 0.4, diversity 1 keeps 96 % of both while the first 12 grow less alike (mean
# cosine 0.535 -> 0.401 by meaning) (benchmarks/diversity.py). MMR re-ranks by meaning
# after the fusion, so a diversified hybrid search gives up what only the keywords found:
# the demo's brand queries fall to meaning-only precision (0.72 against 0.996).
NOVELTY_AT_FULL_DIVERSITY = 0.4


Page = Callable[[Ranking], list[Hit]]  # a ranking's page of hits: `Collection.query` or so


@dataclass(frozen=True)
class SearchOptions:
    """How to rank: `mode` (text queries), `sort` (`relevance`, `FIELD_asc`, `FIELD_desc`),
    `offset` (results skipped: the page), `diversity` (0 off .. 1), `boosts` (`{field:
    weight}`, over the collection's own), `fusion` (`rrf` or `dbsf`), `collapse` (a field:
    one product per value)."""

    mode: str = "hybrid"
    sort: str | None = None
    offset: int = 0
    diversity: float = 0.0
    boosts: Mapping[str, float] | None = None
    # DBSF by default: on the demo catalog, "BRAND CATEGORY" precision@k in hybrid is 0.95
    # with it against 0.70 with RRF (k 60; 0.57-0.82 with other k and weights), with the
    # same recall (benchmarks/relevance.py).
    fusion: str = "dbsf"
    collapse: str | None = None
    exact: bool = False


def check_mode(mode: str | None) -> str:
    value = (mode or "hybrid").strip().lower()
    if value not in MODES:
        raise InvalidInputError(f"mode {mode!r}: expected one of {', '.join(MODES)}")
    return value


def base_ranking(
    collection: Collection, options: SearchOptions, filter: Filter | None, limit: int
) -> Ranking:
    """The ranking controls of `options` checked against the collection (sortable fields,
    its default boosts and collapse field), with no query yet."""
    meta = getattr(collection, "meta", {}) or {}
    sort = parse_sort(options.sort, sortable_fields(meta.get("payload_indexes", {})))
    extra = meta.get("extra", {})
    boosts = {**(extra.get(BOOST_KEY) or {}), **(options.boosts or {})}
    collapse = options.collapse or extra.get(COLLAPSE_KEY) or None
    return Ranking(
        filter=filter, limit=limit, offset=options.offset, sort=sort,
        boosts=parse_boosts(boosts), diversity=novelty(options.diversity),
        fusion=options.fusion, collapse=collapse, exact=options.exact,
    )  # fmt: skip


def novelty(diversity: float) -> float:
    """MMR's weight of novelty (the store's `Ranking.diversity`) for a search's `diversity`,
    0 (off) .. 1 (the most varied that stays on topic)."""
    value = float(diversity)
    if not 0.0 <= value <= 1.0:  # NaN too
        raise InvalidInputError(f"diversity must be between 0 and 1, not {diversity}")
    return NOVELTY_AT_FULL_DIVERSITY * value


def search_vector(
    collection: Collection,
    vector: np.ndarray,
    options: SearchOptions,
    *,
    filter: Filter | None = None,
    limit: int = 10,
) -> list[Hit]:
    """Products whose pictures are nearest `vector` (`(dim,)`, unit), ranked by `options`."""
    ranking = base_ranking(collection, options, filter, limit)
    return _ranked(collection, replace(ranking, dense=vector, using="image"))


def search_text(
    collection: Collection,
    text: str,
    vector: np.ndarray | None,
    options: SearchOptions,
    *,
    filter: Filter | None = None,
    limit: int = 10,
) -> list[Hit]:
    """Products for a typed query: `vector` is its (possibly composed) `(dim,)` embedding.

    `keyword` mode ranks by words only; `semantic` by meaning only; `hybrid` fuses both.
    A collection without keywords (a server collection made before them) is searched by
    meaning in `hybrid` mode.
    """
    mode = check_mode(options.mode)
    ranking = base_ranking(collection, options, filter, limit)
    page: Page = collection.query
    has_keywords = collection.keyword_fields() is not None
    words = query_vector(text) if mode != "semantic" and has_keywords else None
    if mode == "keyword":
        if not has_keywords:
            collection.query(replace(ranking, keywords=query_vector(text)))  # says why not
        if words is None or words.is_empty():
            return []  # only stopwords or punctuation: no word to match
        ranking = replace(ranking, keywords=words)
        if ranking.diversity > 0:
            page = _varied_among_matches(collection, vector)
    else:
        if vector is None:
            raise InvalidInputError(f"{mode} search needs the query's embedding")
        keywords = words if words is not None and not words.is_empty() else None
        ranking = replace(ranking, dense=vector, keywords=keywords)
    if mode == "semantic" or ranking.sort is not None:
        return _ranked(collection, ranking, page)  # sorted: by the field, not by the text
    return _exact_first(collection, text, ranking, page)


def _ranked(collection: Collection, ranking: Ranking, page: Page | None = None) -> list[Hit]:
    """`ranking`'s page (`page(ranking)`; the collection's query by default). Sorted, it
    orders the products the query asks for, each scored by its relevance
    (`relevant_for_sorting`): the engine scores an ordered list 1.0 throughout, which tells
    a shopper nothing."""
    page = page or collection.query
    if ranking.sort is None:
        return page(ranking)
    narrowed, relevance = relevant_for_sorting(collection, ranking)
    if not relevance:
        return []  # nothing is relevant (no word matched): nothing to sort
    return [replace(hit, score=relevance[hit.id]) for hit in page(narrowed)]


def _varied_among_matches(collection: Collection, vector: np.ndarray | None) -> Page:
    """The page of a keyword ranking with diversity: MMR over the query's meaning among the
    products its words match (its candidates, within its filter: sorted, those the sort
    keeps), so that no product without the words shows (a query vector beside the keywords
    would fuse both rankings: a hybrid search)."""
    if vector is None:
        raise InvalidInputError("diversity compares pictures: it needs the query's embedding")

    def page(ranking: Ranking) -> list[Hit]:
        matches = collection.query(_relevance_alone(ranking))
        among = _only(ranking.filter, matches)
        return collection.query(replace(ranking, keywords=None, dense=vector, filter=among))

    return page


def _relevance_alone(ranking: Ranking) -> Ranking:
    """`ranking`'s candidates ranked by relevance alone: no boosts, diversity, sort or
    collapse, from the top (its filter kept)."""
    return replace(
        ranking, sort=None, boosts=(), diversity=0.0, collapse=None, offset=0,
        limit=ranking.candidates,
    )  # fmt: skip


def relevant_for_sorting(
    collection: Collection, ranking: Ranking
) -> tuple[Ranking, dict[CatalogId, float]]:
    """`ranking` limited to the products the query asks for, and their relevance scores.

    Sorting all `candidates` by price lists whatever is cheapest among them: on a small
    catalog that is half the shop ("red dress" by price began with red t-shirts). So the
    query is first ranked by relevance alone (no filters, boosts, diversity or sort), and
    the products scoring within `SORT_RELEVANCE_SHARE` of the best one's lead over the last
    candidate are the ones sorted, among those the filters let through. Without filters the
    relevance of "dress" would be judged among dresses only (choosing the Dress category
    then hid most of them). Where no cut can be drawn (scores all equal) or no product the
    query asks for passes the filters, the filtered candidates are sorted, scored as the
    filtered relevance ranking scores them. The same ids for every page: pages never shift.
    `ranking` must sort.
    """
    plain = replace(_relevance_alone(ranking), filter=None)
    hits = collection.query(plain)
    asked_for = _within_cut(hits)
    if (
        asked_for
        and ranking.filter is not None
        and not collection.query(replace(plain, filter=_only(ranking.filter, asked_for), limit=1))
    ):
        asked_for = []  # the filters leave none of them
    if not asked_for:
        # What the filters leave: the sorted stage's own candidates, so naming them changes
        # nothing sorted, and each gets its relevance among them.
        filtered = replace(plain, filter=ranking.filter)
        asked_for = hits if ranking.filter is None else collection.query(filtered)
    relevance = {hit.id: hit.score for hit in asked_for}
    return replace(ranking, filter=_only(ranking.filter, asked_for)), relevance


def _only(filter: Filter | None, hits: list[Hit]) -> Filter:
    """`filter`, and only the products of `hits`."""
    return replace(filter or Filter(), only_ids=[hit.id for hit in hits])


def _within_cut(hits: list[Hit]) -> list[Hit]:
    """The hits (best first) within `SORT_RELEVANCE_SHARE` of the best one's lead over the
    last; none where no cut can be drawn (fewer than two, or all scored alike)."""
    if len(hits) < 2 or hits[0].score <= hits[-1].score:
        return []
    cut = hits[0].score - SORT_RELEVANCE_SHARE * (hits[0].score - hits[-1].score)
    return [hit for hit in hits if hit.score >= cut]


def _exact_first(
    collection: Collection, text: str, ranking: Ranking, page: Page | None = None
) -> list[Hit]:
    """`ranking`'s page (`page(ranking)`; the collection's query by default), with the
    product whose id or a text field equals `text` first.

    The engine's keyword ranking finds the candidate; it is then taken out of the ranking
    and put in front, so pages after the first shift by one and never repeat it.
    """
    page = page or collection.query
    exact = _exact_match(collection, text, ranking)
    if exact is None:
        return page(ranking)
    if ranking.collapse:
        return _exact_first_collapsed(exact, ranking, page)
    base = ranking.filter or Filter()
    without = replace(base, exclude_ids=[*base.exclude_ids, exact.id])
    if ranking.offset == 0:
        rest = page(replace(ranking, filter=without, limit=max(ranking.limit - 1, 1)))
        return [exact, *rest][: ranking.limit]
    return page(replace(ranking, filter=without, offset=ranking.offset - 1))


def _exact_first_collapsed(exact: Hit, ranking: Ranking, page: Page) -> list[Hit]:
    """`_exact_first` where one product per family shows: `exact` stands for its family (at
    most one other leader gives way), so each page is cut from the leaders through its end."""
    field_name = ranking.collapse or ""
    family = exact.payload.get(field_name)
    leaders = page(replace(ranking, offset=0, limit=ranking.offset + ranking.limit + 1))
    others = [
        hit
        for hit in leaders
        if hit.id != exact.id and (family is None or hit.payload.get(field_name) != family)
    ]
    return [exact, *others][ranking.offset : ranking.offset + ranking.limit]


def _exact_match(collection: Collection, text: str, ranking: Ranking) -> Hit | None:
    typed = text.strip().casefold()
    if not typed or ranking.keywords is None:
        return None
    best = collection.query(
        Ranking(keywords=ranking.keywords, filter=ranking.filter, limit=1, candidates=CANDIDATES)
    )
    if not best:
        return None
    fields = [v for k, v in best[0].payload.items() if k != "image" and not k.startswith("_")]
    if any(_same(value, typed) for value in fields):
        return best[0]
    return None


def _same(value: object, typed: str) -> bool:
    if isinstance(value, list):
        return any(_same(v, typed) for v in value)
    return isinstance(value, (str, int)) and str(value).strip().casefold() == typed

"""How the store's requests become a Qdrant server's (through qdrant-client): a `Ranking` as
a query and its prefetches (dense and keyword rankings, fusion, boost formula, MMR, order by)
and a `Filter` as the server's filter. Only `remote` imports this.
"""

from __future__ import annotations

from typing import Any

from qdrant_client import models as qm

from fashion_clip.store.base import Filter, Ranking
from fashion_clip.store.ids import point_id
from fashion_clip.store.keywords import KEYWORDS_VECTOR
from fashion_clip.store.meta import field_path
from fashion_clip.store.ranking import RRF_K


def ranking_stages(
    ranking: Ranking, params: qm.SearchParams, bools: set[str]
) -> tuple[Any, list[qm.Prefetch] | None]:
    """The request's top query and its prefetches: each stage re-ranks the one below.
    `params`: the leaf search's; `bools`: the boolean payload fields."""
    where, size = query_filter(ranking.filter), ranking.candidates
    leaves = []
    if ranking.dense is not None:
        dense = ranking.dense.tolist()
        leaves.append(qm.Prefetch(query=dense, using=ranking.using, limit=size, params=params))
    if ranking.keywords is not None:
        k = ranking.keywords
        sparse = qm.SparseVector(indices=list(k.indices), values=list(k.values))
        leaves.append(qm.Prefetch(query=sparse, using=KEYWORDS_VECTOR, limit=size))
    leaves = [leaf.model_copy(update={"filter": where}) for leaf in leaves]
    if len(leaves) == 2:
        query: Any = qm.FusionQuery(fusion=qm.Fusion.DBSF)
        if ranking.fusion == "rrf":
            query = qm.RrfQuery(rrf=qm.Rrf(k=RRF_K, weights=[1.0, ranking.keyword_weight]))
        prefetches: list[qm.Prefetch] | None = leaves
    else:
        query, prefetches = leaves[0].query, None
    for stage in rerankers(ranking, bools):
        if prefetches is None:  # the leaf search itself becomes the first prefetch
            inner = leaves[0]
        else:
            using = ranking.using if isinstance(query, qm.NearestQuery) else None  # MMR's
            inner = qm.Prefetch(
                prefetch=prefetches, query=query, using=using, limit=size, filter=where
            )
        query, prefetches = stage, [inner]
    return query, prefetches


def rerankers(ranking: Ranking, bools: set[str]) -> list[Any]:
    """Boost, then diversity, then sort: the stages above the relevance ranking."""
    stages: list[Any] = []
    if ranking.boosts:
        stages.append(boost_formula(ranking, bools))
    if ranking.diversity > 0:
        mmr = qm.Mmr(diversity=ranking.diversity, candidates_limit=ranking.candidates)
        stages.append(qm.NearestQuery(nearest=ranking.dense.tolist(), mmr=mmr))
    if ranking.sort is not None:
        direction = qm.Direction.DESC if ranking.sort.descending else qm.Direction.ASC
        order = qm.OrderBy(key=field_path(ranking.sort.field), direction=direction)
        stages.append(qm.OrderByQuery(order_by=order))
    return stages


def top_space(query: Any, ranking: Ranking) -> str | None:
    """The vector space a request's top query searches: none where it fuses, boosts or sorts
    what its prefetches found."""
    if isinstance(query, (list, qm.NearestQuery)):  # a search, or MMR over a search
        return ranking.using
    if isinstance(query, qm.SparseVector):
        return KEYWORDS_VECTOR
    return None


def boost_formula(ranking: Ranking, bools: set[str]) -> qm.FormulaQuery:
    """score * (1 + sum of weight * value): a boolean field counts 1 where true."""
    terms: list[Any] = [1.0]
    defaults: dict[str, Any] = {}
    for boost in ranking.boosts:
        path = field_path(boost.field)
        value: Any = path
        if boost.field in bools:
            value = qm.FieldCondition(key=path, match=qm.MatchValue(value=True))
        else:
            defaults[path] = 0.0
        terms.append(qm.MultExpression(mult=[boost.weight, value]))
    score = qm.MultExpression(mult=["$score", qm.SumExpression(sum=terms)])
    return qm.FormulaQuery(formula=score, defaults=defaults)


def query_filter(filter: Filter | None) -> qm.Filter | None:
    if filter is None or filter.is_empty():
        return None
    must: list[Any] = []
    for key, value in filter.equals.items():
        path = field_path(key)
        if isinstance(value, float):  # MatchValue takes no floats; a closed range does it
            must.append(qm.FieldCondition(key=path, range=qm.Range(gte=value, lte=value)))
        else:
            must.append(qm.FieldCondition(key=path, match=qm.MatchValue(value=value)))
    for key, values in filter.any_of.items():
        path = field_path(key)
        if any(isinstance(v, bool) for v in values):  # MatchAny takes strings or ints only
            options = [qm.FieldCondition(key=path, match=qm.MatchValue(value=v)) for v in values]
            must.append(qm.Filter(should=options))
        else:
            must.append(qm.FieldCondition(key=path, match=qm.MatchAny(any=list(values))))
    for key, r in filter.ranges.items():
        path = field_path(key)
        bounds = qm.Range(gte=r.gte, gt=r.gt, lte=r.lte, lt=r.lt)
        must.append(qm.FieldCondition(key=path, range=bounds))
    if filter.only_ids is not None:
        must.append(qm.HasIdCondition(has_id=[point_id(i) for i in filter.only_ids]))
    must_not: list[Any] = []
    if filter.exclude_ids:
        must_not.append(qm.HasIdCondition(has_id=[point_id(i) for i in filter.exclude_ids]))
    return qm.Filter(must=must or None, must_not=must_not or None)

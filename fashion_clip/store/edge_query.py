"""How the store's requests become Qdrant Edge's: a `Ranking` as a query and its prefetches
(dense and keyword rankings, fusion, boost formula, MMR, order by) and a `Filter` as the
engine's filter. With `edge`, the modules importing qdrant_edge (only `edge` imports this).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import qdrant_edge as qe

from fashion_clip.store.base import Filter, Ranking
from fashion_clip.store.ids import point_id
from fashion_clip.store.keywords import KEYWORDS_VECTOR
from fashion_clip.store.meta import field_path
from fashion_clip.store.ranking import RRF_K


def ranking_stages(ranking: Ranking, params: Any, bools: set[str]) -> tuple[Any, list[Any] | None]:
    """The request's top query and its prefetches: each stage re-ranks the one below.
    `params`: the leaf search's `SearchParams`; `bools`: the boolean payload fields."""
    where, size = query_filter(ranking.filter), ranking.candidates
    dense = keywords = None
    if ranking.dense is not None:
        dense = qe.Query.Nearest(ranking.dense.tolist(), using=ranking.using)
    if ranking.keywords is not None:
        sparse = qe.SparseVector(list(ranking.keywords.indices), list(ranking.keywords.values))
        keywords = qe.Query.Nearest(sparse, using=KEYWORDS_VECTOR)
    prefetches = None
    query = dense if keywords is None else keywords
    if dense is not None and keywords is not None:
        prefetches = [
            qe.Prefetch(size, query=dense, params=params, filter=where),
            qe.Prefetch(size, query=keywords, filter=where),
        ]
        query = (
            qe.Fusion.Dbsf()
            if ranking.fusion == "dbsf"
            else qe.Fusion.Rrf(k=RRF_K, weights=[1.0, ranking.keyword_weight])
        )
    for stage in rerankers(ranking, bools):
        inner = qe.Prefetch(size, query=query, prefetches=prefetches, filter=where)
        if prefetches is None:  # the leaf search itself: it takes the search params
            inner = qe.Prefetch(size, query=query, params=params, filter=where)
        query, prefetches = stage, [inner]
    return query, prefetches


def rerankers(ranking: Ranking, bools: set[str]) -> list[Any]:
    """Boost, then diversity, then sort: the stages above the relevance ranking."""
    stages = []
    if ranking.boosts:
        stages.append(boost_formula(ranking, bools))
    if ranking.diversity > 0:
        mmr_lambda = 1.0 - ranking.diversity  # MMR's weight of relevance over novelty
        query = ranking.dense.tolist()
        stages.append(qe.Mmr(query, mmr_lambda, ranking.candidates, using=ranking.using))
    if ranking.sort is not None:
        direction = qe.Direction.Desc if ranking.sort.descending else qe.Direction.Asc
        stages.append(qe.OrderBy(field_path(ranking.sort.field), direction))
    return stages


def boost_formula(ranking: Ranking, bools: set[str]) -> Any:
    """score * (1 + sum of weight * value): a boolean field counts 1 where true."""
    terms = [qe.Expression.Constant(1.0)]
    defaults: dict[str, Any] = {}
    for boost in ranking.boosts:
        path = field_path(boost.field)
        if boost.field in bools:
            value = qe.Expression.Condition(
                qe.FieldCondition(path, match=qe.MatchValue(np.bool_(True)))
            )
        else:
            value = qe.Expression.Variable(path)
            defaults[path] = 0.0
        terms.append(qe.Expression.Mult([qe.Expression.Constant(boost.weight), value]))
    score = qe.Expression.Variable("$score")
    return qe.Formula(qe.Expression.Mult([score, qe.Expression.Sum(terms)]), defaults=defaults)


def query_filter(filter: Filter | None) -> Any:
    if filter is None or filter.is_empty():
        return None
    must: list[Any] = []
    for key, value in filter.equals.items():
        path = field_path(key)
        if isinstance(value, float):  # MatchValue takes no floats; a closed range does it
            must.append(qe.FieldCondition(path, range=qe.RangeFloat(gte=value, lte=value)))
        elif isinstance(value, bool):
            # qdrant-edge-py 0.9.0 reads a Python bool as an int (True -> 1), which matches no
            # boolean payload; numpy's bool is not an int subclass and arrives as a bool.
            must.append(qe.FieldCondition(path, match=qe.MatchValue(np.bool_(value))))
        else:
            must.append(qe.FieldCondition(path, match=qe.MatchValue(value)))
    for key, values in filter.any_of.items():
        path = field_path(key)
        if any(isinstance(v, bool) for v in values):  # MatchAny has the int reading too
            options = [qe.FieldCondition(path, match=qe.MatchValue(np.bool_(v))) for v in values]
            must.append(qe.Filter(should=options))
        else:
            must.append(qe.FieldCondition(path, match=qe.MatchAny(list(values))))
    for key, r in filter.ranges.items():
        path = field_path(key)
        bounds = qe.RangeFloat(gte=r.gte, gt=r.gt, lte=r.lte, lt=r.lt)
        must.append(qe.FieldCondition(path, range=bounds))
    if filter.only_ids is not None:
        must.append(qe.HasIdCondition({point_id(i) for i in filter.only_ids}))
    must_not = []
    if filter.exclude_ids:
        must_not.append(qe.HasIdCondition({point_id(i) for i in filter.exclude_ids}))
    return qe.Filter(must=must or None, must_not=must_not or None)

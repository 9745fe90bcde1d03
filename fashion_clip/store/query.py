"""Query helpers shared by both backends: query checks and grouping."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from fashion_clip.errors import InvalidInputError, ModelMismatchError
from fashion_clip.store.base import VECTOR_NAMES, Group, Hit


def check_query(vector: np.ndarray, dim: int, using: str) -> list[float]:
    """Validate a `(dim,)` query vector and the space it searches; return it as a list."""
    if using not in VECTOR_NAMES:
        raise InvalidInputError(
            f"unknown vector space {using!r}; expected one of {', '.join(VECTOR_NAMES)}"
        )
    if np.shape(vector) != (dim,):
        raise ModelMismatchError(
            f"the query vector has shape {np.shape(vector)}; the collection holds {dim}-d vectors"
        )
    return np.asarray(vector, dtype=np.float32).tolist()


def check_group_sizes(limit: int, group_size: int) -> None:
    """Refuse a group search that asks for no groups or empty ones, naming the value."""
    for name, value in (("limit", limit), ("group_size", group_size)):
        if value <= 0:
            raise InvalidInputError(f"group search needs a positive {name}, not {value}")


def group_by_overfetch(
    fetch: Callable[[int], list[Hit]],
    group_by: str,
    limit: int,
    group_size: int,
    max_fetch: int = 20_000,
) -> list[Group]:
    """Group ranked hits by a payload field, fetching more hits until the answer is settled.

    `fetch(n)` returns the best `n` hits. Groups rank by their best hit, so once `limit`
    groups are seen and each holds `group_size` hits, hits not yet fetched (all worse) cannot
    change the answer. A point whose field holds a list joins the group of each value.
    """
    check_group_sizes(limit, group_size)
    n = max(64, limit * group_size * 4)
    while True:
        hits = fetch(n)
        groups: dict[object, list[Hit]] = {}
        for hit in hits:
            value = hit.payload.get(group_by)
            for key in value if isinstance(value, list) else [value]:
                if isinstance(key, (str, int)) and not isinstance(key, bool):
                    members = groups.setdefault(key, [])
                    if len(members) < group_size:
                        members.append(hit)
        top = list(groups.items())[:limit]  # dicts keep first-seen (best-first) order
        settled = len(top) == limit and all(len(members) == group_size for _, members in top)
        if settled or len(hits) < n or n >= max_fetch:
            return [Group(value=key, hits=members) for key, members in top]
        n = min(n * 4, max_fetch)

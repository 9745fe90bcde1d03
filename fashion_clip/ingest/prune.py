"""`--prune`: delete the points whose products left the catalog, and only those.

A point is deleted only when its id is positively absent from a catalog read whole. A run
refuses to prune (and says why; nothing is deleted) when some row could not be read to its
id (its product may still be listed), or when the prune would delete more than a set share
of the collection, the mark of a truncated catalog (an interrupted upload, a cut export).
"""

from __future__ import annotations

import math
from collections.abc import Collection as Sized
from dataclasses import dataclass

from fashion_clip.errors import CatalogError
from fashion_clip.ingest.shards import Shard
from fashion_clip.store import Collection

DEFAULT_MAX_FRACTION = 0.2  # of the collection's points one prune may delete
_DELETE_BATCH = 512
_ROWS_NAMED = 10  # rows listed in a refusal; the report lists them all


@dataclass(frozen=True)
class PruneOutcome:
    """How many points were deleted, or why none were (`refused` is the user's message)."""

    deleted: int = 0
    refused: str = ""


def prune(
    collection: Collection,
    keep: set[str],
    *,
    shard: Shard | None = None,
    unread_rows: Sized[int] = (),
    max_fraction: float = DEFAULT_MAX_FRACTION,
) -> PruneOutcome:
    """Delete the points whose catalog ids are not in `keep` (ids as strings); with a
    `shard`, only among that shard's points (the others' rows were never read).

    `unread_rows`: numbers of the rows that could not be read to their ids; any refuses the
    prune. So does deleting more than `max_fraction` (0 to 1) of the points (the shard's).
    """
    if not keep:
        raise CatalogError(
            f"the catalog has no rows with an id{f' in shard {shard}' if shard else ''}; "
            f"refusing to --prune every point of collection {collection.name!r}"
        )
    if unread_rows:
        return PruneOutcome(refused=_unread_message(collection.name, sorted(unread_rows)))
    held = [p.id for p in collection.iter_points() if shard is None or shard.holds(p.id)]
    stale = [point_id for point_id in held if str(point_id) not in keep]
    total = len(held)
    if stale and len(stale) > max_fraction * total:
        return PruneOutcome(
            refused=_too_many_message(collection.name, len(stale), total, max_fraction)
        )
    for start in range(0, len(stale), _DELETE_BATCH):
        collection.delete(stale[start : start + _DELETE_BATCH])
    return PruneOutcome(deleted=len(stale))


def _unread_message(name: str, rows: list[int]) -> str:
    shown = ", ".join(str(row) for row in rows[:_ROWS_NAMED])
    more = f" and {len(rows) - _ROWS_NAMED} more" if len(rows) > _ROWS_NAMED else ""
    return (
        f"--prune refused, nothing deleted from collection {name!r}: catalog row(s) {shown}{more} "
        "could not be read to their ids, and the products they stand for may still be listed; "
        "fix those rows (see the skipped rows above) and run again"
    )


def _too_many_message(name: str, stale: int, total: int, max_fraction: float) -> str:
    share = stale / total
    needed = min(1.0, math.ceil(share * 100) / 100)  # the share, rounded up to 2 places
    return (
        f"--prune refused, nothing deleted: it would delete {stale} of the {total} points of "
        f"collection {name!r} ({share:.0%}), more than --max-prune-fraction {max_fraction:g} "
        "allows; a catalog cut short (an interrupted upload or export) looks like this. If "
        f"the catalog is whole, run again with --max-prune-fraction {needed:g} (1 allows any)"
    )

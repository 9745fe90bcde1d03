"""One catalog split across machines: shard K of N holds the rows whose ids hash to it.

The hash is the point id's (a UUID5 of the catalog id, `fashion_clip.store.ids`), so it is the
same on every machine, Python version and run (Python's own `hash()` of a string is not), and
ids that name one point (`1` in a JSON catalog, `"1"` in a CSV) land in one shard. UUID5 is
SHA-1 based, so its bits spread ids evenly over the shards. Shards are numbered from 1:
`1/4`, `2/4`, `3/4`, `4/4`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from fashion_clip.store.ids import point_id

MAX_SHARDS = 65_536  # far beyond any fleet; a typo such as 1/40000000 is refused

T = TypeVar("T")


@dataclass(frozen=True)
class Shard:
    """Shard `index` (1-based) of `count`."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_SHARDS:
            raise ValueError(f"N must be from 1 to {MAX_SHARDS}, not {self.count}")
        if not 1 <= self.index <= self.count:
            raise ValueError(
                f"K must be from 1 to N: shards are numbered 1/{self.count} to "
                f"{self.count}/{self.count}, not {self.index}/{self.count}"
            )

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def holds(self, catalog_id: str | int) -> bool:
        """Whether the row with `catalog_id` belongs to this shard."""
        return shard_of(catalog_id, self.count) == self.index


def shard_of(catalog_id: str | int, count: int) -> int:
    """The shard (1 to `count`) of `catalog_id`."""
    digest = uuid.UUID(point_id(catalog_id)).int >> 64  # the UUID's first 64 bits
    return digest % count + 1


def parse_shard(text: str) -> Shard:
    """`"K/N"` -> Shard(K, N); ValueError naming what is wrong and the valid range."""
    index, sep, count = text.strip().partition("/")
    try:
        if not sep:
            raise ValueError
        numbers = int(index), int(count)
    except ValueError:
        raise ValueError(
            f"{text!r} is not K/N: two whole numbers, shard K of N, K from 1 to N (1/4 … 4/4)"
        ) from None
    return Shard(*numbers)


def select(items: Iterable[T], shard: Shard | None) -> Iterator[T]:
    """The catalog items (rows or row problems, with an `id`) of `shard`; all of them for None.

    An item without a usable id (a malformed row) goes to shard 1 only, so that exactly one
    shard reports it.
    """
    for item in items:
        catalog_id = getattr(item, "id", None)
        if shard is None or (shard.holds(catalog_id) if _usable(catalog_id) else shard.index == 1):
            yield item


def _usable(catalog_id: object) -> bool:
    return isinstance(catalog_id, (str, int)) and not isinstance(catalog_id, bool)

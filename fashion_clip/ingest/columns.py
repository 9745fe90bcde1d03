"""The fields a catalog must have, and catalogs that call them by other names.

Every record needs an `id` and an `image`; a `caption` is recommended. A catalog whose
fields go by other names (`SKU`, `Picture`) names them with `--id-column`, `--image-column`
and `--caption-column`: each format's reader renames them as it reads (`renaming`), so every
format yields the same rows, and a catalog read without them is read exactly as before (same
payloads, so the same fingerprints on a re-run). A catalog that lacks a required field is
refused whole, naming the field, the fields it has and the fix, before anything is written:
a CSV or Parquet file by its header, JSON records by the first of them (`require_fields`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from fashion_clip.errors import CatalogError

REQUIRED_FIELDS = ("id", "image")
ROLES = ("id", "image", "caption")  # the fields a catalog may name otherwise
# JSON records looked at for the required fields: as many as the indexer samples for its
# payload indexes. Past them a record without an id is one bad row, skipped and reported.
SAMPLE_RECORDS = 1000

_Record = TypeVar("_Record")


def renaming(columns: Mapping[str, str]) -> dict[str, str]:
    """Old field name -> new one, for `columns` (role -> the catalog field that holds it).

    The named fields take their roles, and a field already called by such a role's name
    gives way as `NAME_original`: `{"id": "item_ID"}` renames `item_ID` to `id` and `id`
    to `id_original`. Empty for a catalog that names nothing."""
    displaced = {role: f"{role}_original" for role in columns}
    return {**displaced, **{column: role for role, column in columns.items()}}


def renamed(names: Iterable[str], renames: Mapping[str, str]) -> list[str]:
    """`names` (a header's, a schema's or a record's) after `renames`."""
    return [renames.get(name, name) for name in names]


def check_named_columns(found: Sequence[str], columns: Mapping[str, str], name: str) -> None:
    """`CatalogError` when a column that `columns` names is not among `found` (a header)."""
    missing = [column for column in columns.values() if column not in found]
    if missing:
        raise CatalogError(
            f"{name}: no column {missing[0]!r} (columns: {', '.join(found) or 'none'})"
        )


def missing_fields_error(
    name: str,
    subject: str,
    missing: Sequence[str],
    found: Iterable[str],
    *,
    noun: str = "column",
    columns: Mapping[str, str] | None = None,
    hint: str = "",
) -> CatalogError:
    """The refusal of catalog `name` whose `subject` ("the CSV header has") lacks the
    `missing` roles (`id`, `image`), listing the `found` fields and how to fix it; `hint`
    ("; ...") tells the likely cause where the reader can see one."""
    columns = columns or {}
    wanted = " or ".join(repr(columns.get(role, role)) for role in missing)
    named = [f"--{role}-column" for role in missing if role in columns]
    named_by = f" (named by {' and '.join(named)})" if named else ""
    flags = " and ".join(f"--{role}-column" for role in missing)
    return CatalogError(
        f"{name}: {subject} no {wanted} {noun}{named_by} "
        f"({noun}s: {', '.join(found) or 'none'}); 'id' and 'image' are required: rename "
        f"the {noun}s, or name the ones that hold them with {flags}{hint}"
    )


def require_fields(
    records: Iterator[_Record], name: str, columns: Mapping[str, str] | None = None
) -> Iterator[_Record]:
    """`records` (JSON objects, and the strings or markers of malformed ones), unless none
    of the first objects has a required field: then `CatalogError`, raised before the first
    record comes out, as a CSV without the column is refused by its header.

    Reading stops as soon as every required field has been seen (usually in the first
    record), and at `SAMPLE_RECORDS`: what was read is handed on, then the rest."""
    columns = columns or {}
    unseen = list(REQUIRED_FIELDS)  # roles no object has shown yet
    head: list[_Record] = []
    found: dict[str, None] = {}  # the objects' fields, in the order first seen
    for record in records:
        head.append(record)
        if isinstance(record, dict):
            found.update(dict.fromkeys(map(str, record)))
            unseen = [role for role in unseen if not _has(record, columns.get(role, role))]
        if not unseen or len(head) >= SAMPLE_RECORDS:
            break
    objects = sum(isinstance(record, dict) for record in head)
    if unseen and objects:  # records that are all malformed are reported one by one
        subject = "its first record has" if objects == 1 else f"its first {objects} records have"
        raise missing_fields_error(name, subject, unseen, found, noun="field", columns=columns)
    yield from head
    yield from records


def _has(record: dict[str, Any], field: str) -> bool:
    return record.get(field) not in (None, "")

"""Read a catalog (CSV, JSON lines or a JSON list) as a stream of checked rows.

Each record comes out as a `Row` (id, image reference, caption, payload) or, when it cannot
be used, a `RowProblem` naming its row number and why; a problem never stops the stream.
What does stop it is a problem with the file as a whole (not UTF-8, no `id` column or no
`id` in any of the first records, broken JSON syntax): that raises `CatalogError`. Fields
that go by other names are renamed as they are read (`ingest.columns`). Row numbers count
records from 1 (a CSV's header is not a record), so "row 3" is the third product whatever
the format.
"""

from __future__ import annotations

import codecs
import collections
import contextlib
import csv
import json
import math
import re
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from fashion_clip.errors import CatalogError, ConfigurationError
from fashion_clip.ingest.columns import (
    REQUIRED_FIELDS,
    check_named_columns,
    missing_fields_error,
    renamed,
    renaming,
    require_fields,
)
from fashion_clip.ingest.locations import remote_copy
from fashion_clip.ingest.state import (
    FINGERPRINT_FIELD,
    IMAGE_HASH_FIELD,
    SOURCE_FIELD,
    STAMP_FIELD,
    VECTORS_FIELD,
)
from fashion_clip.media import s3

FORMATS = {
    ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".parquet": "parquet",
}  # fmt: skip
FORMAT_NAMES = tuple(dict.fromkeys(FORMATS.values()))  # ("csv", "jsonl", "json", "parquet")
# Fields the indexer writes into every point's payload; a catalog may not use them.
RESERVED_FIELDS = frozenset(
    {FINGERPRINT_FIELD, VECTORS_FIELD, SOURCE_FIELD, STAMP_FIELD, IMAGE_HASH_FIELD}
)
_INT = re.compile(r"-?(?:0|[1-9]\d*)")
_FLOAT = re.compile(r"-?(?:0|[1-9]\d*)?(?:\.\d+)?(?:[eE][-+]?\d+)?")
_TEXT_COLUMNS = frozenset({"id", "image", "caption"})  # never turned into numbers
_CHUNK = 1 << 16
# Python's csv module refuses cells over 128 KiB by default; product descriptions exported
# as HTML run longer. The file is streamed a record at a time, so this only bounds one record.
_CSV_FIELD_LIMIT = 1 << 30
# Qdrant stores payload integers as signed 64-bit; a larger id would come back as a float,
# and then neither match its catalog row on a re-run nor be pruned.
_ID_MIN, _ID_MAX = -(1 << 63), (1 << 63) - 1


@dataclass(frozen=True)
class Row:
    """A usable catalog record. `payload` holds every field but `id` (image, caption too).

    `data`: the picture's own bytes where the catalog embeds them (Parquet); `image` then
    only names it."""

    number: int
    id: str | int
    image: str
    caption: str | None
    payload: dict[str, Any] = field(default_factory=dict)
    data: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class RowProblem:
    """A record that cannot be indexed; `id` is set where the record had a usable one.

    `unread` marks a record that could not be read whole (broken JSON, an unbalanced CSV
    quote, a wrong field count): an `id` taken from it is a guess, and the product it
    stands for may still be in the catalog, so a run with such a row must not prune.
    """

    number: int
    id: str | int | None
    reason: str
    unread: bool = False

    @property
    def hides_an_id(self) -> bool:
        """Whether this row may stand for a product whose id the run did not see."""
        return self.unread or self.id is None


@dataclass(frozen=True)
class Malformed:
    """A record that could not be read whole, with its id where that much was readable."""

    reason: str
    id: str | None = None


def catalog_format(location: str, override: str | None = None) -> str:
    """`csv`, `jsonl`, `json` or `parquet`, from `override` or the file name's extension."""
    if override:
        if override not in FORMAT_NAMES:
            raise ConfigurationError(
                f"unknown catalog format {override!r}; use {', '.join(FORMAT_NAMES)}"
            )
        return override
    suffix = Path(location.split("?", 1)[0]).suffix.lower()
    if location.startswith("hf://") and suffix not in FORMATS:
        return "parquet"  # a dataset or a folder of it: its Parquet files
    if suffix not in FORMATS:
        raise ConfigurationError(
            f"{location}: cannot tell the catalog format from {suffix or 'no extension'!r}; "
            "name it .csv, .jsonl, .json or .parquet (or pass --format)"
        )
    return FORMATS[suffix]


@contextlib.contextmanager
def local_copy(
    location: str, *, split: str | None = None, revision: str | None = None
) -> Iterator[Path]:
    """The catalog as a local file: itself, or an `s3://`, `http(s)://` or `hf://` file
    downloaded to a temp file (the hub's: its cache)."""
    if location.startswith("s3://"):
        with tempfile.TemporaryDirectory(prefix="catalog-") as tmp:
            yield s3.download_file(location, Path(tmp) / Path(location).name)
        return
    if location.startswith(("http://", "https://", "hf://")):
        with remote_copy(location, split=split, revision=revision) as path:
            yield path
        return
    if split or revision:
        raise ConfigurationError("--split and --revision apply to hf:// catalogs only")
    if "://" in location:
        raise ConfigurationError(
            f"{location}: a catalog is a local file, an s3:// URI, an http(s):// URL or "
            "hf://datasets/OWNER/NAME"
        )
    path = Path(location).expanduser()
    if not path.is_file():
        raise CatalogError(f"{location}: no such catalog file")
    yield path


def read_rows(
    path: Path, fmt: str, *, name: str | None = None, columns: Mapping[str, str] | None = None
) -> Iterator[Row | RowProblem]:
    """Stream the records of a local CSV or JSON catalog file, duplicates and bad rows
    reported in line (Parquet: `ingest.parquet`). `columns`: the fields that hold the id,
    image and caption where they go by other names (`{"id": "SKU"}`)."""
    name = name or str(path)
    newline = "" if fmt == "csv" else None
    with _read_errors(path, name), open(path, encoding="utf-8-sig", newline=newline) as text:
        records = _records(text, fmt, name, dict(columns or {}))
        checked = (check_record(n, record) for n, record in enumerate(records, start=1))
        yield from flag_duplicates(checked)


def count_jsonl_records(path: Path, *, name: str | None = None) -> int:
    """The records of a JSON Lines catalog (its non-blank lines, as `read_rows` counts them),
    without parsing them; `CatalogError` if the file is not UTF-8 text, as `read_rows`."""
    name = name or str(path)
    with _read_errors(path, name), open(path, encoding="utf-8-sig") as text:
        return sum(1 for line in text if not line.isspace())


@contextlib.contextmanager
def _read_errors(path: Path, name: str) -> Iterator[None]:
    """A catalog file's read errors as `CatalogError`s naming it (and the first byte that is
    not UTF-8)."""
    try:
        yield
    except UnicodeDecodeError as exc:
        line, byte = _first_undecodable(path)
        where = f"line {line}, byte 0x{byte:02x}" if line else f"byte 0x{exc.object[exc.start]:02x}"
        raise CatalogError(
            f"{name}: not UTF-8 text ({where} cannot be decoded); save the catalog as UTF-8"
        ) from None
    except OSError as exc:
        raise CatalogError(f"{name}: cannot read the catalog: {exc}") from exc


def flag_duplicates(rows: Iterable[Row | RowProblem]) -> Iterator[Row | RowProblem]:
    """`rows`, with each repeat of an id already seen turned into a `RowProblem`."""
    first_seen: dict[str, int] = {}  # str(id) -> row number; ids only, never whole rows
    for row in rows:
        if row.id is not None:
            key = str(row.id)
            if key in first_seen:
                row = RowProblem(
                    row.number,
                    row.id,
                    f"duplicate id {row.id!r} (first at row {first_seen[key]})",
                    unread=isinstance(row, RowProblem) and row.unread,
                )
            else:
                first_seen[key] = row.number
        yield row


def _first_undecodable(path: Path) -> tuple[int, int]:
    """(line number, byte) of the file's first byte that is not UTF-8, or (0, 0).

    The text reader decodes in blocks, so its error only knows the offset in a block; the
    file is read again (only on this error) to tell the user which line to fix.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    lines_before = 0
    with open(path, "rb") as raw:
        while block := raw.read(1 << 20):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                # The decoder may hold back up to 3 bytes of an unfinished character.
                pending = len(exc.object) - len(block)
                offset = exc.start - pending
                if offset < 0:  # the bad sequence began in the previous block
                    return lines_before + 1, exc.object[exc.start]
                return lines_before + block.count(b"\n", 0, offset) + 1, exc.object[exc.start]
            lines_before += block.count(b"\n")
    return 0, 0


_RawRecord = dict[str, Any] | str | Malformed


def _records(text: IO[str], fmt: str, name: str, columns: dict[str, str]) -> Iterator[_RawRecord]:
    """Raw records, their fields renamed after `columns`: a dict, or a string saying why the
    record is malformed."""
    if fmt == "csv":
        yield from _csv_records(text, name, columns)
        return
    objects = _jsonl_records(text) if fmt == "jsonl" else _json_records(text, name)
    records = require_fields(objects, name, columns)
    if not columns:  # the usual catalog: its records as they are
        yield from records
        return
    renames = renaming(columns)
    for record in records:
        if isinstance(record, dict):
            names = renamed(record, renames)
            repeated = _repeated(names)
            if repeated:  # one value would silently replace the other
                yield f"field(s) {', '.join(repeated)} appear twice once renamed by --*-column"
                continue
            record = dict(zip(names, record.values(), strict=True))
        yield record


def _repeated(names: list[str]) -> list[str]:
    """The names that occur more than once in `names`, sorted."""
    return sorted(name for name, count in collections.Counter(names).items() if count > 1)


def _jsonl_records(text: IO[str]) -> Iterator[_RawRecord]:
    for line in text:
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            yield f"malformed JSON: {exc}"
            continue
        yield record if isinstance(record, dict) else _not_object(record)


def _json_records(text: IO[str], name: str) -> Iterator[_RawRecord]:
    for record in _json_array(text, name):
        yield record if isinstance(record, dict) else _not_object(record)


def _not_object(record: Any) -> str:
    return f"expected a JSON object, got {type(record).__name__}"


def _csv_records(text: IO[str], name: str, columns: dict[str, str]) -> Iterator[_RawRecord]:
    if csv.field_size_limit() < _CSV_FIELD_LIMIT:
        csv.field_size_limit(_CSV_FIELD_LIMIT)
    # strict: a quote left open to the end of the file is an error, not one huge last cell
    # that swallows every row after it (whose products --prune would then delete).
    reader = csv.reader(text, strict=True)
    try:
        header = [column.strip() for column in next(reader)]
    except StopIteration:
        raise CatalogError(f"{name}: the catalog is empty (no header row)") from None
    except csv.Error as exc:
        raise CatalogError(f"{name}: unreadable CSV header: {exc}") from None
    check_named_columns(header, columns, name)
    given, header = header, renamed(header, renaming(columns))
    missing = [column for column in REQUIRED_FIELDS if column not in header]
    if missing:
        hint = _separator_hint(given)
        raise missing_fields_error(name, "the CSV header has", missing, given, hint=hint)
    repeated = _repeated(header)
    if repeated:
        raise CatalogError(f"{name}: column(s) {', '.join(repeated)} appear more than once")
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield f"malformed CSV: {exc}"
            continue
        if not cells:
            continue  # blank line
        if len(cells) != len(header):
            # The id is usually still where the header says: name it, it is what users search.
            cell = cells[header.index("id")].strip() if header.index("id") < len(cells) else ""
            yield Malformed(f"has {len(cells)} fields, the header has {len(header)}", cell or None)
            continue
        yield {
            column: cell if column in _TEXT_COLUMNS else _csv_value(cell)
            for column, cell in zip(header, cells, strict=True)
            if cell != ""  # a CSV cannot tell "empty" from "absent"; treat both as absent
        }


def _separator_hint(header: list[str]) -> str:
    """A hint for the usual cause of a one-column header: a catalog separated by ; or tabs."""
    if len(header) == 1:
        for separator, name in ((";", "semicolons"), ("\t", "tabs")):
            if separator in header[0]:
                return f"; the columns look separated by {name}: save the catalog with commas"
    return ""


def _csv_value(cell: str) -> str | int | float:
    """Numbers stay numbers; codes with leading zeros ("00123") stay text."""
    if _INT.fullmatch(cell):
        return int(cell)
    if any(c.isdigit() for c in cell) and _FLOAT.fullmatch(cell):
        return float(cell)
    return cell


def _json_array(text: IO[str], name: str) -> Iterator[Any]:
    """The elements of a top-level JSON list, decoded one at a time (flat memory)."""
    decoder = json.JSONDecoder()
    buffer, position, eof = "", 0, False

    def fill() -> bool:
        nonlocal buffer, position, eof
        chunk = text.read(_CHUNK)
        eof = not chunk
        buffer, position = buffer[position:] + chunk, 0
        return bool(chunk)

    def next_char() -> str:
        nonlocal position
        while True:
            while position < len(buffer) and buffer[position].isspace():
                position += 1
            if position < len(buffer) or not fill():
                return buffer[position] if position < len(buffer) else ""

    if next_char() != "[":
        raise CatalogError(f"{name}: a .json catalog must be a list of objects ([{{...}}, ...])")
    position += 1
    if next_char() == "]":
        position += 1
        _nothing_after(next_char(), name)
        return
    number = 0
    while True:
        number += 1
        next_char()
        while True:
            try:
                element, end = decoder.raw_decode(buffer, position)
            except ValueError as exc:
                if not eof and fill():
                    continue
                raise CatalogError(f"{name}: malformed JSON in row {number}: {exc}") from None
            if end == len(buffer) and not eof and fill():
                continue  # a bare number may continue in the next chunk
            position = end
            break
        yield element
        separator = next_char()
        position += 1
        if separator == "]":
            _nothing_after(next_char(), name)
            return
        if separator != ",":
            found = repr(separator) if separator else "the end of the file"
            raise CatalogError(
                f"{name}: malformed JSON after row {number}: expected ',' or ']', found {found}"
            )


def _nothing_after(found: str, name: str) -> None:
    """Text after the list's closing bracket means the file is not what it seems (two lists
    pasted together, a truncated edit): refuse it rather than index half of it."""
    if found:
        raise CatalogError(f"{name}: unexpected text after the closing ']' of the JSON list")


def check_record(number: int, record: dict[str, Any] | str | Malformed) -> Row | RowProblem:
    """Validate one catalog record (row `number`, 1-based) into a `Row` or a `RowProblem`."""
    if isinstance(record, str):
        return RowProblem(number, None, record, unread=True)
    if isinstance(record, Malformed):
        return RowProblem(number, record.id, record.reason, unread=True)
    raw_id = record.get("id")
    if isinstance(raw_id, str):
        raw_id = raw_id.strip()
    if raw_id is None or raw_id == "":
        return RowProblem(number, None, "missing id")
    if isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)):
        return RowProblem(number, None, f"id {raw_id!r} is not a string or an integer")
    if isinstance(raw_id, int) and not _ID_MIN <= raw_id <= _ID_MAX:
        return RowProblem(
            number, None, f"id {raw_id} is outside the 64-bit integer range; write it as a string"
        )
    image = record.get("image")
    if isinstance(image, (int, float)) and not isinstance(image, bool):
        image = str(image)  # a CSV cell "123" names the file 123
    if not isinstance(image, str) or not image.strip():
        what = "missing image" if image in (None, "") else f"image {image!r} is not a string"
        return RowProblem(number, raw_id, what)
    if not RESERVED_FIELDS.isdisjoint(record):
        clash = sorted(RESERVED_FIELDS.intersection(record))
        return RowProblem(number, raw_id, f"field(s) {', '.join(clash)} are reserved")
    caption = record.get("caption")
    caption = " ".join(str(caption).split()) if caption is not None else ""
    payload = {k: v for k, v in record.items() if k != "id" and v is not None}
    for key, value in payload.items():
        if type(value) is not str and _has_non_finite(value):  # most values are text
            return RowProblem(
                number,
                raw_id,
                f"field {key!r} holds {value!r}; numbers must be finite "
                "(leave the field empty for no value)",
            )
    payload["image"] = image = image.strip()
    return Row(number, raw_id, image, caption or None, payload)


def _has_non_finite(value: Any) -> bool:
    """Whether `value` is or holds NaN or an infinity, which JSON (and so Qdrant) cannot hold."""
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, list):
        return any(_has_non_finite(item) for item in value)
    if isinstance(value, dict):
        return any(_has_non_finite(item) for item in value.values())
    return False

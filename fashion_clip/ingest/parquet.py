"""Read a Parquet catalog a few hundred rows at a time, pictures embedded or referenced.

The `image` column may hold a path or URL (text), the picture's bytes (binary), or the
Hugging Face `datasets` Image struct `{bytes, path}` (bytes win; a struct with only a path is
a reference). Rows come out as `catalog.Row`s (with `data` set for embedded pictures) or
`RowProblem`s, exactly as for the text formats; a file that is not Parquet, or whose `id` or
`image` column is missing or of a type that cannot name a picture, raises `CatalogError`.

Memory: `iter_batches` decodes one batch of the current row group at a time, so what is held
is a row group's bytes and a batch of rows, whatever the file's size. Binary columns other
than the image (JSON payloads cannot hold bytes) are not read at all.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import decimal
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from fashion_clip.errors import CatalogError
from fashion_clip.ingest.catalog import Row, RowProblem, check_record, flag_duplicates
from fashion_clip.ingest.columns import (
    REQUIRED_FIELDS,
    check_named_columns,
    missing_fields_error,
    renamed,
    renaming,
)

BATCH_ROWS = 64  # rows decoded at once: pictures of ~100 KB make a batch ~6 MB
_EMBEDDED = "embedded picture"  # what `Row.image` says when the struct has no path


def read_parquet_rows(
    path: Path, *, name: str, columns: Mapping[str, str] | None = None
) -> Iterator[Row | RowProblem]:
    """The rows of the Parquet file at `path` (`name`: how messages call it), in order,
    repeated ids reported as for the other formats. `columns`: where the id, image and
    caption are when their columns go by other names (`{"id": "item_ID"}`)."""
    return flag_duplicates(_parquet_rows(path, name, dict(columns or {})))


def parquet_row_count(path: Path, *, name: str) -> int:
    """The rows of the file (or folder of files) at `path`, from the files' own metadata."""
    files = sorted(path.glob("*.parquet")) if path.is_dir() else [path]
    try:
        return sum(pq.ParquetFile(file, pre_buffer=False).metadata.num_rows for file in files)
    except (pa.ArrowException, OSError) as exc:
        raise CatalogError(f"{name}: not a readable Parquet file ({exc})") from None


def _parquet_rows(path: Path, name: str, columns: dict[str, str]) -> Iterator[Row | RowProblem]:
    """A folder's files one after the other (a dataset's shards), numbered as one catalog."""
    files = sorted(path.glob("*.parquet")) if path.is_dir() else [path]
    number = 0
    for file in files:
        for row in _file_rows(file, name, number, columns):
            number = row.number
            yield row


def _file_rows(
    path: Path, name: str, number: int, columns: dict[str, str]
) -> Iterator[Row | RowProblem]:
    """The rows of one Parquet file, numbered from `number + 1`."""
    try:
        # pre_buffer (pyarrow's default) keeps every row group's bytes once read: memory grew
        # with the file (a 200 MB catalog: +185 MB); without it, one row group at a time.
        parquet = pq.ParquetFile(path, pre_buffer=False)
    except (pa.ArrowException, OSError) as exc:
        raise CatalogError(f"{name}: not a readable Parquet file ({exc})") from None
    with parquet:
        schema = _renamed(parquet.schema_arrow, columns, name)
        image_kind = _image_kind(schema, name, parquet.schema_arrow.names)
        wanted = [i for i, f in enumerate(schema) if f.name == "image" or not _is_binary(f.type)]
        names = [schema.field(i).name for i in wanted]
        read = [parquet.schema_arrow.field(i).name for i in wanted]
        batches = parquet.iter_batches(batch_size=BATCH_ROWS, columns=read)
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                return
            except (pa.ArrowException, OSError) as exc:
                raise CatalogError(
                    f"{name}: the Parquet file is damaged after row {number} ({exc})"
                ) from None
            for record in batch.rename_columns(names).to_pylist():
                number += 1
                yield _row(number, record, image_kind)


def _renamed(schema: pa.Schema, columns: dict[str, str], name: str) -> pa.Schema:
    """`schema` with the columns named in `columns` taking their roles (`item_ID` becomes
    `id`); a column that already had such a name gives way (`ingest.columns`)."""
    check_named_columns(schema.names, columns, name)
    names = renamed(schema.names, renaming(columns))
    return pa.schema([schema.field(i).with_name(n) for i, n in enumerate(names)])


def _image_kind(schema: pa.Schema, name: str, given: list[str]) -> str:
    """`text`, `bytes` or `struct`: how the `image` column holds pictures. `given`: the
    columns as the file names them, for the message when a required one is missing."""
    missing = [column for column in REQUIRED_FIELDS if column not in schema.names]
    if missing:
        raise missing_fields_error(name, "the Parquet file has", missing, given)
    kind = schema.field("image").type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return "text"
    if _is_binary(kind):
        return "bytes"
    if pa.types.is_struct(kind):
        fields = {kind.field(i).name: kind.field(i).type for i in range(kind.num_fields)}
        if _is_binary(fields.get("bytes")) or fields.get("path") is not None:
            return "struct"
    raise CatalogError(
        f"{name}: the 'image' column holds {kind}; it must hold a path or URL (text), the "
        "picture's bytes (binary) or a {bytes, path} struct (Hugging Face datasets' Image)"
    )


def _is_binary(kind: pa.DataType | None) -> bool:
    return kind is not None and (
        pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
        or pa.types.is_fixed_size_binary(kind)
    )


def _row(number: int, record: dict[str, Any], image_kind: str) -> Row | RowProblem:
    """One record as a `Row`: embedded bytes go to `Row.data`, their name to `Row.image`."""
    image = record.get("image")
    data: bytes | None = None
    if image_kind == "bytes":
        data, image = image, _EMBEDDED if image is not None else None
    elif image_kind == "struct" and isinstance(image, dict):
        data = image.get("bytes") or None
        image = image.get("path") or (_EMBEDDED if data is not None else None)
    if data is not None and not data:
        data, image = None, None  # an empty cell: "missing image"
    fields = {key: _json_value(value) for key, value in record.items() if key != "image"}
    checked = check_record(number, {**fields, "image": image})
    if isinstance(checked, RowProblem) or data is None:
        return checked
    return dataclasses.replace(checked, data=bytes(data))


def _json_value(value: Any) -> Any:
    """A Parquet cell as a payload value: dates as ISO text, decimals as floats, nested
    lists and structs converted through."""
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, _dt.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, list):
        return [_json_value(item) for item in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    return value

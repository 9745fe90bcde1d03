"""Catalog reading: the three formats, numbers, encodings, and rows that cannot be used."""

from __future__ import annotations

import json

import pytest

from fashion_clip.errors import CatalogError, ConfigurationError
from fashion_clip.ingest import catalog as catalog_module
from fashion_clip.ingest.catalog import Row, RowProblem, catalog_format, read_rows
from tests.indexer_fixtures import product_rows, write_catalog


def read(path, fmt=None):
    return list(read_rows(path, fmt or catalog_format(str(path))))


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".json"])
def test_formats_read_the_same_rows(tmp_path, suffix):
    rows = product_rows(5)
    rows[1]["caption"] = "une robe légère, été 2024 — «soldes»"
    rows[2]["code"] = "00123"  # leading zeros: a code, not a number
    path = write_catalog(tmp_path / f"catalog{suffix}", rows)
    result = read(path)
    assert [type(r) for r in result] == [Row] * 5
    assert [r.number for r in result] == [1, 2, 3, 4, 5]
    assert [r.id for r in result] == [f"sku-{i}" for i in range(5)]
    assert result[1].caption == rows[1]["caption"]
    assert result[0].image == "img-0.jpg"
    payload = result[2].payload
    assert payload["price"] == 11.5 and isinstance(payload["price"], float)
    assert payload["stock"] == 6 and isinstance(payload["stock"], int)
    assert payload["code"] == "00123"
    assert payload["category"] == "skirt" and payload["image"] == "img-2.jpg"
    assert "id" not in payload


def test_csv_keeps_ids_as_text_and_drops_empty_cells(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("id,image,caption,price,note\n007,a.jpg,,1e3,\n", encoding="utf-8")
    [row] = read(path)
    assert row.id == "007" and row.caption is None
    assert row.payload == {"image": "a.jpg", "price": 1000.0}


def test_utf8_bom_is_accepted_and_other_encodings_are_refused(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes("id,image\nx,é.jpg\n".encode("utf-8-sig"))
    assert read(path)[0].id == "x"
    latin = tmp_path / "latin.csv"
    latin.write_bytes("id,image,caption\nx,a.jpg,robe légère\n".encode("latin-1"))
    with pytest.raises(CatalogError, match=r"not UTF-8 text \(line 2, byte 0xe9 "):
        read(latin)


@pytest.mark.parametrize(
    ("tail", "line", "byte"),
    [
        ("é\n".encode() + b"\xff", 1203, 0xFF),  # a good character cut by the block's end
        (b"\xc3\n", 1202, 0xC3),  # a bad sequence that begins in the block before
    ],
)
def test_the_not_utf8_error_names_the_line_past_the_first_megabyte(tmp_path, tail, line, byte):
    # The line is found by a second, block-wise read (1 MiB blocks): the block's end must
    # not lose count of the lines or of a character it cuts.
    head = ("id,image\n" + ("x" * 1023 + "\n") * 1200).encode()  # 1,201 lines
    padding = (1 << 20) - len(head) - 1  # the tail's first byte is the block's last
    path = tmp_path / "big.csv"
    path.write_bytes(head + b"y" * padding + tail)
    with pytest.raises(CatalogError, match=rf"line {line}, byte 0x{byte:02x} "):
        read(path)


def test_missing_duplicate_and_malformed_rows_are_reported_with_row_numbers(tmp_path):
    path = tmp_path / "c.jsonl"
    lines = [
        {"id": "a", "image": "a.jpg"},
        {"image": "b.jpg"},
        {"id": "a", "image": "c.jpg"},
        "{broken",
        ["not", "an", "object"],
        {"id": 1.5, "image": "d.jpg"},
        {"id": "e"},
        {"id": "f", "image": "f.jpg", "_fingerprint": "x"},
        {"id": 7, "image": "g.jpg", "caption": "  two   spaces "},
    ]
    text = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines)
    path.write_text(text + "\n\n", encoding="utf-8")
    result = read(path)
    assert [r.number for r in result] == list(range(1, 10))
    problems = {r.number: (r.id, r.reason) for r in result if isinstance(r, RowProblem)}
    assert problems[2] == (None, "missing id")
    assert problems[3][0] == "a" and "duplicate id 'a' (first at row 1)" in problems[3][1]
    assert "malformed JSON" in problems[4][1]
    assert "expected a JSON object" in problems[5][1]
    assert "not a string or an integer" in problems[6][1]
    assert problems[7] == ("e", "missing image")
    assert "reserved" in problems[8][1]
    assert set(problems) == {2, 3, 4, 5, 6, 7, 8}
    assert result[8].id == 7 and result[8].caption == "two spaces"


def test_csv_rows_with_the_wrong_number_of_fields(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("id,image,caption\na,a.jpg,ok\nb,b.jpg\nc,c.jpg,x,extra\n1,1.jpg,one\n")
    result = read(path)
    assert isinstance(result[0], Row) and isinstance(result[3], Row)
    assert result[1].number == 2 and "2 fields, the header has 3" in result[1].reason
    assert result[2].number == 3 and "4 fields" in result[2].reason
    assert (result[1].id, result[2].id) == ("b", "c")  # still named in the report
    assert result[3].id == "1"  # ids stay text in a CSV (JSON's 1 names the same point)


def test_csv_without_required_columns_is_refused(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("sku,picture\na,a.jpg\n")
    with pytest.raises(CatalogError, match="'id' or 'image'"):
        read(path)
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(CatalogError, match="empty"):
        read(tmp_path / "empty.csv")


def test_json_list_is_streamed_across_chunk_boundaries(tmp_path, monkeypatch):
    monkeypatch.setattr(catalog_module, "_CHUNK", 7)  # force every element across chunks
    rows = product_rows(30)
    rows[4]["price"] = 123456789
    path = write_catalog(tmp_path / "c.json", rows)
    result = read(path)
    assert [r.id for r in result] == [r["id"] for r in rows]
    assert result[4].payload["price"] == 123456789
    path.write_text('[{"id": "a", "image": "a.jpg"}, 5, {"id": "b", "image": "b.jpg"}]')
    result = read(path)
    assert [type(r) for r in result] == [Row, RowProblem, Row]
    path.write_text("[]")
    assert read(path) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"id": "a", "image": "a.jpg"}', "list of objects"),
        ('[{"id": "a", "image": "a.jpg"}, {"id": "b", "im', "malformed JSON in row 2"),
        ('[{"id": "a", "image": "a.jpg"} {"id": "b"}]', "after row 1"),
        ('[{"id": "a", "image": "a.jpg"}] garbage', "text after the closing"),
        ('[{"id": "a", "image": "a.jpg"}][{"id": "b", "image": "b.jpg"}]', "text after"),
        ("[] []", "text after the closing"),
    ],
)
def test_broken_json_files_are_refused_whole(tmp_path, text, message):
    path = tmp_path / "c.json"
    path.write_text(text)
    with pytest.raises(CatalogError, match=message):
        read(path)


def test_format_comes_from_the_extension_or_the_override():
    assert catalog_format("s3://bucket/shop/items.CSV") == "csv"
    assert catalog_format("x.ndjson") == "jsonl"
    assert catalog_format("x.txt", "json") == "json"
    assert catalog_format("https://cdn.example/shop.parquet?v=2") == "parquet"
    with pytest.raises(ConfigurationError, match=r"\.csv, \.jsonl, \.json or \.parquet"):
        catalog_format("catalog.xlsx")
    with pytest.raises(ConfigurationError):
        catalog_format("x.csv", "xlsx")


def test_a_csv_cell_longer_than_the_csv_modules_default_limit_is_read(tmp_path):
    description = "<p>" + "silk " * 40_000 + "</p>"  # 200 KB, over csv's 128 KiB default
    path = tmp_path / "c.csv"
    path.write_text(f'id,image,description\na,a.jpg,"{description}"\n', encoding="utf-8")
    [row] = read(path)
    assert isinstance(row, Row) and row.payload["description"] == description


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_rows_holding_nan_or_infinity_are_skipped_alone(tmp_path, suffix):
    path = tmp_path / f"c{suffix}"
    if suffix == ".csv":
        path.write_text("id,image,price\na,a.jpg,1e999\nb,b.jpg,3\n", encoding="utf-8")
    else:  # Python's json reads NaN and Infinity, which JSON itself does not allow
        path.write_text(
            '{"id": "a", "image": "a.jpg", "price": Infinity}\n'
            '{"id": "b", "image": "b.jpg", "price": 3}\n'
            '{"id": "c", "image": "c.jpg", "sizes": [1, NaN]}\n',
            encoding="utf-8",
        )
    result = read(path)
    assert isinstance(result[0], RowProblem) and result[0].id == "a"
    assert "'price'" in result[0].reason and "finite" in result[0].reason
    assert isinstance(result[1], Row) and result[1].payload["price"] == 3
    if suffix == ".jsonl":
        assert isinstance(result[2], RowProblem) and "'sizes'" in result[2].reason


def test_integer_ids_beyond_64_bits_are_refused_with_advice(tmp_path):
    path = tmp_path / "c.jsonl"
    ids = [2**63 - 1, 2**63, -(2**63), -(2**63) - 1]
    path.write_text(
        "".join(json.dumps({"id": i, "image": f"{n}.jpg"}) + "\n" for n, i in enumerate(ids)),
        encoding="utf-8",
    )
    result = read(path)
    assert [type(r) for r in result] == [Row, RowProblem, Row, RowProblem]
    assert "64-bit" in result[1].reason and "as a string" in result[1].reason


def test_a_csv_separated_by_semicolons_gets_a_hint(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("id;image;caption\na;a.jpg;red\n", encoding="utf-8")
    with pytest.raises(CatalogError, match="separated by semicolons"):
        read(path)


def _as_shop_export(rows: list[dict]) -> list[dict]:
    """`rows` as a shop exports them: the id, image and caption under other names, and a
    field of its own called `id` (a database key)."""
    return [
        {"SKU": r["id"], "Picture": r["image"], "Title": r["caption"], "id": n, "price": r["price"]}
        for n, r in enumerate(rows, start=100)
    ]


@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_json_records_without_a_required_field_are_refused_at_once(tmp_path, suffix):
    rows = [{k: v for k, v in r.items() if k != "id"} for r in _as_shop_export(product_rows(3))]
    path = write_catalog(tmp_path / f"c{suffix}", rows)
    with pytest.raises(CatalogError) as refused:
        read(path)
    assert str(refused.value) == (
        f"{path}: its first 3 records have no 'id' or 'image' field (fields: SKU, Picture, "
        "Title, price); 'id' and 'image' are required: rename the fields, or name the ones "
        "that hold them with --id-column and --image-column"
    )
    # A field named otherwise that no record has is refused the same way, naming its option.
    with pytest.raises(CatalogError, match=r"its first 3 records have no 'sku' field \(named by"):
        list(read_rows(path, suffix[1:], columns={"id": "sku", "image": "Picture"}))


@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_json_records_missing_an_id_after_the_first_ones_are_skipped_alone(tmp_path, suffix):
    rows = product_rows(4)
    del rows[0]["id"], rows[2]["id"]  # the first record too: one bad row is not the catalog
    result = read(write_catalog(tmp_path / f"c{suffix}", rows))
    assert [(type(r), r.number) for r in result] == [
        (RowProblem, 1), (Row, 2), (RowProblem, 3), (Row, 4),
    ]  # fmt: skip
    assert result[0].reason == result[2].reason == "missing id"
    assert result[0].hides_an_id and result[2].hides_an_id  # so --prune refuses


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".json"])
def test_fields_under_other_names_in_every_format(tmp_path, suffix):
    rows = product_rows(3)
    plain = read(write_catalog(tmp_path / f"plain{suffix}", rows))
    path = write_catalog(tmp_path / f"export{suffix}", _as_shop_export(rows))
    columns = {"id": "SKU", "image": "Picture", "caption": "Title"}
    named = list(read_rows(path, suffix[1:], columns=columns))
    assert [type(r) for r in named] == [Row] * 3
    for row, expected, n in zip(named, plain, range(100, 103), strict=True):
        assert (row.id, row.image, row.caption) == (expected.id, expected.image, expected.caption)
        assert row.payload == {
            "image": expected.image, "caption": expected.caption,
            "price": expected.payload["price"], "id_original": n,
        }  # fmt: skip
    if suffix == ".csv":  # a header tells at once that a named column is not there
        with pytest.raises(CatalogError, match=r"no column 'sku' \(columns: SKU, Picture"):
            list(read_rows(path, "csv", columns={"id": "sku"}))


@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_a_json_record_whose_renamed_fields_clash_is_skipped_not_merged(tmp_path, suffix):
    rows = [{"SKU": "p1", "id": 7, "id_original": 8, "image": "a.jpg"},
            {"SKU": "p2", "id": 9, "image": "b.jpg"}]  # fmt: skip
    path = write_catalog(tmp_path / f"c{suffix}", rows)
    first, second = read_rows(path, suffix[1:], columns={"id": "SKU"})
    assert isinstance(first, RowProblem) and "id_original appear twice" in first.reason
    assert isinstance(second, Row) and second.payload["id_original"] == 9  # the usual rename

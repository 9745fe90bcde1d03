"""Bad input: every bad row or image is skipped and reported, the good ones are indexed.

Also the exit codes: 0 clean, 1 some rows skipped, 2 usage/configuration/fatal errors with
one message and no traceback (unless --verbose).
"""

from __future__ import annotations

import json

import pytest

from indexer.commands import COMMANDS
from tests.image_corpus import write_corpus
from tests.indexer_fixtures import points, run_indexer, use_store, write_catalog


@pytest.fixture
def env(tmp_path, monkeypatch, tiny_model_dir):
    use_store(monkeypatch, tmp_path / "qdrant", tiny_model_dir)
    return tmp_path


def test_bad_rows_and_images_are_skipped_and_reported(env, capsys):
    good, bad = write_corpus(env / "images")
    rows = [{"id": f"good-{name}", "image": name, "caption": name} for name in good]
    expected = {}  # row number -> (id, word in the reason)
    for name, (_, word) in bad.items():
        rows.append({"id": f"bad-{name}", "image": name})
        expected[len(rows)] = (f"bad-{name}", word)
    extra = [
        ({"id": "missing-file", "image": "nope.jpg"}, "no such file"),
        ({"id": "escape", "image": "../../etc/passwd"}, "leaves the image root"),
        ({"id": "ftp", "image": "ftp://host/a.jpg"}, "unsupported scheme"),
        ({"image": "photo.jpg"}, "missing id"),
        ({"id": "good-photo.jpg", "image": "photo.jpg"}, "duplicate id"),
        ({"id": "no-image", "caption": "x"}, "missing image"),
        ({"id": ["a", "list"], "image": "photo.jpg"}, "not a string or an integer"),
    ]
    for row, word in extra:
        rows.append(row)
        expected[len(rows)] = (row.get("id") if isinstance(row.get("id"), str) else None, word)
    catalog = write_catalog(env / "catalog.json", rows)
    report = env / "out" / "report.jsonl"

    code, out, err = run_indexer(
        capsys, "index", catalog, "--collection", "c", "--images", env / "images",
        "--report", report, "--max-image-mb", "1",
    )  # fmt: skip
    assert code == 1
    assert f"indexed {len(good)}, unchanged 0, skipped {len(expected)}, deleted 0" in out
    assert sorted(points(env / "qdrant", "c")) == sorted(f"good-{name}" for name in good)

    lines = [json.loads(line) for line in report.read_text().splitlines()]
    assert [entry["row"] for entry in lines] == sorted(expected)  # in catalog order
    for entry in lines:
        row_id, word = expected[entry["row"]]
        assert entry["id"] == row_id
        assert word.lower() in entry["reason"].lower(), entry
        shown = f"row {entry['row']}" + (f" (id {row_id!r})" if row_id else "") + ": skipped: "
        assert shown + entry["reason"] in err
    assert "Traceback" not in err


def test_oversize_images_are_skipped(env, capsys):
    write_corpus(env / "images")
    catalog = write_catalog(env / "c.jsonl", [{"id": 1, "image": "photo.jpg"}])
    code, _, err = run_indexer(capsys, "index", catalog, "--images", env / "images",
                               "--max-image-mb", "0.0001")  # fmt: skip
    assert code == 1 and "over the 104-byte cap" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["index"], "the following arguments are required: CATALOG"),
        (["index", "{env}/missing.csv"], "no such catalog file"),
        (["index", "{env}/latin.csv"], "not UTF-8"),
        (["index", "{env}/c.xlsx"], "cannot tell the catalog format"),
        (["index", "{env}/ok.csv", "--images", "{env}/nowhere"], "no such directory"),
        (["index", "{env}/ok.csv", "--batch-size", "0"], "must be at least 1"),
        (["index", "{env}/ok.csv", "--batch-size", "x"], "'x' is not a whole number"),
        (["index", "{env}/ok.csv", "--max-image-mb", "0"], "must be a number above 0"),
        (["index", "{env}/ok.csv", "--max-image-mb", "nan"], "must be a number above 0"),
        (["index", "{env}/ok.csv", "--timeout", "-1"], "must be a number above 0"),
        (["index", "{env}/ok.csv", "--retries", "-1"], "must be 0 or more"),
        (["index", "{env}/ok.csv", "--collection", " "], "the collection name is empty"),
        (["index", "{env}/ok.csv", "--model", "{env}/no-model"], "does not exist"),
        (["index", "ftp://host/c.csv"], "local file, an s3:// URI, an http(s):// URL"),
        (["info", "--collection", "nothing"], "no collection 'nothing'"),
        (["evaluate", "{env}/ok.csv", "--collection", "c"], "--label-column"),
        (["snapshot", "pull", "{env}/missing.tar"], "not a readable snapshot"),
        (["bogus"], "invalid choice"),
    ],
)
def test_usage_and_configuration_errors_exit_2_with_one_message(env, capsys, argv, message):
    (env / "latin.csv").write_bytes("id,image\nx,é.jpg\n".encode("latin-1"))
    (env / "ok.csv").write_text("id,image\nx,x.jpg\n")
    code, out, err = run_indexer(capsys, *[a.format(env=env) for a in argv])
    assert code == 2
    assert message in err and "Traceback" not in err
    assert out == ""


@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_a_json_catalog_without_ids_stops_at_once_as_a_csv_does(env, capsys, suffix):
    from fashion_clip.store.embedded import EmbeddedStore

    rows = [{"SKU": f"s{i}", "Picture": f"{i}.jpg"} for i in range(3)]
    for catalog, has in (
        (write_catalog(env / f"c{suffix}", rows), "its first 3 records have no 'id' or 'image' "
         "field (fields: SKU, Picture)"),
        (write_catalog(env / "c.csv", rows), "the CSV header has no 'id' or 'image' column "
         "(columns: SKU, Picture)"),
    ):  # fmt: skip
        code, out, err = run_indexer(capsys, "index", catalog, "--collection", "c")
        assert code == 2 and out == "" and "skipped" not in err
        assert f"{catalog}: {has}; 'id' and 'image' are required" in err
        assert "--id-column and --image-column" in err
    with EmbeddedStore(env / "qdrant") as store:
        assert store.list_collections() == []


@pytest.mark.parametrize("command", [["info"], ["index", "{env}/ok.csv"]])
def test_a_qdrant_path_naming_a_file_is_one_clear_error(env, capsys, monkeypatch, command):
    (env / "ok.csv").write_text("id,image\nx,x.jpg\n")
    (env / "not-a-folder").write_text("x")
    monkeypatch.setenv("QDRANT_PATH", str(env / "not-a-folder"))
    code, out, err = run_indexer(capsys, *[a.format(env=env) for a in command])
    assert code == 2 and out == ""
    assert "is a file; the embedded store needs a folder" in err and "unexpected" not in err


def test_verbose_shows_the_traceback(env, capsys):
    code, _, err = run_indexer(capsys, "index", env / "missing.csv", "--verbose")
    assert code == 2 and "Traceback" in err and "no such catalog file" in err


def test_only_an_unexpected_error_points_to_verbose(env, capsys, monkeypatch):
    # A message of ours that happens to hold the word "unexpected" explains itself.
    (env / "c.json").write_text('[{"id": 1, "image": "x.jpg"}] and more')
    code, _, err = run_indexer(capsys, "index", env / "c.json")
    assert code == 2 and "unexpected text after the closing ']'" in err
    assert "--verbose" not in err

    def broken(args, settings):
        raise RuntimeError("a bug")

    monkeypatch.setitem(COMMANDS, "index", broken)
    code, _, err = run_indexer(capsys, "index", env / "c.json")
    assert code == 2 and "Traceback" not in err
    assert "unexpected RuntimeError: a bug (--verbose shows the traceback)" in err


def test_help_explains_every_command(capsys):
    for command in ("index", "demo", "info", "evaluate", "snapshot"):
        code, out, _ = run_indexer(capsys, command, "--help")
        assert code == 0 and "usage: indexer " + command in out
    code, out, _ = run_indexer(capsys, "index", "--help")
    for option in ("--images", "--collection", "--model", "--batch-size", "--recreate",
                   "--prune", "--report", "--workers", "--timeout", "--retries"):  # fmt: skip
        assert option in out
    assert "exit status" in out


def test_console_script_is_declared_and_callable(capsys):
    import tomllib

    from tests.indexer_fixtures import REPO

    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["indexer"] == "indexer.__main__:main"
    module, _, name = scripts["indexer"].partition(":")
    main = getattr(__import__(module, fromlist=[name]), name)
    assert main(["info", "--help"]) == 0 and "--collection" in capsys.readouterr().out

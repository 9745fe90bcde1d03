"""`indexer demo`: the bundled catalog into collection "demo", rebuilt when the model changes."""

from __future__ import annotations

import json

import pytest

from fashion_clip.demo import DEMO_CATALOG_FILE
from tests.indexer_fixtures import run_indexer, use_store


@pytest.fixture
def env(tmp_path, monkeypatch, tiny_model_dir):
    use_store(monkeypatch, tmp_path / "qdrant", tiny_model_dir)
    return tmp_path


def test_demo_command_indexes_the_bundled_catalog(env, capsys):
    total = sum(1 for line in DEMO_CATALOG_FILE.read_text().splitlines() if line.strip())
    code, out, err = run_indexer(capsys, "demo", "--batch-size", "64")
    assert code == 0, err
    assert out.startswith(f"demo: indexed {total}, unchanged 0, skipped 0, deleted 0")
    code, out, _ = run_indexer(capsys, "demo")
    assert code == 0 and f"indexed 0, unchanged {total}" in out

    code, out, _ = run_indexer(capsys, "info", "--collection", "demo", "--json")
    info = json.loads(out)
    assert info["count"] == total and info["catalog"] == str(DEMO_CATALOG_FILE)
    assert "category:keyword" in info["payload_indexes"]
    assert "price:float" in info["payload_indexes"]

    code, out, err = run_indexer(
        capsys, "evaluate", DEMO_CATALOG_FILE, "--collection", "demo", "--label-column",
        "category", "--json",
    )  # fmt: skip
    assert code == 0, err
    figures = json.loads(out)
    assert figures["queries"] == total and figures["labelled"] == total


def test_demo_is_rebuilt_for_another_model(env, capsys, tmp_path):
    from tests.conftest import build_tiny_clip

    assert run_indexer(capsys, "demo")[0] == 0
    other = build_tiny_clip(tmp_path / "other-model", seed=3)
    code, out, err = run_indexer(capsys, "demo", "--model", other)
    assert code == 0, err
    assert "rebuilding collection 'demo'" in err and "indexed 400" in out
    assert "--recreate" not in err  # the rebuild is under way: no advice to run it
    code, out, _ = run_indexer(capsys, "info", "--collection", "demo", "--json")
    assert json.loads(out)["model"] == str(other)


def test_a_catalog_is_not_indexed_with_the_demo_model_when_the_hub_is_unreachable(
    env, capsys, tmp_path, monkeypatch
):
    # The default model, offline: only the app and `indexer demo` may carry on with the demo
    # model; a catalog's collection filled with its vectors would be silently wrong.
    monkeypatch.setenv("FASHION_CLIP_MODEL", "fashion-clip")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    catalog = tmp_path / "c.csv"
    catalog.write_text("id,image\na,a.jpg\n", encoding="utf-8")
    code, out, err = run_indexer(capsys, "index", catalog, "--collection", "mine")
    assert code == 2 and out == ""
    assert "patrickjohncyh/fashion-clip" in err and "'demo'" in err
    assert "Traceback" not in err
    code, out, _ = run_indexer(capsys, "info", "--json")
    assert "mine" not in out


def test_a_missing_demo_catalog_is_one_message(env, capsys, monkeypatch):
    missing = env / "none" / "catalog.jsonl"
    monkeypatch.setattr("fashion_clip.demo.DEMO_CATALOG_FILE", missing)
    code, out, err = run_indexer(capsys, "demo")
    assert code == 2 and out == ""
    assert f"indexer: error: the bundled demo catalog is missing ({missing})" in err
    assert "Traceback" not in err

"""`indexer index --quantize`: fp32 and bf16 vectors count as one model's, int8's do not."""

from __future__ import annotations

import pytest

from tests.indexer_fixtures import (
    points,
    product_rows,
    run_indexer,
    use_store,
    write_catalog,
    write_photos,
)

N = 8


@pytest.fixture
def shop(tmp_path, monkeypatch, tiny_model_dir):
    use_store(monkeypatch, tmp_path / "qdrant", tiny_model_dir)
    monkeypatch.delenv("FASHION_CLIP_IMAGE_PRECISION", raising=False)
    write_photos(tmp_path / "images", N)
    return tmp_path


def test_moving_between_fp32_and_bf16_machines_does_not_re_embed(shop, capsys, monkeypatch):
    catalog = write_catalog(shop / "c.jsonl", product_rows(N))
    args = ("index", catalog, "--images", shop / "images", "--collection", "shop")
    code, out, err = run_indexer(capsys, *args, "--quantize", "fp32")  # a CPU without bf16
    assert code == 0 and f"indexed {N}, unchanged 0" in out, err
    fp32 = points(shop / "qdrant", "shop")
    code, out, err = run_indexer(capsys, *args, "--quantize", "bf16")  # one with it
    assert code == 0 and f"indexed 0, unchanged {N}" in out, err
    monkeypatch.setenv("FASHION_CLIP_IMAGE_PRECISION", "bf16")  # the setting, the same
    assert f"indexed 0, unchanged {N}" in run_indexer(capsys, *args)[1]
    after = points(shop / "qdrant", "shop")
    for key, point in fp32.items():  # untouched: the fp32 vectors are still there
        assert after[key].vectors["image"].tolist() == point.vectors["image"].tolist()
    code, out, err = run_indexer(capsys, *args, "--quantize", "int8")  # --quantize wins
    assert code == 0 and f"indexed {N}, unchanged 0" in out, err


def test_a_bf16_run_re_embeds_an_int8_collection(shop, capsys):
    catalog = write_catalog(shop / "c.jsonl", product_rows(N))
    args = ("index", catalog, "--images", shop / "images", "--collection", "shop")
    assert run_indexer(capsys, *args, "--quantize", "int8")[0] == 0
    code, out, err = run_indexer(capsys, *args, "--quantize", "bf16")
    assert code == 0 and f"indexed {N}, unchanged 0" in out, err


def test_an_unknown_precision_is_a_usage_error(shop, capsys):
    catalog = write_catalog(shop / "c.jsonl", product_rows(N))
    code, _, err = run_indexer(capsys, "index", catalog, "--quantize", "fp16")
    assert code == 2
    assert "--quantize: invalid choice: 'fp16'" in err and "'fp32', 'bf16', 'int8'" in err

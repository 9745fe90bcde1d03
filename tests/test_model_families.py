"""Every model family the loader names works, or is refused by name before any weights
load: CLIP and SigLIP work (tests/test_model.py); SigLIP 2 (NaFlex) and other families are
refused with a message naming the family, by the library and by the indexer alike."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fashion_clip.errors import ModelLoadError
from fashion_clip.model.checkpoints import REFUSED_TYPES, SUPPORTED_TYPES
from fashion_clip.model.clip import ClipModel
from tests.indexer_fixtures import product_rows, run_indexer, use_store, write_catalog, write_photos


def _tiny_siglip2(folder: Path) -> Path:
    """A random Siglip2Model with its tokenizer and NaFlex preprocessor config, as the hub
    ships them (no `size`: a patch budget instead)."""
    import torch
    from transformers import Siglip2Config, Siglip2Model

    from fashion_clip.demo.tokenizer import build_tokenizer

    torch.manual_seed(0)
    tokenizer = build_tokenizer(["red dress", "blue shirt"])
    tiny = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1}
    config = Siglip2Config(
        text_config={
            **tiny, "vocab_size": len(tokenizer), "num_attention_heads": 2,
            "max_position_embeddings": 16, "pad_token_id": tokenizer.pad_token_id,
        },
        vision_config={**tiny, "num_attention_heads": 2, "patch_size": 8, "num_patches": 16},
    )  # fmt: skip
    Siglip2Model(config).save_pretrained(folder)
    tokenizer.model_max_length = 16
    tokenizer.save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "image_processor_type": "Siglip2ImageProcessorFast",
                "do_resize": True,
                "patch_size": 8,
                "max_num_patches": 16,
                "resample": 2,
                "do_rescale": True,
                "rescale_factor": 1 / 255,
                "do_normalize": True,
                "image_mean": [0.5, 0.5, 0.5],
                "image_std": [0.5, 0.5, 0.5],
            }
        )
    )
    return folder


@pytest.fixture(scope="module")
def siglip2_dir(tmp_path_factory) -> Path:
    return _tiny_siglip2(tmp_path_factory.mktemp("siglip2"))


def test_the_families_named_are_either_supported_or_refused():
    assert set(SUPPORTED_TYPES) == {"clip", "siglip"}
    assert set(REFUSED_TYPES) == {"siglip2"} and not set(REFUSED_TYPES) & set(SUPPORTED_TYPES)


def test_siglip2_is_refused_by_name(siglip2_dir):
    with pytest.raises(ModelLoadError, match=r"is a SigLIP 2 \(NaFlex\) checkpoint") as refused:
        ClipModel.load(str(siglip2_dir))
    assert "supported: CLIP and SigLIP" in str(refused.value)


def test_the_indexer_refuses_siglip2_naming_it(siglip2_dir, tmp_path, monkeypatch, capsys):
    use_store(monkeypatch, tmp_path / "qdrant", siglip2_dir)
    write_photos(tmp_path / "images", 2)
    catalog = write_catalog(tmp_path / "c.jsonl", product_rows(2))
    code, out, err = run_indexer(capsys, "index", catalog, "--images", tmp_path / "images")
    assert code == 2 and out == ""
    assert "SigLIP 2 (NaFlex)" in err and "Traceback" not in err


def test_another_family_is_refused_naming_its_type(tiny_model_dir, tmp_path):
    import shutil

    folder = tmp_path / "other"
    shutil.copytree(tiny_model_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = "chinese_clip"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="is a 'chinese_clip' model; supported: CLIP"):
        ClipModel.load(str(folder))

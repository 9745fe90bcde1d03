"""A model folder shaped exactly like `patrickjohncyh/fashion-clip`, with CLIP's real BPE
tokenizer, through every entry point: the model, the indexer, the Python API and the app."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fashion_clip.model.clip import ClipModel
from tests.hub_model import build_hub_shaped_clip
from tests.indexer_fixtures import product_rows, run_indexer, use_store, write_catalog, write_photos

# The files of the hub repository (weights as safetensors; no Flax or PyTorch pickles).
HUB_FILES = {
    "config.json", "preprocessor_config.json", "vocab.json", "merges.txt", "tokenizer.json",
    "tokenizer_config.json", "special_tokens_map.json", "model.safetensors",
}  # fmt: skip


pytestmark = [  # Gradio's queue analytics use pandas options that pandas 3 deprecates
    pytest.mark.filterwarnings("ignore:.*no_silent_downcasting"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
]


@pytest.fixture(scope="module")
def hub_dir(tmp_path_factory):
    return build_hub_shaped_clip(tmp_path_factory.mktemp("fashion-clip"))


@pytest.fixture(scope="module")
def hub_model(hub_dir):
    return ClipModel.load(str(hub_dir), text_precision="fp32")


def test_the_folder_has_the_hub_repositorys_files(hub_dir):
    assert {p.name for p in hub_dir.iterdir()} == HUB_FILES
    config = json.loads((hub_dir / "config.json").read_text())
    assert config["model_type"] == "clip" and config["text_config"]["vocab_size"] == 49408
    assert json.loads((hub_dir / "preprocessor_config.json").read_text())["crop_size"] == {
        "height": 224, "width": 224,
    }  # fmt: skip


def test_clips_own_token_ids(hub_model):
    tokenize = hub_model.tokenizer
    assert tokenize("a red dress")["input_ids"] == [49406, 320, 736, 2595, 49407]
    assert tokenize("  A Red   DRESS ")["input_ids"] == [49406, 320, 736, 2595, 49407]
    assert len(tokenize("floral")["input_ids"]) == 3  # one token for a whole common word


def test_captions_over_77_tokens_are_truncated(hub_model):
    long = " ".join(["pleated silk midi skirt with a floral print"] * 20)  # ~160 tokens
    tokens = hub_model.tokenizer(long, truncation=True, max_length=77)["input_ids"]
    assert len(tokens) == 77 and tokens[-1] == 49407
    vectors = hub_model.encode_text([long, long + " in bright neon green"])
    # Whatever follows the 77th token is cut: both read the same first 77.
    np.testing.assert_allclose(vectors[0], vectors[1], atol=1e-6)
    assert not np.allclose(vectors[0], hub_model.encode_text(["a red dress"])[0], atol=1e-3)


def test_the_indexer_runs_on_it(hub_dir, tmp_path, monkeypatch, capsys):
    write_photos(tmp_path / "shop", 6)
    catalog = write_catalog(tmp_path / "shop" / "catalog.jsonl", product_rows(6))
    use_store(monkeypatch, tmp_path / "qdrant", hub_dir)
    code, out, err = run_indexer(capsys, "index", catalog, "--collection", "shop")
    assert code == 0 and "indexed 6" in out, err
    code, out, err = run_indexer(
        capsys, "evaluate", catalog, "--collection", "shop", "--label-column", "category", "--json"
    )
    assert code == 0, err
    assert json.loads(out)["queries"] == 6
    code, out, err = run_indexer(
        capsys, "tag", "--collection", "shop", "--attribute", "colour=red,blue,green"
    )
    assert code == 0 and "tagged 6" in out, err


def test_the_python_api_runs_on_it(hub_dir, hub_model, tmp_path):
    from fashion_clip import FashionCLIP, FCLIPDataset
    from fashion_clip.store.embedded import EmbeddedStore

    write_photos(tmp_path / "images", 4)
    rows = product_rows(4)
    dataset = FCLIPDataset("shop", image_source_path=str(tmp_path / "images"), catalog=rows)
    with EmbeddedStore(tmp_path / "q") as store:
        fclip = FashionCLIP(str(hub_dir), dataset, store=store)
        try:
            assert fclip.encode_text(["a red dress"]).shape == (1, 16)
            assert len(fclip.retrieval(["a red dress"], top_k=3)[0]) == 3
            label = fclip.zero_shot_classification(
                [str(tmp_path / "images" / "img-0.jpg")], ["a", "b"]
            )
            assert label[0] in ("a", "b")
        finally:
            fclip.close()


def test_the_app_runs_on_it(hub_model, tmp_path):
    pytest.importorskip("gradio_client")
    from gradio_client import Client, handle_file

    from fashion_clip.demo import DEMO_CATALOG_DIR
    from space.app import build_demo
    from space.startup import launch_options
    from tests.space_support import index_slice, open_shop, serving

    settings = index_slice(hub_model, tmp_path / "qdrant", rows=8)
    collection = open_shop(settings, hub_model)
    picture = handle_file(str(DEMO_CATALOG_DIR / "images" / "demo-0001.jpg"))
    try:
        demo = build_demo(hub_model, collection, settings)
        with serving(demo, **launch_options(settings)) as url:
            client = Client(url, verbose=False, download_files=False)
            _, hits = client.predict("a red dress", limit=3, api_name="/text_search")
            assert len(hits) == 3
            label = client.predict(picture, "dress, shirt", api_name="/classify")
            assert label["label"] in ("dress", "shirt")
    finally:
        collection.close()

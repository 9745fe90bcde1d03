"""The app shows pictures a Parquet catalog embeds: kept beside the store by the indexer,
served from the app's own picture folder, byte for byte."""

from __future__ import annotations

import json
import urllib.request

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fashion_clip.demo import DEMO_CATALOG_DIR, DEMO_CATALOG_FILE
from fashion_clip.settings import Settings
from space.app import build_demo
from space.startup import launch_options
from tests.indexer_fixtures import run_indexer, use_store
from tests.space_support import open_shop, serving

pytest.importorskip("gradio_client")
from gradio_client import Client

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*no_silent_downcasting"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
]


def test_embedded_pictures_show_in_the_app(tmp_path, monkeypatch, capsys, tiny_model):
    records = [json.loads(line) for line in DEMO_CATALOG_FILE.read_text().splitlines()][:12]
    embedded = {}
    for record in records:
        data = (DEMO_CATALOG_DIR / record["image"]).read_bytes()
        embedded[record["id"]] = data
        record["image"] = {"bytes": data, "path": record["image"]}
    catalog = tmp_path / "catalog" / "shop.parquet"
    catalog.parent.mkdir()
    pq.write_table(pa.Table.from_pylist(records), catalog)
    use_store(monkeypatch, tmp_path / "qdrant", tiny_model.info.name)
    code, _out, err = run_indexer(capsys, "index", catalog, "--collection", "shop")
    assert code == 0, err

    settings = Settings(model=tiny_model.info.name, qdrant_path=tmp_path / "qdrant")
    collection = open_shop(settings, tiny_model)
    try:
        demo = build_demo(tiny_model, collection, settings)
        with serving(demo, **launch_options(settings)) as url:
            client = Client(url, verbose=False, download_files=False)
            gallery, hits = client.predict("dress", limit=12, api_name="/text_search")
            assert len(hits) == 12
            for tile, hit in zip(gallery, hits, strict=True):
                with urllib.request.urlopen(tile["image"]["url"], timeout=30) as response:
                    assert response.read() == embedded[hit["id"]]  # the picture, not a placeholder
    finally:
        collection.close()

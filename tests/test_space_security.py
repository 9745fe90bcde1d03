"""What a stranger on the internet (or a catalog's odd rows) must not get from the app and
the indexer: files beside the catalog, minutes of CPU from one request, secrets in text."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pytest
from PIL import Image
from starlette.exceptions import HTTPException

from fashion_clip.errors import StoreError
from fashion_clip.settings import load_settings
from fashion_clip.tasks.classify import parse_labels
from space import handlers
from space.components import serve_in_place
from space.errors import user_errors
from space.filters import Facets, build_filter
from space.page import header_lines
from space.results import Pictures
from tests.image_corpus import jpeg_bytes, photo


def fetch(path: Path) -> object:
    """What Gradio's `/gradio_api/file=` route answers for `path` (its own code)."""
    from gradio.route_utils import file_fetch

    blocks = SimpleNamespace(blocked_paths=[], allowed_paths=[])
    request = SimpleNamespace(headers={})
    return file_fetch(str(path), request, blocks, "/nonexistent-upload-dir")


def test_the_catalog_folder_is_not_served_only_its_pictures(tmp_path):
    from gradio.data_classes import _StaticFiles

    # No --images: the root is the catalog's folder, e.g. the Space's own with its .env.
    folder = tmp_path / "space"
    (folder / "photos").mkdir(parents=True)
    (folder / ".env").write_text("HF_TOKEN=hf_secret\n")
    (folder / "products.csv").write_text("id,image\n1,photos/a.jpg\n")
    (folder / "photos" / "a.jpg").write_bytes(jpeg_bytes(photo(64, 48)))
    (folder / "photos" / "x.svg").write_text("<svg onload='alert(1)'/>")
    pictures = Pictures([folder], cache_dir=tmp_path / "cache")
    before = list(_StaticFiles.all_paths)
    try:
        serve_in_place(pictures.static_paths)
        for secret in (folder / ".env", folder / "products.csv"):
            with pytest.raises(HTTPException) as refused:
                fetch(secret)
            assert refused.value.status_code == 403
        shown = Path(pictures({"_image_source": str(folder / "photos" / "a.jpg")}))
        assert shown.name == "a.jpg" and shown.is_relative_to(tmp_path / "cache")
        assert shown.read_bytes() == (folder / "photos" / "a.jpg").read_bytes()
        assert fetch(shown).status_code == 200
        # A picture format that can carry script is never handed out as it is.
        svg = Path(pictures({"_image_source": str(folder / "photos" / "x.svg")}))
        assert svg.suffix != ".svg" and svg.is_relative_to(tmp_path / "cache")
    finally:
        _StaticFiles.all_paths[:] = before


def test_many_labels_are_read_in_linear_time(monkeypatch):
    """Counted, not timed: each label is lowercased once. Before, every label lowercased all
    the labels kept so far (20,000 labels: 200 million calls, ~18 s)."""
    import fashion_clip.tasks.classify as classify

    calls = [0]

    class Counted(str):
        def lower(self) -> str:
            calls[0] += 1
            return str.lower(self)

    read = classify.prompt_text
    monkeypatch.setattr(classify, "prompt_text", lambda item: Counted(read(item)))
    labels = [f"label {i}" for i in range(20_000)]
    assert len(parse_labels(labels)) == 20_000
    assert calls[0] <= 2 * len(labels)
    assert parse_labels(["Dress", "dress", "DRESS ", "shirt"]) == ["Dress", "shirt"]


def test_oversize_label_input_is_refused_before_any_work(monkeypatch):
    # No model and no image: refused before either is needed.
    backend = SimpleNamespace(threads={"vision": 1})
    pytest.importorskip("torch")  # imported by the handler's thread setting: not timed
    parsed = []
    read = handlers.read_labels
    monkeypatch.setattr(handlers, "read_labels", lambda value: parsed.append(value) or read(value))
    for labels, parses in (
        (", ".join(f"l{i}" for i in range(100_000)), False),  # ~700 KB of labels: not parsed
        ([f"l{i}" for i in range(100_000)], False),
        ("dress, " + "word " * 200, True),  # one label over the query length
    ):
        parsed.clear()
        with pytest.raises(gr.Error, match="characters long"):
            handlers.classify(backend, None, labels)
        assert bool(parsed) is parses


def test_example_ids_and_filter_values_are_capped_and_not_echoed():
    backend = SimpleNamespace(threads={"query": 1})
    for sent in (",".join(str(i) for i in range(50_000)), [str(i) for i in range(200)]):
        with pytest.raises(gr.Error) as refused:
            handlers.text_search(backend, "dress", like_ids=sent)
        assert len(refused.value.message) < 300
    facets = Facets(fields={"colour": "color"}, values={"colour": ["red", "blue"]})
    with pytest.raises(Exception) as refused:
        build_filter(facets, colours=[f"x{i}" for i in range(100_000)])
    assert "and 99990 more" in str(refused.value) and len(str(refused.value)) < 1_000


def test_store_trouble_is_not_told_to_callers(caplog):
    @user_errors
    def text_search() -> None:
        raise StoreError("Qdrant at https://secret-cluster.example.com:6333: could not search")

    with pytest.raises(gr.Error) as refused:
        text_search()
    assert "secret-cluster" not in refused.value.message
    assert "secret-cluster" in caplog.text  # the operator still reads it in the log


def test_secrets_stay_out_of_settings_repr_and_the_page():
    settings = load_settings(
        {
            "HF_TOKEN": "hf_tok",
            "QDRANT_URL": "https://admin:pw@qdrant.example.com:6333/?api_key=k1",
            "QDRANT_API_KEY": "qk_key",
            "AWS_SECRET_ACCESS_KEY": "aws_secret",
            "AWS_SESSION_TOKEN": "aws_session",
            "FASHION_CLIP_AUTH": "user:login_pw",
        }
    )
    text = repr(settings)
    for secret in ("hf_tok", "qk_key", "aws_secret", "aws_session", "login_pw"):
        assert secret not in text
    model = SimpleNamespace(info=SimpleNamespace(name="m", kind="clip", dim=4))
    collection = SimpleNamespace(name="shop", count=lambda: 3)
    _, details = header_lines(model, collection, settings)
    assert "qdrant.example.com:6333" in details
    assert "pw" not in details and "k1" not in details


def test_a_symlink_out_of_the_image_root_is_indexed_but_only_shown_as_a_thumbnail(tmp_path):
    """The indexer follows links in the image folder (`photos/2024 -> /mnt/disk2/2024` is a
    common layout); the app links and serves as they are only files really under the root."""
    from fashion_clip.ingest.sources import ImageRoot

    root, outside = tmp_path / "photos", tmp_path / "elsewhere"
    root.mkdir()
    outside.mkdir()
    Image.new("RGB", (40, 30), "red").save(outside / "far.jpg")
    os.symlink(outside, root / "shared")
    source = ImageRoot(str(root), str(root / "catalog.csv")).resolve("shared/far.jpg")
    assert source == str(root / "shared" / "far.jpg")
    shown = Path(Pictures([root], cache_dir=tmp_path / "cache")({"_image_source": source}))
    assert shown.is_relative_to(tmp_path / "cache")
    assert not shown.samefile(outside / "far.jpg")  # a thumbnail made from it, not a link

"""Gradio's cache sweep, replaced by one that survives uploads arriving while it runs.

First the race itself, made certain: a file is added to the swept set while a sweep removes
another (as an upload landing mid-sweep does). Gradio's own function fails there, ours goes
on. Then a live app with a sweep every second and uploads pouring in: every uploaded file
and its folder are gone once the uploads stop (in test_space_live.py).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import gradio as gr
import pytest

from space import cache_sweep


def cached_file(cache: Path, name: str) -> str:
    """A file laid out as Gradio caches one: in a folder of its own under the cache."""
    folder = cache / hashlib.sha256(name.encode()).hexdigest()[:20]
    folder.mkdir(parents=True)
    (folder / name).write_bytes(b"picture bytes")
    return str(folder / name)


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    return tmp_path / "gradio"


def app_with(files: list[str]) -> gr.Blocks:
    with gr.Blocks() as blocks:
        gr.Textbox()
    blocks.upload_file_set.update(files)
    return blocks


def upload_during_the_next_removal(monkeypatch, blocks: gr.Blocks, cache: Path) -> list[str]:
    """After the sweep's first removal, a new upload joins the set it is going through."""
    arrived: list[str] = []
    remove = os.remove

    def remove_then_upload(path, *args, **kwargs):
        remove(path, *args, **kwargs)
        if not arrived:
            arrived.append(cached_file(cache, "arrived-mid-sweep.jpg"))
            blocks.upload_file_set.add(arrived[0])

    monkeypatch.setattr(os, "remove", remove_then_upload)
    return arrived


def test_gradios_own_sweep_fails_when_an_upload_arrives_during_it(cache, monkeypatch):
    """Why the replacement exists. If this fails, Gradio fixed it: drop `cache_sweep`."""
    assert cache_sweep.install()
    blocks = app_with([cached_file(cache, f"old-{i}.jpg") for i in range(3)])
    upload_during_the_next_removal(monkeypatch, blocks, cache)
    with pytest.raises(RuntimeError, match="Set changed size during iteration"):
        cache_sweep.gradio_sweep(blocks, 0)


def test_our_sweep_goes_on_and_removes_the_folders_it_empties(cache, monkeypatch):
    old = [cached_file(cache, f"old-{i}.jpg") for i in range(3)]
    kept = cached_file(cache, "kept.jpg")
    blocks = app_with([*old, kept])
    component = next(iter(blocks.blocks.values()))
    component.keep_in_cache.add(kept)  # what Gradio marks as never to delete
    arrived = upload_during_the_next_removal(monkeypatch, blocks, cache)

    cache_sweep.sweep(blocks, 0)
    assert not any(Path(f).exists() or Path(f).parent.exists() for f in old)
    assert Path(arrived[0]).is_file() and Path(kept).is_file()
    assert blocks.upload_file_set == {arrived[0], kept}

    cache_sweep.sweep(blocks, 0)  # the next sweep takes the newcomer, and the cache stays
    assert blocks.upload_file_set == {kept}
    assert sorted(cache.iterdir()) == [Path(kept).parent]

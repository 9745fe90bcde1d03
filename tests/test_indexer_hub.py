"""`hf://datasets/…` catalogs through huggingface_hub's own cache, offline: a dataset laid out
in the cache as the hub writes it (refs, blobs, snapshots of links), split into shards."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.image_corpus import jpeg_bytes, photo
from tests.indexer_fixtures import REPO, points

COMMIT = "c0ffee" + "0" * 34


def rows(start: int, n: int, split: str) -> list[dict]:
    return [
        {
            "id": f"{split}-{i}",
            "image": {"bytes": jpeg_bytes(photo(48, 40, seed=i)), "path": f"{i}.jpg"},
            "caption": f"{split} item {i}",
            "category": ["dress", "shirt"][i % 2],
        }
        for i in range(start, start + n)
    ]


def cache_dataset(cache: Path, repo_id: str, files: dict[str, list[dict]]) -> None:
    """Place `files` (path in the repo -> rows) in `cache` the way the hub's downloads do:
    the content in blobs/ named by its hash, the snapshot's files linking to it."""
    repo = cache / f"datasets--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    (repo / "blobs").mkdir()
    for name, content in files.items():
        sink = pa.BufferOutputStream()
        pq.write_table(pa.Table.from_pylist(content), sink)
        data = sink.getvalue().to_pybytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        link = repo / "snapshots" / COMMIT / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))


def indexer(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "indexer", *argv],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


@pytest.fixture
def hub_env(tmp_path, tiny_model_dir):
    cache = tmp_path / "hub-cache"
    cache_dataset(
        cache,
        "acme/shop",
        {
            "data/train-00000-of-00002.parquet": rows(0, 5, "train"),
            "data/train-00001-of-00002.parquet": rows(5, 4, "train"),
            "data/test-00000-of-00001.parquet": rows(0, 3, "test"),
        },
    )
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("QDRANT_", "FASHION_CLIP_", "HF_", "AWS_"))
    }
    env |= {
        "HF_HUB_CACHE": str(cache),
        "HF_HUB_OFFLINE": "1",
        "QDRANT_PATH": str(tmp_path / "qdrant"),
        "FASHION_CLIP_MODEL": str(tiny_model_dir),
    }
    return env, tmp_path


def test_a_cached_dataset_indexes_offline_split_by_split(hub_env):
    env, tmp_path = hub_env
    done = indexer(env, "index", "hf://datasets/acme/shop", "--collection", "shop")
    assert done.returncode == 0, done.stderr
    assert "indexed 9, unchanged 0, skipped 0" in done.stdout  # both shards of train
    assert sorted(points(tmp_path / "qdrant", "shop")) == sorted(f"train-{i}" for i in range(9))

    done = indexer(env, "index", "hf://datasets/acme/shop", "--split", "test", "--collection", "t")
    assert done.returncode == 0 and "indexed 3" in done.stdout, done.stderr

    one = "hf://datasets/acme/shop/data/test-00000-of-00001.parquet"
    done = indexer(env, "index", one, "--collection", "t")
    assert done.returncode == 0 and "unchanged 3" in done.stdout, done.stderr

    done = indexer(
        env, "evaluate", "hf://datasets/acme/shop", "--collection", "shop",
        "--label-column", "category", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["queries"] == 9


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["hf://datasets/acme/absent"], "not in the Hugging Face cache"),
        (["hf://datasets/acme/shop", "--split", "validation"], "no split 'validation'"),
        (["hf://datasets/acme", "--collection", "x"], "hf://datasets/OWNER/NAME"),
        (["shop.csv", "--split", "train"], "hf:// catalogs only"),
    ],
)
def test_what_cannot_be_had_is_one_message(hub_env, argv, expected):
    env, tmp_path = hub_env
    (tmp_path / "shop.csv").write_text("id,image\n1,a.jpg\n")
    done = subprocess.run(
        [sys.executable, "-m", "indexer", "index", *argv, "--collection", "x"],
        cwd=tmp_path, env=env | {"PYTHONPATH": str(REPO)}, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], done.stderr


def test_an_unreachable_hub_with_nothing_cached_is_one_message(hub_env):
    env, _ = hub_env
    env = env | {"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9"}  # a closed port
    done = indexer(env, "index", "hf://datasets/acme/elsewhere", "--collection", "x")
    assert done.returncode == 2
    assert "cannot be reached" in done.stderr or "cannot fetch it" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_private_dataset_file_downloads_with_hf_token(hub_env, tmp_path):
    """Through a local hub (real huggingface_hub requests): refused without the token,
    downloaded into the cache and indexed with it."""
    from tests.local_hub import LocalHub

    env, _ = hub_env
    folder = tmp_path / "private-repo"
    (folder / "data").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows(0, 3, "p")), folder / "data" / "p.parquet")
    location = "hf://datasets/acme/private-shop/data/p.parquet"
    with LocalHub() as hub:
        hub.add("datasets/acme/private-shop", folder, token="hf_secret")
        online = env | {"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": hub.url}
        refused = indexer(online, "index", location, "--collection", "p")
        assert refused.returncode == 2
        assert "private (set HF_TOKEN)" in refused.stderr, refused.stderr
        done = indexer(online | {"HF_TOKEN": "hf_secret"}, "index", location, "--collection", "p")
        assert done.returncode == 0 and "indexed 3" in done.stdout, done.stderr
        assert "hf_secret" not in refused.stderr + done.stderr + done.stdout
        assert any(auth == "Bearer hf_secret" for _, _, auth in hub.requests)

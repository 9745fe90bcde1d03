"""Loading by hub id, public and private, through a local hub (real huggingface_hub calls)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.local_hub import LocalHub

ROOT = Path(__file__).resolve().parents[1]

# huggingface_hub reads HF_ENDPOINT at import time, so each load runs in its own process.
LOAD = """
import json, sys
from fashion_clip.model.clip import ClipModel
from fashion_clip.errors import ModelLoadError, ModelUnavailableError
name, token = sys.argv[1], (sys.argv[2] or None)
try:
    model = ClipModel.load(name, token=token)
    print(json.dumps({"ok": True, "name": model.info.name, "revision": model.info.revision,
                      "dim": model.dim, "vector": model.encode_text(["red dress"])[0].tolist()}))
except (ModelLoadError, ModelUnavailableError) as exc:
    print(json.dumps({"ok": False, "error": type(exc).__name__, "message": str(exc)}))
"""


def _load(hub_url: str, cache: Path, name: str, token: str | None = None) -> dict:
    env = {
        **os.environ,
        "HF_ENDPOINT": hub_url,
        "HF_HUB_CACHE": str(cache),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("HF_TOKEN", None)
    env.pop("HF_HUB_OFFLINE", None)
    done = subprocess.run(
        [sys.executable, "-c", LOAD, name, token or ""],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def hub(tiny_model_dir: Path):
    with LocalHub() as local:
        local.add("acme/tiny-clip", tiny_model_dir)
        local.add("acme/private-clip", tiny_model_dir, token="hf_secret")
        yield local


def test_public_hub_id_loads_and_is_cached(hub: LocalHub, tmp_path: Path) -> None:
    loaded = _load(hub.url, tmp_path, "acme/tiny-clip")
    assert loaded["ok"], loaded
    assert loaded["name"] == "acme/tiny-clip"
    assert loaded["revision"] == hub.repos["acme/tiny-clip"].commit
    assert loaded["dim"] == 16
    # Later, with the hub unreachable, the cached copy loads without a network round trip.
    again = _load("http://127.0.0.1:9", tmp_path, "acme/tiny-clip")
    assert again["ok"], again
    assert again["vector"] == pytest.approx(loaded["vector"], abs=1e-6)


def test_private_repo_needs_the_token(hub: LocalHub, tmp_path: Path) -> None:
    refused = _load(hub.url, tmp_path / "a", "acme/private-clip")
    assert not refused["ok"]
    assert refused["error"] == "ModelLoadError"
    assert "acme/private-clip" in refused["message"] and "HF_TOKEN" in refused["message"]

    loaded = _load(hub.url, tmp_path / "b", "acme/private-clip", token="hf_secret")
    assert loaded["ok"], loaded
    assert ("GET", "/acme/private-clip/resolve/main/config.json", "Bearer hf_secret") in [
        (method, path, auth) for method, path, auth in hub.requests
    ]


def test_unknown_repo_is_named(hub: LocalHub, tmp_path: Path) -> None:
    missing = _load(hub.url, tmp_path, "acme/no-such-model")
    assert not missing["ok"]
    assert "acme/no-such-model" in missing["message"]
    assert "not found" in missing["message"]


def test_offline_hub_gives_model_unavailable(tmp_path: Path) -> None:
    result = _load("http://127.0.0.1:9", tmp_path, "fashion-clip")
    assert result["error"] == "ModelUnavailableError"
    assert "patrickjohncyh/fashion-clip" in result["message"]

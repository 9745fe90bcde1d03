"""Settings: environment, `.env` file (the real environment wins), aliases and checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from fashion_clip.errors import ConfigurationError
from fashion_clip.settings import DEFAULT_MODEL, default_qdrant_path, load_settings


def test_defaults_from_an_empty_environment() -> None:
    settings = load_settings({})
    assert settings.model == DEFAULT_MODEL
    assert settings.qdrant_url is None and not settings.uses_remote_store
    assert settings.collection is None and settings.auth is None and settings.hf_token is None
    assert settings.text_precision is None  # each entry point's own default


def test_every_variable_is_read() -> None:
    settings = load_settings(
        {
            "FASHION_CLIP_MODEL": "demo",
            "HF_TOKEN": "hf_x",
            "QDRANT_URL": "http://qdrant:6333",
            "QDRANT_API_KEY": "key",
            "QDRANT_PATH": "/tmp/q",
            "FASHION_CLIP_COLLECTION": "shop",
            "AWS_ACCESS_KEY_ID": "id",
            "AWS_SECRET_KEY": "secret",  # the original project's name
            "AWS_DEFAULT_REGION": "eu-west-1",
            "AWS_ENDPOINT_URL": "http://127.0.0.1:9000",
            "FASHION_CLIP_AUTH": "ada:pass:word",
            "FASHION_CLIP_SNAPSHOTS": "s3://b/snaps",
            "FASHION_CLIP_TEXT_PRECISION": "INT8",
        }
    )
    assert settings.model == "demo" and settings.hf_token == "hf_x"
    assert settings.uses_remote_store and settings.qdrant_api_key == "key"
    assert settings.qdrant_path == Path("/tmp/q") and settings.collection == "shop"
    assert settings.aws_secret_access_key == "secret"
    assert settings.aws_region == "eu-west-1" and settings.aws_endpoint_url.endswith(":9000")
    assert settings.auth == ("ada", "pass:word")  # only the first colon separates
    assert settings.snapshots == "s3://b/snaps"
    assert settings.text_precision == "int8"


def test_dotenv_is_read_and_the_real_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("FASHION_CLIP_MODEL=demo\nFASHION_CLIP_COLLECTION=from-file\n")
    monkeypatch.delenv("FASHION_CLIP_MODEL", raising=False)
    monkeypatch.setenv("FASHION_CLIP_COLLECTION", "from-env")
    settings = load_settings(dotenv_path=dotenv)
    assert settings.model == "demo"
    assert settings.collection == "from-env"


def test_bad_auth_is_refused_with_the_expected_shape() -> None:
    with pytest.raises(ConfigurationError, match="user:password"):
        load_settings({"FASHION_CLIP_AUTH": "no-colon"})


def test_spaces_persistent_storage_is_used_when_present(tmp_path: Path) -> None:
    assert default_qdrant_path(tmp_path) == tmp_path / "qdrant"
    assert default_qdrant_path(tmp_path / "absent") == Path("data/qdrant")


def test_an_unknown_text_precision_names_the_variable() -> None:
    with pytest.raises(ConfigurationError, match="FASHION_CLIP_TEXT_PRECISION='int4'.*int8"):
        load_settings({"FASHION_CLIP_TEXT_PRECISION": "int4"})

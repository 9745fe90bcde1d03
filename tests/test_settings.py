"""Settings: environment, `.env` file (the real environment wins), aliases and checks."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from fashion_clip.errors import ConfigurationError
from fashion_clip.media import s3
from fashion_clip.settings import DEFAULT_MODEL, default_qdrant_path, load_settings

AWS_VARIABLES = (
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SECRET_KEY",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_PROFILE",
)


def test_defaults_from_an_empty_environment() -> None:
    settings = load_settings({})
    assert settings.model == DEFAULT_MODEL
    assert settings.qdrant_url is None and not settings.uses_remote_store
    assert settings.collection is None and settings.auth is None and settings.hf_token is None
    assert settings.text_precision is None  # each entry point's own default
    assert settings.share is False
    assert settings.allow_private_urls is False  # a public Space fetches public URLs only


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
            "FASHION_CLIP_SHARE": "Yes",
            "FASHION_CLIP_ALLOW_PRIVATE_URLS": "1",
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
    assert settings.share is True and settings.allow_private_urls is True
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


def test_an_alias_in_the_environment_beats_the_main_name_in_dotenv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text(
        "AWS_SECRET_ACCESS_KEY=from-file\nAWS_DEFAULT_REGION=eu-west-1\nQDRANT_URL=http://file\n"
    )
    for name in ("AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SECRET_KEY", "from-env")
    monkeypatch.setenv("AWS_REGION", "us-west-2")
    monkeypatch.setenv("QDRANT_URL", "  ")  # set but blank in the environment: unset, and final
    settings = load_settings(dotenv_path=dotenv)
    assert (settings.aws_secret_access_key, settings.aws_region) == ("from-env", "us-west-2")
    assert settings.qdrant_url is None


def test_bad_auth_is_refused_with_the_expected_shape() -> None:
    with pytest.raises(ConfigurationError, match="user:password"):
        load_settings({"FASHION_CLIP_AUTH": "no-colon"})


def test_spaces_persistent_storage_is_used_when_present(tmp_path: Path) -> None:
    assert default_qdrant_path(tmp_path) == tmp_path / "qdrant"
    assert default_qdrant_path(tmp_path / "absent") == Path("data/qdrant")


def test_an_unknown_text_precision_names_the_variable() -> None:
    with pytest.raises(ConfigurationError, match="FASHION_CLIP_TEXT_PRECISION='int4'.*int8"):
        load_settings({"FASHION_CLIP_TEXT_PRECISION": "int4"})


def test_s3_is_configured_from_the_dotenv_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, s3_endpoint: str
) -> None:
    # Nothing in the real environment: the endpoint and the keys (the secret under its alias)
    # come from the working directory's .env only, as for every other setting.
    for name in AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    (tmp_path / ".env").write_text(
        f"AWS_ENDPOINT_URL={s3_endpoint}\nAWS_ACCESS_KEY_ID=testing\nAWS_SECRET_KEY=testing\n"
        "AWS_REGION=eu-west-1\n"
    )
    monkeypatch.chdir(tmp_path)

    bucket = f"dotenv-{uuid.uuid4().hex[:10]}"
    client = s3.s3_client()
    assert client.meta.endpoint_url == s3_endpoint and client.meta.region_name == "eu-west-1"
    client.create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    (tmp_path / "item.txt").write_bytes(b"read through .env")
    s3.upload_file(tmp_path / "item.txt", f"s3://{bucket}/item.txt")
    assert s3.exists(f"s3://{bucket}/item.txt")
    assert s3.read_bytes(f"s3://{bucket}/item.txt") == b"read through .env"


def test_s3_client_follows_the_settings_it_is_given() -> None:
    settings = load_settings({"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_REGION": "eu-west-3"})
    client = s3.s3_client(settings)
    assert client.meta.endpoint_url == "http://127.0.0.1:9"
    assert client.meta.region_name == "eu-west-3"
    assert s3.s3_client(load_settings({})).meta.region_name == "us-east-1"
    # Temporary (STS) credentials: the token goes with the keys, which otherwise hide it.
    temporary = {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "AWS_SESSION_TOKEN": "t"}
    credentials = s3.s3_client(load_settings(temporary))._request_signer._credentials
    assert (credentials.access_key, credentials.token) == ("k", "t")

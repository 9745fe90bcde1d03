"""Settings: the one place that reads the environment and the `.env` file.

The real environment wins over `.env` (python-dotenv with override=False). Nothing is read at
import time; call `load_settings()` where the settings are needed and pass them in.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from dotenv import dotenv_values

from fashion_clip.errors import ConfigurationError
from fashion_clip.redact import public_url

DEFAULT_MODEL = "patrickjohncyh/fashion-clip"
DEFAULT_COLLECTION = "demo"
MODEL_ALIASES = {"fashion-clip": DEFAULT_MODEL, "fashionclip": DEFAULT_MODEL}
TEXT_PRECISIONS = ("auto", "fast", "fp32", "bf16", "int8")  # see ClipModel.load
PYTHON_TEXT_PRECISION = "auto"  # the Python API's default, as the README lists it
IMAGE_PRECISIONS = ("auto", "fp32", "bf16", "int8")  # see ClipModel.load's `quantize`


@dataclass(frozen=True, repr=False)
class Settings:
    """Everything the app, the indexer and the Python API read from the environment.

    Secrets (tokens, keys, the login) are left out of its repr, so a settings object in a
    log line, a traceback or a test failure does not print them; `qdrant_url` shows only
    its scheme, host and port (a `user:password@` or `?api_key=` in it stays hidden).
    """

    model: str = DEFAULT_MODEL
    hf_token: str | None = field(default=None, repr=False)
    qdrant_url: str | None = field(default=None, repr=False)  # shown redacted, see __repr__
    qdrant_api_key: str | None = field(default=None, repr=False)
    qdrant_path: Path = Path("data/qdrant")
    collection: str | None = None  # None: the last indexed catalog's (`ingest.choice`), else "demo"
    aws_access_key_id: str | None = field(default=None, repr=False)
    aws_secret_access_key: str | None = field(default=None, repr=False)
    # temporary (STS) credentials come with one
    aws_session_token: str | None = field(default=None, repr=False)
    aws_region: str | None = None
    aws_endpoint_url: str | None = None
    auth: tuple[str, str] | None = field(default=None, repr=False)
    share: bool = False  # the app also opens a public Gradio share link
    # The app's image URL box may fetch hosts on private networks and this machine (off: a
    # public Space must not be a way into the network it runs in; see fashion_clip.media.web).
    allow_private_urls: bool = False
    device: str | None = None  # None: cuda, then mps, then cpu
    snapshots: str | None = None  # folder or s3:// prefix of precomputed dataset snapshots
    # The query (text) tower: auto, fast, fp32, bf16 or int8. None: the caller's default
    # (the library and the indexer: auto or fp32; the Space: fast).
    text_precision: str | None = None
    # The image tower: auto (bf16 on CPUs with native bf16, else fp32), fp32, bf16 or int8.
    # None: auto, unless the caller says otherwise (`--quantize`).
    image_precision: str | None = None

    @property
    def uses_remote_store(self) -> bool:
        return bool(self.qdrant_url)

    def __repr__(self) -> str:
        shown = [f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if f.repr]
        if self.qdrant_url:
            shown.insert(1, f"qdrant_url={public_url(self.qdrant_url)!r}")
        return f"Settings({', '.join(shown)})"


def default_qdrant_path(data_volume: Path = Path("/data")) -> Path:
    """`/data/qdrant` where a Spaces persistent volume is mounted, else `data/qdrant`."""
    if data_volume.is_dir() and os.access(data_volume, os.W_OK):
        return data_volume / "qdrant"
    return Path("data/qdrant")


def load_settings(
    env: Mapping[str, str] | None = None, dotenv_path: str | os.PathLike[str] | None = ".env"
) -> Settings:
    """Read settings from `env` (default: `os.environ` merged over the `.env` file).

    With an explicit `env` mapping nothing else is consulted, which keeps tests hermetic.
    """
    sources: list[Mapping[str, str | None]] = [os.environ] if env is None else [env]
    if env is None and dotenv_path is not None and Path(dotenv_path).is_file():
        sources.append(dotenv_values(dotenv_path))  # after: the real environment wins

    def get(*names: str) -> str | None:
        """The first source that sets any of `names` (a setting and its aliases) decides,
        so an alias in the environment beats the main name in `.env`; set but blank is
        unset, and still decides."""
        for source in sources:
            present = [source[name] for name in names if name in source]
            if present:
                return next((v.strip() for v in present if v and v.strip()), None)
        return None

    auth = None
    if raw_auth := get("FASHION_CLIP_AUTH"):
        user, sep, password = raw_auth.partition(":")
        if not sep or not user or not password:
            raise ConfigurationError("FASHION_CLIP_AUTH must look like user:password")
        auth = (user, password)

    # Checked here so the message names the variable, not a load() argument.
    text_precision = _choice("FASHION_CLIP_TEXT_PRECISION", get, TEXT_PRECISIONS)
    image_precision = _choice("FASHION_CLIP_IMAGE_PRECISION", get, IMAGE_PRECISIONS)

    qdrant_path = get("QDRANT_PATH")
    return Settings(
        model=get("FASHION_CLIP_MODEL") or DEFAULT_MODEL,
        hf_token=get("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"),
        qdrant_url=get("QDRANT_URL"),
        qdrant_api_key=get("QDRANT_API_KEY"),
        qdrant_path=Path(qdrant_path) if qdrant_path else default_qdrant_path(),
        collection=get("FASHION_CLIP_COLLECTION"),
        aws_access_key_id=get("AWS_ACCESS_KEY_ID"),
        # AWS_SECRET_KEY is the original fashion-clip project's name for the same secret.
        aws_secret_access_key=get("AWS_SECRET_ACCESS_KEY", "AWS_SECRET_KEY"),
        aws_session_token=get("AWS_SESSION_TOKEN"),
        aws_region=get("AWS_DEFAULT_REGION", "AWS_REGION"),
        aws_endpoint_url=get("AWS_ENDPOINT_URL"),
        auth=auth,
        share=_is_on(get("FASHION_CLIP_SHARE")),
        allow_private_urls=_is_on(get("FASHION_CLIP_ALLOW_PRIVATE_URLS")),
        device=get("FASHION_CLIP_DEVICE"),
        snapshots=get("FASHION_CLIP_SNAPSHOTS"),
        text_precision=text_precision,
        image_precision=image_precision,
    )


def _choice(name: str, get: Callable[[str], str | None], choices: tuple[str, ...]) -> str | None:
    """Setting `name`, lowercased, if set; one outside `choices` is refused, naming it."""
    value = (get(name) or "").lower() or None
    if value is not None and value not in choices:
        raise ConfigurationError(
            f"{name}={value!r} is not supported; use one of " + ", ".join(choices)
        )
    return value


def _is_on(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes", "on")


def resolve_model_name(name: str) -> str:
    """Map the short aliases (`fashion-clip`) to hub ids; other names pass through."""
    return MODEL_ALIASES.get(name.strip().lower(), name.strip())

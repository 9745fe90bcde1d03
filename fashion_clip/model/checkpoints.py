"""Finding and loading a checkpoint's parts: hub ids, local folders, `demo`, `fashion-clip`.

Errors are turned into ones users can act on (not found or private, gated, offline, no
tokenizer, a preprocessor for another resolution), and each model gets the revision the
store records: the hub's commit, or a digest of a local folder.
"""

from __future__ import annotations

import hashlib
import os
import socket
import urllib.parse
from pathlib import Path
from typing import Any

from fashion_clip.demo import DEMO_MODEL_DIR
from fashion_clip.errors import ModelLoadError, ModelUnavailableError
from fashion_clip.model.preprocess import ImagePreprocessor
from fashion_clip.settings import resolve_model_name

LOCAL_REVISION_PREFIX = "files:"  # a local model folder's revision: a digest of its files

SUPPORTED_TYPES = ("clip", "siglip")
# Families that load in transformers but cannot run here, and why, to say so by name.
REFUSED_TYPES = {
    "siglip2": (
        "SigLIP 2 (NaFlex) checkpoint: its vision tower takes variable-resolution patch "
        "sequences with pixel_attention_mask and spatial_shapes, which this project's "
        "fixed-size preprocessing, localization and indexer do not produce"
    ),
}
KNOWN_NAMES = (
    "'fashion-clip', 'demo', a Hugging Face id such as 'openai/clip-vit-base-patch32', "
    "or a local folder"
)


def resolve_source(name: str | os.PathLike[str]) -> tuple[str, bool]:
    """Name -> (what `from_pretrained` gets, whether it is a local folder)."""
    if not isinstance(name, (str, os.PathLike)):
        raise ModelLoadError(
            f"model name must be text, got {type(name).__name__} {name!r}; use {KNOWN_NAMES}"
        )
    resolved = resolve_model_name(os.fspath(name))
    if not resolved:
        raise ModelLoadError(f"no model name given; use {KNOWN_NAMES}")
    if resolved.lower() == "demo":
        return str(DEMO_MODEL_DIR), True
    path = Path(resolved).expanduser()
    if path.is_dir():
        return str(path), True
    # A hub id is "name" or "owner/name"; anything else that looks like a path is a folder.
    if resolved.startswith((".", "/", "~")) or resolved.rstrip("/").count("/") > 1:
        raise ModelLoadError(f"model folder {resolved!r} does not exist")
    return resolved, False


def load_parts(
    source: str, display: str, *, is_local: bool, token: str | None, revision: str | None
) -> tuple[Any, Any, Any, dict[str, Any]]:
    """Config, weights, tokenizer and preprocessor config, with errors users can act on."""
    if is_local:
        return _from_pretrained(source, display, token=None, revision=None, local_only=True)
    try:  # the cache first: no network round trip (and no 30 s of retries when offline)
        return _from_pretrained(source, display, token=token, revision=revision, local_only=True)
    except ModelUnavailableError:
        pass
    if _hub_offline():
        raise ModelUnavailableError(
            f"model {display!r} is not in the local cache and the Hugging Face hub "
            f"({_hub_endpoint()}) cannot be reached; use a local folder or 'demo'"
        )
    return _from_pretrained(source, display, token=token, revision=revision, local_only=False)


def _from_pretrained(
    source: str, display: str, *, token: str | None, revision: str | None, local_only: bool
) -> tuple[Any, Any, Any, dict[str, Any]]:
    # deferred: transformers is heavy
    from transformers import (
        AutoConfig,
        AutoTokenizer,
        CLIPModel,
        ImageProcessingMixin,
        SiglipModel,
    )

    kwargs: dict[str, Any] = {"token": token, "local_files_only": local_only}
    if revision:
        kwargs["revision"] = revision
    try:
        config = AutoConfig.from_pretrained(source, **kwargs)
        _check_family(display, config.model_type)
        model_class = CLIPModel if config.model_type == "clip" else SiglipModel
        torch_model = model_class.from_pretrained(source, config=config, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
        processor_config, _ = ImageProcessingMixin.get_image_processor_dict(source, **kwargs)
    except ModelLoadError:
        raise
    except Exception as exc:  # hub, filesystem and format errors come in many classes
        raise _explain_load_error(display, exc, local_only=local_only) from exc
    return config, torch_model, tokenizer, processor_config


def _check_family(display: str, model_type: str) -> None:
    """Refuse, before loading any weights, a family this project cannot run, by name."""
    supported = f"supported: CLIP and SigLIP checkpoints ({', '.join(SUPPORTED_TYPES)})"
    if model_type in REFUSED_TYPES:
        raise ModelLoadError(f"model {display!r} is a {REFUSED_TYPES[model_type]}; {supported}")
    if model_type not in SUPPORTED_TYPES:
        raise ModelLoadError(f"model {display!r} is a {model_type!r} model; {supported}")


def check_parts(display: str, config: Any, tokenizer: Any, preprocessor: ImagePreprocessor) -> None:
    """Refuse parts that load without error but cannot work together.

    Both cases below load silently in transformers and fail (or go wrong) only later: a
    folder without tokenizer files gets a tokenizer of special tokens alone, so every text
    embeds alike; a preprocessor config for another resolution fails on the first image.
    """
    special = set(getattr(tokenizer, "all_special_tokens", ()))
    if not set(tokenizer.get_vocab()) - special:
        raise ModelLoadError(
            f"model {display!r} has no usable tokenizer: its tokenizer files are missing "
            "(tokenizer.json, or vocab.json and merges.txt, or a sentencepiece model); "
            "save the tokenizer next to the weights (tokenizer.save_pretrained(folder))"
        )
    size = getattr(config.vision_config, "image_size", None)
    if size is not None:
        expected = (int(size), int(size)) if isinstance(size, int) else tuple(size)
        if preprocessor.output_size != expected:
            height, width = preprocessor.output_size
            raise ModelLoadError(
                f"model {display!r}: preprocessor_config.json makes {height}x{width} images, "
                f"but the vision model takes {expected[0]}x{expected[1]}; fix its size / "
                "crop_size to match the model's vision_config.image_size"
            )


def _explain_load_error(display: str, exc: Exception, *, local_only: bool) -> ModelLoadError:
    text = f"{type(exc).__name__}: {exc}"
    lowered = text.lower()
    if "gated" in lowered or "403" in lowered:
        return ModelLoadError(
            f"no access to model {display!r}: it is gated; accept its terms on the hub and "
            "set HF_TOKEN (or pass auth_token=) to a token of that account"
        )
    if (
        "repositorynotfound" in lowered
        or "is not a valid model identifier" in lowered
        or "401" in lowered
    ):
        # The hub answers 401 alike for a missing repo and for a private one without a token.
        return ModelLoadError(
            f"model {display!r} not found on the hub, or it is private: check the name "
            f"(use {KNOWN_NAMES}) or set HF_TOKEN (auth_token=) to a token that can read it"
        )
    if local_only and (
        "localentrynotfound" in lowered or "cached files" in lowered or "offline" in lowered
    ):
        return ModelUnavailableError(f"model {display!r} is not in the local cache")
    if "couldn't connect" in lowered or "connection" in lowered or "resolve" in lowered:
        return ModelUnavailableError(f"model {display!r} cannot be fetched: {exc}")
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return ModelLoadError(f"model {display!r} could not be loaded: {first_line}")


def local_revision(source: str, display: str) -> str:
    """What identifies a local folder's model wherever it lies and however it is spelled.

    The demo's digest covers all its weights (it ships with the code and changes when it is
    retrained, while collections built with it persist on a Space's /data volume). Another
    folder is not hashed whole, which would read gigabytes at every start: its digest
    covers its config, its files' sizes and samples spread through each weights file, which
    any retraining changes. The store's guard takes an equal revision for the same model, so
    "./my-model", "../my-model" and a copy on the machine a snapshot is pulled to all match.
    """
    folder = Path(source)
    if display.lower() == "demo":
        digest = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
        return f"sha256:{digest[:12]}"
    hasher = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        if path.name == "config.json":
            hasher.update(path.read_bytes())
        elif path.suffix in _WEIGHT_SUFFIXES and path.is_file():
            hasher.update(f"{path.name}:{path.stat().st_size}".encode())
            hasher.update(_samples(path))
    return f"{LOCAL_REVISION_PREFIX}{hasher.hexdigest()[:12]}"


_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
_SAMPLE_BYTES, _SAMPLES = 1 << 16, 32  # 2 MB read per weights file, whatever its size


def _samples(path: Path) -> bytes:
    """`_SAMPLES` chunks at evenly spaced offsets, the first at the start, the last at the end."""
    size = path.stat().st_size
    step = max(0, size - _SAMPLE_BYTES) / (_SAMPLES - 1)
    with open(path, "rb") as f:
        chunks = []
        for i in range(_SAMPLES):
            f.seek(int(i * step))
            chunks.append(f.read(_SAMPLE_BYTES))
    return b"".join(chunks)


def cached_commit(repo_id: str, revision: str | None) -> str | None:
    """The commit hash of the hub snapshot just loaded (its cache folder is named by it)."""
    # deferred: it reads the HF_HUB_* settings once, at import
    from huggingface_hub import try_to_load_from_cache

    path = try_to_load_from_cache(repo_id, "config.json", revision=revision)
    return Path(path).parent.name if isinstance(path, str) else None


def _hub_endpoint() -> str:
    # deferred: it reads the HF_HUB_* settings once, at import
    from huggingface_hub import constants

    return constants.ENDPOINT


def _hub_offline(timeout_s: float = 3.0) -> bool:
    """True when offline mode is set or the hub's host does not answer within `timeout_s`."""
    # deferred: it reads the HF_HUB_* settings once, at import
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return True
    parsed = urllib.parse.urlparse(constants.ENDPOINT)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname or "", port), timeout=timeout_s):
            return False
    except OSError:
        return True


def is_content_digest(revision: str | None) -> bool:
    """Whether `revision` is a local model folder's digest of its files: the same digest is
    the same model, whatever path or name the folder was given as."""
    return bool(revision and revision.startswith(LOCAL_REVISION_PREFIX))

"""The model: any CLIP-family checkpoint through `transformers` (the one module importing it).

`ClipModel.load(name)` takes a Hugging Face hub id (public or private), a local folder,
`fashion-clip` (alias of `patrickjohncyh/fashion-clip`) or `demo` (the bundled model), and
gives back an object that turns pixel batches and texts into float32 `(n, dim)` embeddings.
CLIP checkpoints load as `CLIPModel` (softmax scores), SigLIP ones as `SiglipModel`
(sigmoid scores); the rest of the project never needs to know which.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fashion_clip.embed import check_count
from fashion_clip.errors import ConfigurationError, ModelLoadError, ModelUnavailableError
from fashion_clip.preprocess import ImagePreprocessor
from fashion_clip.settings import TEXT_PRECISIONS, resolve_model_name
from fashion_clip.store.meta import LOCAL_REVISION_PREFIX

log = logging.getLogger(__name__)

SUPPORTED_TYPES = ("clip", "siglip", "siglip2")
KNOWN_NAMES = (
    "'fashion-clip', 'demo', a Hugging Face id such as 'openai/clip-vit-base-patch32', "
    "or a local folder"
)


@dataclass(frozen=True)
class ModelInfo:
    """What a vector collection records about the model that filled it."""

    name: str  # as the user gave it, aliases resolved ("demo", a hub id or a folder)
    revision: str | None  # hub commit hash where known; the bundled demo: its weights digest
    kind: str  # "clip" or "siglip"
    dim: int


def select_device(preferred: str | None = None) -> str:
    """`preferred` if given, else cuda, then Apple's mps, then cpu."""
    import torch

    if preferred:
        try:
            kind = torch.device(preferred).type
        except (RuntimeError, TypeError, ValueError):
            raise ConfigurationError(
                f"device {preferred!r} is not a torch device; use 'cpu', 'cuda', 'cuda:1' "
                "or 'mps' (or leave it unset for the best available)"
            ) from None
        if kind == "cuda" and not torch.cuda.is_available():
            raise ConfigurationError(f"device {preferred!r} asked for, but CUDA is not available")
        if kind == "mps" and not _mps_available():
            raise ConfigurationError(f"device {preferred!r} asked for, but MPS is not available")
        return preferred
    if torch.cuda.is_available():
        return "cuda"
    if _mps_available():
        return "mps"
    return "cpu"


def _mps_available() -> bool:
    import torch

    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


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
        from fashion_clip.demo import DEMO_MODEL_DIR

        return str(DEMO_MODEL_DIR), True
    path = Path(resolved).expanduser()
    if path.is_dir():
        return str(path), True
    # A hub id is "name" or "owner/name"; anything else that looks like a path is a folder.
    if resolved.startswith((".", "/", "~")) or resolved.rstrip("/").count("/") > 1:
        raise ModelLoadError(f"model folder {resolved!r} does not exist")
    return resolved, False


class ClipModel:
    """A loaded CLIP-family model with its tokenizer and image preprocessing."""

    def __init__(
        self,
        torch_model: Any,
        tokenizer: Any,
        preprocessor: ImagePreprocessor,
        info: ModelInfo,
        device: str,
        text_padding: str | bool = True,
        max_text_length: int = 77,
        vision_dtype: Any = None,
        text_precision: str = "fp32",
    ) -> None:
        self.torch_model = torch_model
        self.tokenizer = tokenizer
        self.preprocessor = preprocessor
        self.info = info
        self.device = device
        self._text_padding = text_padding
        self._max_text_length = max_text_length
        self._vision_dtype = vision_dtype  # None: float32 input
        self.text_precision = text_precision  # what the text tower runs in: fp32, bf16, int8

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(
        cls,
        name: str | os.PathLike[str],
        *,
        token: str | None = None,
        device: str | None = None,
        revision: str | None = None,
        quantize: str | None = None,
        text_precision: str = "auto",
    ) -> ClipModel:
        """Load a checkpoint by hub id, folder, `fashion-clip` or `demo`.

        `quantize="int8"` applies dynamic int8 quantization to the linear layers (CPU only),
        `quantize="bf16"` runs the whole model in bfloat16: both opt-in, both measured in
        BENCHMARKS.md (about 2-3x the fp32 speed on a CPU, cosine >= 0.99 to fp32).

        `text_precision="auto"` runs the text tower in bfloat16 on CPUs with native bf16
        matrix kernels (cosine ~0.9999 to fp32): a single query is bound by reading the
        weights, so halving their bytes halves its latency. "fp32" or "bf16" force a choice;
        "int8" (CPU) quantizes the text tower's linear layers: about 2x faster than bf16
        per query, cosine ~0.998 to fp32 (BENCHMARKS.md). "fast" is int8 on the CPU and
        fp32 elsewhere: the Space's choice for queries. "auto" and "fast" keep small text
        towers (under 4 M parameters, such as the demo model's) in fp32, fastest there.

        A model on the CPU also tunes glibc's malloc, process-wide, to reuse activation
        memory between batches (`fashion_clip.allocator`: int8 1.4x faster, fp32 1-4%).
        """
        source, is_local = resolve_source(name)
        display = resolve_model_name(os.fspath(name))
        parts = _load_parts(source, display, is_local=is_local, token=token, revision=revision)
        config, torch_model, tokenizer, processor_config = parts
        preprocessor = ImagePreprocessor.from_config(processor_config)
        _check_parts(display, config, tokenizer, preprocessor)
        chosen = select_device(device)
        if chosen == "cpu":
            from fashion_clip.allocator import keep_freed_memory

            keep_freed_memory()  # reuse activation memory between batches (allocator.py)
        torch_model.eval().to(chosen)
        vision_dtype = None
        text_parameters = sum(p.numel() for p in torch_model.text_model.parameters())
        text_mode = _text_mode(text_precision, chosen, text_parameters)
        if quantize == "bf16":
            import torch

            torch_model = torch_model.to(torch.bfloat16)
            vision_dtype = torch.bfloat16
        elif quantize:
            torch_model = _quantize(torch_model, quantize, chosen)
        elif text_mode == "bf16":
            import torch

            torch_model.text_model.to(torch.bfloat16)
            # CLIP projects the pooled output in a separate layer; SigLIP's head is inside.
            if getattr(torch_model, "text_projection", None) is not None:
                torch_model.text_projection.to(torch.bfloat16)
        elif text_mode == "int8":
            torch_model.text_model = _quantize(torch_model.text_model, "int8", chosen)
        kind = "siglip" if config.model_type.startswith("siglip") else "clip"
        dim = int(getattr(config, "projection_dim", 0) or config.text_config.hidden_size)
        text_positions = int(config.text_config.max_position_embeddings)
        info = ModelInfo(
            name=display if not is_local or display.lower() == "demo" else str(Path(source)),
            revision=_local_revision(source, display)
            if is_local
            else _cached_commit(source, revision),
            kind=kind,
            dim=dim,
        )
        return cls(
            torch_model,
            tokenizer,
            preprocessor,
            info,
            chosen,
            # SigLIP was trained on texts padded to the maximum length; CLIP pools at EOS,
            # so a single query needs no padding at all (77 -> ~10 tokens).
            text_padding="max_length" if kind == "siglip" else True,
            max_text_length=min(text_positions, int(getattr(tokenizer, "model_max_length", 77))),
            vision_dtype=vision_dtype,
            text_precision=quantize or text_mode,
        )

    # ------------------------------------------------------------------ encoding
    @property
    def dim(self) -> int:
        return self.info.dim

    @property
    def logit_scale(self) -> float:
        """The learned temperature (already exponentiated)."""
        return float(self.torch_model.logit_scale.exp().item())

    @property
    def logit_bias(self) -> float | None:
        """SigLIP's learned bias (None for CLIP)."""
        bias = getattr(self.torch_model, "logit_bias", None)
        return None if bias is None else float(bias.item())

    def encode_pixels(self, pixel_values: np.ndarray, *, normalize: bool = True) -> np.ndarray:
        """(n, 3, H, W) preprocessed pixels -> (n, dim) float32 embeddings."""
        import torch

        from fashion_clip.vision import image_features

        with torch.inference_mode():
            tensor = torch.from_numpy(np.ascontiguousarray(pixel_values, dtype=np.float32))
            tensor = tensor.to(self.device, dtype=self._vision_dtype or torch.float32)
            return _finish(image_features(self.torch_model, tensor), normalize)

    def encode_crops(self, crops: np.ndarray, *, normalize: bool = True) -> np.ndarray:
        """(n, H, W, 3) uint8 crops from `preprocessor.crop_pixels` -> (n, dim) float32.

        Same embeddings as `encode_pixels(preprocessor(images))`, but the uint8 batch is a
        quarter of the bytes to stack and move, and on a GPU it is normalised there.
        """
        import torch

        from fashion_clip.vision import image_features

        with torch.inference_mode():
            tensor = torch.from_numpy(np.ascontiguousarray(crops, dtype=np.uint8))
            tensor = tensor.to(self.device).permute(0, 3, 1, 2).to(torch.float32)
            scale, shift = (
                torch.from_numpy(factor).to(self.device)[None, :, None, None]
                for factor in self.preprocessor.scale_and_shift()
            )
            pixels = tensor.mul_(scale).add_(shift)  # the preprocessor's arithmetic, in order
            if self._vision_dtype is not None:
                pixels = pixels.to(self._vision_dtype)
            return _finish(image_features(self.torch_model, pixels.contiguous()), normalize)

    def encode_text(
        self, texts: Sequence[str], *, batch_size: int = 32, normalize: bool = True
    ) -> np.ndarray:
        """Texts -> (n, dim) float32 embeddings; batches are padded to their longest text only."""
        import torch

        batch_size = check_count(batch_size)
        if isinstance(texts, str):
            texts = [texts]
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                batch = [str(text) for text in texts[start : start + batch_size]]
                tokens = self.tokenizer(
                    batch,
                    padding=self._text_padding,
                    truncation=True,
                    max_length=self._max_text_length,
                    return_tensors="pt",
                )
                inputs = {"input_ids": tokens["input_ids"].to(self.device)}
                if self.info.kind == "clip" and "attention_mask" in tokens:
                    inputs["attention_mask"] = tokens["attention_mask"].to(self.device)
                features = self.torch_model.get_text_features(**inputs)
                out[start : start + len(batch)] = _finish(features, normalize)
        return out


def _finish(features: Any, normalize: bool) -> np.ndarray:
    # transformers 5 returns an output object; the projected embedding is its pooler_output.
    tensor = getattr(features, "pooler_output", features)
    array = tensor.float().cpu().numpy().astype(np.float32, copy=False)
    if normalize:
        array = array / np.maximum(np.linalg.norm(array, axis=1, keepdims=True), 1e-12)
    return array


# Below this many parameters a text tower's query time is per-operation overhead, not
# reading weights, and fp32 is the fastest (the demo model's 0.7 M: fp32 1.5 ms, int8 1.8,
# bf16 2.0 per query on one core; ViT-B/32's 63 M: fp32 36, bf16 20, int8 9).
SMALL_TEXT_TOWER = 4_000_000


def _text_mode(text_precision: str, device: str, text_parameters: int | None = None) -> str:
    """The text tower's precision: "fp32", "bf16" or "int8" (the latter two opt-in or auto)."""
    if text_precision not in TEXT_PRECISIONS:
        raise ConfigurationError(
            f"text_precision={text_precision!r} is not supported; use one of "
            + ", ".join(repr(p) for p in TEXT_PRECISIONS)
        )
    if text_precision not in ("auto", "fast"):
        return text_precision
    if device != "cpu" or (text_parameters is not None and text_parameters < SMALL_TEXT_TOWER):
        return "fp32"
    if text_precision == "fast":
        return "int8"
    import torch

    # True where oneDNN has native bf16 kernels (AVX-512 and newer); on AVX2-only CPUs
    # bf16 is emulated and slower than fp32, so the text tower stays in fp32 there.
    return "bf16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "fp32"


def _quantize(torch_model: Any, mode: str, device: str) -> Any:
    import warnings

    import torch

    if mode != "int8":
        raise ConfigurationError(f"quantize={mode!r} is not supported; use 'int8', 'bf16' or None")
    if device != "cpu":
        raise ConfigurationError("int8 quantization runs on the CPU only; use device='cpu'")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao announces its future move to torchao
        return torch.ao.quantization.quantize_dynamic(
            torch_model, {torch.nn.Linear}, dtype=torch.qint8
        )


# ---------------------------------------------------------------------- hub plumbing
def _load_parts(
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
        if config.model_type not in SUPPORTED_TYPES:
            raise ModelLoadError(
                f"model {display!r} is a {config.model_type!r} model; supported: CLIP and "
                f"SigLIP checkpoints ({', '.join(SUPPORTED_TYPES)})"
            )
        model_class = CLIPModel if config.model_type == "clip" else SiglipModel
        if config.model_type == "siglip2":
            from transformers import Siglip2Model as model_class
        torch_model = model_class.from_pretrained(source, config=config, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
        processor_config, _ = ImageProcessingMixin.get_image_processor_dict(source, **kwargs)
    except ModelLoadError:
        raise
    except Exception as exc:  # hub, filesystem and format errors come in many classes
        raise _explain_load_error(display, exc, local_only=local_only) from exc
    return config, torch_model, tokenizer, processor_config


def _check_parts(
    display: str, config: Any, tokenizer: Any, preprocessor: ImagePreprocessor
) -> None:
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
    # SigLIP 2 (NaFlex) takes variable sizes and has no fixed image_size.
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


def _local_revision(source: str, display: str) -> str:
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


def _cached_commit(repo_id: str, revision: str | None) -> str | None:
    """The commit hash of the hub snapshot just loaded (its cache folder is named by it)."""
    from huggingface_hub import try_to_load_from_cache

    path = try_to_load_from_cache(repo_id, "config.json", revision=revision)
    return Path(path).parent.name if isinstance(path, str) else None


def _hub_endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def _hub_offline(timeout_s: float = 3.0) -> bool:
    """True when offline mode is set or the hub's host does not answer within `timeout_s`."""
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

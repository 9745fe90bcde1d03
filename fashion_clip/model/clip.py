"""The model: any CLIP-family checkpoint through `transformers`, loaded by `checkpoints`.

`ClipModel.load(name)` takes a Hugging Face hub id (public or private), a local folder,
`fashion-clip` (alias of `patrickjohncyh/fashion-clip`) or `demo` (the bundled model), and
gives back an object that turns pixel batches and texts into float32 `(n, dim)` embeddings.
CLIP checkpoints load as `CLIPModel` (softmax scores), SigLIP ones as `SiglipModel`
(sigmoid scores); the rest of the project never needs to know which.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fashion_clip.errors import ConfigurationError, check_count
from fashion_clip.model import checkpoints, precision
from fashion_clip.model.preprocess import ImagePreprocessor
from fashion_clip.settings import resolve_model_name


@dataclass(frozen=True)
class ModelInfo:
    """What a vector collection records about the model that filled it."""

    name: str  # as the user gave it, aliases resolved ("demo", a hub id or a folder)
    revision: str | None  # hub commit hash where known; the bundled demo: its weights digest
    kind: str  # "clip" or "siglip"
    dim: int


def select_device(preferred: str | None = None) -> str:
    """`preferred` if given, else cuda, then Apple's mps, then cpu."""
    import torch  # deferred: torch is heavy

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
    import torch  # deferred: torch is heavy

    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


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
        image_precision: str = "fp32",
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
        self.image_precision = image_precision  # and the image tower

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
        native_bf16: bool | None = None,
    ) -> ClipModel:
        """Load a checkpoint by hub id, folder, `fashion-clip` or `demo`.

        `quantize` is the image tower's precision. "auto" (None) runs it in bfloat16 on CPUs
        with native bf16 matrix kernels (AVX-512 BF16 or AMX: ViT-B/32 about 3x faster,
        cosine >= 0.999 to fp32) and in fp32 elsewhere; "fp32" and "bf16" force a choice;
        "int8" applies dynamic int8 quantization to every linear layer, the text tower's
        too (CPU only, opt-in: about 3x the fp32 speed, cosine >= 0.99 to fp32).
        `native_bf16` says whether the CPU has native bf16 (None: read from its flags).

        `text_precision="auto"` runs the text tower in bfloat16 on CPUs with native bf16
        matrix kernels (cosine ~0.9999 to fp32): a single query is bound by reading the
        weights, so halving their bytes halves its latency. "fp32" or "bf16" force a choice;
        "int8" (CPU) quantizes the text tower's linear layers: about 2x faster than bf16
        per query, cosine ~0.998 to fp32 (benchmarks/HISTORY.md). "fast" is int8 on the CPU and
        fp32 elsewhere: the Space's choice for queries. "auto" and "fast" keep small text
        towers (under 4 M parameters, such as the demo model's) in fp32, fastest there.

        Loading changes nothing process-wide. A program that runs the model on the CPU gains
        from `fashion_clip.model.allocator.tune_for(model.device)`, which tunes glibc's
        malloc to reuse activation memory between batches (int8 1.4x faster, fp32 1-4%).
        """
        source, is_local = checkpoints.resolve_source(name)
        display = resolve_model_name(os.fspath(name))
        parts = checkpoints.load_parts(
            source, display, is_local=is_local, token=token, revision=revision
        )
        config, torch_model, tokenizer, processor_config = parts
        preprocessor = ImagePreprocessor.from_config(processor_config)
        checkpoints.check_parts(display, config, tokenizer, preprocessor)
        chosen = select_device(device)
        torch_model.eval().to(chosen)
        text_parameters = sum(p.numel() for p in torch_model.text_model.parameters())
        image_mode = precision.image_mode(quantize or "auto", chosen, native_bf16)
        text_mode = precision.text_mode(text_precision, chosen, text_parameters, native_bf16)
        torch_model, vision_dtype = precision.apply(torch_model, image_mode, text_mode, chosen)
        info = _model_info(config, source, display, is_local=is_local, revision=revision)
        text_positions = int(config.text_config.max_position_embeddings)
        return cls(
            torch_model,
            tokenizer,
            preprocessor,
            info,
            chosen,
            # SigLIP was trained on texts padded to the maximum length; CLIP pools at EOS,
            # so a single query needs no padding at all (77 -> ~10 tokens).
            text_padding="max_length" if info.kind == "siglip" else True,
            max_text_length=min(text_positions, int(getattr(tokenizer, "model_max_length", 77))),
            vision_dtype=vision_dtype,
            text_precision="int8" if image_mode == "int8" else text_mode,
            image_precision=image_mode,
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
        import torch  # deferred: torch is heavy

        from fashion_clip.model.vision import image_features  # deferred: torch

        with torch.inference_mode():
            tensor = torch.from_numpy(np.ascontiguousarray(pixel_values, dtype=np.float32))
            tensor = tensor.to(self.device, dtype=self._vision_dtype or torch.float32)
            return _finish(image_features(self.torch_model, tensor), normalize)

    def encode_crops(self, crops: np.ndarray, *, normalize: bool = True) -> np.ndarray:
        """(n, H, W, 3) uint8 crops from `preprocessor.crop_pixels` -> (n, dim) float32.

        Same embeddings as `encode_pixels(preprocessor(images))`, but the uint8 batch is a
        quarter of the bytes to stack and move, and on a GPU it is normalised there.
        """
        import torch  # deferred: torch is heavy

        from fashion_clip.model.vision import image_features  # deferred: torch

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
        import torch  # deferred: torch is heavy

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


def _model_info(
    config: Any, source: str, display: str, *, is_local: bool, revision: str | None
) -> ModelInfo:
    """What the model is, as the store records it: name, revision, kind and dimension."""
    if is_local:
        name = display if display.lower() == "demo" else str(Path(source))
        known_revision = checkpoints.local_revision(source, display)
    else:
        name, known_revision = display, checkpoints.cached_commit(source, revision)
    return ModelInfo(
        name=name,
        revision=known_revision,
        kind="siglip" if config.model_type.startswith("siglip") else "clip",
        dim=int(getattr(config, "projection_dim", 0) or config.text_config.hidden_size),
    )

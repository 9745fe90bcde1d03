"""The precision a model runs in: the text tower's choice ("auto", "fast") and int8."""

from __future__ import annotations

import warnings
from typing import Any

from fashion_clip.errors import ConfigurationError
from fashion_clip.settings import TEXT_PRECISIONS

# Below this many parameters a text tower's query time is per-operation overhead, not
# reading weights, and fp32 is the fastest (the demo model's 0.7 M: fp32 1.5 ms, int8 1.8,
# bf16 2.0 per query on one core; ViT-B/32's 63 M: fp32 36, bf16 20, int8 9).
SMALL_TEXT_TOWER = 4_000_000


def text_mode(text_precision: str, device: str, text_parameters: int | None = None) -> str:
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
    import torch  # deferred: torch is heavy

    # True where oneDNN has native bf16 kernels (AVX-512 and newer); on AVX2-only CPUs
    # bf16 is emulated and slower than fp32, so the text tower stays in fp32 there.
    return "bf16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "fp32"


def quantize(torch_model: Any, mode: str, device: str) -> Any:
    import torch  # deferred: torch is heavy

    if mode != "int8":
        raise ConfigurationError(f"quantize={mode!r} is not supported; use 'int8', 'bf16' or None")
    if device != "cpu":
        raise ConfigurationError("int8 quantization runs on the CPU only; use device='cpu'")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao announces its future move to torchao
        return torch.ao.quantization.quantize_dynamic(
            torch_model, {torch.nn.Linear}, dtype=torch.qint8
        )


def apply(torch_model: Any, whole: str | None, text: str, device: str) -> tuple[Any, Any]:
    """`torch_model` in the precision asked for, and the dtype its vision tower's input must
    have (None: float32). `whole` ("bf16", "int8": `ClipModel.load`'s `quantize`) covers the
    whole model; otherwise `text` (`text_mode`'s answer) sets the text tower's alone."""
    import torch  # deferred: torch is heavy

    if whole == "bf16":
        return torch_model.to(torch.bfloat16), torch.bfloat16
    if whole:
        return quantize(torch_model, whole, device), None
    if text == "bf16":
        torch_model.text_model.to(torch.bfloat16)
        # CLIP projects the pooled output in a separate layer; SigLIP's head is inside.
        if getattr(torch_model, "text_projection", None) is not None:
            torch_model.text_projection.to(torch.bfloat16)
    elif text == "int8":
        torch_model.text_model = quantize(torch_model.text_model, "int8", device)
    return torch_model, None

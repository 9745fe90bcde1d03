"""The precision a model runs in: each tower's choice ("auto", "fast"), bf16 and int8.

"auto" means bf16 where the CPU computes it natively (AVX-512 BF16 or AMX: oneDNN runs bf16
matrix products there at 2-4x the fp32 speed, cosine ~0.9999 to fp32) and fp32 elsewhere: on
AVX2-only CPUs bf16 is emulated and slower than fp32, and on a GPU fp32 is the default.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fashion_clip.errors import ConfigurationError
from fashion_clip.settings import IMAGE_PRECISIONS, TEXT_PRECISIONS

# Below this many parameters a text tower's query time is per-operation overhead, not
# reading weights, and fp32 is the fastest (the demo model's 0.7 M: fp32 1.5 ms, int8 1.8,
# bf16 2.0 per query on one core; ViT-B/32's 63 M: fp32 36, bf16 20, int8 9).
SMALL_TEXT_TOWER = 4_000_000
# The x86 CPU flags (as Linux lists them) of native bf16 matrix arithmetic.
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
CPUINFO = Path("/proc/cpuinfo")


@functools.cache
def cpu_flags(cpuinfo: Path = CPUINFO) -> frozenset[str]:
    """The CPU's feature flags from `cpuinfo` (Linux); empty where it cannot be read."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:  # not Linux, or a sandbox without /proc: fp32, which is always right
        return frozenset()
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def native_bf16(flags: Iterable[str] | None = None) -> bool:
    """Whether the CPU with these `flags` (default: this machine's) computes bf16 natively."""
    return bool(NATIVE_BF16_FLAGS.intersection(cpu_flags() if flags is None else flags))


def image_mode(image_precision: str, device: str, native: bool | None = None) -> str:
    """The image tower's precision, "fp32", "bf16" or "int8", for `image_precision`.

    `native`: whether the CPU has native bf16 (None: read its flags).
    """
    if image_precision not in IMAGE_PRECISIONS:
        raise ConfigurationError(
            f"quantize={image_precision!r} is not supported; use one of "
            + ", ".join(repr(p) for p in IMAGE_PRECISIONS)
        )
    if image_precision != "auto":
        return image_precision
    return "bf16" if device == "cpu" and _native(native) else "fp32"


def text_mode(
    text_precision: str,
    device: str,
    text_parameters: int | None = None,
    native: bool | None = None,
) -> str:
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
    return "bf16" if _native(native) else "fp32"


def _native(native: bool | None) -> bool:
    return native_bf16() if native is None else native


def apply(torch_model: Any, image: str, text: str, device: str) -> tuple[Any, Any]:
    """`torch_model` with its towers in the `image` and `text` modes, and the dtype its
    image tower takes (None: float32). int8 for the images quantizes the whole model."""
    import torch  # deferred: torch is heavy

    if image == "int8":
        return quantize(torch_model, "int8", device), None
    if image == "bf16":
        # CLIP projects the pooled output in a separate layer; SigLIP's head is inside.
        for part in (torch_model.vision_model, getattr(torch_model, "visual_projection", None)):
            if part is not None:
                part.to(torch.bfloat16)
    if text == "bf16":
        for part in (torch_model.text_model, getattr(torch_model, "text_projection", None)):
            if part is not None:
                part.to(torch.bfloat16)
    elif text == "int8":
        torch_model.text_model = quantize(torch_model.text_model, "int8", device)
    return torch_model, torch.bfloat16 if image == "bf16" else None


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

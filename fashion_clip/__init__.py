"""FashionCLIP as a library: embeddings, zero-shot classification, localization, search.

    from fashion_clip import FashionCLIP
    fclip = FashionCLIP("demo")               # or "fashion-clip", a hub id, a folder
    vectors = fclip.encode_text(["red dress"])  # float32 (1, dim), unit length

Names are imported lazily, so `import fashion_clip` stays cheap (no torch, no transformers).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "ClipModel",
    "FCLIPDataset",
    "FashionCLIP",
    "FashionCLIPError",
    "ImageLoadError",
    "ModelLoadError",
    "load_image",
    "load_settings",
]

_WHERE = {
    "ClipModel": "fashion_clip.model.clip",
    "FCLIPDataset": "fashion_clip.api.dataset",
    "FashionCLIP": "fashion_clip.api.fclip",
    "FashionCLIPError": "fashion_clip.errors",
    "ImageLoadError": "fashion_clip.errors",
    "ModelLoadError": "fashion_clip.errors",
    "load_image": "fashion_clip.media.images",
    "load_settings": "fashion_clip.settings",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'fashion_clip' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)

"""The bundled demo: a synthetic fashion catalog and a small CLIP trained on similar images.

Only paths live here, so importing this package stays cheap (no torch, no transformers).
`garments` draws the products, `make_catalog` writes the shipped catalog, `tokenizer` and
`train` build the demo model.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["DEMO_CATALOG_DIR", "DEMO_CATALOG_FILE", "DEMO_DIR", "DEMO_MODEL_DIR"]

DEMO_DIR = Path(__file__).resolve().parent
DEMO_MODEL_DIR = DEMO_DIR / "model"
DEMO_CATALOG_DIR = DEMO_DIR / "catalog"
DEMO_CATALOG_FILE = DEMO_CATALOG_DIR / "catalog.jsonl"

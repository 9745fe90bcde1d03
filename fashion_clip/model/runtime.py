"""Loading the configured model, with the one fallback the design allows.

The app and the indexer both start from `Settings`; when the default hub model cannot be
fetched (offline, nothing cached) they carry on with the bundled demo model and say so.
Every other failure (unknown name, no access, a broken folder) propagates unchanged.
"""

from __future__ import annotations

import logging

from fashion_clip.errors import ModelUnavailableError
from fashion_clip.model.clip import ClipModel
from fashion_clip.settings import DEFAULT_MODEL, Settings, resolve_model_name

log = logging.getLogger(__name__)

FALLBACK_MODEL = "demo"


def load_configured_model(
    settings: Settings,
    name: str | None = None,
    *,
    quantize: str | None = None,
    text_precision: str | None = None,
    default_text_precision: str = "auto",
    fallback: bool = True,
) -> tuple[ClipModel, str | None]:
    """Load `name` (default: `settings.model`) with the settings' token, device and
    precisions (`quantize` overrides the image one, `text_precision` the text one;
    `default_text_precision` applies where neither says).

    Returns the model and a note for the user, or None. The note is set only when the
    default hub model (`patrickjohncyh/fashion-clip`) was unavailable and the bundled demo
    model was loaded in its place; callers show it (log, page banner, stderr). With
    `fallback=False` that failure propagates too: the indexer must not fill a catalog's
    collection with the demo model's vectors because the network was down.
    """
    requested = resolve_model_name(name or settings.model)
    options = {
        "quantize": quantize or settings.image_precision,
        "text_precision": text_precision or settings.text_precision or default_text_precision,
        "device": settings.device,
    }
    try:
        return ClipModel.load(requested, token=settings.hf_token, **options), None
    except ModelUnavailableError as exc:
        if requested != DEFAULT_MODEL or not fallback:
            raise
        note = f"could not fetch {DEFAULT_MODEL} (offline?); using the bundled demo model"
        log.info("%s: %s", note, exc)  # callers show the note itself
        return ClipModel.load(FALLBACK_MODEL, **options), note

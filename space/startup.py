"""Start-up steps of the Space: find the collection (indexing the demo when the store is
empty), and the options `launch()` gets from the settings and the command line.
"""

from __future__ import annotations

import logging
from typing import Any

from fashion_clip.errors import ModelMismatchError, StoreError
from fashion_clip.ingest.choice import choose_collection
from fashion_clip.ingest.job import index_demo
from fashion_clip.ingest.pipeline import IndexOptions
from fashion_clip.model.clip import ClipModel
from fashion_clip.settings import DEFAULT_COLLECTION, Settings
from fashion_clip.store import Collection, Store
from space.page import PAGE_CSS

log = logging.getLogger(__name__)

MAX_UPLOAD = "25mb"  # Gradio refuses bigger uploads before they reach a handler


def open_collection(settings: Settings, store: Store, model: ClipModel) -> Collection:
    """The collection the app searches, guarded against a model mismatch.

    The demo collection is (re)built from the bundled catalog when it is missing, was never
    finished (an interrupted first start) or holds another model's vectors; any other
    collection must exist already.
    """
    choice = choose_collection(settings, store)
    name = choice.name
    log.info("serving collection %r (%s)", name, choice.reason)
    info = model.info
    if name != DEFAULT_COLLECTION:
        if not store.exists(name):
            raise StoreError(
                f"collection {name!r} does not exist in the {store.kind} store at "
                f"{store.location}; index a catalog into it (`python -m indexer index CATALOG "
                f"--collection {name}`) or unset FASHION_CLIP_COLLECTION to use the demo"
            )
        return store.open(name, model_id=info.name, model_revision=info.revision, dim=info.dim)
    if store.exists(name):
        try:
            collection = store.open(
                name, model_id=info.name, model_revision=info.revision, dim=info.dim
            )
        except ModelMismatchError:
            pass  # index_demo rebuilds it, and logs why
        else:
            if collection.count() and collection.info().extra.get("indexed_at"):
                return collection
            collection.close()

    collection, _ = index_demo(store, model, options=IndexOptions(progress=True), name=name)
    return collection


def launch_options(settings: Settings, *, share: bool = False) -> dict[str, Any]:
    """Keyword arguments for `Blocks.launch`; a share link with `share` (`--share`) or
    `FASHION_CLIP_SHARE`.

    Host and port are left to Gradio, which reads `GRADIO_SERVER_NAME` and
    `GRADIO_SERVER_PORT` (7860 by default, as Spaces expects). The page's own styles
    (`space.page.PAGE_CSS`) go with them.
    """
    options: dict[str, Any] = {
        "max_file_size": MAX_UPLOAD,
        "share": share or settings.share,
        "css": PAGE_CSS,
    }
    if settings.auth:
        options["auth"] = settings.auth
        options["auth_message"] = "FashionCLIP Space: sign in (FASHION_CLIP_AUTH)"
    return options

"""Search hits as the app shows them: gallery pictures with captions, and JSON records.

A hit's picture is whatever its catalog row's image reference resolved to at indexing time:
a local file (hard-linked into the app's own folder, never copied), an `http(s)://` URL (the
browser fetches it) or an `s3://` object (fetched once and kept as a thumbnail). A picture
that cannot be shown becomes a grey placeholder, so the gallery and the JSON list stay
aligned hit for hit.

Only that folder of the app's own is served: the catalog's image folder is not, since by
default it is the catalog file's folder, which may be the Space's own (`.env` and all).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import math
import mimetypes
import os
import posixpath
import shutil
import tempfile
import threading
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from fashion_clip.errors import FashionCLIPError
from fashion_clip.files import write_atomic
from fashion_clip.ingest.state import SOURCE_FIELD  # the indexer's resolved image reference
from fashion_clip.media.images import load_image
from fashion_clip.store import Hit
from space.filters import FILTER_FIELDS, PRICE_FIELDS

log = logging.getLogger(__name__)

THUMBNAIL_SIDE = 384
KEPT_PICTURES = 256  # pictures the app made (overlays) kept for the pages to fetch
GalleryItem = tuple[str, str]  # (picture: a path or URL, caption)
# Local pictures shown as they are: formats a browser displays and never runs (no SVG/HTML).
SHOWN_AS_IS = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp"}


def public_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """The catalog's own fields: the indexer's bookkeeping (`_…` keys) left out."""
    return {k: v for k, v in payload.items() if not k.startswith("_")}


def hit_record(hit: Hit) -> dict[str, Any]:
    """`{id, score, caption, payload}`: one hit as the API returns it."""
    payload = public_payload(hit.payload)
    return {
        "id": hit.id,
        "score": round(float(hit.score), 6),
        "caption": payload.get("caption") or str(hit.id),
        "payload": payload,
    }


def gallery_data(items: Sequence[GalleryItem]) -> list[dict[str, Any]]:
    """`items` as the Gallery component's own data, `[{image: FileData, caption}]`: what its
    postprocessing makes of them, for an event that skips it (the text search, see
    `space.app`). Local files are served in place, URLs fetched by the browser."""
    data = []
    for picture, caption in items:
        name = posixpath.basename(picture.split("?", 1)[0]) or None
        image: dict[str, Any] = {
            "path": picture,
            "orig_name": name,
            "mime_type": mimetypes.guess_type(picture)[0],
            "meta": {"_type": "gradio.FileData"},
        }
        if picture.startswith(("http://", "https://")):
            image["url"] = picture
        data.append({"image": image, "caption": caption})
    return data


class Pictures:
    """Finds something the gallery can display for each hit, cheaply and safely.

    `roots` are the local image folders of the collection; the pictures under them are
    hard-linked into `cache_dir`, the only folder served (a link costs no copy, and the
    folders themselves stay private). Anything else local or on S3, or a picture that cannot
    be linked (another file system), is decoded once into a thumbnail in `cache_dir`.
    """

    def __init__(self, roots: Sequence[Path] = (), cache_dir: Path | None = None) -> None:
        if cache_dir is None:
            cache_dir = Path(tempfile.mkdtemp(prefix="fashion-clip-pictures-"))
            # Ours to remove: when this object goes, or at the latest when the process exits.
            weakref.finalize(self, shutil.rmtree, cache_dir, ignore_errors=True)
        self.cache_dir = cache_dir
        self._keeping = threading.Lock()
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.roots = [Path(root).resolve() for root in roots if Path(root).is_dir()]
        self._placeholder = self.cache_dir / "placeholder.png"
        if not self._placeholder.exists():
            Image.new("RGB", (THUMBNAIL_SIDE, THUMBNAIL_SIDE), (225, 225, 225)).save(
                self._placeholder
            )

    @property
    def static_paths(self) -> list[Path]:
        """Folders whose files the app may serve as they are: its own, and no other."""
        return [self.cache_dir]

    def __call__(self, payload: dict[str, Any]) -> str:
        source = str(payload.get(SOURCE_FIELD) or payload.get("image") or "")
        if source.startswith(("http://", "https://")):
            return source
        if not source:
            return str(self._placeholder)
        if not source.startswith("s3://"):
            path = Path(source)
            if not path.is_absolute() and self.roots:
                path = self.roots[0] / path  # an older point without the resolved source
            resolved = path.resolve()
            if resolved.is_file() and any(resolved.is_relative_to(r) for r in self.roots):
                return self._linked(resolved)
        return self._thumbnail(source)

    def _linked(self, picture: Path) -> str:
        """`picture` (a file under a root) as a hard link in `cache_dir`, keeping its name;
        a thumbnail where it cannot be linked or is not a format shown as it is."""
        if picture.suffix.lower() not in SHOWN_AS_IS:
            return self._thumbnail(str(picture))
        try:
            stat = picture.stat()
            key = f"{picture}\0{stat.st_mtime_ns}\0{stat.st_size}"  # a changed file: a new link
            target = (
                self.cache_dir / "files" / hashlib.sha1(key.encode()).hexdigest() / picture.name
            )
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                with contextlib.suppress(FileExistsError):  # linked by a concurrent call
                    os.link(picture, target)
        except OSError as exc:  # another file system, no permission: shown as a thumbnail
            log.debug("cannot link %s: %s", picture, exc)
            return self._thumbnail(str(picture))
        return str(target)

    def _thumbnail(self, source: str) -> str:
        target = self.cache_dir / (hashlib.sha1(source.encode()).hexdigest() + ".jpg")
        if target.exists():
            return str(target)
        try:
            image = load_image(source, min_long_side=THUMBNAIL_SIDE)  # JPEG: draft mode
        except FashionCLIPError as exc:
            log.warning("cannot show %s: %s", source, exc)
            return str(self._placeholder)
        image.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=85)
        write_atomic(target, buffer.getvalue(), durable=False)
        return str(target)

    def keep(self, picture: Image.Image) -> str:
        """A picture the app made (a heatmap overlay), saved where the page can fetch it.

        Gradio would save it to its cache under a name made from its content, rewriting the
        file in place: identical answers at once (several visitors, one example) truncated
        each other's downloads. Here each file appears whole, and only the newest
        `KEPT_PICTURES` stay (a page fetches its picture as soon as the answer arrives).
        """
        buffer = io.BytesIO()
        picture.save(buffer, "JPEG", quality=90)
        data = buffer.getvalue()
        folder = self.cache_dir / "made"
        folder.mkdir(exist_ok=True)
        target = folder / (hashlib.sha1(data).hexdigest() + ".jpg")
        # One at a time: a call pruning by the ages it read could otherwise remove the file
        # another call has just rewritten and is about to hand out.
        with self._keeping:
            write_atomic(target, data, durable=False)
            made = sorted(folder.glob("*.jpg"), key=_age_key, reverse=True)
            for old in made[KEPT_PICTURES:]:
                if old != target:
                    old.unlink(missing_ok=True)
        return str(target)

    def gallery(self, hits: Sequence[Hit]) -> list[GalleryItem]:
        """One `(picture, "caption · price · brand · score")` per hit, in rank order; price
        and brand where the payload has them (under a name the filters know)."""
        return [(self(hit.payload), tile_caption(hit)) for hit in hits]


def tile_caption(hit: Hit) -> str:
    """`red solid dress · 29.99 · Atelier Nova · 0.812`: what a shopper reads first, the
    score last. The price has no currency sign: catalogs do not say which."""
    payload = public_payload(hit.payload)
    parts = [str(payload.get("caption") or hit.id)]
    price = next((payload[k] for k in PRICE_FIELDS if payload.get(k) is not None), None)
    if isinstance(price, int | float) and not isinstance(price, bool) and math.isfinite(price):
        parts.append(f"{price:.2f}")
    brand = next((payload[k] for k in FILTER_FIELDS["brand"] if payload.get(k)), None)
    if isinstance(brand, list):
        brand = ", ".join(str(b) for b in brand if b)
    if isinstance(brand, str) and brand.strip():
        parts.append(brand.strip())
    parts.append(f"{hit.score:.3f}")
    return " · ".join(parts)


def _age_key(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:  # removed by a concurrent call: oldest
        return 0.0

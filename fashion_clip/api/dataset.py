"""`FCLIPDataset`: a product catalog, as the original fashion-clip API named it.

A dataset is a list of products (`id`, `image`, optional `caption`, any other fields) and
where their images live (a folder, an `s3://bucket/prefix` or an `http(s)://` base).
Pre-included datasets load by name (`FCLIPDataset("demo")`). Rows are checked with the
indexer's own `check_record`, so a catalog that works here works there, and the other way
round; ids and image references are kept as the indexer stores them (text stripped), so
the ids `FashionCLIP.retrieval` returns are the ids this dataset looks up.
"""

from __future__ import annotations

import functools
import hashlib
import json
import numbers
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from fashion_clip import demo  # its paths are read per call: tests swap them
from fashion_clip.errors import CatalogError, ConfigurationError, FashionCLIPError
from fashion_clip.ingest.catalog import RowProblem, check_record
from fashion_clip.ingest.sources import ImageRoot
from fashion_clip.media.images import load_image

SOURCE_TYPES = ("local", "s3", "url")
PRE_INCLUDED = ("demo",)


class FCLIPDataset:
    """A named catalog of products with their image source.

    >>> dataset = FCLIPDataset("demo")
    >>> dataset["demo-0001"]["caption"]
    """

    def __init__(
        self,
        name: str,
        image_source_path: str | None = None,
        image_source_type: str = "local",
        catalog: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        if not name or not str(name).strip():
            raise ConfigurationError("a dataset needs a name, e.g. FCLIPDataset('my_catalog', …)")
        self.name = str(name).strip()
        if catalog is None:
            catalog, image_source_path, image_source_type = _pre_included(self.name)
        if isinstance(image_source_type, str):  # the original took "LOCAL" and "S3" too
            image_source_type = image_source_type.strip().lower()
        if image_source_type not in SOURCE_TYPES:
            raise ConfigurationError(
                f"image_source_type {image_source_type!r} is not one of {', '.join(SOURCE_TYPES)}"
            )
        _check_source(image_source_path, image_source_type)
        self.image_source_path = image_source_path
        self.image_source_type = image_source_type
        self._rows = _validated(self.name, catalog)
        self._by_id = {str(row["id"]): row for row in self._rows}
        self._root = None  # resolved lazily: checking a local folder is I/O

    # ------------------------------------------------------------------ catalog access
    def __len__(self) -> int:
        return len(self._rows)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self._rows)

    def __getitem__(self, product_id: str | int) -> dict[str, Any]:
        try:
            return self._by_id[str(product_id)]
        except KeyError:
            raise KeyError(f"dataset {self.name!r} has no product with id {product_id!r}") from None

    def __contains__(self, product_id: object) -> bool:
        return str(product_id) in self._by_id

    @property
    def ids(self) -> list[str | int]:
        return [row["id"] for row in self._rows]

    @property
    def catalog(self) -> list[dict[str, Any]]:
        return [dict(row) for row in self._rows]

    @property
    def captions(self) -> list[str]:
        """Each product's caption ("" where it has none), in catalog order.

        A list, as in the original API; `captions()` (this project's earlier spelling) works too.
        """
        return _CallableList(row.get("caption") or "" for row in self._rows)

    @property
    def hash(self) -> str:
        """A stable content hash of the rows and the image source (hex, 16 characters).

        The same catalog gives the same hash in any process or order of keys; any change to
        a row, the row order or the image source gives another. `hash()`, the original
        API's spelling, gives the same string.
        """
        canonical = json.dumps(
            {"rows": self._rows, "source": [self.image_source_path, self.image_source_type]},
            sort_keys=True,
            ensure_ascii=False,
            separators=(",", ":"),
            default=str,
        )
        return _CallableStr(hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16])

    # ------------------------------------------------------------------ images
    def image_source(self, product_id: str | int) -> str:
        """The path, URL or S3 URI of a product's image (a relative path stays in the root)."""
        if self._root is None:
            self._root = ImageRoot(self.image_source_path or ".")
        return self._root.resolve(str(self[product_id]["image"]))

    def image(self, product_id: str | int) -> Image.Image:
        return load_image(self.image_source(product_id))

    def display_products(
        self, ids: Sequence[str | int], *, columns: int = 4, thumb: int = 192
    ) -> Image.Image:
        """A grid of the products' images with their captions, as one RGB PIL image."""
        ids = list(ids)  # `not ids` is ambiguous for the numpy array of ids a notebook has
        if not ids:
            raise CatalogError("display_products needs at least one product id")
        columns = max(1, min(columns, len(ids)))
        rows = -(-len(ids) // columns)
        caption_height = 34
        grid = Image.new("RGB", (columns * thumb, rows * (thumb + caption_height)), "white")
        draw = ImageDraw.Draw(grid)
        font = caption_font()
        for i, product_id in enumerate(ids):
            x, y = (i % columns) * thumb, (i // columns) * (thumb + caption_height)
            try:
                picture = self.image(product_id)
                picture.thumbnail((thumb - 8, thumb - 8))
                grid.paste(picture, (x + (thumb - picture.width) // 2, y + 4))
                caption = self[product_id].get("caption") or str(product_id)
            except FashionCLIPError as exc:  # one unreadable image must not cost the grid
                caption = f"{product_id}: {exc}"[:60]
                draw.rectangle((x + 4, y + 4, x + thumb - 4, y + thumb - 4), outline="red")
            draw.text(
                (x + 4, y + thumb + 2),
                _fit(draw, caption, font, thumb - 8),
                fill="black",
                font=font,
            )
        return grid

    def __repr__(self) -> str:
        return (
            f"FCLIPDataset({self.name!r}, {len(self)} products, "
            f"{self.image_source_type}: {self.image_source_path})"
        )


class _CallableStr(str):
    """A string that returns itself when called: the original API's `hash()` was a method."""

    def __call__(self) -> str:
        return str(self)


class _CallableList(list):
    """A list that returns a copy when called: `captions()` was this project's method."""

    def __call__(self) -> list[str]:
        return list(self)


def _pre_included(name: str) -> tuple[list[dict[str, Any]], str, str]:
    if name.lower() != "demo":
        raise CatalogError(
            f"no pre-included dataset named {name!r} (available: {', '.join(PRE_INCLUDED)}); "
            "to use your own, pass catalog=[{'id': …, 'image': …, 'caption': …}, …]"
        )
    lines = demo.DEMO_CATALOG_FILE.read_text("utf-8").splitlines()
    rows = [json.loads(line) for line in lines if line]
    return rows, str(demo.DEMO_CATALOG_DIR), "local"


def _check_source(path: str | None, kind: str) -> None:
    if path is None:
        return
    if kind == "s3" and not path.startswith("s3://"):
        raise ConfigurationError(
            f"image_source_path {path!r}: an s3 source must be s3://bucket/prefix"
        )
    if kind == "url" and not path.startswith(("http://", "https://")):
        raise ConfigurationError(
            f"image_source_path {path!r}: a url source must start with http(s)://"
        )
    if kind == "local" and not Path(path).expanduser().is_dir():
        raise ConfigurationError(f"image_source_path {path!r}: no such directory")


def _validated(name: str, catalog: Any) -> list[dict[str, Any]]:
    """Rows as plain dicts, or one `CatalogError` listing every problem with its row number."""
    if isinstance(catalog, (str, bytes)) or not isinstance(catalog, Sequence):
        raise CatalogError(f"dataset {name!r}: catalog must be a list of dicts")
    problems, rows, seen = [], [], {}
    for number, record in enumerate(catalog, start=1):
        if not isinstance(record, Mapping):
            problems.append(f"row {number}: not a dict ({type(record).__name__})")
            continue
        record = dict(record)
        product_id = record.get("id")
        # numpy and pandas hand over np.int64 where Python code has an int: the same id.
        if isinstance(product_id, numbers.Integral) and not isinstance(product_id, bool):
            record["id"] = int(product_id)
        checked = check_record(number, record)
        if isinstance(checked, RowProblem):
            problems.append(f"row {number}: {checked.reason}")
            continue
        key = str(checked.id)
        if key in seen:
            problems.append(f"row {number}: duplicate id {checked.id!r} (first in row {seen[key]})")
            continue
        seen[key] = number
        rows.append({**record, "id": checked.id, "image": checked.image})
    if problems:
        shown = "; ".join(problems[:10]) + (
            f"; … {len(problems) - 10} more" if len(problems) > 10 else ""
        )
        raise CatalogError(f"dataset {name!r}: {len(problems)} bad row(s): {shown}")
    if not rows:
        raise CatalogError(f"dataset {name!r}: the catalog is empty")
    return rows


# Fonts with Latin, Greek and Cyrillic letters, on most Linux machines (DejaVu comes with
# fontconfig on Debian), macOS and Windows. Pillow's own default draws "Größe" or "café"
# with boxes for the accented letters.
CAPTION_FONTS = ("DejaVuSans.ttf", "LiberationSans-Regular.ttf", "Arial.ttf", "Helvetica.ttc")
CAPTION_SIZE = 11


@functools.cache
def caption_font() -> Any:
    """The first of `CAPTION_FONTS` this machine has, else Pillow's default."""
    for name in CAPTION_FONTS:
        try:
            return ImageFont.truetype(name, CAPTION_SIZE)
        except OSError:  # not installed here
            continue
    return ImageFont.load_default()


def _fit(draw: ImageDraw.ImageDraw, text: str, font: Any, width: int) -> str:
    """Shorten `text` with an ellipsis until it fits `width` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"

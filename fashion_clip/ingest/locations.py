"""Catalogs that live on the web: an `http(s)://` file downloaded to a temporary file, or a
Hugging Face dataset's Parquet files from the hub's cache (`ingest.hub`).

The download streams to disk (a Parquet catalog of embedded pictures can be gigabytes), and
the reader then streams the local copy. A dataset split into several files comes as a
temporary folder of links to them, which the Parquet reader reads in order.
"""

from __future__ import annotations

import contextlib
import posixpath
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from fashion_clip.errors import CatalogError, ConfigurationError

_TIMEOUT_S = 60.0


@contextlib.contextmanager
def remote_copy(
    location: str, *, split: str | None = None, revision: str | None = None
) -> Iterator[Path]:
    """A local file (or folder of Parquet files) holding the catalog at `location`; a
    temporary one is removed when the block ends."""
    if location.startswith("hf://"):
        from fashion_clip.ingest.hub import hub_files  # huggingface_hub: only for hf://

        files = hub_files(location, split=split, revision=revision)
        if len(files) == 1:
            yield files[0]
            return
        with tempfile.TemporaryDirectory(prefix="catalog-") as tmp:
            for number, file in enumerate(files):
                (Path(tmp) / f"{number:05d}.parquet").symlink_to(file)
            yield Path(tmp)
        return
    if split or revision:
        raise ConfigurationError("--split and --revision apply to hf:// catalogs only")
    if not location.startswith(("http://", "https://")):
        raise ConfigurationError(f"{location}: not an http(s):// or hf:// location")
    name = posixpath.basename(urllib.parse.urlsplit(location).path) or "catalog"
    with tempfile.TemporaryDirectory(prefix="catalog-") as tmp:
        target = Path(tmp) / name
        _download(location, target)
        yield target


def _download(url: str, target: Path) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": "fashion-clip-indexer"})
    try:
        with (
            urllib.request.urlopen(request, timeout=_TIMEOUT_S) as response,
            open(target, "wb") as out,
        ):
            shutil.copyfileobj(response, out, length=1 << 20)
    except urllib.error.HTTPError as exc:
        raise CatalogError(
            f"{url}: cannot download the catalog: HTTP {exc.code} {exc.reason}"
        ) from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise CatalogError(f"{url}: cannot download the catalog: {reason}") from None

"""Catalogs that live on the web: an `http(s)://` file downloaded to a temporary file.

The download streams to disk (a Parquet catalog of embedded pictures can be gigabytes), and
the reader then streams the local copy.
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
def remote_copy(location: str) -> Iterator[Path]:
    """A local file holding the catalog at `location`, removed when the block ends."""
    if location.startswith("hf://"):
        from fashion_clip.ingest.hub import hub_file  # huggingface_hub: only for hf://

        yield hub_file(location)
        return
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

"""Resolve a catalog row's `image` reference to something `fetch_bytes` can read, safely.

A reference is either absolute (`http(s)://…`, `s3://…`) or relative to the image root: a
local directory, an `s3://bucket/prefix` or an `http(s)://` base. Without `--images` the
root is the catalog's own folder (or S3 prefix). A relative reference never leaves the root:
`../secret.jpg` is refused, whatever kind of root it is.
"""

from __future__ import annotations

import posixpath
import urllib.parse
from pathlib import Path

from fashion_clip.errors import ConfigurationError, ImageLoadError
from fashion_clip.media import s3
from fashion_clip.media.images import is_remote


class ImageRoot:
    """Where relative image references point; `resolve` turns a reference into a source."""

    def __init__(self, root: str | None, catalog_location: str | None = None) -> None:
        self.explicit = root is not None
        if root is None and (catalog_location or "").startswith("hf://"):
            # A hub dataset has no folder of its own here: its pictures are embedded or URLs.
            self.kind, self.root, self._base = "none", "", "(none: pass --images)"
            return
        if root is None:
            root = _catalog_folder(catalog_location) if catalog_location else "."
        self.root = root
        if root.startswith(("http://", "https://")):
            self.kind = "http"
            self._base = root if root.endswith("/") else root + "/"
        elif root.startswith("s3://"):
            self.kind = "s3"
            s3.parse_s3_uri(root)  # refuses a URI without a bucket
            self._base = root
        elif "://" in root:
            raise ConfigurationError(
                f"--images {root}: unsupported scheme; use a directory, s3://bucket/prefix or "
                "an http(s):// base URL"
            )
        else:
            self.kind = "local"
            path = Path(root).expanduser()
            if not path.is_dir():
                raise ConfigurationError(f"--images {root}: no such directory")
            self._dir = path.resolve()
            self._base = str(self._dir)
            # The root as given too: an absolute reference may spell it without symlinks resolved.
            self._roots = {self._base, posixpath.normpath(str(path.absolute()))}

    def __str__(self) -> str:
        return self._base

    def resolve(self, reference: str) -> str:
        """The source to fetch for `reference`; `ImageLoadError` when it is refused."""
        reference = reference.strip()
        if is_remote(reference):
            return reference
        if "://" in reference:
            scheme = reference.split("://", 1)[0]
            raise ImageLoadError(
                reference,
                f"unsupported scheme {scheme!r}; use a relative path, http(s):// or s3://",
            )
        if "\x00" in reference:
            raise ImageLoadError(reference, "the reference holds a NUL character")
        if self.kind == "none":
            raise ImageLoadError(
                reference, "a path in a hub dataset needs --images ROOT to say where it points"
            )
        if reference.startswith("/"):
            return self._absolute_path(reference)
        relative = posixpath.normpath(reference)
        if relative == ".." or relative.startswith("../") or relative == ".":
            raise ImageLoadError(reference, f"the path leaves the image root {self._base}; refused")
        if self.kind == "local":
            return posixpath.join(self._base, relative)  # `relative` is normalised: no pathlib
        if self.kind == "s3":
            return s3.join_s3(self._base, relative)
        return self._base + urllib.parse.quote(relative, safe="/")

    def _absolute_path(self, reference: str) -> str:
        path = posixpath.normpath(reference)
        if self.kind != "local":
            raise ImageLoadError(
                reference, f"an absolute local path cannot be read from the image root {self._base}"
            )
        inside = any(path == root or path.startswith(root + "/") for root in self._roots)
        if self.explicit and not inside:
            raise ImageLoadError(reference, f"the path is outside the image root {self._base}")
        return path


def _catalog_folder(location: str) -> str:
    """The folder (or S3 prefix) holding the catalog: the default image root."""
    if location.startswith("s3://"):
        bucket, key = s3.parse_s3_uri(location)
        prefix = key.rsplit("/", 1)[0] if "/" in key else ""
        return f"s3://{bucket}/{prefix}"
    if location.startswith(("http://", "https://")):
        return location.split("?", 1)[0].rsplit("/", 1)[0] + "/"
    return str(Path(location).expanduser().resolve().parent)

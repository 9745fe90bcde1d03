"""Secrets kept out of what users and logs see: URLs shown without credentials, and error
text from other libraries scrubbed of the passwords and keys it may quote."""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable

HIDDEN = "***"
_MIN_SECRET = 4  # shorter "secrets" (a test's "x") would blank out ordinary words


def public_url(url: str) -> str:
    """`url` as it may be shown: scheme, host and port, without a `user:password@`, path or
    query (a key or password some set there, as `?api_key=`)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if not host:
        return "(set)"
    netloc = f"[{host}]" if ":" in host else host
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{parts.scheme}://{netloc}{f':{port}' if port else ''}"


def url_secrets(url: str | None) -> list[str]:
    """The parts of `url` that may be secret: its user, password and query values."""
    if not url:
        return []
    parts = urllib.parse.urlsplit(url)
    found = [url, parts.username or "", parts.password or ""]
    found += [value for _, value in urllib.parse.parse_qsl(parts.query)]
    return [text for text in found if text]


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """`text` with every secret (longest first, so a URL goes before its password) hidden."""
    for secret in sorted(
        {s for s in secrets if s and len(s) >= _MIN_SECRET}, key=len, reverse=True
    ):
        text = text.replace(secret, HIDDEN)
    return text

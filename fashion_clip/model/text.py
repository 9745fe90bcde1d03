"""Text as a person sees it on screen: what queries and labels are checked and encoded as."""

from __future__ import annotations

import unicodedata


def visible_text(value: object) -> str:
    """Whitespace-normalised text with its invisible characters dropped.

    Control characters (NUL, escapes) count as spaces and format characters (zero-width
    spaces and joiners, byte-order marks) as nothing, so text that shows nothing on screen
    is empty rather than a query or a label the model would answer arbitrarily.
    """
    kept = []
    for char in str(value if value is not None else ""):
        kind = unicodedata.category(char)
        kept.append(" " if kind == "Cc" else "" if kind == "Cf" else char)
    return " ".join("".join(kept).split())


def split_items(text: str) -> list[str]:
    """Comma- or newline-separated text -> its non-empty parts (ends stripped, order kept).

    Both separators: a label box two lines tall invites one label per line as often as
    commas, and the app and the Python API read labels alike.
    """
    return [part.strip() for part in text.replace("\n", ",").split(",") if visible_text(part)]

"""Exceptions meant for users: each message names the input and what is wrong.

The library raises these and never prints or exits; the edges (the indexer's CLI, the
Gradio app) turn them into exit codes and `gr.Error` messages.
"""

from __future__ import annotations

import numbers


class FashionCLIPError(Exception):
    """Base class of every error this project raises on purpose."""


class ConfigurationError(FashionCLIPError):
    """A setting or argument has a value that cannot work."""


class ModelLoadError(FashionCLIPError):
    """A model could not be loaded (unknown name, no access, unreachable hub, bad folder)."""


class ModelUnavailableError(ModelLoadError):
    """The model could not be fetched because the hub is unreachable and nothing is cached."""


class InvalidInputError(FashionCLIPError, ValueError):
    """A query, label list or argument from the user is empty or malformed."""


class ImageLoadError(FashionCLIPError):
    """An image could not be fetched or decoded; `source` names where it came from."""

    def __init__(self, source: object, problem: str) -> None:
        self.source = _describe(source)
        self.problem = problem
        super().__init__(f"{self.source}: {problem}")


class CatalogError(FashionCLIPError):
    """A catalog (file, row or dataset definition) is malformed."""


class StoreError(FashionCLIPError):
    """The vector store refused an operation or could not be reached."""


class ModelMismatchError(StoreError):
    """A collection was built with another model (or dimension) than the one in use.

    `mismatch` says which models differ, without the advice the message adds, for callers
    that give their own (the app when the demo model stands in for an unreachable one).
    """

    def __init__(self, message: str, *, mismatch: str | None = None) -> None:
        self.mismatch = mismatch or message
        super().__init__(message)


class StoreLockedError(StoreError):
    """An embedded collection is already open in another process (or another store object)."""


def _describe(source: object) -> str:
    """A short, printable name for an image source (never dumps raw bytes)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<{len(source)} bytes>"
    name = getattr(source, "filename", None) or getattr(source, "name", None)
    if name:
        return str(name)
    text = str(source)
    return text if len(text) <= 200 else text[:197] + "..."


def check_count(value: object, name: str = "batch_size") -> int:
    """`value` as an int of at least 1, or an `InvalidInputError` naming `name`.

    For batch sizes (0 or less would skip the work and return uninitialised memory) and
    result counts such as `top_k`.
    """
    # bool is an int subclass; True as a count is a mistake, not 1. Integral: numpy's too.
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidInputError(f"{name} must be a whole number, got {value!r}")
    if value < 1:
        raise InvalidInputError(f"{name} must be 1 or more, got {value}")
    return int(value)

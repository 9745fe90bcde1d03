"""Library errors become `gr.Error` messages here, at the app's edge.

A caller's mistake (a `FashionCLIPError`) is answered with the library's own message, which
names the input; the store's trouble with a plain "try again" (its message names servers and
folders, for the log only); anything unexpected with a short apology and the traceback in
the log, so one bad request never stops the app.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec, TypeVar

import gradio as gr

from fashion_clip.errors import FashionCLIPError, ImageLoadError, StoreError
from space.inputs import IMAGE_HINT, IMAGE_OR_URL_HINT

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")
_TAKES_URLS = {"image_search"}  # handlers whose tab has an image URL box, for the hints


def user_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Answer library errors with `gr.Error` messages that say what to do.

    A refused input logs one line. Gradio prints the traceback of every `gr.Error` (with the
    library error it was raised from: two tracebacks, ~50 lines per typo) unless told not
    to; a bad input is not the server's fault, so only real failures log a traceback, once.
    """

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except ImageLoadError as exc:
            hint = IMAGE_OR_URL_HINT if fn.__name__ in _TAKES_URLS else IMAGE_HINT
            message = f"Cannot read the image {_short(exc.source)}: {exc.problem}. {hint}"
            raise refusal(fn.__name__, message) from exc
        except StoreError as exc:
            # The store's trouble, not the caller's: its message names the Qdrant server or
            # the store's folder, which are for the log, not for anyone on the internet.
            log.error("%s failed: %s", fn.__name__, exc)
            raise gr.Error(
                "The product store cannot answer right now; please try again.",
                print_exception=False,
            ) from exc
        except FashionCLIPError as exc:
            raise refusal(fn.__name__, _sentence(str(exc))) from exc
        except Exception as exc:
            log.exception("%s failed", fn.__name__)  # the traceback, once
            raise gr.Error(
                f"Something went wrong on our side ({type(exc).__name__}); please try again.",
                print_exception=False,
            ) from exc

    return wrapper


def refusal(what: str, message: str) -> gr.Error:
    """`gr.Error(message)` for a bad input, logged as one line and printed by no one."""
    log.info("%s refused: %s", what, message)
    return gr.Error(message, print_exception=False)


def _short(source: str) -> str:
    """An upload's file name rather than the server's temporary path."""
    if source.startswith(("http://", "https://", "s3://", "<")):
        return source
    return Path(source).name or source


def _sentence(text: str) -> str:
    text = text.strip()
    return text[:1].upper() + text[1:] if text else "Invalid input."

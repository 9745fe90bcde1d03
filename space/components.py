"""Gradio adaptations the app needs: an image input that leaves decoding to the handlers,
catalog pictures served in place, and handlers bound to the shared backend.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import gradio as gr
import numpy as np
from gradio.data_classes import ImageData
from pydantic import ConfigDict

from fashion_clip.tasks.overlay import colorize
from space.errors import refusal
from space.handlers import Backend
from space.inputs import IMAGE_HINT
from space.results import Pictures, gallery_data

log = logging.getLogger(__name__)
C = TypeVar("C", bound=gr.components.Component)


def uploaded_image(**kwargs: Any) -> gr.Image:
    """`gr.Image` that hands the handler the uploaded file as it is, never decoded here.

    Plain `gr.Image` opens every upload with PIL before the handler runs, so a corrupt or
    non-image file fails with an anonymous error. The handlers decode with the project's
    loader instead, which names the file and the problem (and refuses decompression bombs).
    (An instance method, not a subclass: Gradio writes a `.pyi` stub next to the module of
    every Component subclass.)
    """
    image = gr.Image(type="filepath", image_mode=None, **kwargs)
    image.data_model = _UploadData  # an API caller's 123 for the picture: a message, not a 500
    decode = image.preprocess

    def keep_upload(payload: Any) -> str | None:
        if payload is not None and payload.path and not (payload.url or "").startswith("data:"):
            return str(payload.path)  # already checked by Gradio to be one of its uploads
        try:  # a webcam frame or pasted image arriving as a data: URL
            return decode(payload)
        except Exception as exc:
            raise refusal("upload", f"Cannot read the image: {exc}. {IMAGE_HINT}") from exc

    image.preprocess = keep_upload  # type: ignore[method-assign]
    return image


class _UploadData(ImageData):
    """Gradio's image payload, refusing with a message what is not one (a number, a list).

    Gradio validates the payload before any handler runs and answers a wrong type with an
    anonymous error and a traceback in the log. The check sits outside pydantic's own
    validation, which would wrap our `gr.Error` (a ValueError) into its anonymous one.
    """

    model_config = ConfigDict(title="ImageData")  # the API's schema stays Gradio's own

    @classmethod
    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any) -> ImageData:
        if not isinstance(obj, (dict, ImageData)):
            raise refusal(
                "upload",
                f"The image must be an uploaded file (gradio_client: handle_file(path)), not "
                f"{type(obj).__name__} {repr(obj)[:40]}. {IMAGE_HINT}",
            )
        return super().model_validate(obj, *args, **kwargs)


def checked_text(**kwargs: Any) -> gr.Textbox:
    """`gr.Textbox` handing the handler what an API caller sent (a number, a list) for it to
    refuse by name; Gradio's own would turn it into text (`str([…])`) and search that."""
    return checked_by_handler(gr.Textbox(**kwargs))


def checked_by_handler(component: C) -> C:
    """`component` handing its value to the handler as sent, for the handler to check.

    Gradio's own checks answer an API caller with messages that name no input ("Value 0 is
    less than minimum value 1."); the handlers check the same values and say which input is
    wrong and what would work, as the text search (which skips preprocessing) always did.
    """
    component.preprocess = lambda payload: payload  # type: ignore[method-assign]
    return component


def offered_or_unused(select: gr.Dropdown, unused: str) -> gr.Dropdown:
    """`select`, or where it has no choices (the collection lacks its field), declared to API
    callers as a list of texts to leave empty, saying so (`unused`).

    Gradio declares a dropdown's choices as an enum, and an empty one reads
    `list[Literal[]]` in `view_api()`: a type no value fits, with no word of why. The
    handler refuses a value sent anyway, naming the filter.
    """
    if not select.choices:
        schema = {"type": "array", "items": {"type": "string"}, "additional_description": unused}
        select.api_info = lambda: schema  # type: ignore[method-assign]
    return select


def heatmap_legend() -> str:
    """HTML for under the localize heatmap: the colour ramp, what its ends mean, and that the
    scale is the picture's own (its best spot is red even where the text is absent)."""
    # The overlay's own ramp, so the legend cannot drift from what is drawn.
    colours = colorize(np.linspace(0.0, 1.0, 7)[None, :])[0]  # (7, 3) uint8
    stops = ", ".join(f"rgb({r}, {g}, {b})" for r, g, b in colours)
    bar = (
        f'<div style="height: 10px; border-radius: 5px; '
        f'background: linear-gradient(to right, {stops});"></div>'
    )
    return (
        f"{bar}"
        '<div style="display: flex; justify-content: space-between; font-size: 0.85em;">'
        "<span>dark blue: least like the text</span><span>red: most like it</span></div>"
        '<p style="font-size: 0.85em; margin-top: 4px;">Colours are relative to this picture: '
        "its best match is always red and ringed, even if what you typed is not in it.</p>"
    )


def serve_in_place(folders: list[Path]) -> None:
    """Let Gradio serve the files in `folders` (`Pictures.static_paths`: the app's own
    folder, where catalog pictures are hard-linked; never the catalog's folder itself).

    Gradio checks every file a gallery returns against its static folders in order, resolving
    both paths each time (~0.15 ms a pair); with ours first, a 12-hit gallery costs one
    comparison per picture instead of three (Gradio's own icons come first otherwise).
    """
    gr.set_static_paths(folders)
    try:
        from gradio.data_classes import _StaticFiles  # optional: private, other Gradios lack it

        ours = {Path(folder).resolve() for folder in folders}
        rest = [path for path in _StaticFiles.all_paths if path not in ours]
        _StaticFiles.all_paths[:] = [*dict.fromkeys(Path(f).resolve() for f in folders), *rest]
    except (ImportError, AttributeError):  # another Gradio: only slower, never wrong
        log.debug("cannot reorder Gradio's static paths")


def with_picture_file(handler: Callable[..., Any], pictures: Pictures) -> Callable[..., Any]:
    """`handler` returning (picture, info), its picture saved by `pictures.keep` and given as
    a file the page fetches in place (see `Pictures.keep` for why not Gradio's cache)."""

    @functools.wraps(handler)
    def answer(*args: Any, **kwargs: Any) -> Any:
        picture, info = handler(*args, **kwargs)
        return pictures.keep(picture), info

    return answer


def with_gallery_data(handler: Callable[..., Any]) -> Callable[..., Any]:
    """`handler` returning (gallery items, hits), its gallery turned into the component's
    data (`results.gallery_data`), for an event that runs without Gradio's postprocessing."""

    @functools.wraps(handler)
    def answer(*args: Any, **kwargs: Any) -> Any:
        gallery, hits = handler(*args, **kwargs)
        return gallery_data(gallery), hits

    return answer


def bind(handler: Callable[..., Any], backend: Backend) -> Callable[..., Any]:
    """`handler` with `backend` filled in, keeping the other parameters' names.

    Gradio names API parameters after the function's own, so `gradio_client` users get
    `query=`, `limit=`, … rather than `param_0`.
    """

    @functools.wraps(handler)
    def bound(*args: Any, **kwargs: Any) -> Any:
        return handler(backend, *args, **kwargs)

    signature = inspect.signature(handler)
    bound.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=list(signature.parameters.values())[1:]
    )
    return bound

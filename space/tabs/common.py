"""What the tabs share: the queues their events join, and the pieces more than one tab shows
(filters, examples, a result gallery, keeping the last results after an error)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr

from fashion_clip.demo import DEMO_CATALOG_DIR
from space.components import checked_by_handler, offered_or_unused
from space.filters import Facets
from space.handlers import Backend
from space.inputs import DEFAULT_RESULTS, MAX_RESULTS

# Page-only events: no API endpoint, and no queue (they only move state around).
PAGE_ONLY: dict[str, Any] = {"api_visibility": "private", "queue": False}
# Examples to try, for a first visit (on a phone, often without a clothing photo at hand):
# the bundled demo catalog's pictures, which ship with the code whatever catalog is indexed.
DEMO_PICTURES = DEMO_CATALOG_DIR / "images"


@dataclass(frozen=True)
class Wiring:
    """What every tab's events need: the handlers' backend, and the two queues (`space.app`
    sizes them): `search` for text searches, `vision` for requests that run the vision tower."""

    backend: Backend
    search: dict[str, Any]  # Gradio's concurrency_id and concurrency_limit for the event
    vision: dict[str, Any]


def keep_results(
    event: Any, outputs: list[gr.components.Component], note: gr.Markdown | None = None
) -> None:
    """After `event` fails, its `outputs` keep showing the last good result, uncovered.

    The failure is answered by the handler's `gr.Error`: a toast on the page, an `AppError`
    with the same message for API callers. But Gradio also marks the failed event's outputs
    with an "Error" overlay that hides them until the visitor closes it. A page-only event
    that leaves the outputs as they are (`gr.skip()`) and shows no progress takes over their
    status from the failed one, which lifts the overlay. `note`, if any, is emptied: it was
    about the last result, and beside this error it would read as this one's.
    """
    notes = [] if note is None else [note]

    def kept() -> Any:
        values = (*[""] * len(notes), *[gr.skip() for _ in outputs])
        return values if len(values) > 1 else values[0]

    event.failure(
        kept,
        None,
        [*notes, *outputs],
        show_progress="hidden",
        api_visibility="private",
        queue=False,
    )


def filter_controls(facets: Facets) -> list[gr.components.Component]:
    """Category / colour / brand multi-selects, a price range and the result count.

    All are created for every collection (hidden when it lacks the field) so that the API's
    inputs are the same whatever catalog is behind it.
    """
    with gr.Accordion("Filters", open=False):
        with gr.Row():
            selects = [
                offered_or_unused(
                    gr.Dropdown(
                        choices=facets.choices(name),
                        value=[],
                        multiselect=True,
                        label=label,
                        visible=bool(facets.choices(name)),
                    ),
                    f"this collection has no {name} field: leave it empty",
                )
                for name, label in (
                    ("category", "Category"),
                    ("colour", "Colour"),
                    ("brand", "Brand"),
                )
            ]
        low, high = facets.price_range or (None, None)
        with gr.Row():
            prices = [
                gr.Number(
                    label=label,
                    value=None,
                    placeholder=f"{bound:g}" if bound is not None else None,
                    info="0 = no limit",  # Gradio shows an empty box as 0 (see build_filter)
                    visible=facets.price_field is not None,
                )
                for label, bound in (("Price from", low), ("Price to", high))
            ]
            limit = gr.Slider(1, MAX_RESULTS, value=DEFAULT_RESULTS, step=1, label="Results")
    # The handlers check these values and name the input at fault (for the image search,
    # which cannot skip Gradio's preprocessing: its upload needs it).
    return [checked_by_handler(control) for control in (*selects, *prices, limit)]


def price_boxes(filters: list[gr.components.Component]) -> list[gr.components.Component]:
    """The "Price from" and "Price to" boxes among `filter_controls`' controls."""
    return filters[3:5]


def demo_pictures(names: list[str]) -> list[list[str]]:
    """Example rows of one bundled picture each."""
    return [[str(DEMO_PICTURES / name)] for name in names]


def examples(
    rows: list[list[str]],
    inputs: list[gr.components.Component],
    elem_id: str,
    button_id: str,
    *,
    then: tuple[Callable[[], Any], list[gr.components.Component]] | None = None,
) -> gr.Examples:
    """Examples that fill `inputs` when clicked, then press the tab's button (`button_id`):
    the visitor sees the answer at once, through the very event a press runs. Nothing is
    cached or run ahead, and the click is the page's own (no API endpoint, callable or
    listed). `then`, a function and its outputs, runs between the two: what it sets is
    what the search reads (a `change` event of the inputs may answer after the press)."""
    shown = gr.Examples(
        rows,
        inputs,
        label="Try",
        cache_examples=False,
        api_visibility="private",
        elem_id=elem_id,
    )
    loaded = shown.load_input_event
    if then is not None:
        loaded = loaded.then(then[0], None, then[1], **PAGE_ONLY)
    loaded.then(
        None,
        js=f"() => {{ document.querySelector('#{button_id}')?.click(); }}",
        queue=False,
        api_visibility="private",
    )
    return shown


def result_gallery(elem_id: str) -> gr.Gallery:
    """A tab's results: shown, never uploaded to. (Gradio makes a component that is some
    event's input take uploads, unless told not to: an upload showed as a huge "result".)"""
    return gr.Gallery(
        label="Results",
        interactive=False,
        columns=4,
        height="auto",
        object_fit="contain",
        allow_preview=False,
        elem_id=elem_id,
        type="filepath",  # as an input ("More results"), the shown pictures' paths, not pixels
    )


def more_button(tab: str) -> gr.Button:
    """ "More results" under a tab's gallery: shown while the last page came back full."""
    return gr.Button("More results", visible=False, size="sm", elem_id=f"{tab}-more")


def without_offset(ranking: list[gr.components.Component]) -> list[gr.components.Component]:
    """`ranking_controls`' controls but the offset (the page's "More results" sets it)."""
    return [control for control in ranking if not (control.elem_id or "").endswith("-offset")]


def narrowing(filters: list[gr.components.Component]) -> list[gr.components.Component]:
    """The controls among `filter_controls`' that narrow the results (not the count)."""
    return filters[:5]


def ranking_controls(
    tab: str, sorts: list[str], *, with_mode: bool
) -> list[gr.components.Component]:
    """Match mode (text search only), sort (among `sorts`: what the collection can sort by,
    `Facets.sorts`), offset (hidden: `more_button` pages) and diversity, in one row; the
    handler checks each value and names the one at fault."""
    controls: list[gr.components.Component] = []
    with gr.Row():
        if with_mode:
            controls.append(
                gr.Radio(
                    ["hybrid", "semantic", "keyword"],
                    value="hybrid",
                    label="Match",
                    info="meaning and words, meaning only, words only",
                    elem_id=f"{tab}-mode",
                )
            )
        controls.append(
            gr.Dropdown(
                sorts,
                value="relevance",
                label="Sort",
                allow_custom_value=True,
                elem_id=f"{tab}-sort",
            )
        )
        # The API's page input; on the page "More results" asks for the next page instead
        # (a shopper counts nothing), and a search from the page always starts at the top.
        controls.append(gr.Number(value=0, label="Offset", visible=False, elem_id=f"{tab}-offset"))
        controls.append(
            gr.Slider(0, 1, value=0, step=0.1, label="Diversity", elem_id=f"{tab}-diversity")
        )
    return [checked_by_handler(control) for control in controls]

""" "More results" under the Text and Image results: the next page of the search on show.

The inputs a search runs with are kept as it starts, and become the search on show once it
succeeds. "More results" pages that search: what was typed or chosen since, without pressing
Search, waits for the next search rather than being appended under the old one's results.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr

from space import handlers
from space.tabs.common import PAGE_ONLY, Wiring, keep_results


@dataclass(frozen=True)
class SearchOnShow:
    """A tab's searches, each as its handler's keywords (no offset: the page starts at the
    top, and "More results" pages on)."""

    pending: gr.State  # the inputs of the search under way
    shown: gr.State  # those of the search whose results are on show

    @classmethod
    def create(cls) -> SearchOnShow:
        """Made inside the tab: a component made outside every tab lands among them."""
        return cls(gr.State(None), gr.State(None))


def remember_inputs(
    memory: SearchOnShow,
    triggers: list[Any],
    inputs: list[gr.components.Component],
    search: Callable[..., Any],
    **options: Any,
) -> None:
    """Keep what a search on `triggers` runs with (`inputs`, in `search`'s order), by name.

    Wire it before the search: the page runs the events of one trigger in turn, so the
    inputs are kept before the search reads them, and any later edit is not among them.
    `options`: the search event's own (`preprocess`), so that both read the same values.
    """
    names = list(inspect.signature(search).parameters)[1:]  # after the backend

    def kept(*values: Any) -> dict[str, Any]:
        asked = dict(zip(names, values, strict=True))
        asked.pop("offset", None)
        return asked

    gr.on(triggers, kept, inputs, memory.pending, **PAGE_ONLY, **options)


def show_search(event: Any, memory: SearchOnShow, hits: gr.JSON, more: gr.Button) -> None:
    """After a search (`event`) succeeds, it is the search on show; "More results" shows if
    its page came back full."""

    def on_show(asked: dict[str, Any] | None, found: list[dict[str, Any]] | None) -> Any:
        full = asked is not None and handlers.more_available(found, asked.get("limit"))
        return asked, gr.Button(visible=full)

    event.success(on_show, [memory.pending, hits], [memory.shown, more], **PAGE_ONLY)


def wire_more(
    wiring: Wiring,
    search: Callable[..., handlers.SearchOutput],
    memory: SearchOnShow,
    gallery: gr.Gallery,
    hits: gr.JSON,
    more: gr.Button,
    queue: dict[str, Any],
) -> None:
    """ "More results": the search on show from the number of results shown, appended; the
    button hides once a page comes back short. `queue`: the search's concurrency group."""

    def next_page(
        shown: list[Any] | None, found: list[dict[str, Any]] | None, asked: dict[str, Any] | None
    ) -> tuple[Any, ...]:
        page = handlers.search_on_show(search, wiring.backend, asked)
        pictures, everything = handlers.more_results(shown, found, page)
        added = everything[len(found or []) :]
        limit = (asked or {}).get("limit")
        return pictures, everything, gr.Button(visible=handlers.more_available(added, limit))

    added = more.click(
        next_page,
        [gallery, hits, memory.shown],
        [gallery, hits, more],
        api_visibility="private",
        **queue,
    )
    keep_results(added, [gallery, hits])

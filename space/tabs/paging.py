""" "More results" under the Text and Image results: the next page of the search on show.

Each search returns, beside its results, the inputs it ran with (to a state, which the API
does not show), and they become the search on show once it succeeds. "More results" pages
that search: what was typed or chosen since, without pressing Search, waits for the next
search rather than being appended under the old one's results. Kept by the search itself,
they cannot be another press's: a second press while a search runs does not mix its inputs
with the first one's results.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr

from space import handlers
from space.tabs.common import PAGE_ONLY, Wiring, keep_results


@dataclass(frozen=True)
class SearchOnShow:
    """A tab's search on show, as its handler's keywords (no offset: the page starts at the
    top, and "More results" pages on)."""

    shown: gr.State

    @classmethod
    def create(cls) -> SearchOnShow:
        """Made inside the tab: a component made outside every tab lands among them."""
        return cls(gr.State(None))


def telling_inputs(
    answer: Callable[..., tuple[Any, ...]], search: Callable[..., Any]
) -> Callable[..., tuple[Any, ...]]:
    """`answer` (a search event's function, taking `search`'s inputs after the backend, in
    order) returning also those inputs by name, offset left out: for `SearchOnShow.shown`,
    the event's last output."""
    names = list(inspect.signature(search).parameters)[1:]  # after the backend

    @functools.wraps(answer)  # the API keeps the parameters' names
    def answered(*values: Any) -> tuple[Any, ...]:
        asked = dict(zip(names, values, strict=True))
        asked.pop("offset", None)
        return (*answer(*values), asked)

    return answered


def show_search(event: Any, memory: SearchOnShow, hits: gr.JSON, more: gr.Button) -> None:
    """After a search (`event`, which set `memory.shown`) succeeds, "More results" shows if
    its page came back full."""

    def on_show(asked: dict[str, Any] | None, found: list[dict[str, Any]] | None) -> Any:
        full = asked is not None and handlers.more_available(found, asked.get("limit"))
        return gr.Button(visible=full)

    event.success(on_show, [memory.shown, hits], [more], **PAGE_ONLY)


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

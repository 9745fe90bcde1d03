"""The "Text" tab (`/text_search`): a query, "less of" text and filters; a click on a result
likes or dislikes it and searches again; `/?q=…` links run a search when the page opens."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from space import handlers
from space.components import bind, with_gallery_data
from space.filters import Facets
from space.tabs.common import (
    PAGE_ONLY,
    Wiring,
    examples,
    filter_controls,
    keep_results,
    more_button,
    narrowing,
    price_boxes,
    ranking_controls,
    result_gallery,
    without_offset,
)
from space.tabs.paging import SearchOnShow, show_search, telling_inputs, wire_more

TEXT_EXAMPLES = ["red summer dress", "striped shirt", "black shoes", "blue checked skirt"]
MORE, LESS = "More like this", "Less like this"
NO_EXAMPLES: dict[str, Any] = {"like": [], "unlike": [], "names": {}}


@dataclass(frozen=True)
class TextTab:
    """The tab's controls, for its events and the deep link."""

    query: gr.Textbox
    negative: gr.Textbox
    button: gr.Button
    filters: list[gr.components.Component]
    mode: gr.Radio
    examples_note: gr.Markdown
    clear_button: gr.Button
    note: gr.Markdown  # says why no results show
    gallery: gr.Gallery
    more: gr.Button  # "More results": the next page, appended
    hits: gr.JSON
    like_ids: gr.Textbox  # API-only: ids of liked / disliked examples (the page keeps its own)
    unlike_ids: gr.Textbox
    examples: gr.State  # the page's liked and disliked examples, with their captions
    ranking: list[gr.components.Component]  # match mode, sort, offset, diversity
    memory: SearchOnShow  # what the search on show ran with: "More results" pages it

    @property
    def searched_by(self) -> list[gr.components.Component]:
        """The inputs a search reads, in `/text_search`'s order, before the example ids."""
        return [self.query, self.negative, *self.filters]

    @property
    def ranked_by(self) -> list[gr.components.Component]:
        """Match mode, sort and diversity: what the page's searches rank by (the offset is
        the API's; the page starts at the top, and "More results" pages on)."""
        return without_offset(self.ranking)


def build_text_tab(wiring: Wiring, facets: Facets) -> TextTab:
    """Lay out the tab and wire its search and its result clicks."""
    with gr.Tab("Text", id="text"):
        tab = _layout(facets)
    _wire_search(tab, wiring)
    _wire_clicks(tab, wiring)
    wire_more(
        wiring, handlers.text_search, tab.memory, tab.gallery, tab.hits, tab.more, wiring.search
    )
    return tab


def _layout(facets: Facets) -> TextTab:
    with gr.Row(equal_height=True):
        query = gr.Textbox(label="Search", placeholder="red summer dress", scale=4, elem_id="query")
        negative = gr.Textbox(label="Less of", placeholder="stripes", scale=2)
        button = gr.Button("Search", variant="primary", scale=1, elem_id="search-button")
    examples([[text] for text in TEXT_EXAMPLES], [query], "text-examples", "search-button")
    filters = filter_controls(facets)
    ranking = ranking_controls("text", facets.sorts(), with_mode=True)
    with gr.Row():
        mode = gr.Radio([MORE, LESS], value=MORE, label="Clicking a result shows", scale=2)
        examples_note = gr.Markdown(elem_id="examples")
        clear_button = gr.Button("Clear examples", size="sm", scale=0, min_width=140)
    note = gr.Markdown(elem_id="text-note")
    gallery = result_gallery("text-results")
    more = more_button("text")
    with gr.Accordion("Results as JSON", open=False):
        hits = gr.JSON(label="Hits")
    return TextTab(
        query=query,
        negative=negative,
        button=button,
        filters=filters,
        mode=mode,
        examples_note=examples_note,
        clear_button=clear_button,
        note=note,
        gallery=gallery,
        more=more,
        hits=hits,
        like_ids=gr.Textbox(visible=False, label="More like (ids)"),
        unlike_ids=gr.Textbox(visible=False, label="Less like (ids)"),
        examples=gr.State(NO_EXAMPLES),
        ranking=ranking,
        memory=SearchOnShow.create(),
    )


def _wire_search(tab: TextTab, wiring: Wiring) -> None:
    # Enter in a text box or a price box searches, as the button does (one endpoint).
    triggers = [
        tab.button.click,
        tab.query.submit,
        tab.negative.submit,
        *(price.submit for price in price_boxes(tab.filters)),
    ]
    inputs = [*tab.searched_by, tab.like_ids, tab.unlike_ids, *tab.ranking]
    answer = with_gallery_data(bind(handlers.text_search, wiring.backend))
    search = gr.on(
        triggers,
        telling_inputs(answer, handlers.text_search),
        inputs,
        [tab.gallery, tab.hits, tab.memory.shown],
        api_name="text_search",
        api_description="Products for a text query: gallery and hits {id, score, caption, "
        "payload}. Optional: 'less of' text, filters, result count, liked/disliked ids.",
        # Gradio's pre- and postprocessing would hand each of the 10 inputs and 2 outputs
        # to a worker thread in turn; the raw values are what the handler reads anyway
        # (it checks them itself), and it returns the gallery's own data. Under 16
        # callers that is the difference between +121-127 ms and -17 to +20 ms over the
        # trivial endpoint (demo model, benchmarks/HISTORY.md).
        preprocess=False,
        postprocess=False,
        **wiring.search,
    )
    # A new search starts over: the examples clicked for the old one no longer apply.
    forget = (lambda: (NO_EXAMPLES, ""), None, [tab.examples, tab.examples_note])
    search.success(*forget, **PAGE_ONLY)
    # A page-only note, so the API still answers an empty gallery and an empty hit list.
    search.success(handlers.results_note, *_note_io(tab), **PAGE_ONLY)
    show_search(search, tab.memory, tab.hits, tab.more)
    # A failed search answers with an error toast and leaves the outputs as they were;
    # the old note ("No products match these filters") would read as this search's.
    keep_results(search, [tab.gallery, tab.hits], tab.note)
    tab.clear_button.click(*forget, **PAGE_ONLY)


def _note_io(tab: TextTab) -> tuple[list[gr.components.Component], gr.Markdown]:
    """`handlers.results_note`'s inputs and output on this tab."""
    return [tab.hits, *narrowing(tab.filters)], tab.note


def _wire_clicks(tab: TextTab, wiring: Wiring) -> None:
    """A click on a result: like (or dislike) it, and search again with the examples."""
    backend = wiring.backend

    def pick(
        hits: list[dict[str, Any]] | None,
        state: dict[str, Any],
        how: str,
        query: str | None,
        negative: str | None,
        categories: list[str] | None,
        colours: list[str] | None,
        brands: list[str] | None,
        price_min: float | None,
        price_max: float | None,
        limit: float | None,
        mode: str | None,  # ranked as the search that showed the hits
        sort: str | None,
        diversity: float | None,
        evt: gr.SelectData,
    ) -> tuple[Any, ...]:
        like, unlike = handlers.add_example(hits, evt.index, how, state["like"], state["unlike"])
        asked = {
            "query": query, "negative": negative, "categories": categories,
            "colours": colours, "brands": brands, "price_min": price_min,
            "price_max": price_max, "limit": limit, "like_ids": like, "unlike_ids": unlike,
            "mode": mode, "sort": sort, "diversity": diversity,
        }  # fmt: skip
        gallery, found = handlers.text_search(backend, **asked)
        chosen = hits[evt.index]  # type: ignore[index] (add_example checked it)
        names = {**state.get("names", {}), str(chosen["id"]): chosen["caption"]}
        chosen_now = {"like": like, "unlike": unlike, "names": names}
        # New results: no tile stays highlighted from the click that asked for them.
        return gr.Gallery(value=gallery, selected_index=None), found, chosen_now, asked

    picked = tab.gallery.select(
        pick,
        [tab.hits, tab.examples, tab.mode, *tab.searched_by, *tab.ranked_by],
        [tab.gallery, tab.hits, tab.examples, tab.memory.shown],
        api_visibility="private",
        **wiring.search,
    )
    picked.success(handlers.examples_note, tab.examples, tab.examples_note, **PAGE_ONLY).success(
        handlers.results_note, *_note_io(tab), **PAGE_ONLY
    )
    show_search(picked, tab.memory, tab.hits, tab.more)
    keep_results(picked, [tab.gallery, tab.hits, tab.examples], tab.note)


def wire_deep_link(demo: gr.Blocks, tab: TextTab, wiring: Wiring) -> None:
    """`/?q=red+dress` fills the query box and runs the search when the page opens."""
    backend = wiring.backend

    def deep_link(request: gr.Request) -> tuple[Any, ...]:
        text = (request.query_params.get("q") or "").strip() if request else ""
        if not text:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        try:
            gallery, hits = handlers.text_search(backend, text)
        except gr.Error as exc:
            # Said beside the box, which keeps the link's text to fix: raised here, the
            # error would cover the query box and the results with Gradio's overlay.
            return text, [], [], f"**This link's search cannot run.** {exc.message}", None
        # The search on show, which "More results" pages: the link's text, the rest default.
        return text, gallery, hits, handlers.results_note(hits), {"query": text}

    linked = demo.load(
        deep_link,
        None,
        [tab.query, tab.gallery, tab.hits, tab.note, tab.memory.shown],
        api_visibility="private",
        **wiring.search,
    )
    show_search(linked, tab.memory, tab.hits, tab.more)

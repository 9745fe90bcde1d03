"""The "Image" tab (`/image_search`): products that look like a picture (an upload, the
webcam, the clipboard or a URL), optionally changed by a text ("same, but in blue")."""

from __future__ import annotations

from typing import Any

import gradio as gr

from space import handlers
from space.components import bind, checked_by_handler, checked_text, uploaded_image
from space.filters import Facets
from space.inputs import is_missing
from space.tabs.common import (
    PAGE_ONLY,
    Wiring,
    demo_pictures,
    examples,
    filter_controls,
    keep_results,
    more_button,
    narrowing,
    price_boxes,
    ranking_controls,
    result_gallery,
)
from space.tabs.paging import SearchOnShow, show_search, telling_inputs, wire_more

IMAGE_EXAMPLES = ["demo-0081.jpg", "demo-0042.jpg", "demo-0281.jpg"]  # dress, shirt, shoes


def build_image_tab(wiring: Wiring, facets: Facets) -> None:
    """Lay out the tab and wire its search."""
    with gr.Tab("Image", id="image"), gr.Row():
        with gr.Column(scale=1):
            image = uploaded_image(
                label="Image",
                sources=["upload", "webcam", "clipboard"],
                height=280,
                elem_id="search-image",
            )
            url = checked_text(
                label="…or an image URL",
                placeholder="https://example.com/shirt.jpg",
                elem_id="image-url",
            )
            modifier = checked_text(label="Change it (optional)", placeholder="same, but in blue")
            box = checked_by_handler(
                gr.Textbox(
                    label="Region of the picture (optional)",
                    info="Click two opposite corners on the picture (the first shows as "
                    "[x, y]), or type them",
                    placeholder="[x0, y0, x1, y1] in the picture's pixels",
                    elem_id="image-box",
                )
            )
            region = gr.Image(
                label="Region searched",
                type="pil",
                interactive=False,
                visible=False,
                height=160,
                buttons=[],  # a preview: Gradio's share would fail off Spaces
                elem_id="image-region",
            )
            button = gr.Button("Find similar", variant="primary", elem_id="image-button")
            examples(
                demo_pictures(IMAGE_EXAMPLES),
                [image],
                "image-examples",
                "image-button",
                # The example's picture is new: its search must not use the last one's region.
                then=(_new_picture, [box, region, url]),
            )
        with gr.Column(scale=2):
            filters = filter_controls(facets)
            ranking = ranking_controls("image", facets.sorts(), with_mode=False)
            note = gr.Markdown(elem_id="image-note")
            gallery = result_gallery("image-results")
            more = more_button("image")
            with gr.Accordion("Results as JSON", open=False):
                hits = gr.JSON(label="Hits")
            memory = SearchOnShow.create()

    # Enter in the URL, "Change it" or a price box searches too, as on the text tab.
    triggers = [
        button.click,
        url.submit,
        modifier.submit,
        *(price.submit for price in price_boxes(filters)),
    ]
    searched_by = [image, modifier, *filters, url, box, *ranking]
    # Runs before the search (the page runs one trigger's events in turn).
    gr.on(triggers, _url_replaces_picture, [url, image], [image, box, region], **PAGE_ONLY)
    search = gr.on(
        triggers,
        telling_inputs(bind(handlers.image_search, wiring.backend), handlers.image_search),
        searched_by,
        [gallery, hits, memory.shown],
        api_name="image_search",
        api_description="Products that look like the image (optionally changed by a text, "
        "e.g. 'same, but in blue'): gallery and hits.",
        **wiring.vision,
    )
    search.success(handlers.results_note, [hits, *narrowing(filters)], note, **PAGE_ONLY)
    show_search(search, memory, hits, more)
    keep_results(search, [gallery, hits], note)
    _wire_region(image, box, region, url)
    wire_more(wiring, handlers.image_search, memory, gallery, hits, more, wiring.vision)


def _new_picture() -> tuple[Any, ...]:
    """A new picture: no region on it yet (nor its preview), and the URL box, which it
    replaces, emptied."""
    return "", gr.Image(value=None, visible=False), ""


def _url_replaces_picture(url: Any, picture: Any) -> tuple[Any, ...]:
    """Before a search from the page: a URL typed while a picture is loaded replaces it (a
    new picture empties the URL box, so the URL is the newer), with the picture's region.

    The API searches the picture when given both; on the page, the picture beside a URL
    typed after it would be searched while the URL was what the visitor just gave.
    """
    if is_missing(picture) or not isinstance(url, str) or not url.strip():
        return gr.skip(), gr.skip(), gr.skip()
    return None, "", gr.Image(value=None, visible=False)


def _wire_region(image: gr.Image, box: gr.Textbox, shown: gr.Image, url: gr.Textbox) -> None:
    """Two clicks on the picture, at opposite corners, fill the region box in the picture's
    own pixels (Gradio gives a click's position in them) and show the region as searched;
    so does Enter in the box. Another picture clears both, and the URL box."""

    def corner(region: str | None, evt: gr.SelectData) -> str:
        return handlers.region_corner(region, evt.index)

    def show(picture: Any, region: str | None) -> gr.Image:
        framed = handlers.region_searched(picture, region)  # a wrong box: said, in a toast
        return gr.Image(value=framed, visible=framed is not None)

    def show_after_click(picture: Any, region: str | None) -> gr.Image:
        if region and region.count(",") == 1:  # one corner so far: nothing to show yet
            return gr.Image(value=None, visible=False)
        return show(picture, region)

    def changed(picture: Any) -> tuple[Any, ...]:
        if is_missing(picture):  # removed (or replaced by the URL): the URL stays
            return "", gr.Image(value=None, visible=False), gr.skip()
        return _new_picture()

    clicked = image.select(corner, box, box, **PAGE_ONLY)
    clicked.success(show_after_click, [image, box], shown, **PAGE_ONLY)
    box.submit(show, [image, box], shown, **PAGE_ONLY)
    image.change(changed, image, [box, shown, url], **PAGE_ONLY)

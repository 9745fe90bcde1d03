"""The "Image" tab (`/image_search`): products that look like a picture (an upload, the
webcam, the clipboard or a URL), optionally changed by a text ("same, but in blue")."""

from __future__ import annotations

from typing import Any

import gradio as gr

from space import handlers
from space.components import bind, checked_by_handler, checked_text, uploaded_image
from space.filters import Facets
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
    show_more,
    without_offset,
)

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
                label="…or an image URL", placeholder="https://example.com/shirt.jpg"
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
            examples(demo_pictures(IMAGE_EXAMPLES), [image], "image-examples", "image-button")
        with gr.Column(scale=2):
            filters = filter_controls(facets)
            ranking = ranking_controls("image", facets.sorts(), with_mode=False)
            note = gr.Markdown(elem_id="image-note")
            gallery = result_gallery("image-results")
            more = more_button("image")
            with gr.Accordion("Results as JSON", open=False):
                hits = gr.JSON(label="Hits")

    # Enter in the URL, "Change it" or a price box searches too, as on the text tab.
    search = gr.on(
        [
            button.click,
            url.submit,
            modifier.submit,
            *(price.submit for price in price_boxes(filters)),
        ],
        bind(handlers.image_search, wiring.backend),
        [image, modifier, *filters, url, box, *ranking],
        [gallery, hits],
        api_name="image_search",
        api_description="Products that look like the image (optionally changed by a text, "
        "e.g. 'same, but in blue'): gallery and hits.",
        **wiring.vision,
    )
    search.success(handlers.results_note, [hits, *narrowing(filters)], note, **PAGE_ONLY)
    show_more(search, hits, filters[-1], more)
    keep_results(search, [gallery, hits], note)
    searched_by = [image, modifier, *filters, url, box]
    _wire_region(image, box, region)
    _wire_more(wiring, gallery, hits, more, searched_by, without_offset(ranking))


def _wire_more(
    wiring: Wiring,
    gallery: gr.Gallery,
    hits: gr.JSON,
    more: gr.Button,
    searched_by: list[gr.components.Component],
    ranked_by: list[gr.components.Component],
) -> None:
    """ "More results": the same search from the number of results shown, appended."""

    def more_of(shown: list[Any] | None, found: list[dict[str, Any]] | None, *values: Any) -> Any:
        searched, (sort, diversity) = values[: len(searched_by)], values[len(searched_by) :]

        def page(offset: int) -> handlers.SearchOutput:
            return handlers.image_search(
                wiring.backend, *searched, sort=sort, offset=offset, diversity=diversity
            )

        pictures, everything = handlers.more_results(shown, found, page)
        added = everything[len(found or []) :]
        limit = searched[len(searched_by) - 3]  # the Results slider, before url and box
        return pictures, everything, gr.Button(visible=handlers.more_available(added, limit))

    added = more.click(
        more_of,
        [gallery, hits, *searched_by, *ranked_by],
        [gallery, hits, more],
        api_visibility="private",
        **wiring.vision,
    )
    keep_results(added, [gallery, hits])


def _wire_region(image: gr.Image, box: gr.Textbox, shown: gr.Image) -> None:
    """Two clicks on the picture, at opposite corners, fill the region box in the picture's
    own pixels (Gradio gives a click's position in them) and show the region as searched;
    so does Enter in the box; another picture clears both."""

    def corner(region: str | None, evt: gr.SelectData) -> str:
        return handlers.region_corner(region, evt.index)

    def show(picture: Any, region: str | None) -> gr.Image:
        framed = handlers.region_searched(picture, region)  # a wrong box: said, in a toast
        return gr.Image(value=framed, visible=framed is not None)

    def show_after_click(picture: Any, region: str | None) -> gr.Image:
        if region and region.count(",") == 1:  # one corner so far: nothing to show yet
            return gr.Image(value=None, visible=False)
        return show(picture, region)

    clicked = image.select(corner, box, box, **PAGE_ONLY)
    clicked.success(show_after_click, [image, box], shown, **PAGE_ONLY)
    box.submit(show, [image, box], shown, **PAGE_ONLY)
    # The update is made when the event runs: a component made here, while the page is
    # being built, would be placed on it (among the tabs, where it shifted them).
    image.change(lambda: ("", gr.Image(value=None, visible=False)), None, [box, shown], **PAGE_ONLY)

"""The "Image" tab (`/image_search`): products that look like a picture (an upload, the
webcam, the clipboard or a URL), optionally changed by a text ("same, but in blue")."""

from __future__ import annotations

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
    narrowing,
    price_boxes,
    ranking_controls,
    result_gallery,
)

IMAGE_EXAMPLES = ["demo-0081.jpg", "demo-0042.jpg", "demo-0281.jpg"]  # dress, shirt, shoes


def build_image_tab(wiring: Wiring, facets: Facets) -> None:
    """Lay out the tab and wire its search."""
    with gr.Tab("Image", id="image"), gr.Row():
        with gr.Column(scale=1):
            image = uploaded_image(
                label="Image", sources=["upload", "webcam", "clipboard"], height=280
            )
            url = checked_text(
                label="…or an image URL", placeholder="https://example.com/shirt.jpg"
            )
            modifier = checked_text(label="Change it (optional)", placeholder="same, but in blue")
            button = gr.Button("Find similar", variant="primary", elem_id="image-button")
            examples(demo_pictures(IMAGE_EXAMPLES), [image], "image-examples", "image-button")
        with gr.Column(scale=2):
            filters = filter_controls(facets)
            box = checked_by_handler(
                gr.Textbox(
                    label="Region of the picture (optional)",
                    placeholder="[x0, y0, x1, y1] in the picture's pixels",
                    elem_id="image-box",
                )
            )
            ranking = ranking_controls("image", with_mode=False)
            note = gr.Markdown(elem_id="image-note")
            gallery = result_gallery("image-results")
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
    keep_results(search, [gallery, hits], note)

"""The "Localize" tab (`/localize`): where in a picture a text's concept sits, as a heatmap
overlay and its peak in the picture's pixels."""

from __future__ import annotations

import os

import gradio as gr

from space import handlers
from space.components import (
    bind,
    checked_text,
    heatmap_legend,
    uploaded_image,
    with_picture_file,
)
from space.results import Pictures
from space.tabs.common import DEMO_PICTURES, Wiring, examples, keep_results, result_gallery

LOCALIZE_EXAMPLES = [("demo-0042.jpg", "collar"), ("demo-0001.jpg", "sleeve")]


def heatmap_buttons() -> list[str]:
    """The heatmap's corner buttons: download and fullscreen, and Gradio's share (a post to
    the Space's discussions) only on a Space: anywhere else it fails ("Must be on Spaces")."""
    return ["download", "fullscreen", *(["share"] if os.environ.get("SPACE_ID") else [])]


def build_localize_tab(wiring: Wiring, pictures: Pictures) -> None:
    """Lay out the tab and wire its localization; the overlay is served from `pictures`."""
    with gr.Tab("Localize", id="localize"), gr.Row():
        with gr.Column():
            image = uploaded_image(label="Image", height=320, elem_id="localize-image")
            concept = checked_text(label="What to find", placeholder="collar", elem_id="concept")
            button = gr.Button("Localize", variant="primary", elem_id="localize-button")
            examples(
                [[str(DEMO_PICTURES / name), text] for name, text in LOCALIZE_EXAMPLES],
                [image, concept],
                "localize-examples",
                "localize-button",
            )
        with gr.Column():
            heatmap = gr.Image(
                label="Heatmap", type="filepath", buttons=heatmap_buttons(), elem_id="heatmap"
            )
            gr.HTML(heatmap_legend(), elem_id="heatmap-legend")
            peak = gr.JSON(label="Peak", elem_id="peak")
            find = gr.Button("Find this in the catalog", elem_id="find-this")
            found = result_gallery("localize-results")
            with gr.Accordion("Results as JSON", open=False):
                found_hits = gr.JSON(label="Hits")

    localized = gr.on(
        [button.click, concept.submit],
        with_picture_file(bind(handlers.localize, wiring.backend), pictures),
        [image, concept],
        [heatmap, peak],
        api_name="localize",
        api_description="Heatmap of where the text's concept is in the image, and its "
        "peak {peak: [x, y], size: [width, height]} in the image's pixels.",
        **wiring.vision,
    )
    keep_results(localized, [heatmap, peak])
    # The region around the peak, searched as the image tab searches a box (page only).
    finding = find.click(
        bind(handlers.find_peak_region, wiring.backend),
        [image, peak],
        [found, found_hits],
        api_visibility="private",
        **wiring.vision,
    )
    keep_results(finding, [found, found_hits])

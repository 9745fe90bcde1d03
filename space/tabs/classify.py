"""The "Classify" tab (`/classify`): zero-shot probabilities of the labels typed (or of a
preset: the collection's categories, colours…) for a picture."""

from __future__ import annotations

import gradio as gr

from space import handlers
from space.components import bind, checked_text, uploaded_image
from space.filters import Facets
from space.tabs.common import PAGE_ONLY, Wiring, demo_pictures, examples, keep_results

CLASSIFY_EXAMPLES = ["demo-0246.jpg", "demo-0361.jpg", "demo-0321.jpg"]  # jacket, hat, bag


def build_classify_tab(wiring: Wiring, facets: Facets) -> None:
    """Lay out the tab and wire its presets and its classification."""
    with gr.Tab("Classify", id="classify"), gr.Row():
        with gr.Column():
            image = uploaded_image(label="Image", height=280, elem_id="classify-image")
            labels = checked_text(
                label="Labels (comma-separated or one per line)",
                value=facets.presets["category"],
                lines=2,
            )
            with gr.Row():
                presets = {
                    name: gr.Button(f"{name.title()} labels", size="sm") for name in facets.presets
                }
            button = gr.Button("Classify", variant="primary", elem_id="classify-button")
            examples(
                demo_pictures(CLASSIFY_EXAMPLES), [image], "classify-examples", "classify-button"
            )
        # Every label, most likely first: `num_top_classes` would also cut what the API
        # returns, and the endpoint promises a probability for each label given.
        probabilities = gr.Label(label="Probabilities", elem_id="probabilities")

    for name, preset in presets.items():
        preset.click(lambda text=facets.presets[name]: text, None, labels, **PAGE_ONLY)
    classified = gr.on(
        [button.click, labels.submit],
        bind(handlers.classify, wiring.backend),
        [image, labels],
        probabilities,
        api_name="classify",
        api_description="Zero-shot probabilities of the labels (at least two, comma-separated, "
        "one per line or a list) for the image.",
        **wiring.vision,
    )
    keep_results(classified, [probabilities])

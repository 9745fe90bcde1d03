"""The Gradio Blocks app: layout and wiring. What each event does lives in `space.handlers`.

    demo = build_demo(model, collection, settings)   # nothing is loaded here; all passed in
    demo.launch()

Every tab is also an API endpoint (`/text_search`, `/image_search`, `/classify`,
`/localize`); see the README's "Using the API". Events that run the model queue in two
concurrency groups, sized for a 2-vCPU Space: searches by text (cheap) never wait behind
requests that run the vision tower (tens to hundreds of ms each).
"""

from __future__ import annotations

import os
from typing import Any

import gradio as gr

from fashion_clip.demo import DEMO_CATALOG_DIR
from fashion_clip.model.clip import ClipModel
from fashion_clip.settings import Settings
from fashion_clip.store import Collection
from space import cache_sweep, handlers
from space.components import (
    bind,
    checked_by_handler,
    heatmap_legend,
    serve_in_place,
    uploaded_image,
    with_gallery_data,
    with_picture_file,
)
from space.filters import Facets, read_facets
from space.handlers import Backend
from space.inputs import DEFAULT_RESULTS, MAX_RESULTS
from space.page import ABOUT, header_lines
from space.results import Pictures

# Text searches (a text tower pass and an HNSW search: tens of ms of CPU) and vision
# requests (image search, classify, localize: a vision tower pass, up to hundreds of ms on
# CPU) queue apart, so a search box stays quick while someone localizes. Searches are not
# limited: short calls sharing the CPU finish sooner than short calls waiting in line (the
# load test, 16 callers on 2 vCPUs, ViT-B/32 over 100,000 points: text search +189 ms over the
# trivial endpoint at 2, +103 ms unlimited, +67-73 ms with one torch thread per query, see
# `handlers.thread_plan`; demo model +648 ms at 2, +72-123 ms unlimited; as shipped, with
# the event below skipping Gradio's processing: +5 to +21 ms for both). Vision requests run
# the model one at a time (`Backend.vision_slot`: a second would only queue inside torch);
# a few are let in at once so that one can fetch and decode its picture (a slow image URL
# takes up to `inputs.URL_DEADLINE_S`) while another uses the model.
SEARCH_GROUP, SEARCH_CONCURRENCY = "search", None
VISION_GROUP, VISION_CONCURRENCY = "vision", 4
# Requests waiting at once, all kinds: past it a caller is told the queue is full at once,
# instead of one client piling up thousands of picture requests (each holding its upload)
# for everyone else to wait behind. 64 one-at-a-time vision calls are already a minute's work.
QUEUE_SIZE = 64
MORE, LESS = "More like this", "Less like this"
NO_EXAMPLES: dict[str, Any] = {"like": [], "unlike": [], "names": {}}


# Examples to try, for a first visit (on a phone, often without a clothing photo at hand):
# the bundled demo catalog's pictures, which ship with the code whatever catalog is indexed.
DEMO_PICTURES = DEMO_CATALOG_DIR / "images"
TEXT_EXAMPLES = ["red summer dress", "striped shirt", "black shoes", "blue checked skirt"]
IMAGE_EXAMPLES = ["demo-0081.jpg", "demo-0042.jpg", "demo-0281.jpg"]  # dress, shirt, shoes
CLASSIFY_EXAMPLES = ["demo-0246.jpg", "demo-0361.jpg", "demo-0321.jpg"]  # jacket, hat, bag
LOCALIZE_EXAMPLES = [("demo-0042.jpg", "collar"), ("demo-0001.jpg", "sleeve")]

CACHE_LIFETIME = (3600, 3600)  # every hour, delete Gradio's cached files over an hour old


def heatmap_buttons() -> list[str]:
    """The heatmap's corner buttons: download and fullscreen, and Gradio's share (a post to
    the Space's discussions) only on a Space: anywhere else it fails ("Must be on Spaces")."""
    return ["download", "fullscreen", *(["share"] if os.environ.get("SPACE_ID") else [])]


def build_demo(
    model: ClipModel,
    collection: Collection,
    settings: Settings | None = None,
    *,
    notice: str | None = None,
    facets: Facets | None = None,
    pictures: Pictures | None = None,
) -> gr.Blocks:
    """The app over an already loaded model and an open collection (queue enabled).

    `notice` is shown as a banner (e.g. that the demo model stands in for FashionCLIP).
    """
    facets = facets or read_facets(collection)
    if pictures is None:
        roots = [collection.info().extra.get("images_root")]
        pictures = Pictures([r for r in roots if r and "://" not in r])
    serve_in_place(pictures.static_paths)
    allow_private_urls = settings is not None and settings.allow_private_urls
    backend = Backend(model, collection, facets, pictures, allow_private_urls)
    search_bound = {"concurrency_id": SEARCH_GROUP, "concurrency_limit": SEARCH_CONCURRENCY}
    vision_bound = {"concurrency_id": VISION_GROUP, "concurrency_limit": VISION_CONCURRENCY}
    private = {"api_visibility": "private", "queue": False}

    # Uploads (up to 25 MB each) stay in Gradio's cache until deleted: an hour is plenty for
    # a page to fetch them, and a public Space's disk would fill otherwise. Swept by our
    # `cache_sweep.sweep`: Gradio's own stops at the first upload that arrives during a sweep.
    cache_sweep.install()
    with gr.Blocks(title="FashionCLIP Space", delete_cache=CACHE_LIFETIME) as demo:
        # The title in one line; the model and store paths (four lines on a phone, when they
        # were in it) under "About this Space", collapsed.
        title, details = header_lines(model, collection, settings)
        gr.Markdown(title, elem_id="header")
        with gr.Accordion("About this Space", open=False, elem_id="about-space"):
            gr.Markdown(details, elem_id="header-details")
        gr.Markdown(ABOUT, elem_id="about")
        banner = f"⚠️ {notice[:1].upper()}{notice[1:]}" if notice else ""
        gr.Markdown(banner, visible=bool(notice), elem_id="notice")

        # Short labels fit a 360-px phone in one row; a narrower screen wraps them, rather
        # than hiding the last tabs behind Gradio's "More tabs" menu.
        with gr.Tabs(overflow_behavior="wrap"):
            # ------------------------------------------------------------ text search
            with gr.Tab("Text", id="text"):
                with gr.Row(equal_height=True):
                    query = gr.Textbox(
                        label="Search", placeholder="red summer dress", scale=4, elem_id="query"
                    )
                    negative = gr.Textbox(label="Less of", placeholder="stripes", scale=2)
                    search_button = gr.Button(
                        "Search", variant="primary", scale=1, elem_id="search-button"
                    )
                _examples(
                    [[text] for text in TEXT_EXAMPLES], [query], "text-examples", "search-button"
                )
                text_filters = _filter_controls(facets)
                with gr.Row():
                    mode = gr.Radio(
                        [MORE, LESS], value=MORE, label="Clicking a result shows", scale=2
                    )
                    examples_note = gr.Markdown(elem_id="examples")
                    clear_button = gr.Button("Clear examples", size="sm", scale=0, min_width=140)
                text_note = gr.Markdown(elem_id="text-note")  # says why no results show
                text_gallery = _gallery("text-results")
                with gr.Accordion("Results as JSON", open=False):
                    text_hits = gr.JSON(label="Hits")
                # API-only inputs: ids of liked / disliked examples (the page keeps its own).
                like_ids = gr.Textbox(visible=False, label="More like (ids)")
                unlike_ids = gr.Textbox(visible=False, label="Less like (ids)")
                examples = gr.State(NO_EXAMPLES)

            # ------------------------------------------------------------ image search
            with gr.Tab("Image", id="image"), gr.Row():
                with gr.Column(scale=1):
                    search_image = uploaded_image(
                        label="Image", sources=["upload", "webcam", "clipboard"], height=280
                    )
                    # Text boxes hand the handlers what API callers send (a number, a list),
                    # for them to refuse by name; Gradio's own would stringify it.
                    image_url = checked_by_handler(
                        gr.Textbox(
                            label="…or an image URL", placeholder="https://example.com/shirt.jpg"
                        )
                    )
                    modifier = checked_by_handler(
                        gr.Textbox(label="Change it (optional)", placeholder="same, but in blue")
                    )
                    image_button = gr.Button(
                        "Find similar", variant="primary", elem_id="image-button"
                    )
                    _examples(
                        _pictures(IMAGE_EXAMPLES), [search_image], "image-examples", "image-button"
                    )
                with gr.Column(scale=2):
                    image_filters = _filter_controls(facets)
                    image_note = gr.Markdown(elem_id="image-note")
                    image_gallery = _gallery("image-results")
                    with gr.Accordion("Results as JSON", open=False):
                        image_hits = gr.JSON(label="Hits")

            # ------------------------------------------------------------ classify
            with gr.Tab("Classify", id="classify"), gr.Row():
                with gr.Column():
                    classify_image = uploaded_image(
                        label="Image", height=280, elem_id="classify-image"
                    )
                    labels = checked_by_handler(
                        gr.Textbox(
                            label="Labels (comma-separated or one per line)",
                            value=facets.presets["category"],
                            lines=2,
                        )
                    )
                    with gr.Row():
                        presets = {
                            name: gr.Button(f"{name.title()} labels", size="sm")
                            for name in facets.presets
                        }
                    classify_button = gr.Button(
                        "Classify", variant="primary", elem_id="classify-button"
                    )
                    _examples(
                        _pictures(CLASSIFY_EXAMPLES),
                        [classify_image],
                        "classify-examples",
                        "classify-button",
                    )
                # Every label, most likely first: `num_top_classes` would also cut what the
                # API returns, and DESIGN promises a probability for each label given.
                probabilities = gr.Label(label="Probabilities", elem_id="probabilities")

            # ------------------------------------------------------------ localize
            with gr.Tab("Localize", id="localize"), gr.Row():
                with gr.Column():
                    localize_image = uploaded_image(
                        label="Image", height=320, elem_id="localize-image"
                    )
                    concept = checked_by_handler(
                        gr.Textbox(label="What to find", placeholder="collar", elem_id="concept")
                    )
                    localize_button = gr.Button(
                        "Localize", variant="primary", elem_id="localize-button"
                    )
                    _examples(
                        [[str(DEMO_PICTURES / name), text] for name, text in LOCALIZE_EXAMPLES],
                        [localize_image, concept],
                        "localize-examples",
                        "localize-button",
                    )
                with gr.Column():
                    heatmap = gr.Image(
                        label="Heatmap",
                        type="filepath",
                        buttons=heatmap_buttons(),
                        elem_id="heatmap",
                    )
                    gr.HTML(heatmap_legend(), elem_id="heatmap-legend")
                    peak = gr.JSON(label="Peak", elem_id="peak")

        # ---------------------------------------------------------------- wiring
        filters_in = [query, negative, *text_filters]

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
            evt: gr.SelectData,
        ) -> tuple[Any, ...]:
            """A click on a result: like (or dislike) it, and search again with the examples."""
            like, unlike = handlers.add_example(
                hits, evt.index, how, state["like"], state["unlike"]
            )
            values = (query, negative, categories, colours, brands, price_min, price_max, limit)
            gallery, found = handlers.text_search(backend, *values, like, unlike)
            chosen = hits[evt.index]  # type: ignore[index] (add_example checked it)
            names = {**state.get("names", {}), str(chosen["id"]): chosen["caption"]}
            chosen_now = {"like": like, "unlike": unlike, "names": names}
            # New results: no tile stays highlighted from the click that asked for them.
            return gr.Gallery(value=gallery, selected_index=None), found, chosen_now

        # Enter in a text box or a price box searches, as the button does (one endpoint).
        text_prices = text_filters[3:5]  # "Price from", "Price to"
        search = gr.on(
            [
                search_button.click,
                query.submit,
                negative.submit,
                *(price.submit for price in text_prices),
            ],
            with_gallery_data(bind(handlers.text_search, backend)),
            [*filters_in, like_ids, unlike_ids],
            [text_gallery, text_hits],
            api_name="text_search",
            api_description="Products for a text query: gallery and hits {id, score, caption, "
            "payload}. Optional: 'less of' text, filters, result count, liked/disliked ids.",
            # Gradio's pre- and postprocessing would hand each of the 10 inputs and 2 outputs
            # to a worker thread in turn; the raw values are what the handler reads anyway
            # (it checks them itself), and it returns the gallery's own data. Under 16
            # callers that is the difference between +121-127 ms and -17 to +20 ms over the
            # trivial endpoint (demo model, BENCHMARKS.md).
            preprocess=False,
            postprocess=False,
            **search_bound,
        )
        # A new search starts over: the examples clicked for the old one no longer apply.
        search.success(lambda: (NO_EXAMPLES, ""), None, [examples, examples_note], **private)
        # A page-only note, so the API still answers an empty gallery and an empty hit list.
        text_noted = [text_hits, *text_filters[:5]], text_note
        search.success(handlers.results_note, *text_noted, **private)
        # A failed search answers with an error toast and leaves the outputs as they were;
        # the old note ("No products match these filters") would read as this search's.
        keep_results(search, [text_gallery, text_hits], text_note)
        clear_button.click(lambda: (NO_EXAMPLES, ""), None, [examples, examples_note], **private)
        picked = text_gallery.select(
            pick,
            [text_hits, examples, mode, *filters_in],
            [text_gallery, text_hits, examples],
            api_visibility="private",
            **search_bound,
        )
        picked.success(handlers.examples_note, examples, examples_note, **private).success(
            handlers.results_note, *text_noted, **private
        )
        keep_results(picked, [text_gallery, text_hits, examples], text_note)

        # Enter in the URL, "Change it" or a price box searches too, as on the text tab.
        image_prices = image_filters[3:5]
        image_search = gr.on(
            [
                image_button.click,
                image_url.submit,
                modifier.submit,
                *(price.submit for price in image_prices),
            ],
            bind(handlers.image_search, backend),
            [search_image, modifier, *image_filters, image_url],
            [image_gallery, image_hits],
            api_name="image_search",
            api_description="Products that look like the image (optionally changed by a text, "
            "e.g. 'same, but in blue'): gallery and hits.",
            **vision_bound,
        )

        image_search.success(
            handlers.results_note, [image_hits, *image_filters[:5]], image_note, **private
        )
        keep_results(image_search, [image_gallery, image_hits], image_note)

        for name, button in presets.items():
            button.click(lambda text=facets.presets[name]: text, None, labels, **private)
        classified = gr.on(
            [classify_button.click, labels.submit],
            bind(handlers.classify, backend),
            [classify_image, labels],
            probabilities,
            api_name="classify",
            api_description="Zero-shot probabilities of the labels (at least two, comma-separated, "
            "one per line or a list) for the image.",
            **vision_bound,
        )
        keep_results(classified, [probabilities])

        localized = gr.on(
            [localize_button.click, concept.submit],
            with_picture_file(bind(handlers.localize, backend), pictures),
            [localize_image, concept],
            [heatmap, peak],
            api_name="localize",
            api_description="Heatmap of where the text's concept is in the image, and its "
            "peak {peak: [x, y], size: [width, height]} in the image's pixels.",
            **vision_bound,
        )
        keep_results(localized, [heatmap, peak])

        def deep_link(request: gr.Request) -> tuple[Any, ...]:
            """`/?q=red+dress` fills the query box and runs the search."""
            text = (request.query_params.get("q") or "").strip() if request else ""
            if not text:
                return gr.skip(), gr.skip(), gr.skip(), gr.skip()
            try:
                gallery, hits = handlers.text_search(backend, text)
            except gr.Error as exc:
                # Said beside the box, which keeps the link's text to fix: raised here, the
                # error would cover the query box and the results with Gradio's overlay.
                return text, [], [], f"**This link's search cannot run.** {exc.message}"
            return text, gallery, hits, handlers.results_note(hits)

        demo.load(
            deep_link,
            None,
            [query, text_gallery, text_hits, text_note],
            api_visibility="private",
            **search_bound,
        )
        # Unlimited: a health check (and the load test's floor) must not wait behind anything.
        gr.api(
            handlers.ping, api_name="ping", api_visibility="undocumented", concurrency_limit=None
        )

    demo.queue(default_concurrency_limit=1, max_size=QUEUE_SIZE)
    return demo


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


def _filter_controls(facets: Facets) -> list[gr.components.Component]:
    """Category / colour / brand multi-selects, a price range and the result count.

    All are created for every collection (hidden when it lacks the field) so that the API's
    inputs are the same whatever catalog is behind it.
    """
    with gr.Accordion("Filters", open=False):
        with gr.Row():
            selects = [
                gr.Dropdown(
                    choices=facets.choices(name),
                    value=[],
                    multiselect=True,
                    label=label,
                    visible=bool(facets.choices(name)),
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


def _pictures(names: list[str]) -> list[list[str]]:
    return [[str(DEMO_PICTURES / name)] for name in names]


def _examples(
    examples: list[list[str]],
    inputs: list[gr.components.Component],
    elem_id: str,
    button_id: str,
) -> gr.Examples:
    """Examples that fill `inputs` when clicked, then press the tab's button (`button_id`):
    the visitor sees the answer at once, through the very event a press runs. Nothing is
    cached or run ahead, and the click is the page's own (no API endpoint, callable or
    listed)."""
    shown = gr.Examples(
        examples,
        inputs,
        label="Try",
        cache_examples=False,
        api_visibility="private",
        elem_id=elem_id,
    )
    shown.load_input_event.then(
        None,
        js=f"() => {{ document.querySelector('#{button_id}')?.click(); }}",
        queue=False,
        api_visibility="private",
    )
    return shown


def _gallery(elem_id: str) -> gr.Gallery:
    return gr.Gallery(
        label="Results",
        columns=4,
        height="auto",
        object_fit="contain",
        allow_preview=False,
        elem_id=elem_id,
    )

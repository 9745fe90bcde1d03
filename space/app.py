"""The Gradio Blocks app: the page's header, one builder per tab (`space.tabs`), the queues.

    demo = build_demo(model, collection, settings)   # nothing is loaded here; all passed in
    demo.launch()

Every tab is also an API endpoint (`/text_search`, `/image_search`, `/classify`,
`/localize`); see the README's "Using the API". What each event does lives in
`space.handlers`. Events that run the model queue in two concurrency groups, sized for a
2-vCPU Space: searches by text (cheap) never wait behind requests that run the vision tower
(tens to hundreds of ms each).
"""

from __future__ import annotations

import gradio as gr

from fashion_clip.model.clip import ClipModel
from fashion_clip.settings import Settings
from fashion_clip.store import Collection
from fashion_clip.store.embedded import PICTURES_ROOT
from space import cache_sweep, handlers
from space.components import serve_in_place
from space.filters import Facets, read_facets
from space.handlers import Backend
from space.page import ABOUT, header_lines
from space.results import Pictures
from space.tabs.classify import build_classify_tab
from space.tabs.common import Wiring
from space.tabs.image_search import build_image_tab
from space.tabs.localize import build_localize_tab
from space.tabs.text_search import build_text_tab, wire_deep_link

# Text searches (a text tower pass and an HNSW search: tens of ms of CPU) and vision
# requests (image search, classify, localize: a vision tower pass, up to hundreds of ms on
# CPU) queue apart, so a search box stays quick while someone localizes. Searches are not
# limited: short calls sharing the CPU finish sooner than short calls waiting in line (the
# load test, 16 callers on 2 vCPUs, ViT-B/32 over 100,000 points: text search +189 ms over the
# trivial endpoint at 2, +103 ms unlimited, +67-73 ms with one torch thread per query, see
# `threads.thread_plan`; demo model +648 ms at 2, +72-123 ms unlimited; as shipped, with
# the text search skipping Gradio's processing: +5 to +21 ms for both). Vision requests run
# the model one at a time (`Backend.vision_slot`: a second would only queue inside torch);
# a few are let in at once so that one can fetch and decode its picture (a slow image URL
# takes up to `inputs.URL_DEADLINE_S`) while another uses the model.
SEARCH_GROUP, SEARCH_CONCURRENCY = "search", None
VISION_GROUP, VISION_CONCURRENCY = "vision", 4
# Requests waiting at once, all kinds: past it a caller is told the queue is full at once,
# instead of one client piling up thousands of picture requests (each holding its upload)
# for everyone else to wait behind. 64 one-at-a-time vision calls are already a minute's work.
QUEUE_SIZE = 64
CACHE_LIFETIME = (3600, 3600)  # every hour, delete Gradio's cached files over an hour old


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
        extra = collection.info().extra
        roots = [extra.get("images_root"), extra.get(PICTURES_ROOT)]  # embedded pictures
        pictures = Pictures([r for r in roots if r and "://" not in r])
    serve_in_place(pictures.static_paths)
    allow_private_urls = settings is not None and settings.allow_private_urls
    wiring = Wiring(
        backend=Backend(model, collection, facets, pictures, allow_private_urls),
        search={"concurrency_id": SEARCH_GROUP, "concurrency_limit": SEARCH_CONCURRENCY},
        vision={"concurrency_id": VISION_GROUP, "concurrency_limit": VISION_CONCURRENCY},
    )
    # Uploads (up to 25 MB each) stay in Gradio's cache until deleted: an hour is plenty for
    # a page to fetch them, and a public Space's disk would fill otherwise. Swept by our
    # `cache_sweep.sweep`: Gradio's own stops at the first upload that arrives during a sweep.
    cache_sweep.install()
    with gr.Blocks(title="FashionCLIP Space", delete_cache=CACHE_LIFETIME) as demo:
        _header(*header_lines(model, collection, settings), notice)
        # Short labels fit a 360-px phone in one row; a narrower screen wraps them, rather
        # than hiding the last tabs behind Gradio's "More tabs" menu.
        with gr.Tabs(overflow_behavior="wrap"):
            text_tab = build_text_tab(wiring, facets)
            build_image_tab(wiring, facets)
            build_classify_tab(wiring, facets)
            build_localize_tab(wiring, pictures)
        wire_deep_link(demo, text_tab, wiring)
        # Unlimited: a health check (and the load test's floor) must not wait behind anything.
        gr.api(
            handlers.ping, api_name="ping", api_visibility="undocumented", concurrency_limit=None
        )
    # Events with no group of their own (the page's cheap private ones): one at a time.
    demo.queue(default_concurrency_limit=1, max_size=QUEUE_SIZE)
    return demo


def _header(title: str, details: str, notice: str | None) -> None:
    """The title in one line; the model and store paths (four lines on a phone, when they
    were in it) under "About this Space", collapsed; what the app does; the banner, if any."""
    gr.Markdown(title, elem_id="header")
    with gr.Accordion("About this Space", open=False, elem_id="about-space"):
        gr.Markdown(details, elem_id="header-details")
    gr.Markdown(ABOUT, elem_id="about")
    banner = f"⚠️ {notice[:1].upper()}{notice[1:]}" if notice else ""
    gr.Markdown(banner, visible=bool(notice), elem_id="notice")

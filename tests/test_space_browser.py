"""The Space in a real browser: Debian's headless Chromium driven by Playwright.

It loads the page, runs a text search and sees results, clicks a result for "more like
this" (and is told the typed text no longer applies), sees a failed search clear the old
note, sees a failed search, classify or localize leave the last results in view (no error
overlay over them), searches with Enter in the image tab's boxes, follows a `?q=` deep
link, finds the page's top one line on a phone, and localizes an uploaded picture;
screenshots go to `tests/artifacts/`. `.ci/run` installs Chromium; without it these tests
are skipped.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from fashion_clip.demo import DEMO_CATALOG_DIR
from space.app import build_demo
from space.startup import launch_options
from tests.space_support import open_shop, serving, shared_shop

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"
PICTURE = DEMO_CATALOG_DIR / "images" / "demo-0001.jpg"
WAIT_MS = 60_000  # generous: the machine running the tests may be busy

pytestmark = [
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install chromium; .ci/run)"
    ),
    # Gradio's queue analytics use pandas options that pandas 3 deprecates.
    pytest.mark.filterwarnings("ignore:.*no_silent_downcasting"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
]


@pytest.fixture(scope="module")
def url(tiny_model, tmp_path_factory):
    settings = shared_shop(tiny_model, tmp_path_factory)
    collection = open_shop(settings, tiny_model)
    # Image URLs on this machine may be fetched: the URL tests serve pictures on 127.0.0.1.
    settings = dataclasses.replace(settings, allow_private_urls=True)
    demo = build_demo(tiny_model, collection, settings, notice="the demo model stands in")
    with serving(demo, **launch_options(settings)) as address:  # the page's CSS too
        yield address
    collection.close()


@pytest.fixture(scope="module")
def browser():
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    yield page
    context.close()


@pytest.fixture
def phone(browser):
    """A page on a phone's screen: `phone(width, height)`."""
    contexts = []

    def open_page(width: int, height: int):
        context = browser.new_context(
            viewport={"width": width, "height": height}, is_mobile=True, has_touch=True
        )
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        return page

    yield open_page
    for context in contexts:
        context.close()


def expect(locator):
    """Playwright's retrying assertions (imported here: Playwright may be missing)."""
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"space-{name}.png"), full_page=True)


def results(page, gallery: str = "#text-results"):
    return page.locator(f"{gallery} img")


def test_text_search_shows_results_and_more_like_this(page, url):
    page.goto(url)
    page.locator("#header").get_by_text("shop", exact=True).wait_for()
    page.locator("#notice").get_by_text("the demo model stands in").wait_for()
    page.locator("#query textarea, #query input").first.fill("red striped dress")
    page.locator("#search-button").click()
    results(page).first.wait_for(state="visible")
    assert results(page).count() == 12
    first_caption = page.locator("#text-results").inner_text()
    assert re.search(r" · \d+\.\d\d · .+ · -?\d\.\d{3}", first_caption)  # price, brand, score
    shot(page, "text-search")

    results(page).first.click()  # "more like this"
    page.locator("#examples").get_by_text("More like").wait_for()
    results(page).first.wait_for(state="visible")
    # The query box still reads "red striped dress", but the examples alone steer now.
    expect(page.locator("#examples")).to_contain_text("'Less of' text is not used", timeout=WAIT_MS)
    shot(page, "more-like-this")
    page.get_by_role("button", name="Clear examples").click()
    expect(page.locator("#examples")).not_to_contain_text("not used", timeout=WAIT_MS)


def test_every_result_fits_a_phones_screen(phone, url):
    page = phone(390, 844)
    page.goto(url)
    page.locator("#query textarea, #query input").first.fill("red dress")
    page.locator("#search-button").click()
    results(page).first.wait_for(state="visible")
    assert results(page).count() == 12
    for index in range(12):
        box = results(page).nth(index).bounding_box()
        # Not past the right edge, where only an invisible sideways scroll reached it.
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390, (index, box)
    # ... and each caption whole (price and brand come after the name), not cut short.
    cut = page.locator("#text-results .caption-label").evaluate_all(
        "labels => labels.filter(l => l.scrollWidth > l.clientWidth + 1"
        " || l.scrollHeight > l.clientHeight + 1).map(l => l.textContent)"
    )
    assert cut == []
    shot(page, "phone-text-search")


def test_every_tab_shows_on_a_small_phone(phone, url):
    page = phone(360, 740)
    page.goto(url)
    page.locator("#search-button").wait_for()
    for tab_id in ("text", "image", "classify", "localize"):  # the tabs' ids, kept
        tab = page.locator(f'[role="tab"][data-tab-id="{tab_id}"]')
        expect(tab).to_be_visible()  # not in a "More tabs" menu
        box = tab.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= 360, (tab_id, box)
    page.get_by_role("tab", name="Localize", exact=True).click()
    expect(page.locator("#concept")).to_be_visible()
    shot(page, "phone-tabs")


def test_empty_query_shows_an_error_and_the_page_keeps_working(page, url):
    page.goto(url)
    page.locator("#search-button").click()
    page.get_by_text("query is empty").first.wait_for()
    page.locator("#query textarea, #query input").first.fill("blue shirt")
    page.locator("#search-button").click()
    results(page).first.wait_for(state="visible")


def test_filters_that_match_nothing_say_so(page, url):
    page.goto(url)
    page.locator("#query textarea, #query input").first.fill("dress")
    page.get_by_text("Filters").first.click()  # Gradio shows the empty price boxes as 0 now
    page.locator("#search-button").click()
    results(page).first.wait_for(state="visible")  # ... which is no bound, not "free only"
    page.get_by_label("Price from").first.fill("100000")
    page.locator("#search-button").click()
    page.locator("#text-note").get_by_text("No products match these filters").wait_for()
    assert results(page).count() == 0
    shot(page, "no-match")
    page.get_by_label("Price from").first.fill("0")
    page.locator("#search-button").click()
    results(page).first.wait_for(state="visible")
    # The note follows the results (a chained event, so the API's outputs stay as they are).
    expect(page.locator("#text-note")).not_to_contain_text("No products match", timeout=WAIT_MS)


def test_enter_in_a_price_box_searches(page, url):
    page.goto(url)
    page.locator("#query textarea, #query input").first.fill("dress")
    page.get_by_text("Filters").first.click()
    page.get_by_label("Price from").first.fill("100000")
    page.get_by_label("Price from").first.press("Enter")
    page.locator("#text-note").get_by_text("No products match these filters").wait_for()
    page.get_by_label("Price from").first.fill("0")
    page.get_by_label("Price to").first.fill("60")
    page.get_by_label("Price to").first.press("Enter")
    results(page).first.wait_for(state="visible")

    page.locator('[role="tab"][data-tab-id="image"]').click()
    page.locator("#image-examples img").first.click()  # a picture to search with (it runs)
    results(page, "#image-results").first.wait_for(state="visible")
    # Each Enter's search is seen to finish before the next: Gradio drops a submission
    # while the same event is still pending.
    page.get_by_text("Filters").nth(1).click()
    page.get_by_label("Price from").nth(1).fill("100000")
    page.get_by_label("Price from").nth(1).press("Enter")
    note = page.locator("#image-note")
    note.get_by_text("No products match these filters").wait_for()
    page.get_by_label("Price from").nth(1).fill("0")
    page.get_by_label("Price to").nth(1).fill("100000")
    page.get_by_label("Price to").nth(1).press("Enter")
    expect(note).not_to_contain_text("No products match", timeout=WAIT_MS)
    results(page, "#image-results").first.wait_for(state="visible")
    shot(page, "price-enter")


def test_a_failed_search_clears_the_last_searchs_note(page, url):
    page.goto(url)
    query = page.locator("#query textarea, #query input").first
    query.fill("dress")
    page.get_by_text("Filters").first.click()
    page.get_by_label("Price from").first.fill("100000")
    page.locator("#search-button").click()
    page.locator("#text-note").get_by_text("No products match these filters").wait_for()
    query.fill("")
    page.locator("#search-button").click()
    page.get_by_text("query is empty").first.wait_for()  # the error toast
    # The note was the last search's; beside this one's error it would mislead.
    expect(page.locator("#text-note")).not_to_contain_text("No products match", timeout=WAIT_MS)
    shot(page, "failed-search")


def test_deep_link_fills_and_runs_the_search(page, url):
    page.goto(url + "?q=red+dress")
    results(page).first.wait_for(state="visible")
    assert page.locator("#query textarea, #query input").first.input_value() == "red dress"
    shot(page, "deep-link")
    first = results(page).evaluate_all("images => images.map(i => i.src)")
    page.locator("#text-more").click()  # the link's search is the one on show: it pages
    expect(results(page)).to_have_count(24, timeout=WAIT_MS)
    both = results(page).evaluate_all("images => images.map(i => i.src)")
    assert both[:12] == first and len(set(both)) == 24


def test_a_bad_deep_link_says_why_beside_the_box(page, url):
    page.goto(url + "?q=" + "x" * 600)
    page.locator("#text-note").get_by_text("600 characters long").wait_for()
    query = page.locator("#query textarea, #query input").first
    assert query.input_value() == "x" * 600  # there to shorten, not hidden under an overlay
    assert "Error" not in page.locator("#query").inner_text()
    shot(page, "bad-deep-link")
    query.fill("red dress")
    page.locator("#search-button").click()
    results(page).first.wait_for(state="visible")
    expect(page.locator("#text-note")).not_to_contain_text("cannot run", timeout=WAIT_MS)


def test_examples_fill_the_inputs_and_run(page, url):
    """A first visit without a picture at hand: each tab's examples fill its inputs and run
    at once, with no button to find and press."""
    page.goto(url)
    page.locator("#about").get_by_text("Find clothes by describing them").wait_for()
    page.locator("#text-examples").get_by_text("striped shirt").click()
    query = page.locator("#query textarea, #query input").first
    expect(query).to_have_value("striped shirt")
    results(page).first.wait_for(state="visible")
    expect(results(page)).to_have_count(12)

    page.locator('[role="tab"][data-tab-id="image"]').click()
    page.locator("#image-examples img").first.click()
    results(page, "#image-results").first.wait_for(state="visible")

    page.locator('[role="tab"][data-tab-id="classify"]').click()
    page.locator("#classify-examples img").first.click()
    page.locator("#classify-image img").first.wait_for(state="visible")  # filled
    expect(page.locator("#probabilities")).to_contain_text("%", timeout=WAIT_MS)

    page.locator('[role="tab"][data-tab-id="localize"]').click()
    page.locator("#localize-examples").get_by_text("collar").click()
    page.locator("#localize-image img").first.wait_for(state="visible")
    expect(page.locator("#concept textarea, #concept input").first).to_have_value("collar")
    page.locator("#heatmap img").first.wait_for(state="visible")
    page.locator("#peak").get_by_text('"peak"').wait_for()
    shot(page, "localize-example")


def test_localize_tab_draws_a_heatmap(page, url):
    page.goto(url)
    page.get_by_role("tab", name="Localize").click()
    page.locator("#localize-image input[type=file]").set_input_files(str(PICTURE))
    page.locator("#localize-image img").first.wait_for(state="visible")  # the upload's preview
    page.locator("#concept textarea, #concept input").first.fill("collar")
    page.locator("#localize-button").click()
    page.locator("#heatmap img").first.wait_for(state="visible")
    page.locator("#peak").get_by_text('"peak"').wait_for()
    heatmap = page.locator("#heatmap")
    expect(heatmap.get_by_role("button", name="Download")).to_be_visible()
    expect(heatmap.get_by_role("button", name="Fullscreen")).to_be_visible()
    expect(heatmap.get_by_role("button", name="Share")).to_have_count(0)  # Spaces only
    legend = page.locator("#heatmap-legend")
    assert "red: most like it" in legend.inner_text()
    assert "relative to this picture" in legend.inner_text()
    shot(page, "localize")


def covered(page, selector: str) -> bool:
    """Whether something else (Gradio's status overlay) sits over the middle of `selector`."""
    return page.locator(selector).first.evaluate(
        "el => { const r = el.getBoundingClientRect();"
        " const top = document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2);"
        " return !(top === el || el.contains(top)); }"
    )


def test_a_failed_action_leaves_the_last_results_in_view(page, url):
    """Bad input is answered with its message; what the last good action showed stays."""
    page.goto(url)
    query = page.locator("#query textarea, #query input").first
    query.fill("red dress")
    page.locator("#search-button").click()
    results(page).first.wait_for(state="visible")
    query.fill("")
    page.locator("#search-button").click()
    page.get_by_text("query is empty").first.wait_for()  # the error toast
    page.wait_for_timeout(1_000)  # time for the page to mark the outputs
    assert results(page).count() == 12
    assert "Error" not in page.locator("#text-results").inner_text()
    assert not covered(page, "#text-results img")
    shot(page, "failed-search-keeps-results")

    page.locator('[role="tab"][data-tab-id="classify"]').click()
    page.locator("#classify-examples img").first.click()  # fills the picture and runs
    page.locator("#classify-image img").first.wait_for(state="visible")
    expect(page.locator("#probabilities")).to_contain_text("%", timeout=WAIT_MS)
    page.get_by_label("Labels (comma-separated or one per line)").fill("dress")
    page.locator("#classify-button").click()
    page.get_by_text("only one label given").first.wait_for()
    page.wait_for_timeout(1_000)
    assert "Error" not in page.locator("#probabilities").inner_text()
    assert "%" in page.locator("#probabilities").inner_text()
    assert not covered(page, "#probabilities")

    page.locator('[role="tab"][data-tab-id="localize"]').click()
    page.locator("#localize-examples").get_by_text("collar").click()
    page.locator("#localize-image img").first.wait_for(state="visible")  # and it runs
    page.locator("#heatmap img").first.wait_for(state="visible")
    page.locator("#concept textarea, #concept input").first.fill("")
    page.locator("#localize-button").click()
    page.get_by_text("what to find").first.wait_for()
    page.wait_for_timeout(1_000)
    for output in ("#heatmap", "#peak"):
        assert "Error" not in page.locator(output).inner_text(), output
    assert not covered(page, "#heatmap img")
    page.locator("#peak").get_by_text('"peak"').wait_for()
    shot(page, "failed-localize-keeps-heatmap")


def test_enter_in_the_image_tabs_text_boxes_searches(page, url):
    page.goto(url)
    page.locator('[role="tab"][data-tab-id="image"]').click()
    address = page.get_by_label("…or an image URL")
    address.fill("not a url")
    address.press("Enter")
    page.get_by_text("must start with http:// or https://").first.wait_for()  # it ran
    address.fill("")
    page.locator("#image-examples img").first.click()  # a picture to search with
    change = page.get_by_label("Change it (optional)")
    change.fill("same, but in blue")
    change.press("Enter")
    results(page, "#image-results").first.wait_for(state="visible")
    shot(page, "image-enter")


def test_the_pages_top_is_compact_on_a_phone(phone, url):
    """One line of title, collection and size; the model and store one click away."""
    page = phone(390, 844)
    page.goto(url)
    header = page.locator("#header")
    header.get_by_text("shop", exact=True).wait_for()
    expect(header).to_contain_text("60 items")
    box = header.bounding_box()
    assert box and box["height"] <= 40, box  # one line, not four
    page.get_by_text("About this Space").click()
    details = page.locator("#header-details")
    expect(details).to_contain_text("model /")  # the tiny model's folder
    expect(details).to_contain_text("embedded store /")
    shot(page, "phone-header")

"""The shop search's controls in a real browser (Debian's Chromium driven by Playwright):
match mode and sort change the results, diversity spreads them, "More results" appends the
next page without repeats (and a new search starts over), a region chosen by two clicks on
the picture is searched, and the Localize tab's "Find this in the catalog" finds products.
Screenshots of each tab go to `tests/artifacts/`."""

# ruff: noqa: F811 (the browser, page and live app are test_space_browser's fixtures)

from __future__ import annotations

import re

import pytest

from fashion_clip.demo import DEMO_CATALOG_DIR
from space.tabs.image_search import IMAGE_EXAMPLES
from tests.space_support import serving_pictures
from tests.test_space_browser import (  # noqa: F401 (its fixtures and skip marks)
    WAIT_MS,
    browser,
    expect,
    page,
    pytestmark,
    results,
    shot,
    url,
)

pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file

PICTURE = DEMO_CATALOG_DIR / "images" / "demo-0001.jpg"  # 256 x 256


def search(page, text: str) -> None:
    page.locator("#query textarea, #query input").first.fill(text)
    page.locator("#search-button").click()


def shown_ids(page, gallery: str = "#text-results") -> list[str]:
    """The products on show, in order: each tile's picture keeps its catalog file's name."""
    sources = results(page, gallery).evaluate_all("images => images.map(i => i.src)")
    return [re.search(r"(demo-\d{4})", src).group(1) for src in sources]


def captions(page, gallery: str = "#text-results") -> list[str]:
    return page.locator(f"{gallery} .caption-label").all_inner_texts()


def settled(page, gallery: str, before: list[str]) -> list[str]:
    """The gallery's products once they differ from `before` (a search has answered)."""
    page.wait_for_function(
        """([gallery, before]) => {
            const ids = [...document.querySelectorAll(gallery + ' img')].map(
                i => (i.src.match(/demo-\\d{4}/) || [''])[0]);
            return ids.length > 0 && ids.join() !== before.join();
        }""",
        arg=[gallery, before],
        timeout=WAIT_MS,
    )
    return shown_ids(page, gallery)


def choose(page, control: str, option: str) -> None:
    """Pick `option` in a Gradio dropdown (`control` is its elem_id)."""
    page.locator(f"#{control} input").first.click()
    page.get_by_role("option", name=option, exact=True).click()


def test_match_mode_and_sort_change_the_results(page, url):
    page.goto(url)
    page.locator("#text-mode").get_by_text("keyword", exact=True).click()
    search(page, "Northwind")
    results(page).first.wait_for(state="visible")
    words = captions(page)
    assert words and all("Northwind" in caption for caption in words)  # the brand's words
    # What is on show is read before each search: read after, a quick answer would already
    # be on show, and the wait for a change would never end.
    keyword = shown_ids(page)
    page.locator("#text-mode").get_by_text("semantic", exact=True).click()
    search(page, "Northwind")
    meaning = settled(page, "#text-results", keyword)
    assert not all("Northwind" in caption for caption in captions(page)), meaning

    page.locator("#text-mode").get_by_text("hybrid", exact=True).click()
    search(page, "dress")
    by_relevance = settled(page, "#text-results", meaning)  # not the last search's, still shown
    choose(page, "text-sort", "price_asc")
    page.locator("#search-button").click()
    settled(page, "#text-results", by_relevance)
    prices = [float(re.search(r" · (\d+\.\d\d) · ", c).group(1)) for c in captions(page)]
    assert prices and prices == sorted(prices)  # which products: tests/test_search_quality.py
    shot(page, "text-sorted")


def test_diversity_changes_the_results(page, url):
    page.goto(url)
    search(page, "dress")
    results(page).first.wait_for(state="visible")
    plain = shown_ids(page)
    diversity = page.locator("#text-diversity input[type=number]")
    diversity.fill("0.9")
    diversity.press("Enter")
    page.locator("#search-button").click()
    varied = settled(page, "#text-results", plain)
    assert varied[0] == plain[0] and varied != plain  # the best stays; near-copies give way


def test_more_results_appends_pages_that_never_repeat(page, url):
    page.goto(url)
    expect(page.locator("#text-more")).to_be_hidden()  # nothing to page yet
    search(page, "red")
    results(page).first.wait_for(state="visible")
    first = shown_ids(page)
    page.locator("#text-more").click()
    expect(results(page)).to_have_count(24, timeout=WAIT_MS)
    both = shown_ids(page)
    assert both[:12] == first and len(set(both)) == 24
    page.locator("#text-more").click()
    expect(results(page)).to_have_count(36, timeout=WAIT_MS)
    assert shown_ids(page)[:24] == both and len(set(shown_ids(page))) == 36
    # the gallery grew to hold them: the page scrolls to them, no box inside it
    grid = page.locator("#text-results .grid-wrap")
    assert grid.evaluate("g => g.scrollHeight <= g.clientHeight + 1")
    shot(page, "text-more-results")
    search(page, "red")  # a new search starts over at the first page
    expect(results(page)).to_have_count(12, timeout=WAIT_MS)
    assert shown_ids(page) == first

    page.locator('[role="tab"][data-tab-id="image"]').click()
    page.locator("#image-examples img").first.click()  # a picture; the example searches
    results(page, "#image-results").first.wait_for(state="visible")
    first = shown_ids(page, "#image-results")
    page.locator("#image-more").click()
    expect(results(page, "#image-results")).to_have_count(24, timeout=WAIT_MS)
    pictures = shown_ids(page, "#image-results")
    assert pictures[:12] == first and len(set(pictures)) == 24


def region_box(page):
    return page.locator("#image-box textarea, #image-box input").first


def mark_top_right_quarter(page):
    """Two clicks on the Image tab's picture, at the corners of its top right quarter; the
    region box, once it holds the region."""
    picture = page.locator("#search-image img").first
    box_input = region_box(page)
    drawn = picture.bounding_box()  # the picture as shown, scaled to fit its frame
    for fx, fy in ((0.5, 0.0), (1.0, 0.5)):
        x = min(max(fx * drawn["width"], 2), drawn["width"] - 3)
        y = min(max(fy * drawn["height"], 2), drawn["height"] - 3)
        picture.click(position={"x": x, "y": y})  # scrolled into view, relative to it
        if fx < 1:  # the first corner shows before the second click (a person sees it)
            expect(box_input).to_have_value(re.compile(r"^\[\d+, \d+\]$"), timeout=WAIT_MS)
    expect(box_input).to_have_value(re.compile(r"\[\d+, \d+, \d+, \d+\]"), timeout=WAIT_MS)
    return box_input


def test_two_clicks_on_the_picture_choose_the_region_searched(page, url):
    page.goto(url)
    page.locator('[role="tab"][data-tab-id="image"]').click()
    page.locator("#search-image input[type=file]").set_input_files(str(PICTURE))
    picture = page.locator("#search-image img").first
    picture.wait_for(state="visible")
    page.locator("#image-button").click()
    results(page, "#image-results").first.wait_for(state="visible")
    whole = shown_ids(page, "#image-results")

    box_input = mark_top_right_quarter(page)
    x0, y0, x1, y1 = (int(v) for v in re.findall(r"\d+", box_input.input_value()))
    # in the picture's own pixels, within a pixel or two of where the clicks landed
    assert abs(x0 - 128) <= 4 and abs(y0 - 2) <= 4 and abs(x1 - 254) <= 4 and abs(y1 - 129) <= 4
    page.locator("#image-region img").first.wait_for(state="visible")  # the region, framed
    shot(page, "image-region")
    page.locator("#image-button").click()
    region = settled(page, "#image-results", whole)
    assert region != whole


def test_another_example_picture_is_searched_without_the_last_ones_region(page, url):
    page.goto(url)
    page.locator('[role="tab"][data-tab-id="image"]').click()
    shirt, dress = (page.locator("#image-examples img").nth(i) for i in (1, 0))
    shirt.click()  # the example fills the picture and searches it
    results(page, "#image-results").first.wait_for(state="visible")
    whole_shirt = shown_ids(page, "#image-results")
    dress.click()
    on_dress = settled(page, "#image-results", whole_shirt)
    mark_top_right_quarter(page)  # a region of the dress
    shirt.click()  # a new picture: searched whole, its region cleared before the search
    assert settled(page, "#image-results", on_dress) == whole_shirt
    expect(region_box(page)).to_have_value("")
    expect(page.locator("#image-region img")).to_have_count(0)  # no preview of the old one
    shot(page, "image-example-after-region")


def test_a_url_given_after_the_picture_replaces_it_and_is_the_one_searched(page, url):
    address = page.locator("#image-url textarea, #image-url input").first

    def search_the_picture(before: list[str]) -> list[str]:
        # A picture given after the URL replaces it: the URL box empties.
        page.locator("#search-image input[type=file]").set_input_files(str(PICTURE))
        page.locator("#search-image img").first.wait_for(state="visible")
        expect(address).to_have_value("")
        page.locator("#image-button").click()
        return settled(page, "#image-results", before)

    with serving_pictures() as served:
        picture_url = f"{served}/demo-0042.jpg"
        page.goto(url)
        page.locator('[role="tab"][data-tab-id="image"]').click()
        address.fill(picture_url)
        address.press("Enter")
        results(page, "#image-results").first.wait_for(state="visible")
        by_url = shown_ids(page, "#image-results")
        for submit in (lambda: address.press("Enter"), page.locator("#image-button").click):
            by_picture = search_the_picture(by_url)
            mark_top_right_quarter(page)  # the picture's region: not the URL's picture's
            address.fill(picture_url)  # typed while the picture is loaded
            submit()
            assert settled(page, "#image-results", by_picture) == by_url
            expect(page.locator("#search-image img")).to_have_count(0)  # it gave way
            expect(region_box(page)).to_have_value("")
            shot(page, "image-url-replaces-picture")


def test_more_results_pages_the_search_on_show_not_what_was_typed_since(page, url):
    client = Client(url, verbose=False, download_files=False)
    page.goto(url)
    search(page, "red dress")
    results(page).first.wait_for(state="visible")
    first = shown_ids(page)
    page.locator("#query textarea, #query input").first.fill("black shoes")  # not searched
    page.locator("#text-more").click()
    expect(results(page)).to_have_count(24, timeout=WAIT_MS)
    _, second = client.predict("red dress", offset=12, api_name="/text_search")
    assert shown_ids(page) == first + [hit["id"] for hit in second]
    expect(page.locator("#query textarea, #query input").first).to_have_value("black shoes")
    shot(page, "text-more-of-the-search-on-show")

    page.locator('[role="tab"][data-tab-id="image"]').click()
    page.locator("#image-examples img").first.click()
    results(page, "#image-results").first.wait_for(state="visible")
    first = shown_ids(page, "#image-results")
    page.get_by_label("Change it (optional)").fill("same, but in blue")  # not searched
    page.locator("#image-more").click()
    expect(results(page, "#image-results")).to_have_count(24, timeout=WAIT_MS)
    example = handle_file(str(DEMO_CATALOG_DIR / "images" / IMAGE_EXAMPLES[0]))
    _, second = client.predict(example, offset=12, api_name="/image_search")
    assert shown_ids(page, "#image-results") == first + [hit["id"] for hit in second]


def test_more_results_after_more_like_this_pages_the_liked_examples_search(page, url):
    client = Client(url, verbose=False, download_files=False)
    page.goto(url)
    search(page, "red dress")
    results(page).first.wait_for(state="visible")
    liked = shown_ids(page)[0]
    before = shown_ids(page)
    results(page).first.click()  # "more like this"
    first = settled(page, "#text-results", before)
    page.locator("#text-more").click()
    expect(results(page)).to_have_count(24, timeout=WAIT_MS)
    _, second = client.predict("red dress", like_ids=liked, offset=12, api_name="/text_search")
    assert shown_ids(page) == first + [hit["id"] for hit in second]


def test_find_this_in_the_catalog_searches_around_the_heatmaps_peak(page, url):
    page.goto(url)
    page.locator('[role="tab"][data-tab-id="localize"]').click()
    page.locator("#localize-image input[type=file]").set_input_files(str(PICTURE))
    page.locator("#localize-image img").first.wait_for(state="visible")
    page.locator("#concept textarea, #concept input").first.fill("sleeve")
    page.locator("#localize-button").click()
    page.locator("#heatmap img").first.wait_for(state="visible")
    page.locator("#find-this").click()
    results(page, "#localize-results").first.wait_for(state="visible")
    assert len(shown_ids(page, "#localize-results")) == 12
    shot(page, "localize-find-this")


@pytest.mark.parametrize("tab", ["text", "image", "classify", "localize"])
def test_each_tab_as_it_looks(page, url, tab):
    """Not a check of looks: the screenshots a person reviews (every control on show)."""
    page.goto(url)
    page.locator(f'[role="tab"][data-tab-id="{tab}"]').click()
    if tab == "text":
        search(page, "striped shirt")
        results(page).first.wait_for(state="visible")
    if tab == "image":
        page.locator("#image-examples img").first.click()
        results(page, "#image-results").first.wait_for(state="visible")
    shot(page, f"tab-{tab}")


def test_result_galleries_show_results_and_take_no_uploads(page, url):
    page.goto(url)
    for tab, gallery in (("text", "#text-results"), ("image", "#image-results")):
        page.locator(f'[role="tab"][data-tab-id="{tab}"]').click()
        page.locator(gallery).wait_for(state="visible")
        expect(page.locator(f"{gallery} input[type=file]")).to_have_count(0)
        expect(page.locator(gallery)).not_to_contain_text("Drop Media Here")
    shot(page, "image-empty-results")

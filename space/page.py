"""The page's words and styles: its title and details lines, and the CSS `launch` adds.

No Gradio here: `space.startup` reads `PAGE_CSS` for the launch options without loading it.
"""

from __future__ import annotations

from fashion_clip.model.clip import ClipModel
from fashion_clip.redact import public_url
from fashion_clip.settings import Settings
from fashion_clip.store import Collection

ABOUT = (
    "Find clothes by describing them or with a picture, sort a picture into categories, "
    "or see where something (a collar, a sleeve) is in it."
)

# Styles `launch(css=...)` adds to the page (`startup.launch_options`; Gradio 6 takes them
# there, not in `Blocks`). A result gallery's columns are at least 100 px wide, so on a phone
# its 4 columns ran past the screen's edge: narrow screens get 3, then 2, that shrink to fit.
# On every screen the galleries grow with their rows (the page scrolls, not a box of 550 px
# inside it): "More results", under them, appends pages a shopper scrolls down to.
# A tile's caption (name · price · brand · score) wraps onto up to 3 lines, not cut to one.
PAGE_CSS = """
#text-results .grid-wrap, #image-results .grid-wrap, #localize-results .grid-wrap {
  max-height: none;
  height: auto;
}
#text-results .caption-label, #image-results .caption-label, #localize-results .caption-label {
  white-space: normal;
  max-width: calc(100% - 2 * var(--block-label-margin));
  display: -webkit-box;
  -webkit-line-clamp: 3;
  -webkit-box-orient: vertical;
}
@media (max-width: 640px) {
  #text-results .grid-container, #image-results .grid-container {
    grid-template-columns: repeat(3, minmax(0, 1fr));
  }
}
@media (max-width: 480px) {
  #text-results .grid-container, #image-results .grid-container {
    grid-template-columns: repeat(2, minmax(0, 1fr));
  }
}
"""


def header_lines(
    model: ClipModel, collection: Collection, settings: Settings | None
) -> tuple[str, str]:
    """The page's title line (the collection and its item count: one line on a phone) and
    the details an operator checks (the model, and where the store lives)."""
    info = model.info
    if settings is None:
        where = ""
    elif settings.qdrant_url:
        where = f" · Qdrant server {public_url(settings.qdrant_url)}"
    else:
        where = f" · embedded store `{settings.qdrant_path}`"
    title = f"**FashionCLIP Space** · collection `{collection.name}` · {collection.count():,} items"
    return title, f"model `{info.name}` ({info.kind}, {info.dim}-d){where}"

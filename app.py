"""The Space's entry point: settings → model → store (the demo indexed if empty) → app → launch.

python app.py            # http://127.0.0.1:7860 (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT)
python app.py --share    # also a public share link (or FASHION_CLIP_SHARE=1)
"""

from __future__ import annotations

import argparse
import logging
import signal

from fashion_clip.errors import FashionCLIPError, ModelMismatchError
from fashion_clip.model import allocator, runtime
from fashion_clip.settings import load_settings
from fashion_clip.store import open_store
from space.startup import launch_options, open_collection

log = logging.getLogger("fashion_clip.app")

# Text queries and label prompts run an int8 text tower on the CPU where the tower is large
# enough to gain (FASHION_CLIP_TEXT_PRECISION overrides): 2x faster than bf16 and 4x than
# fp32 per ViT-B/32 query, and what meets the 16-caller latency goal (benchmarks/HISTORY.md, Space);
# the demo model forced to int8 retrieves as in fp32. Captions the app indexes are tagged
# with the precision, so the indexer re-embeds them in fp32.
QUERY_PRECISION = "fast"


def _stop(signum: int, frame: object) -> None:
    # One stop is enough: a second SIGTERM (a supervisor and its child both signalled)
    # would interrupt the server's closing with a traceback.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="FashionCLIP Space: search, classify, localize")
    parser.add_argument("--share", action="store_true", help="also open a public share link")
    args = parser.parse_args(argv)
    # First, before threads allocate: a cap does not shrink arenas already made (allocator.py)
    allocator.cap_arenas(allocator.arena_count())
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # Gradio's own start-up checks

    from space.app import build_demo  # deferred: gradio starts threads, after the cap above

    fallback_note = None
    try:
        settings = load_settings()
        # fallback_note: why the bundled demo model stands in (shown on the page), or None
        model, fallback_note = runtime.load_configured_model(
            settings, default_text_precision=QUERY_PRECISION
        )
        if fallback_note:
            log.warning("%s (shown as a banner on the page)", fallback_note)
        allocator.tune_for(model.device)  # activation memory reused between requests
        log.info(
            "model %s on %s, text queries in %s", model.info.name, model.device,
            model.text_precision,
        )  # fmt: skip
        store = open_store(settings)
        collection = open_collection(settings, store, model)
        demo = build_demo(model, collection, settings, notice=fallback_note)
    except ModelMismatchError as exc:
        if fallback_note:  # the configured model did not load: rebuilding is not the cure
            exc = ModelMismatchError(
                f"{fallback_note}, and {exc.mismatch}. Make {settings.model} reachable (network, "
                "HF_TOKEN, or a local copy in FASHION_CLIP_MODEL) rather than rebuilding "
                "the collection for the demo model"
            )
        log.error("cannot start: %s", exc)
        return 1
    except FashionCLIPError as exc:
        log.error("cannot start: %s", exc)
        return 1
    # A stop (SIGTERM: a Space restarting, `docker stop`, systemd) ends like Ctrl-C: the server
    # closes and temporary folders (the gallery's thumbnails, overlays) are removed.
    signal.signal(signal.SIGTERM, _stop)
    try:
        demo.launch(**launch_options(settings, share=args.share))
    except KeyboardInterrupt:
        # The server already answers while launch() still checks it (Gradio's url_ok, in
        # this thread, before it blocks): a stop landing then is the same stop.
        demo.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The app's localize on large photos: `python -m benchmarks.overlay [--runs N]`.

The app's `/localize` handler (`space.handlers.localize`: the upload decoded, the map sampled
and the overlay drawn at the size shown, 1,024 pixels at most) beside two references: the
same handler given the photo decoded whole (what it did before JPEG draft decoding), and the
handler as it was before that (73d51fb: the map and the overlay at the photo's full size,
then shrunk to 1,024 for the page). Each call starts from the uploaded file, as the app's
does. All with a ViT-B/32 CLIP of random weights (FashionCLIP's compute), on JPEG photos
of 12 MP (a phone photo) and 64 MP (the largest image the app accepts). Each case runs in a
fresh process, so its peak memory is its own: the figure is the peak resident size during
the calls minus the resident size before them (the model excluded; Linux's peak is reset
first).
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import statistics
import time
from pathlib import Path
from types import SimpleNamespace

from benchmarks.common import OUT, machine, print_table, product_photo, result_line, vitb32_folder

SIZES = {"12 MP": (4000, 3000), "64 MP": (8000, 8000)}
PATHS = ("ours", "full decode", "reference")
QUERY = "a red collar"


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak() -> None:
    """Start the peak (VmHWM) from the current size: loading the model peaks higher than
    what stays resident, and that is not the calls' memory."""
    Path("/proc/self/clear_refs").write_text("5")


def _previous_handler(model, picture, text: str):
    """The handler before the change (73d51fb), for the side-by-side."""
    from fashion_clip.tasks.localize import heatmap_peak, localize
    from fashion_clip.tasks.overlay import draw_heatmap

    heatmap = localize(model, picture, text)  # the photo's full size
    x, y = heatmap_peak(heatmap)
    overlay = draw_heatmap(picture, heatmap)
    if max(overlay.size) > 1024:
        overlay.thumbnail((1024, 1024))
    return overlay, {"peak": [x, y], "size": list(picture.size)}


def _case(job: tuple[str, Path, Path, int]) -> dict[str, float]:
    """One path on one photo, in its own process: median seconds and extra peak memory."""
    path, model_dir, photo, runs = job
    from fashion_clip.media.images import load_image
    from fashion_clip.model.clip import ClipModel
    from space.handlers import localize
    from space.threads import thread_plan

    model = ClipModel.load(str(model_dir))
    backend = SimpleNamespace(model=model, threads=thread_plan())  # what the handler reads
    upload = str(photo)  # what the page hands the handler: the uploaded file's path
    if path == "ours":

        def call():
            return localize(backend, upload, QUERY)
    elif path == "full decode":

        def call():
            return localize(backend, load_image(upload), QUERY)
    else:

        def call():
            return _previous_handler(model, load_image(upload), QUERY)

    _reset_peak()
    before = _status_mb("VmRSS")
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        overlay, info = call()
        samples.append(time.perf_counter() - start)
    peak = _status_mb("VmHWM")
    return {
        "seconds": statistics.median(samples),
        "extra_mb": max(0.0, peak - before),
        "overlay_side": float(max(overlay.size)),
        "peak_x": float(info["peak"][0]),
    }


def _photo(size: tuple[int, int]) -> Path:
    target = OUT / f"photo-{size[0]}x{size[1]}.jpg"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        product_photo(*size, seed=7).save(buffer, "JPEG", quality=90)
        target.write_bytes(buffer.getvalue())
    return target


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="calls per case (median)")
    args = parser.parse_args(argv)
    model_dir = vitb32_folder()
    print(machine())
    rows, figures = [], {}
    context = multiprocessing.get_context("spawn")
    for label, size in SIZES.items():
        photo = _photo(size)
        measured = {}
        for path in PATHS:  # one process at a time: the machine has two cores
            with context.Pool(1) as pool:
                measured[path] = pool.apply(_case, ((path, model_dir, photo, args.runs),))
        ours, whole, reference = (measured[path] for path in PATHS)
        key = label.replace(" ", "").lower()
        figures |= {
            f"{key}_seconds": ours["seconds"],
            f"{key}_full_decode_seconds": whole["seconds"],
            f"{key}_reference_seconds": reference["seconds"],
            f"{key}_speedup": reference["seconds"] / ours["seconds"],
            f"{key}_speedup_over_full_decode": whole["seconds"] / ours["seconds"],
            f"{key}_extra_mb": ours["extra_mb"],
            f"{key}_full_decode_extra_mb": whole["extra_mb"],
            f"{key}_reference_extra_mb": reference["extra_mb"],
        }
        for path in PATHS:
            m = measured[path]
            rows.append((
                label, path, f"{m['seconds']:.2f}", f"{m['extra_mb']:.0f}",
                f"{m['overlay_side']:.0f}", f"{reference['seconds'] / m['seconds']:.1f}x",
            ))  # fmt: skip
    print_table(rows, ("photo", "path", "s / call", "extra peak MB", "overlay side", "speed"))
    print(result_line(figures))


if __name__ == "__main__":
    main()

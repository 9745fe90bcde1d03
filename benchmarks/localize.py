"""Localization quality and speed: `python -m benchmarks.localize [--cases N] [--quick]`.

Quality: pointing game, energy share in the target box and IoU of the thresholded map, on
composites of demo garments (`benchmarks.localize_eval`) with the demo model, per method.
Speed: seconds per heatmap through `localize()` (text encoding, forward passes and the map
resized to the image included) for the demo model and a random-weight ViT-B/32, which has
FashionCLIP's exact compute (its maps mean nothing, so it is timed only).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from functools import partial
from typing import Any

from benchmarks.common import machine, print_table, result_line, vitb32_folder
from benchmarks.localize_eval import evaluate, make_composites
from fashion_clip.model.clip import ClipModel
from fashion_clip.tasks.localize import DEFAULT_METHOD, localize
from fashion_clip.tasks.localize_methods import masking_passes, native_size

SEED = 1  # the tests use seed 0; the benchmark measures on other composites

# (label, method, options) rows measured on the demo model; the ablations show why the
# default gives each patch its own CLS token (groups) rather than rewiring the last block
# (ClearCLIP/SCLIP-style) or reading the patch tokens.
DEMO_ROWS: list[tuple[str, str, dict[str, Any]]] = [
    ("default (groups)", "default", {}),
    ("groups @192", "groups", {"resolution": 192}),
    ("masking", "masking", {}),
    ("masking @192", "masking", {"resolution": 192}),
    ("surgery (ClearCLIP: qq+kk)", "surgery", {}),
    ("surgery vv (CLIP Surgery)", "surgery", {"attention": "vv"}),
    ("surgery v only (MaskCLIP)", "surgery", {"attention": "none"}),
    ("raw patch tokens", "surgery", {"attention": "qk", "residual": True, "mlp": True}),
]
VITB32_ROWS: list[tuple[str, str, dict[str, Any]]] = [
    ("default (groups)", "default", {}),
    ("groups @320", "groups", {"resolution": 320}),
    ("surgery", "surgery", {}),
    ("masking", "masking", {}),
]


def passes(method: str) -> int:
    """Forward passes per heatmap."""
    return masking_passes() if method == "masking" else 1


def seconds_per_heatmap(model: ClipModel, method: str, options: dict[str, Any], runs: int,
                        case: Any) -> float:  # fmt: skip
    localize(model, case.image, case.query, method=method, **options)  # warm-up
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        localize(model, case.image, case.query, method=method, **options)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=200, help="composites (default 200)")
    parser.add_argument("--quick", action="store_true", help="40 composites, fewer timing runs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    count = 40 if args.quick else args.cases
    cases = make_composites(count, seed=SEED)
    timing_case = cases[0]

    print(f"machine: {machine()}")
    print(f"{count} composites (seed {SEED}), default method = {DEFAULT_METHOD!r}")
    rows, result = [], {}
    demo = ClipModel.load("demo")
    for label, method, options in DEMO_ROWS:
        figures = evaluate(partial(_heatmap, demo, method, options), cases)
        runs = 3 if method == "masking" else 20
        latency = seconds_per_heatmap(demo, method, options, 1 if args.quick else runs, timing_case)
        rows.append(_row("demo", label, method, options.get("resolution") or native_size(demo),
                         figures, latency))  # fmt: skip
        key = label.split()[0]
        if key in ("default", "masking") and "@" not in label:
            result.update({
                f"pointing_{key}": figures["pointing"],
                f"energy_{key}": figures["energy"],
                f"iou_{key}": figures["iou"],
                f"{key}_latency_demo_s": latency,
            })  # fmt: skip

    vitb32 = ClipModel.load(str(vitb32_folder()))
    for label, method, options in VITB32_ROWS:
        runs = 2 if method == "masking" else 15
        latency = seconds_per_heatmap(vitb32, method, options, 1 if args.quick else runs,
                                      timing_case)  # fmt: skip
        side = options.get("resolution") or native_size(vitb32)
        rows.append(_row("ViT-B/32 (random)", label, method, side, None, latency))
        if label.split()[0] in ("default", "masking"):
            result[f"{label.split()[0]}_latency_vitb32_s"] = latency
        elif label == "groups @320":
            result["groups320_latency_vitb32_s"] = latency

    header = ("model", "method", "input", "passes", "pointing", "energy in box", "IoU@0.5",
              "s / heatmap")  # fmt: skip
    print_table(rows, header)
    result["masking_passes"] = passes("masking")
    result["n_composites"] = count
    print(result_line(result))


def _heatmap(model: ClipModel, method: str, options: dict[str, Any], case: Any) -> Any:
    return localize(model, case.image, case.query, method=method, **options)


def _row(model: str, label: str, method: str, side: int, figures: dict[str, float] | None,
         latency: float) -> tuple[str, ...]:  # fmt: skip
    quality = (
        ("-", "-", "-")
        if figures is None
        else tuple(f"{figures[k]:.3f}" for k in ("pointing", "energy", "iou"))
    )
    return (model, label, str(side), str(passes(method)), *quality, f"{latency:.3f}")


if __name__ == "__main__":
    main()

"""Where the fp32 image forward pass's speed comes from: each change alone, side by side.

    python -m benchmarks.forward [--rounds 2] [--batch-size 32]

A random ViT-B/32 CLIP (FashionCLIP's compute) encodes ready-made pixel batches four ways,
each in a fresh process (the malloc setting is process-wide), interleaved over `--rounds`:

- transformers: `get_image_features`, glibc's malloc as it comes (the reference's model);
- + malloc: the same with `fashion_clip.allocator.keep_freed_memory()`;
- + class-token path: `fashion_clip.vision.image_features` (the last layer for the class
  token alone, QuickGELU folded into the matrix products), malloc as it comes;
- ours: both, as `ClipModel.load` and `encode_pixels` run on a CPU.

Each figure is the best of 5 timed batches after 2 warm-up batches; minor page faults are
per batch. The cosine of ours to `get_image_features` shows the result is the same.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

from benchmarks.common import machine, print_table, result_line, vitb32_folder

VARIANTS = {
    "transformers": (False, False),
    "+ malloc": (True, False),
    "+ class-token path": (False, True),
    "ours": (True, True),
}


def child(variant: str, batch: int) -> dict[str, float]:
    import torch
    from transformers import CLIPModel

    from fashion_clip.allocator import keep_freed_memory
    from fashion_clip.vision import image_features

    tuned, class_token_path = VARIANTS[variant]
    if tuned and not keep_freed_memory():
        raise SystemExit("glibc's mallopt is not available here")
    model = CLIPModel.from_pretrained(str(vitb32_folder())).eval()
    pixels = torch.randn(batch, 3, 224, 224, generator=torch.Generator().manual_seed(0))

    def encode() -> torch.Tensor:
        if class_token_path:
            return image_features(model, pixels)
        return model.get_image_features(pixel_values=pixels).pooler_output

    with torch.inference_mode():
        for _ in range(2):
            encode()
        times, faults = [], resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(5):
            start = time.perf_counter()
            out = encode()
            times.append(time.perf_counter() - start)
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
        expected = model.get_image_features(pixel_values=pixels).pooler_output
        cosine = torch.nn.functional.cosine_similarity(out, expected).min()
    return {
        "ms_per_image": min(times) / batch * 1e3,
        "faults_per_batch": faults / 5,
        "cosine_min": float(cosine),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--child", choices=list(VARIANTS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.batch_size)))
        return

    print(f"machine: {machine()}")
    print(f"ViT-B/32 fp32, batch {args.batch_size}, best of {args.rounds} fresh processes")
    best: dict[str, dict[str, float]] = {}
    for _ in range(args.rounds):
        for variant in VARIANTS:
            command = [sys.executable, "-m", "benchmarks.forward", "--child", variant]
            command += ["--batch-size", str(args.batch_size)]
            run = subprocess.run(command, capture_output=True, text=True, check=True)
            figures = json.loads(run.stdout.strip().splitlines()[-1])
            if variant not in best or figures["ms_per_image"] < best[variant]["ms_per_image"]:
                best[variant] = figures
    base = best["transformers"]["ms_per_image"]
    rows = [
        (
            variant,
            f"{f['ms_per_image']:.1f}",
            f"{base / f['ms_per_image']:.2f}x",
            f"{f['faults_per_batch']:.0f}",
            f"{f['cosine_min']:.6f}",
        )
        for variant, f in best.items()
    ]
    print_table(rows, ("forward", "ms/image", "speed", "page faults/batch", "cosine min"))
    keys = {"transformers": "transformers", "+ malloc": "malloc", "+ class-token path": "path"}
    keys["ours"] = "ours"
    figures = {f"{keys[v]}_ms_per_image": f["ms_per_image"] for v, f in best.items()}
    figures |= {f"{keys[v]}_speedup": base / f["ms_per_image"] for v, f in best.items()}
    figures["ours_cosine_min"] = best["ours"]["cosine_min"]
    print(result_line(figures))


if __name__ == "__main__":
    main()

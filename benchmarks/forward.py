"""The image forward pass alone: what each of ours' changes is worth, side by side.

    python -m benchmarks.forward [--rounds 2] [--batch-size 32]

A random ViT-B/32 CLIP (FashionCLIP's compute) encodes ready-made pixel batches five ways,
each in a fresh process (the malloc setting is process-wide, and no run inherits another's
heap), interleaved over `--rounds`:

- transformers: `get_image_features` (what the reference runs);
- class-token path: `fashion_clip.model.vision.image_features` (the last layer for the class
  token alone, QuickGELU folded into the matrix products), glibc's malloc as it comes;
- ours: `ClipModel.load` and `encode_pixels`, with the malloc tuning the app and the indexer
  apply (`fashion_clip.model.allocator.tune_for`);
- int8 and int8, malloc as it comes: the opt-in dynamic int8 model with and without it.

Each figure is the best of 5 timed batches after 2 warm-up batches; minor page faults (pages
mapped anew) are per batch. The cosine to `get_image_features` (fp32) shows what changed.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

from benchmarks.common import machine, print_table, result_line, vitb32_folder

VARIANTS = ("transformers", "class-token path", "ours", "int8, malloc as it comes", "int8")


def child(variant: str, batch: int) -> dict[str, float]:
    import torch
    from transformers import CLIPModel

    import fashion_clip.model.allocator
    from fashion_clip.model.clip import ClipModel
    from fashion_clip.model.vision import image_features

    folder = str(vitb32_folder())
    pixels = torch.randn(batch, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    reference = CLIPModel.from_pretrained(folder).eval()
    if variant in ("transformers", "class-token path"):
        model = reference

        def encode() -> torch.Tensor:
            if variant == "class-token path":
                return image_features(model, pixels)
            return model.get_image_features(pixel_values=pixels).pooler_output
    else:
        quantize = "int8" if variant.startswith("int8") else None
        ours = ClipModel.load(folder, quantize=quantize, text_precision="fp32", device="cpu")
        if not variant.endswith("as it comes"):
            fashion_clip.model.allocator.tune_for(ours.device)  # as the app and indexer do

        def encode() -> torch.Tensor:
            return torch.from_numpy(ours.encode_pixels(pixels.numpy(), normalize=False))

    with torch.inference_mode():
        for _ in range(2):
            encode()
        times, faults = [], resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(5):
            start = time.perf_counter()
            out = encode()
            times.append(time.perf_counter() - start)
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
        expected = reference.get_image_features(pixel_values=pixels).pooler_output
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
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
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
    keys = ("transformers", "path", "ours", "int8_untuned", "int8")
    names = dict(zip(VARIANTS, keys, strict=True))
    figures = {f"{names[v]}_ms_per_image": f["ms_per_image"] for v, f in best.items()}
    figures |= {f"{names[v]}_faults_per_batch": f["faults_per_batch"] for v, f in best.items()}
    figures["speedup"] = base / best["ours"]["ms_per_image"]
    figures["cosine_min"] = best["ours"]["cosine_min"]
    figures["int8_malloc_speedup"] = (
        best["int8, malloc as it comes"]["ms_per_image"] / best["int8"]["ms_per_image"]
    )
    print(result_line(figures))


if __name__ == "__main__":
    main()

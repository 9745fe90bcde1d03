"""Train the bundled demo CLIP on synthetic garments, on CPU, within a wall-clock budget.

    python -m fashion_clip.demo.train [--out DIR] [--minutes 14] [--seed 7] [--steps 600]

Images come from the garment generator under a seed other than the shipped catalog's, so the
catalog is a held-out test set; `evaluate_folder` measures retrieval and zero-shot accuracy on
it through plain transformers, as any user of the saved folder would.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import math
import time
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from transformers import AutoTokenizer, CLIPConfig, CLIPImageProcessor, CLIPModel

from fashion_clip.demo import DEMO_CATALOG_DIR, DEMO_MODEL_DIR
from fashion_clip.demo.garments import CATEGORIES, COLORS, PATTERNS, render_array
from fashion_clip.demo.make_catalog import CATALOG_SEED, JPEG_QUALITY
from fashion_clip.demo.phrases import all_phrases, phrase
from fashion_clip.demo.tokenizer import build_tokenizer

__all__ = ["TRAIN_SEED", "evaluate_folder", "make_config", "train"]

TRAIN_SEED = 7
IMAGE_SIZE = 96
MEAN = (0.48145466, 0.4578275, 0.40821073)  # OpenAI CLIP's; any fixed pair works if saved
STD = (0.26862954, 0.26130258, 0.27577711)
ZERO_SHOT_TEMPLATE = "a photo of a {}"

log = logging.getLogger(__name__)


def make_config(vocab_size: int, bos: int, eos: int, pad: int) -> CLIPConfig:
    """A ~1.5M-parameter CLIP: a 4-layer ViT on 96px images in 12px patches (8x8), a 3-layer
    text encoder. Small enough to train on two shared CPU cores in minutes."""
    text = dict(
        vocab_size=vocab_size, hidden_size=128, intermediate_size=512, num_hidden_layers=3,
        num_attention_heads=4, max_position_embeddings=77, projection_dim=128,
        bos_token_id=bos, eos_token_id=eos, pad_token_id=pad,
    )  # fmt: skip
    vision = dict(
        image_size=IMAGE_SIZE, patch_size=12, hidden_size=128, intermediate_size=512,
        num_hidden_layers=4, num_attention_heads=4, projection_dim=128,
    )  # fmt: skip
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=128)


def _render_pool(n: int, seed: int, workers: int) -> tuple[np.ndarray, np.ndarray]:
    """`n` training images (n, 96, 96, 3) uint8 and their attributes (n, 3) as indices.

    Every combination appears equally often (up to rounding), in a seeded random order.
    """
    sizes = (len(CATEGORIES), len(COLORS), len(PATTERNS))
    combos = list(itertools.product(*(range(s) for s in sizes)))
    order = np.random.default_rng([seed, 1]).permutation(np.resize(np.arange(len(combos)), n))
    attrs = np.array([combos[i] for i in order], np.int64)
    names = [(CATEGORIES[c], COLORS[k], PATTERNS[p]) for c, k, p in attrs]
    chunk = math.ceil(n / max(1, workers * 4))
    starts = list(range(0, n, chunk))
    render = partial(render_array, size=256, out_size=IMAGE_SIZE, jpeg_quality=JPEG_QUALITY)
    # fork: works from any caller (spawn re-imports __main__); the children only run numpy and
    # PIL, so torch's thread pool in the parent cannot hang them
    with ProcessPoolExecutor(workers, mp_context=get_context("fork")) as pool:
        parts = pool.map(
            render, [names[s : s + chunk] for s in starts], [seed] * len(starts), starts
        )
        images = np.concatenate(list(parts))
    return images, attrs


def _pixels(images: np.ndarray) -> torch.Tensor:
    """uint8 (n, h, w, 3) -> normalised float (n, 3, h, w), exactly as CLIPImageProcessor."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    return (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


def _batch(attrs: np.ndarray, by_combo: list[np.ndarray], size: int,
           rng: np.random.Generator) -> np.ndarray:  # fmt: skip
    """Pool indices: half at random, half in groups of 4 that differ in one attribute only.

    The groups are the hard negatives: a red striped dress next to red dotted and red checked
    dresses forces the model to read the pattern, not just the colour and shape.
    """
    chosen = list(rng.integers(len(attrs), size=size // 2))
    sizes = (len(CATEGORIES), len(COLORS), len(PATTERNS))
    while len(chosen) < size:
        anchor = attrs[rng.integers(len(attrs))].copy()
        # colour is learned first and easily; shape and pattern need the harder contrasts
        axis = int(rng.choice(3, p=[0.5, 0.15, 0.35]))
        for value in rng.choice(sizes[axis], size=min(4, sizes[axis]), replace=False):
            anchor[axis] = value
            combo = (anchor[0] * sizes[1] + anchor[1]) * sizes[2] + anchor[2]
            chosen.append(int(rng.choice(by_combo[combo])))
    return np.array(chosen[:size])


def _loss(logits: torch.Tensor, match: torch.Tensor) -> torch.Tensor:
    """CLIP's symmetric InfoNCE with several positives: `match` (images, texts) is True where
    the text describes the image; the target spreads evenly over all true pairs."""
    target = match.float()
    i2t = -(F.log_softmax(logits, 1) * target / target.sum(1, keepdim=True)).sum(1).mean()
    t2i = -(F.log_softmax(logits, 0) * target / target.sum(0, keepdim=True)).sum(0).mean()
    return (i2t + t2i) / 2


def _texts(attrs: np.ndarray, rng: np.random.Generator) -> tuple[list[str], torch.Tensor]:
    """Two texts per image, the full description and a partial one ("red", "dress", ...),
    and the match matrix (images, texts): True where a text fits an image."""
    texts, specs = [], []
    for kind in ("ckp", None):
        for c, k, p in attrs:
            text, spec = phrase(int(c), int(k), int(p), rng, kind)
            texts.append(text)
            specs.append(spec)
    spec = torch.tensor(specs)[None]  # (1, texts, 3), -1 where the text is silent
    attr = torch.from_numpy(attrs)[:, None]  # (images, 1, 3)
    return texts, ((spec == -1) | (spec == attr)).all(-1)


class _ThreadPicker:
    """Uses 1 or 2 torch threads, whichever ran steps faster when last timed.

    On a machine shared with other jobs two threads keep waiting on each other whenever
    another process holds a core, and one thread is then faster; on an idle machine two are.
    Both are timed for a few steps every `every` steps.
    """

    def __init__(self, every: int = 50, trials: int = 3) -> None:
        self.every, self.trials, self.best = every, trials, 2
        self.times: dict[int, list[float]] = {1: [], 2: []}

    def __enter__(self) -> None:
        phase = self.step % self.every
        self.threads = self.best if phase >= 2 * self.trials else 1 + phase // self.trials
        torch.set_num_threads(self.threads)
        self.began = time.monotonic()

    def __exit__(self, *exc: object) -> None:
        phase = self.step % self.every
        if phase < 2 * self.trials:
            self.times[self.threads].append(time.monotonic() - self.began)
        if phase == 2 * self.trials - 1:
            self.best = min(self.times, key=lambda n: float(np.median(self.times[n])))
            self.times = {1: [], 2: []}

    def at(self, step: int) -> _ThreadPicker:
        self.step = step
        return self


def train(out_dir: Path = DEMO_MODEL_DIR, minutes: float = 14.0, seed: int = TRAIN_SEED,
          steps: int = 1000, pool_size: int = 8000, batch_size: int = 128,
          lr: float = 1.5e-3) -> dict[str, float]:  # fmt: skip
    """Render a training pool, train, save a Hugging Face model folder to `out_dir`.

    Training stops at `steps` or when the wall-clock budget of `minutes` (counted from the
    call, rendering included) runs out, whichever comes first; the learning-rate schedule
    follows whichever is further along, so a slow machine still ends on a cooled-down model.
    Returns a summary: steps done, seconds spent, last loss.
    """
    start = time.monotonic()
    deadline = start + minutes * 60 - 20  # leave time to save
    torch.manual_seed(seed)
    rng = np.random.default_rng([seed, 2])

    tokenizer = build_tokenizer(all_phrases())
    ids = (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id)
    model = CLIPModel(make_config(len(tokenizer), *ids))
    images, attrs = _render_pool(pool_size, seed, workers=2)
    combo_ids = (attrs[:, 0] * len(COLORS) + attrs[:, 1]) * len(PATTERNS) + attrs[:, 2]
    by_combo = [np.flatnonzero(combo_ids == c) for c in range(combo_ids.max() + 1)]
    log.info("rendered %d training images in %.0fs", len(images), time.monotonic() - start)

    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    other = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    groups = [{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}]
    # fused: one kernel for all tensors instead of ~1000 tiny ops, each a thread sync
    opt = torch.optim.AdamW(groups, lr=lr, fused=True)
    threads = _ThreadPicker()
    train_start, warmup, step, loss = time.monotonic(), 20, 0, torch.tensor(0.0)
    model.train()
    while True:
        progress = max(step / steps, (time.monotonic() - train_start) / (deadline - train_start))
        if progress >= 1:
            break
        scale = min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * progress))
        for group in opt.param_groups:
            group["lr"] = lr * scale

        with threads.at(step):
            idx = _batch(attrs, by_combo, batch_size, rng)
            pixels = _pixels(images[idx])
            if rng.random() < 0.5:  # the renderer already flips; this doubles the poses seen
                pixels = pixels.flip(3)
            texts, match = _texts(attrs[idx], rng)
            tokens = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
            loss = _loss(model(**tokens, pixel_values=pixels).logits_per_image, match)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0, foreach=True)
            opt.step()
            with torch.no_grad():  # CLIP's cap on the temperature
                model.logit_scale.clamp_(0, math.log(100))
        step += 1
        if step % 25 == 0:
            elapsed = time.monotonic() - start
            log.info("step %d  loss %.3f  lr %.2e  threads %d  %.0fs", step, loss.item(),
                     lr * scale, threads.best, elapsed)  # fmt: skip

    out_dir.mkdir(parents=True, exist_ok=True)
    model.eval()
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    CLIPImageProcessor(
        size={"shortest_edge": IMAGE_SIZE},
        crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        resample=Image.Resampling.BICUBIC,
        image_mean=list(MEAN),
        image_std=list(STD),
    ).save_pretrained(out_dir)
    return {"steps": step, "seconds": time.monotonic() - start, "loss": float(loss.item())}


@torch.no_grad()
def evaluate_folder(model_dir: Path = DEMO_MODEL_DIR,
                    catalog_dir: Path = DEMO_CATALOG_DIR) -> dict[str, float]:  # fmt: skip
    """Score a saved model on a catalog through plain transformers.

    Caption -> image retrieval (recall@1/5/10, MRR: each caption has one right image) and
    zero-shot accuracy for category, colour and pattern, with labels embedded as
    `ZERO_SHOT_TEMPLATE` ("a photo of a {}") and as bare words (`*_accuracy_bare`).
    """
    model = CLIPModel.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    processor = CLIPImageProcessor.from_pretrained(model_dir)
    rows = [json.loads(line) for line in (catalog_dir / "catalog.jsonl").read_text().splitlines()]

    def embed_text(texts: list[str]) -> torch.Tensor:  # (n, dim), unit length
        tokens = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
        return F.normalize(model.get_text_features(**tokens).pooler_output, dim=-1)

    image_parts = []
    for i in range(0, len(rows), 100):
        batch = [Image.open(catalog_dir / r["image"]).convert("RGB") for r in rows[i : i + 100]]
        pixels = processor(images=batch, return_tensors="pt")["pixel_values"]
        features = model.get_image_features(pixel_values=pixels).pooler_output
        image_parts.append(F.normalize(features, dim=-1))
    images = torch.cat(image_parts)  # (n, dim), unit length

    sims = embed_text([r["caption"] for r in rows]) @ images.T  # (captions, images)
    right = sims.diagonal()[:, None]
    ranks = (sims > right).sum(1) + 1  # 1 = the right image came first
    result = {
        "n_items": float(len(rows)),
        "recall@1": (ranks <= 1).float().mean().item(),
        "recall@5": (ranks <= 5).float().mean().item(),
        "recall@10": (ranks <= 10).float().mean().item(),
        "mrr": (1.0 / ranks.float()).mean().item(),
    }
    for field, labels in (("category", CATEGORIES), ("color", COLORS), ("pattern", PATTERNS)):
        truth = torch.tensor([labels.index(r[field]) for r in rows])
        for suffix, template in (("", ZERO_SHOT_TEMPLATE), ("_bare", "{}")):
            guess = (images @ embed_text([template.format(x) for x in labels]).T).argmax(1)
            result[f"{field}_accuracy{suffix}"] = (guess == truth).float().mean().item()
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEMO_MODEL_DIR)
    parser.add_argument("--minutes", type=float, default=14.0, help="wall-clock budget")
    parser.add_argument("--seed", type=int, default=TRAIN_SEED)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--pool", type=int, default=8000, help="training images rendered")
    args = parser.parse_args(argv)
    if args.seed == CATALOG_SEED:
        parser.error(f"--seed {CATALOG_SEED} is the shipped catalog's; training must not see it")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    summary = train(args.out, args.minutes, args.seed, args.steps, args.pool)
    log.info("trained: %s", json.dumps(summary))
    log.info("held-out catalog: %s", json.dumps(evaluate_folder(args.out, DEMO_CATALOG_DIR)))


if __name__ == "__main__":
    main()

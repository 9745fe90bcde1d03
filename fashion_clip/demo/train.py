"""Train the bundled demo CLIP on synthetic garments, on CPU, within a wall-clock budget.

    python -m fashion_clip.demo.train [--out DIR] [--minutes 14] [--seed 7] [--steps 600]

Images come from the garment generator under a seed other than the shipped catalog's, so the
catalog is a held-out test set; `evaluate_folder` measures retrieval and zero-shot accuracy on
it through plain transformers, as any user of the saved folder would.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from transformers import (
    AutoTokenizer,
    CLIPConfig,
    CLIPImageProcessor,
    CLIPModel,
    PreTrainedTokenizerBase,
)

from fashion_clip.demo import DEMO_CATALOG_DIR, DEMO_MODEL_DIR
from fashion_clip.demo.garments import CATEGORIES, COLORS, PATTERNS
from fashion_clip.demo.make_catalog import CATALOG_SEED, JPEG_QUALITY
from fashion_clip.demo.phrases import all_phrases, phrase
from fashion_clip.demo.tokenizer import build_tokenizer
from fashion_clip.demo.trainset import SIZES, TrainingPool

__all__ = ["TRAIN_SEED", "evaluate_folder", "make_config", "train"]

TRAIN_SEED = 7
IMAGE_SIZE = 96
MEAN = (0.48145466, 0.4578275, 0.40821073)  # OpenAI CLIP's; any fixed pair works if saved
STD = (0.26862954, 0.26130258, 0.27577711)
ZOOM_SHARE = 0.4  # of each batch shown small and off-centre (see `_zoom_out`)
ZOOM_SMALLEST = 0.3  # of the side
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


def _pixels(images: np.ndarray) -> torch.Tensor:
    """uint8 (n, h, w, 3) -> normalised float (n, 3, h, w), exactly as CLIPImageProcessor."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    return (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


def _zoom_out(pixels: torch.Tensor, rng: np.random.Generator, share: float = ZOOM_SHARE,
              smallest: float = ZOOM_SMALLEST) -> torch.Tensor:  # fmt: skip
    """Shrink a `share` of the images (normalised, (n, 3, s, s)) to a random 'smallest'..1 of
    their side and place each at a random spot on its own backdrop colour.

    Catalog photos show one garment filling the frame; in a scene, and in the heatmap's
    per-patch views (`localize_methods.groups`), a garment is small and anywhere. Training on
    both keeps the model's view of colour, pattern and shape from depending on scale and place.
    """
    out = pixels.clone()
    side = pixels.shape[-1]
    for i in np.flatnonzero(rng.random(len(pixels)) < share):
        new = max(8, round(side * rng.uniform(smallest, 1.0)))
        corners = pixels[i, :, [0, 0, -1, -1], [0, -1, 0, -1]].mean(1)  # the backdrop's colour
        out[i] = corners[:, None, None]
        x, y = rng.integers(0, side - new + 1, size=2)
        small = F.interpolate(pixels[i : i + 1], size=(new, new), mode="bilinear", antialias=True)
        out[i, :, y : y + new, x : x + new] = small[0]
    return out


def _texts(attrs: np.ndarray, rng: np.random.Generator) -> tuple[list[str], torch.Tensor]:
    """The texts of one batch and the match matrix (images, paired texts).

    Per image, two paired texts: its full description and a partial one ("red", "dress", ...);
    `match` is True where a paired text fits an image. Then one label text per category,
    colour and pattern ("a photo of a dress", "red", ...), in that order, for `_loss`.
    """
    texts, specs = [], []
    for kind in ("ckp", None):
        for c, k, p in attrs:
            text, spec = phrase(int(c), int(k), int(p), rng, kind)
            texts.append(text)
            specs.append(spec)
    for field, kind in enumerate("ckp"):
        for value in range(SIZES[field]):
            attr = [0, 0, 0]
            attr[field] = value
            texts.append(phrase(*attr, rng, kind)[0])
    spec = torch.tensor(specs)[None]  # (1, paired texts, 3), -1 where the text is silent
    attr = torch.from_numpy(attrs)[:, None]  # (images, 1, 3)
    return texts, ((spec == -1) | (spec == attr)).all(-1)


def _loss(
    image: torch.Tensor, text: torch.Tensor, scale: torch.Tensor, match: torch.Tensor,
    attrs: torch.Tensor,
) -> torch.Tensor:  # fmt: skip
    """CLIP's symmetric InfoNCE, with several positives, plus zero-shot label terms.

    `image` (images, dim) and `text` (texts, dim) are unit length, the texts as `_texts` made
    them; `match` is (images, paired texts), `attrs` (images, 3). On the paired texts the
    target spreads evenly over all true pairs. Each image also picks its category, colour and
    pattern among that attribute's label texts, and each label text picks itself among its
    kind: with both towers starting with all labels alike, a category prompt would otherwise
    give the image tower no direction to learn shapes in.
    """
    logits = scale * image @ text.T  # (images, texts)
    n = match.shape[1]
    paired, target = logits[:, :n], match.float()
    i2t = -(F.log_softmax(paired, 1) * target / target.sum(1, keepdim=True)).sum(1).mean()
    t2i = -(F.log_softmax(paired, 0) * target / target.sum(0, keepdim=True)).sum(0).mean()
    loss = (i2t + t2i) / 2
    for field, size in enumerate(SIZES):
        labels = text[n : n + size]  # (size, dim)
        loss = loss + F.cross_entropy(logits[:, n : n + size], attrs[:, field])
        loss = loss + F.cross_entropy(scale * labels @ labels.T, torch.arange(size))
        n += size
    return loss


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


def _step(
    model: CLIPModel,
    tokenizer: PreTrainedTokenizerBase,
    opt: torch.optim.Optimizer,
    pool: TrainingPool,
    batch_size: int,
    rng: np.random.Generator,
) -> torch.Tensor:
    """One optimisation step on a fresh batch; returns the loss."""
    pool.refresh()
    idx = pool.batch(batch_size, rng)
    pixels = _pixels(pool.images[idx])
    if rng.random() < 0.5:  # the renderer already flips; this doubles the poses seen
        pixels = pixels.flip(3)
    pixels = _zoom_out(pixels, rng)
    texts, match = _texts(pool.attrs[idx], rng)
    tokens = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
    out = model(**tokens, pixel_values=pixels)
    scale = model.logit_scale.exp()
    loss = _loss(out.image_embeds, out.text_embeds, scale, match, torch.from_numpy(pool.attrs[idx]))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0, foreach=True)
    opt.step()
    with torch.no_grad():  # CLIP's cap on the temperature
        model.logit_scale.clamp_(0, math.log(100))
    return loss


def train(out_dir: Path = DEMO_MODEL_DIR, minutes: float = 14.0, seed: int = TRAIN_SEED,
          steps: int = 1900, pool_size: int = 6000, batch_size: int = 64,
          lr: float = 1e-3) -> dict[str, float]:  # fmt: skip
    """Train a demo CLIP on freshly rendered garments; save a model folder to `out_dir`.

    Training stops at `steps` or when the wall-clock budget of `minutes` (counted from the
    call, rendering included) runs out, whichever comes first; the learning-rate schedule
    follows whichever is further along, so a slow machine still ends on a cooled-down model.
    Images are rendered in the background (up to `pool_size`) while training runs, so the run
    is not bit-for-bit repeatable. Returns a summary: steps, images, seconds, last loss.
    """
    start = time.monotonic()
    deadline = start + minutes * 60 - 20  # leave time to save
    torch.manual_seed(seed)
    rng = np.random.default_rng([seed, 2])
    pool = TrainingPool(pool_size, seed, IMAGE_SIZE, JPEG_QUALITY)

    tokenizer = build_tokenizer(all_phrases())
    ids = (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id)
    model = CLIPModel(make_config(len(tokenizer), *ids))
    with torch.no_grad():
        # CLIP's init gives position embeddings 1/40 the scale of the patch content, so the
        # ViT starts blind to where things are and learns silhouettes very slowly
        model.vision_model.embeddings.position_embedding.weight.normal_(0, 2.0)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    other = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    groups = [{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}]
    # fused: one kernel for all tensors instead of ~1000 tiny ops, each a thread sync
    opt = torch.optim.AdamW(groups, lr=lr, fused=True)
    threads = _ThreadPicker()

    with pool:
        pool.refresh(wait=True)
        train_start, warmup, step, loss = time.monotonic(), 20, 0, torch.tensor(0.0)
        model.train()
        while True:
            elapsed = (time.monotonic() - train_start) / (deadline - train_start)
            progress = max(step / steps, elapsed)
            if progress >= 1:
                break
            scale = min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * progress))
            for group in opt.param_groups:
                group["lr"] = lr * scale
            with threads.at(step):
                loss = _step(model, tokenizer, opt, pool, batch_size, rng)
            step += 1
            if step % 50 == 0:
                log.info("step %d  loss %.3f  lr %.2e  images %d  threads %d  %.0fs", step,
                         loss.item(), lr * scale, pool.refresh(), threads.best,
                         time.monotonic() - start)  # fmt: skip

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
    return {
        "steps": step,
        "images": pool.ready,
        "seconds": round(time.monotonic() - start, 1),
        "loss": round(float(loss.item()), 4),
    }


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
    parser.add_argument("--steps", type=int, default=1900)
    parser.add_argument("--pool", type=int, default=6000, help="training images to render")
    args = parser.parse_args(argv)
    if args.seed == CATALOG_SEED:
        parser.error(f"--seed {CATALOG_SEED} is the shipped catalog's; training must not see it")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    summary = train(args.out, args.minutes, args.seed, args.steps, args.pool)
    log.info("trained: %s", json.dumps(summary))
    log.info("held-out catalog: %s", json.dumps(evaluate_folder(args.out, DEMO_CATALOG_DIR)))


if __name__ == "__main__":
    main()

"""The heatmap methods behind `localize`: raw text-relevance scores over a square image view.

Every method takes the model, a `(1, 3, S, S)` float32 view (normalised pixels) and the
text's `(dim,)` unit embedding, and returns a `(g, g)` float32 grid of scores in [0, 1]
covering the view (higher = more of the text there).

- `surgery`: one forward pass. CLIP's patch tokens at the last layer are dominated by global
  context (each one attends mostly to a few "register" tokens), so their similarity to a
  text does not follow the object. Following ClearCLIP/SCLIP, the last block is rerun with
  self-self attention (queries to queries plus keys to keys), without its residual and MLP,
  and each patch token then goes through `post_layernorm` and the projection like the CLS.
- `masking`: the reference, occlusion: encode copies of the view with a small square greyed
  out at each spot of a grid, and credit each spot with the similarity it costs. At its
  default (14 x 14 spots) it takes 197 forward passes, the original package's count.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from fashion_clip.model.vision import is_clip_vit

GROUP_SHARE = 0.05  # of the patches each CLS token sees (tuned on composites, seed 2)
MASKING_GRID = 14  # 14 x 14 occluded copies + the intact view = 197 passes, as the original
MASKING_WINDOW = 2.0  # occluder side in grid cells (32 px at 224)
MASKING_BATCH = 32


def masking_passes(grid: int = MASKING_GRID) -> int:
    """Forward passes of one masking heatmap: each occluded copy and the intact view."""
    return grid * grid + 1


def supports_single_pass(model: Any) -> bool:
    """True for CLIP ViTs as `transformers` builds them (FashionCLIP's architecture)."""
    return model.info.kind == "clip" and is_clip_vit(model.torch_model)


def patch_size(model: Any) -> int:
    return int(model.torch_model.config.vision_config.patch_size)


def native_size(model: Any) -> int:
    return int(model.torch_model.config.vision_config.image_size)


def _vision_dtype(model: Any) -> torch.dtype:
    return model.torch_model.vision_model.embeddings.patch_embedding.weight.dtype


def groups(model: Any, pixels: np.ndarray, text: np.ndarray, *,
           share: float = GROUP_SHARE) -> np.ndarray:  # fmt: skip
    """Single pass: a CLS token per patch that sees only the patches most like its own, `(g, g)`.

    CLIP's CLS summarises the whole image; with several garments in view it matches none of
    their captions well, although each garment alone is recognised. So the view runs once with
    `g*g` extra CLS tokens: CLS token `i`, and patch `i` itself, attend only to the
    `share` of patches most similar to patch `i` at the input (by cosine of the embedded
    patches: mostly the same garment), like the model looking at that garment alone. Each
    CLS token then goes through `post_layernorm` and the projection like the real one. The
    sequence doubles, so the pass costs about two plain forward passes.
    """
    vm = model.torch_model.vision_model
    side = pixels.shape[-1]
    with torch.inference_mode():
        x = torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32)).to(model.device)
        embedded = vm.embeddings(
            x.to(_vision_dtype(model)), interpolate_pos_encoding=side != native_size(model)
        )  # (1, 1 + n, width): CLS first, then the n = g*g patches
        cls, patches = embedded[:, :1], embedded[:, 1:]
        n = patches.shape[1]
        unit = F.normalize(vm.pre_layrnorm(patches)[0].float(), dim=-1)
        affinity = unit @ unit.T  # (n, n) cosine between patches, 1 on the diagonal
        k = min(n, max(2, round(share * n)))
        near = torch.zeros(n, n, dtype=torch.bool, device=x.device)
        near.scatter_(1, affinity.topk(k, dim=1).indices, True)  # (row i: patch i's group)
        allowed = torch.zeros(2 * n, 2 * n, dtype=torch.bool, device=x.device)
        allowed[:n, :n] = near  # patch i -> its group
        allowed[n:, :n] = near  # CLS i -> patch i's group
        eye = torch.eye(n, dtype=torch.bool, device=x.device)
        allowed[n:, n:] = eye  # CLS i -> itself
        allowed[:n, n:] = eye  # patch i -> CLS i, as patches attend to the CLS in training
        mask = torch.zeros(1, 1, 2 * n, 2 * n, dtype=embedded.dtype, device=x.device)
        mask.masked_fill_(~allowed, float("-inf"))
        hidden = vm.pre_layrnorm(torch.cat([patches, cls.expand(-1, n, -1)], dim=1))
        for layer in vm.encoder.layers:
            hidden = layer(hidden, mask)
        tokens = vm.post_layernorm(hidden[:, n:])  # (1, n, width): one CLS per patch
        scores = _cosines(model, tokens, text)
    grid = math.isqrt(scores.size)
    return rescale(scores.reshape(grid, grid))


def surgery(model: Any, pixels: np.ndarray, text: np.ndarray, *, attention: str = "qq+kk",
            residual: bool = False, mlp: bool = False) -> np.ndarray:  # fmt: skip
    """Single pass: cosine of each patch token (rerun last block) with the text, `(g, g)`.

    `attention` chooses the last block's mixing: "qq+kk" (default), "qk" (the model's own),
    "vv" (CLIP Surgery) or "none" (MaskCLIP: the value path alone). `residual` and `mlp`
    put the block's skip connection and MLP back (both off in ClearCLIP).
    """
    vm = model.torch_model.vision_model
    side = pixels.shape[-1]
    with torch.inference_mode():
        x = torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32)).to(model.device)
        x = x.to(_vision_dtype(model))
        hidden = vm.embeddings(x, interpolate_pos_encoding=side != native_size(model))
        hidden = vm.pre_layrnorm(hidden)
        for layer in vm.encoder.layers[:-1]:
            hidden = layer(hidden, None)
        tokens = _last_block(vm.encoder.layers[-1], hidden, attention, residual, mlp)
        tokens = vm.post_layernorm(tokens[:, 1:])  # (1, g*g, width): patches, CLS dropped
        scores = _cosines(model, tokens, text)
    grid = math.isqrt(scores.size)
    return rescale(scores.reshape(grid, grid))


def _last_block(layer: Any, hidden: torch.Tensor, attention: str, residual: bool,
                mlp: bool) -> torch.Tensor:  # fmt: skip
    """The last encoder layer with its attention replaced; `(b, n, width)` in and out.

    Written out (not called) because the mixing changes: transformers 5's CLIPAttention
    takes (hidden_states, attention_mask) and returns (output, weights); only its four
    projections are reused here.
    """
    attn = layer.self_attn
    normed = layer.layer_norm1(hidden)
    b, n, width = normed.shape

    def split(t: torch.Tensor) -> torch.Tensor:  # (b, n, width) -> (b, heads, n, head_dim)
        return t.view(b, n, -1, attn.head_dim).transpose(1, 2)

    v = split(attn.v_proj(normed))
    if attention == "none":
        mixed = v
    else:
        q, k = split(attn.q_proj(normed)), split(attn.k_proj(normed))
        pairs = {"qk": [(q, k)], "qq+kk": [(q, q), (k, k)], "vv": [(v, v)]}[attention]
        weights = sum(torch.softmax((a @ c.transpose(-1, -2)) * attn.scale, -1) for a, c in pairs)
        mixed = weights @ v
    out = attn.out_proj(mixed.transpose(1, 2).reshape(b, n, width))
    if residual:
        out = out + hidden
    if mlp:
        out = out + layer.mlp(layer.layer_norm2(out))
    return out


def masking(
    model: Any,
    pixels: np.ndarray,
    text: np.ndarray,
    *,
    grid: int = MASKING_GRID,
    window: float = MASKING_WINDOW,
    batch_size: int = MASKING_BATCH,
) -> np.ndarray:
    """Occlusion reference, `(grid, grid)`: how much hiding each spot lowers the similarity.

    A square of `window` grid cells (stride = view side / `grid`), centred on each of the
    `grid` x `grid` cells in turn, is filled with the dataset's mean colour and the copy is
    encoded (`grid**2 + 1` passes with the intact view, in batches of `batch_size`). A cell
    scores the mean similarity drop of the windows that cover it.
    """
    side = pixels.shape[-1]
    stride = side / grid
    half = window * stride / 2
    centres = (np.arange(grid) + 0.5) * stride
    spans = [(max(0, round(c - half)), min(side, round(c + half))) for c in centres]
    base = float(_embed(model, pixels)[0] @ text)
    drops = np.empty((grid, grid), dtype=np.float32)  # indexed by window centre (row, col)
    spots = [(r, c) for r in range(grid) for c in range(grid)]
    for start in range(0, len(spots), batch_size):
        chunk = spots[start : start + batch_size]
        batch = np.repeat(pixels, len(chunk), axis=0)
        for i, (r, c) in enumerate(chunk):
            (y0, y1), (x0, x1) = spans[r], spans[c]
            batch[i, :, y0:y1, x0:x1] = 0.0  # 0 = the dataset mean colour after normalising
        sims = _embed(model, batch) @ text
        for (r, c), sim in zip(chunk, sims, strict=True):
            drops[r, c] = base - sim
    # Spread each window's drop over the cells it covers (a separable box filter).
    reach = max(0, int(np.ceil(window / 2 - 0.5)))
    cover = np.zeros((grid, grid), dtype=np.float32)
    for i in range(grid):
        cover[i, max(0, i - reach) : i + reach + 1] = 1.0
    score = cover @ drops @ cover.T / np.outer(cover.sum(1), cover.sum(1))
    return rescale(score)


def _cosines(model: Any, tokens: torch.Tensor, text: np.ndarray) -> np.ndarray:
    """(1, n, width) final-layer tokens -> (n,) cosine of their projections with the text."""
    features = F.normalize(model.torch_model.visual_projection(tokens).float(), dim=-1)
    query = torch.from_numpy(np.asarray(text, dtype=np.float32)).to(features.device)
    return (features[0] @ query).cpu().numpy()


def _embed(model: Any, pixels: np.ndarray) -> np.ndarray:
    """(n, 3, s, s) -> (n, dim) unit embeddings, at any `s` (interpolated positions)."""
    side = pixels.shape[-1]
    if side == model.preprocessor.output_size[0] == model.preprocessor.output_size[1]:
        return model.encode_pixels(pixels)
    with torch.inference_mode():
        x = torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32)).to(model.device)
        out = model.torch_model.get_image_features(
            pixel_values=x.to(_vision_dtype(model)), interpolate_pos_encoding=True
        )
        features = getattr(out, "pooler_output", out).float()
        return F.normalize(features, dim=-1).cpu().numpy()


def rescale(grid: np.ndarray) -> np.ndarray:
    """Min-max to [0, 1]; a flat grid becomes all zeros (nothing stands out)."""
    grid = np.asarray(grid, dtype=np.float32)
    low, high = float(grid.min()), float(grid.max())
    if not np.isfinite(high - low) or high - low < 1e-12:
        return np.zeros_like(grid)
    return (grid - low) / (high - low)

"""The heatmap methods behind `localize`: raw text-relevance scores over a square image view.

Every method takes the model, a `(1, 3, S, S)` float32 view (normalised pixels) and the
text's `(dim,)` unit embedding, and returns a `(g, g)` float32 grid of scores in [0, 1]
covering the view (higher = more of the text there).

- `surgery`: one forward pass. CLIP's patch tokens at the last layer are dominated by global
  context (each one attends mostly to a few "register" tokens), so their similarity to a
  text does not follow the object. Following ClearCLIP/SCLIP, the last block is rerun with
  self-self attention (queries to queries plus keys to keys), without its residual and MLP,
  and each patch token then goes through `post_layernorm` and the projection like the CLS.
- `masking`: the reference, as in the original fashion-clip package: encode copies of the
  view where only a horizontal or vertical band is kept (the rest grey) and credit each band
  with how much it raises the image-text similarity. About 200 forward passes, batched.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

MASKING_GRID = 14  # band edges per side: 2 * C(15, 2) - 1 = 209 passes (the original: 197)
MASKING_BATCH = 32


def masking_passes(grid: int = MASKING_GRID) -> int:
    """Forward passes of one masking heatmap: every band of both orientations, view once."""
    return (grid + 1) * grid - 1


def supports_single_pass(model: Any) -> bool:
    """True for CLIP ViTs as `transformers` builds them (FashionCLIP's architecture)."""
    tm = model.torch_model
    vm = getattr(tm, "vision_model", None)
    if model.info.kind != "clip" or vm is None or not hasattr(tm, "visual_projection"):
        return False
    layers = getattr(getattr(vm, "encoder", None), "layers", None)
    attn = getattr(layers[-1], "self_attn", None) if layers else None
    return (
        hasattr(vm, "pre_layrnorm")
        and hasattr(vm, "post_layernorm")
        and hasattr(getattr(vm, "embeddings", None), "class_embedding")
        and all(hasattr(attn, name) for name in ("q_proj", "k_proj", "v_proj", "out_proj"))
    )


def patch_size(model: Any) -> int:
    return int(model.torch_model.config.vision_config.patch_size)


def native_size(model: Any) -> int:
    return int(model.torch_model.config.vision_config.image_size)


def _vision_dtype(model: Any) -> torch.dtype:
    return model.torch_model.vision_model.embeddings.patch_embedding.weight.dtype


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
        features = F.normalize(model.torch_model.visual_projection(tokens).float(), dim=-1)
        query = torch.from_numpy(np.asarray(text, dtype=np.float32)).to(features.device)
        scores = (features[0] @ query).cpu().numpy()  # (g*g,) cosine similarities
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
    heads = attn.num_heads

    def split(t: torch.Tensor) -> torch.Tensor:  # (b, n, width) -> (b, heads, n, head_dim)
        return t.view(b, n, heads, width // heads).transpose(1, 2)

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


def masking(model: Any, pixels: np.ndarray, text: np.ndarray, *, grid: int = MASKING_GRID,
            batch_size: int = MASKING_BATCH, iterations: int = 5) -> np.ndarray:  # fmt: skip
    """The band-masking reference, `(s, s)` at the view's resolution.

    The view is cut into `grid` strips per side; every band of consecutive strips, horizontal
    and vertical, is kept alone on grey and encoded. A pixel's score is the mean gain in
    similarity, `max(sim(band) - sim(view), 0)`, over the bands that keep it, then sharpened
    `iterations` times by removing the mean (the original package's post-processing).
    """
    side = pixels.shape[-1]
    edges = np.linspace(0, side, grid + 1).round().astype(int)
    bands = [(i, j) for i in range(grid + 1) for j in range(i + 1, grid + 1)]
    bands.remove((0, grid))  # the full band is the view itself, encoded once below
    keep = np.zeros((2 * len(bands), side), dtype=bool)  # per mask: kept rows / columns
    for m, (i, j) in enumerate(bands):
        keep[m, edges[i] : edges[j]] = True
        keep[len(bands) + m, edges[i] : edges[j]] = True
    base = float(_embed(model, pixels)[0] @ text)
    gains = np.empty(len(keep), dtype=np.float32)
    for start in range(0, len(keep), batch_size):
        chunk = keep[start : start + batch_size]
        batch = np.repeat(pixels, len(chunk), axis=0)
        for row, m in enumerate(range(start, start + len(chunk))):
            if m < len(bands):  # horizontal band: rows kept
                batch[row, :, ~keep[m], :] = 0.0  # 0 = the dataset mean colour, a mid grey
            else:
                batch[row, :, :, ~keep[m]] = 0.0
        gains[start : start + len(chunk)] = np.maximum(_embed(model, batch) @ text - base, 0)
    # Bands are separable: a pixel's total is its row's share plus its column's share.
    rows = keep[: len(bands)].T.astype(np.float32) @ gains[: len(bands)]  # (side,)
    cols = keep[len(bands) :].T.astype(np.float32) @ gains[len(bands) :]
    score = (rows[:, None] + cols[None, :]) / (len(keep) + 1)
    for _ in range(iterations):
        score = np.maximum(score - score.mean(), 0)
    return rescale(score)


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

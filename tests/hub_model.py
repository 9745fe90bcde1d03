"""A test model laid out exactly like `patrickjohncyh/fashion-clip` on the hub, with the real
CLIP tokenizer and tiny random weights.

The hub repository holds `config.json`, `preprocessor_config.json`, `vocab.json`,
`merges.txt`, `tokenizer.json`, `tokenizer_config.json`, `special_tokens_map.json` and
`model.safetensors`. The tokenizer files are made here from OpenAI's BPE vocabulary
(`tests/data/clip_bpe`, MIT), converted as Hugging Face converted it for `openai/clip-*`,
and loaded back with `CLIPTokenizer.from_pretrained` (building `CLIPTokenizer(vocab_file=…)`
directly makes a wrong two-token vocabulary in transformers 5). The model keeps ViT-B/32's
geometry (224-pixel inputs, 32-pixel patches, 77 text positions, 49,408 tokens) with tiny
widths, so it runs in milliseconds.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

BPE = Path(__file__).parent / "data" / "clip_bpe" / "bpe_simple_vocab_16e6.txt.gz"
MERGES = 49152 - 256 - 2  # CLIP keeps the first 48,894 merges of the file
SPECIAL = ("<|startoftext|>", "<|endoftext|>")


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from bytes to printable characters (CLIP's tokenizer uses it)."""
    printable = [
        *range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]  # fmt: skip
    codes = list(printable)
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, codes), strict=True))


def write_tokenizer_files(folder: Path) -> None:
    """`vocab.json` and `merges.txt` from OpenAI's BPE file, in CLIP's token order: the 256
    byte characters, the same with `</w>`, one token per merge, then the two specials."""
    with gzip.open(BPE, "rt", encoding="utf-8") as file:
        lines = file.read().split("\n")
    merges = [tuple(line.split()) for line in lines[1 : MERGES + 1]]
    characters = list(bytes_to_unicode().values())
    tokens = characters + [c + "</w>" for c in characters] + ["".join(m) for m in merges]
    tokens += SPECIAL
    folder.mkdir(parents=True, exist_ok=True)
    vocab = {token: i for i, token in enumerate(tokens)}
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    text = "#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n"
    (folder / "merges.txt").write_text(text, encoding="utf-8")


def build_hub_shaped_clip(folder: Path, *, seed: int = 0) -> Path:
    """Write the whole model folder; returns it."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizer

    write_tokenizer_files(folder)
    tokenizer = CLIPTokenizer.from_pretrained(folder)
    torch.manual_seed(seed)
    config = CLIPConfig(
        text_config={
            "vocab_size": len(tokenizer), "hidden_size": 32, "intermediate_size": 64,
            "num_hidden_layers": 2, "num_attention_heads": 2, "max_position_embeddings": 77,
            "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        vision_config={
            "image_size": 224, "patch_size": 32, "hidden_size": 32, "intermediate_size": 64,
            "num_hidden_layers": 2, "num_attention_heads": 2,
        },
        projection_dim=16,
    )  # fmt: skip
    CLIPModel(config).save_pretrained(folder)  # model.safetensors + config.json
    tokenizer.save_pretrained(folder)
    # transformers 5 no longer writes it; the hub repository has it.
    specials = {"bos_token": SPECIAL[0], "eos_token": SPECIAL[1], "pad_token": SPECIAL[1]}
    specials["unk_token"] = SPECIAL[1]
    (folder / "special_tokens_map.json").write_text(json.dumps(specials, indent=2))
    CLIPImageProcessor().save_pretrained(folder)  # CLIP's: 224, OpenAI's mean and std
    return folder

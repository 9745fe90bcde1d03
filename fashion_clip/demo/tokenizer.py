"""A small byte-level BPE tokenizer for the demo CLIP and the tiny test models.

Byte-level BPE never needs an unknown token: any text (unseen words, emoji, punctuation) falls
back to byte pieces, so every user query tokenizes. Text is NFKC-normalised and lowercased, and
every sequence is wrapped as `<|startoftext|> ... <|endoftext|>`; CLIP pools the text at the
first end token, so the model config must use the same `eos_token_id`.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from tokenizers.trainers import BpeTrainer
from transformers import PreTrainedTokenizerFast

__all__ = ["BOS_TOKEN", "EOS_TOKEN", "PAD_TOKEN", "build_tokenizer"]

BOS_TOKEN = "<|startoftext|>"
EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"
# Ids 0, 1, 2 in this order. The end token must not be id 2: transformers' CLIP treats
# eos_token_id == 2 as a legacy config and pools at the largest token id instead.
_SPECIALS = [BOS_TOKEN, EOS_TOKEN, PAD_TOKEN]


def build_tokenizer(texts: Iterable[str], vocab_size: int = 1024) -> PreTrainedTokenizerFast:
    """Train a lowercase byte-level BPE on `texts` and wrap it for transformers.

    The result has bos/eos/pad tokens (ids 0/1/2), `model_max_length=77`, pads on the right,
    and round-trips through `save_pretrained` / `AutoTokenizer.from_pretrained(folder)`.
    The vocabulary may come out smaller than `vocab_size` when the texts have few words.
    """
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    # add_prefix_space: "dress" gets the same token at the start of a text as in the middle
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    trainer = BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=_SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS_TOKEN} $A {EOS_TOKEN}",
        pair=f"{BOS_TOKEN} $A {EOS_TOKEN} $B:1 {EOS_TOKEN}:1",
        special_tokens=[(t, tok.token_to_id(t)) for t in (BOS_TOKEN, EOS_TOKEN)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        model_max_length=77,
        padding_side="right",
    )

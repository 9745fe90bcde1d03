"""The ways training text talks about a garment: full captions, partial ones, bare labels.

Each phrase comes with a spec, the (category, colour, pattern) indices it names, -1 where it
is silent, so the contrastive loss can count every image that fits "red dress" or "striped" as
a match rather than a negative.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np

from fashion_clip.demo.garments import CATEGORIES, COLORS, PATTERNS

__all__ = ["all_phrases", "phrase"]

Spec = tuple[int, int, int]

# Synonyms users type; the first word is the catalog's and is used most often.
_CATEGORY_WORDS: dict[str, list[str]] = {
    "t-shirt": ["t-shirt", "tee", "t shirt", "tshirt"],
    "trousers": ["trousers", "pants"],
    "shoes": ["shoes", "sneakers", "shoe"],
    "bag": ["bag", "handbag"],
    "hat": ["hat", "fedora"],
    "jacket": ["jacket", "blazer"],
}
_PATTERN_WORDS: dict[str, list[str]] = {
    "solid": ["solid", "plain"],
    "dotted": ["dotted", "polka dot"],
    "checked": ["checked", "checkered"],
}

# Keyed by which attributes the phrase names: c = category, k = colour, p = pattern.
# "{a}" is the article for the word after it ("a" or "an").
_TEMPLATES: dict[str, list[str]] = {
    "ckp": ["{k} {p} {c}", "a photo of {a} {k} {p} {c}", "{a} {k} {p} {c}", "{p} {k} {c}",
            "a photo of {a} {p} {k} {c}", "{k} {c}, {p}", "{k} {c} with a {p} pattern"],
    "ck": ["{k} {c}", "a photo of {a} {k} {c}", "{a} {k} {c}"],
    "cp": ["{p} {c}", "a photo of {a} {p} {c}", "{a} {p} {c}"],
    "kp": ["{k} {p}", "a photo of {a} {k} {p} item", "{k} {p} clothing"],
    "c": ["{c}", "a photo of {a} {c}", "{a} {c}", "a photo of the {c}"],
    "k": ["{k}", "a photo of {a} {k}", "{a} {k} item", "a photo of {a} {k} item", "{k} clothing"],
    "p": ["{p}", "a photo of {a} {p}", "{a} {p} item", "{p} pattern", "a photo of {a} {p} item"],
}  # fmt: skip
_PARTIAL = ("ck", "cp", "kp", "c", "k", "p")


def _words(table: dict[str, list[str]], name: str) -> list[str]:
    return table.get(name, [name])


def _fill(template: str, c: str, k: str, p: str, rng: np.random.Generator | None) -> str:
    # The article agrees with the word right after "{a}"; sometimes left as "a", since people
    # (and zero-shot templates such as "a photo of a {label}") write "a orange" too.
    after = template.split("{a} ", 1)[1][:3] if "{a}" in template else ""
    nxt = {"{c}": c, "{k}": k, "{p}": p}.get(after, "")
    vowel = nxt[:1] in tuple("aeiou")
    article = "an" if vowel and (rng is None or rng.random() < 0.5) else "a"
    return template.format(a=article, c=c, k=k, p=p)


def phrase(category: int, color: int, pattern: int, rng: np.random.Generator,
           kind: str | None = None) -> tuple[str, Spec]:  # fmt: skip
    """A random phrasing of one garment, and the spec of what it names.

    `kind` picks which attributes to name ("ckp", "ck", ..., "p"); None picks a partial one.
    """
    kind = kind or _PARTIAL[int(rng.integers(len(_PARTIAL)))]
    templates = _TEMPLATES[kind]
    template = templates[int(rng.integers(len(templates)))]

    def pick(words: list[str]) -> str:  # the catalog word 70% of the time
        return words[0] if len(words) == 1 or rng.random() < 0.7 else str(rng.choice(words[1:]))

    c = pick(_words(_CATEGORY_WORDS, CATEGORIES[category]))
    p = pick(_words(_PATTERN_WORDS, PATTERNS[pattern]))
    text = _fill(template, c, COLORS[color], p, rng)
    spec = (
        category if "c" in kind else -1,
        color if "k" in kind else -1,
        pattern if "p" in kind else -1,
    )
    return text, spec


def all_phrases() -> Iterator[str]:
    """Every template with every word, for training the tokenizer (a few thousand texts)."""
    cats = [w for name in CATEGORIES for w in _words(_CATEGORY_WORDS, name)]
    pats = [w for name in PATTERNS for w in _words(_PATTERN_WORDS, name)]
    for kind, templates in _TEMPLATES.items():
        for template, c, k, p in itertools.product(
            templates,
            cats if "c" in kind else [""],
            COLORS if "k" in kind else [""],
            pats if "p" in kind else [""],
        ):
            yield _fill(template, c, k, p, None)
            if "{a}" in template:
                yield template.format(a="an", c=c, k=k, p=p)

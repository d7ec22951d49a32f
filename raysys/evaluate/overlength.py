"""Outputs that do not end well: cut at max_new_tokens, or looping on an n-gram."""

from __future__ import annotations

from collections import Counter


def is_repetitive(text: str, n: int = 4, min_repeats: int = 3) -> bool:
    """True when some word n-gram occurs `min_repeats` times or more (a decoding loop)."""
    words = (text or "").split()
    if len(words) < n * min_repeats:
        return False
    grams = Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    return grams.most_common(1)[0][1] >= min_repeats


def is_overlength(text: str, overlong: bool) -> bool:
    """The study's overlength: hit max_new_tokens without EOS, or a repeated n-gram loop."""
    return bool(overlong) or is_repetitive(text)

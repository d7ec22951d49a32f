"""The study's overlength (`raysys.evaluate.overlength`): cut at max_new_tokens, or a
decoding loop (a word n-gram repeated)."""

from __future__ import annotations

import pytest

from raysys.evaluate.overlength import is_overlength, is_repetitive


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Answer: positive", False),
        ("up and to the right " * 3, True),  # 3 x the same 4-gram
        ("up and to the right " * 2, False),  # only twice
        ("a b c d a b c d a b c", False),  # 11 words: too short for 3 x 4
        ("a b c d a b c d a b c d", True),
        ("", False),
        (None, False),
    ],
)
def test_repetition_is_a_word_ngram_repeated(text, expected):
    assert is_repetitive(text) is expected


def test_shorter_ngrams_and_fewer_repeats_can_be_asked_for():
    assert is_repetitive("no no no no", n=1, min_repeats=4)
    assert not is_repetitive("no no no yes", n=1, min_repeats=4)
    assert is_repetitive("fell sharply fell sharply", n=2, min_repeats=2)


def test_overlength_is_cut_or_looping():
    assert is_overlength("Answer: positive", overlong=True)
    assert is_overlength("sales fell sharply again " * 3, overlong=False)
    assert not is_overlength("Answer: positive", overlong=False)
    assert is_overlength("x", overlong=1) is True  # numpy/arrow booleans come as ints

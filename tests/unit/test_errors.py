"""`raysys.errors`: every user error exits with code 2, and the quoting helpers keep an
error message to one bounded line whatever the input holds."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from raysys.errors import (
    AdapterIgnoredError,
    ConfigError,
    ModelSourceError,
    UserError,
    clip,
    one_line,
)


@pytest.mark.parametrize("cls", [UserError, ConfigError, ModelSourceError, AdapterIgnoredError])
def test_every_user_error_exits_2(cls):
    assert issubclass(cls, UserError)
    assert cls("x").exit_code == 2


def test_clip_quotes_short_values_whole():
    assert clip("abc") == "'abc'"
    assert clip([1, 2]) == "[1, 2]"
    assert clip(3.5) == "3.5"
    assert clip("'already quoted'") == "'already quoted'"  # not quoted twice


def test_clip_cuts_long_values_to_the_limit_with_an_ellipsis():
    text = clip("a" * 10_000)
    assert len(text) == 200 and text.startswith("'aaa") and text.endswith("…")
    assert len(clip(list(range(1000)), limit=50)) == 50
    assert clip("a" * 198) == "'" + "a" * 198 + "'"  # exactly 200: not cut


def test_clip_and_one_line_fold_whitespace():
    assert clip("'a\n\n  b\tc'") == "'a b c'"
    assert one_line("first line\nsecond   line\n") == "first line second line"
    assert one_line(ValueError("x\ny")) == "x y"


@given(st.text(), st.integers(min_value=2, max_value=300))
def test_clip_and_one_line_are_one_line_within_the_limit(text, limit):
    for out in (clip(text, limit), one_line(text, limit)):
        assert len(out) <= limit
        assert "\n" not in out and "\r" not in out

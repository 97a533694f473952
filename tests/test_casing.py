"""--case keep | lower | sentence, on strings and on transcripts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from w2v2cli.errors import ConfigError
from w2v2cli.output.casing import apply_case, case_words
from w2v2cli.records import TokenSpan, Transcript, Word


def test_modes_on_text() -> None:
    text = "I THINK I'M FINE. ARE YOU? YES I AM"
    assert apply_case(text, "keep") == text
    assert apply_case(text, "lower") == "i think i'm fine. are you? yes i am"
    assert apply_case(text, "sentence") == "I think I'm fine. Are you? Yes I am"
    assert apply_case("HELLO WORLD", "sentence") == "Hello world"
    assert apply_case("'TIS I", "sentence") == "'Tis I"
    assert apply_case("", "sentence") == ""
    assert apply_case("  ODD  SPACING ", "sentence") == "  Odd  spacing "


def test_only_the_pronoun_i_is_capitalised() -> None:
    assert apply_case("WE IT IS IN I'D ITALY", "sentence") == "We it is in I'd italy"


def test_unknown_mode() -> None:
    with pytest.raises(ConfigError):
        apply_case("x", "upper")


def test_transcript_copy_text_and_words_agree() -> None:
    words = tuple(Word(w, i, i + 0.5, 0.9) for i, w in enumerate("HELLO I AM HERE".split()))
    tokens = (TokenSpan("H", 0, 0.1, 0.9),)
    t = Transcript("HELLO I AM HERE", words, 5.0, 0.9, tokens, "m", "greedy")
    cased = apply_case(t, "sentence")
    assert cased.text == "Hello I am here"
    assert [w.text for w in cased.words] == ["Hello", "I", "am", "here"]
    assert cased.words[1].start == 1 and cased.tokens == tokens and cased.model == "m"
    assert t.text == "HELLO I AM HERE"  # the original is unchanged
    assert apply_case(t, "keep") is t


@given(st.lists(st.text(alphabet="ABCI'.? ", min_size=1).filter(lambda s: " " not in s)))
def test_text_and_words_get_the_same_casing(words: list[str]) -> None:
    for mode in ("keep", "lower", "sentence"):
        assert apply_case(" ".join(words), mode) == " ".join(case_words(words, mode))

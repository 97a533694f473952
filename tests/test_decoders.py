"""Greedy CTC decoding on constructed emissions, checked against a plain reference."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from w2v2cli.decoding import Decoder, GreedyDecoder
from w2v2cli.errors import DecodeError
from w2v2cli.records import Emissions, Vocabulary

TOKENS = ("<pad>", "<s>", "</s>", "<unk>", "|", "A", "B", "E", "H", "L", "O", "'")
VOCAB = Vocabulary(TOKENS, blank_id=0, delimiter_id=4, special_ids=frozenset({0, 1, 2, 3}))
FD = 0.02


def emissions(path: list[int], starts: list[float] | None = None, p: float = 0.8) -> Emissions:
    n, v = len(path), len(TOKENS)
    table = np.full((n, v), (1 - p) / (v - 1))
    table[np.arange(n), path] = p
    fs = np.arange(n) * FD if starts is None else np.asarray(starts, dtype=np.float64)
    return Emissions(np.log(table).astype(np.float32), fs, FD, float(fs[-1]) + FD if n else 0.0)


def ids(text: str) -> list[int]:
    return [0 if t == "_" else TOKENS.index(t) for t in text.split()]


def reference(path: list[int]) -> str:
    """Textbook greedy CTC: collapse, drop blanks, drop specials, delimiter = space."""
    collapsed = [k for k, _ in itertools.groupby(path) if k != VOCAB.blank_id]
    chars = [" " if k == VOCAB.delimiter_id else TOKENS[k] for k in collapsed]
    chars = [c for k, c in zip(collapsed, chars, strict=True) if k not in VOCAB.special_ids]
    return " ".join("".join(chars).split())


def test_greedy_text_words_and_record() -> None:
    decoder = GreedyDecoder(VOCAB)
    assert isinstance(decoder, Decoder) and decoder.name == "greedy"
    em = emissions(ids("| | H E _ L L _ L O | | _ A B E | |"))
    t = decoder.decode(em)
    assert t.text == "HELLO ABE"
    assert [w.text for w in t.words] == ["HELLO", "ABE"]
    assert t.decoder == "greedy" and t.duration == pytest.approx(em.duration)
    assert t.confidence == pytest.approx(0.8, abs=1e-5)
    assert "".join(tok.text for tok in t.tokens) == "HELLOABE"


def test_specials_never_in_text() -> None:
    t = GreedyDecoder(VOCAB).decode(emissions(ids("<s> H <unk> E | <unk> | </s> L L")))
    assert t.text == "HE L"
    for special in ("<s>", "</s>", "<unk>", "<pad>", "|"):
        assert special not in t.text


def test_empty_and_silent_inputs() -> None:
    decoder = GreedyDecoder(VOCAB)
    empty = Emissions(np.zeros((0, len(TOKENS)), np.float32), np.zeros(0), FD, 0.0)
    for em in (empty, emissions(ids("_ _ _")), emissions(ids("| _ |"))):
        t = decoder.decode(em)
        assert t.text == "" and t.words == () and t.confidence is None


def test_submit_and_context_manager() -> None:
    with GreedyDecoder(VOCAB) as decoder:
        future = decoder.submit(emissions(ids("A B")))
        assert future.result().text == "AB"
        good = emissions(ids("A B"))
        bad = Emissions(good.log_probs, good.frame_starts[:1], FD, 0.1)
        # A library error becomes this file's DecodeError, never a bare exception.
        with pytest.raises(DecodeError, match="greedy decoding failed: ValueError: .*frame"):
            decoder.submit(bad).result()


def test_uses_frame_starts_not_indices() -> None:
    starts = [0.0, 0.02, 0.04, 1.00, 1.02]
    t = GreedyDecoder(VOCAB).decode(emissions(ids("A | _ B E"), starts=starts))
    assert t.words[1].start == pytest.approx(1.00) and t.words[1].end == pytest.approx(1.04)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, len(TOKENS) - 1), max_size=60))
def test_greedy_matches_reference(path: list[int]) -> None:
    t = GreedyDecoder(VOCAB).decode(emissions(path))
    assert t.text == reference(path)
    assert t.text == " ".join(w.text for w in t.words)
    assert t.text == t.text.strip() and "  " not in t.text
    for a, b in itertools.pairwise(t.words):
        assert a.start < a.end <= b.start < b.end

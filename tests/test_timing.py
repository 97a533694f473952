"""Token/word timings and confidences on constructed log-probabilities (no model)."""

from __future__ import annotations

import numpy as np
import pytest

from w2v2cli.decoding.timing import (
    align_path,
    collapse_path,
    file_confidence,
    frame_end,
    words_from_frame_spans,
)
from w2v2cli.records import Emissions, Vocabulary, Word

TOKENS = ("<pad>", "<s>", "</s>", "<unk>", "|", "A", "B", "D", "E", "H", "L", "O", "R", "W")
VOCAB = Vocabulary(TOKENS, blank_id=0, delimiter_id=4, special_ids=frozenset({0, 1, 2, 3}))
FD = 0.02


def ids(path: str) -> list[int]:
    """Space-separated tokens, ``_`` for the blank."""
    return [0 if t == "_" else TOKENS.index(t) for t in path.split()]


def make(
    path: str,
    probs: list[float] | float = 0.9,
    starts: list[float] | np.ndarray | None = None,
    duration: float | None = None,
) -> tuple[Emissions, list[int]]:
    """Emissions whose argmax is ``path``; the chosen id has probability ``probs[t]``."""
    path_ids = ids(path)
    n, v = len(path_ids), len(TOKENS)
    p = np.broadcast_to(np.asarray(probs, dtype=np.float64), (n,))
    table = np.repeat(((1 - p) / (v - 1))[:, None], v, axis=1)
    table[np.arange(n), path_ids] = p
    fs = np.arange(n) * FD if starts is None else np.asarray(starts, dtype=np.float64)
    dur = duration if duration is not None else (float(fs[-1]) + FD if n else 0.0)
    em = Emissions(np.log(table).astype(np.float32).reshape(n, v), fs, FD, dur)
    return em, path_ids


def test_collapse_path_runs_and_blanks() -> None:
    assert collapse_path(ids("_ L L _ L O"), 0) == [(10, 1, 3), (10, 4, 5), (11, 5, 6)]
    assert collapse_path([], 0) == []
    assert collapse_path(ids("_ _"), 0) == []


def test_hello_world_times_tokens_and_words() -> None:
    em, path = make("_ H H E _ L L _ L O | | W O R L D _")
    tokens, words = align_path(path, em, VOCAB)
    assert [t.text for t in tokens] == list("HELLOWORLD")
    assert [w.text for w in words] == ["HELLO", "WORLD"]
    h, e = tokens[0], tokens[1]
    assert h.start == pytest.approx(0.02) and h.end == pytest.approx(0.06)
    assert e.start == pytest.approx(0.06) and e.end == pytest.approx(0.08)
    hello, world = words
    assert hello.start == pytest.approx(0.02)  # first non-blank frame, not frame 0
    assert hello.end == pytest.approx(0.20)  # end of the O frame (frame 9)
    assert world.start == pytest.approx(0.24) and world.end == pytest.approx(0.34)


def test_repeated_letter_needs_a_blank() -> None:
    em, path = make("L L _ L")
    tokens, words = align_path(path, em, VOCAB)
    assert [(t.text, round(t.start, 3), round(t.end, 3)) for t in tokens] == [
        ("L", 0.0, 0.04),
        ("L", 0.06, 0.08),
    ]
    assert [w.text for w in words] == ["LL"]
    em, path = make("L L L")
    assert [w.text for w in align_path(path, em, VOCAB)[1]] == ["L"]


def test_non_uniform_frames_from_two_chunks() -> None:
    # Frames 0..9 at 0.00..0.18, then (stride dropped) frames continue at 0.30.
    starts = [i * FD for i in range(10)] + [0.30 + i * FD for i in range(6)]
    #        0 1 2 3 4 5 6 7 8 9 | 10 11 12 13 14 15
    em, path = make("_ _ _ _ _ _ H E L L L _ L O | W", starts=starts)
    tokens, words = align_path(path, em, VOCAB)
    assert [w.text for w in words] == ["HELLO", "W"]
    hello = words[0]
    assert hello.start == pytest.approx(0.12)
    assert hello.end == pytest.approx(0.36 + FD)  # O is frame 13, at 0.36
    # The L held over the chunk seam (frames 8..10) is one token from 0.16 to 0.32.
    l_token = tokens[2]
    assert l_token.text == "L"
    assert l_token.start == pytest.approx(0.16) and l_token.end == pytest.approx(0.32)
    assert tokens[3].start == pytest.approx(0.34)
    assert words[1].start == pytest.approx(0.40) and words[1].end == pytest.approx(0.42)


def test_overlapping_frames_and_file_end_are_clipped() -> None:
    starts = [0.0, 0.02, 0.03, 0.05]  # frame 1 overlaps frame 2 by 0.01 s
    em, path = make("A B D E", starts=starts, duration=0.06)
    tokens, _ = align_path(path, em, VOCAB)
    assert tokens[1].end == pytest.approx(0.03)
    assert tokens[3].end == pytest.approx(0.06)  # 0.05 + 0.02 would pass the file's end
    assert frame_end(em, 0) == pytest.approx(0.02)
    for t in tokens:
        assert t.start < t.end


def test_specials_dropped_without_splitting_words() -> None:
    em, path = make("<s> H E <unk> L _ L O </s> | <unk> | W")
    tokens, words = align_path(path, em, VOCAB)
    assert [w.text for w in words] == ["HELLO", "W"]
    assert all(t.text not in ("<s>", "</s>", "<unk>") for t in tokens)
    # A special between two equal letters ends the run: two tokens, as CTC says.
    em, path = make("L <unk> L")
    assert [w.text for w in align_path(path, em, VOCAB)[1]] == ["LL"]


def test_empty_and_all_blank() -> None:
    em, path = make("")
    assert em.num_frames == 0
    assert align_path(path, em, VOCAB) == ((), ())
    em, path = make("_ _ | _")
    assert align_path(path, em, VOCAB) == ((), ())
    assert file_confidence(()) is None


def test_confidences() -> None:
    em, path = make("_ A A B _ | D", probs=[0.5, 0.9, 0.5, 0.6, 0.5, 0.5, 0.8])
    tokens, words = align_path(path, em, VOCAB)
    a, b, d = tokens
    assert a.confidence == pytest.approx(0.7, abs=1e-6)  # mean of 0.9 and 0.5
    assert b.confidence == pytest.approx(0.6, abs=1e-6)
    ab, dw = words
    assert ab.confidence == pytest.approx((0.9 + 0.5 + 0.6) / 3, abs=1e-6)  # frame-weighted
    assert dw.confidence == pytest.approx(0.8, abs=1e-6)
    expected = (ab.confidence * 2 + dw.confidence * 1) / 3  # weighted by characters
    assert file_confidence(words) == pytest.approx(expected)


def test_path_length_must_match() -> None:
    em, path = make("A B")
    with pytest.raises(ValueError):
        align_path(path[:1], em, VOCAB)


def test_space_token_vocabulary() -> None:
    tokens = ("<pad>", " ", "A", "B")
    vocab = Vocabulary(tokens, blank_id=0, delimiter_id=None, special_ids=frozenset({0}))
    lp = np.log(np.full((5, 4), 0.1 / 3))
    for t, i in enumerate([2, 1, 1, 3, 0]):
        lp[t, i] = np.log(0.9)
    em = Emissions(lp.astype(np.float32), np.arange(5) * FD, FD, 0.1)
    _, words = align_path(lp.argmax(1), em, vocab)
    assert [w.text for w in words] == ["A", "B"]


def _spans_of(words: tuple[Word, ...], em: Emissions) -> list[tuple[str, int, int]]:
    starts = list(em.frame_starts)
    out = []
    for w in words:
        first = min(range(len(starts)), key=lambda i: abs(starts[i] - w.start))
        last = max(i for i in range(len(starts)) if starts[i] < w.end - 1e-9)
        out.append((w.text, first, last + 1))
    return out


def test_frame_spans_match_greedy_words() -> None:
    starts = [i * FD for i in range(10)] + [0.30 + i * FD for i in range(8)]
    probs = [0.6, 0.9, 0.8, 0.7, 0.95, 0.5, 0.9, 0.9, 0.8]
    probs += [0.7, 0.6, 0.9, 0.8, 0.9, 0.6, 0.7, 0.8, 0.9]
    em, path = make("_ H E L _ L O | _ W O R L D _ | A _", probs=probs, starts=starts)
    _, words = align_path(path, em, VOCAB)
    spans = _spans_of(words, em)
    assert spans[0] == ("HELLO", 1, 7)
    from_spans = words_from_frame_spans(spans, em, VOCAB)
    assert len(from_spans) == len(words)
    for got, want in zip(from_spans, words, strict=True):
        assert got.text == want.text
        assert got.start == pytest.approx(want.start)
        assert got.end == pytest.approx(want.end)
        assert got.confidence == pytest.approx(want.confidence, abs=1e-6)
    # A wider range including blank and delimiter frames is tightened to the letters.
    widened = words_from_frame_spans([("HELLO", 0, 9)], em, VOCAB)
    assert widened[0].start == pytest.approx(words[0].start)
    assert widened[0].end == pytest.approx(words[0].end)
    assert widened[0].confidence == pytest.approx(words[0].confidence, abs=1e-6)


def test_frame_span_without_letter_frames() -> None:
    em, _ = make("_ _ _ _", probs=0.7)
    (word,) = words_from_frame_spans([("A", 1, 3)], em, VOCAB)
    assert word.start == pytest.approx(0.02) and word.end == pytest.approx(0.06)
    assert word.confidence == pytest.approx(0.3 / (len(TOKENS) - 1), rel=1e-5)
    # Out-of-range and empty ranges are clipped; empty text is skipped.
    (word,) = words_from_frame_spans([("A", 3, 3), ("", 0, 2)], em, VOCAB)
    assert word.start == pytest.approx(0.06) and word.end == pytest.approx(0.08)
    assert words_from_frame_spans([("A", 0, 1)], make("")[0], VOCAB) == ()


def test_file_confidence_is_character_weighted() -> None:
    words = [Word("A", 0, 1, 0.2), Word("BBB", 1, 2, 1.0)]
    assert file_confidence(words) == pytest.approx((0.2 + 3.0) / 4)

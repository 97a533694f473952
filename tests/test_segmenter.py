"""Subtitle segmentation: unit cases and property tests on long random word sequences."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from w2v2cli.options import SubtitleOptions
from w2v2cli.output.segmenter import break_lines, segment
from w2v2cli.records import Cue, Word


def words_at(text: str, start: float = 0.0, step: float = 0.3, length: float = 0.25) -> list[Word]:
    return [
        Word(t, start + i * step, start + i * step + length, 0.9)
        for i, t in enumerate(text.split())
    ]


def check_invariants(
    cues: tuple[Cue, ...], words: list[Word], options: SubtitleOptions, duration: float
) -> None:
    """Every rule the segmenter promises, for any input."""
    texts = [w.text for w in words if w.text.strip()]
    # All words, in order, exactly once, never cut.
    assert [t for c in cues for line in c.lines for t in line.split(" ")] == texts
    by_cue = iter(texts)
    for cue in cues:
        assert cue.lines and all(cue.lines)  # no empty cue, no empty line
        assert len(cue.lines) <= options.max_lines
        n = sum(len(line.split(" ")) for line in cue.lines)
        cue_words = list(itertools.islice(by_cue, n))
        for line in cue.lines:
            assert len(line) <= options.max_line_chars or " " not in line
            assert line == line.strip() and "  " not in line
        # Duration limit, unless the cue is one word that is itself longer.
        limit = options.max_cue_duration + 0.001  # times are rounded to whole ms
        assert cue.end - cue.start <= limit or len(cue_words) == 1
        assert 0 <= cue.start < cue.end <= duration
        # Whole milliseconds.
        assert round(cue.start * 1000) / 1000 == cue.start
        assert round(cue.end * 1000) / 1000 == cue.end
    for a, b in itertools.pairwise(cues):
        assert a.end <= b.start


def test_empty() -> None:
    assert segment([], SubtitleOptions(), 10.0) == ()
    assert segment([Word("  ", 0, 1, 1.0)], SubtitleOptions(), 10.0) == ()


def test_short_sentence_is_one_cue_one_line() -> None:
    words = words_at("hello there my friend", start=1.0)
    (cue,) = segment(words, SubtitleOptions(), 10.0)
    assert cue.lines == ("hello there my friend",)
    assert cue.start == 1.0 and cue.end == pytest.approx(1.0 + 0.9 + 0.25)


def test_pause_breaks_a_cue() -> None:
    words = words_at("one two") + words_at("three four", start=1.35)  # gap 1.35 - 0.55 = 0.8
    cues = segment(words, SubtitleOptions(pause=0.8), 10.0)
    assert [c.text for c in cues] == ["one two", "three four"]
    cues = segment(words, SubtitleOptions(pause=0.81), 10.0)
    assert [c.text for c in cues] == ["one two three four"]


def test_lines_are_balanced() -> None:
    text = "the quick brown fox jumps over the lazy dog and runs far"  # 56 characters
    (cue,) = segment(words_at(text), SubtitleOptions(max_line_chars=42, max_lines=2), 60.0)
    assert len(cue.lines) == 2
    # Splits after "jumps" (25 + 30) and after "over" (30 + 25) tie; the top line is shorter.
    assert cue.lines == ("the quick brown fox jumps", "over the lazy dog and runs far")


def test_balanced_tie_prefers_shorter_top_line() -> None:
    opts = SubtitleOptions(max_line_chars=10)
    assert break_lines(["aaaa", "bbb", "cccc"], opts) == ("aaaa", "bbb cccc")


def test_fewest_cues_without_an_orphan() -> None:
    # 10 five-letter words need two one-line cues of 30 characters; greedy filling would
    # give 5 + 5 words or 6 + 4; the segmenter picks the even split.
    text = " ".join(["abcde"] * 10)
    cues = segment(words_at(text), SubtitleOptions(max_line_chars=35, max_lines=1), 60.0)
    assert [len(c.text.split()) for c in cues] == [5, 5]
    text = " ".join(["abcde"] * 13)  # 6 + 6 + 1 greedily; 5 + 4 + 4 or so balanced
    cues = segment(words_at(text), SubtitleOptions(max_line_chars=35, max_lines=1), 60.0)
    assert len(cues) == 3 and min(len(c.text.split()) for c in cues) >= 4


def test_max_cue_duration() -> None:
    words = words_at(" ".join(f"w{i}" for i in range(40)), step=0.5, length=0.4)
    opts = SubtitleOptions(max_cue_duration=2.0, max_line_chars=100, max_lines=3)
    cues = segment(words, opts, 30.0)
    assert all(c.end - c.start <= 2.0 for c in cues)
    assert len(cues) == 10  # 4 words of 0.5 s fit in 1.9 s; 5 would need 2.4 s
    check_invariants(cues, words, opts, 30.0)


def test_single_long_word_and_long_duration() -> None:
    long_word = "x" * 60
    words = [Word("a", 0.0, 0.2, 1), Word(long_word, 0.3, 9.0, 1), Word("b", 9.1, 9.2, 1)]
    opts = SubtitleOptions(max_line_chars=42)
    cues = segment(words, opts, 10.0)
    assert long_word in [line for c in cues for line in c.lines]
    check_invariants(cues, words, opts, 10.0)
    # In one cue, a word longer than the line still gets a line of its own.
    assert break_lines(["a", long_word, "b"], SubtitleOptions(max_lines=3)) == (
        "a",
        long_word,
        "b",
    )


def test_min_duration_extends_without_overlap_or_passing_the_end() -> None:
    opts = SubtitleOptions(min_cue_duration=0.7, pause=0.3)
    words = [Word("a", 1.0, 1.1, 1), Word("b", 1.5, 1.6, 1), Word("c", 9.9, 9.95, 1)]
    cues = segment(words, opts, 10.0)
    assert [(c.start, c.end) for c in cues] == [(1.0, 1.5), (1.5, 2.2), (9.9, 10.0)]


def test_zero_length_and_out_of_range_words() -> None:
    opts = SubtitleOptions(max_line_chars=3, max_lines=1)
    words = [Word("aa", 2.0, 2.0, 1), Word("bb", 2.0, 2.0, 1), Word("cc", 12.0, 13.0, 1)]
    cues = segment(words, opts, 5.0)
    assert [c.text for c in cues] == ["aa", "bb", "cc"]
    check_invariants(cues, words, opts, 5.0)
    assert cues[-1].end == 5.0


def test_impossible_duration() -> None:
    opts = SubtitleOptions(max_line_chars=1, max_lines=1)
    with pytest.raises(ValueError):
        segment([Word("a", 0, 0, 1), Word("b", 0, 0, 1)], opts, 0.001)


@st.composite
def word_sequences(draw: st.DrawFn) -> tuple[list[Word], float]:
    n = draw(st.integers(1, 300))
    texts = draw(
        st.lists(
            st.text(alphabet="abcdefghij'", min_size=1, max_size=draw(st.sampled_from([8, 50]))),
            min_size=n,
            max_size=n,
        )
    )
    gaps = draw(st.lists(st.floats(0, 2.0), min_size=n, max_size=n))
    lengths = draw(st.lists(st.floats(0, 1.5), min_size=n, max_size=n))
    words, t = [], draw(st.floats(0, 3))
    for text, gap, length in zip(texts, gaps, lengths, strict=True):
        t += gap
        words.append(Word(text, t, t + length, 0.5))
        t += length
    duration = t + draw(st.floats(0, 2)) if draw(st.booleans()) else max(t * 0.9, 1.0)
    return words, duration


options_strategy = st.builds(
    SubtitleOptions,
    max_line_chars=st.integers(1, 60),
    max_lines=st.integers(1, 4),
    max_cue_duration=st.floats(0.5, 10),
    pause=st.floats(0.05, 2),
    min_cue_duration=st.floats(0, 3),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(word_sequences(), options_strategy)
def test_properties(data: tuple[list[Word], float], options: SubtitleOptions) -> None:
    words, duration = data
    cues = segment(words, options, duration)
    check_invariants(cues, words, options, duration)
    # A pause of at least ``pause`` (with rounding slack) always separates cues.
    counts = [sum(len(line.split(" ")) for line in c.lines) for c in cues]
    cue_starts = set(itertools.accumulate(counts, initial=0))
    latest_end = 0.0
    for i, (a, b) in enumerate(itertools.pairwise(words), start=1):
        latest_end = max(latest_end, a.end)
        if b.start - latest_end >= options.pause + 0.002 and b.start <= duration:
            assert i in cue_starts


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.text(alphabet="abc", min_size=1, max_size=12), min_size=1, max_size=25),
    st.integers(1, 30),
    st.integers(1, 4),
)
def test_break_lines_properties(texts: list[str], width: int, max_lines: int) -> None:
    opts = SubtitleOptions(max_line_chars=width, max_lines=max_lines)
    lines = break_lines(texts, opts)
    assert " ".join(lines) == " ".join(texts)
    assert all(len(line) <= width or " " not in line for line in lines)
    # Balanced: no line count is wasted, and no other split into as many lines has a
    # shorter longest multi-word line (checked by brute force on small inputs).
    if len(texts) <= 8 and len(lines) > 1:
        best = min(
            max((len(" ".join(p)) if len(p) > 1 or len(p[0]) <= width else 0) for p in parts)
            for parts in _partitions(texts, len(lines))
            if all(len(p) == 1 or len(" ".join(p)) <= width for p in parts)
        )
        got = max((len(line) if " " in line or len(line) <= width else 0) for line in lines)
        assert got == best


def _partitions(items: list[str], k: int):  # type: ignore[no-untyped-def]
    for cuts in itertools.combinations(range(1, len(items)), k - 1):
        bounds = (0, *cuts, len(items))
        yield [items[a:b] for a, b in itertools.pairwise(bounds)]


def test_two_line_cues_break_where_the_general_search_breaks():
    """``break_lines`` takes a one-pass route for cues of two lines (nearly all of them);
    it must choose the break the general dynamic programme chooses, ties included, for
    words shorter and longer than a line."""
    import random

    from w2v2cli.output.segmenter import _balanced_lines, _line_count, _two_lines

    rng = random.Random(3)
    checked = 0
    for _ in range(20000):
        width = rng.randint(4, 42)
        sizes = [rng.choice([1, 2, 3, 4, 5, 7, 9, 12, 20, 45]) for _ in range(rng.randint(2, 12))]
        texts = [chr(97 + n) * size for n, size in enumerate(sizes)]  # each word its own
        if _line_count([len(t) for t in texts], width) != 2:
            continue
        prefix = [0]
        for t in texts:
            prefix.append(prefix[-1] + len(t))
        assert _two_lines(texts, prefix, width) == _balanced_lines(texts, prefix, 2, width)
        checked += 1
    assert checked > 2000

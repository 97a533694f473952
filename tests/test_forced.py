"""Forced alignment without a model: the windowed Viterbi, the text rules and the aligner on
constructed log-probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from w2v2cli.alignment import align, split_text
from w2v2cli.alignment.viterbi import (
    GARBAGE,
    AlignToken,
    build_graph,
    forced_states,
)
from w2v2cli.errors import AlignmentError, AlignmentImpossible
from w2v2cli.records import Emissions, Vocabulary

TOKENS = ("<pad>", "<s>", "</s>", "<unk>", "|", *"ETAONIHSRDLUMWCFGYPBVK'XJQZ")
VOCAB = Vocabulary(TOKENS, blank_id=0, delimiter_id=4, special_ids=frozenset({0, 1, 2, 3}))
FD = 0.02


def lp_for(path: str, p: float = 0.9) -> np.ndarray:
    """Log-probabilities whose best label per frame is ``path`` (space-separated tokens,
    ``_`` blank), the others sharing the rest."""
    ids = [0 if t == "_" else TOKENS.index(t) for t in path.split()]
    table = np.full((len(ids), len(TOKENS)), (1 - p) / (len(TOKENS) - 1))
    table[np.arange(len(ids)), ids] = p
    return np.log(table)


def emissions(log_probs: np.ndarray) -> Emissions:
    n = log_probs.shape[0]
    return Emissions(log_probs.astype(np.float32), np.arange(n) * FD, FD, n * FD)


def tokens(words: str) -> list[AlignToken]:
    out: list[AlignToken] = []
    for i, word in enumerate(words.split()):
        if i:
            out.append(AlignToken(4, optional=True))
        out += [AlignToken(TOKENS.index(c)) for c in word]
    return out


def labels_of(path: str, words: str, **kw) -> str:
    graph = build_graph(tokens(words), 0, len(TOKENS))
    states = forced_states(lp_for(path), graph, **kw)
    return " ".join("_" if (lab := int(graph.labels[s])) == 0 else TOKENS[lab] for s in states)


def test_the_path_follows_the_emissions_and_skips_an_unheard_delimiter():
    path = "_ H H _ I _ _ | _ T O _ _"
    assert labels_of(path, "HI TO") == path
    assert labels_of("_ H I _ T O _", "HI TO") == "_ H I _ T O _"  # no delimiter heard


def test_a_doubled_letter_needs_a_blank_between():
    # The model hears one long L: the text's two Ls still get a frame each, with a blank.
    out = labels_of("_ A L L L L _", "ALL").split()
    assert out[:2] == ["_", "A"] and out.count("_") >= 2
    assert [t for i, t in enumerate(out) if t != "_" and (i == 0 or out[i - 1] != t)] == [
        "A",
        "L",
        "L",
    ]


def test_too_much_text_for_the_frames_is_impossible():
    with pytest.raises(AlignmentImpossible):
        labels_of("_ A", "ABC")
    with pytest.raises(AlignmentImpossible):  # doubled letters need their blank
        labels_of("_ L", "LL")


def test_the_garbage_token_takes_speech_no_word_explains():
    path = "_ H I _ _ N I N E _ _ T O _"
    toks = [
        AlignToken(TOKENS.index("H")),
        AlignToken(TOKENS.index("I")),
        AlignToken(GARBAGE, optional=True),
        AlignToken(TOKENS.index("T")),
        AlignToken(TOKENS.index("O")),
    ]
    graph = build_graph(toks, 0, len(TOKENS))
    states = forced_states(lp_for(path), graph)
    garbage_frames = np.flatnonzero(states == 5)
    assert list(garbage_frames) == [5, 6, 7, 8]  # N I N E, not the words' own letters
    assert labels_of("_ H I _ _ T O _", "HI TO") == "_ H I _ _ T O _"


@pytest.mark.parametrize(("window", "commit"), [(40, 20), (25, 5), (64, 40)])
def test_the_windowed_search_finds_the_single_window_path(window, commit):
    rng = np.random.default_rng(3)
    words = " ".join("".join(rng.choice(list("ETAONIHSRD"), rng.integers(2, 7))) for _ in range(40))
    path: list[str] = ["_"] * 5
    for i, word in enumerate(words.split()):
        for k, c in enumerate(word):
            repeat = k + 1 < len(word) and word[k + 1] == c  # a doubled letter needs a blank
            path += [c] * int(rng.integers(1, 3)) + ["_"] * int(rng.integers(repeat, 3))
        path += ["_"] * int(rng.integers(1, 15)) + (["|"] if i % 3 == 0 else [])
    path_text = " ".join(path)
    whole = labels_of(path_text, words, window=10_000, commit=10_000)
    assert len(path) > 4 * window
    assert labels_of(path_text, words, window=window, commit=commit) == whole


def test_split_text_keeps_the_writing_and_spells_for_the_model():
    words = split_text("“Well-known” café, — 1984 & R2-D2 naïve! …", VOCAB)
    assert [w.text for w in words] == ["“Well-known”", "café, —", "1984", "&", "R2-D2", "naïve! …"]
    spelled = [["".join(TOKENS[i] for i in part) for part in w.parts] for w in words]
    assert spelled == [["WELL", "KNOWN"], ["CAFE"], [], [], [], ["NAIVE"]]
    assert [w.alignable for w in words] == [True, True, False, False, False, True]
    assert split_text("— …", VOCAB) == ()
    assert split_text("", VOCAB) == ()
    assert [w.text for w in split_text("“ hello", VOCAB)] == ["“ hello"]


def test_align_times_scores_and_interpolation():
    # "HI 42 TO": the number is spoken (frames 5-8) but cannot be spelled.
    em = emissions(lp_for("_ H I _ _ F O R T _ _ T O _"))
    t = align(em, "Hi 42 to.", VOCAB, min_score=0)
    assert [w.text for w in t.words] == ["Hi", "42", "to."]
    hi, num, to = t.words
    assert (hi.interpolated, num.interpolated, to.interpolated) == (False, True, False)
    assert hi.start == pytest.approx(0.02) and hi.end == pytest.approx(0.06)
    assert num.start == pytest.approx(0.10) and num.end == pytest.approx(0.18)
    assert to.start == pytest.approx(0.22) and to.end == pytest.approx(0.26)
    assert hi.confidence == pytest.approx(0.9) and t.text == "Hi 42 to."
    assert 0 < t.score <= 1 and t.decoder == "align"


def test_unspoken_unspellable_words_share_an_empty_span_at_the_word_before():
    em = emissions(lp_for("_ H I _ _ T O _"))
    t = align(em, "hi 1 2 to", VOCAB, min_score=0)
    one, two = t.words[1], t.words[2]
    assert one.interpolated and two.interpolated
    assert one.start == one.end == two.start == two.end == t.words[0].end


def test_a_text_that_does_not_match_fails_and_min_score_zero_aligns_anyway():
    em = emissions(lp_for("_ H H _ I _ _ T O _ _"))
    good = align(em, "hi to", VOCAB)
    assert good.score > 0.5
    with pytest.raises(AlignmentError, match="does not match"):
        align(em, "so be", VOCAB)
    forced = align(em, "so be", VOCAB, min_score=0)
    assert forced.score < 0.05 and len(forced.words) == 2


def test_nothing_spellable_fails_and_an_empty_text_gives_no_words():
    em = emissions(lp_for("_ H I _"))
    with pytest.raises(AlignmentError, match="can be spelled"):
        align(em, "1984 2001", VOCAB)
    empty = align(em, "  \n", VOCAB)
    assert empty.words == () and empty.text == ""
    with pytest.raises(AlignmentError, match="cannot be aligned"):
        align(em, "hello world", VOCAB, min_score=0)


def test_memory_of_the_search_is_bounded_by_the_window_not_the_length():
    """Back-pointers are kept for one window at a time: on 3000 frames (a minute) and
    their text, a 150-frame window allocates a small fraction of what one window over
    everything does, and finds the same path."""
    import tracemalloc

    rng = np.random.default_rng(5)
    frames, vocab = 3000, len(TOKENS)
    lp = np.log(np.full((frames, vocab), 0.01 / (vocab - 1)))
    lp[:, 0] = np.log(0.99)
    spikes = np.arange(5, frames - 5, 4)
    letters = rng.integers(5, vocab, spikes.size)
    lp[spikes] = np.log(0.01 / (vocab - 1))
    lp[spikes, letters] = np.log(0.99)
    toks = [AlignToken(int(x)) for x in letters]
    graph = build_graph(toks, 0, vocab)
    peaks, paths = [], []
    for window in (150, 10**6):
        tracemalloc.start()
        paths.append(forced_states(lp, graph, window=window, commit=window // 2 or 1))
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert np.array_equal(paths[0], paths[1])
    assert peaks[0] < 1_000_000 and 10 * peaks[0] < peaks[1]

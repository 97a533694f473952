"""Normalisation, WER/CER, alignments, reports and the summary table."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import jiwer
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.cells import cell_len
from rich.console import Console

from w2v2cli.cli.render import (
    SummaryRow,
    alignment_lines,
    alignment_text,
    format_duration,
    summary_table,
)
from w2v2cli.errors import ConfigError
from w2v2cli.evaluation import (
    ErrorCounts,
    Score,
    aggregate,
    normalize,
    prepare,
    report_format,
    score,
    utterance_scores,
    worst,
    write_report,
)
from w2v2cli.evaluation.scoring import align_words

# --- normalisation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Don't stop", "don't stop"),
        ("don’t stop", "don't stop"),  # typographic apostrophe
        ("'quoted' words", "quoted words"),
        ("‘quoted’ words", "quoted words"),
        ("the students' books", "the students books"),  # trailing possessive goes
        ("rock'n'roll", "rock'n'roll"),
        ("it's 5 o'clock", "it's 5 o'clock"),
        ("Hello, World!", "hello world"),
        ("HELLO world", "hello world"),
        ("Straße", "strasse"),  # casefold, not lower
        ("ＦＵＬＬ ﬁne", "full fine"),  # NFKC: full-width letters, ligature
        ("cafe\u0301", "café"),  # decomposed accent composes
        ("well-known", "well known"),
        ("well‑known — en–dash", "well known en dash"),  # non-breaking hyphen, dashes
        ("co\u00adoperate", "cooperate"),  # soft hyphen is invisible: dropped
        ("  lots \t of\n space  ", "lots of space"),
        ("50% & $5", "50 5"),
        ("a''b", "a b"),
        ("...", ""),
        ("नमस्ते दुनिया", "नमस्ते दुनिया"),  # combining vowel signs are kept
        ("l'homme", "l'homme"),
    ],
)
def test_normalize(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


@given(st.text())
@settings(max_examples=300, deadline=None)
def test_normalize_is_idempotent(text: str) -> None:
    once = normalize(text)
    assert normalize(once) == once
    assert once == " ".join(once.split())


def test_prepare_switches() -> None:
    assert prepare("  Hello,\tWorld ", normalize=True) == "hello world"
    assert prepare("  Hello,\tWorld ", normalize=False) == "Hello, World"
    assert prepare("Hello World", normalize=str.upper) == "HELLO WORLD"


# --- hand-worked WER / CER -----------------------------------------------------------------


def test_substitution_and_deletion_by_hand() -> None:
    # REF: the cat sat on the mat
    # HYP: the cat sit on *** mat
    #              S      D
    # words: H=4 (the cat on mat), S=1 (sat→sit), D=1 (the), I=0; N=6 → WER 2/6
    # chars: ref has 22 characters (18 letters + 4 spaces), hyp 18.
    #   "the cat s[a→i]t on [the ]mat": S=1, D=4 ("the" and one space), H=17; 17+1+4 = 22
    (u,) = utterance_scores(["the cat sat on the mat"], ["the cat sit on mat"])
    assert u.words == ErrorCounts(hits=4, substitutions=1, deletions=1, insertions=0)
    assert u.wer == pytest.approx(2 / 6)
    assert u.chars == ErrorCounts(hits=17, substitutions=1, deletions=4, insertions=0)
    assert u.cer == pytest.approx(5 / 22)


def test_insertion_by_hand() -> None:
    # REF: hello ***** world
    # HYP: hello there world
    #            I
    # words: H=2, I=1; N=2 → WER 1/2.  chars: "there " inserted: I=6, H=11; N=11 → 6/11
    (u,) = utterance_scores(["hello world"], ["hello there world"])
    assert u.words == ErrorCounts(hits=2, insertions=1)
    assert u.wer == pytest.approx(0.5)
    assert u.chars == ErrorCounts(hits=11, insertions=6)
    assert u.cer == pytest.approx(6 / 11)


def test_corpus_level_is_not_mean_of_rates() -> None:
    # utterance 1: REF a / HYP b → 1 substitution of 1 word: WER 1.0
    # utterance 2: ten words, all correct: WER 0.0
    # mean of rates: 0.5; corpus: 1 error / 11 reference words
    refs = ["a", "one two three four five six seven eight nine ten"]
    hyps = ["b", refs[1]]
    s = score(refs, hyps)
    per = utterance_scores(refs, hyps)
    assert sum(u.wer for u in per) / 2 == pytest.approx(0.5)
    assert s.wer == pytest.approx(1 / 11)
    assert s.words == ErrorCounts(hits=10, substitutions=1)
    assert s.words.reference == 11
    # chars: 1 substitution over 1 + 48 characters (39 letters + 9 spaces)
    assert s.cer == pytest.approx(1 / 49)
    assert s.utterances == 2


def test_normalisation_changes_the_score() -> None:
    refs, hyps = ["Hello, World!"], ["hello world"]
    assert score(refs, hyps).wer == 0.0
    raw = score(refs, hyps, normalize=False)
    assert raw.words == ErrorCounts(substitutions=2)
    assert raw.wer == 1.0


def test_matches_jiwer_on_fixed_corpus() -> None:
    refs = ["the quick brown fox", "jumps over the lazy dog", "a b c d e f"]
    hyps = ["the quick brown box jumps", "over the lazy dog", "a c d x e f g"]
    s = score(refs, hyps, normalize=False)
    assert s.wer == pytest.approx(jiwer.wer(refs, hyps))
    assert s.cer == pytest.approx(jiwer.cer(refs, hyps))
    out = jiwer.process_words(refs, hyps)
    assert (s.words.substitutions, s.words.deletions, s.words.insertions, s.words.hits) == (
        out.substitutions,
        out.deletions,
        out.insertions,
        out.hits,
    )


words = st.lists(st.sampled_from(["a", "b", "cc", "ddd", "é"]), max_size=8).map(" ".join)


@given(st.lists(st.tuples(words.filter(bool), words), min_size=1, max_size=6))
@settings(max_examples=150, deadline=None)
def test_matches_jiwer_property(pairs: list[tuple[str, str]]) -> None:
    refs = [r for r, _ in pairs]
    hyps = [h for _, h in pairs]
    s = score(refs, hyps, normalize=False)
    assert s.wer == pytest.approx(jiwer.wer(refs, hyps))
    assert s.cer == pytest.approx(jiwer.cer(refs, hyps))


# --- empty references and hypotheses -------------------------------------------------------


def test_empty_reference_counts_insertions() -> None:
    (u,) = utterance_scores([""], ["uh huh"])
    assert u.words == ErrorCounts(insertions=2)
    assert u.chars == ErrorCounts(insertions=6)  # "uh huh": 5 letters + 1 space
    assert u.wer == 2.0  # jiwer 4's convention: the insertion count
    # in a corpus, the insertions add to the errors but not to the reference length
    s = score(["a b", ""], ["a b", "uh huh"])
    assert s.wer == pytest.approx(2 / 2)
    assert s.words == ErrorCounts(hits=2, insertions=2)


def test_reference_empty_after_normalisation() -> None:
    (u,) = utterance_scores(["... !"], ["yes"])
    assert u.ref == ""
    assert u.words == ErrorCounts(insertions=1)


def test_both_empty_is_perfect() -> None:
    (u,) = utterance_scores([""], [""])
    assert u.wer == 0.0 and u.cer == 0.0
    assert score([""], [""]).wer == 0.0


def test_empty_hypothesis_is_all_deletions() -> None:
    (u,) = utterance_scores(["a b c"], [""])
    assert u.words == ErrorCounts(deletions=3)
    assert u.chars == ErrorCounts(deletions=5)
    assert u.wer == 1.0 and u.cer == 1.0


def test_no_utterances() -> None:
    s = score([], [])
    assert s == Score(ErrorCounts(), ErrorCounts(), 0)
    assert s.wer == 0.0


def test_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="pair up"):
        score(["a"], [])
    with pytest.raises(ValueError, match="ids"):
        utterance_scores(["a"], ["a"], ids=["x", "y"])


def test_ids_and_texts_are_kept() -> None:
    utts = utterance_scores(["Hi, there"], ["hi there"], ids=["clip1"])
    assert (utts[0].id, utts[0].reference, utts[0].ref, utts[0].hyp) == (
        "clip1",
        "Hi, there",
        "hi there",
        "hi there",
    )


def test_aggregate_equals_score() -> None:
    refs, hyps = ["a b c", "d e"], ["a x c", "d e f"]
    assert aggregate(utterance_scores(refs, hyps)) == score(refs, hyps)


# --- worst and alignments ---------------------------------------------------------------------


def test_worst_orders_by_word_errors_then_wer() -> None:
    utts = utterance_scores(
        ["a", "a b c d", "a b", "a b c d e f"],
        ["x", "x y c d", "x y", "a b c d e f"],
        ids=["one", "two-of-four", "two-of-two", "none"],
    )
    assert [u.id for u in worst(utts, 3)] == ["two-of-two", "two-of-four", "one"]
    assert worst(utts, 0) == []
    assert len(worst(utts, 10)) == 4


def test_alignment_lines_by_hand() -> None:
    # a/a correct, bb→xx substitution, ccc correct, dddd inserted
    lines = alignment_lines("a bb ccc", "a xx ccc dddd")
    assert lines.ref == "a bb ccc ****"
    assert lines.hyp == "a xx ccc dddd"
    assert lines.ops == "  S      I   "
    ref, hyp, ops = alignment_lines("one two three", "one three")
    assert (ref, hyp, ops) == ("one two three", "one *** three", "    D        ")
    assert alignment_lines("", "") == ("", "", "")


def test_alignment_lines_pad_by_display_width() -> None:
    ref, hyp, ops = alignment_lines("日本 語", "日本 x 語")
    assert cell_len(ref) == cell_len(hyp) == cell_len(ops)
    assert ref.split() == ["日本", "*", "語"]


@given(words, words)
@settings(max_examples=200, deadline=None)
def test_alignment_lines_property(ref: str, hyp: str) -> None:
    lines = alignment_lines(ref, hyp)
    assert len(lines.ref) == len(lines.hyp) == len(lines.ops)
    (u,) = utterance_scores([ref], [hyp], normalize=False)
    assert lines.ops.count("S") == u.words.substitutions
    assert lines.ops.count("D") == u.words.deletions
    assert lines.ops.count("I") == u.words.insertions
    columns = align_words(ref, hyp)
    assert [c.ref for c in columns if c.ref is not None] == ref.split()
    assert [c.hyp for c in columns if c.hyp is not None] == hyp.split()


def test_alignment_text_is_colored() -> None:
    text = alignment_text("a bb", "a xx")
    assert text.plain.splitlines() == ["REF: a bb", "HYP: a xx", "       S "]
    assert any("yellow" in str(span.style) for span in text.spans)


# --- reports ---------------------------------------------------------------------------


@pytest.fixture
def utts() -> list:
    return utterance_scores(
        ["the cat, sat", "Hello\tworld", ""], ["the cat sit", "hello world", "uh"], ids=list("abc")
    )


def test_report_jsonl_round_trip(tmp_path: Path, utts: list) -> None:
    path = tmp_path / "report.jsonl"
    write_report(path, utts)
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert rows == [u.to_row() for u in utts]
    assert list(tmp_path.iterdir()) == [path]  # no temp file left behind


def test_report_csv_round_trip(tmp_path: Path, utts: list) -> None:
    path = tmp_path / "report.csv"
    rows = [{"decoder": "greedy", **u.to_row()} for u in utts] + [{"id": "d", "error": "x, y"}]
    write_report(path, rows)
    with path.open(encoding="utf-8", newline="") as f:
        back = list(csv.DictReader(f))
    assert [r["id"] for r in back] == ["a", "b", "c", "d"]
    assert back[1]["reference"] == "Hello\tworld"
    assert float(back[0]["wer"]) == pytest.approx(utts[0].wer)
    assert back[3]["error"] == "x, y" and back[3]["wer"] == ""
    assert back[0]["error"] == ""


def test_report_tsv_keeps_one_line_per_row(tmp_path: Path, utts: list) -> None:
    path = tmp_path / "report.tsv"
    write_report(path, [{"id": "x", "text": 'say "hi"\nthere', "words": ["a", "b"]}])
    assert path.read_text(encoding="utf-8") == 'id\ttext\twords\nx\tsay "hi" there\t["a", "b"]\n'


def test_report_is_atomic(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    path.write_text("old\n")
    with pytest.raises(TypeError):
        write_report(path, [{"bad": object()}])
    assert path.read_text() == "old\n"
    assert list(tmp_path.iterdir()) == [path]


def test_report_format() -> None:
    assert report_format("r.JSONL") == "jsonl"
    assert report_format("r.json") == "jsonl"
    assert report_format("r.csv") == "csv"
    assert report_format("r.tsv") == "tsv"
    assert report_format("r.HTML") == report_format("r.htm") == "html"
    with pytest.raises(ConfigError, match=r"\.jsonl, \.json, \.csv, \.tsv or \.html"):
        report_format("r.txt")
    with pytest.raises(ConfigError, match="html_report"):  # a page needs more than rows
        write_report("r.html", [])


# --- summary table -----------------------------------------------------------------------


def test_summary_table_rows_per_decoder() -> None:
    greedy = score(["a b c d"], ["a x c d"])
    beam = score(["a b c d"], ["a b c d e"])
    table = summary_table(
        [SummaryRow("greedy", greedy, 3725.0, 50.0, failed=2), SummaryRow("beam", beam, 3725.0, 0)],
        title="eval",
    )
    console = Console(width=80, record=True, color_system=None)
    console.print(table)
    out = console.export_text()
    assert "…" not in out
    greedy_line = next(line for line in out.splitlines() if "greedy" in line)
    for cell in ("1", "2", "1:02:05", "25.00%", "14.29%", "1/0/0", "74.5×"):
        assert cell in greedy_line.split()
    beam_line = next(line for line in out.splitlines() if "beam" in line)
    assert "0/0/1" in beam_line and "–" in beam_line


def test_summary_table_single_row() -> None:
    table = summary_table(SummaryRow("greedy", score(["a"], ["a"]), 5.0, 1.0))
    assert table.row_count == 1


@pytest.mark.parametrize(
    ("seconds", "text"), [(7.25, "7.2 s"), (59.9, "59.9 s"), (61, "1:01"), (3725, "1:02:05")]
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text

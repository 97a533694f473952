"""Text normalisation, WER/CER scoring, per-utterance reports and their display.

The eval command's last stage: it gets reference and hypothesis *texts* and never sees the
model, the audio or the manifest. Typical use::

    utts = utterance_scores(refs, hyps, ids=ids)          # one UtteranceScore per pair
    total = aggregate(utts)                               # corpus-level Score
    write_report("report.csv", [u.to_row() for u in utts])
    console.print(summary_table([SummaryRow("greedy", total, audio_s, wall_s)]))
    for u in worst(utts, 5):
        console.print(alignment_text(u.ref, u.hyp))

How errors are counted (the reasons are in the docstrings below):

* Texts are normalised (``normalize``), or with ``normalize=False`` only split on
  whitespace; either way words are whitespace-separated tokens.
* Word and character edit operations come from jiwer's Levenshtein alignment
  (``process_words`` / ``process_characters``).
* WER and CER are corpus-level: all errors over all reference words (characters), not the
  mean of per-utterance rates, which would let a two-word utterance weigh as much as a
  fifty-word one.
* CER counts the single space between words as a character (jiwer's and Hugging Face
  ``evaluate``'s convention): a CTC model that merges or splits words makes real errors.
* An utterance whose (normalised) reference is empty scores its hypothesis words/characters
  as insertions; its own rate is the insertion count (0.0 when the hypothesis is empty
  too), which is jiwer 4's convention. jiwer 3 refuses empty references, so such pairs are
  counted here, never passed to jiwer.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, TextIO

import jiwer
from rich import box
from rich.cells import cell_len
from rich.table import Table
from rich.text import Text

from .errors import ConfigError

# --- normalisation -----------------------------------------------------------------------

#: Characters read as an apostrophe: ASCII, right and left single quotation marks (what word
#: processors put in "don’t"), and the modifier letter apostrophe.
APOSTROPHES = "'\u2019\u2018\u02bc"
_TO_ASCII_APOSTROPHE = str.maketrans({c: "'" for c in APOSTROPHES[1:]} | {"\u00ad": None})

Normalization = bool | Callable[[str], str]
"""``True``: ``normalize``; ``False``: raw text (whitespace split only); or any function."""


def normalize(text: str) -> str:
    """Normalise a transcript so that only differences in *words* count as errors.

    In order:

    1. Unicode NFKC, so look-alike encodings compare equal (full-width letters, ligatures
       such as "ﬁ", composed vs. decomposed accents).
    2. ``str.casefold`` (stronger than ``lower``: "Straße" → "strasse"), then NFKC again
       because case folding can leave text that is not NFKC.
    3. Typographic apostrophes (’ ‘ ʼ) become ``'``; soft hyphens (invisible) are dropped.
    4. An apostrophe between two word characters (letters, digits, combining marks) stays:
       "don't", "o'clock", "rock'n'roll". Any other apostrophe is a quotation mark or a
       trailing possessive and becomes a space: "'quoted'" → "quoted",
       "students'" → "students".
    5. Every other punctuation mark and symbol (Unicode categories P* and S*) becomes a
       space. Hyphens and dashes are punctuation, so "well-known" → "well known": CTC models
       emit either form, and splitting is the reading that never glues two words together.
       Symbols (%, $, &, emoji) go too: wav2vec2 alphabets cannot emit them.
    6. Whitespace runs collapse to single spaces; no leading or trailing space.

    Numbers are not spelled out and contractions are not expanded: that is language-specific
    and best done in the references themselves.
    """
    text = unicodedata.normalize("NFKC", text).casefold()
    text = unicodedata.normalize("NFKC", text).translate(_TO_ASCII_APOSTROPHE)
    out = []
    last = len(text) - 1
    for i, ch in enumerate(text):
        if ch == "'":
            in_word = 0 < i < last and _is_word_char(text[i - 1]) and _is_word_char(text[i + 1])
            out.append(ch if in_word else " ")
        elif unicodedata.category(ch)[0] in "PS":
            out.append(" ")
        else:
            out.append(ch)
    return " ".join("".join(out).split())


def _is_word_char(ch: str) -> bool:
    return unicodedata.category(ch)[0] in "LNM"


_default_normalize = normalize


def prepare(text: str, normalize: Normalization = True) -> str:
    """The text exactly as it is scored: normalised (or not), words joined by one space."""
    if callable(normalize):
        text = normalize(text)
    elif normalize:
        text = _default_normalize(text)
    return " ".join(text.split())


# --- counts and scores -------------------------------------------------------------------


@dataclass(frozen=True)
class ErrorCounts:
    """Edit operations of an alignment, in words or in characters. Counts add up with ``+``."""

    hits: int = 0
    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0

    @property
    def reference(self) -> int:
        """Length of the reference (words or characters)."""
        return self.hits + self.substitutions + self.deletions

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def rate(self) -> float:
        """errors / reference length; with an empty reference, the insertion count (jiwer 4)."""
        if self.reference == 0:
            return float(self.insertions)
        return self.errors / self.reference

    def __add__(self, other: ErrorCounts) -> ErrorCounts:
        return ErrorCounts(
            self.hits + other.hits,
            self.substitutions + other.substitutions,
            self.deletions + other.deletions,
            self.insertions + other.insertions,
        )


def _counts_row(wer: float, cer: float, words: ErrorCounts, chars: ErrorCounts) -> dict:
    """Rates and edit counts as flat report columns (shared by utterance and corpus rows)."""
    return {
        "wer": wer,
        "cer": cer,
        "ref_words": words.reference,
        "hits": words.hits,
        "substitutions": words.substitutions,
        "deletions": words.deletions,
        "insertions": words.insertions,
        "ref_chars": chars.reference,
        "char_hits": chars.hits,
        "char_substitutions": chars.substitutions,
        "char_deletions": chars.deletions,
        "char_insertions": chars.insertions,
    }


@dataclass(frozen=True)
class UtteranceScore:
    """One scored pair. ``reference``/``hypothesis`` are the texts as given; ``ref``/``hyp``
    are the texts as scored (normalised, single spaces), which alignments use."""

    id: str
    reference: str
    hypothesis: str
    ref: str
    hyp: str
    words: ErrorCounts
    chars: ErrorCounts

    @property
    def wer(self) -> float:
        return self.words.rate

    @property
    def cer(self) -> float:
        return self.chars.rate

    def to_row(self) -> dict[str, object]:
        """A flat record for ``write_report``; callers may add keys (decoder, duration...)."""
        return {
            "id": self.id,
            **_counts_row(self.wer, self.cer, self.words, self.chars),
            "ref": self.ref,
            "hyp": self.hyp,
            "reference": self.reference,
            "hypothesis": self.hypothesis,
        }


@dataclass(frozen=True)
class Score:
    """Corpus-level result: counts summed over utterances, rates computed from the sums."""

    words: ErrorCounts
    chars: ErrorCounts
    utterances: int

    @property
    def wer(self) -> float:
        return self.words.rate

    @property
    def cer(self) -> float:
        return self.chars.rate

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready summary."""
        return {
            "utterances": self.utterances,
            **_counts_row(self.wer, self.cer, self.words, self.chars),
        }


def utterance_scores(
    references: Sequence[str],
    hypotheses: Sequence[str],
    *,
    normalize: Normalization = True,
    ids: Sequence[str] | None = None,
) -> list[UtteranceScore]:
    """Score each reference/hypothesis pair; ``ids`` default to "0", "1", ...

    All pairs with a non-empty reference go to jiwer in one call per unit (words,
    characters), and per-utterance counts are read off its alignments, so per-utterance and
    corpus numbers come from the same alignments.
    """
    if len(references) != len(hypotheses):
        raise ValueError(
            f"{len(references)} references but {len(hypotheses)} hypotheses; they must pair up"
        )
    if ids is None:
        ids = [str(i) for i in range(len(references))]
    elif len(ids) != len(references):
        raise ValueError(f"{len(ids)} ids for {len(references)} references")

    refs = [prepare(r, normalize) for r in references]
    hyps = [prepare(h, normalize) for h in hypotheses]
    word_counts = [ErrorCounts(insertions=len(h.split())) for h in hyps]
    char_counts = [ErrorCounts(insertions=len(h)) for h in hyps]

    scored = [i for i, r in enumerate(refs) if r]
    if scored:
        ref_batch = [refs[i] for i in scored]
        hyp_batch = [hyps[i] for i in scored]
        by_word = jiwer.process_words(ref_batch, hyp_batch)
        by_char = jiwer.process_characters(ref_batch, hyp_batch)
        for i, w_chunks, c_chunks in zip(
            scored, by_word.alignments, by_char.alignments, strict=True
        ):
            word_counts[i] = _counts(w_chunks)
            char_counts[i] = _counts(c_chunks)

    return [
        UtteranceScore(
            id=ids[i],
            reference=references[i],
            hypothesis=hypotheses[i],
            ref=refs[i],
            hyp=hyps[i],
            words=word_counts[i],
            chars=char_counts[i],
        )
        for i in range(len(refs))
    ]


def _counts(chunks: Iterable[jiwer.AlignmentChunk]) -> ErrorCounts:
    hits = subs = dels = ins = 0
    for c in chunks:
        if c.type == "equal":
            hits += c.ref_end_idx - c.ref_start_idx
        elif c.type == "substitute":
            subs += c.ref_end_idx - c.ref_start_idx
        elif c.type == "delete":
            dels += c.ref_end_idx - c.ref_start_idx
        elif c.type == "insert":
            ins += c.hyp_end_idx - c.hyp_start_idx
    return ErrorCounts(hits, subs, dels, ins)


def aggregate(utterances: Iterable[UtteranceScore]) -> Score:
    """Sum per-utterance counts into a corpus-level ``Score``."""
    words = chars = ErrorCounts()
    n = 0
    for u in utterances:
        words += u.words
        chars += u.chars
        n += 1
    return Score(words=words, chars=chars, utterances=n)


def score(
    references: Sequence[str], hypotheses: Sequence[str], normalize: Normalization = True
) -> Score:
    """Corpus-level WER/CER of paired texts (total errors / total reference length)."""
    return aggregate(utterance_scores(references, hypotheses, normalize=normalize))


def worst(results: Iterable[UtteranceScore], n: int) -> list[UtteranceScore]:
    """The ``n`` utterances with the most word errors, ties broken by higher WER, then by
    input order. Absolute errors first: a 1-word utterance with 100% WER is rarely the
    most instructive failure."""
    if n <= 0:
        return []
    return sorted(results, key=lambda u: (-u.words.errors, -u.wer))[:n]


# --- alignment view ----------------------------------------------------------------------


class AlignedWord(NamedTuple):
    """One column of a word alignment. ``op``: C (correct), S, D (``hyp`` None) or I
    (``ref`` None)."""

    op: str
    ref: str | None
    hyp: str | None


class AlignmentLines(NamedTuple):
    """Three lines of equal display width: reference, hypothesis, and S/D/I marks."""

    ref: str
    hyp: str
    ops: str


def align_words(ref: str, hyp: str) -> list[AlignedWord]:
    """Word alignment of two texts *as scored* (pass ``UtteranceScore.ref``/``.hyp``);
    they are only split on whitespace here."""
    ref_words, hyp_words = ref.split(), hyp.split()
    if not ref_words:
        return [AlignedWord("I", None, h) for h in hyp_words]
    chunks = jiwer.process_words(" ".join(ref_words), " ".join(hyp_words)).alignments[0]
    columns = []
    for c in chunks:
        r = ref_words[c.ref_start_idx : c.ref_end_idx]
        h = hyp_words[c.hyp_start_idx : c.hyp_end_idx]
        if c.type in ("equal", "substitute"):
            op = "C" if c.type == "equal" else "S"
            columns += [AlignedWord(op, a, b) for a, b in zip(r, h, strict=False)]
            # Levenshtein replace blocks pair 1:1; anything left over is a D or an I.
            columns += [AlignedWord("D", a, None) for a in r[len(h) :]]
            columns += [AlignedWord("I", None, b) for b in h[len(r) :]]
        elif c.type == "delete":
            columns += [AlignedWord("D", a, None) for a in r]
        else:
            columns += [AlignedWord("I", None, b) for b in h]
    return columns


def _cells(column: AlignedWord) -> tuple[str, str, str, int]:
    """Reference cell, hypothesis cell, mark and the column's display width. A missing word
    shows as ``*`` as wide as the word opposite (jiwer's ``visualize_alignment`` style)."""
    width = max(cell_len(column.ref or ""), cell_len(column.hyp or ""), 1)
    r = column.ref if column.ref is not None else "*" * width
    h = column.hyp if column.hyp is not None else "*" * width
    mark = "" if column.op == "C" else column.op
    return r, h, mark, width


def _pad(s: str, width: int) -> str:
    return s + " " * (width - cell_len(s))


def alignment_lines(ref: str, hyp: str) -> AlignmentLines:
    """Aligned reference, hypothesis and marks, each column padded to the same display
    width (wide CJK characters count as two cells), columns separated by one space."""
    ref_cells, hyp_cells, op_cells = [], [], []
    for column in align_words(ref, hyp):
        r, h, mark, width = _cells(column)
        ref_cells.append(_pad(r, width))
        hyp_cells.append(_pad(h, width))
        op_cells.append(_pad(mark, width))
    return AlignmentLines(" ".join(ref_cells), " ".join(hyp_cells), " ".join(op_cells))


#: rich styles of the alignment marks.
OP_STYLES = {"S": "bold yellow", "D": "bold red", "I": "bold green"}


def alignment_text(ref: str, hyp: str, *, labels: bool = True) -> Text:
    """``alignment_lines`` as a colored rich ``Text`` of three lines (REF, HYP, marks);
    errors are colored by kind in all three lines."""
    ref_t, hyp_t, ops_t = Text(), Text(), Text()
    if labels:
        ref_t.append("REF: ", style="dim")
        hyp_t.append("HYP: ", style="dim")
        ops_t.append("     ")
    for n, column in enumerate(align_words(ref, hyp)):
        if n:
            for t in (ref_t, hyp_t, ops_t):
                t.append(" ")
        r, h, mark, width = _cells(column)
        style = OP_STYLES.get(column.op, "")
        ref_t.append(_pad(r, width), style=style)
        hyp_t.append(_pad(h, width), style=style)
        ops_t.append(_pad(mark, width), style=style)
    return Text("\n").join([ref_t, hyp_t, ops_t])


# --- reports -----------------------------------------------------------------------------

REPORT_FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv", ".tsv": "tsv"}


def report_format(path: str | Path) -> str:
    """``jsonl``, ``csv`` or ``tsv`` from the file extension; ``ConfigError`` otherwise.
    Call it while validating options, so a typo fails before the model runs."""
    fmt = REPORT_FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise ConfigError(
            f"cannot tell the report format of {path}: use .jsonl, .json, .csv or .tsv"
        )
    return fmt


def write_report(path: str | Path, rows: Iterable[UtteranceScore | Mapping[str, object]]) -> None:
    """Write one record per row, format by extension, atomically.

    JSONL: one JSON object per line, UTF-8 (not ASCII-escaped). CSV: RFC 4180 quoting, a
    header of every key in first-seen order, empty cells for missing keys and None. TSV: the
    same columns without quoting; tabs and line breaks inside values become spaces, so each
    record stays one line for ``cut``/``awk``. Lists and dicts in CSV/TSV cells are JSON.
    The file is written to a temporary file in the same folder and renamed over the
    target, so an interrupted run never leaves half a report.
    """
    path = Path(path)
    fmt = report_format(path)
    records = [r.to_row() if isinstance(r, UtteranceScore) else dict(r) for r in rows]
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            if fmt == "jsonl":
                for record in records:
                    f.write(json.dumps(record, ensure_ascii=False) + "\n")
            else:
                _write_table(f, records, fmt)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_table(f: TextIO, records: list[dict[str, object]], fmt: str) -> None:
    columns: dict[str, None] = {}
    for record in records:
        columns.update(dict.fromkeys(record))
    if fmt == "csv":
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(columns)
        for record in records:
            writer.writerow([_cell(record.get(c)) for c in columns])
        return
    f.write("\t".join(columns) + "\n")
    for record in records:
        cells = (_cell(record.get(c)) for c in columns)
        f.write("\t".join(" ".join(c.replace("\t", " ").splitlines()) for c in cells) + "\n")


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# --- summary table -----------------------------------------------------------------------


@dataclass(frozen=True)
class SummaryRow:
    """One line of the summary: a decoder (or any named system) and its run.

    ``audio_seconds`` is the duration of the scored audio; ``wall_seconds`` the time it took
    (the speed column is their ratio, "× real time": 50× means a minute of audio in 1.2 s);
    ``failed`` counts utterances that could not be transcribed (missing or unreadable
    audio, decoder errors) and are therefore not in ``score``.
    """

    name: str
    score: Score
    audio_seconds: float
    wall_seconds: float
    failed: int = 0


def summary_table(rows: SummaryRow | Sequence[SummaryRow], *, title: str | None = None) -> Table:
    """A rich table with one row per decoder: scored utterances, failed ones, audio
    duration, WER, CER, word substitutions/deletions/insertions and speed (× real time).
    Rates are percentages with two decimals."""
    if isinstance(rows, SummaryRow):
        rows = [rows]
    rows = list(rows)
    # A light box (no vertical rules) and one S/D/I column keep the table inside an
    # 80-column terminal without truncated numbers; a long decoder name folds instead.
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("Decoder", overflow="fold", min_width=min(10, _longest_name(rows)))
    for name in ("Utts", "Failed", "Audio", "WER", "CER", "S/D/I", "Speed"):
        table.add_column(name, justify="right", no_wrap=True)
    for row in rows:
        s = row.score
        table.add_row(
            row.name,
            str(s.utterances),
            str(row.failed),
            format_duration(row.audio_seconds),
            f"{100 * s.wer:.2f}%",
            f"{100 * s.cer:.2f}%",
            f"{s.words.substitutions}/{s.words.deletions}/{s.words.insertions}",
            _speed(row.audio_seconds, row.wall_seconds),
        )
    return table


def _speed(audio_seconds: float, wall_seconds: float) -> str:
    if wall_seconds <= 0:
        return "–"
    factor = audio_seconds / wall_seconds
    return f"{factor:.0f}×" if factor >= 100 else f"{factor:.1f}×"


def _longest_name(rows: Sequence[SummaryRow]) -> int:
    return max((cell_len(r.name) for r in rows), default=7)


def format_duration(seconds: float) -> str:
    """Like "7.3 s" under a minute, "m:ss" under an hour, else "h:mm:ss"."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"

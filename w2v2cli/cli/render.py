"""What the commands print: summary tables, the word alignment view, the tuning table,
durations. The library returns results; only this module turns them into rich renderables.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from rich import box
from rich.cells import cell_len
from rich.table import Table
from rich.text import Text

from ..evaluation.scoring import AlignedWord, Score, align_words

if TYPE_CHECKING:
    from ..evaluation.tune import TuneResult


class AlignmentLines(NamedTuple):
    """Three lines of equal display width: reference, hypothesis, and S/D/I marks."""

    ref: str
    hyp: str
    ops: str


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


def results_table(result: TuneResult, *, title: str | None = None) -> Table:
    """A rich table of every (alpha, beta) pair, best first and highlighted: alpha, beta,
    WER, CER and word substitutions/deletions/insertions (insertions show a beta that is
    too high)."""
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False)
    for name in ("alpha", "beta", "WER", "CER", "S/D/I"):
        table.add_column(name, justify="right", no_wrap=True)
    for i, row in enumerate(result.rows):
        words = row.score.words
        table.add_row(
            f"{row.alpha:g}",
            f"{row.beta:g}",
            f"{100 * row.wer:.2f}%",
            f"{100 * row.cer:.2f}%",
            f"{words.substitutions}/{words.deletions}/{words.insertions}",
            style="bold green" if i == 0 else None,
        )
    return table


def format_seconds(seconds: float) -> str:
    """``H:MM:SS`` for audio durations in messages and the summary."""
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}"

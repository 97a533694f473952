"""Reports of ``eval --report`` and ``lm tune --report``: what they hold, and the rows
written as JSON Lines, CSV or TSV by file extension (``.html``: ``html_report``).

An ``EvalReport`` (``eval_report``) or ``TuneReport`` (``tune_report``) is built once per
run; its ``rows`` are what the ``.jsonl``/``.csv``/``.tsv`` files hold, and the HTML page
embeds the very same rows, so the page and the files never disagree.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from ..errors import ConfigError
from ..fsutil import atomic_file
from .evaluate import EvalResult
from .scoring import Score, UtteranceScore
from .tune import TuneResult

REPORT_FORMATS = {
    ".jsonl": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".tsv": "tsv",
    ".html": "html",
    ".htm": "html",
}


def report_format(path: str | Path) -> str:
    """``jsonl``, ``csv``, ``tsv`` or ``html`` from the file extension; ``ConfigError``
    otherwise. Call it while validating options, so a typo fails before the model runs."""
    fmt = REPORT_FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise ConfigError(
            f"cannot tell the report format of {path}: use .jsonl, .json, .csv, .tsv or .html"
        )
    return fmt


#: One row of a report: JSON-ready values under string keys.
Row = dict[str, object]
#: Lines of the page's "about this run" box: (label, value).
About = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class DecoderSummary:
    """One decoder's line of the summary: its corpus score, the scored audio's duration,
    the time the model and the decoder took, and the utterances it could not score."""

    name: str
    score: Score
    audio_seconds: float
    wall_seconds: float
    failed: int

    def to_dict(self) -> Row:
        speed = self.audio_seconds / self.wall_seconds if self.wall_seconds > 0 else None
        return {
            "decoder": self.name,
            **self.score.to_dict(),
            "failed": self.failed,
            "audio_seconds": round(self.audio_seconds, 3),
            "wall_seconds": round(self.wall_seconds, 3),
            "speed": None if speed is None else round(speed, 2),
        }


@dataclass(frozen=True)
class FailedUtterance:
    """An utterance left out of the scores: its audio, the decoder it failed for (None:
    every decoder, the audio could not be read) and why."""

    audio: str
    decoder: str | None
    reason: str


@dataclass(frozen=True)
class EvalReport:
    """Everything ``eval --report`` writes: ``rows`` (one per decoder and scored
    utterance, decoders in turn, utterances in manifest order), each row's position in the
    manifest (``positions``: the page lines decoders up by it), one ``DecoderSummary`` per
    decoder, the failures, and what the page says about the run."""

    title: str
    rows: tuple[Row, ...]
    positions: tuple[int, ...]
    decoders: tuple[DecoderSummary, ...]
    failed: tuple[FailedUtterance, ...] = ()
    about: About = ()


def eval_report(result: EvalResult, *, title: str, about: About = ()) -> EvalReport:
    """The report of an ``evaluate`` run. Each row is ``UtteranceScore.to_row()`` with the
    decoder's name first and, last, ``audio`` (the file as the manifest resolves it),
    ``duration`` (seconds) and ``hyp_times`` (``[start, end]`` of each word of ``hyp``,
    or None)."""
    rows: list[Row] = []
    positions: list[int] = []
    summaries = []
    failed = [FailedUtterance(str(e.audio), None, why) for e, why in result.failed]
    for d in result.decoders:
        for u, a in zip(d.utterances, d.audio, strict=True):
            rows.append(
                {
                    "decoder": d.name,
                    **u.to_row(),
                    "audio": str(a.entry.audio),
                    "duration": round(a.duration, 3),
                    "hyp_times": None if a.hyp_times is None else [list(t) for t in a.hyp_times],
                }
            )
            positions.append(a.index)
        summaries.append(
            DecoderSummary(
                d.name,
                d.score,
                result.audio_seconds,
                result.model_seconds + d.decode_seconds,
                failed=len(result.failed) + len(d.failed),
            )
        )
        failed += [FailedUtterance(str(e.audio), d.name, why) for e, why in d.failed]
    return EvalReport(title, tuple(rows), tuple(positions), tuple(summaries), tuple(failed), about)


@dataclass(frozen=True)
class TuneReport:
    """Everything ``lm tune --report`` writes: one row per ``(alpha, beta)`` pair, best
    first (``alpha``, ``beta``, then ``Score.to_dict()``), and what the page says."""

    title: str
    rows: tuple[Row, ...]
    utterances: int
    seconds: float
    about: About = ()

    @property
    def best(self) -> Row:
        return self.rows[0]


def tune_report(result: TuneResult, *, title: str, about: About = ()) -> TuneReport:
    """The report of a ``tune``/``tune_pairs`` search, rows in its order (best first)."""
    rows = tuple({"alpha": r.alpha, "beta": r.beta, **r.score.to_dict()} for r in result.rows)
    return TuneReport(title, rows, result.utterances, result.seconds, about)


def write_report(path: str | Path, rows: Iterable[UtteranceScore | Mapping[str, object]]) -> None:
    """Write one record per row, format by extension (``.jsonl``, ``.csv``, ``.tsv``),
    atomically; an HTML page is ``html_report``'s.

    JSONL: one JSON object per line, UTF-8 (not ASCII-escaped). CSV: RFC 4180 quoting, a
    header of every key in first-seen order, empty cells for missing keys and None. TSV: the
    same columns without quoting; tabs and line breaks inside values become spaces, so each
    record stays one line for ``cut``/``awk``. Lists and dicts in CSV/TSV cells are JSON.
    The file is written atomically (``fsutil``), so an interrupted run never leaves half a
    report.
    """
    path = Path(path)
    fmt = report_format(path)
    if fmt == "html":
        raise ConfigError(f"{path}: an HTML report is written by html_report, not write_report")
    records = [r.to_row() if isinstance(r, UtteranceScore) else dict(r) for r in rows]
    with atomic_file(path) as f:
        if fmt == "jsonl":
            for record in records:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
        else:
            _write_table(f, records, fmt)


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

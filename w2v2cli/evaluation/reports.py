"""Per-utterance reports (``eval --report``): JSON Lines, CSV or TSV by file extension."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TextIO

from ..errors import ConfigError
from ..fsutil import atomic_file
from .scoring import UtteranceScore

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
    The file is written atomically (``fsutil``), so an interrupted run never leaves half a
    report.
    """
    path = Path(path)
    fmt = report_format(path)
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

"""Evaluation manifests: which audio files to score, against which reference texts.

``load_manifest(path)`` reads one of three formats, chosen automatically:

* **JSON lines, NeMo style** (``.json``/``.jsonl``, or any file whose content starts with
  ``{``): one object per line with ``audio_filepath`` and ``text`` (strings) and an optional
  ``duration`` (seconds). Other keys (``lang``, ``speaker``...) are ignored, except
  ``offset``: a non-zero offset means "a segment of a longer file", which this tool does not
  cut, so it is refused rather than silently scoring the whole file against a segment's text.
* **Delimited text with a header row** (``.tsv`` → tab, ``.csv`` → comma, anything else →
  ``csv.Sniffer``): an audio column named ``path`` or ``audio_filepath``, a text column named
  ``text`` or ``transcript`` (header names are case-insensitive), optional ``duration``.
  TSV is read literally, without quoting, as Kaldi- and Common-Voice-style files are written
  (a ``"`` in a transcript is just a character); CSV follows RFC 4180 quoting.
* **A folder** of audio files, searched recursively, each with a same-stem ``.txt`` next to
  it holding its reference (``a/b.wav`` ↔ ``a/b.txt``). An audio file without one is an
  error naming it: silently skipping it would score a different test set than the user
  thinks. Hidden files and folders (``.*``, e.g. macOS ``._x.wav``) are ignored.

Decisions, with reasons:

* Relative audio paths resolve against the manifest's folder (as NeMo does), so a manifest
  and its audio can move together; absolute paths are kept.
* Empty ``text`` is allowed: silence/noise-only utterances are legitimate test items; the
  scorer counts every hypothesis word of such an utterance as an insertion.
* A line that cannot be understood (bad JSON, a missing or mistyped field, a wrong column
  count, an empty audio path) raises ``ManifestError`` naming the file and the line, before
  any model work starts. Blank lines are skipped; a UTF-8 byte order mark is tolerated.
* Missing audio files are *not* errors here: the eval run reports, counts and leaves them
  out, so one missing file does not cost a whole run.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

from ..discovery import AUDIO_EXTENSIONS  # one list, so eval folders match transcribe's
from ..errors import ManifestError

AUDIO_COLUMNS = ("path", "audio_filepath")
TEXT_COLUMNS = ("text", "transcript")


@dataclass(frozen=True)
class ManifestEntry:
    """One utterance to score.

    ``line`` is the 1-based line the entry starts on (0 for folder manifests, where entries
    come from files, not lines), so later messages can point back at it. ``audio`` is
    already resolved against the manifest's folder. ``duration`` is what the manifest says
    (None when it says nothing); the real duration comes from decoding.
    """

    line: int
    audio: Path
    text: str
    duration: float | None = None


@dataclass(frozen=True)
class Manifest:
    """The entries of one manifest, in file order (folder manifests: sorted by path)."""

    entries: tuple[ManifestEntry, ...]
    base_dir: Path

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[ManifestEntry]:
        return iter(self.entries)

    def entry_id(self, entry: ManifestEntry) -> str:
        """A short, stable name for reports: the audio path relative to ``base_dir``
        (POSIX style) when it lies under it, else the path as resolved."""
        try:
            return entry.audio.relative_to(self.base_dir).as_posix()
        except ValueError:
            return entry.audio.as_posix()


def load_manifest(path: str | Path) -> Manifest:
    """Read a manifest file or folder; see the module docstring for formats and rules.

    Raises ``ManifestError`` for anything that would make the evaluation meaningless:
    unreadable files, broken lines, folders with unreferenced audio, no entries at all.
    """
    path = Path(path)
    if path.is_dir():
        entries = _load_folder(path)
        base_dir = path
    elif path.is_file():
        base_dir = path.parent
        text = _read_text(path)
        fmt = _detect_format(path, text)
        if fmt == "jsonl":
            entries = _load_jsonl(path, text, base_dir)
        else:
            entries = _load_delimited(path, text, base_dir, fmt)
    else:
        raise ManifestError(path, None, "no such file or folder")
    if not entries:
        raise ManifestError(path, None, "no entries")
    return Manifest(entries=tuple(entries), base_dir=base_dir)


# --- reading and format detection ------------------------------------------------------


def _read_text(path: Path) -> str:
    """Decode as UTF-8, dropping a BOM; a decoding error names the line it is on."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ManifestError(path, None, f"cannot read: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ManifestError(path, line, "not UTF-8 text") from None


def _detect_format(path: Path, text: str) -> str:
    """``jsonl``, ``tsv``, ``csv`` or ``sniff``: extension first, then the content."""
    suffix = path.suffix.lower()
    if suffix in (".json", ".jsonl"):
        return "jsonl"
    if suffix in (".tsv", ".csv"):
        return suffix[1:]
    if text.lstrip().startswith("{"):
        return "jsonl"
    return "sniff"


def _resolve(base_dir: Path, value: str) -> Path:
    """Relative paths are relative to the manifest's folder; absolute ones stay."""
    p = Path(value)
    return p if p.is_absolute() else base_dir / p


def _parse_duration(value: object, path: Path, line: int) -> float | None:
    """None, or a finite number of seconds ≥ 0 (a string is accepted from CSV/TSV cells)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ManifestError(path, line, f"duration must be a number, not {value!r}")
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ManifestError(path, line, f"duration must be a number, not {value!r}") from None
    if not isinstance(value, (int, float)):
        raise ManifestError(path, line, f"duration must be a number, not {value!r}")
    seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0:
        raise ManifestError(path, line, f"duration must be a finite number ≥ 0, not {value!r}")
    return seconds


# --- JSON lines --------------------------------------------------------------------------


def _load_jsonl(path: Path, text: str, base_dir: Path) -> list[ManifestEntry]:
    entries = []
    run_manifest = False
    # Split on "\n" only: str.splitlines would also split on U+2028 and friends, which
    # JSON allows unescaped inside strings.
    for number, raw in enumerate(text.split("\n"), start=1):
        stripped = raw.strip()
        if not stripped:
            continue
        if number == 1 and stripped.startswith("["):
            raise ManifestError(
                path, number, "a JSON array; expected one JSON object per line (NeMo style)"
            )
        try:
            obj = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise ManifestError(path, number, f"invalid JSON: {exc.msg}") from None
        if not isinstance(obj, dict):
            raise ManifestError(path, number, "expected a JSON object")
        if obj.get("status", "done") != "done":
            continue  # a run manifest's failed or skipped input (scale/manifest.py)
        entries.append(_entry_from_json(obj, path, number, base_dir))
        if "status" in obj:
            run_manifest = True
    if run_manifest:  # a file done again (--overwrite) counts once: its last line
        last = {e.audio: e for e in entries}
        entries = [e for e in entries if last[e.audio] is e]
    return entries


def _entry_from_json(obj: dict, path: Path, line: int, base_dir: Path) -> ManifestEntry:
    for key in ("audio_filepath", "text"):
        if key not in obj:
            raise ManifestError(path, line, f"missing field {key!r}")
        if not isinstance(obj[key], str):
            raise ManifestError(path, line, f"field {key!r} must be a string")
    audio = obj["audio_filepath"].strip()
    if not audio:
        raise ManifestError(path, line, "empty 'audio_filepath'")
    offset = obj.get("offset")
    if offset not in (None, 0, 0.0):
        raise ManifestError(
            path, line, "field 'offset' (a segment of a longer file) is not supported"
        )
    return ManifestEntry(
        line=line,
        audio=_resolve(base_dir, audio),
        text=obj["text"],
        duration=_parse_duration(obj.get("duration"), path, line),
    )


# --- TSV / CSV ---------------------------------------------------------------------------


def _load_delimited(path: Path, text: str, base_dir: Path, fmt: str) -> list[ManifestEntry]:
    if fmt == "tsv":
        reader = csv.reader(io.StringIO(text), delimiter="\t", quoting=csv.QUOTE_NONE)
    elif fmt == "csv":
        reader = csv.reader(io.StringIO(text))
    else:
        sample = "\n".join(text.splitlines()[:20])
        try:
            dialect = csv.Sniffer().sniff(sample, delimiters=",\t;|")
        except csv.Error:
            raise ManifestError(
                path,
                None,
                "cannot tell the format: not JSON lines, and no delimiter found "
                "(name it .jsonl, .tsv or .csv)",
            ) from None
        reader = csv.reader(io.StringIO(text), dialect)

    rows = _numbered_rows(reader, path)
    header_line, header = next(rows, (0, None))
    if header is None:
        return []
    names = [h.strip().lower() for h in header]
    audio_col = _pick_column(names, AUDIO_COLUMNS, path, header_line)
    text_col = _pick_column(names, TEXT_COLUMNS, path, header_line)
    duration_col = names.index("duration") if "duration" in names else None

    entries = []
    for line, row in rows:
        if len(row) != len(names):
            raise ManifestError(
                path, line, f"expected {len(names)} columns (as in the header), found {len(row)}"
            )
        audio = row[audio_col].strip()
        if not audio:
            raise ManifestError(path, line, f"empty {names[audio_col]!r}")
        duration = None
        if duration_col is not None:
            duration = _parse_duration(row[duration_col].strip(), path, line)
        entries.append(
            ManifestEntry(
                line=line, audio=_resolve(base_dir, audio), text=row[text_col], duration=duration
            )
        )
    return entries


def _numbered_rows(reader: Any, path: Path) -> Iterator[tuple[int, list[str]]]:
    """Non-blank rows with the line each starts on (a quoted CSV field may span lines)."""
    end_of_previous = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise ManifestError(path, end_of_previous + 1, f"cannot parse: {exc}") from None
        start = end_of_previous + 1
        end_of_previous = reader.line_num
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        yield start, row


def _pick_column(names: list[str], wanted: tuple[str, ...], path: Path, line: int) -> int:
    found = [name for name in wanted if name in names]
    if not found:
        options = " or ".join(repr(w) for w in wanted)
        raise ManifestError(path, line, f"no {options} column in the header")
    if len(found) > 1:
        raise ManifestError(
            path, line, f"both {found[0]!r} and {found[1]!r} columns; keep only one"
        )
    return names.index(found[0])


# --- folder of audio + .txt --------------------------------------------------------------


def _load_folder(folder: Path) -> list[ManifestEntry]:
    audio_files = sorted(
        (
            p
            for p in folder.rglob("*")
            if p.suffix.lower().lstrip(".") in AUDIO_EXTENSIONS
            and not _is_hidden(p.relative_to(folder))
            and p.is_file()
        ),
        key=lambda p: p.relative_to(folder).as_posix(),
    )
    entries = []
    unreferenced = []
    for audio in audio_files:
        ref = audio.with_suffix(".txt")
        if not ref.is_file():
            unreferenced.append(audio.relative_to(folder).as_posix())
            continue
        entries.append(ManifestEntry(line=0, audio=audio, text=_read_text(ref).strip()))
    if unreferenced:
        shown = ", ".join(unreferenced[:5])
        more = f" and {len(unreferenced) - 5} more" if len(unreferenced) > 5 else ""
        noun = "file has" if len(unreferenced) == 1 else "files have"
        raise ManifestError(
            folder,
            None,
            f"{len(unreferenced)} audio {noun} no same-name .txt reference: {shown}{more}",
        )
    return entries


def _is_hidden(relative: PurePath) -> bool:
    return any(part.startswith(".") for part in relative.parts)

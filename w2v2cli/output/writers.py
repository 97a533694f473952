"""Output writers: one small class per format over a shared base, and a registry.

The base class owns the output path (``out_base`` + ``.`` + extension), casing (applied
to a copy of the transcript) and atomic writing (``fsutil``); subclasses only turn a ``Transcript``
into text. SRT and VTT share one segmenter (``segmenter.segment``) and differ in a few
attributes. Writers never compute timings: word times come from the decoder, cue times
from the segmenter.

Format decisions, written down where they are made:

- Files are UTF-8 with ``\\n`` line ends on every platform (``newline=""``), so the
  bytes written to a file and to ``--stdout`` are the same. With several inputs on one
  stream, each result follows a ``==> path <==`` line, except JSON, which becomes JSON
  Lines (one compact object per file).
- ``txt``: the transcript text and a newline; an empty transcript gives an empty file.
- ``json``: the versioned schema ``w2v2cli.transcript/1`` (see ``JsonWriter``); times in
  seconds rounded to milliseconds, confidences to 4 decimals.
- ``srt``: 1-based cue numbers, ``HH:MM:SS,mmm``; ``vtt``: a ``WEBVTT`` header,
  ``HH:MM:SS.mmm``, and ``&``, ``<``, ``>`` escaped as the WebVTT spec requires.
  In both, ``-->`` inside text becomes ``->`` so it cannot be read as a timing line.
- ``tsv``: a ``start<TAB>end<TAB>text`` header, then one row per cue with times in integer
  milliseconds: no decimal separator at all, so no locale can turn ``1.5`` into ``1,5``
  when the file is opened in a spreadsheet (the same choice as openai/whisper). Cue lines
  are joined with a space, and tabs in text become spaces.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar, TextIO

from ..errors import ConfigError
from ..fsutil import atomic_file
from ..options import FORMATS, SubtitleOptions
from ..records import AudioItem, Cue, Transcript, Word
from .casing import apply_case, check_case
from .segmenter import segment

JSON_SCHEMA = "w2v2cli.transcript/1"

#: ``Writer.cues``'s last result: (words, options, duration, cues).
_LAST_CUES: tuple[tuple[Word, ...], SubtitleOptions, float, tuple[Cue, ...]] | None = None


def format_timestamp(seconds: float, decimal_marker: str = ".") -> str:
    """``HH:MM:SS<marker>mmm`` from seconds (hours grow past 99 if they must)."""
    total = max(0, int(round(seconds * 1000)))
    hours, rest = divmod(total, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal_marker}{millis:03d}"


class Writer:
    """Base class: path, casing and atomic writes. Subclasses set ``extension`` and
    implement ``format``."""

    extension: ClassVar[str] = ""

    def __init__(self, subtitle_options: SubtitleOptions | None = None, case: str = "keep"):
        self.subtitle_options = subtitle_options or SubtitleOptions()
        self.case = check_case(case)

    def format(self, transcript: Transcript, item: AudioItem) -> str:
        """The whole output for one file, as text. Subclasses implement this only."""
        raise NotImplementedError

    def output_path(self, item: AudioItem) -> Path:
        return item.out_base.with_name(f"{item.out_base.name}.{self.extension}")

    def render(self, transcript: Transcript, item: AudioItem) -> str:
        """``format`` applied to a cased copy of ``transcript``."""
        return self.format(apply_case(transcript, self.case), item)

    def cues(self, transcript: Transcript) -> tuple[Cue, ...]:
        """The transcript's subtitle cues (``segmenter.segment``). The last result is kept:
        a file written as JSON and SRT (and VTT, TSV) is segmented once, not per format."""
        global _LAST_CUES
        words, options, duration = transcript.words, self.subtitle_options, transcript.duration
        last = _LAST_CUES
        if last is not None and last[0] is words and last[1] == options and last[2] == duration:
            return last[3]
        cues = segment(words, options, duration)
        _LAST_CUES = (words, options, duration, cues)  # holds ``words``: its id stays unique
        return cues

    def write(self, transcript: Transcript, item: AudioItem) -> Path:
        """Write the output file atomically (``fsutil.atomic_file``) and return its path.

        The text is formatted first, so a formatting failure writes nothing. A failure at
        any step leaves any existing file untouched and no temporary file behind. Whether
        an existing file may be replaced is the caller's decision.
        """
        return self.write_text(self.render(transcript, item), item)

    def write_text(self, text: str, item: AudioItem) -> Path:
        """Write ``text`` (this writer's ``render`` of a transcript, made elsewhere: in a
        decode worker) as ``write`` does."""
        path = self.output_path(item)
        with atomic_file(path) as handle:
            handle.write(text)
        return path

    def write_stream(
        self, transcript: Transcript, item: AudioItem, stream: TextIO, header: bool = False
    ) -> None:
        """Write the same text as ``write`` to an open text stream (``--stdout``).

        ``header=True`` (several inputs on one stream) puts a ``==> path <==`` line before
        the output, as ``head`` and ``tail`` do, so the results can be told apart.
        """
        stream.write(self.stream_text(transcript, item, header))

    def stream_text(self, transcript: Transcript, item: AudioItem, header: bool = False) -> str:
        text = self.render(transcript, item)
        return f"==> {item.path} <==\n{text}" if header else text


class TxtWriter(Writer):
    extension = "txt"

    def format(self, transcript: Transcript, item: AudioItem) -> str:
        return f"{transcript.text}\n" if transcript.text else ""


_encode_string = json.encoder.encode_basestring  # C; non-ASCII kept, as ensure_ascii=False
_SCALAR_TYPES = frozenset((str, int, float, bool, type(None)))


def _not_json(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# ``json``'s C encoder, made once (``json.dumps`` makes one per call, and with an indent
# uses its pure-Python encoder instead), with an item separator that cannot occur in its
# output otherwise: control characters inside strings are always escaped. Arguments:
# markers, default, encoder, indent, key separator, item separator, sort_keys, skipkeys,
# allow_nan.
_c_encoder = json.encoder.c_make_encoder  # type: ignore[attr-defined]
_encode_flat = (
    None
    if _c_encoder is None
    else _c_encoder(None, _not_json, _encode_string, None, ": ", "\x00", False, False, True)
)


def _json_float(value: float) -> str:
    if value != value:
        return "NaN"
    if value in (math.inf, -math.inf):
        return "Infinity" if value > 0 else "-Infinity"
    return float.__repr__(value)


def _flat_objects(items: list[Any]) -> bool:
    """Whether ``items`` are all non-empty objects of plain scalars (words, cues)."""
    return all(
        type(item) is dict and item and all(type(v) in _SCALAR_TYPES for v in item.values())
        for item in items
    )


def _json_value(value: Any, newline: str) -> str:
    if isinstance(value, str):
        return _encode_string(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        return _json_float(value)
    inner = newline + "  "
    if isinstance(value, dict):
        if not value:
            return "{}"
        members = [f"{_encode_string(k)}: {_json_value(v, inner)}" for k, v in value.items()]
        return "{" + inner + ("," + inner).join(members) + newline + "}"
    if isinstance(value, (list, tuple)):
        if not value:
            return "[]"
        if _encode_flat is not None and type(value) is list and _flat_objects(value):
            # One C call for the whole list: "[{a\0b}\0{c}]"; "}\0{" occurs only between
            # objects (a value never ends in "}": strings end in a quote), the other
            # separators are inside them.
            member = inner + "  "
            body = "".join(_encode_flat(value, 0))[2:-2]
            body = body.replace("}\x00{", "\x01").replace("\x00", "," + member)
            body = body.replace("\x01", inner + "}," + inner + "{" + member)
            return "[" + inner + "{" + member + body + inner + "}" + newline + "]"
        items = [_json_value(v, inner) for v in value]
        return "[" + inner + ("," + inner).join(items) + newline + "]"
    return _not_json(value)


def pretty_json(document: dict[str, Any]) -> str:
    """``json.dumps(document, ensure_ascii=False, indent=2)``, character for character, in
    a fraction of its time: with an indent, ``json`` uses its pure-Python encoder, whose
    generators cost more per word than decoding the word did; here a list of flat objects
    (the words, the cues) is one call of its C encoder. String keys, strings, numbers,
    booleans, None, lists and dicts only (all a transcript document holds)."""
    return _json_value(document, "\n")


def _round_confidence(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


class JsonWriter(Writer):
    """Schema ``w2v2cli.transcript/1``::

        {"schema": "w2v2cli.transcript/1", "file": str, "text": str, "duration": float,
         "model": str, "decoder": str, "confidence": float | null,
         "words": [{"text", "start", "end", "confidence"}],
         "cues": [{"start", "end", "text"}]}

    Times are seconds rounded to ms; cue ``text`` joins the cue's lines with ``\\n``. A
    change to the meaning of a key gets a new schema version; new keys may be added.
    ``w2v2 align`` adds ``"score"`` (the match score of the text, 0..1) and, on every
    word, ``"interpolated"``: true for a word the model cannot spell, whose times come from
    its neighbours and whose ``confidence`` is null.
    """

    extension = "json"

    def document(self, transcript: Transcript, item: AudioItem) -> dict[str, Any]:
        document: dict[str, Any] = {
            "schema": JSON_SCHEMA,
            "file": str(item.path),
            "text": transcript.text,
            "duration": round(float(transcript.duration), 3),
            "model": transcript.model,
            "decoder": transcript.decoder,
            "confidence": _round_confidence(transcript.confidence),
        }
        if transcript.score is not None:  # forced alignment: how well the text matches
            document["score"] = _round_confidence(transcript.score)
        document["words"] = [self._word(w) for w in transcript.words]
        document["cues"] = [
            {"start": round(c.start, 3), "end": round(c.end, 3), "text": c.text}
            for c in self.cues(transcript)
        ]
        return document

    @staticmethod
    def _word(w: Word) -> dict[str, Any]:
        word: dict[str, Any] = {
            "text": w.text,
            "start": round(w.start, 3),
            "end": round(w.end, 3),
            "confidence": None if w.interpolated else _round_confidence(w.confidence),
        }
        if w.interpolated is not None:  # forced alignment: times from the neighbours
            word["interpolated"] = w.interpolated
        return word

    def format(self, transcript: Transcript, item: AudioItem) -> str:
        return pretty_json(self.document(transcript, item)) + "\n"

    def stream_text(self, transcript: Transcript, item: AudioItem, header: bool = False) -> str:
        """With several inputs on one stream, JSON Lines: one compact object per line, no
        header line (each object names its ``file``)."""
        if not header:
            return self.render(transcript, item)
        document = self.document(apply_case(transcript, self.case), item)
        return json.dumps(document, ensure_ascii=False, separators=(",", ":")) + "\n"


class SubtitlesWriter(Writer):
    """SRT and VTT: the same cues, differing in header, numbering and time format."""

    header: ClassVar[str] = ""
    decimal_marker: ClassVar[str] = "."
    numbered: ClassVar[bool] = False

    def escape(self, line: str) -> str:
        return line.replace("-->", "->")

    def format(self, transcript: Transcript, item: AudioItem) -> str:
        blocks = [self.header] if self.header else []
        for index, cue in enumerate(self.cues(transcript), start=1):
            start = format_timestamp(cue.start, self.decimal_marker)
            end = format_timestamp(cue.end, self.decimal_marker)
            lines = [str(index)] if self.numbered else []
            lines.append(f"{start} --> {end}")
            lines.extend(self.escape(line) for line in cue.lines)
            blocks.append("\n".join(lines) + "\n")
        return "\n".join(blocks)


class SrtWriter(SubtitlesWriter):
    extension = "srt"
    decimal_marker = ","
    numbered = True


class VttWriter(SubtitlesWriter):
    extension = "vtt"
    header = "WEBVTT\n"

    def escape(self, line: str) -> str:
        line = super().escape(line)
        return line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class TsvWriter(Writer):
    extension = "tsv"

    def format(self, transcript: Transcript, item: AudioItem) -> str:
        rows = ["start\tend\ttext"]
        for cue in self.cues(transcript):
            text = " ".join(cue.lines).replace("\t", " ")
            rows.append(f"{round(cue.start * 1000)}\t{round(cue.end * 1000)}\t{text}")
        return "\n".join(rows) + "\n"


WRITERS: dict[str, type[Writer]] = {  # one class per name in options.FORMATS
    "txt": TxtWriter,
    "json": JsonWriter,
    "srt": SrtWriter,
    "vtt": VttWriter,
    "tsv": TsvWriter,
}


def get_writers(
    formats: Iterable[str],
    subtitle_options: SubtitleOptions | None = None,
    case: str = "keep",
) -> list[Writer]:
    """One writer per format, in the order given, duplicates dropped.

    ``"all"`` expands to every format (the CLI may expand it first; both work). Unknown
    formats and case modes raise ``ConfigError``.
    """
    check_case(case)
    names: list[str] = []
    for name in formats:
        for expanded in WRITERS if name == "all" else (name,):
            if expanded not in WRITERS:
                raise ConfigError(
                    f"unknown format {expanded!r}; choose from {', '.join(WRITERS)} or all"
                )
            if expanded not in names:
                names.append(expanded)
    return [WRITERS[name](subtitle_options, case) for name in names]


def expand_formats(formats: Iterable[str]) -> tuple[str, ...]:
    """``all`` → every format; duplicates removed, order kept."""
    out: list[str] = []
    for f in formats:
        for g in FORMATS if f == "all" else (f,):
            if g not in out:
                out.append(g)
    return tuple(out)

"""Writers: each format read back by an independent parser, atomic writes, stdout bytes."""

from __future__ import annotations

import io
import json
import os
from datetime import timedelta
from pathlib import Path

import av
import pytest
import srt
import webvtt

from w2v2cli.errors import ConfigError
from w2v2cli.options import FORMATS, SubtitleOptions
from w2v2cli.output.segmenter import segment
from w2v2cli.output.writers import (
    JSON_SCHEMA,
    WRITERS,
    JsonWriter,
    SrtWriter,
    TsvWriter,
    TxtWriter,
    VttWriter,
    Writer,
    format_timestamp,
    get_writers,
)
from w2v2cli.records import AudioItem, Transcript, Word

OPTS = SubtitleOptions(max_line_chars=16, max_lines=2, pause=0.8)


def transcript() -> Transcript:
    text = "HELLO WORLD THIS IS A TEST OF SUBTITLES AND I THINK IT WORKS WELL"
    words, t = [], 0.52
    for i, w in enumerate(text.split()):
        if i == 8:
            t += 1.5  # a pause: a new cue
        words.append(Word(w, round(t, 3), round(t + 0.3, 3), 0.8 + i / 100))
        t += 0.4
    return Transcript(
        text=text,
        words=tuple(words),
        duration=9.0,
        confidence=0.85,
        model="tiny-model",
        decoder="greedy",
    )


@pytest.fixture
def item(tmp_path: Path) -> AudioItem:
    return AudioItem(tmp_path / "in" / "talk.wav", "talk.wav", tmp_path / "out" / "sub" / "talk")


def test_registry_matches_options_formats() -> None:
    assert tuple(WRITERS) == FORMATS
    assert {cls.extension for cls in WRITERS.values()} == set(FORMATS)


def test_get_writers() -> None:
    writers = get_writers(["srt", "txt", "srt"], OPTS, "lower")
    assert [type(w) for w in writers] == [SrtWriter, TxtWriter]
    assert all(w.case == "lower" and w.subtitle_options is OPTS for w in writers)
    assert [w.extension for w in get_writers(["all"])] == list(FORMATS)
    with pytest.raises(ConfigError, match="unknown format"):
        get_writers(["docx"])
    with pytest.raises(ConfigError, match="case"):
        get_writers(["txt"], case="upper")


def test_format_timestamp() -> None:
    assert format_timestamp(0) == "00:00:00.000"
    assert format_timestamp(3725.4567, ",") == "01:02:05,457"
    assert format_timestamp(100 * 3600 + 0.0004) == "100:00:00.000"


def test_output_path(item: AudioItem) -> None:
    assert SrtWriter().output_path(item) == item.out_base.parent / "talk.srt"
    odd = AudioItem(Path("a.b.wav"), "a.b.wav", Path("out/a.b"))
    assert JsonWriter().output_path(odd) == Path("out/a.b.json")


def test_txt(item: AudioItem) -> None:
    path = TxtWriter().write(transcript(), item)
    assert path.read_bytes() == (transcript().text + "\n").encode()
    empty = Transcript("", (), 1.0)
    assert TxtWriter().format(empty, item) == ""


def test_srt_read_back_with_srt_and_pyav(item: AudioItem) -> None:
    t = transcript()
    path = SrtWriter(OPTS).write(t, item)
    cues = segment(t.words, OPTS, t.duration)
    subs = list(srt.parse(path.read_text(encoding="utf-8")))
    assert len(subs) == len(cues) >= 3
    for sub, cue, index in zip(subs, cues, range(1, len(cues) + 1), strict=True):
        assert sub.index == index
        assert sub.start == timedelta(milliseconds=round(cue.start * 1000))
        assert sub.end == timedelta(milliseconds=round(cue.end * 1000))
        assert sub.content == cue.text
        assert all(len(line) <= 16 for line in sub.content.split("\n"))
    assert " ".join(s.content.replace("\n", " ") for s in subs) == t.text
    assert "," in path.read_text().splitlines()[1]

    # PyAV (FFmpeg's SRT demuxer) sees a subtitle stream whose packets decode.
    with av.open(str(path)) as container:
        assert container.format.name == "srt"
        stream = container.streams.subtitles[0]
        got = []
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            for sub in packet.decode():
                got.append((packet.pts, sub.dialogue.decode("utf-8")))
    assert got == [(round(c.start * 1000), c.text) for c in cues]


def test_vtt_read_back(item: AudioItem) -> None:
    t = transcript()
    path = VttWriter(OPTS).write(t, item)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("WEBVTT\n\n")
    cues = segment(t.words, OPTS, t.duration)
    captions = webvtt.from_string(text).captions
    assert len(captions) == len(cues)
    for cap, cue in zip(captions, cues, strict=True):
        assert cap.start == format_timestamp(cue.start)
        assert cap.end == format_timestamp(cue.end)
        assert cap.text == cue.text
    assert [c.text for c in webvtt.read(str(path)).captions] == [c.text for c in cues]
    with av.open(str(path)) as container:
        assert container.streams.subtitles


def test_srt_and_vtt_differ_only_in_a_few_attributes(item: AudioItem) -> None:
    t = transcript()
    srt_text = SrtWriter(OPTS).format(t, item)
    vtt_text = VttWriter(OPTS).format(t, item)
    srt_blocks = [b.split("\n", 1)[1] for b in srt_text.strip().split("\n\n")]
    vtt_blocks = vtt_text.strip().split("\n\n")[1:]
    assert [b.replace(",", ".") for b in srt_blocks] == vtt_blocks


def test_subtitle_escaping(item: AudioItem) -> None:
    t = Transcript(
        "A --> B&C <D>",
        (
            Word("A", 0, 0.5, 1),
            Word("-->", 0.5, 1, 1),
            Word("B&C", 1, 1.5, 1),
            Word("<D>", 1.5, 2, 1),
        ),
        3.0,
    )
    assert "-->" not in SrtWriter().format(t, item).split("\n", 2)[2]
    vtt = VttWriter().format(t, item)
    assert "A -&gt; B&amp;C &lt;D&gt;" in vtt
    assert len(webvtt.from_string(vtt).captions) == 1


def test_empty_subtitles(item: AudioItem) -> None:
    empty = Transcript("", (), 5.0)
    assert SrtWriter().format(empty, item) == ""
    assert VttWriter().format(empty, item) == "WEBVTT\n"
    assert webvtt.from_string(VttWriter().format(empty, item)).captions == []
    assert TsvWriter().format(empty, item) == "start\tend\ttext\n"


def test_json_schema(item: AudioItem) -> None:
    t = transcript()
    path = JsonWriter(OPTS).write(t, item)
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert set(doc) == {
        "schema",
        "file",
        "text",
        "duration",
        "model",
        "decoder",
        "confidence",
        "words",
        "cues",
    }
    assert doc["schema"] == JSON_SCHEMA == "w2v2cli.transcript/1"
    assert doc["file"] == str(item.path)
    assert doc["text"] == t.text and doc["model"] == "tiny-model" and doc["decoder"] == "greedy"
    assert doc["duration"] == 9.0 and doc["confidence"] == 0.85
    assert len(doc["words"]) == len(t.words)
    for got, want in zip(doc["words"], t.words, strict=True):
        assert set(got) == {"text", "start", "end", "confidence"}
        assert got["text"] == want.text
        assert got["start"] == round(want.start, 3) and got["end"] == round(want.end, 3)
        assert isinstance(got["confidence"], float)
    cues = segment(t.words, OPTS, t.duration)
    assert doc["cues"] == [{"start": c.start, "end": c.end, "text": c.text} for c in cues]
    for value in [doc["duration"]] + [w["start"] for w in doc["words"]]:
        assert round(value, 3) == value
    empty = json.loads(JsonWriter().format(Transcript("", (), 1.0), item))
    assert empty["confidence"] is None and empty["words"] == [] and empty["cues"] == []


def test_tsv_integer_milliseconds(item: AudioItem) -> None:
    t = transcript()
    path = TsvWriter(OPTS).write(t, item)
    rows = path.read_text(encoding="utf-8").splitlines()
    assert rows[0] == "start\tend\ttext"
    cues = segment(t.words, OPTS, t.duration)
    assert len(rows) == len(cues) + 1
    for row, cue in zip(rows[1:], cues, strict=True):
        start, end, text = row.split("\t")
        assert start.isdigit() and end.isdigit()
        assert int(start) == round(cue.start * 1000) and int(end) == round(cue.end * 1000)
        assert text == " ".join(cue.lines)
    assert rows[1].startswith("520\t")


def test_case_is_applied_to_a_copy(item: AudioItem) -> None:
    t = transcript()
    text = TxtWriter(OPTS, case="sentence").render(t, item)
    assert text == "Hello world this is a test of subtitles and I think it works well\n"
    srt_text = SrtWriter(OPTS, case="lower").render(t, item)
    assert "hello world" in srt_text and "HELLO" not in srt_text
    assert t.text.isupper() and t.words[0].text == "HELLO"  # the original is untouched


class Boom(TxtWriter):
    def format(self, transcript: Transcript, item: AudioItem) -> str:
        raise RuntimeError("formatting failed")


def test_atomic_write(item: AudioItem, monkeypatch: pytest.MonkeyPatch) -> None:
    t = transcript()
    path = TxtWriter().write(t, item)
    folder = path.parent
    assert sorted(p.name for p in folder.iterdir()) == ["talk.txt"]
    path.write_text("old contents\n")
    with pytest.raises(RuntimeError):
        Boom().write(t, item)
    assert path.read_text() == "old contents\n"
    assert sorted(p.name for p in folder.iterdir()) == ["talk.txt"]

    # A failure after the temporary file exists removes it and keeps the old file.
    def failing_replace(src: str, dst: str) -> None:
        raise OSError("replace failed")

    monkeypatch.setattr("w2v2cli.fsutil.os.replace", failing_replace)
    with pytest.raises(OSError, match="replace failed"):
        TxtWriter().write(t, item)
    monkeypatch.undo()
    assert path.read_text() == "old contents\n"
    assert sorted(p.name for p in folder.iterdir()) == ["talk.txt"]
    # And a successful write replaces it.
    TxtWriter().write(t, item)
    assert path.read_text() == t.text + "\n"
    assert sorted(p.name for p in folder.iterdir()) == ["talk.txt"]


def test_written_files_are_not_private(item: AudioItem) -> None:
    path = TxtWriter().write(transcript(), item)
    umask = os.umask(0o022)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize("fmt", FORMATS)
def test_stream_writes_the_same_bytes_as_the_file(item: AudioItem, fmt: str) -> None:
    t = Transcript(
        "ÇA VA À L'ÉCOLE",
        tuple(
            Word(w, i * 0.5, i * 0.5 + 0.4, 0.9) for i, w in enumerate("ÇA VA À L'ÉCOLE".split())
        ),
        3.0,
        0.9,
    )
    (writer,) = get_writers([fmt], OPTS, "sentence")
    path = writer.write(t, item)
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="utf-8", newline="")
    writer.write_stream(t, item, stream)
    stream.flush()
    assert raw.getvalue() == path.read_bytes()


def test_stream_header_for_several_inputs(item: AudioItem) -> None:
    t = transcript()
    out = io.StringIO()
    TxtWriter().write_stream(t, item, out, header=True)
    assert out.getvalue() == f"==> {item.path} <==\n{t.text}\n"
    out = io.StringIO()
    JsonWriter(OPTS).write_stream(t, item, out, header=True)
    JsonWriter(OPTS).write_stream(t, item, out, header=True)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and all(json.loads(line)["file"] == str(item.path) for line in lines)


def test_base_writer_is_abstract(item: AudioItem) -> None:
    with pytest.raises(NotImplementedError):
        Writer().format(transcript(), item)


def test_a_file_is_segmented_once_for_all_its_formats(item: AudioItem, monkeypatch) -> None:
    """JSON, SRT, VTT and TSV of one transcript share one segmentation; another transcript,
    or other options, is segmented afresh (its cues are never the last file's)."""
    import w2v2cli.output.writers as writers_module

    calls: list[int] = []
    real = writers_module.segment

    def counting(words, options, duration):
        calls.append(len(words))
        return real(words, options, duration)

    monkeypatch.setattr(writers_module, "segment", counting)
    monkeypatch.setattr(writers_module, "_LAST_CUES", None)
    a = transcript()
    b = Transcript(
        text="ONE MORE",
        words=(Word("ONE", 0.1, 0.4, 0.9), Word("MORE", 0.5, 0.9, 0.9)),
        duration=9.0,
        confidence=0.9,
        model="m",
        decoder="greedy",
    )
    formats = [JsonWriter(OPTS), SrtWriter(OPTS), VttWriter(OPTS), TsvWriter(OPTS)]
    first = [w.render(a, item) for w in formats]
    assert len(calls) == 1
    other = [w.render(b, item) for w in formats]
    assert len(calls) == 2
    again = [w.render(a, item) for w in formats]
    assert len(calls) == 3 and again == first and other != first
    SrtWriter(SubtitleOptions(max_line_chars=30)).render(a, item)  # other options
    assert len(calls) == 4
    # The same texts as with no sharing at all:
    monkeypatch.setattr(writers_module, "_LAST_CUES", None)
    assert other[1] == SrtWriter(OPTS).format(b, item)
    monkeypatch.setattr(writers_module, "_LAST_CUES", None)
    assert first[1] == SrtWriter(OPTS).format(a, item)


def test_pretty_json_is_json_dumps_with_an_indent():
    """The JSON writer's own encoder (``writers.pretty_json``) gives what
    ``json.dumps(doc, ensure_ascii=False, indent=2)`` gives, character for character, on
    random documents: nested objects and lists, lists of flat objects (its fast path),
    empty ones, strings with quotes, braces, control characters and non-ASCII text, NaN and
    infinities, booleans and None."""
    import json
    import random

    from w2v2cli.output.writers import pretty_json

    rng = random.Random(7)
    texts = ["", 'ÄÖ "q" \\ \n\t\u2028 ▁x {}[],:', "é" * 3, "\x00\x1f", "}", "{", "a}", "\x01"]

    def scalar():
        numbers = [rng.randint(-(10**6), 10**6), rng.random() * 1e3, round(rng.random(), 3)]
        special = [float("nan"), float("inf"), -float("inf"), 1e-7, 1e22, -0.0]
        return rng.choice([None, True, False, *numbers, *special, *texts])

    def value(depth=0):
        r = rng.random()
        if depth > 3 or r < 0.4:
            return scalar()
        if r < 0.6:
            return {rng.choice([*texts, "k"]): scalar() for _ in range(rng.randint(0, 4))}
        if r < 0.7:
            return [
                {rng.choice([*texts, "k"]): scalar() for _ in range(rng.randint(1, 4))}
                for _ in range(rng.randint(0, 5))
            ]
        if r < 0.85:
            return {rng.choice(texts) + str(i): value(depth + 1) for i in range(rng.randint(0, 4))}
        return [value(depth + 1) for _ in range(rng.randint(0, 4))]

    for _ in range(3000):
        doc = {"k": value(), "w": [value() for _ in range(3)]}
        assert pretty_json(doc) == json.dumps(doc, ensure_ascii=False, indent=2)
    with pytest.raises(TypeError):
        pretty_json({"x": object()})

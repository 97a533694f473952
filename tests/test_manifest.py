"""Manifest formats, path resolution, and errors that name the right line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from w2v2cli.errors import ManifestError, W2V2Error
from w2v2cli.evaluation import Manifest, ManifestEntry, load_manifest


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


def jsonl(*objects: object) -> str:
    return "".join(json.dumps(o) + "\n" for o in objects)


# --- JSON lines --------------------------------------------------------------------------


def test_jsonl_nemo_style(tmp_path: Path) -> None:
    absolute = tmp_path / "elsewhere" / "b.wav"
    path = write(
        tmp_path / "data" / "manifest.jsonl",
        jsonl(
            {"audio_filepath": "audio/a.wav", "text": "hello world", "duration": 1.5},
            {"audio_filepath": str(absolute), "text": "second", "lang": "en"},
        ),
    )
    m = load_manifest(path)
    assert m.base_dir == tmp_path / "data"
    assert m.entries == (
        ManifestEntry(1, tmp_path / "data" / "audio" / "a.wav", "hello world", 1.5),
        ManifestEntry(2, absolute, "second", None),
    )
    assert m.entry_id(m.entries[0]) == "audio/a.wav"
    assert m.entry_id(m.entries[1]) == absolute.as_posix()
    assert len(m) == 2 and list(m) == list(m.entries)


def test_missing_audio_is_not_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "m.jsonl", jsonl({"audio_filepath": "nope.wav", "text": "x"}))
    (entry,) = load_manifest(path).entries
    assert not entry.audio.exists()


def test_json_extension_and_content_detection(tmp_path: Path) -> None:
    line = jsonl({"audio_filepath": "a.wav", "text": "x"})
    assert len(load_manifest(write(tmp_path / "m.json", line))) == 1
    assert len(load_manifest(write(tmp_path / "m.list", "\n" + line))) == 1


def test_bom_and_blank_lines(tmp_path: Path) -> None:
    text = "\n" + jsonl({"audio_filepath": "a.wav", "text": "ça va"}) + "   \n\n"
    text += jsonl({"audio_filepath": "b.wav", "text": ""})
    m = load_manifest(write(tmp_path / "m.jsonl", text, encoding="utf-8-sig"))
    assert [(e.line, e.text) for e in m] == [(2, "ça va"), (5, "")]  # empty text is allowed


def test_crlf_and_unicode_line_separators(tmp_path: Path) -> None:
    text = json.dumps({"audio_filepath": "a.wav", "text": "a\u2028b"}, ensure_ascii=False)
    path = write(tmp_path / "m.jsonl", text + "\r\n" + text + "\r\n")
    assert [(e.line, e.text) for e in load_manifest(path)] == [(1, "a\u2028b"), (2, "a\u2028b")]
    tsv = write(tmp_path / "m.tsv", "path\ttext\r\na.wav\tx\r\nb.wav\r\n")
    with pytest.raises(ManifestError) as info:
        load_manifest(tsv)
    assert info.value.line == 3


BAD_JSON_LINES = [
    ('{"audio_filepath": "a.wav"}', "missing field 'text'"),
    ('{"text": "x"}', "missing field 'audio_filepath'"),
    ('{"audio_filepath": "a.wav", "text": 3}', "field 'text' must be a string"),
    ('{"audio_filepath": "a.wav", "text": null}', "field 'text' must be a string"),
    ('{"audio_filepath": "  ", "text": "x"}', "empty 'audio_filepath'"),
    ('{"audio_filepath": "a.wav", "text": "x", "duration": "long"}', "duration must be"),
    ('{"audio_filepath": "a.wav", "text": "x", "duration": -1}', "duration must be"),
    ('{"audio_filepath": "a.wav", "text": "x", "duration": true}', "duration must be"),
    ('{"audio_filepath": "a.wav", "text": "x", "offset": 2.0}', "'offset'"),
    ('{"audio_filepath": "a.wav", "text": "x",', "invalid JSON"),
    ('["a.wav", "x"]', "expected a JSON object"),
]


@pytest.mark.parametrize(("line", "reason"), BAD_JSON_LINES)
def test_jsonl_broken_line_is_named(tmp_path: Path, line: str, reason: str) -> None:
    good = jsonl({"audio_filepath": "a.wav", "text": "x"})
    path = write(tmp_path / "manifest.jsonl", good * 3 + "\n" + good * 2 + line + "\n" + good)
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    assert info.value.line == 7
    assert str(info.value).startswith(f"{path}:7: ")
    assert reason in str(info.value)
    assert isinstance(info.value, W2V2Error)


def test_message_format(tmp_path: Path) -> None:
    path = write(tmp_path / "manifest.jsonl", '{"audio_filepath": "a.wav"}\n')
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    assert str(info.value) == f"{path}:1: missing field 'text'"
    assert (info.value.path, info.value.line) == (path, 1)


def test_offset_zero_is_fine(tmp_path: Path) -> None:
    path = write(tmp_path / "m.jsonl", jsonl({"audio_filepath": "a", "text": "x", "offset": 0}))
    assert len(load_manifest(path)) == 1


def test_json_array_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "m.json", json.dumps([{"audio_filepath": "a.wav", "text": "x"}]))
    with pytest.raises(ManifestError, match="one JSON object per line"):
        load_manifest(path)


# --- TSV / CSV ---------------------------------------------------------------------------


def test_tsv(tmp_path: Path) -> None:
    text = 'Path\tTranscript\tduration\nclips/a.wav\tsay "hi"\t2.5\n\nb.wav\tbye\t\n'
    m = load_manifest(write(tmp_path / "m.tsv", text))
    assert m.entries == (
        ManifestEntry(2, tmp_path / "clips" / "a.wav", 'say "hi"', 2.5),  # quotes are literal
        ManifestEntry(4, tmp_path / "b.wav", "bye", None),
    )


def test_csv_with_quoted_multiline_field(tmp_path: Path) -> None:
    text = 'audio_filepath,text\na.wav,"hello, world"\nb.wav,"two\nlines"\nc.wav,x,extra\n'
    path = write(tmp_path / "m.csv", text)
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    assert info.value.line == 5  # the record after the two-line one
    assert "expected 2 columns" in str(info.value)
    m = load_manifest(write(path, text.rsplit("c.wav", 1)[0]))
    assert [(e.line, e.text) for e in m] == [(2, "hello, world"), (3, "two\nlines")]


def test_sniffed_delimiter(tmp_path: Path) -> None:
    path = write(tmp_path / "list.txt", "path;text\na.wav;one\nb.wav;two words\n")
    assert [e.text for e in load_manifest(path)] == ["one", "two words"]


def test_delimited_bom(tmp_path: Path) -> None:
    path = write(tmp_path / "m.csv", "path,text\na.wav,x\n", encoding="utf-8-sig")
    (entry,) = load_manifest(path).entries
    assert entry.audio == tmp_path / "a.wav"


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("file\ttext\na.wav\tx\n", 1, "no 'path' or 'audio_filepath' column"),
        ("path\tsentence\na.wav\tx\n", 1, "no 'text' or 'transcript' column"),
        ("path\taudio_filepath\ttext\na\ta\tx\n", 1, "both 'path' and 'audio_filepath'"),
        ("path\ttext\na.wav\tx\n\nb.wav\n", 4, "expected 2 columns (as in the header), found 1"),
        ("path\ttext\na.wav\tx\tmore\n", 2, "found 3"),
        ("path\ttext\n\tx\n", 2, "empty 'path'"),
        ("path\ttext\tduration\na.wav\tx\tsoon\n", 2, "duration must be a number"),
    ],
)
def test_tsv_errors(tmp_path: Path, text: str, line: int, reason: str) -> None:
    path = write(tmp_path / "m.tsv", text)
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    assert info.value.line == line
    assert str(info.value).startswith(f"{path}:{line}: ")
    assert reason in str(info.value)


def test_header_only_has_no_entries(tmp_path: Path) -> None:
    path = write(tmp_path / "m.tsv", "path\ttext\n")
    with pytest.raises(ManifestError, match="no entries"):
        load_manifest(path)


# --- folders -----------------------------------------------------------------------------


def test_folder_with_txt_references(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    for rel, ref in [("b.flac", "Second one"), ("a/x.wav", "First\n"), ("a/y.mp3", "")]:
        write(root / rel, "")  # content is irrelevant: audio is not opened here
        write((root / rel).with_suffix(".txt"), ref)
    write(root / "README.txt", "not a reference")
    write(root / "._b.flac", "")  # macOS resource fork: hidden, ignored
    write(root / ".cache" / "z.wav", "")
    m = load_manifest(root)
    assert m.base_dir == root
    assert [(m.entry_id(e), e.text, e.line, e.duration) for e in m] == [
        ("a/x.wav", "First", 0, None),
        ("a/y.mp3", "", 0, None),
        ("b.flac", "Second one", 0, None),
    ]


def test_folder_reference_bom(tmp_path: Path) -> None:
    write(tmp_path / "a.wav", "")
    write(tmp_path / "a.txt", "hello", encoding="utf-8-sig")
    assert load_manifest(tmp_path).entries[0].text == "hello"


def test_folder_audio_without_reference_is_named(tmp_path: Path) -> None:
    write(tmp_path / "a.wav", "")
    write(tmp_path / "a.txt", "x")
    write(tmp_path / "sub" / "b.wav", "")
    with pytest.raises(ManifestError) as info:
        load_manifest(tmp_path)
    assert info.value.line is None
    assert str(info.value) == (
        f"{tmp_path}: 1 audio file has no same-name .txt reference: sub/b.wav"
    )


def test_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="no entries"):
        load_manifest(tmp_path)


# --- whole-file problems -------------------------------------------------------------------


def test_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="no such file or folder"):
        load_manifest(tmp_path / "nope.jsonl")


def test_empty_file(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="no entries"):
        load_manifest(write(tmp_path / "m.jsonl", "\n\n"))


def test_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path / "m.tsv", "path\ttext\na.wav\tcaf\xe9\n", encoding="latin-1")
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    assert info.value.line == 2
    assert "not UTF-8" in str(info.value)


def test_manifest_is_frozen(tmp_path: Path) -> None:
    m = load_manifest(write(tmp_path / "m.jsonl", jsonl({"audio_filepath": "a", "text": "x"})))
    assert isinstance(m, Manifest)
    with pytest.raises(AttributeError):
        m.entries[0].text = "y"  # type: ignore[misc]

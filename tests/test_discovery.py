"""discover(): folders, named files, globs, list files, dedup and output naming.

Real trees are written under tmp_path; discovery never opens audio, so the files hold a
few placeholder bytes.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from w2v2cli.discovery import AUDIO_EXTENSIONS, Discovery, discover, normalize_extensions
from w2v2cli.errors import ConfigError
from w2v2cli.options import FORMATS


def touch(root: Path, *names: str) -> None:
    for name in names:
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")


def ids(d: Discovery) -> list[str]:
    return [item.id for item in d.items]


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """data/ with audio at several depths, hidden entries and non-audio files; cwd=tmp_path."""
    touch(
        tmp_path / "data",
        "b.wav",
        "a.FLAC",
        "notes.txt",
        "noext",
        ".hidden.wav",
        ".git/objects/x.wav",
        "sub/c.mp3",
        "sub/.cache/y.mp3",
        "sub/deeper/d.ogg",
        "video/talk.mp4",
    )
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_default_extensions_cover_common_containers() -> None:
    for ext in "wav flac ogg oga opus mp3 m4a aac wma webm mp4 m4v mkv mov avi g722 amr".split():
        assert ext in AUDIO_EXTENSIONS
    assert all(e == e.lower() and not e.startswith(".") for e in AUDIO_EXTENSIONS)
    assert not AUDIO_EXTENSIONS & set(FORMATS)  # outputs are never picked up as inputs


def test_folder_is_searched_recursively_sorted_skipping_hidden_and_non_audio(tree: Path) -> None:
    d = discover(["data"])
    assert ids(d) == ["a.FLAC", "b.wav", "sub/c.mp3", "sub/deeper/d.ogg", "video/talk.mp4"]
    assert [i.path for i in d.items][2] == Path("data/sub/c.mp3")
    assert d.errors == ()


def test_next_to_input_naming_drops_only_the_last_extension(tree: Path) -> None:
    touch(tree, "data/x.y.wav")
    d = discover(["data"])
    bases = {i.id: i.out_base for i in d.items}
    assert bases["video/talk.mp4"] == Path("data/video/talk")
    assert bases["x.y.wav"] == Path("data/x.y")
    assert bases["a.FLAC"] == Path("data/a")


def test_extensions_replace_the_default_set(tree: Path) -> None:
    assert ids(discover(["data"], extensions=[".TXT"])) == ["notes.txt"]
    assert ids(discover(["data"], extensions=["mp3,OGG"])) == ["sub/c.mp3", "sub/deeper/d.ogg"]
    assert ids(discover(["data"], extensions=())) == ids(discover(["data"]))  # empty: default
    assert normalize_extensions([" .Wav", "mp3, .flac", ""]) == {"wav", "mp3", "flac"}


def test_named_files_are_taken_whatever_their_extension(tree: Path) -> None:
    d = discover(["data/noext", "./data/.hidden.wav", "data/sub/.cache/y.mp3"])
    assert ids(d) == ["data/noext", "./data/.hidden.wav", "data/sub/.cache/y.mp3"]
    assert d.items[0].out_base == Path("data/noext")
    assert d.items[1].out_base == Path("data/.hidden")


def test_named_file_with_an_output_format_extension_keeps_its_full_name(tree: Path) -> None:
    (item,) = discover(["data/notes.txt"]).items
    assert item.out_base == Path("data/notes.txt")  # writers make notes.txt.txt, not notes.txt


def test_no_output_overwrites_a_named_input(tree: Path) -> None:
    # Found by the property test below: b.wav's "b.txt" would be the named input b.txt.
    touch(tree, "data/b.txt", "data/b.wav.txt")
    d = discover(["data/b.txt", "data/b.wav", "data/b.wav.txt"])
    assert [i.out_base.name for i in d.items] == ["b.txt", "b.wav.2", "b.wav.txt"]


def test_missing_paths_are_errors_not_exceptions(tree: Path) -> None:
    d = discover(["nope.wav", "data/sub", "missing_dir/"])
    assert ids(d) == ["c.mp3", "deeper/d.ogg"]
    assert [p for p, _ in d.errors] == [Path("nope.wav"), Path("missing_dir")]
    assert all("no such file" in reason for _, reason in d.errors)


def test_broken_symlink_is_reported(tree: Path) -> None:
    os.symlink(tree / "gone.wav", tree / "data" / "dangling.wav")
    d = discover(["data", "data/dangling.wav"])
    assert "dangling.wav" not in ids(d)
    assert [reason for _, reason in d.errors] == ["broken symbolic link"] * 2


def test_symlink_loops_do_not_recurse_forever(tree: Path) -> None:
    os.symlink(tree / "data", tree / "data" / "sub" / "loop")
    d = discover(["data"])
    assert len(d.items) == len({os.path.realpath(i.path) for i in d.items}) == 5


def test_glob_patterns_are_expanded_when_not_an_existing_path(tree: Path) -> None:
    d = discover(["data/**/*.mp3", "data/*.txt", "data/*.nothing"])
    assert ids(d) == ["data/sub/c.mp3", "data/notes.txt"]  # hidden folders not matched
    assert d.errors == ((Path("data/*.nothing"), "no files match this pattern"),)


def test_from_list_skips_blanks_and_comments_and_resolves_against_cwd(tree: Path) -> None:
    lists = tree / "lists"
    lists.mkdir()
    listing = lists / "inputs.txt"
    listing.write_text(
        "# my files\n\ndata/b.wav\n  data/sub/c.mp3  \n   # indented\ndata/video\nnope.wav\n",
        encoding="utf-8",
    )
    d = discover(["data/a.FLAC"], from_list=listing)
    assert ids(d) == ["data/a.FLAC", "data/b.wav", "data/sub/c.mp3", "talk.mp4"]
    assert d.errors == ((Path("nope.wav"), "no such file or directory"),)


def test_from_list_dash_reads_stdin(tree: Path) -> None:
    d = discover([], from_list="-", stdin=io.StringIO("data/b.wav\n# x\n\ndata/sub/c.mp3\n"))
    assert ids(d) == ["data/b.wav", "data/sub/c.mp3"]


def test_unreadable_list_is_a_config_error(tree: Path) -> None:
    with pytest.raises(ConfigError, match="missing.txt"):
        discover([], from_list=tree / "missing.txt")


def test_the_same_file_reached_twice_appears_once_where_first_found(tree: Path) -> None:
    os.symlink(tree / "data" / "b.wav", tree / "link.wav")
    d = discover(["data/b.wav", "data", str(tree / "data" / "b.wav"), "./data/b.wav", "link.wav"])
    assert ids(d) == ["data/b.wav", "a.FLAC", "sub/c.mp3", "sub/deeper/d.ogg", "video/talk.mp4"]


def test_mirror_one_folder(tree: Path) -> None:
    d = discover(["data"], output_dir=Path("out"))
    bases = [i.out_base for i in d.items]
    assert bases == [
        Path("out/a"),
        Path("out/b"),
        Path("out/sub/c"),
        Path("out/sub/deeper/d"),
        Path("out/video/talk"),
    ]


def test_mirror_two_folders_and_a_file_under_their_common_ancestor(tree: Path) -> None:
    touch(tree, "dir1/x.wav", "dir2/deep/y.wav", "dir2/z.wav")
    d = discover(["dir1", "dir2", "data/b.wav"], output_dir=tree / "out")
    out = tree / "out"
    assert [i.out_base for i in d.items] == [
        out / "dir1/x",
        out / "dir2/deep/y",
        out / "dir2/z",
        out / "data/b",
    ]


def test_mirror_named_file_alone_goes_straight_into_output_dir(tree: Path) -> None:
    (item,) = discover(["data/sub/deeper/d.ogg"], output_dir=Path("out")).items
    assert item.out_base == Path("out/d")


@pytest.mark.parametrize("output_dir", [None, Path("out")])
def test_collisions_keep_full_names_case_insensitively(tree: Path, output_dir: Path | None) -> None:
    touch(tree, "data/b.MP3", "data/sub/c.opus")
    d = discover(["data"], output_dir=output_dir)
    prefix = Path("data") if output_dir is None else output_dir
    bases = {i.id: i.out_base for i in d.items}
    assert bases["b.wav"] == prefix / "b.wav"
    assert bases["b.MP3"] == prefix / "b.MP3"
    assert bases["sub/c.mp3"] == prefix / "sub/c.mp3"
    assert bases["sub/c.opus"] == prefix / "sub/c.opus"
    assert bases["a.FLAC"] == prefix / "a"  # untouched


def test_collision_cascade_and_case_only_duplicates_are_resolved(tree: Path) -> None:
    # a.wav.mp3's short name "a.wav" equals a.wav's full name once a.wav/a.mp3 collide;
    # Talk.wav and talk.wav differ only by case (distinct files on Linux).
    touch(tree, "c/a.wav", "c/a.mp3", "c/a.wav.mp3", "c/Talk.wav", "c/talk.wav")
    d = discover(["c"], output_dir=Path("o"))
    bases = [i.out_base.as_posix() for i in d.items]
    assert len({b.casefold() for b in bases}) == len(bases)
    assert bases == ["o/a.mp3", "o/a.wav", "o/a.wav.mp3", "o/Talk.wav", "o/talk.wav.2"]


def test_collision_between_named_files_given_differently(tree: Path) -> None:
    touch(tree, "data/b.ogg")
    d = discover([str(tree / "data" / "b.ogg"), "data/b.wav"])
    assert [i.out_base.name for i in d.items] == ["b.ogg", "b.wav"]


def test_discovery_is_deterministic(tree: Path) -> None:
    assert discover(["data", "data/noext"], output_dir=Path("o")) == discover(
        ["data", "data/noext"], output_dir=Path("o")
    )


_names = st.text(alphabet="abAB._-", min_size=1, max_size=4).filter(
    lambda s: not s.startswith(".") and s not in (".", "..")
)
_exts = st.sampled_from(["wav", "WAV", "mp3", "flac", "Mp3", "txt", "json", "wav.txt", "SRT", ""])


@settings(max_examples=60, deadline=None)
@given(
    files=st.lists(st.tuples(st.lists(_names, max_size=2), _names, _exts), min_size=1, max_size=12),
    mirror=st.booleans(),
)
def test_out_bases_never_collide_and_never_overwrite_an_input(
    files: list[tuple[list[str], str, str]], mirror: bool
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "in"
        paths = []
        for dirs, stem, ext in files:
            p = root.joinpath(*dirs, f"{stem}.{ext}" if ext else stem)
            try:
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(b"x")
            except (IsADirectoryError, FileExistsError, NotADirectoryError):
                continue  # a name already used as a folder/file: skip this one
            paths.append(p)
        out = Path(tmp) / "out" if mirror else None
        d = discover([str(p) for p in paths] + [str(root)], output_dir=out)

        bases = [i.out_base for i in d.items]
        keys = [str(b).casefold() for b in bases]
        assert len(set(keys)) == len(keys)
        inputs = {str(i.path.resolve()).casefold() for i in d.items}
        for b in bases:
            for fmt in FORMATS:
                written = b.with_name(f"{b.name}.{fmt}")
                assert str(written.resolve()).casefold() not in inputs

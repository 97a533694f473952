"""Turn the user's inputs (files, folders, glob patterns, list files) into ``AudioItem``s.

Rules, chosen so a run over the same inputs always does the same thing:

* A **folder** is searched recursively in sorted order. Hidden files and folders (name
  starting with ".") are passed over, and so are files whose extension is not in the set
  (``AUDIO_EXTENSIONS``, or ``extensions`` when given).
* A **file named explicitly** is taken whatever its extension: the user asked for it.
* A **glob pattern** that is not itself an existing path (``"talks/*.mp4"``, ``"**/*.wav"``)
  is expanded here, for shells that do not do it; its matches count as named.
* A **list file** holds one path per line; blank lines and lines starting with "#" are
  ignored; relative paths are relative to the current directory (not to the list file), as
  if they had been typed on the command line. "-" reads the list from standard input.
* A path that does not exist is reported in ``Discovery.errors``, not raised: the other
  inputs still run. The same file reached twice (named and inside a named folder, or
  twice in a list) is taken once, where it was first found.

Output names (``AudioItem.out_base``, the output path without a format extension):

* next to the input by default: ``talk.mp4`` -> ``talk`` (so ``talk.srt`` lands beside the
  video, where players look for it);
* with ``output_dir``, the input tree is mirrored under it, relative to the deepest folder
  that holds every input root (a named folder is its own root; a named file's root is its
  folder): ``data/a.wav``, ``data/sub/b.flac`` -> ``out/a``, ``out/sub/b``;
* when two inputs would share a name (``a.wav`` and ``a.mp3`` side by side), compared
  case-insensitively because macOS and Windows file systems are, both keep their full file
  name (``a.wav`` -> ``a.wav.txt``). An input whose own extension is an output format
  (``notes.txt`` given explicitly) also keeps its full name, so no output overwrites it.

Shards (``shard``, ``--shard I/N``): names are decided over all inputs first, so a file's
outputs are named the same whichever shard runs it; then only the files (and the input
errors) that belong to the shard are kept, by a hash of each one's path relative to the
folder that holds every input as given (a named folder's or file's parent, a pattern's
fixed part; ``scale.shards``). It is computed from the inputs as typed, not from what was
found, so a machine that misses one input still splits the others as every machine does.
"""

from __future__ import annotations

import glob
import os
import sys
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from .errors import ConfigError
from .options import FORMATS
from .records import AudioItem
from .scale.shards import Shard

AUDIO_EXTENSIONS: frozenset[str] = frozenset(
    {
        # uncompressed and lossless
        "wav",
        "wave",
        "bwf",
        "rf64",
        "w64",
        "aif",
        "aiff",
        "aifc",
        "au",
        "snd",
        "caf",
        "flac",
        "wv",
        "ape",
        "tta",
        "alac",
        "shn",
        # lossy audio
        "mp3",
        "mp2",
        "mpga",
        "ogg",
        "oga",
        "opus",
        "spx",
        "m4a",
        "m4b",
        "aac",
        "wma",
        "ac3",
        "eac3",
        "dts",
        "amr",
        "awb",
        "g722",
        "gsm",
        "mka",
        "mpc",
        "ra",
        "voc",
        # video containers (their first audio track is transcribed)
        "webm",
        "mp4",
        "m4v",
        "mkv",
        "mov",
        "avi",
        "wmv",
        "flv",
        "3gp",
        "3g2",
        "mpg",
        "mpeg",
        "ts",
        "mts",
        "m2ts",
        "vob",
        "ogv",
        "asf",
    }
)

_GLOB_MAGIC = frozenset("*?[")


@dataclass(frozen=True)
class Discovery:
    """What ``discover`` found: the files to process and the inputs that could not be used."""

    items: tuple[AudioItem, ...]
    errors: tuple[tuple[Path, str], ...]
    #: Files found before ``shard`` kept its own (``len(items)`` without a shard).
    found: int = 0


@dataclass(frozen=True)
class _Found:
    path: Path  # as the user gave it, or folder-as-given / relative path
    id: str
    abs: str  # absolute, normalised, symlinks not followed (for mirroring)
    root: str  # absolute root folder this file was found under (for mirroring)


def normalize_extensions(extensions: Iterable[str]) -> frozenset[str]:
    """``[".WAV", "mp3,flac"]`` -> ``{"wav", "mp3", "flac"}``: dots, case, commas ignored."""
    out: set[str] = set()
    for entry in extensions:
        for ext in str(entry).split(","):
            ext = ext.strip().lstrip(".").lower()
            if ext:
                out.add(ext)
    return frozenset(out)


def read_path_list(from_list: str | Path, stdin: TextIO | None = None) -> list[str]:
    """Paths from a list file ("-" = ``stdin``): one a line, blanks and "#" comments skipped.

    Surrounding whitespace is stripped from each line. Raises ``ConfigError`` when the list
    cannot be read: without it, the run's inputs are unknown.
    """
    if str(from_list) == "-":
        stream = stdin if stdin is not None else sys.stdin
        text = stream.read()
    else:
        try:
            text = Path(from_list).read_text(encoding="utf-8-sig", errors="surrogateescape")
        except OSError as e:
            raise ConfigError(f"cannot read file list {from_list}: {e.strerror or e}") from None
    paths = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            paths.append(line)
    return paths


def discover(
    inputs: Sequence[str | Path],
    *,
    extensions: Collection[str] | None = None,
    from_list: str | Path | None = None,
    output_dir: Path | None = None,
    stdin: TextIO | None = None,
    shard: Shard | None = None,
) -> Discovery:
    """Expand files, folders, glob patterns and a list file into ``AudioItem``s.

    ``extensions`` replaces ``AUDIO_EXTENSIONS`` for folder searches (with or without dots,
    any case; None or empty means the default set). ``from_list`` paths come after
    ``inputs``. ``shard`` keeps only the files and input errors of that shard. See the
    module docstring for the naming and shard rules.
    """
    exts = normalize_extensions(extensions) if extensions else AUDIO_EXTENSIONS
    sources: list[str | Path] = list(inputs)
    if from_list is not None:
        sources.extend(read_path_list(from_list, stdin))

    found: list[_Found] = []
    errors: list[tuple[Path, str]] = []
    roots: list[str] = []
    seen: set[str] = set()

    def add(f: _Found) -> None:
        key = os.path.realpath(f.abs)
        if key not in seen:
            seen.add(key)
            found.append(f)

    for source in sources:
        for named, error in _expand(source):
            if error is not None:
                errors.append((named, error))
            elif named.is_dir():
                root = os.path.abspath(named)
                roots.append(root)
                for rel in _walk(named, exts, errors):
                    path = named / rel
                    add(_Found(path, rel.as_posix(), os.path.join(root, *rel.parts), root))
            elif named.is_file():
                absolute = os.path.abspath(named)
                roots.append(os.path.dirname(absolute))
                label = str(source) if named == Path(source) else str(named)
                add(_Found(named, label, absolute, os.path.dirname(absolute)))
            else:
                errors.append((named, "not a regular file or folder"))

    bases = _out_bases(found, roots, output_dir)
    items = tuple(AudioItem(f.path, f.id, b) for f, b in zip(found, bases, strict=True))
    if shard is None:
        return Discovery(items=items, errors=tuple(errors), found=len(items))
    common = _common_folder([_anchor(src) for src in sources])
    keys = [_relative_to(f.abs, common).as_posix() for f in found]
    return Discovery(
        items=tuple(i for i, k in zip(items, keys, strict=True) if shard.owns(k)),
        errors=tuple(
            e for e in errors if shard.owns(_relative_to(os.path.abspath(e[0]), common).as_posix())
        ),
        found=len(items),
    )


def _expand(source: str | Path) -> list[tuple[Path, str | None]]:
    """One input -> the paths it names (a glob may name many), or an error for it."""
    path = Path(source)
    if os.path.lexists(path):
        if not path.exists():
            return [(path, "broken symbolic link")]
        return [(path, None)]
    text = str(source)
    if _GLOB_MAGIC.intersection(text):
        matches = sorted(glob.glob(text, recursive=True))
        if not matches:
            return [(path, "no files match this pattern")]
        return [(Path(m), None) for m in matches]
    return [(path, "no such file or directory")]


def _walk(folder: Path, exts: frozenset[str], errors: list[tuple[Path, str]]) -> list[Path]:
    """Relative paths of the audio files under ``folder``, sorted, hidden entries skipped.

    Sorted by path components, so ``sub/x.wav`` comes before ``sub2.wav`` and ``z.wav``.

    Symlinked folders are followed once each (a link loop cannot recurse forever).
    """
    rels: list[Path] = []
    visited: set[str] = set()

    def on_error(e: OSError) -> None:
        errors.append((Path(e.filename or folder), f"cannot read folder: {e.strerror or e}"))

    for dirpath, dirnames, filenames in os.walk(folder, onerror=on_error, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in visited:
            dirnames[:] = []
            continue
        visited.add(real)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel_dir = Path(os.path.relpath(dirpath, folder))
        for name in filenames:
            if name.startswith("."):
                continue
            if Path(name).suffix.lower().lstrip(".") not in exts:
                continue
            full = os.path.join(dirpath, name)
            if not os.path.isfile(full):
                if os.path.islink(full) and not os.path.exists(full):
                    errors.append((Path(full), "broken symbolic link"))
                continue
            rels.append(rel_dir / name if rel_dir != Path(".") else Path(name))
    # Case-insensitive order (what file managers show), exact name as the tie-break.
    rels.sort(key=lambda r: tuple((part.casefold(), part) for part in r.parts))
    return rels


def _out_bases(found: list[_Found], roots: list[str], output_dir: Path | None) -> list[Path]:
    """Collision-free output bases (see the module docstring); deterministic for the inputs."""
    if not found:
        return []
    if output_dir is None:
        full = [f.path for f in found]
    else:
        common = _common_folder(roots)
        full = [Path(output_dir) / _relative_to(f.abs, common) for f in found]
    short = [p.with_suffix("") if p.suffix else p for p in full]

    def key(p: Path | str) -> str:
        return os.path.normcase(os.path.abspath(p)).casefold()

    # No output may overwrite an input: an input "x.txt" reserves the base "x" (whose .txt
    # output it would be), and keeps its own full name "x.txt" (outputs x.txt.txt...).
    reserved = {
        key(Path(f.abs).with_suffix(""))
        for f in found
        if Path(f.abs).suffix.lower().lstrip(".") in FORMATS
    }
    use_full = [key(s) in reserved for s in short]

    # Inputs whose short bases clash keep their full names; that can make a new clash
    # ("a.wav.mp3" -> "a.wav" vs a.wav's full name), so repeat until nothing changes.
    while True:
        bases = [full[i] if use_full[i] else short[i] for i in range(len(found))]
        groups: dict[str, list[int]] = defaultdict(list)
        for i, b in enumerate(bases):
            groups[key(b)].append(i)
        changed = False
        for idxs in groups.values():
            if len(idxs) > 1:
                for i in idxs:
                    if not use_full[i]:
                        use_full[i] = True
                        changed = True
        if not changed:
            break

    # Left: full names equal but for case ("Talk.wav" and "talk.wav" on a case-sensitive
    # file system), or a full name that is still reserved ("a.wav" beside an input
    # "a.wav.txt"). Number those ("talk.wav.2"); the first in input order keeps its name.
    taken = set(reserved)
    for i, base in enumerate(bases):
        candidate, n = base, 1
        while key(candidate) in taken:
            n += 1
            candidate = base.with_name(f"{base.name}.{n}")
        taken.add(key(candidate))
        bases[i] = candidate
    return bases


def _anchor(source: str | Path) -> str:
    """Where an input, as given, hangs in the tree: a pattern's fixed leading folders, else
    the folder holding the named path, whether or not it exists (so that shards do not
    depend on what one machine happens to find)."""
    parts = Path(os.path.abspath(source)).parts
    for k, part in enumerate(parts):
        if _GLOB_MAGIC.intersection(part):
            return str(Path(*parts[:k]))
    return os.path.dirname(os.path.abspath(source))


def _common_folder(roots: list[str]) -> str | None:
    try:
        return os.path.commonpath(roots) if roots else None
    except ValueError:  # Windows: roots on different drives have no common folder
        return None


def _relative_to(absolute: str, common: str | None) -> Path:
    if common is not None:
        return Path(os.path.relpath(absolute, common))
    p = Path(absolute)
    drive = p.drive.rstrip(":\\/").replace(":", "") or "root"
    return Path(drive, *p.parts[1:])

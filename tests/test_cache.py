"""The caches w2v2 writes repair themselves (issue 26): an OpenVINO IR cut short, emptied,
missing a file or written by another converter version, and a converted checkpoint folder
damaged the same ways, is set aside with one line on stderr and made again; the run gives
the text a good cache gives, exit 0. An exported folder the user made is reported in one
line and never rewritten. Two runs that find one entry damaged rebuild it once; a run
killed with SIGKILL while converting leaves nothing the next run trips on.

Real files damaged on disk, the real CLI, real processes and real signals.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import TORCH_1_ARGS
from test_survival import MOUNTS, mounted_tmpfs

from w2v2cli.cli import main
from w2v2cli.inference import ir_cache
from w2v2cli.models import convert

pytestmark = pytest.mark.slow


def invoke(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args])


def w2v2(*args: object) -> list[str]:
    return [sys.executable, "-m", "w2v2cli", *map(str, args)]


def transcribe_args(audio: Path, model: Path, cache: Path) -> list[object]:
    return [
        "transcribe",
        audio,
        "-m",
        model,
        "--backend",
        "openvino",
        "--cache-dir",
        cache,
        "-f",
        "json",
        "--stdout",
    ]


def text_of(stdout: str) -> str:
    return json.loads(stdout)["text"]


def entries(root: Path) -> list[Path]:
    """The cache entries under ``root`` (hidden lock files aside)."""
    return sorted(p for p in root.iterdir() if not p.name.startswith("."))


def leftovers(root: Path) -> list[str]:
    """Anything hidden under ``root`` but the entries' lock files: temporary folders of
    killed runs, entries set aside and not removed."""
    return sorted(p.name for p in root.iterdir() if p.name.startswith(".") and p.suffix != ".lock")


def one_entry(cache: Path) -> Path:
    (entry,) = entries(cache / ir_cache.CACHE_FOLDER)
    return entry


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory, trained_model: Path, speech):
    """A cache holding the trained model's float32 IR, and the text a run gives with it."""
    cache = tmp_path_factory.mktemp("good-cache")
    r = invoke(*transcribe_args(speech.paths[0], trained_model, cache))
    assert r.exit_code == 0 and "converting" in r.stderr, r.output
    assert ir_cache.entry_problem(one_entry(cache), "float32") is None
    return cache, text_of(r.stdout)


def copy_of(cache: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(cache, tmp_path / "cache"))


def _info(entry: Path) -> dict:
    return json.loads((entry / ir_cache.IR_INFO).read_text())


def _write_info(entry: Path, info: dict) -> None:
    (entry / ir_cache.IR_INFO).write_text(json.dumps(info))


def cut_bin(entry: Path) -> None:
    os.truncate(entry / ir_cache.IR_WEIGHTS, (entry / ir_cache.IR_WEIGHTS).stat().st_size // 2)


def cut_bin_unrecorded(entry: Path) -> None:
    """Cut short in an entry that does not record its sizes (as older versions wrote
    them): OpenVINO itself finds it, when it reads or compiles the IR."""
    cut_bin(entry)
    _write_info(entry, {k: v for k, v in _info(entry).items() if k != "sizes"})


def empty_xml(entry: Path) -> None:
    (entry / ir_cache.IR_FILE).write_bytes(b"")


def no_bin(entry: Path) -> None:
    (entry / ir_cache.IR_WEIGHTS).unlink()


def no_info(entry: Path) -> None:
    (entry / ir_cache.IR_INFO).unlink()


def older_converter(entry: Path) -> None:
    _write_info(entry, {**_info(entry), "converter": ir_cache.CONVERTER_VERSION - 1})


DAMAGES: dict[str, Callable[[Path], None]] = {
    "bin cut short": cut_bin,
    "bin cut short, sizes not recorded": cut_bin_unrecorded,
    "xml emptied": empty_xml,
    "bin missing": no_bin,
    "info missing": no_info,
    "older converter": older_converter,
}


# --- the OpenVINO IR cache ------------------------------------------------------------------


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_ir_is_set_aside_and_converted_again(
    good, trained_model: Path, speech, tmp_path: Path, damage: str
) -> None:
    cache = copy_of(good[0], tmp_path)
    entry = one_entry(cache)
    DAMAGES[damage](entry)
    r = invoke(*transcribe_args(speech.paths[0], trained_model, cache))
    assert r.exit_code == 0, r.output
    assert text_of(r.stdout) == good[1]
    notes = [line for line in r.stderr.splitlines() if "cannot be used" in line]
    assert len(notes) == 1, r.stderr
    assert str(entry) in notes[0] and notes[0].endswith("set aside and converted again")
    assert "converting" in r.stderr
    root = cache / ir_cache.CACHE_FOLDER
    assert entries(root) == [entry] and leftovers(root) == []
    assert ir_cache.entry_problem(entry, "float32") is None
    again = invoke(*transcribe_args(speech.paths[0], trained_model, cache))
    assert again.exit_code == 0 and text_of(again.stdout) == good[1]
    assert "cannot be used" not in again.stderr and "converting" not in again.stderr


def test_export_repairs_the_cache_entry_it_copies(good, trained_model, speech, tmp_path):
    """``w2v2 export`` copies the cache's IR: a damaged one is converted again first, and
    the folder it writes runs."""
    cache = copy_of(good[0], tmp_path)
    cut_bin_unrecorded(one_entry(cache))
    out = tmp_path / "exported"
    r = invoke("export", trained_model, "-o", out, "--cache-dir", cache)
    assert r.exit_code == 0, r.output
    assert "cannot be used" in r.stderr and "converting" in r.stderr
    assert ir_cache.files_problem(out) is None
    run = invoke(*transcribe_args(speech.paths[0], out, tmp_path / "unused"))
    assert run.exit_code == 0 and text_of(run.stdout) == good[1]


@pytest.fixture(scope="module")
def exported(good, trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export") / "model"
    r = invoke("export", trained_model, "-o", out, "--cache-dir", good[0])
    assert r.exit_code == 0, r.output
    return out


@pytest.mark.parametrize("damage", ["bin cut short", "bin cut short, sizes not recorded"])
def test_a_damaged_export_folder_is_reported_and_never_rewritten(
    exported: Path, speech, tmp_path: Path, damage: str
) -> None:
    folder = Path(shutil.copytree(exported, tmp_path / "mine"))
    DAMAGES[damage](folder)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    r = invoke(*transcribe_args(speech.paths[0], folder, tmp_path / "cache"))
    assert r.exit_code == 2
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("error: ") and str(folder) in line and "w2v2 export" in line, line
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert not (tmp_path / "cache").exists()  # nothing converted in its place


def test_two_runs_finding_one_damaged_entry_rebuild_it_once(good, trained_model, speech, tmp_path):
    """Both runs find the entry damaged; under the entry's lock the first sets it aside and
    converts, the second waits and uses what the first wrote."""
    cache = copy_of(good[0], tmp_path)
    entry = one_entry(cache)
    cut_bin_unrecorded(entry)
    cmd = w2v2(*transcribe_args(speech.paths[0], trained_model, cache))
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert [text_of(out) for out, _ in outs] == [good[1], good[1]]
    stderr = "".join(err for _, err in outs)
    assert stderr.count("cannot be used") == 1, stderr
    assert stderr.count("converting ") == 1, stderr
    root = cache / ir_cache.CACHE_FOLDER
    assert entries(root) == [entry] and leftovers(root) == []
    assert ir_cache.entry_problem(entry, "float32") is None


def test_a_run_killed_while_converting_leaves_nothing_in_the_way(
    good, trained_model, speech, tmp_path
):
    """SIGKILL during the conversion, then SIGKILL inside the entry's write (the IR
    written, its info not yet, the folder not renamed): the next run converts, gives the
    text, and removes what the killed run left."""
    cache = tmp_path / "cache"
    args = transcribe_args(speech.paths[0], trained_model, cache)
    proc = subprocess.Popen(w2v2(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:
        if line.startswith("converting"):
            proc.send_signal(signal.SIGKILL)
            break
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    root = cache / ir_cache.CACHE_FOLDER
    assert not root.exists() or entries(root) == []

    script = f"""
import os, signal, sys
from w2v2cli.cli import main
from w2v2cli.inference import ir_cache
def killed(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)
ir_cache.atomic_write = killed  # the info file: written after the IR
sys.argv = ["w2v2", *{[str(a) for a in args]!r}]
main()
"""
    inside = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=300)
    assert inside.returncode == -signal.SIGKILL, inside.stderr[-2000:]
    (left,) = leftovers(root)
    assert left.endswith(".dir") and (root / left / ir_cache.IR_FILE).is_file()
    assert entries(root) == []

    r = subprocess.run(w2v2(*args), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "converting" in r.stderr and "cannot be used" not in r.stderr
    assert leftovers(root) == [] and len(entries(root)) == 1
    assert text_of(r.stdout) == good[1]


@contextmanager
def read_only_copy(cache: Path, place: Path, damage: Callable[[Path], None] | None):
    """A copy of ``cache`` (its entry damaged by ``damage``) on a read-only disk: a real
    tmpfs remounted read-only where the tests may mount (as root, as in CI), else chmod."""
    copy = place / "cache"
    if MOUNTS:
        with mounted_tmpfs(place, 64 * 1024):
            shutil.copytree(cache, copy)
            if damage is not None:
                damage(one_entry(copy))
            subprocess.run(["mount", "-o", "remount,ro", str(place)], check=True)
            yield copy
        return
    shutil.copytree(cache, copy)
    if damage is not None:
        damage(one_entry(copy))
    for folder in (copy, copy / ir_cache.CACHE_FOLDER, one_entry(copy)):
        folder.chmod(0o555)
    yield copy


@pytest.mark.parametrize("damaged", [False, True])
def test_a_read_only_cache(good, trained_model, speech, tmp_path, damaged):
    """A cache on a read-only disk (a shared one): a whole entry runs as it is, nothing
    written; a damaged one cannot be repaired there, and the one line says which entry,
    what is wrong and why it stays so. The entry is left as it was."""
    with read_only_copy(good[0], tmp_path / "disk", cut_bin if damaged else None) as cache:
        entry = one_entry(cache)
        before = {p.name: p.read_bytes() for p in entry.iterdir()}
        r = invoke(*transcribe_args(speech.paths[0], trained_model, cache))
        assert {p.name: p.read_bytes() for p in entry.iterdir()} == before
    if not damaged:
        assert r.exit_code == 0 and text_of(r.stdout) == good[1], r.output
        assert "converting" not in r.stderr
    else:
        assert r.exit_code == 2
        (line,) = r.stderr.strip().splitlines()
        assert line.startswith(f"error: the cached OpenVINO model {entry} cannot be used"), line
        assert "model.bin has" in line and "the cache cannot be written" in line, line


# --- the cache of converted checkpoints -----------------------------------------------------


def cut_weights(folder: Path) -> None:
    path = folder / "model.safetensors"
    os.truncate(path, path.stat().st_size - 1000)


def empty_config(folder: Path) -> None:
    (folder / "config.json").write_text("")


def no_vocab(folder: Path) -> None:
    (folder / "vocab.json").unlink()


@pytest.mark.parametrize("damage", [cut_weights, empty_config, no_vocab])
def test_a_damaged_conversion_is_set_aside_and_converted_again(nvidia, tmp_path, damage):
    checkpoint = nvidia.checkpoints["hourglass"]
    cache = tmp_path / "cache"
    args = ["transcribe", nvidia.clips[0], "-m", checkpoint, "--stdout", *TORCH_1_ARGS]
    first = invoke(*args, "--cache-dir", cache)
    assert first.exit_code == 0 and "converting" in first.stderr, first.output
    (folder,) = entries(cache / convert.CACHE_FOLDER)
    damage(folder)
    r = invoke(*args, "--cache-dir", cache)
    assert r.exit_code == 0, r.output
    assert r.stdout == first.stdout
    notes = [line for line in r.stderr.splitlines() if "cannot be used" in line]
    assert len(notes) == 1 and str(folder) in notes[0], r.stderr
    assert notes[0].endswith("set aside and converted again")
    root = cache / convert.CACHE_FOLDER
    assert entries(root) == [folder] and leftovers(root) == []
    assert convert.entry_problem(folder) is None

"""Faults a batch run must survive: full and read-only disks, concurrent runs, real SIGINT
and SIGTERM then a resumed run, corrupt models and LMs, odd audio, symlink loops, a failure
at any stage of one file. In each: no traceback, a line naming the file and the reason, the
right exit status, every finished output complete, no temporary file left, and the other
files still done.

Disk faults use a real tmpfs (full, or mounted read-only) where the tests may mount one (as
root, as in CI); otherwise a patched ``fsync`` that fails with ENOSPC, and ``chmod``, which
binds a non-root user. Signals are real signals sent to a real ``w2v2`` process.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner
from conftest import noise_audio
from lm_fixtures import built_lms

from w2v2cli.cli import main


def _can_mount() -> bool:
    """Whether this process may mount a tmpfs (root with CAP_SYS_ADMIN)."""
    import tempfile

    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    with tempfile.TemporaryDirectory() as folder:
        ok = (
            subprocess.run(
                ["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", folder], capture_output=True
            ).returncode
            == 0
        )
        if ok:
            subprocess.run(["umount", folder], check=False)
    return ok


MOUNTS = _can_mount()


def invoke(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args])


def leftovers(folder: Path) -> list[str]:
    """Hidden temporary files or folders (``.NAME.XXXX.tmp``/``.dir``) under ``folder``."""
    return sorted(str(p) for p in folder.rglob(".*") if ".tmp" in p.name or ".dir" in p.name)


def error_lines(result_stderr: str) -> list[str]:
    return [ln for ln in result_stderr.splitlines() if ln.startswith("error:")]


@pytest.fixture
def clips(tmp_path: Path) -> Path:
    folder = tmp_path / "clips"
    folder.mkdir()
    for i, secs in enumerate([2.0, 1.2, 3.1, 0.8, 2.6, 1.7, 2.2, 0.9]):
        sf.write(folder / f"c{i}.wav", noise_audio(secs, 40 + i), 16000)
    return folder


@pytest.fixture
def reference(group_model: Path, clips: Path, tmp_path: Path) -> Path:
    """What a clean run writes, to compare every surviving output with."""
    out = tmp_path / "reference"
    r = invoke("transcribe", clips, "-m", group_model, "-o", out, "-f", "json", "-f", "srt", "-q")
    assert r.exit_code == 0, r.output
    return out


def assert_complete(out: Path, reference: Path) -> int:
    """Every output under ``out`` equals the clean run's, byte for byte; returns the count."""
    files = [p for p in out.rglob("*") if p.is_file()]
    for p in files:
        expected = reference / p.relative_to(out)
        assert p.read_bytes() == expected.read_bytes(), p
    return len(files)


@contextmanager
def mounted_tmpfs(path: Path, size_kb: int) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k,mode=755", "tmpfs", str(path)], check=True
    )
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def make_read_only(path: Path) -> None:
    if MOUNTS:
        subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True)
    else:
        path.chmod(0o555)


@contextmanager
def small_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, room_kb: int) -> Iterator[Path]:
    """A folder with about ``room_kb`` of free space: a real tmpfs as root, else a folder
    whose fsync fails with ENOSPC once that much has been written through ``fsutil``."""
    target = tmp_path / "small"
    if MOUNTS:
        with mounted_tmpfs(target, room_kb) as folder:
            yield folder
        return
    target.mkdir()
    from w2v2cli import fsutil

    real = fsutil.os.fsync
    written = {"bytes": 0}

    def fsync(fd: int) -> None:
        written["bytes"] += os.fstat(fd).st_size
        if written["bytes"] > room_kb * 1024:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fd)

    monkeypatch.setattr(fsutil.os, "fsync", fsync)
    yield target


# --- disks --------------------------------------------------------------------------------


def test_disk_full_fails_the_files_that_do_not_fit(
    group_model, clips, reference, tmp_path, monkeypatch
):
    with small_disk(tmp_path, monkeypatch, room_kb=28) as disk:
        out = disk / "out"
        r = invoke("transcribe", clips, "-m", group_model, "-o", out, "-f", "json", "-f", "srt")
        assert r.exit_code == 1, r.output
        errors = error_lines(r.stderr)
        assert errors and all("No space left on device" in e for e in errors), r.stderr
        assert all(any(f"c{i}.wav" in e for i in range(8)) for e in errors)
        done = [ln for ln in r.stderr.splitlines() if " done, " in ln]
        assert done and not done[0].startswith("0 done"), r.stderr
        assert assert_complete(out, reference) >= 2
        assert leftovers(disk) == []
        assert "Traceback" not in r.output


def test_read_only_output_folder_is_refused_before_work(group_model, clips, tmp_path):
    target = tmp_path / "ro"
    if MOUNTS:
        with mounted_tmpfs(target, 64):
            make_read_only(target)
            r = invoke("transcribe", clips, "-m", group_model, "-o", target)
    else:
        target.mkdir()
        make_read_only(target)
        r = invoke("transcribe", clips, "-m", group_model, "-o", target)
    assert r.exit_code == 2
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("error: output folder") and "is not writable" in line


def test_read_only_input_folder_fails_each_file_next_to_it(group_model, tmp_path):
    """Outputs go next to the inputs, on a read-only disk: each file fails, named."""
    folder = tmp_path / "ro-in"

    def run() -> None:
        for i in range(2):
            sf.write(folder / f"x{i}.wav", noise_audio(1.0, i), 16000)
        make_read_only(folder)
        r = invoke("transcribe", folder, "-m", group_model)
        assert r.exit_code == 1
        errors = error_lines(r.stderr)
        assert len(errors) == 2 and all("cannot write" in e for e in errors), r.stderr
        assert sorted(p.name for p in folder.iterdir()) == ["x0.wav", "x1.wav"]

    if MOUNTS:
        with mounted_tmpfs(folder, 1024):
            run()
    else:
        folder.mkdir()
        run()


@contextmanager
def read_only_folder(path: Path) -> Iterator[Path]:
    """An empty folder no one can write into: a read-only tmpfs as root, else chmod."""
    if MOUNTS:
        with mounted_tmpfs(path, 64):
            make_read_only(path)
            yield path
    else:
        path.mkdir()
        make_read_only(path)
        yield path


@pytest.mark.parametrize("command", ["export", "convert"])
def test_export_and_convert_into_a_read_only_folder_fail_before_work(
    command, trained_model, nvidia, tmp_path
):
    """One line naming the folder and why, status 2, before anything is converted (the
    cache stays empty)."""
    cache = tmp_path / "cache"
    if command == "export":
        args, what = [trained_model, "--cache-dir", cache], "export folder"
    else:
        args, what = [nvidia.checkpoints["hourglass"]], "output folder"
    with read_only_folder(tmp_path / "ro") as folder:
        for target in (folder / "new", folder / "new" / "deeper"):
            r = invoke(command, *args, "-o", target)
            assert r.exit_code == 2, r.output
            (line,) = r.stderr.strip().splitlines()
            want = f"error: {what} {target} cannot be created: {folder} is not writable"
            assert line.startswith(want), line
        assert list(folder.iterdir()) == []
    assert not cache.exists()


# --- concurrency and signals -------------------------------------------------------------


def w2v2(*args: object) -> list[str]:
    return [sys.executable, "-m", "w2v2cli", *map(str, args)]


def test_two_runs_writing_one_folder_at_once(group_model, clips, reference, tmp_path):
    out = tmp_path / "shared"
    cmd = w2v2(
        "transcribe",
        clips,
        "-m",
        group_model,
        "-o",
        out,
        "-f",
        "json",
        "-f",
        "srt",
        "--overwrite",
        "-q",
    )
    procs = [subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    assert assert_complete(out, reference) == 16
    assert leftovers(out) == []


MANY = 60


@pytest.fixture
def many_clips(tmp_path: Path) -> Path:
    """Enough audio that a run is still going when the signal arrives."""
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(MANY):
        sf.write(folder / f"m{i:03d}.wav", noise_audio(4.0, i), 16000)
    return folder


def wait_for_outputs(out: Path, n: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if out.is_dir() and len(list(out.glob("*.json"))) >= n:
            return
        assert proc.poll() is None, "the run ended before it could be interrupted"
        time.sleep(0.01)
    raise AssertionError("no outputs appeared")


@pytest.mark.slow
def test_a_run_started_with_sigint_ignored_keeps_ignoring_it(group_model, many_clips, tmp_path):
    """``nohup w2v2 ... &`` from a script: SIGINT arrives ignored, as the shell meant, and
    the run goes on to write every file (only an inherited default is made an interrupt)."""
    out = tmp_path / "out"
    cmd = w2v2("transcribe", many_clips, "-m", group_model, "-o", out, "-f", "json", "-q")
    proc = subprocess.Popen(
        cmd,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    wait_for_outputs(out, 3, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert len(list(out.glob("*.json"))) == MANY
    assert leftovers(out) == []


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_mid_run_then_resume(group_model, many_clips, tmp_path, sig, status):
    out = tmp_path / "out"
    cmd = w2v2(
        "transcribe", many_clips, "-m", group_model, "-o", out, "-f", "json", "-f", "txt", "-q"
    )
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    wait_for_outputs(out, 3, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == status, err
    assert "Traceback" not in err
    (line,) = err.strip().splitlines()
    assert ("terminated" if sig == signal.SIGTERM else "interrupted") in line
    assert leftovers(out) == []
    jsons = sorted(out.glob("*.json"))
    assert 3 <= len(jsons) < MANY
    for p in jsons:  # every finished output is whole
        assert json.loads(p.read_text())["schema"] == "w2v2cli.transcript/1"
    finished = sum(1 for p in jsons if p.with_suffix(".txt").is_file())

    loud = [a for a in cmd if a != "-q"]
    again = subprocess.run(loud, stderr=subprocess.PIPE, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"{MANY - finished} done, {finished} skipped, 0 failed" in again.stderr
    assert len(list(out.glob("*.json"))) == len(list(out.glob("*.txt"))) == MANY


@pytest.mark.slow
def test_sigterm_during_eval_keeps_finished_logits(group_model, many_clips, tmp_path):
    manifest = tmp_path / "m.tsv"
    manifest.write_text("path\ttext\n" + "".join(f"many/m{i:03d}.wav\tX\n" for i in range(MANY)))
    logits = tmp_path / "logits"
    proc = subprocess.Popen(
        w2v2("eval", manifest, "-m", group_model, "--save-logits", logits, "-q"),
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while len(list(logits.glob("*.npz"))) < 3 and time.monotonic() < deadline:
        assert proc.poll() is None
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "terminated" in err and "Traceback" not in err
    assert leftovers(logits) == []
    for p in logits.glob("*.npz"):
        with np.load(p) as z:
            assert z["log_probs"].ndim == 2


def test_stdout_reader_that_stops_reading_ends_the_run_quietly(group_model, many_clips):
    """``w2v2 transcribe ... --stdout | head -c 20``: no error line per remaining file, no
    traceback; the run stops with 141, as a shell tool killed by SIGPIPE would."""
    proc = subprocess.Popen(
        w2v2("transcribe", many_clips, "-m", group_model, "--stdout", "-q"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stdout.read(20).startswith(b"==> ")
    proc.stdout.close()
    err = proc.stderr.read().decode() if proc.stderr else ""
    assert proc.wait(timeout=120) == 141, err
    assert err == ""


# --- broken models and LMs ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("weights", "cannot load the weights of"),
        ("config", "cannot load model"),
    ],
)
def test_corrupt_model_folder_is_one_line(group_model, clips, tmp_path, damage, message):
    model = tmp_path / "model"
    shutil.copytree(group_model, model)
    if damage == "weights":
        (model / "model.safetensors").write_bytes(os.urandom(4096))
    else:
        (model / "config.json").write_text("{ this is not json")
    r = invoke("transcribe", clips, "-m", model)
    assert r.exit_code == 2
    (line,) = r.stderr.strip().splitlines()
    assert message in line and str(model) in line


@pytest.mark.parametrize("workers", ["0", "2"])
@pytest.mark.parametrize("kind", ["random bytes", "broken arpa"])
def test_garbage_lm_is_one_line(group_model, clips, tmp_path, kind, workers):
    lm = tmp_path / "lm.arpa"
    if kind == "random bytes":
        lm.write_bytes(os.urandom(2048))
    else:
        lm.write_text("\\data\\\nngram 1=3\n\n\\1-grams:\n-1.0\tA\nnonsense here\n\\end\\\n")
    (tmp_path / "lm.arpa.unigrams.txt").write_text("A\nB\n")
    out = tmp_path / "out"
    r = invoke(
        "transcribe",
        clips,
        "-m",
        group_model,
        "--lm",
        lm,
        "--decode-workers",
        workers,
        "-o",
        out,
        "-q",
    )
    assert r.exit_code == 2, r.output
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith(f"error: {lm}: ")
    assert not out.exists() or leftovers(out) == []


# --- odd inputs -----------------------------------------------------------------------------


@pytest.mark.slow
def test_odd_audio_is_transcribed(group_model, tmp_path, caplog):
    folder = tmp_path / "odd"
    folder.mkdir()
    sf.write(folder / "few samples.wav", np.array([0.1, -0.2, 0.3, 0.1, 0.0], np.float32), 16000)
    bad = noise_audio(2.0, 3)
    bad[100:200] = np.nan
    bad[300] = np.inf
    sf.write(folder / "nan.wav", bad, 16000, subtype="FLOAT")
    sf.write(folder / "silence.flac", np.zeros(16000 * 600, np.float32), 16000)
    stereo = np.stack([noise_audio(1.5, 4, sr=384000), noise_audio(1.5, 5, sr=384000)], axis=1)
    sf.write(folder / "8-bit 384 kHz stéréo ünï.wav", stereo, 384000, subtype="PCM_U8")
    out = tmp_path / "out"
    r = invoke("transcribe", folder, "-m", group_model, "-o", out, "-f", "json")
    assert r.exit_code == 0, r.output
    assert "4 done, 0 skipped, 0 failed" in r.stderr
    docs = {p.name: json.loads(p.read_text()) for p in out.glob("*.json")}
    assert sorted(docs) == sorted(
        ["few samples.json", "nan.json", "silence.json", "8-bit 384 kHz stéréo ünï.json"]
    )
    assert docs["few samples.json"]["text"] == "" and docs["few samples.json"]["duration"] == 0.0
    assert docs["silence.json"]["duration"] == 600.0
    assert docs["8-bit 384 kHz stéréo ünï.json"]["duration"] == 1.5
    assert "nan.wav: replaced NaN/infinite samples with silence" in caplog.text


def test_a_file_damaged_midway_fails_alone(group_model, clips, reference, tmp_path):
    """Audio is decoded and chunked as it is transcribed, so a FLAC whose data is garbage
    halfway has chunks queued when its decoding fails: it fails in one line with no output,
    the other files are written as in a clean run, and the exit status is 1 (a file
    failing after some of its chunks ran: tests/test_pipeline.py)."""
    folder = tmp_path / "with damage"
    shutil.copytree(clips, folder)
    long = np.concatenate([noise_audio(30.0, 9)] * 2)  # several 20 s chunks
    sf.write(folder / "damaged.flac", long, 16000)
    data = (folder / "damaged.flac").read_bytes()
    half = len(data) // 2
    (folder / "damaged.flac").write_bytes(data[:half] + b"\x00garbage" * 4000 + data[half:])
    out = tmp_path / "out"
    r = invoke(
        "transcribe",
        folder,
        "-m",
        group_model,
        "-o",
        out,
        "-f",
        "json",
        "-f",
        "srt",
        "--chunk-length",
        "5",
        "--stride-length",
        "1",
    )
    assert r.exit_code == 1, r.output
    (line,) = error_lines(r.stderr)
    assert "damaged.flac: corrupt or truncated audio data" in line
    assert "Traceback" not in r.output
    assert not list(out.glob("damaged.*")) and leftovers(out) == []
    assert "8 done, 0 skipped, 1 failed" in r.stderr
    for ref in reference.iterdir():  # clips shorter than one chunk: the same results
        if ref.suffix == ".json":
            got, want = json.loads((out / ref.name).read_text()), json.loads(ref.read_text())
            assert {**got, "file": ""} == {**want, "file": ""}  # "file" is the input's path
        else:
            assert (out / ref.name).read_bytes() == ref.read_bytes()


def test_symlink_loop_inside_an_input_folder(group_model, clips, tmp_path):
    (clips / "sub").mkdir()
    sf.write(clips / "sub" / "deep.wav", noise_audio(1.0, 9), 16000)
    (clips / "sub" / "loop").symlink_to(clips, target_is_directory=True)
    (clips / "self").symlink_to(clips / "self")  # a link to itself
    out = tmp_path / "out"
    r = invoke("transcribe", clips, "-m", group_model, "-o", out, "-f", "txt")
    assert "Traceback" not in r.output
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.txt")) == sorted(
        [f"c{i}.txt" for i in range(8)] + ["sub/deep.txt"]
    )
    assert r.exit_code == 0 or error_lines(r.stderr) == [], r.stderr


# --- one file failing at any stage ----------------------------------------------------------


def test_a_segmenting_failure_fails_that_file(group_model, clips, tmp_path, monkeypatch):
    from w2v2cli.output import writers

    real = writers.SubtitlesWriter.format

    def fragile(self, transcript, item):
        if item.path.name == "c2.wav":
            raise ValueError("cue ends before it starts")
        return real(self, transcript, item)

    monkeypatch.setattr(writers.SubtitlesWriter, "format", fragile)
    out = tmp_path / "out"
    # In this process: the patch does not reach worker processes (test_workers.py has a
    # writing failure in a worker).
    r = invoke(
        "transcribe",
        clips,
        "-m",
        group_model,
        "-o",
        out,
        "-f",
        "txt",
        "-f",
        "srt",
        "--decode-workers",
        "0",
    )
    assert r.exit_code == 1
    (line,) = error_lines(r.stderr)
    assert "c2.wav" in line and "cannot format the srt output: ValueError" in line
    assert len(list(out.glob("*.srt"))) == 7 and "7 done" in r.stderr


def test_a_model_failure_fails_the_files_of_that_batch(group_model, clips, tmp_path, monkeypatch):
    from w2v2cli.inference import Runner

    real = Runner.submit

    def fragile(self, chunks, *rest):
        if any(c.length == int(3.1 * 16000) for c in chunks):
            raise RuntimeError("CUDA out of memory")
        return real(self, chunks, *rest)

    monkeypatch.setattr(Runner, "submit", fragile)
    out = tmp_path / "out"
    r = invoke("transcribe", clips, "-m", group_model, "-o", out, "-f", "txt")
    assert r.exit_code == 1
    (line,) = error_lines(r.stderr)
    assert "c2.wav" in line and "the model failed on this file: RuntimeError" in line
    assert len(list(out.glob("*.txt"))) == 7


# --- one error model across commands --------------------------------------------------------


@pytest.fixture
def manifest(clips: Path, tmp_path: Path) -> Path:
    path = tmp_path / "m.tsv"
    path.write_text("path\ttext\nclips/c0.wav\tHELLO\nclips/c1.wav\tWORLD\n")
    return path


def commands(manifest: Path, model: Path, lm: Path, tmp_path: Path) -> dict[str, list[object]]:
    text = tmp_path / "t.txt"
    text.write_text("hello world\n")
    return {
        "transcribe": ["transcribe", manifest.parent / "clips", "-m", model, "-o", tmp_path / "o"],
        "eval": ["eval", manifest, "-m", model],
        "lm tune": ["lm", "tune", manifest, "--lm", lm, "-m", model],
        "lm build": ["lm", "build", text, "-o", tmp_path / "x.bin", "--model", model],
    }


@pytest.mark.parametrize("command", ["transcribe", "eval", "lm tune", "lm build"])
def test_same_model_fault_same_status_and_line_in_every_command(
    manifest, tmp_path, tmp_path_factory, command
):
    lm = built_lms(tmp_path_factory).upper_bin
    missing = tmp_path / "no-such-model"
    r = invoke(*commands(manifest, missing, lm, tmp_path)[command])
    assert r.exit_code == 2
    assert r.stderr.strip().splitlines() == [f"error: model folder '{missing}' does not exist"]


@pytest.mark.parametrize("command", ["transcribe", "eval", "lm tune"])
def test_same_option_fault_same_status_and_line_in_every_command(
    manifest, group_model, tmp_path, tmp_path_factory, command
):
    lm = built_lms(tmp_path_factory).upper_bin
    args = commands(manifest, group_model, lm, tmp_path)[command]
    r = invoke(*args, "--chunk-length", "4", "--stride-length", "2")
    assert r.exit_code == 2
    assert r.stderr.strip().splitlines() == [
        "error: chunk length (4 s) must be greater than the two strides together (2 + 2 s)"
    ]


@pytest.mark.parametrize("command", ["transcribe", "eval", "lm tune", "lm build"])
def test_ctrl_c_exits_130_in_every_command(
    manifest, group_model, tmp_path, tmp_path_factory, monkeypatch, command
):
    """Ctrl-C at the first audio file read (or lmplz run, for lm build)."""
    from w2v2cli import audio
    from w2v2cli.lm import build as lm_build

    def interrupt(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(audio, "_check_file", interrupt)
    monkeypatch.setattr(lm_build, "_run_tool", interrupt)
    lm = built_lms(tmp_path_factory).upper_bin
    r = invoke(*commands(manifest, group_model, lm, tmp_path)[command])
    assert r.exit_code == 130, r.output
    assert r.stderr.strip().splitlines()[-1].startswith("error: interrupted")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_just_after_the_temporary_file_is_created_leaves_nothing(
    tmp_path, monkeypatch, sig
):
    """The narrowest window: the signal arrives as ``os.open`` returns the temporary file,
    before its name is recorded (CI once caught SIGTERM there and a ``.NAME.tmp`` stayed).
    The CLI's handlers hold the interruption until the cleanup can see the file."""
    from w2v2cli import fsutil
    from w2v2cli.cli.errors import sigterm_as_exception

    real_open = os.open
    hit = []

    def open_then_signal(*args, **kwargs):
        fd = real_open(*args, **kwargs)
        if not hit:
            hit.append(args[0])
            signal.raise_signal(sig)  # Python runs the handler before this function returns
        return fd

    monkeypatch.setattr(os, "open", open_then_signal)
    with sigterm_as_exception(), pytest.raises(KeyboardInterrupt):  # Terminated is one too
        fsutil.atomic_write(tmp_path / "out.json", "{}")
    monkeypatch.undo()
    assert hit and str(hit[0]).endswith(".tmp")
    assert list(tmp_path.iterdir()) == []
    fsutil.atomic_write(tmp_path / "out.json", "{}")  # nothing held back afterwards
    assert (tmp_path / "out.json").read_text() == "{}"


def test_an_interruption_inside_a_held_block_comes_after_it(tmp_path, monkeypatch):
    """``--save-logits`` builds each archive with Ctrl-C and SIGTERM held back: a signal
    inside ``np.savez`` (which leaves its zip unclosed when interrupted; that zip's
    clean-up printed a traceback at exit, 2 SIGTERM runs in 25) is raised once the archive
    is whole, and nothing is written."""
    from w2v2cli.errors import Terminated
    from w2v2cli.evaluation.emissions import LogitsStore
    from w2v2cli.fsutil import interrupt, interruptions_held
    from w2v2cli.records import Emissions

    steps = []
    with pytest.raises(KeyboardInterrupt):
        with interruptions_held():
            interrupt(KeyboardInterrupt())  # what the signal handler calls
            steps.append("the rest of the block ran")
    assert steps == ["the rest of the block ran"]

    real, whole = np.savez, []

    def savez_hit_by_sigterm(file, **arrays):
        interrupt(Terminated())  # the signal lands inside np.savez
        real(file, **arrays)
        whole.append(True)  # ...which still finished its archive

    monkeypatch.setattr(np, "savez", savez_hit_by_sigterm)
    store = LogitsStore(tmp_path / "logits", "m", None, None)
    em = Emissions(np.zeros((3, 5), np.float32), np.arange(3) * 0.02, 0.02, 0.06)
    entry = type("Entry", (), {"audio": tmp_path / "a.wav"})()
    with pytest.raises(Terminated):
        store.save(0, entry, em)
    assert whole == [True]
    assert not (tmp_path / "logits").exists() or list((tmp_path / "logits").iterdir()) == []

"""File workers (``pipeline/workers.py``): decoding, formatting and writing each file in
worker processes, on by default where the machine has cores to spare.

Real processes throughout: runs with and without workers compared byte for byte for every
output format and decoder (greedy, beam, beam with a real KenLM model), the order of
results and of ``--stdout``, a worker killed with SIGKILL mid-run and the rerun that
finishes its files, SIGTERM sent to the whole process group, and the default's choice.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import soundfile as sf
from click.testing import CliRunner
from conftest import noise_audio
from lm_fixtures import built_lms

from w2v2cli.cli import main
from w2v2cli.pipeline.workers import MAX_DEFAULT_WORKERS, default_workers

#: Lengths that make workers finish out of input order: a long file, then short ones.
SECONDS = [6.0, 0.7, 3.3, 0.9, 2.4, 1.1, 4.2, 0.8]


def invoke(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args])


def leftovers(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.rglob(".*") if ".tmp" in p.name)


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def one_process_run(model: Path, clips: Path, out: Path) -> None:
    """What one process writes for ``clips`` as JSON and SRT: the reference."""
    common = ["-f", "json", "-f", "srt", "-q", "--decode-workers", "0"]
    r = invoke("transcribe", clips, "-m", model, "-o", out, *common)
    assert r.exit_code == 0, r.output


@pytest.fixture
def clips(tmp_path: Path) -> Path:
    folder = tmp_path / "clips"
    folder.mkdir()
    for i, secs in enumerate(SECONDS):
        sf.write(folder / f"c{i}.wav", noise_audio(secs, 70 + i), 16000)
    return folder


def decoder_args(decoder: str, factory: pytest.TempPathFactory) -> list[object]:
    if decoder == "greedy":
        return ["--decoder", "greedy"]
    args: list[object] = ["--decoder", "beam", "--beam-width", "8"]
    if decoder == "beam+lm":
        args += ["--lm", built_lms(factory).upper_bin]
    return args


def test_default_workers_follow_the_usable_cores():
    """Two cores stay with the run's own process (the model, the audio reader), the rest
    take files (at most 8), from four cores on; on CUDA at least one; beam search takes
    every core."""
    assert default_workers("greedy", False, cores=1) == 0
    assert default_workers("greedy", False, cores=2) == 0
    assert default_workers("greedy", False, cores=3) == 0
    assert default_workers("greedy", False, cores=4) == 2
    assert default_workers("greedy", False, cores=6) == 4
    assert default_workers("greedy", False, cores=64) == MAX_DEFAULT_WORKERS
    assert default_workers("greedy", True, cores=1) == 1
    assert default_workers("greedy", True, cores=2) == 1
    assert default_workers("greedy", True, cores=16) == MAX_DEFAULT_WORKERS
    assert default_workers("beam", False, cores=1) == 0
    assert default_workers("beam", False, cores=6) == 6


def test_the_choice_is_shown_with_verbose(group_model, clips, tmp_path, caplog):
    """``-v`` says how many workers the run chose, and from how many cores."""
    caplog.set_level(logging.DEBUG, logger="w2v2cli")
    out = tmp_path / "out"
    r = invoke("-v", "transcribe", clips, "-m", group_model, "-o", out, "-f", "txt", "-q")
    assert r.exit_code == 0, r.output
    cores = len(os.sched_getaffinity(0))
    expected = default_workers("greedy", False, cores=cores)
    assert f"file workers: {expected} ({cores} usable cores, greedy decoding" in caplog.text
    caplog.clear()
    r = invoke(
        "-v",
        "transcribe",
        clips,
        "-m",
        group_model,
        "-o",
        out,
        "--overwrite",
        "--decode-workers",
        "2",
        "-q",
    )
    assert r.exit_code == 0 and "file workers:" not in caplog.text  # asked: nothing to explain


@pytest.mark.parametrize("decoder", ["greedy", "beam", "beam+lm"])
def test_workers_write_what_one_process_writes(
    decoder, group_model, clips, tmp_path, tmp_path_factory
):
    """Every format (``-f all``), byte for byte, with 0 (one process), 2 and the default
    number of workers."""
    common = ["transcribe", clips, "-m", group_model, "-f", "all", "-q"]
    common += decoder_args(decoder, tmp_path_factory)
    trees = {}
    for workers in ("0", "2", None):
        out = tmp_path / f"out-{workers}"
        extra = [] if workers is None else ["--decode-workers", workers]
        r = invoke(*common, "-o", out, *extra)
        assert r.exit_code == 0, r.output
        assert leftovers(out) == []
        trees[workers] = tree(out)
    assert len(trees["0"]) == 5 * len(SECONDS)
    assert trees["2"] == trees["0"]
    assert trees[None] == trees["0"]
    if decoder != "greedy":
        doc = json.loads(trees["2"]["c0.json"])
        assert doc["decoder"] == "beam"


@pytest.mark.parametrize("fmt", ["json", "srt", "txt"])
def test_stdout_keeps_input_order(fmt, group_model, clips):
    """With ``--stdout`` the workers format and this process writes, in input order, what
    one process writes."""
    base = ["transcribe", clips, "-m", group_model, "--stdout", "-f", fmt, "-q"]
    one = invoke(*base, "--decode-workers", "0")
    two = invoke(*base, "--decode-workers", "2")
    assert one.exit_code == two.exit_code == 0, two.output
    assert two.stdout == one.stdout
    if fmt == "json":
        paths = [json.loads(line)["file"] for line in two.stdout.splitlines()]
    else:
        paths = [ln[4:-4] for ln in two.stdout.splitlines() if ln.startswith("==> ")]
    assert [Path(p).name for p in paths] == [f"c{i}.wav" for i in range(len(SECONDS))]


def test_results_come_in_input_order(group_model, clips, tmp_path):
    from w2v2cli import Transcriber, discover
    from w2v2cli.options import DecodeOptions, ModelOptions, OutputOptions, RunOptions
    from w2v2cli.run import iter_run

    out = tmp_path / "out"
    options = RunOptions(
        model=ModelOptions(model=str(group_model)),
        decoding=DecodeOptions(decoder="greedy", workers=3),
        output=OutputOptions(output_dir=out, formats=("json", "vtt")),
    )
    items = discover([str(clips)], output_dir=out).items
    with Transcriber(options) as t:
        results = list(iter_run(items, t))
        assert t.file_workers == 3 and t._output_pool is not None  # the work went there
    assert [r.item for r in results] == list(items)
    assert all(r.status == "done" and len(r.outputs) == 2 for r in results)
    assert [r.transcript.text for r in results] == [
        json.loads((out / f"c{i}.json").read_text())["text"] for i in range(len(SECONDS))
    ]


def test_an_output_that_cannot_be_written_fails_its_file_alone(group_model, clips, tmp_path):
    reference = tmp_path / "reference"
    one_process_run(group_model, clips, reference)
    out = tmp_path / "out"
    (out / "c3.json").mkdir(parents=True)  # a folder where c3's JSON must go
    r = invoke(
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
        "-q",
        "--decode-workers",
        "2",
        "--overwrite",
    )
    assert r.exit_code == 1
    (line,) = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert "c3.wav" in line and "cannot write" in line and str(out / "c3.json") in line
    written = tree(out)
    assert len(written) == 2 * len(SECONDS) - 2
    assert all(written[name] == (reference / name).read_bytes() for name in written)
    assert leftovers(out) == []


def test_a_worker_killed_fails_its_files_and_a_rerun_finishes_them(group_model, clips, tmp_path):
    """SIGKILL (the kernel's out-of-memory killer) on the worker while it holds files:
    those files fail with one line each, the run goes on with a fresh worker, nothing is
    half-written, and a rerun does the failed files only."""
    from w2v2cli import Transcriber, discover, run
    from w2v2cli.options import DecodeOptions, ModelOptions, OutputOptions, RunOptions
    from w2v2cli.output import get_writers

    out = tmp_path / "out"
    formats = ("json", "srt")
    options = RunOptions(
        model=ModelOptions(model=str(group_model)),
        decoding=DecodeOptions(decoder="greedy", workers=1),
        output=OutputOptions(output_dir=out, formats=formats),
    )
    items = discover([str(clips)], output_dir=out).items
    with Transcriber(options) as t:
        pool = t.output_workers(get_writers(list(formats)), False)
        (pid,) = pool.pids(wait=True)
        os.kill(pid, signal.SIGSTOP)  # holds every file sent to it from now on
        results: list = []
        runner = threading.Thread(target=lambda: results.append(run(items, transcriber=t)))
        runner.start()
        deadline = time.monotonic() + 60
        while pool.in_flight() < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert pool.in_flight() >= 2, "the run never handed files to the worker"
        os.kill(pid, signal.SIGKILL)
        runner.join(120)
        assert not runner.is_alive()
        (summary,) = results
        failed = summary.failed
        assert 2 <= len(failed) < len(items)
        assert all("worker process died" in r.error for r in failed)
        assert summary.count("done") == len(items) - len(failed)
        assert leftovers(out) == []
        for r in failed:
            assert not (out / f"{r.item.path.stem}.json").exists()
        again = run(items, transcriber=t)  # resume: the same transcriber, a fresh worker
    assert again.count("done") == len(failed)
    assert again.count("skipped") == len(items) - len(failed)
    reference = tmp_path / "reference"
    one_process_run(group_model, clips, reference)
    assert tree(out) == tree(reference)


@pytest.mark.slow
def test_sigterm_to_the_process_group_leaves_nothing_half_written(group_model, tmp_path):
    """A scheduler stopping the job signals every process of it (audio readers too):
    workers that were writing remove their temporary files, the run exits 143 with one
    line, no process is left behind, and a rerun finishes the rest."""
    many = tmp_path / "many"
    many.mkdir()
    for i in range(60):
        sf.write(many / f"m{i:03d}.wav", noise_audio(4.0, i), 16000)
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "w2v2cli",
        "transcribe",
        str(many),
        "-m",
        str(group_model),
        "-o",
        str(out),
        "-f",
        "json",
        "-f",
        "srt",
        "-q",
        "--decode-workers",
        "2",
        "--read-workers",
        "2",
    ]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while len(list(out.glob("*.srt"))) < 3:
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "Traceback" not in err
    assert "terminated" in err.strip().splitlines()[-1]
    for _ in range(100):  # the forkserver and workers follow the run out
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("processes of the run outlived it")
    assert leftovers(out) == []
    for p in out.glob("*.json"):
        assert json.loads(p.read_text())["schema"] == "w2v2cli.transcript/1"
    again = subprocess.run(cmd, stderr=subprocess.PIPE, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert len(list(out.glob("*.json"))) == len(list(out.glob("*.srt"))) == 60

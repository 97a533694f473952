"""--ray and transcribe_dataset on a real local Ray instance (2 CPUs, no GPU): the same
bytes as a local run in every format, greedy and beam; failures per file; a worker that
dies is retried without duplicate or partial outputs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
from click.testing import CliRunner

from w2v2cli.cli import main

try:
    import ray
except ImportError:  # CI installs every extra: a missing one fails, saying how to get it
    pytest.fail(
        "Ray Data is not installed: pip install -e '.[ray]' (install.sh does)", pytrace=False
    )

pytestmark = pytest.mark.slow


def invoke(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance for the module (2 CPUs, as on this machine); runs find it
    initialised and use it."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def inputs(speech, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five spoken sentences (one long, chunked with stride), in a tree, and a broken file."""
    root = tmp_path_factory.mktemp("ray-inputs")
    (root / "sub").mkdir()
    for k, path in enumerate(speech.paths[:4]):
        (root / ("sub" if k % 2 else "") / path.name).write_bytes(path.read_bytes())
    (root / "long.wav").write_bytes(speech.long.read_bytes())
    (root / "sub" / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    return root


@pytest.mark.parametrize("decoder", ["greedy", "beam"])
def test_same_bytes_as_a_local_run_in_every_format(
    local_ray, inputs: Path, trained_model: Path, tmp_path: Path, tmp_path_factory, decoder: str
) -> None:
    args = [
        "-m",
        trained_model,
        "-f",
        "all",
        "--chunk-length",
        "6",
        "--stride-length",
        "1",
        "--decoder",
        decoder,
        "-q",
    ]
    if decoder == "beam":
        from lm_fixtures import built_lms

        args += ["--lm", built_lms(tmp_path_factory).upper_bin, "--beam-width", "16"]
    local = invoke("transcribe", inputs, "-o", tmp_path / "local", *args)
    assert local.exit_code == 1 and "broken.wav" in local.output
    on_ray = invoke(
        "transcribe",
        inputs,
        "-o",
        tmp_path / "ray",
        "--ray",
        *args,
        "--manifest-out",
        tmp_path / "run.jsonl",
    )
    assert on_ray.exit_code == 1, on_ray.output
    assert on_ray.output.count("error:") == 1 and "broken.wav" in on_ray.output
    want, got = tree(tmp_path / "local"), tree(tmp_path / "ray")
    assert len(want) == 5 * 5 and got == want
    lines = [json.loads(x) for x in (tmp_path / "run.jsonl").read_text().splitlines()]
    assert sorted(x["status"] for x in lines) == ["done"] * 5 + ["failed"]
    assert all(
        json.loads(want[str(Path(o).relative_to(tmp_path / "ray"))])["text"] == x["text"]
        for x in lines
        for o in x["outputs"]
        if o.endswith(".json")
    )


def test_vad_on_ray_gives_the_local_runs_bytes(
    local_ray, inputs: Path, trained_model: Path, tmp_path: Path
) -> None:
    """--vad runs in the model actors' engine: the same cuts, times and text as locally."""
    from test_vad import require_silero

    require_silero()
    args = ["-m", trained_model, "--vad", "-f", "json", "-f", "srt", "-q"]
    assert invoke("transcribe", inputs, "-o", tmp_path / "local", *args).exit_code == 1
    assert invoke("transcribe", inputs, "-o", tmp_path / "ray", "--ray", *args).exit_code == 1
    want = tree(tmp_path / "local")
    assert len(want) == 10 and tree(tmp_path / "ray") == want


def test_stdout_carries_only_results_in_input_order(
    local_ray, inputs: Path, trained_model: Path
) -> None:
    args = ["transcribe", inputs, "-m", trained_model, "-f", "json", "--stdout"]
    local = invoke(*args, "-q")
    on_ray = invoke(*args, "--ray")
    assert on_ray.stdout == local.stdout and len(on_ray.stdout.splitlines()) == 5
    summary = on_ray.stderr.strip().splitlines()[-1]
    assert summary.startswith("5 done, 0 skipped, 1 failed")
    assert "Running" not in on_ray.stderr and "Dataset" not in on_ray.stderr  # Ray's own bars


def test_existing_outputs_are_skipped_as_locally(
    local_ray, inputs: Path, trained_model: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    args = ["transcribe", inputs, "-m", trained_model, "-o", out, "--ray"]
    assert invoke(*args).exit_code == 1
    first = tree(out)
    (out / "long.json").unlink()
    again = invoke(*args)
    assert "1 done, 4 skipped, 1 failed" in again.stderr
    assert tree(out) == first


def test_transcribe_dataset_of_paths_and_of_arrays(local_ray, speech, trained_model: Path) -> None:
    import ray.data

    from w2v2cli import ModelOptions, RunOptions, Transcriber
    from w2v2cli.scale.ray_data import transcribe_dataset

    options = RunOptions(model=ModelOptions(str(trained_model)))
    paths = [str(p) for p in speech.paths[:3]]
    with Transcriber(options) as t:
        want = [t.transcribe_file(p) for p in paths]
    rows = transcribe_dataset(
        ray.data.from_items([{"path": p, "speaker": k} for k, p in enumerate(paths)]), options
    ).take_all()
    assert [r["text"] for r in rows] == [w.text for w in want]
    assert [r["speaker"] for r in rows] == [0, 1, 2] and all(r["error"] == "" for r in rows)
    assert [r["path"] for r in rows] == paths and "audio" not in rows[0]
    words = json.loads(rows[0]["words"])
    assert [w["word"] for w in words] == [w.text for w in want[0].words]
    assert words[0]["start"] == want[0].words[0].start
    # Arrays at the files' own rate (espeak-ng's 22.05 kHz) are resampled as files are.
    audio = [sf.read(p, dtype="float32") for p in paths]
    assert {rate for _, rate in audio} == {22050}
    arrays = ray.data.from_items([{"audio": a, "sampling_rate": rate} for a, rate in audio])
    assert [r["text"] for r in transcribe_dataset(arrays, options).take_all()] == [
        w.text for w in want
    ]
    bad = transcribe_dataset(ray.data.from_items([{"path": "/nonexistent.wav"}]), options)
    (row,) = bad.take_all()
    assert row["text"] == "" and "no such file" in row["error"]


def test_a_bad_model_or_lm_ends_the_run_in_one_line(
    local_ray, inputs: Path, trained_model: Path, tmp_path: Path
) -> None:
    """Faults of the whole run end it as locally: a model that cannot load (found in the
    driver, before Ray does any work), an LM that cannot load (found in a decoding actor)."""
    broken = tmp_path / "model"
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    r = invoke("transcribe", inputs / "long.wav", "-m", broken, "--ray", "-o", tmp_path / "o")
    assert r.exit_code == 2 and "cannot load model" in r.output
    assert len(r.output.strip().splitlines()) == 1
    lm = tmp_path / "lm.arpa"
    lm.write_text("this is not an ARPA file\n")
    r = invoke(
        "transcribe", inputs, "-m", trained_model, "--ray", "--lm", lm, "-o", tmp_path / "o2", "-q"
    )
    assert r.exit_code == 2, r.output
    assert "lm.arpa" in r.output and len(r.output.strip().splitlines()) == 1
    assert not (tmp_path / "o2").exists() or not list((tmp_path / "o2").rglob("*.json"))


@pytest.fixture(scope="module")
def local_all(inputs: Path, trained_model: Path, tmp_path_factory) -> dict[str, bytes]:
    """What a local run writes for ``inputs`` in every format."""
    out = tmp_path_factory.mktemp("local-all")
    local = invoke("transcribe", inputs, "-m", trained_model, "-o", out, "-f", "all", "-q")
    assert local.exit_code == 1  # broken.wav
    return tree(out)


def ray_run(inputs: Path, model: Path, out: Path, manifest: Path, **env: str):
    """``w2v2 transcribe --ray`` as its own process, which starts (and stops) its own
    local Ray; ``env``: the test faults of ``ray_stages``."""
    if ray.is_initialized():
        ray.shutdown()
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "w2v2cli",
            "transcribe",
            str(inputs),
            "-m",
            str(model),
            "-o",
            str(out),
            "-f",
            "all",
            "--ray",
            "--manifest-out",
            str(manifest),
        ],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), **env},
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_a_dead_worker_is_retried_without_duplicates_or_partial_files(
    inputs: Path, trained_model: Path, tmp_path: Path, local_all
) -> None:
    """The first model actor is killed with SIGKILL in its first batch, as the kernel's
    out-of-memory killer would; Ray restarts it and retries the batch: the outputs are the
    local run's, each file has one manifest line, no temporary file is left."""
    from w2v2cli.scale.ray_stages import CRASH_ONCE_ENV

    marker = tmp_path / "crashed"
    out = tmp_path / "ray"
    run = ray_run(
        inputs, trained_model, out, tmp_path / "run.jsonl", **{CRASH_ONCE_ENV: str(marker)}
    )
    assert run.returncode == 1, run.stderr
    assert marker.is_file()  # it did die
    assert tree(out) == local_all
    lines = (tmp_path / "run.jsonl").read_text().splitlines()
    assert len(lines) == 6 and len({json.loads(x)["audio_filepath"] for x in lines}) == 6
    assert run.stdout == ""


def test_files_ray_gives_up_on_are_reported_and_a_rerun_finishes_them(
    inputs: Path, speech, trained_model: Path, tmp_path: Path
) -> None:
    """A file whose batch kills its model actor (SIGKILL) on every try: once Ray's retries
    are spent (ray_stages.MODEL_RETRIES) the files of that batch are reported not done,
    one error line each, and the run goes on: the other batch is written whole, the
    status is 1, the manifest lists each file once. A rerun finishes them: the outputs
    are then the local run's. Twelve inputs, so that they make two batches of a model
    actor (ray_stages.FILES_PER_CALL), the file that kills it in the second."""
    from w2v2cli.scale.ray_stages import CRASH_ON_ENV, FILES_PER_CALL

    many = Path(shutil.copytree(inputs, tmp_path / "inputs"))
    for path in speech.paths[4:10]:
        shutil.copyfile(path, many / path.name)
    every = {str(p) for p in many.rglob("*.wav")}
    broken = str(many / "sub" / "broken.wav")
    assert len(every) == 12 > FILES_PER_CALL
    local = invoke("transcribe", many, "-m", trained_model, "-o", tmp_path / "local", "-f", "all")
    assert local.exit_code == 1
    want = tree(tmp_path / "local")

    out = tmp_path / "ray"
    poison = str(many / "sub" / "s03.wav")
    run = ray_run(many, trained_model, out, tmp_path / "run.jsonl", **{CRASH_ON_ENV: "s03.wav"})
    assert run.returncode == 1, run.stderr
    assert run.stdout == ""
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    not_done = {line.split()[1].rstrip(":") for line in errors if "not done: Ray gave up" in line}
    assert poison in not_done, run.stderr
    assert len(errors) == len(not_done | {broken})  # one line each
    written = tree(out)
    assert written == {k: v for k, v in want.items() if k in written}  # whole files
    done = {str(many / Path(k).with_suffix(".wav")) for k in written}
    assert done, "the run went on with the other batch"
    assert done | not_done | {broken} == every and not done & not_done
    lines = [json.loads(x) for x in (tmp_path / "run.jsonl").read_text().splitlines()]
    assert sorted(x["audio_filepath"] for x in lines) == sorted(every)
    assert {x["audio_filepath"] for x in lines if x["status"] == "done"} == done

    again = ray_run(many, trained_model, out, tmp_path / "again.jsonl")
    assert again.returncode == 1, again.stderr  # broken.wav, as locally
    finished = len(not_done - {broken})
    assert f"{finished} done, {11 - finished} skipped, 1 failed" in again.stderr
    assert tree(out) == want


def test_missing_extra_and_bad_address_are_one_line(
    inputs: Path, trained_model: Path, monkeypatch
) -> None:
    if ray.is_initialized():
        ray.shutdown()
    r = invoke("transcribe", inputs / "long.wav", "-m", trained_model, "--ray", "127.0.0.1:1", "-q")
    assert r.exit_code == 2 and "cannot start or reach Ray" in r.output
    assert len(r.output.strip().splitlines()) == 1
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    r = invoke("transcribe", inputs / "long.wav", "-m", trained_model, "--ray", "-q")
    assert r.exit_code == 2 and "pip install 'w2v2cli[ray]'" in r.output

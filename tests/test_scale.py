"""--shard and --manifest-out: shards cover every file exactly once, whatever the machine,
in parallel processes appending to one manifest; reruns redo only what is missing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner
from conftest import noise_audio

from w2v2cli.cli import main
from w2v2cli.cli.transcribe import ray_address
from w2v2cli.discovery import discover
from w2v2cli.errors import ConfigError
from w2v2cli.options import DecodeOptions, ModelOptions, RunOptions
from w2v2cli.scale import Shard, parse_shard, shard_index
from w2v2cli.scale.ray_plan import DECODE_CPUS, RayOptions, plan_stages


def invoke(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def corpus(root: Path, n: int = 12) -> Path:
    """``n`` short clips in two sub-folders and the root, and one file that is not audio."""
    for k in range(n):
        sub = root / ("a" if k % 3 == 0 else "b/c" if k % 3 == 1 else "")
        sub.mkdir(parents=True, exist_ok=True)
        sf.write(sub / f"clip{k:02d}.wav", noise_audio(0.4 + 0.1 * (k % 4), seed=k), 16000)
    (root / "b" / "broken.wav").write_text("not audio at all")
    return root


def manifest_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# --- pure ------------------------------------------------------------------------------


def test_parse_shard_and_its_one_line_errors() -> None:
    assert parse_shard("2/8") == Shard(2, 8) and str(parse_shard(" 3 / 4 ")) == "3/4"
    for bad in ("0/3", "4/3", "1/0", "a/b", "2", "-1/3"):
        with pytest.raises(ConfigError) as err:
            parse_shard(bad)
        assert "\n" not in str(err.value) and "--shard" in str(err.value)


def test_shard_index_is_stable_and_spreads_keys() -> None:
    keys = [f"sub{k % 7}/file{k:05d}.wav" for k in range(4000)]
    first = [shard_index(k, 8) for k in keys]
    assert first == [shard_index(k, 8) for k in reversed(keys)][::-1]  # order-free
    counts = Counter(first)
    assert sorted(counts) == list(range(1, 9))
    assert min(counts.values()) > 4000 / 8 * 0.8  # no shard starves
    assert all(shard_index(k, 1) == 1 for k in keys[:50])


def test_shards_depend_on_the_tree_not_where_it_is_mounted(tmp_path: Path) -> None:
    one = corpus(tmp_path / "disk1" / "data")
    two = tmp_path / "elsewhere" / "deeper" / "data"
    shutil.copytree(one, two)
    for n in (2, 3, 5):
        for i in range(1, n + 1):
            a = [item.id for item in discover([one], shard=Shard(i, n)).items]
            b = [item.id for item in discover([two], shard=Shard(i, n)).items]
            assert a == b
        union = [x.id for i in range(1, n + 1) for x in discover([one], shard=Shard(i, n)).items]
        assert sorted(union) == sorted(x.id for x in discover([one]).items)


def test_a_missing_input_does_not_move_the_other_files_between_shards(tmp_path: Path) -> None:
    """Shards are computed from the inputs as typed: a machine where one input folder is
    missing splits the files it has exactly as a machine that has both, and reports the
    missing folder in one shard only."""
    a = corpus(tmp_path / "data" / "a-set")
    b = corpus(tmp_path / "data" / "b-set", n=5)
    on_x = [
        {x.path for x in discover([a, b], shard=Shard(i, 3)).items if a in x.path.parents}
        for i in (1, 2, 3)
    ]
    assert sum(map(len, on_x)) == 13  # 12 clips and broken.wav
    shutil.rmtree(b)  # machine y: the same command, b-set missing
    on_y = [discover([a, b], shard=Shard(i, 3)) for i in (1, 2, 3)]
    assert [{x.path for x in d.items} for d in on_y] == on_x
    assert sum(len(d.errors) for d in on_y) == 1


def test_a_shard_names_outputs_as_the_whole_run_does(tmp_path: Path) -> None:
    root = tmp_path / "in"
    root.mkdir()
    for name in ("x.wav", "x.flac", "y.wav", "z.ogg"):  # x.wav and x.flac clash
        sf.write(root / name, noise_audio(0.3, seed=1), 16000, format=name.split(".")[-1])
    whole = {i.path: i.out_base for i in discover([root], output_dir=tmp_path / "o").items}
    for i in (1, 2):
        part = discover([root], output_dir=tmp_path / "o", shard=Shard(i, 2))
        assert part.found == 4
        for item in part.items:
            assert item.out_base == whole[item.path]


def test_ray_address_is_told_apart_from_an_input(tmp_path: Path) -> None:
    data = tmp_path / "talks"
    data.mkdir()
    assert ray_address(None, ()) == (None, ())
    assert ray_address("auto", (data,)) == ("auto", (data,))
    assert ray_address("ray://head:10001", ()) == ("ray://head:10001", ())
    assert ray_address("10.0.0.5:6379", (data,)) == ("10.0.0.5:6379", (data,))
    assert ray_address(str(data), ()) == ("auto", (data,))  # `--ray talks/`
    with pytest.raises(ConfigError):
        ray_address("no-such-thing", ())


@pytest.mark.parametrize(
    ("cpus", "gpus", "device", "decoder"),
    [
        (2, 0, "auto", "greedy"),
        (2, 0, "cpu", "beam"),
        (16, 0, "auto", "beam"),
        (64, 8, "auto", "beam"),
        (8, 1, "cuda", "greedy"),
        (1, 0, "auto", "beam"),
    ],
)
def test_stage_plans_fit_the_cluster(cpus: int, gpus: int, device: str, decoder: str) -> None:
    options = RunOptions(model=ModelOptions(device=device), decoding=DecodeOptions(decoder))
    plan = plan_stages(options, RayOptions(), cpus, gpus)
    assert plan.actors >= 1 and plan.decoders >= 1
    # One of each stage always fits at once (else Ray Data would wait forever).
    assert plan.model_cpus + DECODE_CPUS + plan.decoder_cpus <= cpus + 1e-9
    assert plan.options.decoding.workers == 0  # Ray's actors are the parallelism
    if gpus:
        assert plan.options.model.device == "cuda" and plan.actors == gpus
        assert plan.model_gpus == 1
    else:
        assert plan.options.model.device == "cpu" and plan.model_gpus == 0
    if decoder == "beam" and cpus >= 16:  # beam search gets whole CPUs: GPUs wait on it
        assert plan.decoder_cpus == 1 and plan.decoders >= (cpus // 2 if gpus else 2)
    with pytest.raises(ConfigError, match="GPUs"):
        plan_stages(RunOptions(model=ModelOptions(device="cuda")), RayOptions(), cpus, 0)


def test_stage_plans_fit_small_nodes_and_name_the_actors_gpu() -> None:
    """An actor's CPUs must fit on one node (4 nodes of 2 CPUs, not one of 8), and an
    actor's GPU is its own "cuda" whatever --device named."""
    plan = plan_stages(RunOptions(), RayOptions(), 8, 0, node_cpus=2)
    assert plan.model_cpus + DECODE_CPUS + plan.decoder_cpus <= 2
    assert plan.options.model.threads == 1 and plan.actors >= 4
    cuda = plan_stages(RunOptions(model=ModelOptions(device="cuda:1")), RayOptions(), 16, 2)
    assert cuda.options.model.device == "cuda" and cuda.actors == 2


# --- the command line ------------------------------------------------------------------


@pytest.mark.slow
def test_shards_as_parallel_processes_cover_every_file_once(
    group_model: Path, tmp_path: Path
) -> None:
    """Three shards run as three processes at once (as a Slurm array would), all
    appending to one manifest: every file is done exactly once, by one shard, with the
    names a single run gives; every manifest line is whole."""
    data = corpus(tmp_path / "data")
    out, manifest = tmp_path / "out", tmp_path / "run.jsonl"
    missing = tmp_path / "gone.wav"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "w2v2cli",
                "transcribe",
                str(data),
                str(missing),
                "-m",
                str(group_model),
                "-o",
                str(out),
                "-f",
                "txt",
                "-f",
                "json",
                "--shard",
                f"{i}/3",
                "--manifest-out",
                str(manifest),
                "-q",
                "--backend",
                "torch",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in (1, 2, 3)
    ]
    finished = [p.communicate(timeout=600) + (p.returncode,) for p in procs]
    lines = manifest_lines(manifest)
    audio = sorted(str(p) for p in data.rglob("*.wav"))
    assert sorted(x["audio_filepath"] for x in lines) == sorted(audio + [str(missing)])
    by_status = Counter(x["status"] for x in lines)
    assert by_status == {"done": 12, "failed": 2}
    broken = next(x for x in lines if x["audio_filepath"].endswith("broken.wav"))
    assert broken["error"] and broken["text"] is None and broken["outputs"] == []
    gone = next(x for x in lines if x["audio_filepath"] == str(missing))
    assert gone["error"] == "no such file or directory"
    # The shards with a failure exit 1, the others 0; each failure printed by one shard.
    failing_shards = {x["shard"] for x in lines if x["status"] == "failed"}
    for i, (_, stderr, code) in enumerate(finished, start=1):
        assert code == (1 if f"{i}/3" in failing_shards else 0), stderr
    assert sum(stderr.count("error:") for _, stderr, _ in finished) == 2
    # Same names and texts as one unsharded run.
    whole = invoke(
        "transcribe",
        data,
        "-m",
        group_model,
        "-o",
        tmp_path / "whole",
        "-f",
        "txt",
        "-q",
        "--backend",
        "torch",
    )
    assert whole.exit_code == 1
    got = {p.relative_to(out): p.read_text() for p in out.rglob("*.txt")}
    want = {
        p.relative_to(tmp_path / "whole"): p.read_text()
        for p in (tmp_path / "whole").rglob("*.txt")
    }
    assert got == want and len(got) == 12
    for x in lines:
        if x["status"] == "done":
            txt = Path(next(o for o in x["outputs"] if o.endswith(".txt")))
            assert txt.read_text().strip() == x["text"]


@pytest.mark.slow
def test_a_rerun_of_one_shard_redoes_only_its_missing_files(
    group_model: Path, tmp_path: Path
) -> None:
    data = corpus(tmp_path / "data")
    (data / "b" / "broken.wav").unlink()
    out = tmp_path / "out"
    args = [
        "transcribe",
        data,
        "-m",
        group_model,
        "-o",
        out,
        "-f",
        "txt",
        "-q",
        "--backend",
        "torch",
        "--shard",
        "2/3",
    ]
    assert invoke(*args, "--manifest-out", tmp_path / "first.jsonl").exit_code == 0
    first = manifest_lines(tmp_path / "first.jsonl")
    assert first and all(x["status"] == "done" and x["shard"] == "2/3" for x in first)
    lost = Path(first[0]["outputs"][0])
    lost.unlink()
    assert invoke(*args, "--manifest-out", tmp_path / "again.jsonl").exit_code == 0
    again = manifest_lines(tmp_path / "again.jsonl")
    assert [x["audio_filepath"] for x in again if x["status"] == "done"] == [
        first[0]["audio_filepath"]
    ]
    assert sum(x["status"] == "skipped" for x in again) == len(first) - 1
    assert lost.is_file()


def test_an_empty_shard_is_not_a_failure(group_model: Path, tmp_path: Path) -> None:
    sf.write(tmp_path / "only.wav", noise_audio(0.5, seed=3), 16000)
    owner = shard_index("only.wav", 5)
    other = 1 + owner % 5
    result = invoke(
        "transcribe",
        tmp_path / "only.wav",
        "-m",
        group_model,
        "--shard",
        f"{other}/5",
        "-o",
        tmp_path / "o",
    )
    assert result.exit_code == 0 and f"no audio files in shard {other}/5" in result.output
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_eval_reads_a_run_manifest_as_the_reference(
    trained_model: Path, speech, tmp_path: Path
) -> None:
    """A run manifest scores another run against it: the same model and decoder agree
    exactly; failed inputs are left out."""
    manifest = tmp_path / "run.jsonl"
    paths = speech.paths[:3]
    r = invoke(
        "transcribe",
        *paths,
        tmp_path / "missing.wav",
        "-m",
        trained_model,
        "-o",
        tmp_path / "o",
        "--manifest-out",
        manifest,
        "-q",
    )
    assert r.exit_code == 1
    lines = manifest_lines(manifest)
    assert [x["status"] for x in lines].count("done") == 3
    report = tmp_path / "report.jsonl"
    e = invoke("eval", manifest, "-m", trained_model, "--report", report, "-q")
    assert e.exit_code == 0, e.output
    rows = manifest_lines(report)
    assert len(rows) == 3 and all(row["wer"] == 0 for row in rows)
    texts = {x["audio_filepath"]: x["text"] for x in lines if x["status"] == "done"}
    assert set(texts.values()) == {row["hypothesis"] for row in rows}


def test_manifest_errors_are_one_line(group_model: Path, tmp_path: Path) -> None:
    sf.write(tmp_path / "a.wav", np.zeros(8000, np.float32), 16000)
    blocked = tmp_path / "file"
    blocked.write_text("x")
    r = invoke(
        "transcribe", tmp_path / "a.wav", "-m", group_model, "--manifest-out", blocked / "run.jsonl"
    )
    assert r.exit_code == 2
    assert "run manifest" in r.output and len(r.output.strip().splitlines()) == 1

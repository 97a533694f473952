"""Full int8 quantization on OpenVINO (inference/quantize.py): calibrated on --calibration
audio or on the run's own input, cached, exported, and within one WER point of fp32 on the
trained model. The calibration speech is other sentences than the test set's."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import jiwer
import pytest
from click.testing import CliRunner
from speech import Speech

from w2v2cli import Transcriber
from w2v2cli.cli import main
from w2v2cli.errors import ConfigError
from w2v2cli.inference import ir_cache, quantize
from w2v2cli.options import ModelOptions, RunOptions

pytestmark = pytest.mark.slow

CALIBRATION_SENTENCES = [
    "the rain in spain stays mainly in the plain",
    "how much wood would a woodchuck chuck",
    "to be or not to be that is the question",
    "it was the best of times it was the worst of times",
    "an apple a day keeps the doctor away",
    "birds of a feather flock together",
]


@pytest.fixture(scope="module")
def calibration(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("calibration")
    for i, text in enumerate(CALIBRATION_SENTENCES):
        voice = "en" if i % 2 else "en-us"
        subprocess.run(
            ["espeak-ng", "-v", voice, "-w", str(folder / f"c{i}.wav"), text], check=True
        )
    return folder


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for the module: the fp32 IR and the calibrated one are made once."""
    return tmp_path_factory.mktemp("cache")


def transcriber(model: Path, cache: Path, notes: list[str] | None = None, **kw) -> Transcriber:
    options = ModelOptions(model=str(model), backend="openvino", cache_dir=cache, **kw)
    sink = notes if notes is not None else []
    return Transcriber(RunOptions(model=options), notify=sink.append)


def texts(t: Transcriber, paths: list[Path]) -> list[str]:
    return [x.text for x in t.transcribe_files(paths)]


def calibration_files(folder: Path) -> tuple[Path, ...]:
    return tuple(sorted(folder.glob("*.wav")))


def test_method_choice() -> None:
    assert quantize.choose_method(ModelOptions(int8="weights")) == "weights"
    assert quantize.choose_method(ModelOptions(int8="full")) == "full"
    with_files = ModelOptions(calibration=(Path("a.wav"),))
    assert quantize.choose_method(with_files) == "full"
    expected = (
        "full"
        if quantize.cpu_flags() & {"avx512f", "avx512_vnni", "avx_vnni", "amx_int8"}
        else "weights"
    )
    assert quantize.choose_method(ModelOptions()) == expected
    with pytest.raises(ConfigError, match="int8 must be one of"):
        ModelOptions(int8="int4")


def test_full_int8_stays_within_one_wer_point(trained_model, speech: Speech, calibration, cache):
    fp32 = texts(transcriber(trained_model, cache), speech.paths)
    notes: list[str] = []
    t = transcriber(
        trained_model,
        cache,
        notes,
        dtype="int8",
        int8="full",
        calibration=calibration_files(calibration),
    )
    assert any(
        "calibrating int8 quantization" in n and "--calibration audio" in n for n in notes
    ), notes
    int8 = texts(t, speech.paths)
    info = json.loads((t.engine.runner.backend.ir.parent / "w2v2cli-ir.json").read_text())
    assert info["precision"] == "int8-full" and info["calibration"] != "input"

    # Within one WER point; a set of this size cannot resolve less than one word (1.05
    # points of its 95), so one word either way is allowed (counted in words, not compared
    # as floats). Characters resolve finer: the CER must stay within one point too. (On an
    # AVX-512 VNNI CPU the calibrated model changes one word of 95 and no character count.)
    def errors(hypotheses: list[str]) -> int:
        out = jiwer.process_words(speech.references, hypotheses)
        return out.substitutions + out.deletions + out.insertions

    words = sum(len(r.split()) for r in speech.references)
    assert abs(errors(int8) - errors(fp32)) <= max(1, 0.01 * words), (errors(fp32), errors(int8))
    cer32, cer8 = jiwer.cer(speech.references, fp32), jiwer.cer(speech.references, int8)
    assert abs(cer8 - cer32) <= 0.01, (cer32, cer8)
    assert int8 != fp32 or errors(int8) == errors(fp32)  # a different model, or as well
    # A second run finds it in the cache and does not calibrate again.
    again: list[str] = []
    t2 = transcriber(
        trained_model,
        cache,
        again,
        dtype="int8",
        int8="full",
        calibration=calibration_files(calibration),
    )
    assert again == [] and texts(t2, speech.paths[:3]) == int8[:3]


def test_calibrates_on_the_input_once_or_falls_back_when_it_is_too_short(
    trained_model, speech: Speech, cache: Path
) -> None:
    tmp_path = cache
    short: list[str] = []
    t = transcriber(trained_model, tmp_path, short, dtype="int8", int8="full")
    texts(t, speech.paths[:2])
    assert any("too little to calibrate" in n for n in short), short
    assert t.engine.runner.backend.ir.parent.name in {
        p.name for p in (tmp_path / "w2v2cli-openvino").iterdir()
    }
    weights_only = json.loads((t.engine.runner.backend.ir.parent / "w2v2cli-ir.json").read_text())
    assert weights_only["precision"] == "int8"

    notes: list[str] = []
    t = transcriber(trained_model, tmp_path, notes, dtype="int8", int8="full")
    texts(t, [*speech.paths, speech.long])  # > 30 s: enough to calibrate on
    assert any("of this run's input" in n for n in notes), notes
    info = json.loads((t.engine.runner.backend.ir.parent / "w2v2cli-ir.json").read_text())
    assert info == {**info, "precision": "int8-full", "calibration": "input"}
    later: list[str] = []
    texts(transcriber(trained_model, tmp_path, later, dtype="int8", int8="full"), speech.paths[:1])
    assert later == []  # the calibrated IR is reused, even for a short input


def test_cli_full_int8_export_and_errors(
    trained_model, speech: Speech, calibration, cache, tmp_path
):
    out = tmp_path / "int8-full"
    r = CliRunner().invoke(
        main,
        [
            "export",
            str(trained_model),
            "-o",
            str(out),
            "--dtype",
            "int8",
            "--calibration",
            str(calibration),
            "--cache-dir",
            str(cache),
        ],
    )
    assert r.exit_code == 0, r.output
    assert json.loads((out / "w2v2cli-ir.json").read_text())["precision"] == "int8-full"
    run = CliRunner().invoke(
        main,
        [
            "transcribe",
            str(speech.paths[0]),
            "-m",
            str(out),
            "--stdout",
            "--cache-dir",
            str(tmp_path / "c"),
        ],
    )
    assert run.exit_code == 0 and run.stdout.strip(), run.output
    assert not (tmp_path / "c").exists()  # nothing converted for an exported folder

    no_audio = CliRunner().invoke(
        main,
        [
            "export",
            str(trained_model),
            "-o",
            str(tmp_path / "x"),
            "--dtype",
            "int8",
            "--int8",
            "full",
        ],
    )
    assert no_audio.exit_code == 2 and "needs --calibration" in no_audio.stderr
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.wav").write_bytes(b"RIFF0000WAVEjunk")
    r = CliRunner().invoke(
        main,
        [
            "transcribe",
            str(speech.paths[0]),
            "-m",
            str(trained_model),
            "--dtype",
            "int8",
            "--calibration",
            str(bad),
            "--stdout",
            "--cache-dir",
            str(cache),
        ],
    )
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "--calibration" in lines[0] and "broken.wav" in lines[0], lines


# --- faults: a damaged calibrated entry, a run killed while calibrating ---------------------


def full_int8_entries(cache: Path) -> list[Path]:
    """The cache's entries calibrated on --calibration files (not on a run's input)."""
    found = []
    for p in (cache / "w2v2cli-openvino").iterdir():
        if not p.name.startswith("."):
            info = json.loads((p / "w2v2cli-ir.json").read_text())
            if info["precision"] == "int8-full" and info["calibration"] != "input":
                found.append(p)
    return found


def full_int8_entry(cache: Path) -> Path:
    (entry,) = full_int8_entries(cache)
    return entry


def calibrated_texts(model: Path, cache: Path, calibration: Path, paths, notes=None) -> list[str]:
    files = calibration_files(calibration)
    t = transcriber(model, cache, notes, dtype="int8", int8="full", calibration=files)
    return texts(t, paths)


def test_a_damaged_calibrated_entry_is_calibrated_again(
    trained_model, speech: Speech, calibration, cache, tmp_path
):
    good = calibrated_texts(trained_model, cache, calibration, speech.paths[:4])
    copy = Path(shutil.copytree(cache, tmp_path / "cache"))
    entry = full_int8_entry(copy)
    weights = entry / "model.bin"
    os.truncate(weights, weights.stat().st_size // 2)
    notes: list[str] = []
    assert calibrated_texts(trained_model, copy, calibration, speech.paths[:4], notes) == good
    damaged = [n for n in notes if "cannot be used" in n]
    assert len(damaged) == 1 and str(entry) in damaged[0], notes
    assert damaged[0].endswith("set aside and calibrated again on first use")
    assert any(n.startswith("calibrating int8 quantization") for n in notes), notes
    assert full_int8_entry(copy) == entry and ir_cache.entry_problem(entry, quantize.FULL) is None
    again: list[str] = []
    assert calibrated_texts(trained_model, copy, calibration, speech.paths[:4], again) == good
    assert again == []


def test_a_run_killed_while_calibrating_is_finished_by_the_next(
    trained_model, speech: Speech, calibration, cache, tmp_path
):
    """SIGKILL while NNCF calibrates: nothing half-written is left in the cache, and the
    next run calibrates and gives the text a whole cache gives."""
    good = calibrated_texts(trained_model, cache, calibration, speech.paths[:4])
    copy = Path(shutil.copytree(cache, tmp_path / "cache"))
    shutil.rmtree(full_int8_entry(copy))  # the float32 IR stays: only calibration is left
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "w2v2cli",
        "transcribe",
        *map(str, speech.paths[:4]),
        "-m",
        str(trained_model),
        "--dtype",
        "int8",
        "--int8",
        "full",
        "--calibration",
        str(calibration),
        "--cache-dir",
        str(copy),
        "-o",
        str(out),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:
        if line.startswith("calibrating int8 quantization"):
            proc.send_signal(signal.SIGKILL)
            break
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    root = copy / "w2v2cli-openvino"
    assert full_int8_entries(copy) == []
    assert not out.exists() or not list(out.iterdir())
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "calibrating int8 quantization" in r.stderr and "cannot be used" not in r.stderr
    assert [(out / f"{p.stem}.txt").read_text().strip() for p in speech.paths[:4]] == good
    hidden = [p.name for p in root.iterdir() if p.name.startswith(".")]
    assert all(name.endswith(".lock") for name in hidden), hidden

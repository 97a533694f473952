"""``w2v2 transcribe`` end to end through Click's CliRunner, on tiny real models."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import soundfile as sf
from click.testing import CliRunner
from conftest import noise_audio, save_tiny_model

from w2v2cli.cli import main


def invoke(*args: str, input: str | None = None):
    runner = CliRunner()
    return runner.invoke(main, [str(a) for a in args], input=input, catch_exceptions=False)


def outputs(root: Path, ext: str) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob(f"*.{ext}"))}


def test_folder_to_mirrored_outputs(group_model, audio_folder, tmp_path):
    out = tmp_path / "out"
    result = invoke("transcribe", audio_folder, "-m", group_model, "-o", out, "-q")
    assert result.exit_code == 0, result.output
    assert sorted(outputs(out, "txt")) == [
        "clip0.txt",
        "clip1.txt",
        "clip2.txt",
        "clip3.txt",
        "sub/deep.txt",
    ]
    data = json.loads((out / "clip2.json").read_text())
    assert data["schema"] == "w2v2cli.transcript/1"
    assert data["model"] == str(group_model)
    assert data["duration"] == pytest.approx(11.0, abs=1e-3)
    assert data["text"] == (out / "clip2.txt").read_text().strip()
    assert data["text"], "the tiny model should say something"
    words = data["words"]
    assert " ".join(w["text"] for w in words) == data["text"]
    assert all(0 <= w["start"] < w["end"] <= data["duration"] for w in words)
    assert all(a["end"] <= b["start"] for a, b in zip(words, words[1:], strict=False))
    assert result.stdout == ""  # nothing but results on stdout


def test_outputs_next_to_inputs_by_default(group_model, tmp_path):
    sf.write(tmp_path / "talk.wav", noise_audio(1.5, 3), 16000)
    result = invoke("transcribe", tmp_path / "talk.wav", "-m", group_model, "-q", "-f", "srt")
    assert result.exit_code == 0
    assert (tmp_path / "talk.srt").is_file()
    assert not (tmp_path / "talk.txt").exists()


def test_same_text_at_batch_size_1_and_8(group_model, audio_folder, tmp_path):
    for bs in ("1", "8"):
        r = invoke(
            "transcribe",
            audio_folder,
            "-m",
            group_model,
            "-o",
            tmp_path / bs,
            "-b",
            bs,
            "--chunk-length",
            "4",
            "--stride-length",
            "1",
            "-q",
            "--max-padding",
            "1",
        )  # padded batches even on CPU
        assert r.exit_code == 0
    assert outputs(tmp_path / "1", "txt") == outputs(tmp_path / "8", "txt")


def test_resume_skips_done_files_and_overwrite_redoes_them(group_model, audio_folder, tmp_path):
    out = tmp_path / "out"
    assert invoke("transcribe", audio_folder, "-m", group_model, "-o", out).exit_code == 0
    done = out / "clip1.txt"
    os.utime(done, (1, 1))
    (out / "clip3.json").unlink()  # an interrupted run: one output missing
    r = invoke("transcribe", audio_folder, "-m", group_model, "-o", out)
    assert r.exit_code == 0
    assert "1 done, 4 skipped, 0 failed" in r.stderr
    assert done.stat().st_mtime == 1
    assert (out / "clip3.json").is_file()
    r = invoke("transcribe", audio_folder, "-m", group_model, "-o", out, "--overwrite")
    assert "5 done, 0 skipped" in r.stderr
    assert done.stat().st_mtime > 1


def test_bad_files_are_reported_and_the_run_goes_on(group_model, audio_folder, tmp_path):
    (audio_folder / "empty.wav").write_bytes(b"")
    (audio_folder / "notes.wav").write_text("this is not audio\n")
    good = audio_folder / "clip0.wav"
    truncated = audio_folder / "cut.wav"
    truncated.write_bytes(good.read_bytes()[:30])
    out = tmp_path / "out"
    r = invoke("transcribe", audio_folder, tmp_path / "missing.wav", "-m", group_model, "-o", out)
    assert r.exit_code == 1
    err_lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    for name in ("empty.wav", "notes.wav", "cut.wav", "missing.wav"):
        assert any(name in ln for ln in err_lines), (name, r.stderr)
    assert len(outputs(out, "txt")) == 5  # the good files are all done
    assert "5 done, 0 skipped, 4 failed" in r.stderr
    assert not list(out.rglob("*.tmp*")) and not list(out.rglob(".*"))


def test_stdout_for_pipes(group_model, tmp_path):
    sf.write(tmp_path / "a.wav", noise_audio(2.0, 1), 16000)
    r = invoke("transcribe", tmp_path / "a.wav", "-m", group_model, "-f", "srt", "--stdout")
    assert r.exit_code == 0
    assert r.stdout.startswith("1\n00:00:")
    assert not list(tmp_path.glob("*.srt"))
    sf.write(tmp_path / "b.wav", noise_audio(1.0, 2), 16000)
    r = invoke(
        "transcribe",
        tmp_path / "a.wav",
        tmp_path / "b.wav",
        "-m",
        group_model,
        "-f",
        "json",
        "-o",
        "-",
        "-q",
    )
    lines = r.stdout.splitlines()
    assert [Path(json.loads(x)["file"]).name for x in lines] == ["a.wav", "b.wav"]


def test_from_list_on_stdin(group_model, audio_folder, tmp_path):
    listing = f"{audio_folder / 'clip0.wav'}\n# a comment\n{audio_folder / 'sub/deep.flac'}\n"
    r = invoke(
        "transcribe",
        "--from-list",
        "-",
        "-m",
        group_model,
        "-o",
        tmp_path / "o",
        "-q",
        input=listing,
    )
    assert r.exit_code == 0
    assert sorted(outputs(tmp_path / "o", "txt")) == ["clip0.txt", "sub/deep.txt"]


@pytest.mark.parametrize(
    "args",
    [
        ["--stride-length", "1,2,3"],
        ["--chunk-length", "2", "--stride-length", "1"],
        ["--stdout", "-f", "srt", "-f", "txt"],
        ["--device", "tpu"],
        ["--decoder", "greedy", "--lm", "README.md"],
    ],
)
def test_usage_errors_exit_2(group_model, audio_folder, args):
    r = invoke("transcribe", audio_folder, "-m", group_model, *args)
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output


def test_no_inputs_is_a_usage_error():
    assert invoke("transcribe").exit_code == 2


def test_pretrained_only_model_refused_in_one_line(tmp_path, audio_folder):
    folder = save_tiny_model(tmp_path / "pre", ctc=False, with_tokenizer=False)
    r = invoke("transcribe", audio_folder, "-m", folder)
    assert r.exit_code == 2
    assert "needs CTC fine-tuning" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert "Traceback" not in r.output


def test_interrupt_leaves_no_partial_file(group_model, audio_folder, tmp_path, monkeypatch):
    from w2v2cli.output import writers

    calls = {"n": 0}
    real = writers.JsonWriter.format

    def boom(self, transcript, item):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(self, transcript, item)

    monkeypatch.setattr(writers.JsonWriter, "format", boom)
    out = tmp_path / "out"
    # In this process, where the patch is (worker processes: test_workers.py, SIGTERM).
    args = ["transcribe", str(audio_folder), "-m", str(group_model), "-o", str(out), "-q"]
    r = CliRunner().invoke(main, [*args, "--decode-workers", "0"])
    assert r.exit_code == 130
    names = sorted(p.name for p in out.rglob("*") if p.is_file())
    assert names == ["clip0.json", "clip0.txt", "clip1.txt"]  # finished outputs are kept

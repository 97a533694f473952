"""The OpenVINO backend against PyTorch: same text at float32 on a trained model, exactness,
the IR cache, int8 and bf16, and the one-line refusals. CI installs the extra, so these run
there; a machine without it fails them rather than skipping what CI must check."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jiwer
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import noise_audio
from speech import Speech

from w2v2cli import Transcriber
from w2v2cli.cli import main
from w2v2cli.errors import ConfigError, ConversionError
from w2v2cli.inference import libc, openvino_backend
from w2v2cli.options import ChunkOptions, ModelOptions, RunOptions


def transcriber(model: Path, backend: str, cache: Path, **kw) -> Transcriber:
    options = RunOptions(
        model=ModelOptions(
            model=str(model),
            backend=backend,
            cache_dir=cache,
            dtype=kw.pop("dtype", "auto"),
            int8=kw.pop("int8", "auto"),
        ),
        chunking=kw.pop("chunking", ChunkOptions()),
        **kw,
    )
    return Transcriber(options)


def texts(t: Transcriber, paths: list[Path]) -> list[str]:
    return [x.text for x in t.transcribe_files(paths)]


def cache_entries(cache: Path) -> list[Path]:
    """The IR cache's entries (each has a hidden lock file beside it)."""
    root = cache / "w2v2cli-openvino"
    return sorted(p for p in root.iterdir() if not p.name.startswith("."))


def test_auto_picks_openvino_on_cpu(trained_model: Path, tmp_path: Path) -> None:
    assert transcriber(trained_model, "auto", tmp_path).engine.backend == "openvino"


def test_float32_same_text_as_torch_on_a_trained_model(trained_model, speech: Speech, tmp_path):
    torch_t = transcriber(trained_model, "torch", tmp_path)
    ov_t = transcriber(trained_model, "openvino", tmp_path)
    paths = [*speech.paths, speech.long]
    ours, ref = texts(ov_t, paths), texts(torch_t, paths)
    assert ours == ref
    assert jiwer.cer(speech.references, ours[:-1]) < 0.3  # it really recognises speech


def test_float32_same_text_as_the_pipeline_with_stride(trained_model, speech: Speech, tmp_path):
    """Chunking with stride on the OpenVINO backend equals the transformers pipeline."""
    import soundfile as sf
    import soxr
    from transformers import pipeline

    audio, rate = sf.read(speech.long, dtype="float32")
    audio = soxr.resample(audio, rate, 16000).astype(np.float32)
    t = transcriber(
        trained_model, "openvino", tmp_path, chunking=ChunkOptions(10.0, 2.0, 2.0), batch_size=1
    )
    asr = pipeline("automatic-speech-recognition", model=str(trained_model), device="cpu")
    ref = asr(audio.copy(), chunk_length_s=10.0, stride_length_s=(2.0, 2.0), batch_size=1)
    assert t.transcribe_array(audio).text == " ".join(ref["text"].split())


def test_batch_size_does_not_change_the_output(trained_model, speech: Speech, tmp_path):
    paths = [*speech.paths[:6], speech.long]
    argmaxes = {}
    for bs, pad in ((1, None), (4, 1.0), (8, 1.0)):
        t = transcriber(
            trained_model,
            "openvino",
            tmp_path,
            batch_size=bs,
            max_padding=pad,
            chunking=ChunkOptions(8.0, 1.0, 1.0),
        )
        from w2v2cli.inference import file_loader

        loaders = [file_loader(p, 16000) for p in paths]
        argmaxes[bs] = [em.log_probs.argmax(-1) for _, em in t.emissions(loaders)]
    for bs in (4, 8):
        for a, b in zip(argmaxes[1], argmaxes[bs], strict=True):
            np.testing.assert_array_equal(a, b)


def test_character_error_rate_against_torch_on_a_random_model(group_model, tmp_path):
    """Random weights make near ties, so a few frames may flip; the text stays within 0.1%."""
    clips = [noise_audio(s, seed=i) for i, s in enumerate([3.0, 7.5, 12.0, 20.0, 5.5])]
    ov = [transcriber(group_model, "openvino", tmp_path).transcribe_array(c).text for c in clips]
    pt = [transcriber(group_model, "torch", tmp_path).transcribe_array(c).text for c in clips]
    assert sum(len(t) for t in pt) > 300
    assert jiwer.cer(pt, ov) < 0.001


def test_converted_once_then_cached(trained_model: Path, tmp_path: Path) -> None:
    notes: list[str] = []
    first = Transcriber(
        RunOptions(model=ModelOptions(str(trained_model), backend="openvino", cache_dir=tmp_path)),
        notify=notes.append,
    )
    assert any(n.startswith("converting") for n in notes)
    entries = cache_entries(tmp_path)
    assert len(entries) == 1 and (entries[0] / "model.xml").is_file()
    stamp = (entries[0] / "model.xml").stat().st_mtime_ns
    first.close()
    notes.clear()
    again = Transcriber(
        RunOptions(model=ModelOptions(str(trained_model), backend="openvino", cache_dir=tmp_path)),
        notify=notes.append,
    )
    assert notes == [] and again.loaded.model is None  # no conversion, no torch weights
    assert (entries[0] / "model.xml").stat().st_mtime_ns == stamp
    assert cache_entries(tmp_path) == entries


def test_two_runs_converting_at_once_share_one_entry(trained_model, speech: Speech, tmp_path):
    """The entry's lock makes the second run wait for the first one's conversion and use
    it: one conversion, one entry, no temporary folder left."""
    cmd = [
        sys.executable,
        "-m",
        "w2v2cli",
        "transcribe",
        str(speech.paths[0]),
        "-m",
        str(trained_model),
        "--backend",
        "openvino",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--stdout",
    ]
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert outs[0][0] == outs[1][0] and outs[0][0].strip()
    assert "".join(err for _, err in outs).count("converting ") == 1, outs
    root = tmp_path / "cache" / "w2v2cli-openvino"
    entries = [p.name for p in root.iterdir() if not p.name.startswith(".")]
    hidden = [p.name for p in root.iterdir() if p.name.startswith(".")]
    assert len(entries) == 1 and hidden == [f".{entries[0]}.lock"]  # no temporary folder


def test_int8_stays_within_one_wer_point(trained_model, speech: Speech, tmp_path):
    fp32 = texts(transcriber(trained_model, "openvino", tmp_path), speech.paths)
    int8 = texts(
        transcriber(trained_model, "openvino", tmp_path, dtype="int8", int8="weights"), speech.paths
    )
    wer32 = jiwer.wer(speech.references, fp32)
    wer8 = jiwer.wer(speech.references, int8)
    assert abs(wer8 - wer32) <= 0.01, (wer32, wer8)
    assert len(cache_entries(tmp_path)) == 2  # its own cache entry


def test_bfloat16_runs_where_the_cpu_has_it_and_is_refused_elsewhere(
    trained_model, speech, tmp_path
):
    if "BF16" in openvino_backend.cpu_capabilities():
        bf16 = texts(
            transcriber(trained_model, "openvino", tmp_path, dtype="bfloat16"), speech.paths
        )
        assert jiwer.wer(speech.references, bf16) < 0.8
    else:
        with pytest.raises(ConfigError, match="needs a CPU with native bfloat16"):
            transcriber(trained_model, "openvino", tmp_path, dtype="bfloat16")


def test_float16_and_cuda_are_refused_on_openvino(trained_model: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="float16 is a CUDA precision"):
        transcriber(trained_model, "openvino", tmp_path, dtype="float16")
    r = CliRunner().invoke(
        main,
        [
            "transcribe",
            str(trained_model / "config.json"),
            "-m",
            str(trained_model),
            "--backend",
            "openvino",
            "--device",
            "cuda",
        ],
    )
    assert r.exit_code == 2 and r.stderr.strip() == (
        "error: the OpenVINO backend runs on the CPU; use --backend torch for --device cuda"
    )


def test_int8_on_torch_is_refused(trained_model: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="int8 needs the OpenVINO backend"):
        transcriber(trained_model, "torch", tmp_path, dtype="int8")


def test_missing_extra_is_one_line_and_auto_falls_back(
    trained_model, speech, tmp_path, monkeypatch
):
    """Without the extra (simulated: the module cannot be imported)."""
    monkeypatch.setitem(sys.modules, "openvino", None)
    monkeypatch.setattr(openvino_backend, "available", lambda: False)
    r = CliRunner().invoke(
        main,
        [
            "transcribe",
            str(speech.paths[0]),
            "-m",
            str(trained_model),
            "--backend",
            "openvino",
            "--stdout",
        ],
    )
    assert r.exit_code == 2
    assert r.stderr.strip() == (
        "error: the OpenVINO backend needs the openvino package; "
        "install it with: pip install 'w2v2cli[openvino]'"
    )
    assert transcriber(trained_model, "auto", tmp_path).engine.backend == "torch"


def test_unconvertible_model_auto_falls_back_explicit_fails(trained_model, tmp_path, monkeypatch):
    """A family OpenVINO cannot convert (simulated: its converter raises)."""
    import openvino

    def refuse(*_a, **_k):
        raise RuntimeError("unsupported operation aten::something")

    monkeypatch.setattr(openvino, "convert_model", refuse)
    notes: list[str] = []
    t = Transcriber(
        RunOptions(model=ModelOptions(str(trained_model), cache_dir=tmp_path)), notify=notes.append
    )
    assert t.engine.backend == "torch"
    assert any("OpenVINO cannot convert" in n and "using the torch backend" in n for n in notes)
    with pytest.raises(ConversionError, match="aten::something"):
        transcriber(trained_model, "openvino", tmp_path)


def test_cli_shows_the_conversion_once(trained_model: Path, speech: Speech, tmp_path: Path):
    args = [
        "transcribe",
        str(speech.paths[0]),
        "-m",
        str(trained_model),
        "--backend",
        "openvino",
        "--cache-dir",
        str(tmp_path),
        "-f",
        "json",
        "--stdout",
    ]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0 and "converting" in first.stderr
    second = CliRunner().invoke(main, args)
    assert second.exit_code == 0 and "converting" not in second.stderr
    assert json.loads(first.stdout)["text"] == json.loads(second.stdout)["text"]


def test_export_folder_runs_without_conversion_or_weights(trained_model, speech: Speech, tmp_path):
    out = tmp_path / "exported"
    r = CliRunner().invoke(
        main, ["export", str(trained_model), "-o", str(out), "--cache-dir", str(tmp_path / "cache")]
    )
    assert r.exit_code == 0, r.output
    assert {"model.xml", "model.bin", "config.json", "vocab.json", "w2v2cli-ir.json"} <= {
        p.name for p in out.iterdir()
    }
    notes: list[str] = []
    t = Transcriber(
        RunOptions(model=ModelOptions(str(out), cache_dir=tmp_path / "other")), notify=notes.append
    )
    assert t.engine.backend == "openvino" and t.loaded.model is None and notes == []
    assert not (tmp_path / "other").exists()  # nothing converted or cached for it
    ref = transcriber(trained_model, "torch", tmp_path)
    assert texts(t, speech.paths[:4]) == texts(ref, speech.paths[:4])
    again = CliRunner().invoke(main, ["export", str(trained_model), "-o", str(out)])
    assert again.exit_code == 2 and "already exists" in again.stderr
    torch = CliRunner().invoke(
        main, ["transcribe", str(speech.paths[0]), "-m", str(out), "--backend", "torch", "--stdout"]
    )
    assert torch.exit_code == 2 and "holds an OpenVINO model" in torch.stderr


def test_int8_export_runs_as_int8_only(trained_model, speech: Speech, tmp_path: Path) -> None:
    out = tmp_path / "int8"
    r = CliRunner().invoke(
        main,
        [
            "export",
            str(trained_model),
            "-o",
            str(out),
            "--dtype",
            "int8",
            "--cache-dir",
            str(tmp_path / "cache"),
        ],
    )
    assert r.exit_code == 0, r.output
    assert json.loads((out / "w2v2cli-ir.json").read_text())["precision"] == "int8"
    t = transcriber(out, "auto", tmp_path)
    assert t.loaded.dtype == "int8" and texts(t, speech.paths[:1])[0]
    with pytest.raises(ConfigError, match="exported at int8"):
        transcriber(out, "openvino", tmp_path, dtype="float32")


def test_first_int8_conversion_keeps_stdout_for_results(trained_model, speech, tmp_path):
    """NNCF draws a progress bar on stdout; with --stdout that would corrupt the results."""
    r = CliRunner().invoke(
        main,
        [
            "transcribe",
            str(speech.paths[0]),
            "-m",
            str(trained_model),
            "--dtype",
            "int8",
            "--cache-dir",
            str(tmp_path),
            "--stdout",
            "-f",
            "json",
        ],
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["text"]  # stdout is exactly one JSON document
    assert "compressing the weights to int8" in r.stderr


def _resident_kb(path: Path) -> int:
    """Resident KB of this process's mappings of ``path`` (from /proc/self/smaps)."""
    target, total, inside = str(path.resolve()), 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split(maxsplit=5)
        if "-" in head[0] and len(head) >= 5 and ":" in head[3]:
            inside = len(head) == 6 and head[5] == target
        elif inside and line.startswith("Rss:"):
            total += int(line.split()[1])
    return total


def test_release_mapped_pages_drops_residency_and_keeps_the_data(tmp_path: Path) -> None:
    data = np.random.default_rng(0).standard_normal(2_000_000).astype(np.float32)
    path = tmp_path / "weights.bin"
    data.tofile(path)
    mapped = np.memmap(path, dtype=np.float32, mode="r")
    assert float(mapped.sum()) == pytest.approx(float(data.sum()), rel=1e-4)  # touch every page
    assert _resident_kb(path) > 7000
    assert libc.release_mapped_pages(path) >= data.nbytes
    assert _resident_kb(path) < 100
    np.testing.assert_array_equal(np.asarray(mapped), data)  # faulted back in from the file


def test_compiled_model_keeps_no_resident_copy_of_the_ir_weights(trained_model, speech, tmp_path):
    t = transcriber(trained_model, "openvino", tmp_path)
    texts(t, speech.paths[:2])
    weights = t.engine.runner.backend.ir.with_suffix(".bin")
    size_kb = weights.stat().st_size // 1024
    assert size_kb > 1000
    # Without the release all of it stays resident; the plugin reads a few small
    # constants straight from the file (1.7 of 8.6 MB on this model).
    assert _resident_kb(weights) < size_kb // 2, (_resident_kb(weights), size_kb)


def test_inputs_of_new_lengths_do_not_bring_the_ir_weights_back(trained_model, speech, tmp_path):
    """The CPU plugin picks kernels by input shape, and a kernel met for the first time
    packs its weights from the IR's mapping again; the backend drops those pages after
    every new shape, so what stays resident does not grow with the lengths a run meets."""
    import soundfile as sf

    t = transcriber(trained_model, "openvino", tmp_path)
    texts(t, speech.paths[:1])
    weights = t.engine.runner.backend.ir.with_suffix(".bin")
    first = _resident_kb(weights)
    clips = []
    for i, seconds in enumerate((0.2, 0.5, 2.5, 7.0, 13.0)):
        clips.append(tmp_path / f"clip{i}.wav")
        sf.write(clips[-1], noise_audio(seconds, seed=i), 16000)
    texts(t, [*clips, *speech.paths, speech.long])
    assert _resident_kb(weights) <= first, (_resident_kb(weights), first)


def test_a_single_frame_first_input_does_not_spoil_later_ones(trained_model, speech, tmp_path):
    """OpenVINO 2026.4 computes every later inference wrongly when the first one yields a
    single frame; the backend's one-second warm-up prevents that. A long-lived transcriber
    whose first request is a 30 ms clip must still get the same text as torch afterwards."""
    import soundfile as sf

    tiny = tmp_path / "tiny.wav"
    sf.write(tiny, noise_audio(0.03, seed=3), 16000)
    ov_t = transcriber(trained_model, "openvino", tmp_path)
    texts(ov_t, [tiny])
    assert texts(ov_t, speech.paths[:4]) == texts(
        transcriber(trained_model, "torch", tmp_path), speech.paths[:4]
    )


def test_ctrl_c_after_two_models_were_freed_is_not_a_crash(trained_model: Path, tmp_path: Path):
    """OpenVINO's CPU plugin installs an alternate signal stack on the compiling thread and,
    when a model is freed, puts back the one it found: with two models freed in the order
    they were made, that is the first one's, already unmapped, and the next signal killed
    the process with SIGSEGV (Python's signal handlers run on that stack). Run in a child
    process, so a crash fails this test instead of the whole session."""
    script = f"""
import gc, signal
from w2v2cli.options import ModelOptions, RunOptions
from w2v2cli import Transcriber
options = RunOptions(model=ModelOptions(model={str(trained_model)!r}, backend="openvino",
                                        cache_dir={str(tmp_path)!r}))
first = Transcriber(options)
second = Transcriber(options)
assert first.engine.backend == second.engine.backend == "openvino"
del first
gc.collect()
del second
gc.collect()
got = []
signal.signal(signal.SIGINT, lambda *a: got.append("INT"))
signal.raise_signal(signal.SIGINT)
third = Transcriber(options)  # and once more with a model alive, closed this time
third.close()
signal.raise_signal(signal.SIGINT)
print("handled", got)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert "handled ['INT', 'INT']" in done.stdout

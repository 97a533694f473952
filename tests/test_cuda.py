"""The CUDA path on a real GPU: text against the pipeline on the same GPU, float16 against
float32, batches started without the host waiting, the command line.

The rest of the suite hides GPUs (conftest.py) so that it tests the CPU paths everywhere;
these tests run their work in child processes that see the machine's GPUs, and are skipped
where there is none (CI has none; the engine's asynchronous batches are tested on the CPU
in test_pipeline.py, where a batch's result comes at once). ``W2V2_TEST_CUDA_DEVICE=cpu``
runs the same children on the CPU: a dry run of these tests on a machine without a GPU.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jiwer
import pytest
import soundfile as sf
from conftest import gpu_env

DEVICE = os.environ.get("W2V2_TEST_CUDA_DEVICE", "cuda")


@functools.cache
def _has_gpu() -> bool:
    probe = "import torch; print(torch.cuda.is_available())"
    out = subprocess.run(
        [sys.executable, "-c", probe], env=gpu_env(), capture_output=True, text=True, timeout=300
    )
    return out.stdout.strip() == "True"


@pytest.fixture(autouse=True)
def _gpu() -> None:
    if DEVICE == "cuda" and not _has_gpu():
        pytest.skip("no CUDA GPU on this machine (the CUDA path is tested on CPU elsewhere)")


def on_gpu(script: str, **inputs: object) -> dict:
    """Run ``script`` in a child that sees the GPUs; ``inputs`` arrive as the dict ``IN``
    (and ``DEVICE``); the script prints its result as one JSON line, last."""
    code = (
        f"import json, sys\nIN = json.loads(sys.stdin.readline())\nDEVICE = {DEVICE!r}\n"
        + textwrap.dedent(script)
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps(inputs) + "\n",
        env=gpu_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _files(speech) -> list[str]:
    return [str(p) for p in [*speech.paths, speech.long]]


def _wer(refs: list[str], hyps: list[str]) -> float:
    return float(jiwer.wer(refs, hyps))


def test_same_text_as_the_pipeline_on_the_same_gpu(trained_model: Path, speech) -> None:
    """float32 at batch 1 on the GPU: our text is the transformers pipeline's, run on the
    same GPU with the same chunking (13 files, one of them 40 s, chunked with stride)."""
    got = on_gpu(
        """
        import numpy as np, torch
        from transformers import pipeline
        from w2v2cli.audio import load_audio
        from w2v2cli.options import ChunkOptions, ModelOptions, RunOptions
        from w2v2cli import Transcriber
        opts = RunOptions(model=ModelOptions(model=IN["model"], device=DEVICE, dtype="float32",
                                             backend="torch"),
                          chunking=ChunkOptions(10.0, 2.0, 2.0), batch_size=1)
        t = Transcriber(opts)
        ours = [t.transcribe_file(p).text for p in IN["files"]]
        asr = pipeline("automatic-speech-recognition", model=IN["model"], device=DEVICE,
                       dtype=torch.float32)
        ref = [" ".join(asr(load_audio(p, 16000), chunk_length_s=10.0,
                            stride_length_s=2.0)["text"].split()) for p in IN["files"]]
        print(json.dumps({"ours": ours, "ref": ref, "device": str(t.loaded.device)}))
    """,
        model=str(trained_model),
        files=_files(speech),
    )
    assert got["device"].startswith(DEVICE)
    assert sum(len(r.split()) for r in got["ref"]) > 60  # the model really says things
    assert got["ours"] == got["ref"]


def test_float16_by_default_and_batches_keep_the_text(trained_model: Path, speech) -> None:
    """``--dtype auto`` is float16 on CUDA; its WER is within 1 point of float32's, and
    padded batches of 8 (files of 2-40 s together) give the text of one file at a time."""
    got = on_gpu(
        """
        from w2v2cli.options import ChunkOptions, ModelOptions, RunOptions
        from w2v2cli import Transcriber
        def texts(dtype, batch):
            opts = RunOptions(model=ModelOptions(model=IN["model"], device=DEVICE,
                                                 dtype=dtype, backend="torch"),
                              chunking=ChunkOptions(10.0, 2.0, 2.0), batch_size=batch)
            t = Transcriber(opts)
            out = [x.text for x in t.transcribe_files(IN["files"])]
            return t.loaded.dtype, t.engine.runner.max_padding, out
        auto = texts("auto", 8)
        fp16 = texts("float16", 1)
        fp32 = texts("float32", 1)
        print(json.dumps({"auto": auto, "fp16": fp16, "fp32": fp32}))
    """,
        model=str(trained_model),
        files=_files(speech),
    )
    dtype, max_padding, batched = got["auto"]
    if DEVICE == "cuda":
        assert dtype == "float16" and max_padding == 1.0  # padded batches on CUDA
    refs = [*speech.references, " ".join(speech.references)]
    wer16, wer32 = _wer(refs, got["fp16"][2]), _wer(refs, got["fp32"][2])
    assert wer32 < 0.8  # the model recognises this speech
    assert abs(wer16 - wer32) <= 0.01
    assert jiwer.cer(got["fp16"][2], batched) < 0.01  # batch 8 with padding vs one by one


def test_a_batch_is_started_without_the_host_waiting(trained_model: Path, speech) -> None:
    """``TorchBackend.start`` queues a padded batch and returns: nothing in our code makes
    the host wait for the GPU (``torch.cuda.set_sync_debug_mode``); the result is what
    ``log_probs`` gives. Waits inside transformers' own model code are listed, not failed."""
    got = on_gpu(
        """
        import os, traceback, warnings
        import numpy as np, torch
        from w2v2cli.audio import load_audio
        from w2v2cli.options import ModelOptions, RunOptions
        from w2v2cli import Transcriber
        t = Transcriber(RunOptions(model=ModelOptions(model=IN["model"], device=DEVICE,
                                                      backend="torch"), batch_size=4))
        runner = t.engine.runner
        feats = [runner.features(load_audio(p, 16000))[0] for p in IN["files"][:3]]
        lengths = [f.shape[0] for f in feats]
        batch = np.zeros((3, max(lengths)), np.float32)
        for i, f in enumerate(feats):
            batch[i, :f.shape[0]] = f
        backend = runner.backend
        first = backend.log_probs(batch, lengths)  # warm-up, and the reference
        sites = []
        own = os.path.dirname(torch.__file__) + os.sep  # torch's frames: not a caller
        def show(message, *args, **kwargs):
            frames = [f for f in traceback.extract_stack()[:-1]
                      if not f.filename.startswith(own) and "warnings" not in f.filename]
            sites.append(f"{frames[-1].filename}:{frames[-1].lineno}")
        if DEVICE == "cuda":
            torch.cuda.synchronize()
            torch.cuda.set_sync_debug_mode("warn")
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = show
            pending = backend.start(batch, lengths)
        if DEVICE == "cuda":
            torch.cuda.set_sync_debug_mode(0)
        again = pending.result()
        print(json.dumps({"sites": sites, "diff": float(np.abs(again - first).max()),
                          "shape": list(again.shape)}))
    """,
        model=str(trained_model),
        files=[str(p) for p in speech.paths],
    )
    ours = [s for s in got["sites"] if "w2v2cli" in s]
    assert ours == [], f"the host waits for the GPU at {ours}"
    print("waits inside transformers:", sorted(set(got["sites"])))
    assert got["shape"][0] == 3 and got["diff"] < 1e-3


def test_command_line_on_the_gpu_with_a_broken_file(
    trained_model: Path, speech, tmp_path: Path
) -> None:
    """``w2v2 transcribe --device cuda`` writes every good file's JSON, fails the broken
    one alone in one line, and exits 1."""
    folder = tmp_path / "in"
    folder.mkdir()
    for p in speech.paths[:5]:
        data, rate = sf.read(p)
        sf.write(folder / f"{p.stem}.flac", data, rate)
    (folder / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 10)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "w2v2cli",
            "transcribe",
            str(folder),
            "-m",
            str(trained_model),
            "--device",
            DEVICE,
            "-f",
            "json",
            "-o",
            str(tmp_path / "out"),
        ],
        env=gpu_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 1, out.stderr[-2000:]
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "broken.wav" in errors[0]
    written = sorted(p.stem for p in (tmp_path / "out").glob("*.json"))
    assert written == sorted(p.stem for p in speech.paths[:5])
    for p in (tmp_path / "out").glob("*.json"):
        doc = json.loads(p.read_text())
        assert doc["text"] and all(w["start"] < w["end"] for w in doc["words"])

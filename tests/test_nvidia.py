"""NVIDIA DeepLearningExamples wav2vec 2.0 checkpoints (Hourglass Transformer included),
checked against NVIDIA's own code (the ``nvidia`` fixture, see ``dle_reference.py``): the
same log-probabilities (to float rounding) and the same text, at any batch size.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner
from conftest import TORCH_1, TORCH_1_ARGS, noise_audio
from dle_reference import MODELS, Reference, clean

from w2v2cli.cli import main
from w2v2cli.errors import ModelError
from w2v2cli.options import ChunkOptions, ModelOptions, RunOptions


def engine_log_probs(model: str, clips: list[np.ndarray], **kw) -> list[np.ndarray]:
    from w2v2cli.inference import Engine

    engine = Engine(ModelOptions(model=model, **TORCH_1), ChunkOptions(20, 3, 3), **kw)
    try:
        return [em.log_probs for _, em in engine.emissions([(lambda c=c: c) for c in clips])]
    finally:
        engine.close()


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.mark.parametrize("name", list(MODELS))
def test_same_log_probs_and_text_as_nvidia_code(nvidia: Reference, name: str) -> None:
    """Every clip as NVIDIA's code gives it alone, although w2v2 runs them in one padded
    batch here: for the hourglass that takes masks shortened with the sequence and padding
    zeroed before pooling."""
    from w2v2cli import Transcriber

    clips = [sf.read(p, dtype="float32")[0] for p in nvidia.clips]
    options = RunOptions(
        model=ModelOptions(model=str(nvidia.checkpoints[name]), **TORCH_1),
        batch_size=8,
        max_padding=1.0,
    )
    with Transcriber(options) as t:
        ours = [em.log_probs for _, em in t.emissions([(lambda c=c: c) for c in clips])]
        texts = [t.transcribe_array(c).text for c in clips]
    for i, (a, b) in enumerate(zip(ours, nvidia.log_probs[name], strict=True)):
        assert a.shape == b.shape
        diff = float(np.abs(a - b).max())
        assert diff < 2e-4, f"{name} clip {i}: max |log-prob difference| {diff}"
        np.testing.assert_array_equal(a.argmax(-1), b.argmax(-1))
    assert texts == [clean(s) for s in nvidia.texts[name]]
    assert len(" ".join(texts).split()) >= 5, "the random model should write words"


def test_transcribe_a_checkpoint_from_the_command_line(nvidia: Reference, tmp_path: Path) -> None:
    """``-m checkpoint.pt``: converted once (and said so), cached, every format, the same
    text at --batch-size 1 and 8."""
    checkpoint = nvidia.checkpoints["hourglass"]
    cache = tmp_path / "cache"
    runs = {}
    for bs in ("1", "8"):
        out = tmp_path / f"b{bs}"
        result = invoke(
            "transcribe",
            *nvidia.clips,
            "-m",
            checkpoint,
            "-o",
            out,
            "-f",
            "all",
            "-b",
            bs,
            "--max-padding",
            "1",
            *TORCH_1_ARGS,
            "--cache-dir",
            cache,
        )
        assert result.exit_code == 0, result.output
        runs[bs] = {p.name: p.read_text() for p in sorted(out.iterdir())}
        converting = "converting" in result.stderr
        assert converting == (bs == "1"), result.stderr  # converted once, then cached
    assert sorted(runs["1"]) == sorted(
        f"clip{i}.{ext}" for i in range(4) for ext in ("json", "srt", "tsv", "txt", "vtt")
    )
    texts_1 = {k: v for k, v in runs["1"].items() if not k.endswith(".json")}
    texts_8 = {k: v for k, v in runs["8"].items() if not k.endswith(".json")}
    assert texts_1 == texts_8
    expected = [clean(s) for s in nvidia.texts["hourglass"]]
    assert [runs["1"][f"clip{i}.txt"].strip() for i in range(4)] == expected
    assert json.loads(runs["1"]["clip0.json"])["model"] == str(checkpoint)


def test_convert_writes_folders_transformers_and_w2v2_load(
    nvidia: Reference, tmp_path: Path
) -> None:
    from transformers import AutoModelForCTC
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    plain = tmp_path / "plain"
    result = invoke("convert", nvidia.checkpoints["plain"], "-o", plain)
    assert result.exit_code == 0, result.output
    assert "transformers loads it too" in result.stderr
    model = AutoModelForCTC.from_pretrained(plain).eval()  # transformers alone
    clip = torch.from_numpy(sf.read(nvidia.clips[1], dtype="float32")[0])[None]
    clip = torch.nn.functional.layer_norm(clip, clip.shape)  # "normalize", as NVIDIA does
    with torch.no_grad():
        lp = torch.log_softmax(model(clip).logits, -1)[0].numpy()
    assert float(np.abs(lp - nvidia.log_probs["plain"][1]).max()) < 2e-4
    vocab = json.loads((plain / "vocab.json").read_text())
    assert vocab["<pad>"] == 0 and vocab["|"] == 4  # the blank is the pad token

    hourglass = tmp_path / "hourglass"
    result = invoke("convert", nvidia.checkpoints["hourglass"], "-o", hourglass)
    assert result.exit_code == 0, result.output
    assert "hourglass" in result.stderr
    model_type = json.loads((hourglass / "config.json").read_text())["model_type"]
    assert model_type not in CONFIG_MAPPING_NAMES  # transformers alone refuses it
    clips = [sf.read(p, dtype="float32")[0] for p in nvidia.clips[:2]]
    for a, b in zip(
        engine_log_probs(str(hourglass), clips), nvidia.log_probs["hourglass"], strict=False
    ):
        assert float(np.abs(a - b).max()) < 2e-4
    again = invoke("convert", nvidia.checkpoints["hourglass"], "-o", hourglass)
    assert again.exit_code == 2 and "already exists" in again.stderr


@pytest.mark.slow
def test_openvino_runs_the_hourglass_as_torch_does(nvidia: Reference, tmp_path: Path) -> None:
    """OpenVINO (the default backend on CPU) converts the hourglass with its padding to a
    multiple of the factor and trimming intact: the same frames as torch for lengths of
    every remainder modulo 3, each run alone (OpenVINO never pads). A clip whose shortened
    sequence is a single frame comes first and last: OpenVINO 2026.4 computes every later
    inference wrongly after such a first one, which the backend's warm-up must prevent."""
    from w2v2cli.inference import Engine

    tiny = noise_audio(0.06, seed=49)  # 2 frames, 1 after shortening by 3
    clips = [tiny] + [noise_audio(1.0 + 0.02 * k, seed=50 + k) for k in range(3)] + [tiny]
    results = {}
    for backend in ("torch", "openvino"):
        options = ModelOptions(
            model=str(nvidia.checkpoints["linear"]), backend=backend, threads=1, cache_dir=tmp_path
        )
        engine = Engine(options, ChunkOptions(20, 3, 3), batch_size=8)
        results[backend] = [
            em.log_probs for _, em in engine.emissions([(lambda c=c: c) for c in clips])
        ]
        engine.close()
    assert [len(a) for a in results["torch"]] == [2, 49, 50, 51, 2]
    for a, b in zip(results["torch"], results["openvino"], strict=True):
        assert float(np.abs(a - b).max()) < 1e-3
        np.testing.assert_array_equal(a.argmax(-1), b.argmax(-1))


@pytest.mark.slow
def test_long_files_same_text_as_the_transformers_pipeline(
    nvidia: Reference, tmp_path: Path
) -> None:
    """A file several chunks long, chunked with stride: at batch size 1 the text equals
    the transformers pipeline's on the converted hourglass model (registered with
    transformers' Auto classes, as w2v2 does; plain wav2vec2 is test_pipeline.py's)."""
    name = "hourglass"
    from transformers import pipeline

    from w2v2cli import Transcriber
    from w2v2cli.models.hourglass import register

    folder = tmp_path / name
    assert invoke("convert", nvidia.checkpoints[name], "-o", folder, "-q").exit_code == 0
    register()
    audio = noise_audio(9.7, seed=4)
    asr = pipeline("automatic-speech-recognition", model=str(folder), device="cpu")
    ref = asr(audio.copy(), chunk_length_s=2.0, stride_length_s=(0.4, 0.4), batch_size=1)
    options = RunOptions(
        model=ModelOptions(model=str(folder), **TORCH_1),
        chunking=ChunkOptions(2.0, 0.4, 0.4),
        batch_size=1,
    )
    with Transcriber(options) as t:
        ours = t.transcribe_array(audio).text
    assert len(ours.split()) > 5
    assert ours == clean(ref["text"])


def test_beam_search_and_lm_build_with_the_checkpoint_alphabet(
    nvidia: Reference, tmp_path: Path
) -> None:
    checkpoint = nvidia.checkpoints["hourglass"]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the cat sat on the mat\nthe dog ran to the house\n" * 20)
    lm = tmp_path / "lm.arpa"
    result = invoke(
        "lm", "build", corpus, "-o", lm, "--order", "2", "--arpa-only", "--model", checkpoint
    )
    assert result.exit_code == 0, result.output
    assert "THE CAT" in lm.read_text()  # folded to the checkpoint's upper-case alphabet
    out = tmp_path / "beam"
    result = invoke(
        "transcribe",
        *nvidia.clips[:2],
        "-m",
        checkpoint,
        "-o",
        out,
        "-f",
        "txt",
        "--lm",
        lm,
        "--decode-workers",
        "0",
        *TORCH_1_ARGS,
        "--cache-dir",
        tmp_path / "cache",
        "-q",
    )
    assert result.exit_code == 0, result.output
    assert (out / "clip0.txt").read_text().strip()


def _save_modified(nvidia: Reference, tmp_path: Path, change) -> Path:
    state = torch.load(nvidia.checkpoints["plain"], weights_only=True)
    change(state)
    path = tmp_path / "changed.pt"
    torch.save(state, path)
    return path


class Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s["args"].update(mode="pretrain"), "needs CTC fine-tuning"),
        (lambda s: s["args"].update(rotary_embeddings=True), "rotary embeddings"),
        (
            lambda s: s["args"].update(hourglass_transformer="[1,(2,2)]"),
            "cannot read hourglass_transformer",
        ),
        (
            lambda s: s["args"].update(conv_feature_layers="__import__('os')"),
            "cannot read conv_feature_layers",
        ),
        (lambda s: s.update(output_labels="| 5\nA 3\n"), "head has 32 outputs but output_labels"),
        (
            lambda s: s["model"].update(
                {"w2v_encoder.w2v_model.encoder.extra.weight": torch.zeros(1)}
            ),
            "has no counterpart",
        ),
        (lambda s: s["model"].pop("w2v_encoder.proj.weight"), "no CTC head"),
        (
            lambda s: s["model"].pop("w2v_encoder.w2v_model.encoder.layers.0.fc1.bias"),
            "lacks 1 weight",
        ),
        (lambda s: [s.clear(), s.update(weight=torch.zeros(2))], "not an NVIDIA"),
    ],
)
def test_what_cannot_be_mapped_is_refused(
    nvidia: Reference, tmp_path: Path, change, message
) -> None:
    from w2v2cli.models.convert import build_model, read_converted

    path = _save_modified(nvidia, tmp_path, change)
    with pytest.raises(ModelError, match=message) as info:
        build_model(read_converted(path), str(path))
    assert "\n" not in str(info.value)


def test_pickled_code_is_refused_in_one_line(
    nvidia: Reference, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkpoint whose unpickling would call os.system: refused, nothing run."""
    monkeypatch.chdir(tmp_path)
    path = _save_modified(nvidia, tmp_path, lambda s: s.update(extra=Evil()))
    result = invoke(
        "transcribe",
        nvidia.clips[0],
        "-m",
        path,
        *TORCH_1_ARGS,
        "--cache-dir",
        tmp_path / "cache",
        "--stdout",
    )
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert re.search(r"refused: the file pickles (posix|os)\.system", lines[0]), lines[0]
    assert not (tmp_path / "pwned").exists()


def test_unreadable_files_are_refused(tmp_path: Path) -> None:
    from w2v2cli.models.convert import read_converted

    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ModelError, match="not a readable PyTorch checkpoint"):
        read_converted(bad)
    with pytest.raises(ModelError, match="does not exist"):
        read_converted(tmp_path / "missing.pt")


def test_conv_layer_specs_are_read_without_eval() -> None:
    from w2v2cli.models.checkpoints import conv_layers

    assert conv_layers("[(512,10,5)]+[(512,3,2)]*4+[(512,2,2)]+[(512,2,2)]", "x") == (
        [(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2
    )
    assert conv_layers("2 * [(8, 3, 2)]", "x") == [(8, 3, 2)] * 2
    for bad in ("__import__('os').system('x')", "[(1,2)]", "[]", "[(1,2,3)] * 10**9", "x"):
        with pytest.raises(ModelError):
            conv_layers(bad, "x")


def test_fairseq_dictionary_reading() -> None:
    from w2v2cli.models.fairseq import read_dictionary

    assert read_dictionary("| 10\nE 5\n\n", "d") == ("<s>", "<pad>", "</s>", "<unk>", "|", "E")
    assert read_dictionary("A B 3\n<unk> 1 #fairseq:overwrite\n", "d")[4:] == ("A B",)
    with pytest.raises(ModelError, match=r"d:2: symbol 'E' appears twice"):
        read_dictionary("E 1\nE 2\n", "d")
    with pytest.raises(ModelError, match=r"d:1: expected 'SYMBOL COUNT'"):
        read_dictionary("E\n", "d")

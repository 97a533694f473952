"""The subword CTC families of issue 25 (Parakeet CTC, LASR/MedASR, Omnilingual ASR CTC),
tested against transformers' own outputs with tiny folders built here
(``family_models.subword_folder``: random weights, real trained tokenizers):

- greedy text equal to transformers' decode (processor, model, argmax with the model's own
  output mask, ``batch_decode`` with special tokens skipped) on files of one chunk;
- frame counts equal to the model's for every length, frames per chunk and samples per
  frame from the config;
- the same log-probabilities alone and in padded batches, and the same text at
  ``--batch-size`` 1 and 8 from the command line;
- a long file chunked with strides: stitched frames continuous and timed where their
  samples are, the text inside each chunk's kept frames equal to its unchunked decode;
- ``transcribe`` and ``eval`` from the command line; Granite Speech 5 CTC refused in one line.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner
from conftest import TORCH_1, TORCH_1_ARGS, noise_audio
from family_models import SUBWORD_FAMILIES, subword_folder

from w2v2cli.cli import main
from w2v2cli.options import ChunkOptions, DecodeOptions, ModelOptions

SECONDS = [0.95, 3.3, 1.7, 2.6, 5.0]
#: Samples per output frame: Parakeet 160 x 8, LASR 160 x 2 x 2, OmniASR 5 x 2^6.
SAMPLES_PER_FRAME = {"parakeet_ctc": 1280, "lasr_ctc": 640, "omniasr_ctc": 320}


@pytest.fixture(scope="session")
def subword_model(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("subword")
    made: dict[str, Path] = {}

    def get(family: str) -> Path:
        if family not in made:
            made[family] = subword_folder(family, root / family, seed=3)
        return made[family]

    return get


def clips() -> list[np.ndarray]:
    return [noise_audio(s, seed=60 + i) for i, s in enumerate(SECONDS)]


def reference_text(folder: Path, audio: np.ndarray) -> tuple[str, int]:
    """transformers' own greedy decode of one file, and its frame count: the processor,
    the model, the argmax over the frames the model's own output mask keeps (``generate``),
    ``batch_decode`` with special tokens skipped."""
    from transformers import AutoModelForCTC, AutoProcessor

    processor = AutoProcessor.from_pretrained(folder)
    model = AutoModelForCTC.from_pretrained(folder).eval()
    inputs = processor(audio, sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        ids = model.generate(**inputs)
        logits = model(**inputs).logits
    mask = inputs.get("attention_mask", inputs.get("padding_mask"))
    frames = int(model._get_output_attention_mask(mask, logits.shape[1]).sum())
    return processor.batch_decode(ids, skip_special_tokens=True)[0], frames


@pytest.mark.parametrize("family", SUBWORD_FAMILIES)
def test_text_frames_and_padded_batches_match_transformers(subword_model, family: str) -> None:
    """On files of one chunk: the text is transformers' decode, the frame count the
    model's own; in padded batches every clip's log-probabilities are its own."""
    from w2v2cli.decoding import make_decoders
    from w2v2cli.inference import Engine

    folder = subword_model(family)
    engine = Engine(
        ModelOptions(model=str(folder), **TORCH_1), ChunkOptions(20.0, 0, 0), batch_size=1
    )
    assert engine.loaded.samples_per_frame == SAMPLES_PER_FRAME[family]
    assert engine.loaded.padding_exact
    loaders = [(lambda c=c: c) for c in clips()]
    alone = [em for _, em in engine.emissions(loaders)]
    (greedy,) = make_decoders(["greedy"], engine.loaded.vocabulary, DecodeOptions(workers=0))
    words = 0
    for audio, em in zip(clips(), alone, strict=True):
        text, frames = reference_text(folder, audio)
        assert em.log_probs.shape[0] == frames
        assert greedy.decode(em).text == text
        for marker in ("▁", "<s>", "<pad>", "</s>", "<unk>"):
            assert marker not in text
        words += len(text.split())
    assert words > 10, "the tiny model should write words"

    engine.runner.batch_size, engine.runner.max_padding = 8, 1.0  # padded batches
    batched = [em for _, em in engine.emissions(loaders)]
    for a, b in zip(alone, batched, strict=True):
        np.testing.assert_array_equal(a.log_probs.argmax(-1), b.log_probs.argmax(-1))
        assert float(np.abs(a.log_probs - b.log_probs).max()) < 1e-3
    engine.close()


@pytest.mark.parametrize("family", SUBWORD_FAMILIES)
def test_frame_counts_for_every_length(subword_model, family: str) -> None:
    """``output_frames`` is the model's frame count (its own output mask) for lengths
    around every frame boundary; inputs too short for a frame give none."""
    from transformers import AutoConfig, AutoFeatureExtractor, AutoModelForCTC

    from w2v2cli.models import output_frames

    folder = subword_model(family)
    config = AutoConfig.from_pretrained(folder)
    fe = AutoFeatureExtractor.from_pretrained(folder)
    model = AutoModelForCTC.from_pretrained(folder).eval()
    spf = SAMPLES_PER_FRAME[family]
    rng = np.random.default_rng(0)
    lengths = sorted({max(1, k * spf + d) for k in (1, 2, 3, 7) for d in (-161, -1, 0, 1, 160)})
    for n in lengths:
        if output_frames(config, n, fe) == 0:
            continue
        inputs = fe(rng.standard_normal(n).astype(np.float32), sampling_rate=16000)
        mask = inputs.get("attention_mask", inputs.get("padding_mask"))
        if mask is None:
            mask = torch.ones(1, inputs["input_features"].shape[1], dtype=torch.long)
        with torch.no_grad():
            width = model(**{k: torch.as_tensor(v) for k, v in inputs.items()}).logits.shape[1]
        frames = int(model._get_output_attention_mask(torch.as_tensor(mask), width).sum())
        assert output_frames(config, n, fe) == frames, n
    assert output_frames(config, 100, fe) == 0


@pytest.mark.parametrize("family", SUBWORD_FAMILIES)
def test_long_file_chunked_with_strides(subword_model, family: str) -> None:
    """A 61 s file in 10 s chunks with 2 s strides (a step of 6 s): frames are continuous,
    timed every frame's worth of samples from 0, cover the file (LASR's unpadded
    convolutions give a few frames less at its end), and the second chunk's kept middle is
    that chunk run alone (the stitching keeps the right frames)."""
    from w2v2cli.inference import Engine

    folder = subword_model(family)
    audio = noise_audio(61.0, seed=5)
    options = ModelOptions(model=str(folder), **TORCH_1)
    engine = Engine(options, ChunkOptions(10.0, 2.0, 2.0), batch_size=1)
    ((_, em),) = list(engine.emissions([lambda: audio]))
    spf = SAMPLES_PER_FRAME[family]
    step = spf / 16000
    assert em.frame_duration == pytest.approx(step)
    np.testing.assert_allclose(np.diff(em.frame_starts), step, atol=1e-9)
    assert em.frame_starts[0] == 0.0
    assert len(audio) / spf - 4 <= len(em.log_probs) <= len(audio) / spf + 1
    # The second chunk is 6 s..16 s of the file; its kept frames are 8 s..14 s.
    start = 6 * 16000
    alone = engine.runner.run([_chunk(audio[start : start + 160000])])[0]
    kept = alone[int(2 * 16000 / spf) : int(8 * 16000 / spf)]
    first = int(8 * 16000 / spf)
    np.testing.assert_allclose(em.log_probs[first : first + len(kept)], kept, atol=1e-4)
    assert em.frame_starts[first] == pytest.approx(8.0)
    engine.close()


def _chunk(samples: np.ndarray):
    from w2v2cli.records import Chunk

    return Chunk(0, 0, 0, samples, 0, 0, True)


def invoke(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.mark.parametrize("family", SUBWORD_FAMILIES)
def test_cli_transcribe_batch_sizes_and_eval(subword_model, family: str, tmp_path: Path) -> None:
    """From the command line: the same text at --batch-size 1 and 8 (JSON words with
    times and confidence); ``eval`` of the model's own text scores 0% WER."""
    folder = subword_model(family)
    paths = []
    for i, samples in enumerate(clips()):
        paths.append(tmp_path / f"clip{i}.wav")
        sf.write(paths[-1], samples, 16000, subtype="FLOAT")
    texts = {}
    for bs in ("1", "8"):
        out = tmp_path / bs
        args = ["transcribe", *paths, "-m", folder, "-o", out, "-f", "json", "-q", *TORCH_1_ARGS]
        result = invoke(*args, "-b", bs, "--max-padding", "1")
        assert result.exit_code == 0, result.output
        texts[bs] = [json.loads((out / f"clip{i}.json").read_text()) for i in range(len(paths))]
    assert [t["text"] for t in texts["1"]] == [t["text"] for t in texts["8"]]
    first = texts["1"][4]
    assert first["words"] and all(
        0 <= w["start"] <= w["end"] <= 5.0 and 0 <= w["confidence"] <= 1 for w in first["words"]
    )
    assert " ".join(w["text"] for w in first["words"]) == first["text"]

    manifest = tmp_path / "manifest.jsonl"
    rows = [
        {"audio_filepath": str(p), "text": t["text"]}
        for p, t in zip(paths, texts["1"], strict=True)
    ]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = invoke("eval", manifest, "-m", folder, "-q", *TORCH_1_ARGS)
    assert result.exit_code == 0, result.output
    assert "0.00%" in result.stdout


def test_granite_speech5_ctc_is_refused_in_one_line(tmp_path: Path) -> None:
    """Granite Speech 5 CTC's feature extractor needs torchaudio (no release for this
    torch): transcribe says so in one line naming the model, exit status 2."""
    folder = tmp_path / "granite"
    folder.mkdir()
    (folder / "config.json").write_text(
        json.dumps({"model_type": "granite_speech5_ctc", "architectures": ["GraniteSpeech5ForCTC"]})
    )
    sf.write(tmp_path / "a.wav", noise_audio(1.0, seed=1), 16000)
    result = invoke("transcribe", tmp_path / "a.wav", "-m", folder, *TORCH_1_ARGS)
    assert result.exit_code == 2
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Granite Speech 5 CTC" in lines[0] and "torchaudio" in lines[0]


def test_hour_long_file(subword_model, tmp_path: Path) -> None:
    """An hour-long file of Parakeet CTC (default 20 s chunks with strides, on one
    thread): written whole, words timed inside the hour and in order (the other
    families' strided chunks are tested on 61 s above; an hour takes them 10-25 s)."""
    family = "parakeet_ctc"
    audio = np.tile(noise_audio(60.0, seed=9), 60)
    path = tmp_path / "hour.wav"
    sf.write(path, audio, 16000, subtype="PCM_16")
    out = tmp_path / "out"
    result = invoke(
        "transcribe",
        path,
        "-m",
        subword_model(family),
        "-o",
        out,
        "-f",
        "json",
        "-q",
        *TORCH_1_ARGS,
    )
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "hour.json").read_text())
    assert doc["duration"] == pytest.approx(3600.0)
    starts = [w["start"] for w in doc["words"]]
    assert len(starts) > 1000 and starts == sorted(starts) and starts[-1] > 3590


@pytest.mark.parametrize("family", SUBWORD_FAMILIES)
def test_openvino_gives_the_torch_text(subword_model, family: str, tmp_path: Path) -> None:
    """Every family converts to OpenVINO (OmniASR's IR takes samples without the channel
    axis, Parakeet's and LASR's their log-mel frames flattened) and gives the torch
    backend's text, on the short clips and on a 45 s file (three chunks with strides)."""
    paths = []
    for i, samples in enumerate([*clips(), noise_audio(45.0, seed=8)]):
        paths.append(tmp_path / f"clip{i}.wav")
        sf.write(paths[-1], samples, 16000, subtype="FLOAT")
    cache = ("--cache-dir", tmp_path / "cache")
    texts = {}
    for backend in ("torch", "openvino"):
        out = tmp_path / backend
        args = ["transcribe", *paths, "-m", subword_model(family), "-o", out, "-q", *cache]
        result = invoke(*args, "--threads", "1", "--backend", backend)
        assert result.exit_code == 0, result.output
        texts[backend] = [(out / f"clip{i}.txt").read_text() for i in range(len(paths))]
    assert texts["openvino"] == texts["torch"]
    assert len(texts["torch"][-1].split()) > 20
    assert any((tmp_path / "cache").rglob("*.xml"))


def test_export_of_a_subword_model_runs_with_its_tokenizer(subword_model, tmp_path: Path) -> None:
    """``w2v2 export`` of Parakeet CTC copies its ``tokenizer.json`` beside the IR (a
    subword tokenizer has no ``vocab.json``), and the exported folder gives torch's text."""
    folder = subword_model("parakeet_ctc")
    path = tmp_path / "a.wav"
    sf.write(path, noise_audio(7.0, seed=12), 16000, subtype="FLOAT")
    exported = tmp_path / "exported"
    result = invoke("export", folder, "-o", exported, "--cache-dir", tmp_path / "cache")
    assert result.exit_code == 0, result.output
    assert (exported / "tokenizer.json").is_file()
    texts = []
    for model, backend in ((folder, "torch"), (exported, "openvino")):
        out = tmp_path / backend
        result = invoke("transcribe", path, "-m", model, "-o", out, "--backend", backend, "-q")
        assert result.exit_code == 0, result.output
        texts.append((out / "a.txt").read_text())
    assert texts[0] == texts[1] and texts[0].split()

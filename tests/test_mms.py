"""MMS-style models (one vocabulary and adapter per language): ``--language``, ``w2v2
languages`` and the one-line refusals, on a tiny model with English and French adapters
(``family_models.save_mms_model``). The reference is transformers itself: the model with
``load_adapter(code)`` and the tokenizer's ``target_lang``."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner
from conftest import TORCH_1, TORCH_1_ARGS, noise_audio
from family_models import MMS_VOCABS, save_mms_model

from w2v2cli.cli import main
from w2v2cli.options import ChunkOptions, ModelOptions, RunOptions

SPECIALS = re.compile(r"<s>|</s>|<unk>|<pad>")


@pytest.fixture(scope="session")
def mms(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_mms_model(tmp_path_factory.mktemp("mms") / "mms")


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_languages_and_refusals(mms: Path, group_model: Path, tmp_path: Path) -> None:
    result = invoke("languages", mms)
    assert result.exit_code == 0 and result.stdout.split() == ["eng", "fra"]
    assert "2 languages" in result.stderr
    sf.write(tmp_path / "a.wav", noise_audio(1.0, 1), 16000)
    cases = [
        (
            [],
            r"one vocabulary and adapter per language \(MMS\): choose one with --language "
            r"CODE; `w2v2 languages .*mms` lists its 2 codes",
        ),
        (["--language", "deu"], r"has no language 'deu'; `w2v2 languages .*` lists its 2"),
    ]
    for extra, message in cases:
        result = invoke("transcribe", tmp_path / "a.wav", "-m", mms, "--stdout", *extra)
        assert result.exit_code == 2
        assert re.fullmatch(f"error: .*{message}.*", result.stderr.strip()), result.stderr
    result = invoke("transcribe", tmp_path / "a.wav", "-m", group_model, "--language", "fra")
    assert result.exit_code == 2 and "has a single vocabulary" in result.stderr
    result = invoke("languages", group_model)
    assert result.exit_code == 2 and "single vocabulary" in result.stderr


def test_language_adapter_matches_transformers_and_the_pipeline(mms: Path) -> None:
    """--language fra: the French head and adapter (log-probabilities of transformers'
    own load_adapter, alone and in padded batches), the French alphabet, and the
    pipeline's text on a file five chunks long."""
    from transformers import AutoFeatureExtractor, AutoTokenizer, Wav2Vec2ForCTC, pipeline

    from w2v2cli import Transcriber
    from w2v2cli.inference import Engine

    model = Wav2Vec2ForCTC.from_pretrained(mms).eval()
    model.load_adapter("fra")
    fe = AutoFeatureExtractor.from_pretrained(mms)
    clips = [noise_audio(s, seed=80 + i) for i, s in enumerate([1.3, 2.2, 0.7])]
    engine = Engine(
        ModelOptions(model=str(mms), language="fra", **TORCH_1),
        ChunkOptions(20, 3, 3),
        batch_size=8,
        max_padding=1.0,
    )
    ours = [em.log_probs for _, em in engine.emissions([(lambda c=c: c) for c in clips])]
    assert engine.loaded.vocabulary.tokens == tuple(MMS_VOCABS["fra"])
    engine.close()
    for clip, lp in zip(clips, ours, strict=True):
        inputs = fe(clip, sampling_rate=16000, return_tensors="pt")
        with torch.no_grad():
            ref = torch.log_softmax(model(**inputs).logits, -1)[0].numpy()
        assert lp.shape == ref.shape == (lp.shape[0], len(MMS_VOCABS["fra"]))
        assert float(np.abs(lp - ref).max()) < 1e-4

    tokenizer = AutoTokenizer.from_pretrained(mms, target_lang="fra")
    asr = pipeline(
        "automatic-speech-recognition",
        model=model,
        tokenizer=tokenizer,
        feature_extractor=fe,
        device="cpu",
    )
    audio = noise_audio(9.7, seed=4)
    ref = asr(audio.copy(), chunk_length_s=2.0, stride_length_s=(0.4, 0.4), batch_size=1)
    options = RunOptions(
        model=ModelOptions(model=str(mms), language="fra", **TORCH_1),
        chunking=ChunkOptions(2.0, 0.4, 0.4),
        batch_size=1,
    )
    with Transcriber(options) as t:
        text = t.transcribe_array(audio).text
    assert len(text.split()) > 5 and text == text.lower()
    assert text == " ".join(SPECIALS.sub("", ref["text"]).split())


def test_command_line_batch_sizes_beam_and_lm_build(mms: Path, tmp_path: Path) -> None:
    paths = []
    for i, seconds in enumerate([1.1, 2.9, 0.8]):
        paths.append(tmp_path / f"clip{i}.wav")
        sf.write(paths[-1], noise_audio(seconds, seed=90 + i), 16000)
    texts = {}
    for name, extra in (
        ("b1", ["-b", "1"]),
        ("b8", ["-b", "8", "--max-padding", "1"]),
        ("beam", ["--decoder", "beam", "--beam-width", "8", "--decode-workers", "0"]),
    ):
        out = tmp_path / name
        result = invoke(
            "transcribe",
            *paths,
            "-m",
            mms,
            "--language",
            "fra",
            "-o",
            out,
            "-f",
            "all",
            "-q",
            *TORCH_1_ARGS,
            *extra,
        )
        assert result.exit_code == 0, result.output
        assert len(list(out.iterdir())) == 5 * len(paths)
        texts[name] = [(out / f"clip{i}.txt").read_text() for i in range(len(paths))]
    assert texts["b1"] == texts["b8"]
    assert all(t.strip() for t in texts["beam"])

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("Le Café était fermé\nça va très bien\n" * 10, encoding="utf-8")
    lm = tmp_path / "fr.arpa"
    result = invoke(
        "lm",
        "build",
        corpus,
        "-o",
        lm,
        "--order",
        "2",
        "--arpa-only",
        "--model",
        mms,
        "--language",
        "fra",
    )
    assert result.exit_code == 0, result.output
    assert "le café" in lm.read_text(encoding="utf-8")  # the French alphabet and case

"""Every transformers family w2v2 runs, tested as wav2vec2 is: the transformers pipeline's
text on a file several chunks long at batch size 1, the same results in padded batches,
greedy and beam decoding, and (for a few families: it is the same code past the model)
every output format from the command line (``family_models.py`` builds the models).

For Wav2Vec2-Conformer, SEW, SEW-D and Data2Vec audio, padding changes what the model
computes even with the attention mask (``w2v2cli/models/families.py`` says why); the
tests show that it would, and that w2v2 still gives every clip its unbatched result.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner
from conftest import TORCH_1, TORCH_1_ARGS, noise_audio
from family_models import FAMILIES, save_family_model

from w2v2cli.cli import main
from w2v2cli.options import ChunkOptions, ModelOptions, RunOptions

NAMES = list(FAMILIES)
SECONDS = [0.95, 3.3, 1.7, 2.6]  # 47, 164, 84 and 129 frames: odd and even counts
CHUNKS = ChunkOptions(2.0, 0.4, 0.4)
SPECIALS = re.compile(r"<s>|</s>|<unk>|<pad>")


@pytest.fixture(scope="session")
def family_model(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("families")
    made: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in made:
            made[name] = save_family_model(root / name, name, seed=NAMES.index(name))
        return made[name]

    return get


def clips() -> list[np.ndarray]:
    return [noise_audio(s, seed=60 + i) for i, s in enumerate(SECONDS)]


@pytest.mark.parametrize("family", NAMES)
def test_pipeline_text_padded_batches_and_decoders(family_model, family: str) -> None:
    """One model load per family: at batch size 1 the text of a file five chunks long
    equals the transformers pipeline's (2 s chunks, 0.4 s strides); in padded batches every
    clip's log-probabilities equal its own (where padding changes the model's output, as
    shown on the model itself, w2v2 batches only equal lengths); greedy and beam search
    decode the family's output."""
    from transformers import pipeline

    from w2v2cli.decoding import make_decoders
    from w2v2cli.inference import Engine
    from w2v2cli.options import DecodeOptions

    model = family_model(family)
    audio = noise_audio(9.7, seed=4)  # five chunks, the last one short
    engine = Engine(ModelOptions(model=str(model), **TORCH_1), CHUNKS, batch_size=1)
    loaders = [(lambda c=c: c) for c in [*clips(), audio]]
    alone = [em for _, em in engine.emissions(loaders)]
    greedy, beam = make_decoders(
        ["greedy", "beam"], engine.loaded.vocabulary, DecodeOptions(workers=0, beam_width=4)
    )
    asr = pipeline("automatic-speech-recognition", model=str(model), device="cpu")
    ref = asr(
        audio.copy(),
        chunk_length_s=CHUNKS.chunk_length,
        stride_length_s=(CHUNKS.stride_left, CHUNKS.stride_right),
        batch_size=1,
    )
    text = greedy.decode(alone[-1]).text
    assert len(text.split()) > 5, "the tiny model should write words"
    assert text == " ".join(SPECIALS.sub("", ref["text"]).split())
    assert beam.decode(alone[0]).text

    engine.runner.batch_size, engine.runner.max_padding = 8, 1.0  # padded batches
    batched = [em for _, em in engine.emissions(loaders)]
    assert engine.loaded.padding_exact == FAMILIES[family][3]
    for a, b in zip(alone, batched, strict=True):
        np.testing.assert_array_equal(a.log_probs.argmax(-1), b.log_probs.argmax(-1))
        assert float(np.abs(a.log_probs - b.log_probs).max()) < 1e-4
    if not engine.loaded.padding_exact:  # the model itself, padded, masked: frames change
        (short, n_short), (long_, n_long) = (engine.runner.features(c) for c in clips()[:2])
        batch = torch.zeros(2, *long_.shape)
        batch[0, : len(short)] = torch.from_numpy(short)
        batch[1] = torch.from_numpy(long_)
        mask = torch.arange(len(long_))[None] < torch.tensor([[n_short], [n_long]])
        with torch.no_grad():
            out = engine.loaded.model(batch, attention_mask=mask.long()).logits
        padded = torch.log_softmax(out, -1)[0, : len(alone[0].log_probs)].numpy()
        assert float(np.abs(padded - alone[0].log_probs).max()) > 1e-3
    engine.close()


@pytest.mark.parametrize("family", ["conformer", "w2v-bert-adapter", "wavlm"])
def test_command_line_formats_and_batch_sizes(family_model, family: str, tmp_path: Path) -> None:
    """From the command line (the same code for every family past the model): every
    format, the same text at --batch-size 1 and 8."""
    paths = []
    for i, samples in enumerate(clips()):
        paths.append(tmp_path / f"clip{i}.wav")
        sf.write(paths[-1], samples, 16000, subtype="FLOAT")
    texts = {}
    for bs in ("1", "8"):
        out = tmp_path / bs
        result = CliRunner().invoke(
            main,
            [
                "transcribe",
                *map(str, paths),
                "-m",
                str(family_model(family)),
                "-o",
                str(out),
                "-f",
                "all",
                "-q",
                *TORCH_1_ARGS,
                "-b",
                bs,
                "--max-padding",
                "1",
            ],
            catch_exceptions=False,
        )
        assert result.exit_code == 0, result.output
        assert len(list(out.iterdir())) == 5 * len(paths)
        texts[bs] = [(out / f"clip{i}.txt").read_text() for i in range(len(paths))]
    assert texts["1"] == texts["8"]
    assert sum(len(t.split()) for t in texts["1"]) >= 4


@pytest.mark.parametrize("family", ["conformer", "w2v-bert"])
def test_lm_build_with_the_family_alphabet(family_model, family: str, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the cat sat on the mat\nzebras quietly jump\n" * 10)
    lm = tmp_path / "lm.arpa"
    result = CliRunner().invoke(
        main,
        [
            "lm",
            "build",
            str(corpus),
            "-o",
            str(lm),
            "--order",
            "2",
            "--arpa-only",
            "--model",
            str(family_model(family)),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "THE CAT" in lm.read_text()


@pytest.mark.parametrize("family", ["w2v-bert", "w2v-bert-adapter"])
def test_w2v_bert_frames_masks_and_short_tails(family_model, family: str, tmp_path: Path) -> None:
    """W2V-BERT's frame count (filterbank frames, padded to pairs, the adapter) matches the
    model for every length; inputs too short for the filterbank's two frames give none;
    a last chunk that short is merged into the one before instead of crashing; OpenVINO is
    not used for it."""
    from transformers import AutoFeatureExtractor, AutoModelForCTC

    from w2v2cli import Transcriber
    from w2v2cli.models import output_frames

    model_dir = family_model(family)
    fe = AutoFeatureExtractor.from_pretrained(model_dir)
    model = AutoModelForCTC.from_pretrained(model_dir).eval()
    rng = np.random.default_rng(0)
    for n in (560, 561, 719, 720, 880, 1039, 1040, 1200, 3333, 4000, 16000, 16161):
        inputs = fe(
            rng.standard_normal(n).astype(np.float32), sampling_rate=16000, return_tensors="pt"
        )
        with torch.no_grad():
            frames = model(**inputs).logits.shape[1]
        assert output_frames(model.config, n) == frames, n
    assert output_frames(model.config, 559) == 0  # one filterbank frame: no normalisation

    audio = noise_audio(2.0, seed=7)
    tail = np.concatenate([audio, noise_audio(0.02, seed=8)])  # 320 samples past a chunk
    options = RunOptions(
        model=ModelOptions(model=str(model_dir), **TORCH_1),
        chunking=ChunkOptions(1.0, 0.0, 0.0),
        batch_size=1,
    )
    with Transcriber(options) as t:
        ((_, em),) = list(t.emissions([lambda: tail]))
    spf = 320 * (2 if "adapter" in family else 1)
    assert em.duration == pytest.approx(2.02)
    assert em.frame_starts[-1] >= 1.0 and em.log_probs.shape[0] >= 2 * (16000 // spf) - 1

    sf.write(tmp_path / "a.wav", audio, 16000)
    result = CliRunner().invoke(
        main, ["transcribe", str(tmp_path / "a.wav"), "-m", str(model_dir), "--backend", "openvino"]
    )
    assert result.exit_code == 2
    assert "OpenVINO backend does not run W2V-BERT 2.0 models" in result.stderr

"""Every transformers family w2v2 runs, tested as wav2vec2 is: the transformers pipeline's
text on files several chunks long at batch size 1, the same results in padded batches,
every output format, greedy and beam decoding (``family_models.py`` builds the models).

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
from conftest import noise_audio
from family_models import FAMILIES, save_family_model

from w2v2cli.cli import main
from w2v2cli.options import ChunkOptions, ModelOptions, RunOptions

NAMES = list(FAMILIES)
SECONDS = [0.95, 3.3, 1.7, 2.6]  # 47, 164, 84 and 129 frames: odd and even counts
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
def test_batches_formats_and_decoders(family_model, family: str, tmp_path: Path) -> None:
    """Each clip's log-probabilities in a padded batch equal its own; the command line
    writes every format with the same text at --batch-size 8 as at 1; greedy and beam
    search decode the family's output. Where padding changes the model's output (shown
    on the model itself), w2v2 batches only equal lengths."""
    from w2v2cli.decoding import make_decoders
    from w2v2cli.inference import Engine
    from w2v2cli.options import DecodeOptions

    model = family_model(family)
    engine = Engine(ModelOptions(model=str(model), backend="torch"), ChunkOptions(20, 3, 3),
                    batch_size=1)  # fmt: skip
    loaders = [(lambda c=c: c) for c in clips()]
    alone = [em for _, em in engine.emissions(loaders)]
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
    greedy, beam = make_decoders(["greedy", "beam"], engine.loaded.vocabulary,
                                 DecodeOptions(workers=0, beam_width=4))  # fmt: skip
    texts = [greedy.decode(em).text for em in alone]
    assert len(" ".join(texts).split()) >= 4, "the tiny model should write words"
    assert beam.decode(alone[0]).text
    engine.close()

    paths = []
    for i, samples in enumerate(clips()):
        paths.append(tmp_path / f"clip{i}.wav")
        sf.write(paths[-1], samples, 16000, subtype="FLOAT")
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["transcribe", *map(str, paths), "-m", str(model), "-o",
                                       str(out), "-f", "all", "-q", "--backend", "torch",
                                       "-b", "8", "--max-padding", "1"],
                                catch_exceptions=False)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert len(list(out.iterdir())) == 5 * len(paths)
    assert [(out / f"clip{i}.txt").read_text().strip() for i in range(len(paths))] == texts


@pytest.mark.slow
@pytest.mark.parametrize("family", NAMES)
def test_same_text_as_the_transformers_pipeline(family_model, family: str) -> None:
    from transformers import pipeline

    from w2v2cli.run import Transcriber

    model = family_model(family)
    audio = noise_audio(9.7, seed=4)  # five chunks, the last one short
    asr = pipeline("automatic-speech-recognition", model=str(model), device="cpu")
    ref = asr(audio.copy(), chunk_length_s=2.0, stride_length_s=(0.4, 0.4), batch_size=1)
    options = RunOptions(model=ModelOptions(model=str(model), backend="torch"),
                         chunking=ChunkOptions(2.0, 0.4, 0.4), batch_size=1)  # fmt: skip
    with Transcriber(options) as t:
        ours = t.transcribe_array(audio).text
    assert len(ours.split()) > 5
    assert ours == " ".join(SPECIALS.sub("", ref["text"]).split())


@pytest.mark.parametrize("family", ["conformer", "w2v-bert"])
def test_lm_build_with_the_family_alphabet(family_model, family: str, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the cat sat on the mat\nzebras quietly jump\n" * 10)
    lm = tmp_path / "lm.arpa"
    result = CliRunner().invoke(main, ["lm", "build", str(corpus), "-o", str(lm), "--order",
                                       "2", "--arpa-only", "--model",
                                       str(family_model(family))])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "THE CAT" in lm.read_text()


@pytest.mark.parametrize("family", ["w2v-bert", "w2v-bert-adapter"])
def test_w2v_bert_frames_masks_and_short_tails(family_model, family: str,
                                                tmp_path: Path) -> None:  # fmt: skip
    """W2V-BERT's frame count (filterbank frames, padded to pairs, the adapter) matches the
    model for every length; inputs too short for the filterbank's two frames give none;
    a last chunk that short is merged into the one before instead of crashing; OpenVINO is
    not used for it."""
    from transformers import AutoFeatureExtractor, AutoModelForCTC

    from w2v2cli.models import output_frames
    from w2v2cli.run import Transcriber

    model_dir = family_model(family)
    fe = AutoFeatureExtractor.from_pretrained(model_dir)
    model = AutoModelForCTC.from_pretrained(model_dir).eval()
    rng = np.random.default_rng(0)
    for n in (560, 561, 719, 720, 880, 1039, 1040, 1200, 3333, 4000, 16000, 16161):
        inputs = fe(rng.standard_normal(n).astype(np.float32), sampling_rate=16000,
                    return_tensors="pt")  # fmt: skip
        with torch.no_grad():
            frames = model(**inputs).logits.shape[1]
        assert output_frames(model.config, n) == frames, n
    assert output_frames(model.config, 559) == 0  # one filterbank frame: no normalisation

    audio = noise_audio(2.0, seed=7)
    tail = np.concatenate([audio, noise_audio(0.02, seed=8)])  # 320 samples past a chunk
    options = RunOptions(model=ModelOptions(model=str(model_dir), backend="torch"),
                         chunking=ChunkOptions(1.0, 0.0, 0.0), batch_size=1)  # fmt: skip
    with Transcriber(options) as t:
        ((_, em),) = list(t.emissions([lambda: tail]))
    spf = 320 * (2 if "adapter" in family else 1)
    assert em.duration == pytest.approx(2.02)
    assert em.frame_starts[-1] >= 1.0 and em.log_probs.shape[0] >= 2 * (16000 // spf) - 1

    sf.write(tmp_path / "a.wav", audio, 16000)
    result = CliRunner().invoke(main, ["transcribe", str(tmp_path / "a.wav"), "-m",
                                       str(model_dir), "--backend", "openvino"])  # fmt: skip
    assert result.exit_code == 2
    assert "OpenVINO backend does not run W2V-BERT 2.0 models" in result.stderr

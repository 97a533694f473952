"""Shared fixtures: tiny real CTC models saved with ``save_pretrained`` and real audio files.

Models are random but real ``Wav2Vec2ForCTC`` checkpoints loaded through the same code as
a hub model. Nothing is downloaded.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

# A suite started in the background by a non-interactive shell (`cmd &`, nohup) inherits
# SIGINT ignored; Python then installs no KeyboardInterrupt handler, in itself or in the
# commands the tests start, and w2v2 rightly leaves an ignored SIGINT ignored. The tests
# that send SIGINT need the usual disposition, whoever started the suite.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# The suite tests the CPU paths on every machine, so that its results never depend on
# whether the machine has a GPU: ``--device auto`` would pick CUDA and float16 there, and
# the tests that hold the tool to a CPU float32 reference would measure float16 instead.
# GPUs are hidden before torch is imported, from this process and the commands it starts;
# ``test_cuda.py`` runs the CUDA path in child processes that see them (``gpu_env``).
_GPUS = os.environ.get("CUDA_VISIBLE_DEVICES")
os.environ["CUDA_VISIBLE_DEVICES"] = ""


def gpu_env() -> dict[str, str]:
    """This process's environment with the machine's GPUs visible again."""
    env = dict(os.environ)
    if _GPUS is None:
        env.pop("CUDA_VISIBLE_DEVICES")
    else:
        env["CUDA_VISIBLE_DEVICES"] = _GPUS
    return env


# Every test run gets its own Hugging Face cache (hence its own OpenVINO IR cache): nothing
# is read from or written to the user's, and nothing can be downloaded into it.
_HF_HOME = tempfile.mkdtemp(prefix="w2v2-test-hf-")
os.environ["HF_HOME"] = _HF_HOME
os.environ.pop("HF_HUB_CACHE", None)
atexit.register(shutil.rmtree, _HF_HOME, True)

VOCAB = ["<pad>", "<s>", "</s>", "<unk>", "|", *"ETAONIHSRDLUMWCFGYPBVK'XJQZ"]

#: The torch backend on one thread: fastest for tiny models, and no spinning threads
#: fighting other processes for the cores (``ModelOptions(**TORCH_1)``, CLI ``*TORCH_1_ARGS``).
TORCH_1 = {"backend": "torch", "threads": 1}
TORCH_1_ARGS = ("--backend", "torch", "--threads", "1")


def save_tiny_model(
    folder: Path,
    *,
    norm: str = "group",
    seed: int = 0,
    vocab: list[str] | None = None,
    with_tokenizer: bool = True,
    ctc: bool = True,
    blank_bias: float | None = None,
    delimiter_bias: float | None = None,
) -> Path:
    """Write a tiny wav2vec2 checkpoint shaped like base (group norm) or large (layer norm).

    ``norm="group"``: group-norm feature encoder, post-LN transformer, feature extractor
    with ``return_attention_mask=False`` (like wav2vec2-base-960h). ``norm="layer"``:
    layer-norm encoder, stable (pre-LN) transformer, attention mask (like large-lv60/XLS-R).
    The random weights are scaled up so outputs vary frame to frame, making any difference
    between two runs visible in the text.
    """
    import torch
    from transformers import (
        Wav2Vec2Config,
        Wav2Vec2CTCTokenizer,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2ForCTC,
        Wav2Vec2ForPreTraining,
    )

    vocab = vocab or VOCAB
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    config = Wav2Vec2Config(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(32,) * 7,
        feat_extract_norm=norm,
        do_stable_layer_norm=(norm == "layer"),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4,
        pad_token_id=0,
        ctc_loss_reduction="mean",
    )
    model = (Wav2Vec2ForCTC if ctc else Wav2Vec2ForPreTraining)(config)
    # Biases found by measuring how often each family's random head picks blank and "|":
    # about 40% blank and 30% delimiter frames on noise input.
    if blank_bias is None:
        blank_bias = 2.5 if norm == "group" else 1.5
    if delimiter_bias is None:
        delimiter_bias = 1.5 if norm == "group" else 2.0
    if ctc:
        with torch.no_grad():
            model.lm_head.weight.mul_(8.0)
            # Favour blank and word delimiter so outputs look like CTC: short words with
            # blanks between, which exercises collapsing, word splitting and timings.
            model.lm_head.bias[vocab.index("<pad>")] += blank_bias
            if "|" in vocab:
                model.lm_head.bias[vocab.index("|")] += delimiter_bias
    model.save_pretrained(folder)
    fe = Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=16000,
        padding_value=0.0,
        do_normalize=True,
        return_attention_mask=(norm == "layer"),
    )
    fe.save_pretrained(folder)
    if with_tokenizer:
        (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}))
        tok = Wav2Vec2CTCTokenizer(
            str(folder / "vocab.json"),
            unk_token="<unk>",
            pad_token="<pad>",
            word_delimiter_token="|",
            do_lower_case=False,
        )
        tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def group_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("models") / "group", norm="group")


@pytest.fixture(scope="session")
def layer_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("models") / "layer", norm="layer", seed=1)


def noise_audio(seconds: float, seed: int, sr: int = 16000) -> np.ndarray:
    """Deterministic speech-band noise with an envelope, so frames differ from each other."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 0.7 * t + seed)
    return (0.3 * env * rng.standard_normal(n)).astype(np.float32)


@pytest.fixture
def audio_folder(tmp_path: Path) -> Path:
    """A folder of WAV files of very different lengths, one in a sub-folder."""
    root = tmp_path / "audio"
    (root / "sub").mkdir(parents=True)
    for i, secs in enumerate([0.7, 2.5, 11.0, 4.2]):
        sf.write(root / f"clip{i}.wav", noise_audio(secs, seed=i), 16000)
    sf.write(root / "sub" / "deep.flac", noise_audio(3.3, seed=9), 16000)
    return root


@pytest.fixture(scope="session")
def speech(tmp_path_factory: pytest.TempPathFactory):
    """Sentences spoken by espeak-ng (``speech.Speech``), synthesised once per session."""
    from speech import synthesise

    return synthesise(tmp_path_factory.mktemp("speech"))


@pytest.fixture(scope="session")
def trained_model() -> Path:
    """A small model that really recognises espeak-ng speech (tests/assets)."""
    from speech import TRAINED_MODEL

    return TRAINED_MODEL


# --------------------------------------------------------------------------- environments
# CI runs the suite in what users install (ctc-beam-decoder, numpy 2: no pyctcdecode) and
# the tests marked ``pyctcdecode`` in a second environment that has pyctcdecode and the
# kenlm module (``.ci/pyctcdecode``). Every test runs in one of the two: a marked test skips
# only where pyctcdecode need not be installed (``lm_fixtures.require_engine``), and a test
# that skips for want of pyctcdecode without the marker fails, since neither would run it.


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("pyctcdecode"):
        from lm_fixtures import require_engine

        require_engine("pyctcdecode")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not item.get_closest_marker("pyctcdecode"):
        from lm_fixtures import SECOND_ENVIRONMENT

        if SECOND_ENVIRONMENT in str(report.longrepr):
            report.outcome = "failed"
            report.longrepr = (
                f"{item.nodeid} skips for want of pyctcdecode but has no pyctcdecode marker, "
                "so neither CI environment runs it: add @pytest.mark.pyctcdecode"
            )


@pytest.fixture(
    scope="module",
    params=["ctc-beam-decoder", pytest.param("pyctcdecode", marks=pytest.mark.pyctcdecode)],
)
def beam_engine(request: pytest.FixtureRequest):
    """Runs the requesting module's tests once per beam-search engine, chosen the way CI
    forces one for a whole run: ``W2V2_BEAM_ENGINE``."""
    from lm_fixtures import require_engine

    from w2v2cli.decoding.beam_engines import ENGINE_ENV

    require_engine(request.param)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(ENGINE_ENV, request.param)
        yield request.param


@pytest.fixture(scope="session")
def nvidia(tmp_path_factory: pytest.TempPathFactory):
    """Checkpoints built, and test clips run, by NVIDIA's own code (``dle_reference``)."""
    from dle_reference import build_reference

    return build_reference(tmp_path_factory.mktemp("nvidia"))


@pytest.fixture(scope="session")
def timed(tmp_path_factory: pytest.TempPathFactory):
    """Speech with known word times (``speech.timed_set``): three files of 18-22 s."""
    from speech import timed_set

    return timed_set(tmp_path_factory.mktemp("timed"))

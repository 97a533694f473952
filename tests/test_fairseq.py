"""fairseq wav2vec 2.0 CTC checkpoints (``.pt`` + ``dict.ltr.txt``), without fairseq.

The weights come from the ``nvidia`` fixture (``dle_reference.py``): NVIDIA's code is
fairseq's wav2vec 2.0, forked, with fairseq's weight names, so its "plain" model is also
written in fairseq's two checkpoint layouts (``cfg`` dicts, old ``args`` namespaces) and
its reference output is what fairseq computes for those weights (``blank_weight``
applied). fairseq itself is not installed; omegaconf-pickled configs are read from a
fixture made with omegaconf (``assets/make_fairseq_dictconfig.py``).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner
from conftest import TORCH_1, TORCH_1_ARGS
from dle_reference import FAIRSEQ_BLANK_WEIGHT, Reference, clean, with_blank_weight

from w2v2cli.cli import main
from w2v2cli.errors import ModelError
from w2v2cli.options import ModelOptions, RunOptions

ASSETS = Path(__file__).parent / "assets"


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.mark.parametrize("layout", ["cfg", "args"])
def test_same_log_probs_as_the_reference(nvidia: Reference, layout: str) -> None:
    """Both layouts, one padded batch: every clip as the model gives it alone."""
    from w2v2cli import Transcriber

    clips = [sf.read(p, dtype="float32")[0] for p in nvidia.clips]
    options = RunOptions(
        model=ModelOptions(model=str(nvidia.fairseq[layout]), **TORCH_1),
        batch_size=8,
        max_padding=1.0,
    )
    with Transcriber(options) as t:
        ours = [em.log_probs for _, em in t.emissions([(lambda c=c: c) for c in clips])]
        texts = [t.transcribe_array(c).text for c in clips]
    weight = FAIRSEQ_BLANK_WEIGHT if layout == "cfg" else 0.0
    for a, ref in zip(ours, nvidia.log_probs["plain"], strict=True):
        b = with_blank_weight(ref, weight) if weight else ref
        assert float(np.abs(a - b).max()) < 2e-4
        np.testing.assert_array_equal(a.argmax(-1), b.argmax(-1))
    if layout == "args":
        assert texts == [clean(s) for s in nvidia.texts["plain"]]


def test_convert_and_transcribe_from_the_command_line(nvidia: Reference, tmp_path: Path) -> None:
    """``convert`` finds dict.ltr.txt beside the checkpoint or takes --dict; ``-m`` runs
    the checkpoint with the same text at --batch-size 1 and 8, greedy and beam."""
    from transformers import AutoModelForCTC

    out = tmp_path / "converted"
    result = invoke("convert", nvidia.fairseq["args"], "-o", out)
    assert result.exit_code == 0, result.output
    assert "fairseq checkpoint" in result.stderr and "transformers loads it too" in result.stderr
    AutoModelForCTC.from_pretrained(out)  # transformers alone

    alone = tmp_path / "alone.pt"
    shutil.copy(nvidia.fairseq["cfg"], alone)
    result = invoke("convert", alone, "-o", tmp_path / "x")
    assert result.exit_code == 2
    assert "dict.ltr.txt was not found (give it with --dict)" in result.stderr
    dictionary = nvidia.fairseq["cfg"].with_name("dict.ltr.txt")
    result = invoke("convert", alone, "-o", tmp_path / "x", "--dict", dictionary)
    assert result.exit_code == 0, result.output
    assert "blank_weight 0.5" in result.stderr

    texts = {}
    for bs, decoder in (("1", "greedy"), ("8", "greedy"), ("1", "beam")):
        result = invoke(
            "transcribe",
            *nvidia.clips,
            "-m",
            nvidia.fairseq["args"],
            "--stdout",
            "-b",
            bs,
            "--max-padding",
            "1",
            "--decoder",
            decoder,
            "-q",
            "--decode-workers",
            "0",
            *TORCH_1_ARGS,
        )
        assert result.exit_code == 0, result.output
        texts[bs, decoder] = result.stdout
    assert texts["1", "greedy"] == texts["8", "greedy"]
    assert texts["1", "beam"].count("==>") == 4


def _fairseq_state(nvidia: Reference, change) -> dict:
    state = torch.load(nvidia.fairseq["cfg"], weights_only=True)
    change(state)
    return state


def _pre(state: dict) -> dict:
    return state["cfg"]["model"]["w2v_args"]["model"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: _pre(s).update(layer_type="conformer"), "conformer layers are not supported"),
        (lambda s: _pre(s).update(extractor_mode="spectrogram"), "extractor_mode 'spectrogram'"),
        (lambda s: _pre(s).update(_name="data2vec_audio"), "'data2vec_audio' model"),
        (lambda s: _pre(s).update(pos_conv_depth=5), "positional convolution of depth 5"),
        (lambda s: s["cfg"]["model"].update(_name="hubert_ctc"), "'hubert_ctc' model"),
        (lambda s: s["cfg"]["model"].update(_name="wav2vec2"), "needs CTC fine-tuning"),
        (
            lambda s: s["cfg"]["model"].update(w2v_args=None),
            "does not hold its model configuration",
        ),
        (lambda s: s["cfg"]["model"].update(blank_mode="set"), "blank_mode 'set'"),
        (
            lambda s: s["model"].update(
                {"w2v_encoder.w2v_model.encoder.layers.0.conv_module.w": torch.zeros(1)}
            ),
            "has no counterpart",
        ),
    ],
)
def test_what_cannot_be_mapped_is_refused(
    nvidia: Reference, tmp_path: Path, change, message
) -> None:
    from w2v2cli.models.convert import build_model, read_converted

    path = tmp_path / "changed.pt"
    torch.save(_fairseq_state(nvidia, change), path)
    dictionary = nvidia.fairseq["cfg"].with_name("dict.ltr.txt")
    with pytest.raises(ModelError, match=message) as info:
        build_model(read_converted(path, dictionary), str(path))
    assert "\n" not in str(info.value)


def test_a_dictionary_of_another_model_is_refused(nvidia: Reference, tmp_path: Path) -> None:
    from w2v2cli.models.convert import read_converted

    wrong = tmp_path / "dict.ltr.txt"
    wrong.write_text("| 5\nA 4\nB 3\n")
    with pytest.raises(ModelError, match=r"32 outputs but .*dict.ltr.txt has 7 symbols"):
        read_converted(nvidia.fairseq["cfg"], wrong)


def test_omegaconf_configs_are_read_without_omegaconf() -> None:
    """A cfg pickled as omegaconf objects (DictConfig, ListConfig, nodes, a Namespace):
    read through inert stand-ins, omegaconf never imported, the same plain values."""
    from w2v2cli.models.checkpoints import plain, read_checkpoint
    from w2v2cli.models.fairseq import config_groups

    sys.path.insert(0, str(ASSETS))
    try:
        from make_fairseq_dictconfig import EXPECTED
    finally:
        sys.path.remove(str(ASSETS))
    state = read_checkpoint(ASSETS / "fairseq-dictconfig-cfg.pt")
    assert "omegaconf" not in sys.modules
    assert plain(state["cfg"]) == EXPECTED
    model, task, pre_model, pre_task = config_groups(state, "x")
    assert pre_model["encoder_layers"] == 2 and task["normalize"] is True

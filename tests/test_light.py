"""Reading standard folders without transformers gives exactly what transformers gives."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import noise_audio, save_tiny_model

from w2v2cli.errors import ModelError
from w2v2cli.models import load_processor, load_processor_light, locate_model


def both(folder: Path):
    ref = locate_model(str(folder))
    light = load_processor_light(ref)
    assert light is not None, "a standard folder must be read without transformers"
    return light, load_processor(ref)


@pytest.mark.parametrize("fixture", ["group_model", "layer_model", "trained_model"])
def test_same_vocabulary_frames_and_features(fixture: str, request) -> None:
    light, full = both(request.getfixturevalue(fixture))
    assert light.vocabulary == full.vocabulary
    assert (light.sampling_rate, light.samples_per_frame, light.wants_attention_mask) == (
        full.sampling_rate,
        full.samples_per_frame,
        full.wants_attention_mask,
    )
    for n in (0, 399, 400, 401, 16000, 16000 * 20 + 123):
        assert light.output_frames(n) == full.output_frames(n)
    audio = noise_audio(3.3, 7)
    for x in (audio, audio * 1000, np.zeros(800, np.float32)):
        a = light.feature_extractor(x, sampling_rate=16000)["input_values"][0]
        b = full.feature_extractor(x, sampling_rate=16000, return_tensors="np")["input_values"][0]
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "vocab",
    [
        ["<pad>", "<s>", "</s>", "<unk>", "|", *"abcdefghijklmnopqrstuvwxyz'"],
        ["<unk>", "<pad>", "<s>", "</s>", "|", *"ABC", "<extra>"],
        ["<pad>", "<s>", "</s>", "<unk>", "|", *"αβγδεζ"],
    ],
)
def test_same_vocabulary_for_other_tables(tmp_path: Path, vocab: list[str]) -> None:
    light, full = both(save_tiny_model(tmp_path / "m", vocab=vocab))
    assert light.vocabulary == full.vocabulary


def test_unusual_folders_go_to_transformers(tmp_path: Path, group_model: Path) -> None:
    # Tokens transformers adds beyond vocab.json (added_tokens.json): its reading decides.
    odd = save_tiny_model(tmp_path / "odd", vocab=["<unk>", "<pad>", " ", *"xyz"])
    assert (odd / "added_tokens.json").is_file()
    assert load_processor_light(locate_model(str(odd))) is None
    folder = tmp_path / "mms"
    shutil.copytree(group_model, folder)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**config, "target_lang": "eng"}))
    assert load_processor_light(locate_model(str(folder))) is None
    assert load_processor_light(locate_model(str(folder)), language="eng") is None
    with pytest.raises(ModelError, match="does not exist"):
        locate_model(str(tmp_path / "absent"))


def test_cached_openvino_run_imports_neither_torch_nor_transformers(
    trained_model, speech, tmp_path
):
    """After the first run converted the model, a run loads the IR alone."""
    cache = tmp_path / "cache"
    base = [
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
        str(cache),
        "--stdout",
        "-q",
    ]
    first = subprocess.run(base, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    probe = (
        "import sys, runpy; sys.argv = " + repr(["w2v2", *base[3:]]) + "\n"
        "try:\n    runpy.run_module('w2v2cli', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "print('LOADED', 'torch' in sys.modules, 'transformers' in sys.modules)"
    )
    second = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=300
    )
    assert second.stdout.splitlines()[-1] == "LOADED False False", second.stderr
    assert second.stdout.splitlines()[0] == first.stdout.strip()

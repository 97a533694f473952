"""Model loading refusals and exact batched inference on tiny real models."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import noise_audio, save_tiny_model

from w2v2cli.errors import ModelError
from w2v2cli.inference import Runner
from w2v2cli.inference.torch_backend import TorchBackend
from w2v2cli.models import load_model
from w2v2cli.options import ModelOptions
from w2v2cli.records import Chunk

LENGTHS = [16000 * 6 + 77, 3100, 16000 * 2, 900, 16000 * 4 + 5000]


def _chunks(seed: int = 0) -> list[Chunk]:
    return [
        Chunk(i, 0, 0, noise_audio(n / 16000, seed + i), 0, 0, True) for i, n in enumerate(LENGTHS)
    ]


@pytest.mark.parametrize("family", ["group_model", "layer_model"])
def test_batched_log_probs_equal_unbatched(family, request):
    loaded = load_model(ModelOptions(model=str(request.getfixturevalue(family))))
    runner = Runner(loaded, TorchBackend(loaded, exact=True))
    chunks = _chunks()
    single = [runner.run([c])[0] for c in chunks]
    batched = runner.run(chunks)
    for s, b, n in zip(single, batched, LENGTHS, strict=True):
        assert s.shape == b.shape == (runner.frames_for([n])[0], loaded.vocabulary.size)
        np.testing.assert_array_equal(s.argmax(-1), b.argmax(-1))
        np.testing.assert_allclose(s, b, atol=1e-4)


def test_plain_padding_is_not_exact_for_group_norm(group_model):
    """The reason exact.py exists: without it, padding changes a group-norm model's output."""
    loaded = load_model(ModelOptions(model=str(group_model), device="cpu"))
    plain = Runner(loaded, TorchBackend(loaded, exact=False))
    chunks = _chunks()
    single = [plain.run([c])[0] for c in chunks]
    batched = plain.run(chunks)
    worst = max(float(np.abs(s - b).max()) for s, b in zip(single, batched, strict=True))
    assert worst > 1e-2


def test_layer_norm_model_exact_too(layer_model):
    loaded = load_model(ModelOptions(model=str(layer_model)))
    runner = Runner(loaded, TorchBackend(loaded, exact=True))
    assert runner.patched is True and runner.backend.use_mask is True
    chunks = _chunks(5)
    single = [runner.run([c])[0] for c in chunks]
    for s, b in zip(single, runner.run(chunks), strict=True):
        np.testing.assert_allclose(s, b, atol=1e-4)


def test_vocabulary_from_tokenizer(group_model):
    vocab = load_model(ModelOptions(model=str(group_model))).vocabulary
    assert vocab.tokens[vocab.blank_id] == "<pad>"
    assert vocab.tokens[vocab.delimiter_id] == "|"
    assert vocab.delimiter_id not in vocab.special_ids
    assert {vocab.tokens[i] for i in vocab.special_ids} == {"<pad>", "<s>", "</s>", "<unk>"}


def test_missing_model_folder(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        load_model(ModelOptions(model=str(tmp_path / "nope")))


def test_folder_that_is_not_a_model(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ModelError, match="no config.json"):
        load_model(ModelOptions(model=str(tmp_path)))


def test_pretrained_only_checkpoint_needs_fine_tuning(tmp_path):
    folder = save_tiny_model(tmp_path / "pre", ctc=False, with_tokenizer=False)
    with pytest.raises(ModelError, match="CTC fine-tuning"):
        load_model(ModelOptions(model=str(folder)))


def test_ctc_config_without_head_weights(tmp_path, group_model):
    folder = tmp_path / "headless"
    shutil.copytree(group_model, folder)
    from safetensors.torch import load_file, save_file

    weights = load_file(folder / "model.safetensors")
    save_file(
        {k: v for k, v in weights.items() if not k.startswith("lm_head")},
        folder / "model.safetensors",
        metadata={"format": "pt"},
    )
    with pytest.raises(ModelError, match="no trained CTC head"):
        load_model(ModelOptions(model=str(folder)))


def test_checkpoint_without_tokenizer(tmp_path, group_model):
    folder = tmp_path / "notok"
    shutil.copytree(group_model, folder)
    for name in (
        "vocab.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "added_tokens.json",
    ):
        (folder / name).unlink(missing_ok=True)
    with pytest.raises(ModelError, match="no tokenizer"):
        load_model(ModelOptions(model=str(folder)))


def test_hub_id_offline_not_cached(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # read by our message
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read at import
    with pytest.raises(ModelError, match="HF_HUB_OFFLINE"):
        load_model(ModelOptions(model="someone/not-cached-model", cache_dir=tmp_path))


def test_cuda_refused_without_gpu(group_model):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ModelError, match="CUDA is not available"):
        load_model(ModelOptions(model=str(group_model), device="cuda"))


def test_model_and_tokenizer_mismatch(tmp_path, group_model):
    folder = tmp_path / "mismatch"
    shutil.copytree(group_model, folder)
    vocab = json.loads((folder / "vocab.json").read_text())
    vocab.update({f"X{i}": 100 + i for i in range(5)})
    (folder / "vocab.json").write_text(json.dumps(vocab))
    with pytest.raises(ModelError, match="do not belong together"):
        load_model(ModelOptions(model=str(folder)))

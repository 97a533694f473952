"""The torch backend's own wav2vec2 (``models/native.py``) against transformers' model.

Every comparison is ``torch.equal``: the native forward pass must give transformers'
logits bit for bit, on the same weights, or the text could differ from the pipeline's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import TORCH_1_ARGS, VOCAB, noise_audio

from w2v2cli.inference.exact import make_batch_exact
from w2v2cli.models.device import TORCH_MODEL_ENV
from w2v2cli.models.native import NativeWav2Vec2ForCTC
from w2v2cli.models.native_loading import load_native

LENGTHS = [23_000, 9_137, 16_000]  # padded batch: items of three lengths


def _save(folder: Path, **config: object) -> Path:
    """A tiny Wav2Vec2ForCTC with ``config`` on top of the test suite's tiny shape."""
    from transformers import Wav2Vec2Config, Wav2Vec2ForCTC

    torch.manual_seed(3)
    base = dict(
        vocab_size=len(VOCAB),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(32,) * 7,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4,
        pad_token_id=0,
    )
    model = Wav2Vec2ForCTC(Wav2Vec2Config(**{**base, **config}))
    with torch.no_grad():
        model.lm_head.weight.mul_(8.0)
    model.save_pretrained(folder)
    return folder


def _reference(folder: Path, dtype: torch.dtype = torch.float32):
    from transformers import Wav2Vec2ForCTC

    return Wav2Vec2ForCTC.from_pretrained(folder, dtype=dtype).eval()


def _batch(lengths: list[int], dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, ...]:
    width = max(lengths)
    x = torch.zeros(len(lengths), width)
    for i, n in enumerate(lengths):
        x[i, :n] = torch.from_numpy(noise_audio(n / 16000, seed=i))
    mask = (torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]).long()
    return x.to(dtype), mask


def _assert_same(folder: Path, dtype: str = "float32") -> None:
    """One item alone, a padded batch (exact batching on both sides), and the padded batch
    without lengths (plain padding, as the transformers pipeline runs it)."""
    torch_dtype = getattr(torch, dtype)
    native = load_native(folder, dtype)
    assert isinstance(native, NativeWav2Vec2ForCTC)
    reference = _reference(folder, torch_dtype)
    x, mask = _batch(LENGTHS, torch_dtype)
    with torch.inference_mode():
        alone = x[1:2, : LENGTHS[1]]
        assert torch.equal(native(alone).logits, reference(alone).logits)
        plain = reference(x).logits
        assert torch.equal(native(x).logits, plain)
        make_batch_exact(reference)
        exact = reference(x, attention_mask=mask).logits
        assert torch.equal(native(x, lengths=LENGTHS).logits, exact)
        assert torch.equal(native(x, attention_mask=mask).logits, exact)
    # The comparison can fail: the padded items differ from plain padding.
    assert not torch.equal(exact, plain)


def test_group_norm_model_gives_transformers_logits(group_model: Path) -> None:
    _assert_same(group_model)


def test_layer_norm_model_gives_transformers_logits(layer_model: Path) -> None:
    _assert_same(layer_model)


@pytest.mark.parametrize(
    "config",
    [
        {"conv_bias": True, "num_conv_pos_embeddings": 15, "hidden_act": "relu"},
        {
            "feat_extract_norm": "layer",
            "do_stable_layer_norm": True,
            "conv_bias": True,
            "conv_dim": (48, 40, 32, 32, 32, 32, 24),
            "layer_norm_eps": 1e-6,
        },
        {
            "conv_kernel": (10, 3, 3, 2),
            "conv_stride": (5, 2, 2, 2),
            "conv_dim": (32,) * 4,
            "num_feat_extract_layers": 4,
            "feat_extract_activation": "relu",
        },
    ],
    ids=["bias-oddpos-relu", "stable-uneven-dims", "short-frontend"],
)
def test_config_variants_give_transformers_logits(tmp_path: Path, config: dict) -> None:
    _assert_same(_save(tmp_path / "m", **config))


def test_one_frame_items_with_an_unaligned_vocabulary(tmp_path: Path) -> None:
    """A 25-45 ms item has one output frame, and a matrix product with one row rounds
    according to its weight's alignment; a 45-token head puts every later tensor of the
    file off 16-byte alignment, so the native weights must sit where transformers' memory
    map puts them (``read_safetensors``)."""
    folder = _save(
        tmp_path / "v45",
        vocab_size=45,
        conv_dim=(64,) * 7,
        hidden_size=64,
        intermediate_size=256,
        num_attention_heads=4,
    )
    native, reference = load_native(folder), _reference(folder)
    with torch.inference_mode():
        for n in (400, 560, 719):
            x = torch.from_numpy(noise_audio(n / 16000, seed=n))[None]
            assert torch.equal(native(x).logits, reference(x).logits), n
        lengths = [16_000, 560]
        x, mask = _batch(lengths)
        make_batch_exact(reference)
        assert torch.equal(
            native(x, lengths=lengths).logits, reference(x, attention_mask=mask).logits
        )


def test_bfloat16_gives_transformers_logits(group_model: Path) -> None:
    _assert_same(group_model, "bfloat16")


def test_legacy_weight_norm_names_in_a_bin_file(tmp_path: Path, group_model: Path) -> None:
    """Old hub checkpoints: ``pytorch_model.bin`` with ``weight_g``/``weight_v`` and the
    weights stored in float16 (transformers renames and casts; so must we)."""
    from safetensors.torch import load_file

    folder = tmp_path / "legacy"
    folder.mkdir()
    for f in group_model.iterdir():
        if f.name != "model.safetensors":
            (folder / f.name).write_bytes(f.read_bytes())
    state = {}
    for key, value in load_file(group_model / "model.safetensors").items():
        key = key.replace("parametrizations.weight.original0", "weight_g")
        key = key.replace("parametrizations.weight.original1", "weight_v")
        state[key] = value.half()
    assert any(k.endswith("weight_g") for k in state)
    torch.save(state, folder / "pytorch_model.bin")
    _assert_same(folder)


@pytest.mark.parametrize(
    "change",
    [
        "extra-key",
        "missing-head",
        "shape",
        "adapter",
        "mms",
        "activation",
        "eager",
        "sharded",
        "family",
        "two-names",
        "spec-embed-shape",
        "quantized",
        "bin-beside-shards",
    ],
)
def test_anything_else_is_left_to_transformers(
    tmp_path: Path, group_model: Path, change: str
) -> None:
    """``load_native`` returns None (and transformers loads the model) for anything it
    does not run exactly as transformers does."""
    from safetensors.torch import load_file, save_file

    folder = tmp_path / change
    folder.mkdir()
    for f in group_model.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    assert load_native(folder) is not None  # the unchanged copy loads
    config = json.loads((folder / "config.json").read_text())
    weights = load_file(folder / "model.safetensors")
    if change == "extra-key":
        weights["wav2vec2.encoder.layers.0.attention.extra"] = torch.zeros(2)
    elif change == "missing-head":
        del weights["lm_head.weight"]
    elif change == "shape":
        weights["lm_head.bias"] = torch.zeros(7)
    elif change == "adapter":
        config["add_adapter"] = True
    elif change == "mms":
        config["adapter_attn_dim"] = 16
    elif change == "activation":
        config["hidden_act"] = "gelu_new"
    elif change == "eager":
        config["_attn_implementation"] = "eager"
    elif change == "sharded":
        (folder / "model.safetensors").rename(folder / "model-00001-of-00001.safetensors")
    elif change == "family":
        config["model_type"], config["architectures"] = "hubert", ["HubertForCTC"]
    elif change == "two-names":  # a legacy and a current name for one parameter
        pos = "wav2vec2.encoder.pos_conv_embed.conv"
        weights[f"{pos}.weight_g"] = weights[f"{pos}.parametrizations.weight.original0"] * 2
    elif change == "spec-embed-shape":  # transformers refuses the size mismatch
        weights["wav2vec2.masked_spec_embed"] = torch.zeros(7)
    elif change == "quantized":
        config["quantization_config"] = {"quant_method": "bitsandbytes", "load_in_8bit": True}
    elif change == "bin-beside-shards":  # transformers would read the sharded safetensors
        torch.save(weights, folder / "pytorch_model.bin")
        (folder / "model.safetensors").rename(folder / "model-00001-of-00001.safetensors")
        (folder / "model.safetensors.index.json").write_text("{}")
    if change not in ("sharded", "bin-beside-shards"):
        save_file(weights, folder / "model.safetensors")
    (folder / "config.json").write_text(json.dumps(config))
    assert load_native(folder) is None


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    """The CLI in a fresh interpreter; the last stdout line says whether transformers was
    imported."""
    code = (
        "import sys\nfrom w2v2cli.cli import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n    code = e.code\n"
        "print('transformers imported:', 'transformers' in sys.modules)\n"
        "sys.exit(code)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=300
    )


def test_cli_runs_without_transformers_and_writes_the_same_files(
    tmp_path: Path, trained_model: Path, speech
) -> None:
    """``w2v2 transcribe --backend torch`` never imports transformers for a standard
    folder, and writes byte for byte what transformers' model gives."""
    audio = tmp_path / "audio"
    audio.mkdir()
    for path in speech.paths[:3]:
        (audio / path.name).write_bytes(path.read_bytes())
    (audio / "long.wav").write_bytes(speech.long.read_bytes())  # chunked with stride
    sf.write(audio / "noise.wav", noise_audio(2.0, seed=5), 16000)
    outputs = {}
    for choice in ("auto", "transformers"):
        out = tmp_path / choice
        env = {**os.environ, TORCH_MODEL_ENV: choice}
        result = _run(
            [
                "transcribe",
                str(audio),
                "-m",
                str(trained_model),
                *TORCH_1_ARGS,
                "-o",
                str(out),
                "-f",
                "json",
                "-q",
            ],
            env,
        )
        assert result.returncode == 0, result.stderr
        imported = result.stdout.strip().splitlines()[-1]
        assert imported == f"transformers imported: {choice == 'transformers'}"
        outputs[choice] = {p.name: p.read_bytes() for p in sorted(out.glob("*.json"))}
    assert len(outputs["auto"]) == 5
    assert outputs["auto"] == outputs["transformers"]
    texts = [json.loads(b)["text"] for b in outputs["auto"].values()]
    assert sum(len(t) for t in texts) > 20  # the trained model writes words


def test_a_bad_choice_is_one_line(tmp_path: Path, group_model: Path) -> None:
    sf.write(tmp_path / "a.wav", noise_audio(1.0, seed=1), 16000)
    env = {**os.environ, TORCH_MODEL_ENV: "fast"}
    result = _run(
        [
            "transcribe",
            str(tmp_path / "a.wav"),
            "-m",
            str(group_model),
            *TORCH_1_ARGS,
            "-o",
            str(tmp_path / "out"),
            "-q",
        ],
        env,
    )
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and TORCH_MODEL_ENV in errors[0], result.stderr


def test_native_model_is_what_the_torch_backend_runs(group_model: Path) -> None:
    from w2v2cli.inference.backends import open_backend
    from w2v2cli.options import ModelOptions

    loaded, backend = open_backend(ModelOptions(model=str(group_model), backend="torch", threads=1))
    assert isinstance(loaded.model, NativeWav2Vec2ForCTC) and backend.native
    x, _ = _batch(LENGTHS)
    log_probs = backend.log_probs(x.numpy(), LENGTHS)
    reference = _reference(group_model)
    make_batch_exact(reference)
    with torch.inference_mode():
        _, mask = _batch(LENGTHS)
        expected = torch.log_softmax(reference(x, attention_mask=mask).logits, -1).numpy()
    np.testing.assert_array_equal(log_probs, expected)


def test_same_logits_at_each_thread_count(layer_model: Path) -> None:
    """The weight-normed positional weight's last bits depend on how many threads compute
    it; a model loaded at one thread count and run at another still gives transformers'
    logits at each (``--threads`` is applied after loading)."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    native, reference = load_native(layer_model), _reference(layer_model)
    x, _ = _batch(LENGTHS)
    try:
        for threads in (1, 2, 1):
            torch.set_num_threads(threads)
            with torch.inference_mode():
                assert torch.equal(native(x).logits, reference(x).logits), threads
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("damage", ["truncated", "random"])
def test_damaged_weights_are_one_line_from_transformers(
    tmp_path: Path, group_model: Path, damage: str
) -> None:
    """A damaged ``model.safetensors`` is not half-read by the native loader: it returns
    None, and transformers' loading fails with the usual one line."""
    folder = tmp_path / "model"
    folder.mkdir()
    for f in group_model.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2] if damage == "truncated" else os.urandom(4096))
    assert load_native(folder) is None
    sf.write(tmp_path / "a.wav", noise_audio(1.0, seed=1), 16000)
    result = _run(
        [
            "transcribe",
            str(tmp_path / "a.wav"),
            "-m",
            str(folder),
            *TORCH_1_ARGS,
            "-o",
            str(tmp_path / "out"),
            "-q",
        ],
        dict(os.environ),
    )
    assert result.returncode == 2
    (line,) = [x for x in result.stderr.splitlines() if x.strip()]
    assert "cannot load the weights of" in line and str(folder) in line


def test_unusual_tokenizer_folder_runs_native_weights_behind_transformers_processor(
    tmp_path: Path,
) -> None:
    """A folder the light reader leaves to transformers (``added_tokens.json``) still runs
    on the native model, with transformers' tokenizer and without its modeling code; the
    log-probabilities equal transformers' model's."""
    from conftest import save_tiny_model

    tokens = save_tiny_model(tmp_path / "tokens", vocab=["<unk>", "<pad>", " ", *"xyz"])
    assert (tokens / "added_tokens.json").is_file()  # <s>, </s> and one more added
    odd = _save(tmp_path / "odd", vocab_size=9)  # a head for the 6 + 3 tokens
    for f in tokens.iterdir():
        if not f.name.startswith(("model", "config")):
            (odd / f.name).write_bytes(f.read_bytes())
    code = (
        "import sys, numpy as np\n"
        "from w2v2cli.models.light import read_light\n"
        "from w2v2cli.inference.backends import open_backend\n"
        "from w2v2cli.options import ModelOptions\n"
        f"assert read_light(__import__('pathlib').Path({str(odd)!r})) is None\n"
        f"loaded, backend = open_backend(ModelOptions(model={str(odd)!r}, backend='torch',"
        " threads=1))\n"
        "x = np.random.default_rng(0).standard_normal((1, 16000)).astype(np.float32)\n"
        "np.save(sys.argv[1], backend.log_probs(x, [16000]))\n"
        "print(type(loaded.model).__name__, loaded.tokenizer is not None,"
        " 'transformers.modeling_utils' in sys.modules)\n"
    )
    out = {}
    for choice in ("auto", "transformers"):
        env = {**os.environ, TORCH_MODEL_ENV: choice}
        path = tmp_path / f"{choice}.npy"
        result = subprocess.run(
            [sys.executable, "-c", code, str(path)],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr
        out[choice] = (result.stdout.split(), np.load(path))
    assert out["auto"][0] == ["NativeWav2Vec2ForCTC", "True", "False"]
    assert out["transformers"][0] == ["Wav2Vec2ForCTC", "True", "True"]
    np.testing.assert_array_equal(out["auto"][1], out["transformers"][1])

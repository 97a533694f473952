"""What ``-m`` points at is answered once (``models/ref.py``): each kind of name, and each
refusal worded the same in every command."""

from __future__ import annotations

import shutil
from pathlib import Path

import huggingface_hub.constants
import pytest
import soundfile as sf
from click.testing import CliRunner
from conftest import noise_audio

from w2v2cli.cli import main
from w2v2cli.errors import ModelError
from w2v2cli.models import locate_model, model_languages, resolve_model
from w2v2cli.models.ref import CACHED, CHECKPOINT, EXPORTED, FOLDER, HUB, IR, ONNX

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def hub_cache(tmp_path: Path, folder: Path, repo: str, weights: bool = True) -> Path:
    """A Hugging Face cache holding ``folder`` as the snapshot of ``repo`` (the layout
    huggingface_hub writes), with or without the weights."""
    repo_dir = tmp_path / "hf-cache" / ("models--" + repo.replace("/", "--"))
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(COMMIT)
    snapshot = repo_dir / "snapshots" / COMMIT
    shutil.copytree(folder, snapshot)
    if not weights:
        (snapshot / "model.safetensors").unlink()
    return tmp_path / "hf-cache"


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # read by our message
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read at import


def test_a_folder(group_model):
    ref = locate_model(str(group_model))
    assert (ref.kind, ref.folder, ref.is_hub, ref.pretrained) == (
        FOLDER,
        group_model,
        False,
        str(group_model),
    )
    assert ref.load_kwargs() == {"trust_remote_code": False}
    ref.check_downloadable()  # on disk: nothing to download


def test_an_exported_folder(group_model, tmp_path):
    folder = tmp_path / "exported"
    shutil.copytree(group_model, folder)
    (folder / "model.xml").write_text("<net/>")
    ref = locate_model(str(folder))
    assert ref.kind == EXPORTED and ref.folder == folder


def test_a_checkpoint_file_is_converted_only_when_resolved(tmp_path):
    checkpoint = tmp_path / "model.pt"
    checkpoint.write_bytes(b"not a checkpoint")
    ref = locate_model(str(checkpoint), cache_dir=tmp_path / "cache")
    assert (ref.kind, ref.path, ref.folder) == (CHECKPOINT, checkpoint, None)
    with pytest.raises(ModelError, match="model.pt"):
        resolve_model(str(checkpoint), cache_dir=tmp_path / "cache")  # conversion reads it


def test_cached_hub_ids_with_and_without_weights(group_model, tmp_path, offline):
    cache = hub_cache(tmp_path, group_model, "org/full")
    ref = locate_model("org/full", cache_dir=cache)
    assert (ref.kind, ref.complete, ref.is_hub) == (CACHED, True, True)
    assert ref.pretrained == str(ref.folder) and ref.folder.name == COMMIT
    ref.check_downloadable()  # everything is cached: no network needed, even offline
    partial = hub_cache(tmp_path / "p", group_model, "org/partial", weights=False)
    ref = locate_model("org/partial", cache_dir=partial, revision="main")
    assert (ref.kind, ref.complete, ref.pretrained) == (CACHED, False, "org/partial")
    assert ref.load_kwargs()["revision"] == "main"
    with pytest.raises(ModelError, match="HF_HUB_OFFLINE"):
        ref.check_downloadable()  # the weights would have to be downloaded


def test_an_uncached_hub_id(tmp_path, offline):
    ref = locate_model("someone/not-cached", cache_dir=tmp_path)
    assert (ref.kind, ref.folder, ref.pretrained) == (HUB, None, "someone/not-cached")
    assert ref.lm_dir() is None  # beam search then runs without one: no error
    with pytest.raises(ModelError) as caught:
        ref.check_downloadable()
    assert str(caught.value) == (
        "model 'someone/not-cached' is not a local model folder and is not in the Hugging "
        "Face cache, and it cannot be downloaded (HF_HUB_OFFLINE is set)"
    )
    with pytest.raises(ModelError, match="HF_HUB_OFFLINE"):
        model_languages(ref)  # w2v2 languages needs vocab.json from the hub


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda d: d / "absent", "model folder '{p}' does not exist"),
        (
            lambda d: _touch(d / "notes" / "a.txt").parent,
            "'{p}' is not a model folder: it has no config.json",
        ),
    ],
    ids=["missing", "no-config"],
)
def test_refusals_are_one_line_the_same_in_every_command(tmp_path, make, reason):
    path = make(tmp_path)
    expected = reason.format(p=path)
    with pytest.raises(ModelError) as caught:
        locate_model(str(path))
    assert str(caught.value).startswith(expected)
    audio = tmp_path / "a.wav"
    sf.write(audio, noise_audio(1.0, 3), 16000)
    manifest = tmp_path / "m.tsv"
    manifest.write_text("path\ttext\na.wav\tHELLO\n")
    text = tmp_path / "t.txt"
    text.write_text("hello\n")
    commands = [
        ["transcribe", audio, "-m", path, "-o", tmp_path / "out"],
        ["align", audio, text, "-m", path, "-o", tmp_path / "out"],
        ["eval", manifest, "-m", path],
        ["lm", "build", text, "-o", tmp_path / "x.arpa", "--model", path],
        ["languages", path],
        ["export", path, "-o", tmp_path / "exported"],
    ]
    for args in commands:
        r = CliRunner().invoke(main, [str(a) for a in args])
        lines = r.stderr.strip().splitlines()
        assert r.exit_code == 2 and len(lines) == 1, (args, r.stderr)
        assert lines[0].startswith(f"error: {expected}"), (args, lines)


@pytest.mark.parametrize("suffix", [".xml", ".bin", ".onnx"])
def test_a_model_file_is_a_kind_of_its_own(tmp_path, suffix):
    """An OpenVINO IR (``-m x.bin`` names its ``.xml``) or ONNX file is located, never
    converted as a checkpoint (it used to be read as one: "Unsupported operand 60"); what
    cannot read it says so in one line (tests/test_omz_ir.py runs real ones, and lm build
    with the card's alphabet)."""
    xml = _touch(tmp_path / "ir" / "model.xml", _touch(tmp_path / "ir" / "model.bin"))
    onnx = _touch(tmp_path / "model.onnx")
    path = onnx if suffix == ".onnx" else xml.with_suffix(suffix)
    ref = locate_model(str(path))
    assert (ref.kind, ref.path, ref.folder) == (
        ONNX if suffix == ".onnx" else IR,
        xml if suffix != ".onnx" else onnx,
        None,
    )
    audio = tmp_path / "a.wav"
    sf.write(audio, noise_audio(1.0, 3), 16000)
    text = tmp_path / "t.txt"
    text.write_text("hello\n")
    what = "an ONNX" if suffix == ".onnx" else "an OpenVINO IR"
    for args, line in (
        (["transcribe", audio, "-m", path, "-o", tmp_path / "out"], "OpenVINO cannot read"),
        (
            ["align", audio, text, "-m", path, "--backend", "torch"],
            "runs on the OpenVINO backend only",
        ),
        (["languages", path], "is a model file: it has a single vocabulary"),
        (
            ["export", path, "-o", tmp_path / "exported"],
            f"is {what} file: it holds the network alone",
        ),
    ):
        r = CliRunner().invoke(main, [str(a) for a in args])
        lines = r.stderr.strip().splitlines()
        assert r.exit_code == 2 and len(lines) == 1, (args, r.stderr)
        assert lines[0].startswith("error: ") and line in lines[0], lines
        assert str(path) in lines[0] or str(ref.path) in lines[0], lines


def _touch(path: Path, *_: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_a_tokenizer_folder_will_do_where_only_the_tokenizer_is_read(group_model, tmp_path):
    folder = tmp_path / "tokenizer"
    folder.mkdir()
    for name in ("vocab.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (group_model / name).is_file():
            shutil.copy(group_model / name, folder / name)
    with pytest.raises(ModelError, match="it has no config.json"):
        locate_model(str(folder))
    assert locate_model(str(folder), tokenizer_only=True).kind == FOLDER
    text = tmp_path / "t.txt"
    text.write_text("hello world\n" * 20)
    audio = tmp_path / "a.wav"
    sf.write(audio, noise_audio(1.0, 3), 16000)
    runner = CliRunner()
    transcribe = runner.invoke(main, ["transcribe", str(audio), "-m", str(folder)])
    assert transcribe.exit_code == 2 and "it has no config.json" in transcribe.stderr
    languages = runner.invoke(main, ["languages", str(folder)])
    assert languages.exit_code == 2 and "has a single vocabulary" in languages.stderr

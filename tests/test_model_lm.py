"""A model that ships an LM (``language_model/``) is decoded with it by default."""

from __future__ import annotations

import json
import shutil

import pytest
import soundfile as sf
from click.testing import CliRunner
from conftest import noise_audio
from lm_fixtures import built_lms

from w2v2cli.cli import main
from w2v2cli.options import ModelOptions
from w2v2cli.runner import load_model


@pytest.fixture
def model_with_lm(tmp_path, group_model, tmp_path_factory):
    """The tiny group-norm model folder plus a real language_model/ built by ``lm build``."""
    lms = built_lms(tmp_path_factory)
    folder = tmp_path / "model"
    shutil.copytree(group_model, folder)
    shutil.copytree(lms.model_dir / "language_model", folder / "language_model")
    return folder


def _decoder_used(args, tmp_path):
    sf.write(tmp_path / "a.wav", noise_audio(2.0, 5), 16000)
    r = CliRunner().invoke(main, ["transcribe", str(tmp_path / "a.wav"), "-f", "json",
                                  "--stdout", "-q", "--decode-workers", "0", *args])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)["decoder"]


def test_model_lm_used_by_default(model_with_lm, tmp_path):
    assert _decoder_used(["-m", str(model_with_lm)], tmp_path) == "beam"


def test_greedy_turns_the_model_lm_off(model_with_lm, tmp_path):
    assert _decoder_used(["-m", str(model_with_lm), "--decoder", "greedy"], tmp_path) == "greedy"


def test_model_without_lm_decodes_greedily(group_model, tmp_path):
    assert _decoder_used(["-m", str(group_model)], tmp_path) == "greedy"


def test_hub_repo_lm_is_fetched_with_the_model(model_with_lm, monkeypatch):
    """For a hub id the repo's language_model/ files are fetched through huggingface_hub;
    the hub is unreachable here, so snapshot_download is replaced by one that returns a
    real local snapshot folder, as it would after downloading."""
    import huggingface_hub

    loaded = load_model(ModelOptions(model=str(model_with_lm)))
    calls = []

    def fake_snapshot(repo_id, allow_patterns=None, **kw):
        calls.append((repo_id, allow_patterns))
        return str(model_with_lm)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    hub = type(loaded)(**{**loaded.__dict__, "name": "org/model-with-lm", "local_dir": None})
    assert hub.find_lm_dir() == model_with_lm / "language_model"
    assert calls == [("org/model-with-lm", ["language_model/*"])]

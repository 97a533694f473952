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
from w2v2cli.models import load_model
from w2v2cli.options import ModelOptions


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
    r = CliRunner().invoke(
        main,
        [
            "transcribe",
            str(tmp_path / "a.wav"),
            "-f",
            "json",
            "--stdout",
            "-q",
            "--decode-workers",
            "0",
            *args,
        ],
    )
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)["decoder"]


def test_model_lm_used_by_default(model_with_lm, tmp_path):
    assert _decoder_used(["-m", str(model_with_lm)], tmp_path) == "beam"


def test_greedy_turns_the_model_lm_off(model_with_lm, tmp_path):
    assert _decoder_used(["-m", str(model_with_lm), "--decoder", "greedy"], tmp_path) == "greedy"


def test_model_without_lm_decodes_greedily(group_model, tmp_path):
    assert _decoder_used(["-m", str(group_model)], tmp_path) == "greedy"


def hub_cache(tmp_path, folder, repo="org/model-with-lm"):
    """A Hugging Face cache holding ``folder`` as the snapshot of ``repo`` (the layout
    huggingface_hub writes: refs/main names the commit, snapshots/<commit>/ the files)."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo_dir = tmp_path / "hf-cache" / ("models--" + repo.replace("/", "--"))
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(commit)
    shutil.copytree(folder, repo_dir / "snapshots" / commit)
    return tmp_path / "hf-cache"


def test_cached_hub_model_loads_offline_with_its_lm(model_with_lm, tmp_path):
    """A hub id found in the cache is loaded from there without any network access, and
    its language_model/ (in the same snapshot) selects beam search by default."""
    cache = hub_cache(tmp_path, model_with_lm)
    used = _decoder_used(["-m", "org/model-with-lm", "--cache-dir", str(cache)], tmp_path)
    assert used == "beam"
    loaded = load_model(ModelOptions(model="org/model-with-lm", cache_dir=cache))
    assert loaded.is_hub and loaded.find_lm_dir() is not None


def test_uncached_hub_model_fails_at_once_in_one_line(tmp_path, monkeypatch):
    """Not cached and no hub (offline mode, or a hub that refuses connections: the endpoint
    points at a closed local port): one line naming the model and why, exit 2, and none of
    huggingface_hub's retry warnings."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    sf.write(tmp_path / "a.wav", noise_audio(1.0, 1), 16000)
    for offline in ("1", "0"):
        monkeypatch.setenv("HF_HUB_OFFLINE", offline)
        r = CliRunner().invoke(
            main,
            [
                "transcribe",
                str(tmp_path / "a.wav"),
                "-m",
                "org/absent",
                "--cache-dir",
                str(tmp_path / "empty-cache"),
            ],
        )
        assert r.exit_code == 2, r.output
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "org/absent" in lines[0], r.stderr
        assert "not in the Hugging Face cache" in lines[0] and "Retry" not in r.stderr
        assert ("HF_HUB_OFFLINE" in lines[0]) == (offline == "1")
        assert ("cannot connect to 127.0.0.1" in lines[0]) == (offline == "0")

"""Choosing the beam-search engine: pyproject's environment markers, ``auto``, the
``W2V2_BEAM_ENGINE`` override, an engine that is absent or broken, and what the CLI says."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
from click.testing import CliRunner
from conftest import noise_audio
from lm_fixtures import (
    EN_UPPER,
    dependency_markers,
    engine_expected_here,
    make_vocab,
    require_engine,
)
from packaging.markers import Marker

from w2v2cli.cli import main
from w2v2cli.decoding import beam_engines
from w2v2cli.decoding.beam import BeamDecoder
from w2v2cli.errors import ConfigError
from w2v2cli.lm.alphabet import case_map
from w2v2cli.options import DecodeOptions

UPPER = make_vocab(EN_UPPER)

# (sys_platform, platform_machine, platform_release) -> does ctc-beam-decoder 0.2.0 publish a
# wheel this platform installs? (Checked with `pip download --only-binary=:all: --platform
# ...`: manylinux_2_35_x86_64, macosx_14_0_arm64 and win_amd64 only.)
PLATFORMS = {
    ("linux", "x86_64", "6.1.0-18-amd64"): True,
    ("linux", "aarch64", "6.1.0"): False,
    ("linux", "ppc64le", "5.14.0"): False,
    ("darwin", "arm64", "23.4.0"): True,  # macOS 14 Sonoma
    ("darwin", "arm64", "24.1.0"): True,  # macOS 15
    ("darwin", "arm64", "22.6.0"): False,  # macOS 13: the wheel needs 14
    ("darwin", "x86_64", "23.4.0"): False,  # Intel Macs (and Rosetta)
    ("win32", "AMD64", "10"): True,
    ("win32", "ARM64", "10"): False,
}


@pytest.fixture(autouse=True)
def _fresh_engine_checks(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(beam_engines.ENGINE_ENV, raising=False)
    beam_engines.engine_problem.cache_clear()
    yield
    beam_engines.engine_problem.cache_clear()


@pytest.mark.parametrize("platform", list(PLATFORMS), ids="-".join)
def test_markers_install_exactly_one_engine(platform: tuple[str, str, str]) -> None:
    """ctc-beam-decoder exactly where it has a wheel; pyctcdecode and kenlm exactly where it
    has not (the second marker is the first negated by hand: PEP 508 has no ``not``)."""
    sys_platform, machine, release = platform
    env = {"sys_platform": sys_platform, "platform_machine": machine, "platform_release": release}
    markers = dependency_markers()
    fast = Marker(markers["ctc-beam-decoder"]).evaluate(env)
    fallback = Marker(markers["pyctcdecode"]).evaluate(env)
    assert fast == PLATFORMS[platform]
    assert fallback == (not fast)
    assert markers["kenlm"] == markers["pyctcdecode"]


def test_this_platform_has_the_engine_pyproject_installs() -> None:
    for name in beam_engines.ENGINES:
        if engine_expected_here(name):
            assert beam_engines.engine_problem(name, True) is None, name


def test_auto_prefers_ctc_beam_decoder() -> None:
    require_engine("ctc-beam-decoder")
    assert beam_engines.resolve_engine("auto", needs_lm=True) == "ctc-beam-decoder"
    with BeamDecoder(UPPER, DecodeOptions(workers=0)) as dec:
        assert dec.engine == "ctc-beam-decoder"


@pytest.mark.pyctcdecode
def test_environment_variable_forces_an_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    require_engine("pyctcdecode")
    unset = beam_engines.resolve_engine("auto", needs_lm=True)
    monkeypatch.setenv(beam_engines.ENGINE_ENV, "pyctcdecode")
    assert beam_engines.resolve_engine("auto", needs_lm=True) == "pyctcdecode"
    monkeypatch.setenv(beam_engines.ENGINE_ENV, " auto ")
    assert beam_engines.resolve_engine("auto", needs_lm=True) == unset
    monkeypatch.setenv(beam_engines.ENGINE_ENV, "fast")
    with pytest.raises(ConfigError, match="W2V2_BEAM_ENGINE must be auto, .* not 'fast'"):
        beam_engines.resolve_engine("auto", needs_lm=False)
    with pytest.raises(ConfigError, match="beam search engine must be"):
        DecodeOptions(engine="fast")


@pytest.mark.pyctcdecode
def test_absent_engine_falls_back_or_fails_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where ctc-beam-decoder is not installed, ``auto`` quietly takes pyctcdecode; asking
    for it by name says what to install. (Absence is simulated the way Python marks a
    module that cannot be imported: ``sys.modules[name] = None``.)"""
    require_engine("pyctcdecode")
    monkeypatch.setitem(sys.modules, "ctc_beam_decoder", None)
    assert beam_engines.resolve_engine("auto", needs_lm=True) == "pyctcdecode"
    with pytest.raises(ConfigError, match="ctc-beam-decoder: not installed .*pip install"):
        beam_engines.resolve_engine("ctc-beam-decoder", needs_lm=False)
    monkeypatch.setitem(sys.modules, "pyctcdecode", None)
    beam_engines.engine_problem.cache_clear()
    with pytest.raises(ConfigError, match="none can run here: ctc-beam-decoder: .*pyctcdecode"):
        BeamDecoder(UPPER, DecodeOptions(workers=0))


@pytest.mark.pyctcdecode
def test_broken_ctc_beam_decoder_library_falls_back_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An installed ctc-beam-decoder whose library does not load (a copied environment on
    an older glibc, say): ``auto`` warns once and decodes with pyctcdecode."""
    require_engine("ctc-beam-decoder")
    require_engine("pyctcdecode")
    broken = tmp_path / "libctc_beam_decoder.so"
    broken.write_bytes(b"not a shared library")
    monkeypatch.setenv("CTC_BEAM_DECODER_LIB", str(broken))  # the package's own override
    assert "does not load" in (beam_engines.engine_problem("ctc-beam-decoder", False) or "")
    with caplog.at_level("WARNING", logger="w2v2cli"):
        assert beam_engines.resolve_engine("auto", needs_lm=False) == "pyctcdecode"
    assert "its library does not load" in caplog.text and "runs on pyctcdecode" in caplog.text
    with pytest.raises(ConfigError, match="beam search engine ctc-beam-decoder: its library"):
        beam_engines.resolve_engine("ctc-beam-decoder", needs_lm=False)


def test_case_map_is_one_to_one() -> None:
    assert case_map("ABC'", "upper", "lower") == (("A", "a"), ("B", "b"), ("C", "c"))
    # No one-to-one partner: ß (upper is SS), final ς (upper Σ lowers to σ) stay as they are.
    assert case_map("aßσς", "lower", "upper") == (("a", "A"), ("σ", "Σ"))


def _transcribe(args: list[str], tmp_path: Path, env: dict[str, str] | None = None):
    sf.write(tmp_path / "a.wav", noise_audio(2.0, 5), 16000)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "w2v2cli",
            "-v",
            "transcribe",
            str(tmp_path / "a.wav"),
            "--stdout",
            "--decoder",
            "beam",
            "--decode-workers",
            "0",
            *args,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "engine",
    [
        pytest.param(e, marks=pytest.mark.pyctcdecode) if e == "pyctcdecode" else e
        for e in beam_engines.ENGINES
    ],
)
def test_cli_logs_the_engine_the_variable_forces(engine: str, group_model, tmp_path) -> None:
    import os

    require_engine(engine)
    env = {**os.environ, beam_engines.ENGINE_ENV: engine}
    r = _transcribe(["-m", str(group_model)], tmp_path, env)
    assert r.returncode == 0, r.stderr
    assert f"beam search engine: {engine}" in r.stderr


def test_cli_bad_engine_variable_is_one_line(group_model, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(beam_engines.ENGINE_ENV, "fast")
    sf.write(tmp_path / "a.wav", noise_audio(1.0, 5), 16000)
    r = CliRunner().invoke(
        main,
        [
            "transcribe",
            str(tmp_path / "a.wav"),
            "-m",
            str(group_model),
            "--decoder",
            "beam",
            "--stdout",
            "-q",
        ],
    )
    assert r.exit_code == 2, r.output
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("error: ") and "W2V2_BEAM_ENGINE" in line

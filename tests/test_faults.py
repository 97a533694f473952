"""Faults a new user met, one test each (issue "one error model"): each failed before its fix.

Everything runs on tiny real models, real audio files, real KenLM models and real files on
disk; the CLI is driven through Click's CliRunner.
"""

from __future__ import annotations

import gc
import json
import os
import weakref
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner
from conftest import noise_audio
from lm_fixtures import EN_UPPER, built_lms, make_vocab

from w2v2cli.cli import main


def invoke(*args: object, input: str | None = None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input)


def one_error_line(result) -> str:
    """The single ``error:`` line a failed command must print, and nothing else on stderr."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert "Traceback" not in result.output
    return lines[0]


@pytest.fixture
def broken_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    sf.write(folder / "good.wav", noise_audio(1.5, 1), 16000)
    (folder / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    return folder


# 1. -q keeps the per-file errors ------------------------------------------------------------


def test_quiet_still_names_failed_files(group_model: Path, broken_folder: Path, tmp_path):
    r = invoke("transcribe", broken_folder, "-m", group_model, "-o", tmp_path / "out", "-q")
    assert r.exit_code == 1
    line = one_error_line(r)
    assert "broken.wav" in line
    assert (tmp_path / "out" / "good.txt").is_file()


# 2. two LMs in one folder keep their own word lists -------------------------------------------


def test_two_lms_in_one_folder_keep_their_own_unigrams(tmp_path: Path) -> None:
    from w2v2cli.lm import build_lm, resolve_lm

    upper = make_vocab(EN_UPPER)
    (tmp_path / "a.txt").write_text("the cat sat on the mat\n" * 3)
    (tmp_path / "b.txt").write_text("a dog ran in the park\n" * 3)
    build_lm([tmp_path / "a.txt"], tmp_path / "lms" / "cats.bin", 2, vocab=upper)
    build_lm([tmp_path / "b.txt"], tmp_path / "lms" / "dogs.bin", 2, vocab=upper)
    cats = resolve_lm(tmp_path / "lms" / "cats.bin")
    dogs = resolve_lm(tmp_path / "lms" / "dogs.bin")
    assert set(cats.unigrams or ()) == {"THE", "CAT", "SAT", "ON", "MAT"}
    assert set(dogs.unigrams or ()) == {"A", "DOG", "RAN", "IN", "THE", "PARK"}


def test_old_shared_unigram_list_is_still_read(tmp_path: Path) -> None:
    """LM folders written by older versions have one ``unigrams.txt`` beside the binary."""
    from w2v2cli.lm import build_lm, resolve_lm, unigrams_path_for

    (tmp_path / "a.txt").write_text("the cat sat\n" * 3)
    built = build_lm([tmp_path / "a.txt"], tmp_path / "old" / "lm.bin", 2)
    unigrams_path_for(built.lm_path).rename(tmp_path / "old" / "unigrams.txt")
    assert set(resolve_lm(built.lm_path).unigrams or ()) == {"the", "cat", "sat"}


# 3. output paths are checked before any work --------------------------------------------------


def test_eval_report_into_a_new_folder_is_written(group_model: Path, tmp_path: Path):
    sf.write(tmp_path / "a.wav", noise_audio(1.0, 2), 16000)
    manifest = tmp_path / "m.tsv"
    manifest.write_text("path\ttext\na.wav\tHELLO\n")
    report = tmp_path / "new" / "deeper" / "report.csv"
    r = invoke("eval", manifest, "-m", group_model, "--report", report, "-q")
    assert r.exit_code == 0, r.output
    assert report.read_text().startswith("decoder,id,")


@pytest.mark.parametrize(
    ("option", "target", "message"),
    [
        ("--report", "blocker/report.csv", "blocker is a file"),
        ("--save-logits", "blocker/logits", "blocker is a file"),
    ],
)
def test_unwritable_eval_outputs_fail_before_the_model_runs(
    tmp_path: Path, option: str, target: str, message: str
) -> None:
    """The model named here does not exist: the path check must come first."""
    (tmp_path / "blocker").write_text("a file where a folder should be")
    sf.write(tmp_path / "a.wav", noise_audio(1.0, 2), 16000)
    manifest = tmp_path / "m.tsv"
    manifest.write_text("path\ttext\na.wav\tHELLO\n")
    r = invoke("eval", manifest, "-m", tmp_path / "no-model", option, tmp_path / target)
    assert r.exit_code == 2
    assert message in one_error_line(r)


def test_output_dir_that_is_a_file_fails_before_the_model_loads(tmp_path: Path) -> None:
    sf.write(tmp_path / "a.wav", noise_audio(1.0, 2), 16000)
    (tmp_path / "out").write_text("not a folder")
    r = invoke(
        "transcribe", tmp_path / "a.wav", "-m", tmp_path / "no-model", "-o", tmp_path / "out"
    )
    assert r.exit_code == 2
    assert "is a file, not a folder" in one_error_line(r)


def test_lm_build_output_checked_before_lmplz(tmp_path: Path) -> None:
    (tmp_path / "t.txt").write_text("one two three\n")
    (tmp_path / "blocker").write_text("x")
    r = invoke("lm", "build", tmp_path / "t.txt", "-o", tmp_path / "blocker" / "lm.bin")
    assert r.exit_code == 2
    assert "cannot be created" in one_error_line(r)


# 4. corrupt saved-logits metadata and bad attrs.json values -----------------------------------


@pytest.fixture
def saved(group_model: Path, tmp_path: Path) -> tuple[Path, Path]:
    sf.write(tmp_path / "a.wav", noise_audio(1.0, 2), 16000)
    manifest = tmp_path / "m.tsv"
    manifest.write_text("path\ttext\na.wav\tHELLO\n")
    logits = tmp_path / "logits"
    r = invoke("eval", manifest, "-m", group_model, "--save-logits", logits, "-q")
    assert r.exit_code == 0, r.output
    return manifest, logits


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        "[]",
        '{"model": "m"}',
        '{"model": "m", "tokens": [1, 2], "blank_id": 0, "delimiter_id": null, "special_ids": []}',
    ],
)
def test_corrupt_logits_metadata_is_one_line_naming_it(saved, content: str) -> None:
    manifest, logits = saved
    (logits / "w2v2cli-logits.json").write_text(content)
    r = invoke("eval", manifest, "--load-logits", logits)
    assert r.exit_code == 2
    assert "w2v2cli-logits.json" in one_error_line(r)


def test_corrupt_saved_utterance_fails_that_utterance(saved) -> None:
    manifest, logits = saved
    (logits / "000000.npz").write_bytes(b"PK\x03\x04 not really a zip file")
    r = invoke("eval", manifest, "--load-logits", logits, "-q")
    assert r.exit_code == 1
    assert "000000.npz: corrupt saved logits" in r.stderr and "Traceback" not in r.output


@pytest.mark.parametrize(
    "attrs", ['{"alpha": "high"}', '{"beta": true}', '{"score_boundary": "yes"}', "{bad"]
)
def test_bad_attrs_json_is_one_line_naming_it(tmp_path_factory, tmp_path, group_model, attrs):
    import shutil

    lms = built_lms(tmp_path_factory)
    folder = tmp_path / "lm"
    shutil.copytree(lms.model_dir / "language_model", folder)
    (folder / "attrs.json").write_text(attrs)
    sf.write(tmp_path / "a.wav", noise_audio(1.0, 2), 16000)
    r = invoke("transcribe", tmp_path / "a.wav", "-m", group_model, "--lm", folder, "--stdout")
    assert r.exit_code == 2
    assert "attrs.json" in one_error_line(r)


# 5. everything written follows the umask ------------------------------------------------------


def test_outputs_follow_the_umask(tmp_path_factory, tmp_path: Path, group_model: Path):
    lms = built_lms(tmp_path_factory)
    old = os.umask(0o022)
    try:
        (tmp_path / "t.txt").write_text("the cat sat\n")
        r = invoke(
            "lm",
            "build",
            tmp_path / "t.txt",
            "-o",
            tmp_path / "lm" / "x.bin",
            "--save-model-dir",
            tmp_path / "m",
        )
        assert r.exit_code == 0, r.output
        sf.write(tmp_path / "a.wav", noise_audio(1.0, 2), 16000)
        (tmp_path / "m.tsv").write_text("path\ttext\na.wav\tHELLO\n")
        r = invoke(
            "eval",
            tmp_path / "m.tsv",
            "-m",
            group_model,
            "--report",
            tmp_path / "r.jsonl",
            "--save-logits",
            tmp_path / "logits",
            "-q",
        )
        assert r.exit_code == 0, r.output
    finally:
        os.umask(old)
    del lms
    modes = {
        p.relative_to(tmp_path).as_posix(): p.stat().st_mode & 0o777
        for p in tmp_path.rglob("*")
        if p.name not in ("t.txt", "a.wav", "m.tsv")
    }
    assert modes and all(
        mode == (0o755 if (tmp_path / name).is_dir() else 0o644) for name, mode in modes.items()
    ), modes
    assert "m/language_model" in modes and "logits/000000.npz" in modes and "r.jsonl" in modes


# 6. one model object per Transcriber, freed on close ------------------------------------------


def test_transcribers_do_not_share_a_model(group_model: Path) -> None:
    from w2v2cli import Transcriber
    from w2v2cli.options import ModelOptions, RunOptions

    options = RunOptions(model=ModelOptions(model=str(group_model), backend="torch"))
    exact = Transcriber(options)
    plain = Transcriber(options, exact=False)
    assert exact.loaded.model is not plain.loaded.model
    assert exact.runner.patched and not plain.runner.patched
    # The exact one is still exact: a padded batch gives unbatched results.
    from w2v2cli.records import Chunk

    samples = [noise_audio(s, i) for i, s in enumerate([1.0, 2.3])]
    chunks = [Chunk(i, 0, 0, x, 0, 0, True) for i, x in enumerate(samples)]
    batched = exact.runner.run(chunks)
    alone = [exact.runner.run([c])[0] for c in chunks]
    for b, a in zip(batched, alone, strict=True):
        np.testing.assert_allclose(b, a, atol=1e-4)
    model = weakref.ref(exact.loaded.model)
    exact.close()
    plain.close()
    gc.collect()
    assert model() is None  # freed with its transcriber


# 7. run() with stdout output writes to stdout, not next to the inputs -------------------------


def test_library_run_with_stdout_writes_no_files(group_model: Path, tmp_path: Path, capsys):
    from w2v2cli import ModelOptions, OutputOptions, RunOptions, discover, run

    sf.write(tmp_path / "a.wav", noise_audio(1.0, 2), 16000)
    options = RunOptions(
        model=ModelOptions(model=str(group_model)),
        output=OutputOptions(formats=("json",), stdout=True),
    )
    summary = run(discover([tmp_path / "a.wav"]).items, options)
    assert summary.count("done") == 1
    assert json.loads(capsys.readouterr().out)["file"].endswith("a.wav")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav"]


# 8. a decoder failure fails that utterance in eval ---------------------------------------------


def test_eval_counts_a_decoder_failure_as_that_utterances_failure(tmp_path: Path) -> None:
    from w2v2cli.decoding import Decoder, GreedyDecoder
    from w2v2cli.errors import DecodeError
    from w2v2cli.evaluation import Manifest, ManifestEntry, score_decoders
    from w2v2cli.records import Emissions

    vocab = make_vocab(EN_UPPER)

    class FailsOnLongInput(Decoder):
        """A real decoder (greedy) that, like a beam search hitting a library bug, fails
        on one input."""

        name = "fragile"

        def decode(self, emissions: Emissions):
            if emissions.num_frames > 3:
                raise DecodeError("beam search failed: RuntimeError: boom")
            return GreedyDecoder(self.vocabulary).decode(emissions)

    def em(ids: list[int]) -> Emissions:
        lp = np.full((len(ids), vocab.size), -30.0, np.float32)
        lp[np.arange(len(ids)), ids] = 0.0
        return Emissions(lp, np.arange(len(ids)) * 0.02, 0.02, len(ids) * 0.02)

    a = vocab.tokens.index("A")
    entries = [ManifestEntry(1, tmp_path / "x.wav", "A"), ManifestEntry(2, tmp_path / "y.wav", "A")]
    items = [(entries[0], em([a])), (entries[1], em([a, 0, a, 0, a]))]
    (fragile,) = score_decoders(
        Manifest(tuple(entries), tmp_path), items, [FailsOnLongInput(vocab)]
    )
    assert [u.id for u in fragile.utterances] == ["x.wav"] and fragile.score.wer == 0.0
    assert [(e.line, why) for e, why in fragile.failed] == [
        (2, "beam search failed: RuntimeError: boom")
    ]


def test_eval_cli_goes_on_when_one_utterance_cannot_be_decoded(saved, tmp_path) -> None:
    """Saved logits whose frame times do not match their frames load, but no decoder can
    time their words: that utterance fails for each decoder, the others are scored."""
    manifest, logits = saved
    sf.write(manifest.parent / "b.wav", noise_audio(1.0, 3), 16000)
    manifest.write_text("path\ttext\na.wav\tHELLO\nb.wav\tHELLO\n")
    with np.load(logits / "000000.npz") as z:
        fields = dict(z)
    np.savez(
        logits / "000001.npz",
        **{
            **fields,
            "audio": np.str_(str(manifest.parent / "b.wav")),
            "frame_starts": fields["frame_starts"][:1],
        },
    )
    r = invoke(
        "eval",
        manifest,
        "--load-logits",
        logits,
        "--decoder",
        "greedy",
        "--decoder",
        "beam",
        "--decode-workers",
        "0",
        "-q",
    )
    assert r.exit_code == 1, r.output
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 2 and all("b.wav" in ln for ln in errors), r.stderr
    assert "greedy" in errors[0] and "beam" in errors[1]
    rows = [ln.split() for ln in r.stdout.splitlines() if ln.split()[:1] in (["greedy"], ["beam"])]
    assert [row[1:3] for row in rows] == [["1", "1"], ["1", "1"]]  # 1 scored, 1 failed each


def test_every_error_survives_pickling() -> None:
    """Errors cross process boundaries (decode workers, Ray); each comes back whole."""
    import pickle

    from w2v2cli import errors

    samples = [
        errors.AudioError("a.wav", "empty file"),
        errors.LMError("lm.arpa", "bad"),
        errors.LogitsError("000001.npz", "corrupt"),
        errors.ManifestError("m.tsv", 3, "no text"),
        errors.DecodeError("beam search failed"),
        errors.ConfigError("bad option"),
    ]
    for exc in samples:
        back = pickle.loads(pickle.dumps(exc))
        assert type(back) is type(exc) and str(back) == str(exc)
        assert vars(back) == vars(exc)

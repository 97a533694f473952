"""``w2v2 eval`` end to end on a tiny real model, with references whose WER is known."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile as sf
from click.testing import CliRunner
from conftest import noise_audio

from w2v2cli import Transcriber
from w2v2cli.cli import main
from w2v2cli.options import ModelOptions, RunOptions


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def labelled(tmp_path, group_model):
    """Three clips, a manifest whose references are the model's own output except for one
    substituted word in the second clip, and one line whose audio is missing."""
    root = tmp_path / "set"
    (root / "wav").mkdir(parents=True)
    paths = []
    for i, secs in enumerate([1.5, 3.0, 6.5]):
        p = root / "wav" / f"u{i}.wav"
        sf.write(p, noise_audio(secs, seed=20 + i), 16000)
        paths.append(p)
    hyps = [
        t.text
        for t in Transcriber(
            RunOptions(model=ModelOptions(model=str(group_model)))
        ).transcribe_files(paths)
    ]
    assert all(h.split() for h in hyps)
    refs = list(hyps)
    words = refs[1].split()
    words[0] = "ZZZZ" if words[0] != "ZZZZ" else "QQQQ"  # one substitution
    refs[1] = " ".join(words)
    from w2v2cli.evaluation import normalize

    total_words = sum(len(normalize(r).split()) for r in refs)  # what scoring counts
    lines = [{"audio_filepath": f"wav/u{i}.wav", "text": r} for i, r in enumerate(refs)]
    lines.insert(1, {"audio_filepath": "wav/missing.wav", "text": "NOTHING HERE"})
    manifest = root / "manifest.jsonl"
    manifest.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return manifest, total_words


def test_eval_scores_known_errors(labelled, group_model, tmp_path):
    manifest, total_words = labelled
    report = tmp_path / "report.jsonl"
    r = invoke("eval", manifest, "-m", group_model, "--report", report, "--show-worst", "1", "-q")
    assert r.exit_code == 1  # the missing audio file is a failure
    assert "missing.wav: no such file" in r.stderr
    expected = f"{100 / total_words:.2f}%"
    assert expected in r.stdout, r.stdout
    rows = [json.loads(x) for x in report.read_text().splitlines()]
    assert len(rows) == 3
    assert [row["decoder"] for row in rows] == ["greedy"] * 3
    assert sorted(row["wer"] for row in rows)[:2] == [0.0, 0.0]
    assert "zzzz" in r.stdout.lower()  # the worst utterance's alignment shows the substitution


def test_fail_above(labelled, group_model):
    manifest, total_words = labelled
    wer = 100 / total_words
    r = invoke("eval", manifest, "-m", group_model, "--fail-above", f"{wer / 2:.4f}", "-q")
    assert r.exit_code == 1 and "is above" in r.stderr
    manifest.write_text(
        "\n".join(ln for ln in manifest.read_text().splitlines() if "missing" not in ln) + "\n"
    )
    assert (
        invoke(
            "eval", manifest, "-m", group_model, "--fail-above", f"{wer * 2:.4f}", "-q"
        ).exit_code
        == 0
    )


def test_saved_logits_decode_again_without_model(labelled, group_model, tmp_path):
    manifest, _ = labelled
    logits = tmp_path / "logits"
    first = invoke("eval", manifest, "-m", group_model, "--save-logits", logits, "-q")
    assert len(list(logits.glob("*.npz"))) == 3
    again = invoke(
        "eval", manifest, "-m", tmp_path / "no-model-here", "--load-logits", logits, "-q"
    )

    def scores(out: str) -> list[list[str]]:  # every column but the speed
        return [ln.split()[:-1] for ln in out.splitlines() if "greedy" in ln]

    assert scores(first.stdout) and scores(first.stdout) == scores(again.stdout)


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        (
            "m.jsonl",
            '{"audio_filepath": "a.wav", "text": "A"}\n{"audio_filepath": "b.wav"}\n',
            "text",
        ),
        ("m.jsonl", '{"audio_filepath": "a.wav", "text": "A"}\n{not json\n', "invalid JSON"),
        ("m.tsv", "path\ttext\nb.wav\na.wav\tA\n", "expected 2 columns"),
    ],
)
def test_broken_manifest_line_names_the_line(tmp_path, group_model, name, content, reason):
    """File and line named in one line, before the model runs: with a model that does not
    exist, the manifest's line is still the one reported."""
    m = tmp_path / name
    m.write_text(content)
    for model in (group_model, tmp_path / "no-model"):
        r = invoke("eval", m, "-m", model)
        assert r.exit_code == 2
        (line,) = r.stderr.strip().splitlines()
        assert line.startswith(f"error: {m}:2: ") and reason in line, line


def test_eval_hypotheses_equal_transcribe_output(labelled, group_model, tmp_path):
    """One shared code path: eval's hypothesis for a file is what transcribe writes."""
    manifest, _ = labelled
    report = tmp_path / "r.csv"
    invoke(
        "eval",
        manifest,
        "-m",
        group_model,
        "--report",
        report,
        "-q",
        "--chunk-length",
        "2",
        "--stride-length",
        "0.5",
        "-b",
        "3",
    )
    out = tmp_path / "out"
    invoke(
        "transcribe",
        manifest.parent / "wav",
        "-m",
        group_model,
        "-o",
        out,
        "-f",
        "txt",
        "--chunk-length",
        "2",
        "--stride-length",
        "0.5",
        "-q",
    )
    import csv

    with report.open() as f:
        for row in csv.DictReader(f):
            stem = Path(row["id"]).stem
            assert row["hypothesis"] == (out / f"{stem}.txt").read_text().strip()


def test_two_decoders_in_one_pass(labelled, group_model, tmp_path, monkeypatch):
    """`--decoder greedy --decoder beam --lm LM` scores both decoders on one model pass:
    the model gets exactly the chunks a greedy-only run gives it, once."""
    from lm_fixtures import english_sentences, require_kenlm_tools

    from w2v2cli.inference import Runner
    from w2v2cli.lm import build_lm

    require_kenlm_tools()
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(english_sentences(100)), encoding="utf-8")
    lm = build_lm([corpus], tmp_path / "lm" / "lm.bin", 2).lm_path
    manifest, _ = labelled
    chunks: list[int] = []
    real_submit = Runner.submit

    def counting_submit(self, batch, *args, **kwargs):
        chunks.append(len(batch))
        return real_submit(self, batch, *args, **kwargs)

    monkeypatch.setattr(Runner, "submit", counting_submit)
    invoke("eval", manifest, "-m", group_model, "-q")
    one_pass = sum(chunks)
    assert one_pass >= 3  # three readable clips
    chunks.clear()
    logits = tmp_path / "logits"
    r = invoke(
        "eval",
        manifest,
        "-m",
        group_model,
        "--decoder",
        "greedy",
        "--decoder",
        "beam",
        "--lm",
        lm,
        "--decode-workers",
        "0",
        "--save-logits",
        logits,
        "-q",
    )
    assert r.exit_code == 1, r.output  # only the missing clip fails
    names = [ln.split()[0] for ln in r.stdout.splitlines() if "%" in ln]
    assert names == ["greedy", "beam"]
    assert sum(chunks) == one_pass
    assert len(list(logits.glob("*.npz"))) == 3

"""The report pages the tests open (``test_report_pages.py``), and the screenshots of
them in docs/images/: ``python3 tests/report_pages.py`` makes them again (it needs
espeak-ng, KenLM's tools and Chromium, as the tests do).

The run is the one the issue asks for: ``w2v2 eval dev.jsonl --decoder greedy --decoder
beam --lm lm.bin --report r.jsonl --report r.html`` on espeak-ng speech recognised by the
small trained model, with one audio file missing and one whose name needs
percent-encoding in a link; then ``w2v2 lm tune`` on the logits it saved.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner, Result
from lm_fixtures import english_sentences
from speech import SENTENCES, TRAINED_MODEL, Speech, synthesise

from w2v2cli.cli import main

#: An audio file whose name has a space, "#" and "%": its link must be percent-encoded.
ODD_NAME = "odd name #1%.wav"


@dataclass(frozen=True)
class EvalRun:
    root: Path  # the run's folder (the command ran there)
    manifest: Path  # set/dev.jsonl: the speech, the odd name, a missing file
    page: Path  # reports/r.html
    jsonl: Path  # reports/r.jsonl, written by the same run
    csv: Path  # reports/r.csv, likewise
    logits: Path  # the saved logits (for lm tune)
    lm: Path
    result: Result


@dataclass(frozen=True)
class TuneRun:
    page: Path
    jsonl: Path
    result: Result


@contextmanager
def inside(folder: Path) -> Iterator[None]:
    before = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


def invoke(*args: object) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def eval_run(root: Path, speech: Speech, model: Path = TRAINED_MODEL) -> EvalRun:
    """Run eval in ``root`` (relative paths, as a user would type them)."""
    audio = root / "set" / "audio"
    audio.mkdir(parents=True)
    lines = []
    for path, text in zip(speech.paths, SENTENCES, strict=True):
        shutil.copy(path, audio / path.name)
        lines.append({"audio_filepath": f"audio/{path.name}", "text": text})
    shutil.copy(speech.paths[5], audio / ODD_NAME)
    lines.insert(6, {"audio_filepath": f"audio/{ODD_NAME}", "text": SENTENCES[5]})
    lines.insert(3, {"audio_filepath": "audio/missing.wav", "text": "nothing to hear"})
    manifest = root / "set" / "dev.jsonl"
    manifest.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    # An LM that knows most sentences: beam search fixes most of greedy's errors.
    corpus = root / "corpus.txt"
    corpus.write_text("\n".join(english_sentences(200) + SENTENCES[:10]) + "\n")
    link = root / "espeak-tiny-en"
    link.symlink_to(model.resolve(), target_is_directory=True)
    with inside(root):
        built = invoke(
            "lm", "build", "corpus.txt", "-o", "lm/lm.bin", "--order", 3, "--model", link.name
        )
        assert built.exit_code == 0, built.output
        result = invoke(
            "eval",
            "set/dev.jsonl",
            "-m",
            link.name,
            "--decoder",
            "greedy",
            "--decoder",
            "beam",
            "--lm",
            "lm/lm.bin",
            "--decode-workers",
            0,
            "--backend",
            "torch",
            "--save-logits",
            "logits",
            "--report",
            "reports/r.jsonl",
            "--report",
            "reports/r.html",
            "--report",
            "reports/r.csv",
            "-q",
        )
    return EvalRun(
        root,
        manifest,
        root / "reports" / "r.html",
        root / "reports" / "r.jsonl",
        root / "reports" / "r.csv",
        root / "logits",
        root / "lm" / "lm.bin",
        result,
    )


def tune_run(run: EvalRun) -> TuneRun:
    """``lm tune`` on the eval run's saved logits, a 4 × 4 grid, HTML and JSONL reports."""
    with inside(run.root):
        result = invoke(
            "lm",
            "tune",
            "set/dev.jsonl",
            "--lm",
            "lm/lm.bin",
            "--load-logits",
            "logits",
            "--alphas",
            "0,0.5,1,2",
            "--betas",
            "-1,0,1,3",
            "--decode-workers",
            0,
            "--report",
            "reports/tune.html",
            "--report",
            "reports/tune.jsonl",
            "-q",
        )
    return TuneRun(run.root / "reports" / "tune.html", run.root / "reports" / "tune.jsonl", result)


def docs_screenshots(out: Path, work: Path) -> list[Path]:
    """eval-report.png (the top of the page: summary, charts), eval-report-table.png (the
    table, a row playing) and lm-tune-report.png, in ``out``."""
    from browser import Browser, file_url

    run = eval_run(work, synthesise(work / "speech"))
    tune = tune_run(run)
    written = []
    with Browser(width=1100, height=1250) as browser:
        browser.open(file_url(run.page))
        png = browser.screenshot()
        written.append(out / "eval-report.png")
        written[-1].write_bytes(png)
        browser.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1100, "height": 820, "deviceScaleFactor": 1, "mobile": False},
        )
        browser.click("#utterances tbody tr:nth-child(2)")
        browser.wait_for("player.currentTime > 1.0 && !!document.querySelector('i.now')")
        browser.evaluate("player.pause()")
        written.append(out / "eval-report-table.png")
        written[-1].write_bytes(browser.screenshot())
        browser.open(file_url(tune.page))
        browser.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": 900, "height": 760, "deviceScaleFactor": 1, "mobile": False},
        )
        written.append(out / "lm-tune-report.png")
        written[-1].write_bytes(browser.screenshot())
    return written


if __name__ == "__main__":
    import tempfile

    root = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory() as work:
        for path in docs_screenshots(root / "docs" / "images", Path(work)):
            print(f"{path}: {path.stat().st_size // 1024} KB", file=sys.stderr)

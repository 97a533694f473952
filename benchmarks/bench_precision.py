"""Accuracy of each precision on a model that really recognises speech (run by hand).

``bench_transcribe.py`` measures speed on a random model with the shape of
``facebook/wav2vec2-base-960h``; its texts show that a precision changes the numbers, not
whether it changes the words people read. This script measures that: the WER and CER of
the small trained model in ``tests/assets/espeak-tiny-en`` on held-out espeak-ng speech,
at every precision the CPU backends offer, against torch fp32.

- **Speech**, built once under ``benchmarks/_data/precision/``: the 50 Harvard sentences of
  ``bench_transcribe.py`` (none of them in the model's training text) spoken by espeak-ng
  in its ``en-us`` and ``en`` voices at two speeds: 200 files, about 2,000 words.
- **Calibration** of full int8: 12 other sentences (``CALIBRATION``), never the test set.
- **Precisions**: torch fp32 and bf16; OpenVINO fp32, bf16 (CPUs with native bf16
  only), int8 weight-only and int8 full (calibrated).
- **Reported**: WER and CER, the difference from torch fp32 in points and in words, and the
  files whose text is identical to torch fp32's. The CPU flags are reported with them:
  int8 and bf16 kernels differ between AVX2, AVX-512 VNNI and AMX machines.

::

    python benchmarks/bench_precision.py            # ~3 min on 2 cores
    python benchmarks/bench_precision.py --write    # and into RESULTS.md
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jiwer

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from bench_transcribe import SENTENCES, code_version, emit, machine_info  # noqa: E402

from w2v2cli import RunOptions, Transcriber  # noqa: E402
from w2v2cli.options import ModelOptions  # noqa: E402

MODEL = ROOT / "tests" / "assets" / "espeak-tiny-en"
DATA = HERE / "_data" / "precision"
VOICES = (("en-us", 150), ("en", 150), ("en-us", 175), ("en", 130))
CALIBRATION = [
    "the rain in spain stays mainly in the plain",
    "how much wood would a woodchuck chuck",
    "to be or not to be that is the question",
    "it was the best of times it was the worst of times",
    "an apple a day keeps the doctor away",
    "birds of a feather flock together",
    "a stitch in time saves nine",
    "every cloud has a silver lining",
    "fortune favours the bold",
    "practice makes perfect",
    "the squeaky wheel gets the grease",
    "when in rome do as the romans do",
]
#: name, backend, dtype, int8 method
PRECISIONS = [
    ("torch fp32", "torch", "float32", "auto"),
    ("torch bf16", "torch", "bfloat16", "auto"),
    ("OpenVINO fp32", "openvino", "float32", "auto"),
    ("OpenVINO bf16", "openvino", "bfloat16", "auto"),
    ("OpenVINO int8 weight-only", "openvino", "int8", "weights"),
    ("OpenVINO int8 full (calibrated)", "openvino", "int8", "full"),
]


def normalise(text: str) -> str:
    """Upper case, letters and in-word apostrophes only (the model's alphabet)."""
    return " ".join(re.sub(r"[^A-Z' ]+", " ", text.upper()).split())


def speak(text: str, voice: str, speed: int, path: Path) -> None:
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(path), text], check=True)


def ensure_speech() -> tuple[list[Path], list[str], list[Path]]:
    """The test files with their references, and the calibration files (built once)."""
    test, cal = DATA / "test", DATA / "calibration"
    paths, refs = [], []
    for v, (voice, speed) in enumerate(VOICES):
        for i, sentence in enumerate(SENTENCES):
            path = test / f"v{v}-{i:02d}.wav"
            if not path.is_file():
                path.parent.mkdir(parents=True, exist_ok=True)
                speak(sentence, voice, speed, path)
            paths.append(path)
            refs.append(normalise(sentence))
    cal_paths = []
    for i, sentence in enumerate(CALIBRATION):
        path = cal / f"c{i:02d}.wav"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            speak(sentence, VOICES[i % 2][0], 150, path)
        cal_paths.append(path)
    return paths, refs, cal_paths


def transcribe(
    backend: str, dtype: str, int8: str, paths: list[Path], cal: list[Path], cache: Path
):
    options = ModelOptions(
        model=str(MODEL),
        backend=backend,
        dtype=dtype,
        int8=int8,
        calibration=tuple(cal) if int8 == "full" else (),
        cache_dir=cache,
    )
    with Transcriber(RunOptions(model=options), notify=lambda _m: None) as t:
        return [normalise(x.text) for x in t.transcribe_files(paths)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--write", action="store_true", help="put the report into RESULTS.md")
    p.add_argument("--section", default="precisions: WER and CER of the trained model")
    args = p.parse_args(argv)
    paths, refs, cal = ensure_speech()
    words = sum(len(r.split()) for r in refs)
    rows, base = [], None
    with tempfile.TemporaryDirectory() as cache:
        for name, backend, dtype, int8 in PRECISIONS:
            started = time.perf_counter()
            try:
                texts = transcribe(backend, dtype, int8, paths, cal, Path(cache))
            except Exception as exc:  # noqa: BLE001 - e.g. bf16 on a CPU without it
                rows.append(f"| {name} | - | - | - | - | - | {' '.join(str(exc).split())[:90]} |")
                continue
            seconds = time.perf_counter() - started
            wer, cer = jiwer.wer(refs, texts), jiwer.cer(refs, texts)
            if base is None:
                base = (wer, cer, texts)
            errors = jiwer.process_words(refs, texts)
            wrong = errors.substitutions + errors.deletions + errors.insertions
            base_wrong = round(base[0] * words)
            same = sum(a == b for a, b in zip(texts, base[2], strict=True))
            rows.append(
                f"| {name} | {100 * wer:.2f} | {100 * cer:.2f} | "
                f"{100 * (wer - base[0]):+.2f} ({wrong - base_wrong:+d} words) | "
                f"{100 * (cer - base[1]):+.2f} | {same} of {len(texts)} | {seconds:.0f} s |"
            )
            print(rows[-1], flush=True)
    command = "python benchmarks/bench_precision.py" + (" --write" if args.write else "")
    body = "\n".join(
        [
            *machine_info([]),
            f"- command: `{command}`",
            f"- w2v2cli: {code_version()}",
            f"- model: `tests/assets/espeak-tiny-en` (2.2M parameters, trained on espeak-ng "
            f"speech); speech: {len(paths)} files, {words} words: the 50 Harvard sentences "
            "of bench_transcribe.py in 4 espeak-ng voice/speed pairs; full int8 calibrated "
            f"on {len(cal)} other sentences",
            "- columns: WER and CER in %; the difference from torch fp32 in points (and in "
            "words); files whose text equals torch fp32's; wall time of the run (the model "
            "is tiny: it says little about speed, see bench_transcribe.py)",
            "",
            "| precision | WER % | CER % | WER vs torch fp32 | CER vs torch fp32 | same text "
            "| time |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
            *rows,
            "",
        ]
    )
    emit(body, args.write, args.section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``--vad`` against fixed chunks on recordings that are about half silence (run by hand).

What it does
------------
1. Builds once, under ``benchmarks/_data/vad/`` (git-ignored), ``--files`` WAV files of
   about ``--minutes`` each: the tests' espeak-ng sentences (``tests/speech.py``, two
   voices) in a seeded random order, separated by pauses drawn from 0.3 to 6 s so that
   about half of each file is silence, with white noise (RMS 0.001) under everything.
   ``references.tsv`` holds each file's text.
2. Loads each configuration's ``Transcriber`` once (torch, float32, batch 1, 20 s chunks
   with 3 s strides, greedy decoding): ``fixed`` (no VAD) and ``vad`` (``--vad``
   defaults). After a warm-up file, it transcribes every file, ``--rounds`` times,
   alternating the two configurations, and keeps each one's median wall and CPU time
   (the VAD's own time included: it runs in the reading thread).
3. Reports the speed ratio, the audio each configuration sent to the model, WER against
   the references for both, and the share of files whose text is the same. ``--write``
   puts the report, with the machine's CPU flags, into ``benchmarks/RESULTS.md``.

The default model is the small trained test model (``tests/assets/espeak-tiny-en``), which
recognises the speech, so the words can be compared. ``--model PATH`` takes any model
folder, e.g. the random base-sized one ``bench_transcribe.py`` builds under
``benchmarks/_data/model`` (its words mean nothing, but its compute per second is a real
wav2vec2-base's).

Usage::

    python benchmarks/bench_vad.py --rounds 3 --write
    python benchmarks/bench_vad.py --model benchmarks/_data/model --files 4 --write \\
        --section "--vad speed, base-sized model"
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = HERE / "_data" / "vad"
RESULTS = HERE / "RESULTS.md"
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))
RATE = 16000


def cpu_flags() -> str:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    found = set(re.findall(r"\b(avx512[a-z_0-9]*|amx[a-z_0-9]*|avx_vnni|avx2)\b", text))
    return ", ".join(sorted(found)) or "none of avx2/avx512/amx/vnni"


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def build(files: int, minutes: float) -> list[tuple[Path, str]]:
    import soundfile as sf
    import soxr
    from speech import SENTENCES

    folder = DATA / f"{files}x{minutes:g}"
    manifest = folder / "references.tsv"
    if manifest.exists():
        rows = manifest.read_text().splitlines()[1:]
        return [(folder / r.split("\t")[0], r.split("\t")[1]) for r in rows]
    folder.mkdir(parents=True, exist_ok=True)
    spoken: list[tuple[np.ndarray, str]] = []
    for text in SENTENCES:
        for voice in ("en-us", "en"):
            path = folder / "sentence.wav"
            subprocess.run(
                ["espeak-ng", "-v", voice, "-s", "150", "-w", str(path), text], check=True
            )
            audio, rate = sf.read(path, dtype="float32")
            spoken.append((soxr.resample(audio, rate, RATE).astype(np.float32), text))
            path.unlink()
    rng = np.random.default_rng(0)
    out = []
    for f in range(files):
        pieces, words, total, speech = [], [], 0, 0
        while total < minutes * 60 * RATE:
            audio, text = spoken[int(rng.integers(len(spoken)))]
            pause = np.zeros(int(rng.uniform(0.3, 6.0) * RATE), np.float32)
            pieces += [pause, audio]
            words.append(text)
            total += len(pause) + len(audio)
            speech += len(audio)
        signal = np.concatenate(pieces + [np.zeros(RATE, np.float32)])
        signal += 0.001 * rng.standard_normal(len(signal)).astype(np.float32)
        path = folder / f"paused{f:02d}.wav"
        sf.write(path, signal, RATE)
        out.append((path, " ".join(words)))
        print(
            f"{path.name}: {len(signal) / RATE:.0f} s, speech {speech / len(signal):.0%}",
            file=sys.stderr,
        )
    manifest.write_text("path\ttext\n" + "".join(f"{p.name}\t{t}\n" for p, t in out))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--files", type=int, default=6)
    p.add_argument("--minutes", type=float, default=1.0, help="length of each file")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--model", type=Path, help="model folder (default: the trained test model)")
    p.add_argument("--write", action="store_true", help="write the report into RESULTS.md")
    p.add_argument("--section", default="--vad speed on half-silent recordings")
    args = p.parse_args()

    import jiwer
    import soundfile as sf
    from speech import TRAINED_MODEL

    from w2v2cli import Transcriber
    from w2v2cli.options import ModelOptions, RunOptions, VadOptions

    files = build(args.files, args.minutes)
    paths = [path for path, _ in files]
    refs = [text.upper() for _, text in files]
    audio_s = sum(sf.info(p).duration for p in paths)
    model = str(args.model or TRAINED_MODEL)
    configs = {"fixed": None, "vad": VadOptions()}
    transcribers = {}
    sent: dict[str, float] = {}
    for name, vad in configs.items():
        t = Transcriber(
            RunOptions(model=ModelOptions(model, backend="torch"), batch_size=1, vad=vad)
        )
        t.transcribe_files(paths[:1])  # warm-up (and the VAD model loaded)
        transcribers[name] = t
        runner = t.engine.runner
        real_submit = runner.submit

        def counting(batch, _real=real_submit, _name=name):
            sent[_name] = sent.get(_name, 0.0) + sum(c.length for c in batch) / RATE
            return _real(batch)

        runner.submit = counting  # count the audio each configuration sends to the model
    walls: dict[str, list[float]] = {n: [] for n in configs}
    cpus: dict[str, list[float]] = {n: [] for n in configs}
    texts: dict[str, list[str]] = {}
    for r in range(args.rounds):
        for name in list(configs) if r % 2 == 0 else list(configs)[::-1]:
            sent[name] = 0.0
            started, cpu = time.perf_counter(), time.process_time()
            out = transcribers[name].transcribe_files(paths)
            walls[name].append(time.perf_counter() - started)
            cpus[name].append(time.process_time() - cpu)
            texts[name] = [o.text for o in out]
            print(f"round {r + 1} {name}: {walls[name][-1]:.1f} s", file=sys.stderr)
    for t in transcribers.values():
        t.close()

    wall = {n: statistics.median(v) for n, v in walls.items()}
    cpu = {n: statistics.median(v) for n, v in cpus.items()}
    wer = {n: jiwer.wer(refs, texts[n]) for n in configs}
    same = sum(a == b for a, b in zip(texts["fixed"], texts["vad"], strict=True))
    import torch

    lines = [
        f"- date: {dt.datetime.now().strftime('%Y-%m-%d %H:%M')}",
        f"- machine: {os.cpu_count()} cores, {cpu_model()}; CPU flags: {cpu_flags()}; "
        f"Python {platform.python_version()}, torch {torch.__version__}, torch threads "
        f"{torch.get_num_threads()}",
        f"- command: `python benchmarks/bench_vad.py {' '.join(sys.argv[1:])}`".rstrip(),
        f"- model: `{Path(model).name}` (torch, float32, batch 1, 20 s chunks with 3 s "
        "strides, greedy)",
        f"- audio: {len(paths)} files, {audio_s / 60:.1f} min in all, espeak-ng sentences with "
        "pauses of 0.3-6 s (about half silence), noise RMS 0.001",
        f"- timed: transcribing all files, reading and the VAD included; model load and a "
        f"warm-up file excluded; median of {args.rounds} rounds, configurations alternating",
        "",
        "| configuration | wall s | CPU s | x real time | audio sent to the model s | WER |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in configs:
        lines.append(
            f"| {name} | {wall[name]:.1f} | {cpu[name]:.1f} | "
            f"{audio_s / wall[name]:.1f} | {sent[name]:.0f} | {100 * wer[name]:.1f}% |"
        )
    lines += [
        "",
        f"- speed: `--vad` is **{wall['fixed'] / wall['vad']:.2f}x** the fixed chunks "
        f"(CPU time {cpu['fixed'] / cpu['vad']:.2f}x); rounds: "
        + ", ".join(f"{a / b:.2f}x" for a, b in zip(walls["fixed"], walls["vad"], strict=True)),
        f"- same text with and without `--vad`: {same} of {len(paths)} files",
    ]
    body = "\n".join(lines) + "\n"
    print(body)
    if args.write:
        sys.path.insert(0, str(HERE))
        from bench_transcribe import write_section

        write_section(RESULTS, args.section, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

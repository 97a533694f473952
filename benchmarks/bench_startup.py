"""Start-up: how long `w2v2 transcribe` takes on one short file, against `import torch` (run
by hand).

Each configuration is a fresh process, timed from start to exit, with its peak resident
memory (``wait4``'s ``ru_maxrss``); the configurations run interleaved, round after
round, and the table shows each one's median:

- ``import-torch``: ``python -c "import torch"``, the floor for anything that runs torch;
- ``help``: ``w2v2 --help``;
- ``torch``: the torch backend (this package's own wav2vec2, ``models/native.py``);
- ``torch-transformers``: the torch backend with transformers' model
  (``W2V2_TORCH_MODEL=transformers``), as before the native model;
- ``openvino``: the OpenVINO backend from its cached IR (converted once before timing).

The issue's target: one short file at most 1.5 s more than ``import torch``. Uses the
random base-sized model of bench_transcribe.py (``_data/``) and a 3 s cut of its first
clip; every run writes JSON into a fresh folder (an existing output would be skipped).

    python benchmarks/bench_startup.py                    # 5 rounds, every configuration
    python benchmarks/bench_startup.py --rounds 7 --write
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import soundfile as sf

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_transcribe as bt  # noqa: E402 - the shared data and report helpers

CONFIGS = ("import-torch", "help", "torch", "torch-transformers", "openvino")


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one process."""
    started = time.monotonic()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}):\n{stderr}")
    return wall, usage.ru_maxrss / 1024


def command(config: str, audio: Path, model: Path, out: Path) -> tuple[list[str], dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if k != "W2V2_TORCH_MODEL"}
    if config == "import-torch":
        return [sys.executable, "-c", "import torch"], env
    if config == "help":
        return [sys.executable, "-m", "w2v2cli", "--help"], env
    backend = "openvino" if config == "openvino" else "torch"
    if config == "torch-transformers":
        env["W2V2_TORCH_MODEL"] = "transformers"
    return [
        sys.executable,
        "-m",
        "w2v2cli",
        "transcribe",
        str(audio),
        "-m",
        str(model),
        "--cache-dir",
        str(bt.DATA / "hf-cache"),
        "--backend",
        backend,
        "-f",
        "json",
        "-o",
        str(out),
        "-q",
    ], env


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=CONFIGS)
    p.add_argument("--write", action="store_true", help="write the report into RESULTS.md")
    p.add_argument("--section", default="start-up: one short file against import torch")
    args = p.parse_args(argv)
    model = bt.ensure_model(0)
    first = bt.ensure_audio(bt.QUICK)[0]
    audio = bt.DATA / "short-3s.wav"
    if not audio.is_file():
        samples, rate = sf.read(first, dtype="float32")
        sf.write(audio, samples[: 3 * rate], rate)
    runs: dict[str, list[tuple[float, float]]] = {c: [] for c in args.configs}
    with tempfile.TemporaryDirectory() as tmp:
        if "openvino" in args.configs:  # the IR is converted (or found) before timing
            argv_, env = command("openvino", audio, model, Path(tmp) / "warm")
            timed(argv_, env)
        for r in range(args.rounds):
            for config in args.configs:
                argv_, env = command(config, audio, model, Path(tmp) / f"{config}-{r}")
                runs[config].append(timed(argv_, env))
            walls = ", ".join(f"{c} {runs[c][-1][0]:.2f} s" for c in args.configs)
            print(f"round {r + 1}: {walls}", file=sys.stderr)
    floor = "import-torch" in runs or None
    lines = [
        f"- date: {dt.datetime.now().strftime('%Y-%m-%d %H:%M')}",
        *bt.machine_info([]),
        f"- command: `python benchmarks/bench_startup.py {' '.join(argv or sys.argv[1:])}`",
        f"- w2v2cli: commit {bt.code_version()}",
        f"- one 3 s WAV, random wav2vec2-base-shaped model (94.4M parameters), float32, JSON "
        f"written; each configuration a fresh process, {args.rounds} interleaved rounds, "
        "median shown; peak RSS from wait4",
        "- more than `import torch`: the median of each round's difference (the rounds "
        "interleave, so each difference is taken under the same load)",
        "",
        "| configuration | wall s (median) | more than `import torch` | peak RSS MB | runs (s) |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for config, values in runs.items():
        wall = statistics.median(w for w, _ in values)
        rss = statistics.median(m for _, m in values)
        extra = ""
        if floor is not None and config != "import-torch":
            extra = statistics.median(
                w - t for (w, _), (t, _) in zip(values, runs["import-torch"], strict=True)
            )
            extra = f"{extra:+.2f} s"
        lines.append(
            f"| `{config}` | {wall:.2f} | {extra} | {rss:.0f} | "
            + ", ".join(f"{w:.2f}" for w, _ in values)
            + " |"
        )
    bt.emit("\n".join(lines) + "\n", args.write, args.section)


if __name__ == "__main__":
    main()

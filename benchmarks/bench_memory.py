"""Peak memory of `w2v2 transcribe` as users run it (run by hand): flat over a long run, flat
in file length.

Runs the CLI in a subprocess and samples the resident memory of its whole process tree
(/proc, every 50 ms), for each backend asked for:

- **two passes**: every file of the benchmark set twice in one run (`--from-list` names each
  file twice, results to `--stdout`); the peak while the first pass runs against the peak
  while the second does (the split is the moment the first pass's last result is printed).
  Target: the second at most 5% above the first.
- **file length**: one 5-minute file and one 30-minute file (the set's speech repeated),
  each in its own run. Target: the 30-minute peak within 10% of the 5-minute one.

Uses the data of bench_transcribe.py (the random base-sized model and the espeak-ng set
under `_data/`; built by it on first use) and its IR cache. Model load is included: these
are the peaks a user sees.

    python benchmarks/bench_memory.py                       # OpenVINO and torch, quick set
    python benchmarks/bench_memory.py --full --backends openvino --write
    python benchmarks/bench_memory.py --backends torch torch-transformers  # native vs not
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_transcribe as bt  # noqa: E402 - the shared data and report helpers


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo += children.get(p, [])
        try:
            with open(f"/proc/{p}/statm") as f:
                total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            pass
    return total


def run_cli(
    args: list[str], split_after: int | None = None, env: dict[str, str] | None = None
) -> dict:
    """Run ``w2v2 ARGS``; the peak RSS of its tree overall, and before/after the
    ``split_after``-th result on stdout (``==> path <==`` headers)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "w2v2cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    samples: list[tuple[float, int]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append((time.monotonic(), tree_rss(proc.pid)))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    started = time.monotonic()
    sampler.start()
    split_time, results = None, 0
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("==> "):
            results += 1
            if split_after is not None and results == split_after + 1:
                split_time = time.monotonic()
    stderr = proc.stderr.read() if proc.stderr else ""
    proc.wait()
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"w2v2 {' '.join(args)} failed ({proc.returncode}):\n{stderr}")
    out = {
        "peak": max(r for _, r in samples),
        "wall": time.monotonic() - started,
        "results": results,
    }
    if split_time is not None:
        # Where the split fell, as a share of the run: about half when results stream
        # (before 93d2bdb they came in bursts and the split fell near the end).
        out["split"] = (split_time - started) / out["wall"]
        out["first"] = max(r for t, r in samples if t < split_time)
        out["second"] = max(r for t, r in samples if t >= split_time)
    return out


def long_file(paths: list[Path], minutes: int, folder: Path) -> Path:
    """The set's speech repeated to ``minutes`` minutes, one WAV."""
    audio = np.concatenate([sf.read(p, dtype="float32")[0] for p in paths])
    n = minutes * 60 * bt.SR
    path = folder / f"long-{minutes}min.wav"
    if not path.is_file():
        sf.write(path, np.tile(audio, -(-n // audio.size))[:n], bt.SR, subtype="PCM_16")
    return path


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--full", action="store_true", help="the 21-minute set for two passes")
    p.add_argument(
        "--backends",
        nargs="+",
        default=["openvino", "torch"],
        choices=["openvino", "torch", "torch-transformers"],
    )
    p.add_argument("--skip-long", action="store_true", help="only the two-pass run")
    p.add_argument("--skip-two-pass", action="store_true", help="only the long files")
    p.add_argument("--write", action="store_true", help="write the report into RESULTS.md")
    p.add_argument("--section", default="memory: two passes and file length")
    args = p.parse_args(argv)
    model = bt.ensure_model(0)
    paths = bt.ensure_audio(bt.FULL if args.full else bt.QUICK)
    cache = bt.DATA / "hf-cache"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        # The second pass reads copies: the same audio under other paths (inputs are
        # de-duplicated by their real path).
        second = Path(tmp) / "pass2"
        second.mkdir()
        links = []
        for path in paths:
            shutil.copyfile(path, second / path.name)
            links.append(second / path.name)
        listing = Path(tmp) / "twice.txt"
        listing.write_text("".join(f"{p}\n" for p in [*paths, *links]))
        longs = [] if args.skip_long else [long_file(paths, m, bt.DATA) for m in (5, 30)]
        for backend in args.backends:
            # torch-transformers: the torch backend with transformers' model instead of
            # this package's own (W2V2_TORCH_MODEL, models/native.py)
            env = {k: v for k, v in os.environ.items() if k != "W2V2_TORCH_MODEL"}
            if backend == "torch-transformers":
                env["W2V2_TORCH_MODEL"] = "transformers"
            common = [
                "-m",
                str(model),
                "--cache-dir",
                str(cache),
                "--backend",
                backend.split("-")[0],
                "--stdout",
                "-f",
                "txt",
                "-q",
            ]
            row: dict = {"backend": backend}
            if not args.skip_two_pass:
                row.update(
                    run_cli(
                        ["transcribe", "--from-list", str(listing), *common],
                        split_after=len(paths),
                        env=env,
                    )
                )
            for path in longs:
                row[path.stem] = run_cli(["transcribe", str(path), *common], env=env)["peak"]
            rows.append(row)
            print(row, file=sys.stderr)
    mb = 1e6
    lines = [
        f"- date: {dt.datetime.now().strftime('%Y-%m-%d %H:%M')}",
        *bt.machine_info([]),
        f"- command: `python benchmarks/bench_memory.py {' '.join(argv or sys.argv[1:])}`",
        f"- w2v2cli: commit {bt.code_version()}",
        "- model: random wav2vec2-base-shaped CTC model, 94.4M parameters; float32; default "
        "chunking (20 s chunks, 3 s strides); batch size 1 (the CPU default)",
        f"- two passes: {len(paths)} files ({'full' if args.full else 'quick'} set) twice in "
        "one run; long files: the set's speech repeated to 5 and 30 minutes, one run each",
        "- peak RSS: the CLI's whole process tree, sampled every 50 ms, model load included",
        "",
        "| backend | two passes: first pass peak MB | second pass peak MB | second vs first "
        "| 5 min file peak MB | 30 min file peak MB | 30 vs 5 min |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        five, thirty = r.get("long-5min"), r.get("long-30min")
        lines.append(
            f"| {r['backend']} | "
            + (
                f"{r['first'] / mb:.0f} | {r['second'] / mb:.0f} | "
                f"{(r['second'] / r['first'] - 1) * 100:+.1f}% | "
                if "first" in r
                else "- | - | - | "
            )
            + (
                f"{five / mb:.0f} | {thirty / mb:.0f} | {(thirty / five - 1) * 100:+.1f}% |"
                if five and thirty
                else "- | - | - |"
            )
        )
    splits = [f"{r['backend']} {r['split'] * 100:.0f}%" for r in rows if "split" in r]
    if splits:
        lines += [
            "",
            "- the passes split (the first pass's last result read) at this share of "
            f"the run's time: {', '.join(splits)}",
        ]
    bt.emit("\n".join(lines) + "\n", args.write, args.section)


if __name__ == "__main__":
    main()

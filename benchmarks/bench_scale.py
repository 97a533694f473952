"""Scale-out on one machine: a local run, ``--ray``, and two shards in parallel (run by hand).

What it does
------------
1. Uses the quick corpus ``bench_transcribe.py`` builds (``benchmarks/_data/audio-quick``,
   12 files, ~3.5 min of speech-like audio; built if missing) and a model folder (default:
   the random base-sized model ``bench_transcribe.py`` builds, whose compute per second is
   a real wav2vec2-base's).
2. Runs the command line end to end as separate processes, ``--rounds`` times, alternating:
   - ``local``: ``w2v2 transcribe`` as usual;
   - ``ray``: the same with ``--ray`` (a local Ray instance started and stopped by the
     run: that cost is part of what a user waits for);
   - ``shards``: ``--shard 1/2`` and ``--shard 2/2`` as two processes at once, each with
     ``--threads 1`` (the machine's two cores between them); the wall time is the
     slower one's.
   Every configuration uses the same backend (``--backend``, default torch), greedy
   decoding, and writes txt and json into its own folder; the outputs are compared byte
   for byte.
3. Measures the stages a Ray cluster spreads, in this process: reading and resampling
   (the decoding tasks), and ``ray.init`` + ``ray.shutdown`` of a local instance.
4. ``--write`` puts the report into ``benchmarks/RESULTS.md`` with the CPU flags.

Usage::

    python benchmarks/bench_scale.py --rounds 3 --write
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = HERE / "_data"
RESULTS = HERE / "RESULTS.md"
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))


def tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def run_config(name: str, audio: Path, model: Path, out: Path, backend: str) -> float:
    """Wall seconds of one configuration's whole run (processes started to all ended)."""
    shutil.rmtree(out, ignore_errors=True)
    base = [
        sys.executable,
        "-m",
        "w2v2cli",
        "transcribe",
        str(audio),
        "-m",
        str(model),
        "-o",
        str(out),
        "-f",
        "txt",
        "-f",
        "json",
        "--decoder",
        "greedy",
        "-q",
        "--backend",
        backend,
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    commands = {
        "local": [base],
        "ray": [base + ["--ray"]],
        "shards": [base + ["--shard", f"{i}/2", "--threads", "1"] for i in (1, 2)],
    }[name]
    started = time.perf_counter()
    procs = [subprocess.Popen(c, env=env, stderr=subprocess.PIPE, text=True) for c in commands]
    for p in procs:
        _, err = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"{name} failed ({p.returncode}): {err[-2000:]}")
    return time.perf_counter() - started


def decode_rate(paths: list[Path]) -> float:
    """Audio seconds read and resampled per second, one core (the decoding tasks' rate)."""
    from w2v2cli.audio import load_audio

    started, seconds = time.perf_counter(), 0.0
    for p in paths:
        seconds += len(load_audio(p, 16000)) / 16000
    return seconds / (time.perf_counter() - started)


def ray_start_stop() -> float:
    import ray

    from w2v2cli.scale.ray_data import RayOptions, connect

    started = time.perf_counter()
    connect(RayOptions(address="local"))
    ray.shutdown()
    return time.perf_counter() - started


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--model", type=Path, help="model folder (default: the base-sized model)")
    p.add_argument("--backend", default="torch", choices=["torch", "openvino"])
    p.add_argument("--write", action="store_true", help="write the report into RESULTS.md")
    p.add_argument("--section", default="scale-out: shards and Ray Data")
    p.add_argument(
        "--beam-rate",
        type=float,
        default=81.0,
        help="beam search, x real time per thread, for the cluster estimate "
        "(default: RESULTS.md, beam search engines: ctc-beam-decoder, 4-gram, "
        "width 100, peaked posteriors)",
    )
    args = p.parse_args()

    import bench_transcribe as bt
    import ray
    import soundfile as sf

    model = args.model or bt.ensure_model(0)
    paths = bt.ensure_audio(bt.QUICK)
    audio = paths[0].parent
    audio_s = sum(sf.info(p).duration for p in paths)
    work = DATA / "scale"
    configs = ["local", "ray", "shards"]
    walls: dict[str, list[float]] = {c: [] for c in configs}
    for r in range(args.rounds):
        order = configs if r % 2 == 0 else configs[::-1]
        for c in order:
            walls[c].append(run_config(c, audio, model, work / c, args.backend))
            print(f"round {r + 1} {c}: {walls[c][-1]:.1f} s", file=sys.stderr)
    outputs = {c: tree(work / c) for c in configs}
    differ = {
        c: sorted(k for k in outputs["local"] if outputs[c].get(k) != outputs["local"][k])
        for c in configs[1:]
    }
    texts_differ = {c: [k for k in differ[c] if k.endswith(".txt")] for c in configs[1:]}
    wall = {c: statistics.median(v) for c, v in walls.items()}
    rate = decode_rate(paths)
    start_stop = statistics.median(ray_start_stop() for _ in range(3))

    info = bt.machine_info([{"threads": "per process", "interop_threads": "default"}])
    lines = [
        f"- date: {dt.date.today()}",
        *info[:2],
        info[2].split("; torch threads")[0] + f", ray {ray.__version__}",
        f"- command: `python benchmarks/bench_scale.py --rounds {args.rounds}"
        f"{' --backend ' + args.backend if args.backend != 'torch' else ''}`",
        f"- corpus: {len(paths)} files, {audio_s:.0f} s of audio; model `{model.name}` "
        f"(base-sized); backend {args.backend}; greedy; txt + json",
        f"- timed: whole command-line runs as processes (model loading and Ray start-up "
        f"included); median of {args.rounds} rounds, configurations alternating",
        "- `shards`: `--shard 1/2` and `--shard 2/2` at once with `--threads 1` each; torch "
        "sums in another order on 1 thread than on 2, so a JSON confidence may differ in "
        "its last digit from the 2-thread local run (the same options give the same bytes)",
        "",
        "| configuration | wall s | x real time | vs local |",
        "| --- | ---: | ---: | ---: |",
    ]
    for c in configs:
        lines.append(
            f"| {c} | {wall[c]:.1f} | {audio_s / wall[c]:.1f} | {wall['local'] / wall[c]:.2f}x |"
        )
    lines += [
        "",
        "- rounds (s): "
        + "; ".join(f"{c} " + ", ".join(f"{w:.1f}" for w in walls[c]) for c in configs),
        *(
            f"- {c} against local: {len(outputs['local']) - len(differ[c])} of "
            f"{len(outputs['local'])} output files byte for byte the same; texts differ in "
            f"{len(texts_differ[c])}"
            + (f" (differing: {', '.join(differ[c])})" if differ[c] else "")
            for c in configs[1:]
        ),
        f"- Ray overhead: {wall['ray'] - wall['local']:+.1f} s per run; a local Ray "
        f"instance starts and stops in {start_stop:.1f} s",
        f"- reading + resampling (the decoding tasks): {rate:.0f}x real time per core",
        "",
        "Paper estimate for N GPU nodes (not measured: no cluster or GPU here). Each node runs",
        "one model actor per GPU (one CPU each) and gives its other CPUs to decoding tasks and",
        "beam-search actors. Per CPU, reading + resampling runs at the rate above, beam search",
        f"at {args.beam_rate:.0f}x real time (`--beam-rate`), so the CPU stages of a node "
        "sustain about",
        "`(CPUs - GPUs) / (1/decode + 1/beam)` x real time (greedy: `(CPUs - GPUs) x decode`).",
        "Throughput is `N x min(GPUs x R_gpu, that)`, where `R_gpu` is one model actor's",
        "rate on one GPU (to be measured with `bench_transcribe.py` on the GPU in question);",
        "the driver only lists files and collects one small row per file.",
        "",
        "| node | CPU stages, greedy (x RT) | CPU stages, beam (x RT) "
        "| GPUs are the limit while R_gpu < (beam) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for gpus_n, cpus_n in ((8, 96), (4, 32), (1, 8)):
        spare = cpus_n - gpus_n
        greedy = spare * rate
        beam = spare / (1 / rate + 1 / args.beam_rate)
        lines.append(
            f"| {gpus_n} GPUs, {cpus_n} CPUs | {greedy:,.0f} | {beam:,.0f} | "
            f"{beam / gpus_n:,.0f}x per GPU |"
        )
    lines += [
        "",
        f"On this machine the whole local run is {audio_s / wall['local']:.1f}x real time "
        "(base-sized model on 2 CPU cores), so the same corpus on N such CPU nodes takes "
        "about 1/N of the time plus the fixed start-up above, by shards or by Ray.",
    ]
    body = "\n".join(lines) + "\n"
    print(body)
    if args.write:
        bt.write_section(RESULTS, args.section, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The host's own rate: `w2v2 transcribe` with the model replaced by a replay (run by hand).

On a GPU the model is fast and what the host does per file (reading and resampling audio,
chunking, stitching, decoding, word times, cues, formatting, writing) decides the speed
(docs/performance.md, "On a GPU"). This script measures that part alone, on any machine:

1. **Corpus**, built once under ``benchmarks/_data/host/``: the 66 espeak-ng recordings of
   ``bench_transcribe.py`` (20.7 min, 1-60 s each) written as MP3 (44.1 kHz), Ogg Vorbis
   (22.05 kHz), FLAC (48 kHz) and WAV (16 kHz), a quarter each, with ffmpeg: every decoder
   and the resampler work as on real input.
2. **Replay**, recorded once: the small trained model (``tests/assets/espeak-tiny-en``, the
   32-symbol alphabet of wav2vec2-base-960h) runs over the corpus through the tool, and each
   chunk's log-probabilities are kept, keyed by the chunk's length and its first and last
   samples. Timed runs load a backend that looks each chunk up instead of computing it, so
   words, cues and files are those of a real model at no model cost. The replay is here, in
   the benchmark; the product never replays.
3. **Timed runs**: the real command line, ``w2v2cli.cli.main(["transcribe", corpus, ...])``,
   in a fresh process pinned to 1, 2, ... cores (``os.sched_setaffinity``), per output format
   and per decoder (greedy; beam search without and with a 3-gram KenLM built from the
   corpus' sentences), with ``--manifest-out`` and atomic writes as usual. The figure is
   audio seconds per wall second: the host's own rate.
4. **Profile** (``--profile``): cProfile of one greedy run on one core, the functions where
   a file's host time goes.

::

    python benchmarks/bench_host.py                       # all configurations, ~5 min
    python benchmarks/bench_host.py --cores 1 --formats json,srt --decoders greedy
    python benchmarks/bench_host.py --profile --write     # and into RESULTS.md
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import io
import json
import os
import pickle
import pstats
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from bench_transcribe import (  # noqa: E402
    FULL,
    SENTENCES,
    code_version,
    emit,
    ensure_audio,
    machine_info,
    wait_for_quiet,
)

MODEL = ROOT / "tests" / "assets" / "espeak-tiny-en"
DATA = HERE / "_data" / "host"
REPLAY = DATA / "replay.pkl"
#: container, sampling rate, ffmpeg arguments: a quarter of the corpus each
FORMATS = [
    ("mp3", 44100, ["-c:a", "libmp3lame", "-b:a", "96k"]),
    ("ogg", 22050, ["-c:a", "libvorbis", "-q:a", "4"]),
    ("flac", 48000, ["-c:a", "flac"]),
    ("wav", 16000, ["-c:a", "pcm_s16le"]),
]
OUTPUTS = ["txt", "json", "srt", "json,srt", "all"]
DECODERS = ["greedy", "beam", "beam+lm"]
KEY_SAMPLES = 256


# -- data ------------------------------------------------------------------------------


def ensure_corpus() -> tuple[Path, float]:
    """The mixed-format corpus folder and its audio seconds."""
    wavs = ensure_audio(FULL)
    folder = DATA / "corpus"
    import soundfile as sf

    seconds = sum(sf.info(str(p)).duration for p in wavs)
    done = folder / "done.json"
    if done.is_file() and json.loads(done.read_text()).get("files") == len(wavs):
        return folder, seconds
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for i, wav in enumerate(wavs):
        ext, rate, codec = FORMATS[i % len(FORMATS)]
        out = folder / f"{wav.stem}.{ext}"
        subprocess.run(
            [
                "ffmpeg",
                "-loglevel",
                "error",
                "-y",
                "-i",
                str(wav),
                "-ar",
                str(rate),
                *codec,
                str(out),
            ],
            check=True,
        )
    done.write_text(json.dumps({"files": len(wavs)}))
    return folder, seconds


def ensure_lm() -> Path:
    """A 3-gram KenLM from the corpus' sentences, built with ``w2v2 lm build --model``."""
    lm = DATA / "lm" / "harvard.bin"
    if lm.is_file():
        return lm
    text = DATA / "lm" / "sentences.txt"
    text.parent.mkdir(parents=True, exist_ok=True)
    text.write_text("\n".join(SENTENCES * 4) + "\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "w2v2cli",
            "lm",
            "build",
            str(text),
            "-o",
            str(lm),
            "--order",
            "3",
            "--model",
            str(MODEL),
        ],
        check=True,
        cwd=ROOT,
    )
    return lm


def key(row: np.ndarray, n: int) -> tuple[int, bytes, bytes]:
    """A chunk's identity: its length and its first and last samples (cheap to compute)."""
    k = min(KEY_SAMPLES, n)
    return n, row[:k].tobytes(), row[n - k : n].tobytes()


# -- the replay backend ------------------------------------------------------------------


class ReplayBackend:
    """A CPU backend that returns the log-probabilities recorded for each chunk."""

    name = "replay"
    precision = "float32"
    on_cuda = False
    needs_calibration = False

    def __init__(self, table: dict[tuple[int, bytes, bytes], np.ndarray], threads: int) -> None:
        self.table, self.threads = table, threads

    def calibrate(self, inputs: object) -> None:
        pass

    def start(self, batch: np.ndarray, lengths: list[int]) -> Any:
        from w2v2cli.inference.runner import Done

        return Done(self.log_probs(batch, lengths))

    def log_probs(self, batch: np.ndarray, lengths: list[int]) -> np.ndarray:
        outs = [self.table[key(batch[i], n)] for i, n in enumerate(lengths)]
        frames = max(o.shape[0] for o in outs)
        out = np.zeros((len(outs), frames, outs[0].shape[1]), np.float32)
        for i, o in enumerate(outs):
            out[i, : o.shape[0]] = o
        return out

    def close(self) -> None:
        pass


class RecordingBackend:
    """Wraps the real backend; keeps what it computes for each chunk."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.table = inner, {}
        for attr in ("name", "precision", "on_cuda", "threads", "needs_calibration"):
            setattr(self, attr, getattr(inner, attr))

    def calibrate(self, inputs: object) -> None:
        self.inner.calibrate(inputs)

    def start(self, batch: np.ndarray, lengths: list[int]) -> Any:
        from w2v2cli.inference.runner import Done

        return Done(self.log_probs(batch, lengths))

    def log_probs(self, batch: np.ndarray, lengths: list[int]) -> np.ndarray:
        out = self.inner.log_probs(batch, lengths)
        for i, n in enumerate(lengths):
            self.table[key(batch[i], n)] = out[i].copy()
        return out

    def close(self) -> None:
        self.inner.close()


def patch_engine(make_backend: Any) -> None:
    """Make every engine open ``make_backend(loaded, real_open)`` instead of its backend."""
    import w2v2cli.inference.engine as engine

    real_open = engine.open_backend

    def open_backend(options: Any, *, exact: bool = True, notify: Any = None) -> Any:
        return make_backend(options, real_open, exact, notify)

    engine.open_backend = open_backend


def record(corpus: Path) -> None:
    """Run the real model over the corpus once and keep every chunk's log-probabilities."""
    recorders: list[RecordingBackend] = []

    def make(options: Any, real_open: Any, exact: bool, notify: Any) -> Any:
        loaded, backend = real_open(options, exact=exact, notify=notify)
        recorders.append(RecordingBackend(backend))
        return loaded, recorders[-1]

    patch_engine(make)
    from w2v2cli.cli import main

    with tempfile.TemporaryDirectory() as out:
        args = ["transcribe", str(corpus), "-m", str(MODEL), "--backend", "torch", "-o", out, "-q"]
        main(args, standalone_mode=False)
    table = {k: v for r in recorders for k, v in r.table.items()}
    REPLAY.write_bytes(pickle.dumps(table, protocol=5))
    print(f"recorded {len(table)} chunks into {REPLAY}", file=sys.stderr)


# -- one timed run (a child process) -------------------------------------------------------


def child(args: argparse.Namespace) -> None:
    cores = sorted(os.sched_getaffinity(0))[: args.child_cores]
    os.sched_setaffinity(0, cores)
    model = str(MODEL)
    if args.child_model:  # the real model runs (--model): the end-to-end comparison
        model = args.child_model
    else:
        table = pickle.loads(REPLAY.read_bytes())

        def make(options: Any, real_open: Any, exact: bool, notify: Any) -> Any:
            from w2v2cli.models import load_parts, model_ref

            loaded = load_parts(model_ref(options), options.language, notify)
            return loaded, ReplayBackend(table, len(cores))

        patch_engine(make)
    from w2v2cli.cli import main

    out = Path(args.child_out)
    argv = ["transcribe", args.corpus, "-m", model, "-o", str(out / "out"), "-q"]
    for fmt in args.child_format.split(","):
        argv += ["-f", fmt]
    argv += ["--manifest-out", str(out / "manifest.jsonl")]
    if args.child_decoder != "greedy":
        argv += ["--decoder", "beam"]
        if args.child_decoder == "beam+lm":
            argv += ["--lm", str(ensure_lm())]
    if args.child_workers not in (None, "default"):
        argv += ["--decode-workers", args.child_workers]
    if args.child_readers not in (None, "default"):
        argv += ["--read-workers", args.child_readers]
    # The run proper starts when the model is loaded and the inputs found: the time from
    # there is the steady rate, without the process's start-up (imports, model loading).
    import w2v2cli.cli  # noqa: F401 - loads the module below

    cli_transcribe = sys.modules["w2v2cli.cli.transcribe"]  # (w2v2cli.cli.transcribe is
    # the click command of that name)
    run_started: list[float] = []
    real_iter_run = cli_transcribe.iter_run

    def timed_iter_run(*a: Any, **k: Any) -> Any:
        run_started.append(time.perf_counter())
        return real_iter_run(*a, **k)

    cli_transcribe.iter_run = timed_iter_run
    profile = cProfile.Profile() if args.child_profile else None
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    if profile is not None:
        profile.enable()
    code = main(argv, standalone_mode=False)
    if profile is not None:
        profile.disable()
    ended = time.perf_counter()
    wall = ended - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    result = {
        "wall": wall,
        "run": ended - run_started[0],
        "cpu": after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime,
        "exit": code,
        "files": sum(1 for _ in (out / "manifest.jsonl").open()),
        "workers": chosen_workers(args.child_workers, args.child_decoder),
        "readers": chosen_readers(args.child_readers),
    }
    if profile is not None:
        text = io.StringIO()
        stats = pstats.Stats(profile, stream=text)
        stats.sort_stats("tottime").print_stats(25)
        result["profile"] = text.getvalue()
    Path(args.child_result).write_text(json.dumps(result))


def chosen_workers(setting: str | None, decoder: str) -> int:
    """The workers a run with ``setting`` starts (in the child, on its cores)."""
    from w2v2cli.pipeline.workers import default_workers

    if setting in (None, "default"):
        return default_workers("greedy" if decoder == "greedy" else "beam", False)
    return int(setting)


def chosen_readers(setting: str | None) -> int:
    """The audio reading processes a run starts with ``setting`` (the replay runs on the
    CPU)."""
    from w2v2cli.inference.readers import default_readers

    return default_readers(False) if setting in (None, "default") else int(setting)


def repeated_corpus(corpus: Path, seconds: float, times: int) -> tuple[Path, float]:
    """``times`` copies of the corpus (hard links in folders ``r0``, ``r1``...): a longer
    run, in which starting the workers weighs what it does in a long job."""
    if times <= 1:
        return corpus, seconds
    folder = DATA / f"corpus-x{times}"
    files = sorted(p for p in corpus.iterdir() if p.name.startswith("clip"))
    for k in range(times):
        (folder / f"r{k}").mkdir(parents=True, exist_ok=True)
        for f in files:
            target = folder / f"r{k}" / f.name
            if not target.exists():
                os.link(f, target)
    return folder, seconds * times


def run_one(
    args: argparse.Namespace,
    corpus: Path,
    cores: int,
    fmt: str,
    decoder: str,
    workers: str = "default",
    profile: bool = False,
    readers: str = "default",
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--child-cores",
            str(cores),
            "--child-format",
            fmt,
            "--child-decoder",
            decoder,
            "--child-out",
            tmp,
            "--child-result",
            str(result),
            "--corpus",
            str(corpus),
        ]
        if profile:
            cmd.append("--child-profile")
        cmd += ["--child-workers", workers, "--child-readers", readers]
        if args.model:
            cmd += ["--child-model", str(args.model)]
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
        wait_for_quiet(args.max_wait)
        subprocess.run(cmd, check=True, env=env)
        return json.loads(result.read_text())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--cores", default=None, help="comma-separated core counts (default: 1, 2, ..., all)"
    )
    p.add_argument("--formats", default=";".join(OUTPUTS), help="-f values, separated by ';'")
    p.add_argument("--decoders", default=",".join(DECODERS), help="greedy, beam, beam+lm")
    p.add_argument(
        "--decode-workers",
        default="default",
        help="--decode-workers values to compare, comma-separated ('default': not given)",
    )
    p.add_argument(
        "--read-workers",
        default="default",
        help="--read-workers values to compare, comma-separated ('default': not given)",
    )
    p.add_argument("--rounds", type=int, default=3, help="runs of each setting (best kept)")
    p.add_argument(
        "--repeat", type=int, default=1, help="transcribe N copies of the corpus (a longer run)"
    )
    p.add_argument(
        "--model",
        type=Path,
        default=None,
        help="run this model for real instead of the replay (end to end, e.g. the default "
        "--decode-workers against 0 with a base-sized model on the CPU)",
    )
    p.add_argument("--profile", action="store_true", help="also profile one greedy run, 1 core")
    p.add_argument("--max-wait", type=float, default=60.0, help="seconds to wait for quiet")
    p.add_argument("--write", action="store_true", help="put the report into RESULTS.md")
    p.add_argument("--section", default="host: the CLI path with the model replayed")
    for name in (
        "child-cores",
        "child-format",
        "child-decoder",
        "child-out",
        "child-result",
        "child-workers",
        "child-readers",
        "child-model",
    ):
        p.add_argument(f"--{name}", help=argparse.SUPPRESS)
    p.add_argument("--child-profile", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--corpus", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child_cores:
        args.child_cores = int(args.child_cores)
        child(args)
        return 0
    corpus, seconds = ensure_corpus()
    if args.model is None and not REPLAY.is_file():
        record(corpus)
    corpus, seconds = repeated_corpus(corpus, seconds, args.repeat)
    ensure_lm()
    available = len(os.sched_getaffinity(0))
    cores = [int(c) for c in args.cores.split(",")] if args.cores else list(range(1, available + 1))
    formats = args.formats.split(";")
    decoders = args.decoders.split(",")
    rows = []
    settings = [
        (w, r) for w in args.decode_workers.split(",") for r in args.read_workers.split(",")
    ]
    configs = [(c, f, "greedy") for c in cores for f in formats]
    configs += [(c, "json,srt", d) for c in cores for d in decoders if d != "greedy"]
    for c, fmt, decoder in configs:
        # Each setting once per round, interleaved, so that drift hits them alike; the best
        # of the rounds is kept.
        best: dict[tuple[str, str], dict[str, Any]] = {}
        for _ in range(args.rounds):
            for w, rd in settings:
                r = run_one(args, corpus, c, fmt, decoder, w, readers=rd)
                if (w, rd) not in best or r["run"] < best[w, rd]["run"]:
                    best[w, rd] = r
        for w, rd in settings:
            r = best[w, rd]
            rate = seconds / r["wall"]
            shown = f"default ({r['workers']})" if w == "default" else w
            shown_rd = f"default ({r['readers']})" if rd == "default" else rd
            steady = seconds / r["run"]
            line = (
                f"| {c} | `{fmt}` | {decoder} | {shown} | {shown_rd} | {r['wall']:.2f} | "
                f"{rate:.0f} | "
                f"{r['run']:.2f} | **{steady:.0f}** | {steady / c:.0f} | {r['cpu']:.1f} | "
                f"{r['files']} |"
            )
            print(line, flush=True)
            rows.append(line)
    profile_text = ""
    if args.profile:
        r = run_one(args, corpus, 1, "json,srt", "greedy", "0", profile=True)
        profile_text = r["profile"]
    command = "python benchmarks/bench_host.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    body = "\n".join(
        [
            *machine_info([]),
            f"- date: {datetime.date.today().isoformat()}; command: `{command.strip()}`",
            f"- w2v2cli: {code_version()}",
            f"- corpus: {len(list(corpus.rglob('clip*')))} files, {seconds / 60:.1f} min: MP3 "
            "44.1 kHz, Ogg Vorbis 22.05 kHz, FLAC 48 kHz, WAV 16 kHz, a quarter each; 20 s "
            "chunks, 3 s strides",
            (
                f"- model: {args.model}, run for real (default backend and batch size)"
                if args.model
                else "- model: replayed (the log-probabilities of tests/assets/espeak-tiny-en, "
                "recorded once); everything else is the real `w2v2 transcribe`, with "
                "--manifest-out"
            ),
            "- columns: command s: the whole `w2v2 transcribe` (imports, model loading, "
            "discovery, the "
            "run); run: from the model loaded and the inputs found to the last output "
            "written (the steady rate, what a long run sees); x RT: audio seconds per wall "
            f"second; the best of {args.rounds} interleaved rounds; per core: run x RT / "
            "cores; main CPU s: the command's own process (its workers' and readers' time not "
            "counted)",
            "",
            "| cores | -f | decoder | --decode-workers | --read-workers | command s | x RT | "
            "run s | run x RT | per core | main CPU s | files |",
            "| ---: | --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
            *rows,
            "",
        ]
    )
    if profile_text:
        body += "\nProfile of one greedy `json,srt` run on 1 core (cProfile, by own time):\n\n```\n"
        body += "\n".join(profile_text.strip().splitlines()[:40]) + "\n```\n"
    emit(body, args.write, args.section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

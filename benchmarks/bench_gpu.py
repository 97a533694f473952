"""The CUDA path, measured: model-only and end-to-end throughput, the pipeline beside it.

Run by hand on a machine with a GPU (nothing here runs in the test suite)::

    python benchmarks/bench_gpu.py --write                     # ~3 min on an H100/H200
    python benchmarks/bench_gpu.py --audio DIR --repeat 8      # any folder of audio

What it measures, all in one process on ``cuda``:

1. **Model only**: ``TorchBackend.log_probs`` on batches of 20 s chunks cut from the audio
   (exact batching, as the tool runs), at float16 for several batch sizes and at float32;
   audio seconds per wall second, the GPU synchronised around each timed loop. Also the
   time of the log-probabilities' copy back to the host, alone.
2. **End to end**: ``Transcriber.run`` over the audio set repeated ``--repeat`` times
   (files decoded, chunked, run, decoded greedily, written as JSON and SRT), at several
   batch sizes; ``-sync`` configurations wait for every batch before preparing the next
   (what the engine did before batches were started asynchronously), for an A/B of the
   overlap. GPU busy share = model-only time for the same audio / end-to-end wall time.
3. **The transformers pipeline** (``pipeline("automatic-speech-recognition")``) on the
   same GPU, float16, same chunking, at batch 1, 8 and 32: the peer's best is the reference.
4. **Text**: ours at float32 against the pipeline at float32 (batch 1), and ours at float16
   against ours at float32 (share of files whose text changes, and the CER between them).
5. **Host syncs**: one run with ``torch.cuda.set_sync_debug_mode("warn")``; every place
   where the host waits for the GPU inside a batch is listed (there should be none but the
   result's event).

The model is ``bench_transcribe.ensure_model`` (random weights in the shape of
``facebook/wav2vec2-base-960h``, head calibrated to look like CTC); the audio is
``bench_transcribe``'s quick set unless ``--audio`` is given.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import shutil
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench_transcribe as bt  # noqa: E402

SR = 16000
DEVICE = "cuda"  # --device cpu: a dry run of this script on a machine without a GPU


def cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def header(args: argparse.Namespace, audio_s: float, files: int) -> list[str]:
    import torch
    import transformers

    gpu = "none (a dry run on the CPU)"
    if DEVICE != "cpu":
        props = torch.cuda.get_device_properties(0)
        gpu = (
            f"{props.name}, {props.total_memory / 2**30:.0f} GiB, "
            f"{props.multi_processor_count} SMs; CUDA {torch.version.cuda}"
        )
    return [
        f"- GPU: {gpu}",
        f"- host: {cpu_name()}, {os.cpu_count()} cores; Python {platform.python_version()}, "
        f"torch {torch.__version__}, transformers {transformers.__version__}",
        f"- model: random weights, wav2vec2-base shape (94.4M parameters); chunks "
        f"{args.chunk_length:g} s, stride {args.stride:g} s each side",
        f"- audio: {files} files x {args.repeat} = {audio_s / 60:.1f} min "
        f"(espeak-ng speech, 1-60 s per file)",
        f"- command: `python benchmarks/bench_gpu.py {' '.join(sys.argv[1:])}`",
    ]


def chunks_of(paths: Sequence[Path], args: argparse.Namespace, runner: Any) -> list[np.ndarray]:
    """Full-length chunks (``chunk_length`` s) cut from the audio, as model inputs."""
    from w2v2cli.audio import load_audio

    n = int(args.chunk_length * SR)
    out = []
    for p in paths:
        a = load_audio(p, SR)
        for s in range(0, a.size - n + 1, n):
            out.append(runner.features(a[s : s + n])[0])
    if not out:
        raise SystemExit(f"no file is {args.chunk_length:g} s long")
    want = 2 * max(args.batches)  # the chunks again, until two of the largest batches fill
    return (out * (want // len(out) + 1))[: max(want, len(out))]


def sync() -> None:
    import torch

    if DEVICE != "cpu":
        torch.cuda.synchronize()


def model_only(backend: Any, feats: list[np.ndarray], batch: int, seconds: float) -> float:
    """Audio seconds per second of ``backend.log_probs`` on batches of ``feats``."""

    batches = [np.stack(feats[i : i + batch]) for i in range(0, len(feats) - batch + 1, batch)]
    lengths = [feats[0].shape[0]] * batch
    for b in batches[:2]:
        backend.log_probs(b, lengths)  # warm-up (cuDNN picks its kernels)
    sync()
    done, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for b in batches:
            backend.log_probs(b, lengths)
            done += b.shape[0]
    sync()
    return done * feats[0].shape[0] / SR / (time.perf_counter() - t0)


def copy_back_ms(backend: Any, feats: list[np.ndarray], batch: int) -> tuple[float, float]:
    """(GPU ms of one batch, ms of copying its log-probabilities to the host alone)."""
    import torch

    x = torch.from_numpy(np.stack(feats[:batch])).cuda().to(backend._dtype)
    with torch.inference_mode():
        for _ in range(3):
            lp = torch.log_softmax(backend.model(x).logits.float(), -1)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(10):
            lp = torch.log_softmax(backend.model(x).logits.float(), -1)
        torch.cuda.synchronize()
        gpu = (time.perf_counter() - t0) / 10 * 1e3
        out = torch.empty(lp.shape, dtype=torch.float32, pin_memory=True)
        t0 = time.perf_counter()
        for _ in range(10):
            out.copy_(lp)
        torch.cuda.synchronize()
        copy = (time.perf_counter() - t0) / 10 * 1e3
    return gpu, copy


def end_to_end(
    model: Path,
    paths: list[Path],
    args: argparse.Namespace,
    batch: int,
    dtype: str = "float16",
    sync: bool = False,
    profile: bool = False,
    workers: int | None = None,
) -> tuple[float, list[str], str]:
    """Wall seconds of a whole run (JSON + SRT written), its texts, and a profile.
    ``workers``: ``--decode-workers`` and ``--read-workers`` (None: the defaults, file
    workers and audio readers on CUDA; 0: everything in one process)."""
    from w2v2cli import Transcriber, discover, run
    from w2v2cli.options import (
        ChunkOptions,
        DecodeOptions,
        ModelOptions,
        OutputOptions,
        RunOptions,
    )

    out = Path(tempfile.mkdtemp(prefix="w2v2-gpu-"))
    options = RunOptions(
        model=ModelOptions(model=str(model), device=DEVICE, dtype=dtype, backend="torch"),
        chunking=ChunkOptions(args.chunk_length, args.stride, args.stride),
        decoding=DecodeOptions(decoder="greedy", workers=workers),
        output=OutputOptions(output_dir=out, formats=("json", "srt")),
        batch_size=batch,
        read_workers=workers,
    )
    t = Transcriber(options)
    t.transcribe_files(paths[: len(paths) // args.repeat])  # warm-up: every chunk shape
    if sync:  # wait for each batch before the next is prepared (the engine before)
        submit = t.engine.runner.submit

        def waiting(chunks: Any, features: Any = None, _submit: Callable = submit) -> Any:
            from w2v2cli.inference.runner import Started

            outputs = _submit(chunks, features)()
            return Started(lambda: outputs, True)

        t.engine.runner.submit = waiting
    items = discover([str(p) for p in paths], output_dir=out).items
    prof = None
    if profile:
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
    t0 = time.perf_counter()
    summary = run(items, transcriber=t)
    wall = time.perf_counter() - t0
    text = ""
    if prof is not None:
        import pstats

        prof.disable()
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(25)
        text = buf.getvalue()
    failed = [r for r in summary.results if r.status != "done"]
    if failed:
        raise SystemExit(f"{len(failed)} files failed: {failed[0].error}")
    texts = [t.transcribe_file(p).text for p in paths[: args.text_files]]
    t.close()
    shutil.rmtree(out, ignore_errors=True)
    return wall, texts, text


def pipeline_run(
    model: Path, paths: list[Path], args: argparse.Namespace, batch: int, dtype: str = "float16"
) -> tuple[float, list[str]]:
    import torch
    from transformers import pipeline
    from transformers.utils import logging as hf_logging

    from w2v2cli.audio import load_audio

    hf_logging.set_verbosity_error()
    asr = pipeline(
        "automatic-speech-recognition", model=str(model), device=DEVICE, dtype=getattr(torch, dtype)
    )
    call = {
        "chunk_length_s": args.chunk_length,
        "stride_length_s": args.stride,
        "batch_size": batch,
    }
    asr(np.zeros(2 * SR, np.float32), **call)

    def arrays() -> Any:
        for p in paths:
            yield load_audio(p, SR)

    t0 = time.perf_counter()
    texts = [bt.normalise_pipeline_text(o["text"]) for o in asr(arrays(), **call)]
    wall = time.perf_counter() - t0
    return wall, texts[: args.text_files]


def sync_points(model: Path, paths: list[Path], args: argparse.Namespace) -> list[str]:
    """Where the host waits for the GPU during a run, other than the results' events."""
    import torch

    from w2v2cli import Transcriber
    from w2v2cli.options import ChunkOptions, ModelOptions, RunOptions

    t = Transcriber(
        RunOptions(
            model=ModelOptions(model=str(model), device=DEVICE, backend="torch"),
            chunking=ChunkOptions(args.chunk_length, args.stride, args.stride),
            batch_size=8,
        )
    )
    t.transcribe_array(np.zeros(2 * SR, np.float32))
    import traceback

    seen: Counter[str] = Counter()
    real = warnings.showwarning

    def show(message: Any, category: Any, filename: str, lineno: int, *a: Any) -> None:
        stack = [
            f
            for f in traceback.extract_stack()[:-2]
            if "w2v2cli" in f.filename or "transformers" in f.filename
        ]
        where = " <- ".join(f"{Path(f.filename).name}:{f.lineno}" for f in stack[-3:][::-1])
        seen[f"{str(message)[:60]} at {where}"] += 1

    warnings.showwarning = show
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = show
            t.transcribe_files(paths[:4])
    finally:
        torch.cuda.set_sync_debug_mode(0)
        warnings.showwarning = real
    t.close()
    return [f"{n} x {k}" for k, n in seen.most_common(12)]


def cer(a: str, b: str) -> float:
    import jiwer

    return float(jiwer.cer(a, b)) if a else float(bool(b))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--audio", type=Path, help="a folder of audio (default: the quick set)")
    parser.add_argument("--repeat", type=int, default=6, help="the audio set this many times")
    parser.add_argument("--chunk-length", type=float, default=20.0)
    parser.add_argument("--stride", type=float, default=3.0)
    parser.add_argument("--batches", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--seconds", type=float, default=4.0, help="per model-only figure")
    parser.add_argument("--text-files", type=int, default=12)
    parser.add_argument("--skip-pipeline", action="store_true")
    parser.add_argument("--profile", action="store_true", help="cProfile one end-to-end run")
    parser.add_argument("--model", type=Path, help="a model folder (default: base-shaped)")
    parser.add_argument("--device", default="cuda", help="cpu: a dry run of the script")
    parser.add_argument("--write", action="store_true", help="into benchmarks/RESULTS.md")
    parser.add_argument("--section", default="GPU: model only, end to end, pipeline")
    args = parser.parse_args(argv)

    import torch

    global DEVICE
    DEVICE = args.device
    if DEVICE == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench_gpu needs a CUDA GPU (--device cpu for a dry run)")
    model = args.model or bt.ensure_model(0)
    if args.audio:
        base = sorted(p for p in args.audio.iterdir() if p.suffix in {".wav", ".flac", ".mp3"})
    else:
        base = bt.ensure_audio(bt.QUICK)
    # The set repeated: copies under other names (input discovery would take links to
    # one file as that file once).
    tmp = Path(tempfile.mkdtemp(prefix="w2v2-gpu-audio-"))
    paths = []
    for r in range(args.repeat):
        for p in base:
            copy = tmp / f"r{r}_{p.name}"
            shutil.copyfile(p, copy)
            paths.append(copy)
    from w2v2cli.audio import audio_duration

    audio_s = sum(audio_duration(p) or 0.0 for p in paths)
    lines = header(args, audio_s, len(base))
    print("\n".join(lines), flush=True)

    from w2v2cli import Transcriber
    from w2v2cli.options import ModelOptions, RunOptions

    rows: list[str] = []
    model_rate: dict[int, float] = {}
    copy_line = ""
    for dtype in ("float16", "float32"):
        t = Transcriber(
            RunOptions(
                model=ModelOptions(model=str(model), device=DEVICE, dtype=dtype, backend="torch")
            )
        )
        feats = chunks_of(base, args, t.engine.runner)
        backend = t.engine.runner.backend
        for b in args.batches if dtype == "float16" else [args.batches[0]]:
            rate = model_only(backend, feats, b, args.seconds)
            if dtype == "float16":
                model_rate[b] = rate
            rows.append(f"| model only | {dtype} | {b} | {rate:,.0f} | | |")
            print(rows[-1], flush=True)
        if dtype == "float16" and DEVICE != "cpu":
            gpu_ms, copy_ms = copy_back_ms(backend, feats, args.batches[0])
            copy_line = (
                f"- one batch of {args.batches[0]} x {args.chunk_length:g} s at "
                f"float16: {gpu_ms:.1f} ms on the GPU; copying its log-probabilities "
                f"to pinned host memory alone: {copy_ms:.2f} ms"
            )
            print(copy_line, flush=True)
        t.close()
        del t, backend
        torch.cuda.empty_cache()

    texts: dict[str, list[str]] = {}
    walls: dict[str, float] = {}
    profile = ""
    # (batch, dtype, sync, workers): the defaults against one process at each size.
    configs: list[tuple[int, str, bool, int | None]] = [
        (b, "float16", False, w) for b in args.batches for w in (None, 0)
    ]
    configs += [(args.batches[0], "float16", True, None), (1, "float32", False, None)]
    for b, dtype, sync, workers in configs:
        name = f"ours-b{b}{'-sync' if sync else ''}{'-fp32' if dtype == 'float32' else ''}"
        name += "-w0" if workers == 0 else ""
        want_profile = bool(
            args.profile
            and b == args.batches[-1]
            and not sync
            and dtype == "float16"
            and workers is None
        )
        wall, tx, prof = end_to_end(model, paths, args, b, dtype, sync, want_profile, workers)
        profile = profile or prof
        walls[name], texts[name] = wall, tx
        busy = audio_s / model_rate[b] / wall if b in model_rate else float("nan")
        how = (
            " (sync)" if sync else (" (one process: 0 workers, 0 readers)" if workers == 0 else "")
        )
        rows.append(
            f"| w2v2 transcribe | {dtype} | {b}{how} | {audio_s / wall:,.0f} | {wall:.1f} | "
            f"{busy:.0%} |"
        )
        print(rows[-1], flush=True)
    if not args.skip_pipeline:
        for b, dtype in ((1, "float16"), (8, "float16"), (32, "float16"), (1, "float32")):
            wall, tx = pipeline_run(model, paths, args, b, dtype)
            name = f"pipe-b{b}{'-fp32' if dtype == 'float32' else ''}"
            walls[name], texts[name] = wall, tx
            rows.append(
                f"| transformers pipeline | {dtype} | {b} | {audio_s / wall:,.0f} | {wall:.1f} | |"
            )
            print(rows[-1], flush=True)
            torch.cuda.empty_cache()

    checks = []
    fp16 = texts[f"ours-b{args.batches[0]}"]
    fp32 = texts["ours-b1-fp32"]
    changed = sum(a != b for a, b in zip(fp16, fp32, strict=True))
    mean_cer = float(np.mean([cer(b, a) for a, b in zip(fp16, fp32, strict=True)]))
    checks.append(
        f"- float16 vs float32 (ours): {changed}/{len(fp32)} files' text differ, "
        f"mean CER between them {mean_cer:.2%} (random weights: near ties)"
    )
    if "pipe-b1-fp32" in texts:
        same = sum(a == b for a, b in zip(fp32, texts["pipe-b1-fp32"], strict=True))
        checks.append(
            f"- ours float32 batch 1 vs the pipeline float32 batch 1 on this GPU: "
            f"{same}/{len(fp32)} texts identical"
        )
        pipes = {k: v for k, v in walls.items() if k.startswith("pipe") and "fp32" not in k}
        best = min(pipes, key=pipes.get)
        ours = {
            k: v
            for k, v in walls.items()
            if k.startswith("ours") and "fp32" not in k and "sync" not in k
        }
        top = min(ours, key=ours.get)
        checks.append(
            f"- best: {top} {audio_s / ours[top]:,.0f}x real time vs the pipeline's "
            f"best ({best}) {audio_s / pipes[best]:,.0f}x: "
            f"**{pipes[best] / ours[top]:.2f}x**"
        )
    sync_name = f"ours-b{args.batches[0]}-sync"
    checks.append(
        f"- batches started asynchronously vs waited for (batch {args.batches[0]}): "
        f"{walls[sync_name] / walls[f'ours-b{args.batches[0]}']:.2f}x"
    )
    syncs = sync_points(model, base, args) if DEVICE != "cpu" else []
    checks.append(
        "- host waits for the GPU inside a run (`set_sync_debug_mode`): "
        + ("; ".join(syncs) if syncs else "none")
    )
    table = [
        "| what | dtype | batch | audio s per s | wall s | GPU busy |",
        "| --- | --- | --- | --- | --- | --- |",
        *rows,
    ]
    body = "\n".join(lines + ["", *table, "", copy_line, *checks])
    print("\n" + body)
    if profile:
        print("\n" + profile)
    if args.write:
        bt.write_section(HERE / "RESULTS.md", args.section, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

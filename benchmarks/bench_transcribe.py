"""Benchmark w2v2cli against the transformers ASR pipeline on CPU (run by hand).

What it does
------------
1. Builds once, under ``benchmarks/_data/`` (git-ignored), a model folder with the shape of
   ``facebook/wav2vec2-base-960h`` (``Wav2Vec2Config`` defaults: 768 hidden, 12 layers,
   group-norm feature encoder, 32-token CTC vocabulary, ~94.4M parameters) with seeded
   random weights. Nothing is downloaded. As in ``tests/conftest.py`` the CTC head is
   scaled up and its blank and ``|`` biases are nudged, here *calibrated* on a fixed
   espeak-ng clip so that about 40% of frames are blank and 25% word delimiters: the
   output looks like CTC (short words separated by blanks), so any numerical difference
   between two runs shows up in the text.
2. Generates once a deterministic set of mixed-length 16 kHz WAV files from espeak-ng
   speech (Harvard sentences, several voices, speeds and pitches, a little noise):
   ~21 minutes in 66 files of 1-60 s (18 of them longer than one 20 s chunk), or ~3.5
   minutes in 11 files with ``--quick``.
3. Runs each configuration in its own subprocess (so that peak RSS, read from
   ``getrusage(RUSAGE_SELF).ru_maxrss`` at the end, belongs to that configuration only):

   ``ours-bauto``     ``Transcriber(...).transcribe_files(paths)`` with the tool's defaults
                      (on CPU: one chunk at a time)
   ``ours-b8``        the same at batch 8, exact batching,
                      default padding policy (on CPU only equal-length chunks share a batch)
   ``ours-pad-b8``    the same with ``max_padding=1`` (batches of 8 whatever the padding)
   ``ours-plain-b8``  ``max_padding=1`` and ``exact=False`` (plain padding, no attention mask)
   ``pipe-b8``        ``pipeline("automatic-speech-recognition")``, batch 8
   ``ours-b1``        ``ours`` at batch 1
   ``pipe-b1``        the pipeline at batch 1

   All use float32 on CPU and the same chunking (``--chunk-length`` 20 s, ``--stride`` 3 s
   on each side). Model loading and one short warm-up call are outside the timed part for
   both tools alike (load time is reported separately). The timed part includes reading
   the WAV files: ``transcribe_files`` decodes them itself (in a background thread); the
   pipeline gets a generator that decodes each file with the same ``w2v2cli.audio.
   load_audio`` (soundfile; the pipeline's own path reading needs an ``ffmpeg`` binary,
   which is not installed here) and yields the float32 array.
4. Prints one markdown table (wall s, x real time, RSS) plus text checks: ours vs the
   pipeline at batch 1 (the pipeline's special tokens ``<s> </s> <unk> <pad>`` removed and
   whitespace collapsed), the share of files whose text changes from batch 1 to batch 8
   for each tool, and the speed cost of the exact path. ``--write`` puts the same report
   into ``benchmarks/RESULTS.md`` (replacing the section of the same name).

Usage
-----
::

    python benchmarks/bench_transcribe.py --quick                 # ~3.5 min of audio
    python benchmarks/bench_transcribe.py --write                 # full suite, to RESULTS.md
    python benchmarks/bench_transcribe.py --configs ours-b8 pipe-b8
    python benchmarks/bench_transcribe.py --only ours-b8 --profile   # cProfile one config

Torch threads are left at torch's default (the number of cores) unless ``--threads`` is
given; the value used is reported. The full suite takes about 10-15 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import hashlib
import io
import json
import os
import platform
import re
import resource
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = HERE / "_data"
RESULTS = HERE / "RESULTS.md"
SR = 16000
NCPU = len(os.sched_getaffinity(0))

VOCAB = ["<pad>", "<s>", "</s>", "<unk>", "|", *"ETAONIHSRDLUMWCFGYPBVK'XJQZ"]
#: Configurations of w2v2cli: (backend, dtype, int8 method). ``ov8`` lets w2v2cli choose the
#: int8 method for this CPU; ``ov8w`` is weight-only, ``ov8f`` full quantization calibrated
#: on the first files of the set (before the timed part).
BACKENDS = {
    "ours": ("torch", "float32", "auto"),
    "ov": ("openvino", "float32", "auto"),
    "ov8": ("openvino", "int8", "auto"),
    "ov8w": ("openvino", "int8", "weights"),
    "ov8f": ("openvino", "int8", "full"),
    "ovbf16": ("openvino", "bfloat16", "auto"),
}
CONFIGS = ("ours-bauto", "ours-b8", "ours-pad-b8", "ours-plain-b8", "pipe-b8", "ours-b1", "pipe-b1")
SPECIALS = re.compile(r"<s>|</s>|<unk>|<pad>")

# Harvard sentences (IEEE 1969, lists 1-5), public domain.
SENTENCES = [
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It's easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "The hogs were fed chopped corn and garbage.",
    "Four hours of steady work faced us.",
    "A large size in stockings is hard to sell.",
    "The boy was there when the sun rose.",
    "A rod is used to catch pink salmon.",
    "The source of the huge river is the clear spring.",
    "Kick the ball straight and follow through.",
    "Help the woman get back to her feet.",
    "A pot of tea helps to pass the evening.",
    "Smoky fires lack flame and heat.",
    "The soft cushion broke the man's fall.",
    "The salt breeze came across from the sea.",
    "The girl at the booth sold fifty bonds.",
    "The small pup gnawed a hole in the sock.",
    "The fish twisted and turned on the bent hook.",
    "Press the pants and sew a button on the vest.",
    "The swan dive was far short of perfect.",
    "The beauty of the view stunned the young boy.",
    "Two blue fish swam in the tank.",
    "Her purse was full of useless trash.",
    "The colt reared and threw the tall rider.",
    "It snowed, rained, and hailed the same morning.",
    "Read verse out loud for pleasure.",
    "Hoist the load to your left shoulder.",
    "Take the winding path to reach the lake.",
    "Note closely the size of the gas tank.",
    "Wipe the grease off his dirty face.",
    "Mend the coat before you go out.",
    "The wrist was badly strained and hung limp.",
    "The stray cat gave birth to kittens.",
    "The young girl gave no clear response.",
    "The meal was cooked before the bell rang.",
    "What joy there is in living.",
    "A king ruled the state in the early days.",
    "The ship was torn apart on the sharp reef.",
    "Sickness kept him home the third week.",
    "The wide road shimmered in the hot sun.",
    "The lazy cow lay in the cool grass.",
    "Lift the square stone over the fence.",
    "The rope will bind the seven books at once.",
    "Hop over the fence and plunge in.",
    "The friendly gang left the drug store.",
    "Mesh wire keeps chicks inside.",
]
VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-029")


# -- data: the audio set ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class AudioSpec:
    """A deterministic audio set: ``short`` files of 1-20 s and ``long`` files of 22-60 s."""

    name: str
    short: int
    long: int
    seed: int = 0

    def lengths(self) -> list[float]:
        """Evenly spread lengths (not random draws, so the total is fixed), then shuffled."""
        short = np.linspace(1.0, 20.0, self.short) if self.short else np.zeros(0)
        long = np.linspace(22.0, 60.0, self.long) if self.long else np.zeros(0)
        lengths = np.concatenate([short, long])
        np.random.default_rng(self.seed).shuffle(lengths)
        return [round(float(x), 2) for x in lengths]


FULL = AudioSpec("full", short=48, long=18)
QUICK = AudioSpec("quick", short=8, long=3)


def espeak(text: str, voice: str, speed: int, pitch: int) -> np.ndarray:
    """Synthesize ``text`` with espeak-ng and return float32 samples at 16 kHz."""
    import soundfile as sf
    import soxr

    wav = subprocess.run(
        ["espeak-ng", "--stdout", "-v", voice, "-s", str(speed), "-p", str(pitch), text],
        check=True,
        capture_output=True,
    ).stdout
    audio, rate = sf.read(io.BytesIO(wav), dtype="float32")
    if audio.ndim > 1:
        audio = audio.mean(axis=1)
    return soxr.resample(audio, rate, SR).astype(np.float32)


def speech_clip(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """One "speaker" (voice, speed, pitch) reading random sentences for ``seconds``."""
    voice = VOICES[int(rng.integers(len(VOICES)))]
    speed = int(rng.integers(140, 190))
    pitch = int(rng.integers(30, 70))
    target = int(round(seconds * SR))
    parts = [np.zeros(int(rng.uniform(0.1, 0.4) * SR), np.float32)]
    total = parts[0].size
    while total < target:
        sentence = SENTENCES[int(rng.integers(len(SENTENCES)))]
        speech = espeak(sentence, voice, speed, pitch)
        gap = np.zeros(int(rng.uniform(0.15, 0.6) * SR), np.float32)
        parts += [speech, gap]
        total += speech.size + gap.size
    audio = np.concatenate(parts)[:target]
    fade = min(320, audio.size)
    audio[audio.size - fade :] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    audio = audio * np.float32(0.7 / max(1e-6, float(np.abs(audio).max())))
    audio += np.float32(0.003) * rng.standard_normal(audio.size).astype(np.float32)
    return np.clip(audio, -1.0, 1.0).astype(np.float32)


def ensure_audio(spec: AudioSpec) -> list[Path]:
    """Generate the WAV files of ``spec`` unless a matching cached set exists."""
    import soundfile as sf

    folder = DATA / f"audio-{spec.name}"
    manifest = folder / "manifest.json"
    lengths = spec.lengths()
    want = {"spec": dataclasses.asdict(spec), "lengths": lengths}
    paths = [folder / f"clip{i:03d}_{secs:05.1f}s.wav" for i, secs in enumerate(lengths)]
    if manifest.is_file() and json.loads(manifest.read_text()) == want:
        if all(p.is_file() for p in paths):
            return paths
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.wav"):
        old.unlink()
    started = time.perf_counter()
    for i, (path, secs) in enumerate(zip(paths, lengths, strict=True)):
        rng = np.random.default_rng([spec.seed, i])
        sf.write(path, speech_clip(secs, rng), SR, subtype="PCM_16")
    manifest.write_text(json.dumps(want, indent=1))
    print(
        f"generated {len(paths)} files, {sum(lengths) / 60:.1f} min of audio in {folder} "
        f"({time.perf_counter() - started:.1f} s)",
        file=sys.stderr,
    )
    return paths


# -- data: the model ---------------------------------------------------------------------


def calibrate_biases(logits: np.ndarray, blank: float = 0.40, delim: float = 0.25) -> tuple:
    """Blank and ``|`` bias offsets that make them ~``blank`` and ~``delim`` of frames."""
    b = d = 0.0
    for _ in range(400):
        shifted = logits.copy()
        shifted[:, 0] += b
        shifted[:, VOCAB.index("|")] += d
        best = shifted.argmax(-1)
        b += 0.5 * (blank - float(np.mean(best == 0)))
        d += 0.5 * (delim - float(np.mean(best == VOCAB.index("|"))))
    return round(b, 3), round(d, 3)


def ensure_model(seed: int = 0) -> Path:
    """Build (once) a random wav2vec2-base-shaped CTC model folder; return its path."""
    folder = DATA / f"model-base-seed{seed}"
    marker = folder / "bench.json"
    if marker.is_file():
        return folder
    import torch
    from transformers import (
        Wav2Vec2Config,
        Wav2Vec2CTCTokenizer,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2ForCTC,
    )

    started = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    config = Wav2Vec2Config(
        vocab_size=len(VOCAB),
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        ctc_loss_reduction="sum",
        feat_extract_norm="group",
        do_stable_layer_norm=False,
    )
    model = Wav2Vec2ForCTC(config).eval()
    fe = Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=SR,
        padding_value=0.0,
        do_normalize=True,
        return_attention_mask=False,
    )
    # Calibrate the head on a fixed clip, exactly as a run will see it (normalised).
    clip = speech_clip(20.0, np.random.default_rng([seed, 999]))
    with torch.inference_mode():
        model.lm_head.weight.mul_(8.0)
        feats = fe(clip, sampling_rate=SR, return_tensors="pt")["input_values"]
        logits = model(feats).logits[0].numpy()
        blank_bias, delim_bias = calibrate_biases(logits)
        model.lm_head.bias[0] += blank_bias
        model.lm_head.bias[VOCAB.index("|")] += delim_bias
    model.save_pretrained(folder)
    fe.save_pretrained(folder)
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(VOCAB)}))
    tok = Wav2Vec2CTCTokenizer(
        str(folder / "vocab.json"),
        unk_token="<unk>",
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        word_delimiter_token="|",
        do_lower_case=False,
    )
    tok.save_pretrained(folder)
    params = sum(p.numel() for p in model.parameters())
    info = {
        "seed": seed,
        "parameters": params,
        "blank_bias": blank_bias,
        "delimiter_bias": delim_bias,
    }
    marker.write_text(json.dumps(info, indent=1))
    print(
        f"built model {folder} ({params / 1e6:.1f}M parameters, biases {blank_bias}, "
        f"{delim_bias}) in {time.perf_counter() - started:.1f} s",
        file=sys.stderr,
    )
    return folder


# -- one configuration, in a child process ---------------------------------------------


def rss_mb() -> float:
    """Current resident set size in MB (from /proc, Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def busy_cpu_seconds() -> float:
    """Seconds all CPUs of the machine spent busy since boot (``/proc/stat``, Linux)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """User + system CPU seconds of this process, all threads."""
    t = os.times()
    return t.user + t.system


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MB (``ru_maxrss`` is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def normalise_pipeline_text(text: str) -> str:
    """The pipeline keeps special tokens for plain CTC and may double spaces; undo both."""
    return " ".join(SPECIALS.sub("", text).split())


def chunk_seconds(paths: Sequence[Path], args: argparse.Namespace, config: Any) -> float:
    """Seconds of audio in all chunks of all files (strides counted twice, no padding)."""
    import soundfile as sf

    from w2v2cli import chunking
    from w2v2cli.options import ChunkOptions

    spf = int(np.prod(config.conv_stride))
    plan = chunking.plan(ChunkOptions(args.chunk_length, *args.stride), SR, spf)
    total = 0
    for p in paths:
        samples = np.zeros(sf.info(str(p)).frames, np.float32)
        total += sum(c.length for c in chunking.split(0, samples, plan))
    return total / SR


def parse_config(name: str) -> tuple[str, bool, int, float | None]:
    """``ours-plain-b8`` → (``ours``, exact=False, batch 8, max_padding 1.0)."""
    name = name.removesuffix("+mmap").removesuffix("+notrim")  # see run_config()
    m = re.fullmatch(r"(ours|ov|ov8|ov8w|ov8f|ovbf16|pipe)(-plain|-pad)?-b(\d+|auto)", name)
    if not m:
        raise SystemExit(f"unknown configuration {name!r}")
    variant = m.group(2)
    max_padding = 1.0 if variant in ("-plain", "-pad") else None
    batch = 0 if m.group(3) == "auto" else int(m.group(3))  # 0: the tool's device default
    return m.group(1), variant != "-plain", batch, max_padding


def mmap_threshold(name: str, args: argparse.Namespace) -> int:
    """glibc mmap threshold for a run: ``--mmap-threshold``, or 4 MiB for ``...+mmap`` names.

    By default glibc raises its mmap threshold each time a large block is freed (up to
    32 MiB), after which blocks of many sizes come from the heap and fragment it; a fixed
    threshold keeps large tensors in mmap'd memory that goes back to the system on free.
    """
    if args.mmap_threshold:
        return int(args.mmap_threshold)
    return 4 << 20 if name.endswith("+mmap") else 0


def run_config(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Load, warm up, then time one configuration over the whole audio set."""
    threshold = mmap_threshold(name, args)
    if threshold:
        import ctypes

        # M_MMAP_THRESHOLD = -3; a fixed threshold also stops glibc's dynamic raising of it.
        if not ctypes.CDLL("libc.so.6").mallopt(-3, threshold):
            raise SystemExit("mallopt(M_MMAP_THRESHOLD) failed")
    import torch

    if name.endswith("+notrim"):  # A/B of the engine's malloc_trim after every batch
        from w2v2cli.inference import engine

        engine.RELEASE_MEMORY = False
    if args.threads:
        torch.set_num_threads(args.threads)
    tool, exact, batch, max_padding = parse_config(name)
    model_dir = ensure_model(args.seed)
    paths = ensure_audio(QUICK if args.quick else FULL)
    audio_seconds = float(
        sum(json.loads((paths[0].parent / "manifest.json").read_text())["lengths"])
    )
    chunk, (left, right) = args.chunk_length, args.stride
    warm = np.random.default_rng(1).standard_normal(2 * SR).astype(np.float32) * 0.1

    from w2v2cli.audio import load_audio

    started = time.perf_counter()
    if tool != "pipe":
        from w2v2cli import Transcriber
        from w2v2cli.options import ChunkOptions, DecodeOptions, ModelOptions, RunOptions

        backend, dtype, int8 = BACKENDS[tool]
        calibration = tuple(paths[:8]) if int8 == "full" else ()
        options = RunOptions(
            model=ModelOptions(
                model=str(model_dir),
                device="cpu",
                dtype=dtype,
                backend=backend,
                cache_dir=DATA / "hf-cache",
                threads=args.threads or None,
                int8=int8,
                calibration=calibration,
            ),
            chunking=ChunkOptions(chunk, left, right),
            decoding=DecodeOptions(decoder="greedy"),
            batch_size=batch or None,
            max_padding=max_padding,
        )
        transcriber = Transcriber(options, exact=exact)
        model = transcriber.loaded.model  # None on OpenVINO: shapes recorded at the runner
        config = transcriber.loaded.config
        load_seconds = time.perf_counter() - started
        transcriber.transcribe_array(warm)

        def work() -> list[str]:
            return [t.text for t in transcriber.transcribe_files(paths)]

    else:
        from transformers import pipeline
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        asr = pipeline(
            "automatic-speech-recognition",
            model=str(model_dir),
            device="cpu",
            dtype=torch.float32,
        )
        model = asr.model
        config = model.config
        load_seconds = time.perf_counter() - started
        call = {"chunk_length_s": chunk, "stride_length_s": [left, right], "batch_size": batch}
        asr(warm.copy(), **call)

        def arrays() -> Iterator[np.ndarray]:
            for p in paths:
                yield load_audio(p, SR)

        def work() -> list[str]:
            return [normalise_pipeline_text(o["text"]) for o in asr(arrays(), **call)]

    # Count what goes through the model, padding included: (batch, samples) per call.
    shapes: list[tuple[int, int]] = []

    def record(_module: Any, args_: tuple, kwargs: dict) -> None:
        x = kwargs.get("input_values", args_[0] if args_ else None)
        shapes.append((int(x.shape[0]), int(x.shape[1])))

    if model is not None and hasattr(model, "register_forward_pre_hook"):
        model.register_forward_pre_hook(record, with_kwargs=True)
    else:  # OpenVINO, or the torch backend's own wav2vec2 (models/native.py)
        backend_obj = transcriber.runner.backend
        real_start = backend_obj.start
        padded = backend_obj.name == "torch"

        def counted(batch: np.ndarray, lengths: list[int]) -> Any:
            if padded:  # one padded call
                shapes.append((len(lengths), int(batch.shape[1])))
            else:
                for n in sorted(set(lengths)):  # one request per length on OpenVINO
                    shapes.append((lengths.count(n), n))
            return real_start(batch, lengths)

        backend_obj.start = counted
    rss_loaded = rss_mb()
    runs: list[dict[str, float]] = []
    texts: list[str] = []
    profile_text = ""
    for rep in range(args.repeat):
        prof = None
        if args.profile and rep == 0:
            import cProfile

            prof = cProfile.Profile()
        busy0, own0, t0 = busy_cpu_seconds(), own_cpu_seconds(), time.perf_counter()
        if prof is not None:
            prof.enable()
        shapes.clear()
        texts = work()
        if prof is not None:
            prof.disable()
        wall = time.perf_counter() - t0
        own = own_cpu_seconds() - own0
        other = max(0.0, busy_cpu_seconds() - busy0 - own)
        runs.append({"wall": wall, "cpu": own, "other_load": other / (wall * NCPU)})
        if prof is not None:
            import pstats

            out = io.StringIO()
            stats = pstats.Stats(prof, stream=out)
            stats.sort_stats("tottime").print_stats(30)
            stats.sort_stats("cumulative").print_stats(40)
            profile_text = out.getvalue()
    if profile_text:
        prof_dir = DATA / "profiles"
        prof_dir.mkdir(parents=True, exist_ok=True)
        (prof_dir / f"{name}{'-quick' if args.quick else ''}.txt").write_text(profile_text)
        print(profile_text, file=sys.stderr)
    best = min(runs, key=lambda r: r["wall"])
    return {
        "config": name,
        "tool": tool,
        "exact": exact,
        "batch": batch or "auto",
        "runs": runs,
        **best,
        "audio_seconds": audio_seconds,
        "model_calls": len(shapes),
        "model_input_seconds": sum(b * n for b, n in shapes) / SR,
        "chunk_seconds": chunk_seconds(paths, args, config),
        "files": len(paths),
        "load_seconds": load_seconds,
        "rss_loaded_mb": rss_loaded,
        "peak_rss_mb": peak_rss_mb(),
        "rss_end_mb": rss_mb(),
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "texts": texts,
    }


# -- the parent: orchestrate, compare, report ------------------------------------------


def child_args(args: argparse.Namespace) -> list[str]:
    out = [
        "--chunk-length",
        str(args.chunk_length),
        "--stride",
        *map(str, args.stride),
        "--seed",
        str(args.seed),
        "--repeat",
        str(args.repeat),
    ]
    if args.quick:
        out.append("--quick")
    if args.threads:
        out += ["--threads", str(args.threads)]
    if args.profile:
        out.append("--profile")
    if args.mmap_threshold:
        out += ["--mmap-threshold", str(args.mmap_threshold)]
    return out


def other_load(seconds: float = 2.0) -> float:
    """Share of all CPUs busy with *other* processes over ``seconds`` (0..1)."""
    busy0, own0 = busy_cpu_seconds(), own_cpu_seconds()
    time.sleep(seconds)
    return max(0.0, busy_cpu_seconds() - busy0 - (own_cpu_seconds() - own0)) / (seconds * NCPU)


def wait_for_quiet(max_wait: float, threshold: float = 0.05) -> float:
    """Wait (up to ``max_wait`` s) until other processes use < ``threshold`` of the CPUs."""
    deadline = time.monotonic() + max_wait
    load = other_load()
    while load >= threshold and time.monotonic() < deadline:
        print(
            f"  other processes use {100 * load:.0f}% of the CPUs; waiting ...",
            file=sys.stderr,
            flush=True,
        )
        time.sleep(10)
        load = other_load()
    return load


def run_child(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run one configuration in a fresh interpreter and read back its JSON result.

    Other processes on the machine (tests, builds) distort timings, so the parent waits
    for a quiet machine first and re-runs a configuration (``--retries``) when more than
    5% of the CPUs were busy with something else during its timed part; the run with the
    least foreign load is kept, and that load is reported.
    """
    out = DATA / f"result-{name}.json"
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--only",
        name,
        "--result-json",
        str(out),
        *child_args(args),
    ]
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    best: dict[str, Any] | None = None
    for attempt in range(1 + args.retries):
        wait_for_quiet(args.max_wait)
        print(f"running {name} ...", file=sys.stderr, flush=True)
        out.unlink(missing_ok=True)
        subprocess.run(cmd, check=True, env=env)
        result = json.loads(out.read_text())
        print(
            f"  {name}: {result['wall']:.1f} s, other load {100 * result['other_load']:.0f}%",
            file=sys.stderr,
            flush=True,
        )
        result["attempts"] = attempt + 1
        if best is None or result["other_load"] < best["other_load"]:
            best = result
        if result["other_load"] < 0.05:
            break
    assert best is not None
    return best


def text_changes(a: Sequence[str], b: Sequence[str]) -> tuple[int, int, float]:
    """(files whose text differs, files, character error rate of ``b`` against ``a``)."""
    import jiwer

    changed = sum(x != y for x, y in zip(a, b, strict=True))
    refs = [x if x else "-" for x in a]
    hyps = [y if y else "-" for y in b]
    return changed, len(a), float(jiwer.cer(refs, hyps))


def code_version() -> str:
    """The commit of the tree under test, and whether ``w2v2cli/`` has local changes."""

    def git(*cmd: str) -> str:
        try:
            return subprocess.run(
                ["git", *cmd], cwd=ROOT, capture_output=True, text=True, check=True
            ).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return ""

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", "w2v2cli")
    digest = hashlib.sha1()
    for path in sorted((ROOT / "w2v2cli").rglob("*.py")):
        digest.update(path.read_bytes())
    return (
        f"{commit}"
        + (" with local changes in w2v2cli/" if dirty else "")
        + (f" (sources sha1 {digest.hexdigest()[:10]})")
    )


def machine_info(results: Sequence[dict[str, Any]]) -> list[str]:
    import torch
    import transformers

    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    threads = sorted({(r["threads"], r["interop_threads"]) for r in results})
    flags: set[str] = set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
    try:
        from importlib.metadata import version

        ov = f", openvino {version('openvino')}, nncf {version('nncf')}"
    except Exception:  # noqa: BLE001 - the extra is optional
        ov = ", openvino not installed"
    return [
        f"- CPU flags: {' '.join(f for f in wanted if f in flags) or 'none of'} "
        f"(of {', '.join(wanted)})",
        f"- machine: {os.cpu_count()} cores (`nproc` {len(os.sched_getaffinity(0))}), "
        f"{cpu}, Python {platform.python_version()}, {platform.system()}",
        f"- torch {torch.__version__}, transformers {transformers.__version__}, "
        f"numpy {np.__version__}{ov}"
        + (
            "; torch threads (intra, inter-op): " + ", ".join(f"{a}, {b}" for a, b in threads)
            if threads
            else ""
        ),
    ]


def _same(a: dict[str, Any], b: dict[str, Any]) -> tuple[int, int]:
    return sum(x == y for x, y in zip(a["texts"], b["texts"], strict=True)), len(a["texts"])


def report(results: dict[str, dict[str, Any]], args: argparse.Namespace, command: str) -> str:
    """The markdown report: setup, the table, text checks, exact-path cost."""
    any_result = next(iter(results.values()))
    audio_s, files = any_result["audio_seconds"], any_result["files"]
    model_info = json.loads((DATA / f"model-base-seed{args.seed}" / "bench.json").read_text())
    lines = [
        f"- date: {dt.datetime.now().strftime('%Y-%m-%d %H:%M')}",
        *machine_info(list(results.values())),
        f"- command: `{command}`",
        f"- w2v2cli: commit {args.code_version}",
        *(
            [f"- glibc: `mallopt(M_MMAP_THRESHOLD, {args.mmap_threshold})` in every run"]
            if args.mmap_threshold
            else []
        ),
        *(
            [
                "- `+mmap` runs call glibc's `mallopt(M_MMAP_THRESHOLD, 4 MiB)` first (a fixed "
                "threshold: large blocks stay mmap'd and are returned on free)"
            ]
            if any(n.endswith("+mmap") for n in results) and not args.mmap_threshold
            else []
        ),
        f"- audio: {files} espeak-ng WAV files, 16 kHz mono, {audio_s:.0f} s "
        f"({audio_s / 60:.1f} min) in all, 1-60 s each; chunks {args.chunk_length:g} s with "
        f"{args.stride[0]:g} s + {args.stride[1]:g} s strides; float32, CPU",
        f"- model: random wav2vec2-base-shaped CTC model, "
        f"{model_info['parameters'] / 1e6:.1f}M parameters (seed {args.seed})",
        "- timed: transcribing all files incl. reading the WAVs; model load and a 2 s "
        f"warm-up call excluded (load shown apart); fastest of {args.repeat} run(s) per process"
        + (f"; median of {args.rounds} rounds" if args.rounds > 1 else ""),
        "- CPU s: user + system CPU time of the process during the timed part; other load: "
        "share of the CPUs used by other processes meanwhile (runs are retried above 5%); "
        "model input s: audio seconds fed to the model, padding included (the chunks alone "
        f"hold {any_result['chunk_seconds']:.0f} s); padding: share of that which is padding",
        "",
        "| configuration | batch | wall s | x RT | CPU s | other load | model input s "
        "| padding | load s | RSS after load MB | peak RSS MB | RSS at end MB |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    labels = {
        "ours": "w2v2cli torch (exact)",
        "ov": "w2v2cli OpenVINO fp32",
        "ov8": "w2v2cli OpenVINO int8",
        "ov8w": "w2v2cli OpenVINO int8 weight-only",
        "ov8f": "w2v2cli OpenVINO int8 full (calibrated)",
        "ovbf16": "w2v2cli OpenVINO bf16",
        "ours-pad": "w2v2cli (exact, padded batches)",
        "ours-plain": "w2v2cli (exact=False, padded)",
        "pipe": "transformers pipeline",
    }
    for name, r in results.items():
        key = name.rsplit("-b", 1)[0]
        lines.append(
            f"| {labels[key]} `{name}` | {r['batch']} | {r['wall']:.1f} | "
            f"{r['audio_seconds'] / r['wall']:.1f} | {r['cpu']:.1f} | "
            f"{100 * r['other_load']:.0f}% | {r['model_input_seconds']:.0f} | "
            f"{100 * (1 - r['chunk_seconds'] / r['model_input_seconds']):.0f}% | "
            f"{r['load_seconds']:.1f} | "
            f"{r['rss_loaded_mb']:.0f} | {r['peak_rss_mb']:.0f} | "
            f"{r.get('rss_end_mb', float('nan')):.0f} |"
        )
    lines.append("")
    ours8, pad8, plain8, pipe8 = (
        results.get(k) for k in ("ours-b8", "ours-pad-b8", "ours-plain-b8", "pipe-b8")
    )
    ours1, pipe1 = results.get("ours-b1"), results.get("pipe-b1")
    auto = results.get("ours-bauto")
    if ours8 and pipe8:
        ratio = pipe8["wall"] / ours8["wall"]
        lines.append(
            f"- speed, batch 8: w2v2cli is **{ratio:.2f}x** the pipeline "
            f"(target >= 1.5x: {'met' if ratio >= 1.5 else 'NOT met'})"
        )
    if auto and pipe8:
        ratio = pipe8["wall"] / auto["wall"]
        lines.append(
            f"- speed, w2v2cli with its defaults vs the pipeline at batch 8: **{ratio:.2f}x**"
        )
    if ours1 and pipe1:
        lines.append(
            f"- speed, batch 1: w2v2cli is {pipe1['wall'] / ours1['wall']:.2f}x the pipeline"
        )
    if ours1 and pipe8:
        lines.append(
            f"- w2v2cli at batch 1 is {pipe8['wall'] / ours1['wall']:.2f}x the pipeline at batch 8"
        )
    if ours1 and ours8:
        lines.append(
            f"- w2v2cli, batch 8 vs batch 1: {ours1['wall'] / ours8['wall']:.2f}x the "
            "speed (above 1 means batching helps)"
        )
    if ours1 and pipe1:
        same, n = _same(ours1, pipe1)
        lines.append(
            f"- same text as the pipeline at batch 1: **{same} of {n}** files identical "
            "(target: all)"
        )
    if ours8 and pipe1:
        same, n = _same(ours8, pipe1)
        lines.append(f"- w2v2cli at batch 8 vs the pipeline at batch 1: {same} of {n} identical")
    for b8, b1, label in (
        (ours8, ours1, "w2v2cli (exact)"),
        (pad8, ours1, "w2v2cli (exact, padded batches)"),
        (plain8, ours1, "w2v2cli (exact=False, padded)"),
        (pipe8, pipe1, "transformers pipeline"),
    ):
        if b1 and b8:
            changed, n, cer = text_changes(b1["texts"], b8["texts"])
            lines.append(
                f"- text changes from batch 1 to batch 8, {label}: **{changed} of {n} "
                f"files ({100 * changed / n:.0f}%)**, CER between them {100 * cer:.2f}%"
            )
    pipes = [r for n, r in results.items() if n.startswith("pipe-")]
    fp32 = results.get("ours-b1") or results.get("ours-bauto")
    if pipes:
        best_pipe = min(pipes, key=lambda r: r["wall"])
        for name, r in results.items():
            if name.startswith("pipe-"):
                continue
            line = (
                f"- `{name}`: **{best_pipe['wall'] / r['wall']:.2f}x** the pipeline's best "
                f"(`{best_pipe['config']}`)"
            )
            if fp32 and r is not fp32:
                changed, n, cer = text_changes(fp32["texts"], r["texts"])
                line += (
                    f"; text vs torch fp32 (`{fp32['config']}`): {n - changed} of {n} "
                    f"files identical, CER {100 * cer:.3f}%"
                )
            lines.append(line)
    if pad8 and plain8:
        wall = 100 * (pad8["wall"] - plain8["wall"]) / plain8["wall"]
        cpu = 100 * (pad8["cpu"] - plain8["cpu"]) / plain8["cpu"]
        lines.append(
            f"- speed cost of the exact path at batch 8, both with padded batches: "
            f"**{wall:+.1f}%** wall ({pad8['wall']:.1f} s vs {plain8['wall']:.1f} s), "
            f"{cpu:+.1f}% CPU time (goal < 5%)"
        )
    if any(len(r.get("round_walls", ())) > 1 for r in results.values()):
        lines.append(
            "- wall s per round (the table shows each configuration's median): "
            + "; ".join(
                f"`{n}` " + ", ".join(f"{w:.1f}" for w in r["round_walls"])
                for n, r in results.items()
            )
        )
        for a, b in (("pipe-b8", "ours-bauto"), ("pipe-b8", "ours-b8")):
            if a in results and b in results:
                ratios = [
                    x / y
                    for x, y in zip(
                        results[a]["round_walls"], results[b]["round_walls"], strict=True
                    )
                ]
                lines.append(
                    f"- `{a}` / `{b}` wall per round: " + ", ".join(f"{q:.2f}x" for q in ratios)
                )
        unstable = [n for n, r in results.items() if not r["texts_stable"]]
        lines.append(
            "- texts identical in every round: "
            + ("yes" if not unstable else "NO for " + ", ".join(unstable))
        )
    for r in results.values():
        if len(r["runs"]) > 1 or r.get("attempts", 1) > 1:
            lines.append(
                f"- `{r['config']}`: {r.get('attempts', 1)} attempt(s); walls of the "
                "kept one: " + ", ".join(f"{x['wall']:.1f}" for x in r["runs"])
            )
    return "\n".join(lines) + "\n"


def emit(body: str, write: bool, section: str) -> None:
    """Print a report and, with ``write``, put it into RESULTS.md as ``section``."""
    print(body)
    if write:
        write_section(RESULTS, section, body)


def write_section(path: Path, section: str, body: str) -> None:
    """Replace (or append) the ``section`` block of ``path``, keeping everything else."""
    start, end = f"<!-- bench:{section} start -->", f"<!-- bench:{section} end -->"
    block = f"{start}\n## {section}\n\n{body}{end}\n"
    text = (
        path.read_text()
        if path.is_file()
        else (
            "# Benchmark results\n\nWritten by `benchmarks/bench_transcribe.py --write`; "
            "see its docstring for what is measured.\n\n"
        )
    )
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end) + r"\n?", re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _m: block, text)
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.write_text(text)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="~3.5 min of audio instead of ~21")
    p.add_argument(
        "--configs",
        nargs="+",
        default=list(CONFIGS),
        help="configurations to run, (ours|ov|ov8|ov8w|ov8f|ovbf16|pipe)[-pad|-plain]"
        "-b(N|auto)[+mmap|+notrim] "
        f"(default: {' '.join(CONFIGS)}); +mmap: a fixed 4 MiB glibc mmap threshold",
    )
    p.add_argument("--chunk-length", type=float, default=20.0, help="seconds (default 20)")
    p.add_argument(
        "--stride",
        type=float,
        nargs=2,
        default=[3.0, 3.0],
        metavar=("LEFT", "RIGHT"),
        help="stride seconds on each side (default 3 3)",
    )
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's)")
    p.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="timed runs per configuration in one process; the fastest is kept",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run the whole list of configurations N times, one after another, "
        "and keep each one's median (default 1)",
    )
    p.add_argument(
        "--retries",
        type=int,
        default=2,
        help="re-runs of a configuration disturbed by other processes (default 2)",
    )
    p.add_argument(
        "--max-wait",
        type=float,
        default=900.0,
        help="seconds to wait for other processes to finish before a run (default 900)",
    )
    p.add_argument("--seed", type=int, default=0, help="model seed (default 0)")
    p.add_argument(
        "--profile",
        action="store_true",
        help="cProfile the first timed run; stats go to stderr and _data/profiles/",
    )
    p.add_argument(
        "--mmap-threshold",
        type=int,
        default=0,
        metavar="BYTES",
        help="call glibc mallopt(M_MMAP_THRESHOLD, BYTES) in each run first "
        "(an experiment against heap growth; default: glibc's dynamic threshold)",
    )
    p.add_argument("--write", action="store_true", help="write the report into RESULTS.md")
    p.add_argument(
        "--section",
        default=None,
        help="RESULTS.md section name (default: 'full run' or 'quick run')",
    )
    p.add_argument("--results-file", type=Path, default=RESULTS, help=argparse.SUPPRESS)
    p.add_argument("--only", default=None, help="run one configuration in this process")
    p.add_argument("--result-json", type=Path, default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def merge_rounds(rounds: Sequence[dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Per configuration, the round with the median wall time, plus all rounds' walls.

    Rounds run the configurations one after another, so slow phases of a shared machine
    hit all configurations alike; ``round_walls`` keeps every round for per-round ratios.
    """
    merged: dict[str, dict[str, Any]] = {}
    for name in rounds[0]:
        runs = sorted((r[name] for r in rounds), key=lambda r: r["wall"])
        result = dict(runs[(len(runs) - 1) // 2])
        result["round_walls"] = [r[name]["wall"] for r in rounds]
        result["texts_stable"] = all(r["texts"] == runs[0]["texts"] for r in runs)
        merged[name] = result
    return merged


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.only:
        if str(ROOT) not in sys.path:
            sys.path.insert(0, str(ROOT))
        result = run_config(args.only, args)
        text = json.dumps(result)
        if args.result_json:
            args.result_json.write_text(text)
        else:
            print(text)
        return 0
    for name in args.configs:
        parse_config(name)
    DATA.mkdir(parents=True, exist_ok=True)
    paths = ensure_audio(QUICK if args.quick else FULL)
    model_dir = ensure_model(args.seed)
    info = json.loads((model_dir / "bench.json").read_text())
    print(f"model: {model_dir} ({info['parameters']:,} parameters)", file=sys.stderr)
    print(f"audio: {len(paths)} files in {paths[0].parent}", file=sys.stderr)
    started = time.perf_counter()
    args.code_version = code_version()
    rounds = []
    for number in range(args.rounds):
        if args.rounds > 1:
            print(f"round {number + 1} of {args.rounds}", file=sys.stderr, flush=True)
        rounds.append({name: run_child(name, args) for name in args.configs})
    results = merge_rounds(rounds)
    # Only the sources count: a commit of benchmark results alone changes nothing measured.
    if code_version().rsplit("(", 1)[-1] != args.code_version.rsplit("(", 1)[-1]:
        print("warning: w2v2cli changed while the benchmark ran", file=sys.stderr)
        args.code_version += f" (changed during the run, now {code_version()})"
    command = "python benchmarks/bench_transcribe.py " + " ".join(
        a for a in (argv if argv is not None else sys.argv[1:])
    )
    body = report(results, args, command.strip())
    print()
    print(body)
    print(f"(suite took {time.perf_counter() - started:.0f} s)", file=sys.stderr)
    if args.write:
        section = args.section or ("quick run" if args.quick else "full run")
        write_section(args.results_file, section, body)
        print(f"wrote section {section!r} of {args.results_file}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

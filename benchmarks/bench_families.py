"""Parakeet CTC on the CPU: `w2v2 transcribe` against transformers' own decode (run by hand).

Issue 25's measure: a random model with the shape of nvidia/parakeet-ctc-0.6b
(``ParakeetEncoderConfig`` defaults: 24 layers, hidden size 1,024, 8 heads, 8x
subsampling; a 1,024-piece SentencePiece-style BPE vocabulary trained here, the blank
``<pad>`` last), built once under ``benchmarks/_data/families/`` (nothing downloaded), and
a few espeak-ng files of up to 20 s (whole files, one chunk each: where the pipeline is
right). Three ways, each in a fresh process whose wall time and peak RSS (``os.wait4``)
are its own, model loading included:

- ``w2v2``: the real command line, ``w2v2 transcribe FILES -m MODEL -o OUT``, batch 1,
  default chunking (20 s), on the torch backend and on OpenVINO (the IR, which takes the
  log-mel frames flattened, converted once before the timing);
- ``direct``: transformers' processor, model, argmax over the frames the model's output mask
  keeps (``generate``'s greedy decoding), ``batch_decode`` with special tokens skipped, one
  file at a time;
- ``pipeline``: ``pipeline("automatic-speech-recognition")``, batch 1, whole files (without
  ``chunk_length_s``, with which it keeps only the first chunk of Parakeet's output).

The texts must be the same; the table gives wall time, the time of the model calls alone
(the transformers children time them; the CLI's is wall minus its start-up and load,
measured by a run on a 1 s file) and peak RSS. ``--omniasr`` adds an Omnilingual ASR CTC
model of the 300M shape (``OmniASRAudioConfig`` defaults) through the CLI on torch and on
OpenVINO (its IR is converted once, outside the timing).

::

    python benchmarks/bench_families.py                 # ~3 min on 2 cores
    python benchmarks/bench_families.py --omniasr --write
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE / "_data" / "families"
SR = 16000
SENTENCES = [
    "the patient was seen in the clinic this morning",
    "seven hundred people walked along the river to the station",
    "she reads a story about a quiet brown fox every evening",
    "blood pressure was normal and the heart sounded fine",
    "a small green bird sings in the garden before the rain",
    "tomorrow the market opens at eight in the morning",
]
SECONDS = (5.0, 10.0, 15.0, 20.0)


def espeak(text: str, voice: str = "en-us", speed: int = 160) -> np.ndarray:
    """``text`` spoken by espeak-ng, float32 at 16 kHz."""
    import soundfile as sf
    import soxr

    wav = subprocess.run(
        ["espeak-ng", "--stdout", "-v", voice, "-s", str(speed), text],
        check=True,
        capture_output=True,
    ).stdout
    audio, rate = sf.read(io.BytesIO(wav), dtype="float32")
    return soxr.resample(audio, rate, SR).astype(np.float32)


def audio_files() -> list[Path]:
    """Files of 5, 10, 15 and 20 s of espeak-ng sentences (and a 1 s one for start-up)."""
    import soundfile as sf

    folder = DATA / "audio"
    paths = [folder / f"speech{int(s):02d}s.wav" for s in SECONDS]
    if all(p.exists() for p in paths):
        return paths
    folder.mkdir(parents=True, exist_ok=True)
    spoken = [espeak(s, voice, speed) for s in SENTENCES for voice, speed in (("en-us", 160),)]
    stream = np.concatenate([np.concatenate([x, np.zeros(SR // 4, np.float32)]) for x in spoken])
    stream = np.tile(stream, 1 + int(max(SECONDS) * SR) // len(stream))
    for path, seconds in zip(paths, SECONDS, strict=True):
        sf.write(path, stream[: int(seconds * SR)], SR, subtype="PCM_16")
    sf.write(folder / "startup.wav", stream[:SR], SR, subtype="PCM_16")
    return paths


def pseudo_words(count: int, seed: int = 0) -> list[str]:
    """Random syllable words: enough distinct text for 1,024 BPE pieces."""
    rng = np.random.default_rng(seed)
    onsets = ["", "b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "st", "tr"]
    vowels = ["a", "e", "i", "o", "u", "ai", "ea", "ou"]
    codas = ["", "n", "s", "t", "r", "l", "nd", "ck"]
    words = []
    for _ in range(count):
        syllables = int(rng.integers(1, 4))
        words.append(
            "".join(
                onsets[rng.integers(len(onsets))]
                + vowels[rng.integers(len(vowels))]
                + codas[rng.integers(len(codas))]
                for _ in range(syllables)
            )
        )
    return words


def build_parakeet(folder: Path) -> Path:
    """The random Parakeet-CTC-0.6B-shaped folder (once)."""
    if (folder / "model.safetensors").exists():
        return folder
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (
        ParakeetCTCConfig,
        ParakeetEncoderConfig,
        ParakeetFeatureExtractor,
        ParakeetForCTC,
        ParakeetProcessor,
        ParakeetTokenizer,
    )

    sys.path.insert(0, str(HERE.parent / "tests"))
    from family_models import _calibrate_subword_head  # the tests' head calibration

    words = pseudo_words(20000)
    lines = [" ".join(words[i : i + 12]) for i in range(0, len(words), 12)]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tok.train_from_iterator(lines, trainers.BpeTrainer(vocab_size=1024, special_tokens=["<unk>"]))
    tokenizer = ParakeetTokenizer(tokenizer_object=tok, unk_token="<unk>")
    tokenizer.add_special_tokens({"pad_token": "<pad>"})
    torch.manual_seed(0)
    config = ParakeetCTCConfig(
        encoder_config=ParakeetEncoderConfig().to_dict(),
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
    )
    model = ParakeetForCTC(config).eval()
    extractor = ParakeetFeatureExtractor()
    rng = np.random.default_rng(99)
    noise = (0.3 * rng.standard_normal(8 * SR)).astype(np.float32)
    inputs = extractor(noise, sampling_rate=SR, return_tensors="pt")
    pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    starts = [i for i, p in enumerate(pieces) if p.startswith("▁") and len(p) > 1]
    _calibrate_subword_head(model, dict(inputs), tokenizer.pad_token_id, starts)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    ParakeetProcessor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(folder)
    n = sum(p.numel() for p in model.parameters())
    (folder / "bench.json").write_text(json.dumps({"parameters": n}))
    return folder


def build_omniasr(folder: Path) -> Path:
    """A random Omnilingual ASR CTC folder of the 300M shape (once), the tests' tokenizer."""
    if (folder / "model.safetensors").exists():
        return folder
    import torch
    from transformers import (
        OmniASRCTCConfig,
        OmniASRCTCProcessor,
        OmniASRFeatureExtractor,
        OmniASRForCTC,
    )

    sys.path.insert(0, str(HERE.parent / "tests"))
    from family_models import _calibrate_subword_head, subword_tokenizer

    tokenizer = subword_tokenizer("omniasr_ctc")
    torch.manual_seed(0)
    config = OmniASRCTCConfig(
        audio_config={"model_type": "omniasr_audio"},
        vocab_size=len(tokenizer),
        blank_token_id=tokenizer.bos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = OmniASRForCTC(config).eval()
    extractor = OmniASRFeatureExtractor()
    rng = np.random.default_rng(99)
    noise = (0.3 * rng.standard_normal(8 * SR)).astype(np.float32)
    inputs = extractor(noise, sampling_rate=SR, return_tensors="pt")
    pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    starts = [i for i, p in enumerate(pieces) if p.startswith(" ") and len(p) > 1]
    _calibrate_subword_head(model, dict(inputs), tokenizer.bos_token_id, starts)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    OmniASRCTCProcessor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(folder)
    n = sum(p.numel() for p in model.parameters())
    (folder / "bench.json").write_text(json.dumps({"parameters": n}))
    return folder


# --- children ---------------------------------------------------------------------------


def child_transformers(kind: str, model: str, files: list[str]) -> dict:
    """transformers' direct decode or pipeline over ``files`` (batch 1), timed."""
    import torch
    from transformers import AutoModelForCTC, AutoProcessor, pipeline

    from w2v2cli.audio import load_audio

    started = time.perf_counter()
    audio = [load_audio(Path(f), SR) for f in files]
    if kind == "pipeline":
        asr = pipeline("automatic-speech-recognition", model=model, device="cpu")
    else:
        processor = AutoProcessor.from_pretrained(model)
        net = AutoModelForCTC.from_pretrained(model).eval()
    loaded = time.perf_counter()
    texts = []
    with torch.inference_mode():
        for samples in audio:
            if kind == "pipeline":
                texts.append(asr(samples.copy(), batch_size=1)["text"])
                continue
            inputs = processor(samples, sampling_rate=SR, return_tensors="pt")
            logits = net(**inputs).logits
            ids = logits.argmax(-1)
            mask = inputs.get("attention_mask", inputs.get("padding_mask"))
            keep = net._get_output_attention_mask(mask, target_length=ids.shape[1])
            ids[~keep] = net.config.pad_token_id  # padded frames: the blank (generate's way)
            texts.append(processor.batch_decode(ids, skip_special_tokens=True)[0])
    done = time.perf_counter()
    return {"texts": texts, "load_s": loaded - started, "model_s": done - loaded}


def run_process(argv: list[str]) -> tuple[float, int, str]:
    """Run ``argv``; its wall time, peak RSS (MB, ``os.wait4``) and stdout."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        if status != 0:
            raise SystemExit(f"{argv[:4]} failed: {err.read().decode()[-2000:]}")
        return wall, usage.ru_maxrss // 1024, out.read().decode()


def run_w2v2(model: Path, files: list[Path], backend: str, out: Path) -> tuple[dict, list[str]]:
    argv = [sys.executable, "-m", "w2v2cli", "transcribe", *map(str, files), "-m", str(model)]
    argv += ["-o", str(out), "-q", "--overwrite", "--backend", backend, "-b", "1"]
    argv += ["--cache-dir", str(DATA / "cache")]  # the OpenVINO IR cache, here
    startup = [*argv[:4], str(DATA / "audio" / "startup.wav"), *argv[4 + len(files) :]]
    startup[startup.index("-o") + 1] = str(out / "startup")
    start_wall, _, _ = run_process(startup)  # first: the weights' pages are then cached
    wall, rss, _ = run_process(argv)
    texts = [(out / f"{f.stem}.txt").read_text(encoding="utf-8").strip() for f in files]
    return {"wall_s": wall, "model_s": wall - start_wall, "rss_mb": rss}, texts


def run_child(kind: str, model: Path, files: list[Path]) -> tuple[dict, list[str]]:
    argv = [sys.executable, __file__, "--child", kind, str(model), *map(str, files)]
    wall, rss, stdout = run_process(argv)
    result = json.loads(stdout.strip().splitlines()[-1])
    return {"wall_s": wall, "model_s": result["model_s"], "rss_mb": rss}, result["texts"]


def cpu_line() -> str:
    text = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    name = re.search(r"Model name:\s*(.+)", text)
    flags = re.search(r"Flags:\s*(.+)", text)
    wanted = ("avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16")
    have = [f for f in wanted if flags and f in flags.group(1).split()]
    cores = len(os.sched_getaffinity(0))
    return f"{name.group(1).strip() if name else platform.processor()}, {cores} cores, " + (
        " ".join(have) or "no AVX-512"
    )


def versions() -> str:
    import openvino
    import torch
    import transformers

    import w2v2cli

    return (
        f"w2v2cli {w2v2cli.__version__}, torch {torch.__version__}, transformers "
        f"{transformers.__version__}, openvino {openvino.__version__}"
    )


def table(rows: list[tuple[str, dict]], audio_s: float) -> list[str]:
    lines = [
        "| run | wall (s) | model calls (s) | x real time (model) | peak RSS (MB) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, r in rows:
        lines.append(
            f"| {name} | {r['wall_s']:.1f} | {r['model_s']:.1f} | "
            f"{audio_s / max(r['model_s'], 1e-9):.1f} | {r['rss_mb']:,} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="append the section to RESULTS.md")
    parser.add_argument("--omniasr", action="store_true", help="also OmniASR torch vs OpenVINO")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, model, *files = args.child
        print(json.dumps(child_transformers(kind, model, files)))
        return

    import soundfile as sf

    files = audio_files()
    audio_s = sum(sf.info(str(f)).duration for f in files)
    parakeet = build_parakeet(DATA / "parakeet-ctc-0.6b-random")
    params = json.loads((parakeet / "bench.json").read_text())["parameters"]
    out = Path(tempfile.mkdtemp(prefix="bench_families_"))
    load_before = os.getloadavg()[0]
    rows = []
    w2v2, ours = run_w2v2(parakeet, files, "torch", out / "w2v2")
    rows.append(("`w2v2 transcribe --backend torch`", w2v2))
    run_w2v2(parakeet, files[:1], "openvino", out / "convert")  # the IR, converted once
    ov_result, ov_texts = run_w2v2(parakeet, files, "openvino", out / "w2v2-openvino")
    rows.append(("`w2v2 transcribe --backend openvino`", ov_result))
    direct, direct_texts = run_child("direct", parakeet, files)
    rows.append(("transformers direct decode", direct))
    pipe, pipe_texts = run_child("pipeline", parakeet, files)
    rows.append(("transformers pipeline", pipe))
    same = [a == b == c for a, b, c in zip(ours, direct_texts, pipe_texts, strict=True)]
    ov_same = sum(a == b for a, b in zip(ours, ov_texts, strict=True))
    load_after, cores = os.getloadavg()[0], len(os.sched_getaffinity(0))
    lines = [
        "",
        "## Parakeet CTC 0.6B shape on the CPU: w2v2 vs transformers "
        f"({time.strftime('%Y-%m-%d')})",
        "",
        f"- CPU: {cpu_line()}; {versions()}",
        f"- model: random, `ParakeetEncoderConfig` defaults ({params / 1e6:.0f}M parameters, "
        "1,025 classes), built by `benchmarks/bench_families.py`",
        f"- audio: {len(files)} espeak-ng files of {', '.join(f'{s:.0f}' for s in SECONDS)} s "
        f"({audio_s:.0f} s), batch 1, whole files",
        f"- same text, torch and both transformers ways: {sum(same)}/{len(same)} files; "
        f"OpenVINO's the same as torch's: {ov_same}/{len(same)}",
        f"- load average (1 min) before the Parakeet runs: {load_before:.1f}, after: "
        f"{load_after:.1f} on {cores} cores"
        + (
            " (above the core count: other jobs shared the CPU, compare rows only)"
            if max(load_before, load_after) > cores
            else ""
        ),
        "- command: `python benchmarks/bench_families.py"
        + (" --omniasr" if args.omniasr else "")
        + "`",
        "",
        *table(rows, audio_s),
    ]
    if args.omniasr:
        omni = build_omniasr(DATA / "omniasr-ctc-300m-random")
        oparams = json.loads((omni / "bench.json").read_text())["parameters"]
        run_w2v2(omni, files[:1], "openvino", out / "convert")  # the IR, converted once
        orows = []
        texts = {}
        for backend in ("torch", "openvino"):
            result, texts[backend] = run_w2v2(omni, files, backend, out / f"omni-{backend}")
            orows.append((f"`w2v2 transcribe --backend {backend}`", result))
        osame = sum(a == b for a, b in zip(texts["torch"], texts["openvino"], strict=True))
        lines += [
            "",
            f"Omnilingual ASR CTC, 300M shape ({oparams / 1e6:.0f}M parameters, random, "
            f"`OmniASRAudioConfig` defaults), same files: torch and OpenVINO give the same "
            f"text for {osame}/{len(files)} files (the IR converted once, before the timing).",
            "",
            *table(orows, audio_s),
        ]
    print("\n".join(lines))
    for name, a, b, c in zip(files, ours, direct_texts, pipe_texts, strict=True):
        if not a == b == c:
            print(f"DIFFERENT {name.name}:\n  w2v2:     {a}\n  direct:   {b}\n  pipeline: {c}")
    if args.write:
        with open(HERE / "RESULTS.md", "a", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

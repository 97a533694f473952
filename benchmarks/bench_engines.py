"""Beam-search engines side by side: ctc-beam-decoder against pyctcdecode (run by hand).

What it does
------------
1. Builds once, under ``benchmarks/_data/engines/`` (git-ignored), nothing downloaded:

   - text: Debian's ``fortunes`` package (``apt-get install fortunes``; the small trained
     model in ``tests/assets/espeak-tiny-en`` was trained on such sentences spoken by
     espeak-ng), split into sentences and normalised for the model's alphabet with
     ``w2v2 lm build``'s own normaliser; sentences with words the model cannot spell are
     dropped;
   - 40 held-out sentences (seeded choice, 5-16 words) spoken by espeak-ng ``en-us``, and
     a ``manifest.tsv`` for ``w2v2 eval`` / ``w2v2 lm tune``;
   - a 4-gram binary KenLM from the other sentences (``build_lm`` = ``w2v2 lm build``);
   - the model's log-probabilities for the 40 files (torch, float32), once.

2. **Beam only**: every utterance decoded by ``BeamCore`` (what ``transcribe``, ``eval``
   and ``lm tune`` run in each worker) in this process, one thread, beam width 100,
   alpha 0.5, beta 1.0, for each engine, without and with the LM, on **peaked**
   posteriors (the model's own) and **soft** ones (the same at temperature 2:
   ``log_softmax(log_probs / 2)``, as a less certain model gives them). Timed: the decode
   calls only (decoder built beforehand). Reported: audio seconds per second on one thread
   (x real time), the ctc-beam-decoder/pyctcdecode ratio (median of the per-round ratios;
   configurations interleaved round by round), and how many transcripts are identical.

3. **``lm tune`` end to end**: ``w2v2 lm tune manifest.tsv --lm lm.bin -m MODEL --backend
   torch --grid 5 -q`` (25 pairs, default workers: one per core) in a fresh process, with
   ``W2V2_BEAM_ENGINE`` set to each engine, rounds interleaved; wall time includes start-up,
   the model run and all 25 beam decodes of the manifest. A greedy ``w2v2 eval`` of the same
   manifest is timed too, to show how beam-bound the tuning is. Reported: wall times,
   ratio, and the best pair of each engine (the same pair is the target).

Usage::

    python benchmarks/bench_engines.py --rounds 2 --write
    python benchmarks/bench_engines.py --rounds 1 --skip-tune     # beam only, a quick look
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

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "benchmarks" / "_data" / "engines"
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
MODEL = ROOT / "tests" / "assets" / "espeak-tiny-en"
FORTUNES = Path("/usr/share/games/fortunes")
ENGINES = ("ctc-beam-decoder", "pyctcdecode")
sys.path.insert(0, str(ROOT))


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- data


def fortune_sentences(vocabulary) -> list[str]:  # type: ignore[no-untyped-def]
    """Every fortunes sentence the model can spell, normalised, in file order, unique."""
    from w2v2cli.lm.alphabet import alphabet_case, alphabet_chars
    from w2v2cli.lm.text import normalize_words

    if not FORTUNES.is_dir():
        raise SystemExit(f"{FORTUNES} is missing: apt-get install fortunes")
    chars, case = alphabet_chars(vocabulary), alphabet_case(vocabulary)
    out: dict[str, None] = {}
    for path in sorted(FORTUNES.iterdir()):
        if not path.is_file() or path.suffix in (".dat", ".u8"):
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for entry in re.split(r"^%\s*$", text, flags=re.M):
            for sentence in re.split(r"(?<=[.!?])\s+", " ".join(entry.split())):
                words, dropped = normalize_words(sentence, chars, case)
                if words and not dropped:
                    out[" ".join(words)] = None
    return list(out)


def ensure_data(n_test: int) -> dict[str, Path]:
    from w2v2cli.lm import build_lm
    from w2v2cli.models.light import read_light

    vocabulary = read_light(MODEL)[1]
    paths = {
        "lm": DATA / "lm4.bin",
        "manifest": DATA / "manifest.tsv",
        "logits": DATA / "logits.npz",
    }
    if all(p.is_file() for p in paths.values()):
        return paths
    DATA.mkdir(parents=True, exist_ok=True)
    sentences = fortune_sentences(vocabulary)
    rng = np.random.default_rng(0)
    candidates = [s for s in sentences if 5 <= len(s.split()) <= 16]
    test = [candidates[i] for i in sorted(rng.choice(len(candidates), n_test, replace=False))]
    held_out = set(test)
    corpus = DATA / "corpus.txt"
    corpus.write_text("\n".join(s for s in sentences if s not in held_out) + "\n")
    log(f"{len(sentences)} sentences, {len(test)} held out for speech")
    build_lm([corpus], paths["lm"], 4, vocab=vocabulary)
    wav_dir = DATA / "wav"
    wav_dir.mkdir(exist_ok=True)
    rows = ["path\ttext"]
    for i, text in enumerate(test):
        wav = wav_dir / f"f{i:02d}.wav"
        subprocess.run(
            ["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(wav), text.lower()], check=True
        )
        rows.append(f"wav/{wav.name}\t{text}")
    paths["manifest"].write_text("\n".join(rows) + "\n")
    save_logits(sorted(wav_dir.glob("*.wav")), paths["logits"])
    return paths


def save_logits(wavs: list[Path], out: Path) -> None:
    from w2v2cli import Transcriber
    from w2v2cli.inference import file_loader
    from w2v2cli.options import DecodeOptions, ModelOptions, RunOptions

    options = RunOptions(
        model=ModelOptions(str(MODEL), backend="torch"), decoding=DecodeOptions(decoder="greedy")
    )
    with Transcriber(options) as t:
        ems = [em for _, em in t.emissions([file_loader(w, t.sampling_rate) for w in wavs])]
    np.savez(
        out,
        durations=np.array([em.duration for em in ems]),
        **{f"lp{i}": em.log_probs for i, em in enumerate(ems)},
    )


def load_emissions(path: Path, temperature: float = 1.0):  # type: ignore[no-untyped-def]
    from w2v2cli.records import Emissions

    data = np.load(path)
    out = []
    for i, duration in enumerate(data["durations"]):
        lp = data[f"lp{i}"].astype(np.float64)
        if temperature != 1.0:
            lp = lp / temperature
            lp = lp - np.logaddexp.reduce(lp, axis=1, keepdims=True)
        lp = lp.astype(np.float32)
        out.append(Emissions(lp, np.arange(len(lp)) * 0.02, 0.02, float(duration)))
    return out


# --------------------------------------------------------------------------- beam only


def beam_only(paths: dict[str, Path], rounds: int) -> tuple[list[str], dict]:  # type: ignore[type-arg]
    from w2v2cli.decoding.beam import BeamCore, beam_settings
    from w2v2cli.models.light import read_light
    from w2v2cli.options import DecodeOptions

    vocabulary = read_light(MODEL)[1]
    inputs = {
        "peaked": load_emissions(paths["logits"]),
        "soft (T=2)": load_emissions(paths["logits"], 2.0),
    }
    audio = sum(em.duration for em in inputs["peaked"])
    frames = np.concatenate([em.log_probs for em in inputs["peaked"]])
    soft = np.concatenate([em.log_probs for em in inputs["soft (T=2)"]])
    candidates = {
        "peaked": float((frames >= -5).sum(1).mean()),
        "soft (T=2)": float((soft >= -5).sum(1).mean()),
    }
    cores = {}
    for lm in (None, paths["lm"]):
        for engine in ENGINES:
            options = DecodeOptions(lm=lm, alpha=0.5, beta=1.0, workers=0, engine=engine)
            cores[lm is not None, engine] = BeamCore(beam_settings(vocabulary, options))
    times: dict[tuple[str, bool, str], list[float]] = {}
    texts: dict[tuple[str, bool, str], list[str]] = {}
    for r in range(rounds):
        for name, ems in inputs.items():
            for with_lm in (False, True):
                for engine in ENGINES if r % 2 == 0 else ENGINES[::-1]:
                    core = cores[with_lm, engine]
                    started = time.perf_counter()
                    out = [core.decode(em).text for em in ems]
                    wall = time.perf_counter() - started
                    times.setdefault((name, with_lm, engine), []).append(wall)
                    texts[name, with_lm, engine] = out
                    log(f"round {r + 1}: {name}, LM {with_lm}, {engine}: {wall:.2f} s")
    rows = [
        "| posteriors | LM | engine | decode s (median) | x real time, 1 thread | "
        "ctc-beam-decoder speed-up | same text |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: |",
    ]
    summary = {}
    for name in inputs:
        for with_lm in (False, True):
            fast, ref = times[name, with_lm, ENGINES[0]], times[name, with_lm, ENGINES[1]]
            ratio = statistics.median(b / a for a, b in zip(fast, ref, strict=True))
            same = sum(
                a == b
                for a, b in zip(
                    texts[name, with_lm, ENGINES[0]], texts[name, with_lm, ENGINES[1]], strict=True
                )
            )
            summary[name, with_lm] = ratio
            for engine in ENGINES:
                wall = statistics.median(times[name, with_lm, engine])
                lm_name = "4-gram" if with_lm else "none"
                speedup = f"**{ratio:.1f}x**" if engine == ENGINES[0] else "1.0x"
                rows.append(
                    f"| {name} (~{candidates[name]:.1f} candidates/frame) | {lm_name} "
                    f"| {engine} | {wall:.2f} | {audio / wall:.0f} | {speedup} | "
                    f"{same}/{len(inputs[name])} |"
                )
    for core in cores.values():
        core.close()
    head = [
        f"- input: {len(inputs['peaked'])} utterances, {audio:.0f} s of audio; "
        "candidates/frame = symbols at or above token_min_logp (-5), mean over frames"
    ]
    return head + [""] + rows, summary


# --------------------------------------------------------------------------- lm tune


def run_timed(args: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True, env=env, cwd=DATA)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{proc.stderr}")
    return wall, proc.stdout


def tune_end_to_end(paths: dict[str, Path], rounds: int) -> list[str]:
    base = [sys.executable, "-m", "w2v2cli"]
    tune_args = [
        *base,
        "lm",
        "tune",
        str(paths["manifest"]),
        "--lm",
        str(paths["lm"]),
        "-m",
        str(MODEL),
        "--backend",
        "torch",
        "--grid",
        "5",
        "-q",
    ]
    eval_args = [
        *base,
        "eval",
        str(paths["manifest"]),
        "-m",
        str(MODEL),
        "--backend",
        "torch",
        "--decoder",
        "greedy",
        "-q",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    walls: dict[str, list[float]] = {}
    best: dict[str, set[str]] = {}
    for r in range(rounds):
        order = ENGINES if r % 2 == 0 else ENGINES[::-1]
        for engine in order:
            wall, out = run_timed(tune_args, {**env, "W2V2_BEAM_ENGINE": engine})
            m = re.search(r"best: (--alpha \S+ --beta \S+)\s+\(WER ([\d.]+)%", out)
            best.setdefault(engine, set()).add(f"`{m.group(1)}` (WER {m.group(2)}%)" if m else "?")
            walls.setdefault(engine, []).append(wall)
            log(f"round {r + 1}: lm tune on {engine}: {wall:.1f} s")
        wall, _ = run_timed(eval_args, env)
        walls.setdefault("eval", []).append(wall)
        log(f"round {r + 1}: greedy eval: {wall:.1f} s")
    fast, ref = walls[ENGINES[0]], walls[ENGINES[1]]
    ratio = statistics.median(b / a for a, b in zip(fast, ref, strict=True))
    rows = [
        f"- command: `{' '.join(['w2v2', *tune_args[3:]])}` with `W2V2_BEAM_ENGINE` set; "
        f"{os.cpu_count()} decode workers (the default); greedy reference: "
        f"`{' '.join(['w2v2', *eval_args[3:]])}`",
        "",
        "| run | wall s (per round) | median | vs pyctcdecode | best pair |",
        "| --- | --- | ---: | ---: | --- |",
    ]
    for engine in ENGINES:
        speed = f"**{ratio:.2f}x**" if engine == ENGINES[0] else "1.00x"
        rows.append(
            f"| lm tune, {engine} | {', '.join(f'{w:.1f}' for w in walls[engine])} | "
            f"{statistics.median(walls[engine]):.1f} | {speed} | "
            f"{' / '.join(sorted(best[engine]))} |"
        )
    rows.append(
        f"| eval, greedy (no beam search) | {', '.join(f'{w:.1f}' for w in walls['eval'])}"
        f" | {statistics.median(walls['eval']):.1f} | | |"
    )
    same = best[ENGINES[0]] == best[ENGINES[1]] and len(best[ENGINES[0]]) == 1
    rows += ["", f"Same best pair on both engines in every round: {'yes' if same else 'NO'}."]
    return rows


# --------------------------------------------------------------------------- report


def machine() -> list[str]:
    from importlib.metadata import version

    cpu, flags = "unknown", set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name") and cpu == "unknown":
            cpu = line.split(":", 1)[1].strip()
        if line.startswith("flags") and not flags:
            flags = set(line.split(":", 1)[1].split())
    wanted = [
        f
        for f in sorted(flags)
        if f == "avx2" or f.startswith(("avx512", "amx")) or f == "avx_vnni"
    ]
    return [
        f"- date: {dt.datetime.now().strftime('%Y-%m-%d %H:%M')}",
        f"- machine: {os.cpu_count()} cores, {cpu}; CPU flags: {' '.join(wanted) or 'none'} "
        "(of avx2, avx512*, amx*, avx_vnni)",
        f"- ctc-beam-decoder {version('ctc-beam-decoder')}, pyctcdecode {version('pyctcdecode')}"
        f", kenlm {version('kenlm')}, numpy {np.__version__}, Python {platform.python_version()}",
        f"- load average before the run: {os.getloadavg()[0]:.2f} (other processes share "
        "this machine; ratios come from interleaved rounds)",
    ]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--utterances", type=int, default=40)
    p.add_argument("--skip-tune", action="store_true")
    p.add_argument("--write", action="store_true", help="write the report into RESULTS.md")
    args = p.parse_args()

    paths = ensure_data(args.utterances)
    lines = machine()
    lines += [
        f"- command: `python benchmarks/bench_engines.py {' '.join(sys.argv[1:])}`",
        f"- model: `tests/assets/espeak-tiny-en`; LM: 4-gram binary from Debian fortunes "
        f"({paths['lm'].stat().st_size / 1e6:.1f} MB); speech: held-out fortunes "
        "sentences, espeak-ng en-us",
        "",
        "### Beam search only",
        "",
    ]
    rows, _ = beam_only(paths, args.rounds)
    lines += rows
    if not args.skip_tune:
        lines += ["", "### `w2v2 lm tune` end to end", ""]
        lines += tune_end_to_end(paths, args.rounds)
    lines += ["", f"- load average after the run: {os.getloadavg()[0]:.2f}"]
    body = "\n".join(lines) + "\n"
    print(body)
    if args.write:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from bench_transcribe import write_section

        write_section(RESULTS, "beam search engines: ctc-beam-decoder vs pyctcdecode", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Word-time accuracy on speech with known word times (run by hand).

What it does
------------
1. Builds the tests' known-times speech (``tests/speech.py``: each word synthesised alone
   by espeak-ng, trimmed to where its sound is, joined with pauses of 50-400 ms, white
   noise under it): 65 words in 3 files, at each ``--noise`` level (RMS; the speech is
   about 0.1).
2. Runs the small trained test model (``tests/assets/espeak-tiny-en``, torch, the default
   chunking) once per file, then decodes the same emissions with and without word-end
   refinement (``Emissions.frame_energy`` removed: the letters' frames alone):
   ``align`` (forced alignment of the file's text; every word), ``greedy`` and ``beam``
   (beam width 100, no LM; the words recognisably the spoken ones, see
   ``speech.matched_errors``).
3. Prints, per configuration, the median and 90th percentile of the absolute start and end
   errors in milliseconds; ``--write`` puts the report into ``benchmarks/RESULTS.md``.

``--long MINUTES`` measures the windowed Viterbi instead: constructed log-probabilities of
that length (a 32-label alphabet, blank-dominated frames with a letter spike every 3.3
frames, about 15 letters per second, words of 5 letters) aligned to their text, with the
wall and CPU time and, in a second run, the peak of memory allocated during the search
(``tracemalloc``, which sees numpy's buffers and slows them down), at the default window
(20 s, 10 s committed), and for comparison on a shorter stretch in windows and in one.

Usage::

    python benchmarks/bench_alignment.py                    # noise 0.001 and 0.01
    python benchmarks/bench_alignment.py --noise 0.001 0.003 0.01 --write
    python benchmarks/bench_alignment.py --long 60 --write  # an hour of frames
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--noise", type=float, nargs="+", default=[0.001, 0.01])
    p.add_argument("--write", action="store_true", help="write the report into RESULTS.md")
    p.add_argument(
        "--long",
        type=float,
        metavar="MINUTES",
        help="time the windowed Viterbi on this many minutes of constructed frames",
    )
    args = p.parse_args()
    if args.long:
        return long_run(args)

    from speech import TRAINED_MODEL, matched_errors, timed_set

    from w2v2cli import Aligner
    from w2v2cli.decoding import GreedyDecoder
    from w2v2cli.decoding.beam import BeamDecoder
    from w2v2cli.inference import file_loader
    from w2v2cli.options import DecodeOptions, ModelOptions, RunOptions

    options = RunOptions(model=ModelOptions(str(TRAINED_MODEL), backend="torch"))
    rows = []
    with Aligner(options) as aligner, tempfile.TemporaryDirectory() as tmp:
        vocab = aligner.loaded.vocabulary
        greedy = GreedyDecoder(vocab)
        beam = BeamDecoder(vocab, DecodeOptions(decoder="beam", workers=0))
        for noise in args.noise:
            timed = timed_set(Path(tmp) / f"n{noise}", noise=noise)
            loaders = [file_loader(t.path, aligner.sampling_rate) for t in timed]
            ems = [em for _, em in aligner.emissions(loaders)]
            for refined in (False, True):
                errs: dict[str, tuple[list[float], list[float]]] = {}
                for t, em in zip(timed, ems, strict=True):
                    e = em if refined else dataclasses.replace(em, frame_energy=None)
                    words = aligner.align(e, t.text).words
                    s = np.array([w.start - a for w, (a, _) in zip(words, t.times, strict=True)])
                    n = np.array([w.end - b for w, (_, b) in zip(words, t.times, strict=True)])
                    for name, (st, en) in (
                        ("align", (s, n)),
                        ("greedy", matched_errors(greedy.decode(e).words, t)),
                        ("beam", matched_errors(beam.decode(e).words, t)),
                    ):
                        acc = errs.setdefault(name, ([], []))
                        acc[0].extend(st)
                        acc[1].extend(en)
                for name, (st, en) in errs.items():
                    rows.append(
                        (
                            noise,
                            name,
                            refined,
                            len(st),
                            1000 * np.abs(st),
                            1000 * np.abs(en),
                            1000 * np.median(en),
                        )
                    )
        beam.close()

    words = sum(len(t.split()) for t, _, _ in __import__("speech").TIMED_TEXTS)
    lines = [
        f"- date: {dt.datetime.now().strftime('%Y-%m-%d %H:%M')}",
        f"- machine: Python {platform.python_version()}, {platform.system()}",
        f"- command: `python benchmarks/bench_alignment.py {' '.join(sys.argv[1:])}`".rstrip(),
        f"- audio: {words} words synthesised one by one by espeak-ng (en-us, en), trimmed to "
        "their sound (5 ms RMS within 40 dB of the word's peak), joined with 50-400 ms "
        "pauses, white noise of the given RMS under everything (speech RMS about 0.1)",
        "- model: tests/assets/espeak-tiny-en (torch, float32, 20 s chunks); `align` aligns "
        "each file's text (every word counts); `greedy` and `beam` (width 100, no LM) count "
        "the words they recognisably got (spelling at least 75% alike, not merged)",
        "- refined: word-end refinement from frame loudness (decoding/alignment.py); raw: the "
        "first and last letter frames only",
        "",
        "| noise | decoder | times | words | start median ms | start p90 ms | end median ms "
        "| end p90 ms | end signed median ms |",
        "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for noise, name, refined, n, st, en, signed in rows:
        lines.append(
            f"| {noise:g} | {name} | {'refined' if refined else 'raw'} | {n} | "
            f"{np.median(st):.0f} | {np.percentile(st, 90):.0f} | {np.median(en):.0f} | "
            f"{np.percentile(en, 90):.0f} | {signed:+.0f} |"
        )
    body = "\n".join(lines) + "\n"
    print(body)
    if args.write:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from bench_transcribe import write_section

        write_section(RESULTS, "word times on known-times speech", body)
    return 0


def constructed(minutes: float, seed: int = 0):
    """Log-probabilities of ``minutes`` of speech-like frames and the text they spell."""
    from w2v2cli.alignment.viterbi import AlignToken

    rng = np.random.default_rng(seed)
    frames = int(minutes * 60 * 50)
    vocab = 32
    lp = rng.normal(-9.0, 2.0, (frames, vocab))
    lp[:, 0] = -0.05  # blank
    spikes = np.arange(30, 3 * frames - 30, 10) // 3
    letters = rng.integers(5, vocab, spikes.size)
    lp[spikes, letters] = -0.05
    lp[spikes, 0] = -4.0
    tokens = []
    for i, letter in enumerate(letters):
        if i and i % 5 == 0:
            tokens.append(AlignToken(4, optional=True))
        if tokens and not tokens[-1].optional and tokens[-1].label == letter:
            continue  # a doubled letter would need a blank frame the spikes do not leave
        tokens.append(AlignToken(int(letter)))
    return lp.astype(np.float32), tokens


def long_run(args: argparse.Namespace) -> int:
    import time
    import tracemalloc

    from w2v2cli.alignment.viterbi import build_graph, forced_states

    rows = []
    for minutes, window in (
        (args.long, None),
        (min(args.long, 2.0), None),
        (min(args.long, 2.0), 10**7),
    ):
        lp, tokens = constructed(minutes)
        graph = build_graph(tokens, 0, lp.shape[1])
        kw = {} if window is None else {"window": window, "commit": window}
        started, cpu = time.perf_counter(), time.process_time()
        forced_states(lp, graph, **kw)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        tracemalloc.start()  # a second run for memory: tracing slows numpy down a lot
        forced_states(lp, graph, **kw)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        rows.append(
            (
                minutes,
                "one window" if window else "20 s windows, 10 s kept",
                lp.shape[0],
                graph.num_states,
                wall,
                cpu,
                peak,
            )
        )
        print(rows[-1], file=sys.stderr)
    lines = [
        f"- date: {dt.datetime.now().strftime('%Y-%m-%d %H:%M')}",
        f"- machine: Python {platform.python_version()}, {platform.system()}, "
        f"numpy {np.__version__}",
        f"- command: `python benchmarks/bench_alignment.py {' '.join(sys.argv[1:])}`",
        "- input: constructed log-probabilities (32 labels, a letter spike every 3.3 frames, "
        "5-letter words with an optional delimiter between), aligned to their text",
        "- peak: memory allocated during the search, measured in a second run "
        "(tracemalloc; the log-probabilities themselves excluded)",
        "",
        "| audio | search | frames | states | wall s | CPU s | CPU s per audio hour | peak MB |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for minutes, how, frames, states, wall, cpu, peak in rows:
        lines.append(
            f"| {minutes:g} min | {how} | {frames} | {states} | {wall:.1f} | "
            f"{cpu:.1f} | {cpu * 60 / minutes:.0f} | {peak / 1e6:.1f} |"
        )
    body = "\n".join(lines) + "\n"
    print(body)
    if args.write:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from bench_transcribe import write_section

        write_section(RESULTS, "forced alignment: time and memory of the search", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

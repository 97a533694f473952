"""Beam-search decoding speed with a 4-gram KenLM model, 1 vs 2 workers (run by hand).

What it does
------------
1. Builds once, under ``benchmarks/_data/beam/`` (git-ignored), a text corpus from a
   seeded random "language" (5,000 made-up words; each word has a Zipf-weighted set of
   likely successors, so n-grams carry real information), and a 4-gram binary KenLM model
   from it with ``w2v2 lm build`` (``lmplz`` + ``build_binary`` from ``lm/bin``).
2. Makes CTC log-probabilities for held-out sentences of the same language, shaped like a
   real wav2vec2 model's output at 50 frames per second: each character lasts 2-4 frames
   (its first frame peaked, the rest repeats or blanks), words are separated by ``|`` and
   blanks, about half the frames are blank, 8% of characters are confused with another
   letter (greedy then misspells the word and the LM has work to do), and every frame gets
   random mass on the other symbols. ``--utterances`` (default 2000) of 3-25 words: several
   hours of "audio".
3. Decodes them all with ``BeamDecoder`` (beam width 100 by default) through ``submit``, the
   path the pipeline uses, with 0 workers (in-process), 1 worker and 2 workers (a process
   pool created once), and with greedy decoding for reference; reports wall time, x real
   time and the WER of each against the true sentences.

Usage::

    python benchmarks/bench_beam.py --write          # full run, written to RESULTS.md
    python benchmarks/bench_beam.py --utterances 200 # a quick look
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "benchmarks" / "_data" / "beam"
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
sys.path.insert(0, str(ROOT))

VOCAB = ["<pad>", "<s>", "</s>", "<unk>", "|", *"ETAONIHSRDLUMWCFGYPBVK'XJQZ"]
LETTERS = "ETAONIHSRDLUMWCFGYPBVKXJQZ"
LETTER_WEIGHTS = np.array(
    [
        12.7,
        9.1,
        8.2,
        7.5,
        6.7,
        7.0,
        6.1,
        6.3,
        6.0,
        4.3,
        4.0,
        2.8,
        2.4,
        2.4,
        2.8,
        2.2,
        2.0,
        2.0,
        1.9,
        1.5,
        1.0,
        0.8,
        0.2,
        0.2,
        0.1,
        0.1,
    ]
)


class Language:
    """A seeded random language: words and a successor distribution for each word."""

    def __init__(self, words: int = 5000, successors: int = 30, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        p = LETTER_WEIGHTS / LETTER_WEIGHTS.sum()
        vocab: set[str] = set()
        while len(vocab) < words:
            n = int(rng.integers(2, 9))
            vocab.add("".join(rng.choice(list(LETTERS), size=n, p=p)))
        self.words = sorted(vocab)
        zipf = 1.0 / np.arange(1, words + 1) ** 1.1
        self.unigram = zipf / zipf.sum()
        self.next_ids = rng.choice(words, size=(words, successors), p=self.unigram)
        w = 1.0 / np.arange(1, successors + 1)
        self.next_p = w / w.sum()

    def sentence(self, rng: np.random.Generator, n_words: int) -> str:
        i = int(rng.choice(len(self.words), p=self.unigram))
        out = [self.words[i]]
        for _ in range(n_words - 1):
            i = int(self.next_ids[i, rng.choice(len(self.next_p), p=self.next_p)])
            out.append(self.words[i])
        return " ".join(out)


def emissions_for(text: str, rng: np.random.Generator):
    """CTC log-probabilities (50 frames/s) that spell ``text``, with noise and confusions."""
    from w2v2cli.records import Emissions

    ids = {t: i for i, t in enumerate(VOCAB)}
    path: list[tuple[int, float, int | None]] = []  # (id, peak prob, confused id)
    for _ in range(int(rng.integers(5, 20))):
        path.append((0, 0.95, None))
    for w, word in enumerate(text.split()):
        if w:
            path += [(ids["|"], 0.9, None), (0, 0.9, None)]
        for ch in word:
            confused = None
            if rng.random() < 0.08:
                confused = ids[LETTERS[int(rng.integers(len(LETTERS)))]]
            length = int(rng.integers(2, 5))
            path.append((ids[ch], float(rng.uniform(0.6, 0.95)), confused))
            for _ in range(length - 1):
                if rng.random() < 0.5:
                    path.append((0, float(rng.uniform(0.6, 0.95)), None))
                else:
                    path.append((ids[ch], float(rng.uniform(0.5, 0.9)), confused))
    for _ in range(int(rng.integers(5, 20))):
        path.append((0, 0.95, None))
    t = len(path)
    noise = rng.dirichlet(np.full(len(VOCAB), 0.3), size=t)
    probs = np.empty((t, len(VOCAB)))
    for k, (i, peak, confused) in enumerate(path):
        row = noise[k] * (1.0 - peak)
        if confused is not None:
            share = float(rng.uniform(0.4, 0.7))  # the wrong letter usually wins
            row[confused] += peak * share
            row[i] += peak * (1.0 - share)
        else:
            row[i] += peak
        probs[k] = row
    log_probs = np.log(np.maximum(probs, 1e-12)).astype(np.float32)
    starts = np.arange(t, dtype=np.float64) * 0.02
    return Emissions(log_probs, starts, 0.02, t * 0.02)


def ensure_lm(lang: Language, sentences: int) -> Path:
    """Build (once) the corpus and a 4-gram binary LM for the model's alphabet."""
    from w2v2cli.lm import build_lm
    from w2v2cli.records import Vocabulary

    lm_path = DATA / f"lm4-{sentences}.bin"
    if lm_path.is_file():
        return lm_path
    DATA.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    corpus = DATA / f"corpus-{sentences}.txt"
    with corpus.open("w") as f:
        for _ in range(sentences):
            f.write(lang.sentence(rng, int(rng.integers(3, 25))) + "\n")
    vocab = Vocabulary(tuple(VOCAB), 0, 4, frozenset({0, 1, 2, 3}))
    started = time.perf_counter()
    build_lm([corpus], lm_path, order=4, vocab=vocab)
    print(
        f"built {lm_path} from {sentences} sentences in {time.perf_counter() - started:.0f} s",
        file=sys.stderr,
    )
    return lm_path


def run(decoder, items) -> tuple[float, list[str]]:
    started = time.perf_counter()
    futures = [decoder.submit(em) for _, em in items]
    texts = [f.result().text for f in futures]
    return time.perf_counter() - started, texts


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--utterances", type=int, default=2000)
    p.add_argument("--beam-width", type=int, default=100)
    p.add_argument("--corpus-sentences", type=int, default=200_000)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument(
        "--engine", default="auto", help="beam-search engine: auto, ctc-beam-decoder or pyctcdecode"
    )
    p.add_argument("--write", action="store_true", help="write the report into RESULTS.md")
    args = p.parse_args()

    import jiwer

    from w2v2cli.decoding import GreedyDecoder
    from w2v2cli.decoding.beam import BeamDecoder
    from w2v2cli.options import DecodeOptions
    from w2v2cli.records import Vocabulary

    lang = Language()
    lm_path = ensure_lm(lang, args.corpus_sentences)
    rng = np.random.default_rng(7)
    items = []
    for _ in range(args.utterances):
        text = lang.sentence(rng, int(rng.integers(3, 26)))
        items.append((text, emissions_for(text, rng)))
    audio = sum(em.duration for _, em in items)
    refs = [t for t, _ in items]
    vocab = Vocabulary(tuple(VOCAB), 0, 4, frozenset({0, 1, 2, 3}))
    print(f"{len(items)} utterances, {audio / 3600:.2f} h of frames", file=sys.stderr)

    rows = []
    greedy = GreedyDecoder(vocab)
    wall, texts = run(greedy, items)
    rows.append(("greedy", "-", wall, jiwer.wer(refs, texts)))
    for workers in args.workers:
        options = DecodeOptions(
            decoder="beam",
            lm=lm_path,
            beam_width=args.beam_width,
            workers=workers,
            engine=args.engine,
        )
        with BeamDecoder(vocab, options) as decoder:
            decoder.submit(items[0][1]).result()  # start the pool and load the LM first
            wall, texts = run(decoder, items)
            engine = decoder.engine
        rows.append(
            (
                f"beam {args.beam_width} + 4-gram ({engine})",
                str(workers),
                wall,
                jiwer.wer(refs, texts),
            )
        )
        print(f"  workers={workers}: {wall:.1f} s", file=sys.stderr)

    lines = [
        f"- date: {dt.datetime.now().strftime('%Y-%m-%d %H:%M')}",
        f"- machine: {os.cpu_count()} cores, Python {platform.python_version()}",
        f"- command: `python benchmarks/bench_beam.py {' '.join(sys.argv[1:])}`".replace(
            " `", " `"
        ).rstrip(),
        f"- LM: 4-gram binary KenLM from {args.corpus_sentences:,} sentences of a seeded random "
        f"language of 5,000 words ({lm_path.stat().st_size / 1e6:.0f} MB)",
        f"- input: {len(items)} utterances of constructed CTC log-probabilities, "
        f"{audio / 3600:.2f} h at 50 frames/s, 8% of letters confused",
        "- timed: `submit` of every utterance and collecting the results; pool start and LM "
        "load excluded (one warm-up utterance)",
        "",
        "| decoder | workers | wall s | x RT | WER |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, workers, wall, wer in rows:
        lines.append(f"| {name} | {workers} | {wall:.1f} | {audio / wall:.0f} | {100 * wer:.1f}% |")
    body = "\n".join(lines) + "\n"
    print(body)
    if args.write:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from bench_transcribe import write_section

        section = "beam search decoding"
        if args.engine != "auto":
            section += f" ({args.engine})"
        write_section(RESULTS, section, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Real speech for accuracy tests: sentences spoken by espeak-ng, and the small trained model
in ``tests/assets/espeak-tiny-en`` that recognises them (fixtures ``speech`` and
``trained_model`` in conftest.py)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

TRAINED_MODEL = Path(__file__).parent / "assets" / "espeak-tiny-en"

SENTENCES = [
    "the quick brown fox jumps over the lazy dog",
    "a journey of a thousand miles begins with a single step",
    "please call stella and ask her to bring these things with her",
    "she sells sea shells by the sea shore",
    "never put off till tomorrow what you can do today",
    "all that glitters is not gold",
    "the early bird catches the worm",
    "actions speak louder than words",
    "where there is smoke there is fire",
    "a picture is worth a thousand words",
    "the pen is mightier than the sword",
    "time and tide wait for no man",
]


@dataclass(frozen=True)
class Speech:
    paths: list[Path]  # one WAV per sentence (espeak-ng: 22.05 kHz mono)
    references: list[str]  # upper case, as the model writes
    long: Path  # every sentence in a row with pauses, about 40 s: chunked with stride


def synthesise(folder: Path) -> Speech:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, text in enumerate(SENTENCES):
        path = folder / f"s{i:02d}.wav"
        voice = "en-us" if i % 2 == 0 else "en"
        subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(path), text], check=True)
        paths.append(path)
    pieces = []
    rate = 22050
    for path in paths:
        audio, rate = sf.read(path, dtype="float32")
        pieces += [audio, np.zeros(int(0.6 * rate), np.float32)]
    long = folder / "long.wav"
    sf.write(long, np.concatenate(pieces), rate)
    return Speech(paths, [s.upper() for s in SENTENCES], long)


# Speech whose word times are known: each word synthesised on its own by espeak-ng, trimmed
# to where its sound is, and joined with pauses of known length (tests of forced alignment,
# word-end refinement and VAD).

TIMED_TEXTS = [
    (
        "the quick brown fox jumps over the lazy dog a journey of a thousand miles begins "
        "with a single step",
        (0.08, 0.25, 0.15, 0.4, 0.05),
        "en-us",
    ),
    (
        "please call stella and ask her to bring these things with her from the store six "
        "spoons of fresh snow peas",
        (0.3, 0.1, 0.05, 0.2),
        "en",
    ),
    (
        "she sells sea shells by the sea shore never put off till tomorrow what you can do "
        "today all that glitters is not gold",
        (0.12, 0.35, 0.06),
        "en-us",
    ),
]
RATE = 16000
#: A frame of 5 ms belongs to a word's sound when its RMS is within 40 dB of the word's
#: loudest frame; the word's times are the first and last such frame.
TRIM_DB = 40.0


@dataclass(frozen=True)
class TimedSpeech:
    path: Path  # 16 kHz mono WAV
    text: str
    words: list[str]
    times: list[tuple[float, float]]  # where each word's sound starts and ends (s)


def spoken_word(word: str, voice: str, folder: Path) -> np.ndarray:
    """One word by espeak-ng at 16 kHz, trimmed to its sound (``TRIM_DB``)."""
    import soxr

    path = folder / "word.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(path), word], check=True)
    audio, rate = sf.read(path, dtype="float32")
    audio = soxr.resample(audio, rate, RATE).astype(np.float32)
    win = RATE // 200
    n = len(audio) // win
    rms = np.sqrt(np.square(audio[: n * win].reshape(n, win)).mean(axis=1))
    loud = np.flatnonzero(rms > rms.max() * 10 ** (-TRIM_DB / 20))
    return audio[loud[0] * win : (loud[-1] + 1) * win]


def timed_speech(
    folder: Path,
    text: str,
    pauses: tuple[float, ...],
    voice: str,
    *,
    lead: float = 0.5,
    noise: float = 0.001,
    seed: int = 0,
    name: str = "timed.wav",
) -> TimedSpeech:
    """``text`` word by word with ``pauses`` (cycled) between words, ``lead`` seconds of
    silence at both ends, and white noise of RMS ``noise`` everywhere (0.001: about 40 dB
    below the speech), so that silence is not digital zero."""
    folder.mkdir(parents=True, exist_ok=True)
    words = text.split()
    pieces = [np.zeros(int(lead * RATE), np.float32)]
    position = len(pieces[0])
    times = []
    for i, word in enumerate(words):
        audio = spoken_word(word, voice, folder)
        times.append((position / RATE, (position + len(audio)) / RATE))
        gap = int((pauses[i % len(pauses)] if i < len(words) - 1 else lead) * RATE)
        pieces += [audio, np.zeros(gap, np.float32)]
        position += len(audio) + gap
    signal = np.concatenate(pieces)
    signal += noise * np.random.default_rng(seed).standard_normal(len(signal)).astype(np.float32)
    path = folder / name
    sf.write(path, signal, RATE)
    return TimedSpeech(path, text, words, times)


def timed_set(folder: Path, noise: float = 0.001) -> list[TimedSpeech]:
    """The ``TIMED_TEXTS``, one file each."""
    return [
        timed_speech(folder, text, pauses, voice, noise=noise, seed=i, name=f"timed{i}.wav")
        for i, (text, pauses, voice) in enumerate(TIMED_TEXTS)
    ]


def timed_concat(parts: list[TimedSpeech], path: Path) -> TimedSpeech:
    """Several timed files one after another: a long file whose word times are known."""
    pieces, words, times = [], [], []
    offset = 0
    for part in parts:
        audio, rate = sf.read(part.path, dtype="float32")
        assert rate == RATE
        pieces.append(audio)
        words += part.words
        times += [(s + offset / RATE, e + offset / RATE) for s, e in part.times]
        offset += len(audio)
    sf.write(path, np.concatenate(pieces), RATE)
    return TimedSpeech(path, " ".join(words), words, times)


def matched_errors(words, timed: TimedSpeech, min_ratio: float = 0.75):
    """Start and end errors (s) of the decoded ``words`` that are recognisably words of
    ``timed``: each goes with the spoken word it overlaps most in time, if their spellings
    are at least ``min_ratio`` alike (difflib) and no other decoded word goes with that
    spoken word. Decoders misspell, merge and split words; merged ("JUMPSOVER") and split
    ones ("TH O") are left out."""
    import difflib

    best: dict[int, list] = {}
    for w in words:
        overlaps = [min(w.end, e) - max(w.start, s) for s, e in timed.times]
        i = int(np.argmax(overlaps))
        if overlaps[i] > 0:
            best.setdefault(i, []).append(w)
    starts, ends = [], []
    for i, found in sorted(best.items()):
        if len(found) != 1:
            continue
        w = found[0]
        ratio = difflib.SequenceMatcher(a=w.text.upper(), b=timed.words[i].upper()).ratio()
        if ratio >= min_ratio:
            starts.append(w.start - timed.times[i][0])
            ends.append(w.end - timed.times[i][1])
    return np.array(starts), np.array(ends)

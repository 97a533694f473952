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
        subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(path), text],
                       check=True)  # fmt: skip
        paths.append(path)
    pieces = []
    rate = 22050
    for path in paths:
        audio, rate = sf.read(path, dtype="float32")
        pieces += [audio, np.zeros(int(0.6 * rate), np.float32)]
    long = folder / "long.wav"
    sf.write(long, np.concatenate(pieces), rate)
    return Speech(paths, [s.upper() for s in SENTENCES], long)

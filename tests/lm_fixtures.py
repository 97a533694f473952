"""Helpers for the LM and beam-search tests: vocabularies, generated corpora, real KenLM
models built once per session, and CTC emissions constructed for known sentences.

Imported by ``test_lm.py`` and ``test_beam.py`` (pytest puts ``tests/`` on ``sys.path``).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from w2v2cli.records import Emissions, Vocabulary

EN_UPPER = ["<pad>", "<s>", "</s>", "<unk>", "|", *"ETAONIHSRDLUMWCFGYPBVK'XJQZ"]
EN_LOWER = ["<pad>", "<s>", "</s>", "<unk>", "|", *"etaonihsrdlumwcfgypbvk'xjqz"]
GREEK = ["<pad>", "<s>", "</s>", "<unk>", "|", *"αβγδεζηθικλμνξοπρσςτυφχψωάέήίόύώ"]


def make_vocab(tokens: Sequence[str]) -> Vocabulary:
    """A wav2vec2-style vocabulary: blank <pad>, delimiter |, specials <s> </s> <unk>."""
    specials = {tokens.index(t) for t in ("<pad>", "<s>", "</s>", "<unk>") if t in tokens}
    return Vocabulary(
        tokens=tuple(tokens),
        blank_id=tokens.index("<pad>"),
        delimiter_id=tokens.index("|") if "|" in tokens else None,
        special_ids=frozenset(specials),
    )


# A small world: "THE CAT SAT ON THE MAT" is frequent, "BAT" exists but never sits, so
# a C/B confusion is fixed by context and a C/K confusion ("KAT") by the vocabulary.
_SUBJECTS = ["THE CAT", "A CAT", "THE DOG", "MY FRIEND", "THE BIRD", "A BIG DOG"]
_VERBS = ["SAT ON", "SLEPT ON", "LOOKED AT", "RAN TO", "WALKED TO"]
_OBJECTS = ["THE MAT", "A HAT", "THE HOUSE", "THE GARDEN", "THE RED CHAIR", "MY BED"]
_EXTRA = ["THE BAT FLEW AWAY", "A BAT FLEW OVER THE HOUSE", "THE BAT HID IN THE TREE"]

_GR_SUBJECTS = ["η γάτα", "ο σκύλος", "το πουλί", "η φίλη μου"]
_GR_VERBS = ["κάθεται στο", "κοιμάται στο", "τρέχει στο"]
_GR_OBJECTS = ["χαλί", "σπίτι", "κρεβάτι", "δάσος"]


def english_sentences(n: int = 400, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    out = [f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}" for _ in range(n)]
    out += _EXTRA * 5
    return out


def greek_sentences(n: int = 300, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [
        f"{rng.choice(_GR_SUBJECTS)} {rng.choice(_GR_VERBS)} {rng.choice(_GR_OBJECTS)}"
        for _ in range(n)
    ]


@dataclass(frozen=True)
class BuiltLMs:
    """Every LM the tests use, built once per session from generated text."""

    root: Path
    upper_bin: Path  # upper-case, binary, NAME.unigrams.txt beside it
    upper_arpa: Path  # same text, ARPA
    lower_arpa: Path  # lower-case LM (case mismatch with the upper model)
    mixed_arpa: Path  # Title Case LM (cannot be mapped to one case)
    greek_bin: Path
    model_dir: Path  # a model folder with language_model/ and alphabet.json
    corpus: Path


_CACHE: dict[str, BuiltLMs] = {}


def require_kenlm_tools() -> None:
    """The KenLM tools must be there (``install.sh`` builds them): a missing tool fails the
    test with the command that builds it, rather than skipping what CI must check."""
    from w2v2cli.lm import find_kenlm_tool

    find_kenlm_tool("lmplz")
    find_kenlm_tool("build_binary")


def built_lms(factory: pytest.TempPathFactory) -> BuiltLMs:
    """Build (once per session) the test LMs with the real ``build_lm``."""
    if "lms" in _CACHE:
        return _CACHE["lms"]
    require_kenlm_tools()
    from w2v2cli.lm import build_lm

    root = factory.mktemp("lms")
    upper = make_vocab(EN_UPPER)
    corpus = root / "corpus.txt"
    sentences = english_sentences()
    # Mixed case and punctuation on purpose: normalisation folds it for the model.
    corpus.write_text(
        "\n".join(s.capitalize() + "." if i % 3 == 0 else s for i, s in enumerate(sentences)),
        encoding="utf-8",
    )
    (root / "upper").mkdir()
    upper_bin = build_lm([corpus], root / "upper" / "lm.bin", 3, vocab=upper).lm_path
    upper_arpa = build_lm(
        [corpus], root / "upper_arpa" / "lm.arpa", 3, vocab=upper, binary=False
    ).lm_path
    lower_arpa = build_lm(
        [corpus], root / "lower" / "lm.arpa", 3, vocab=make_vocab(EN_LOWER), binary=False
    ).lm_path
    title = root / "title.txt"
    title.write_text("\n".join(s.title() for s in sentences), encoding="utf-8")
    mixed_arpa = build_lm([title], root / "mixed" / "lm.arpa", 3, binary=False).lm_path
    greek_text = root / "greek.txt"
    greek_text.write_text("\n".join(greek_sentences()), encoding="utf-8")
    greek_bin = build_lm(
        [greek_text], root / "greek" / "lm.bin", 3, vocab=make_vocab(GREEK)
    ).lm_path
    model_dir = root / "model"
    build_lm([corpus], root / "for_model" / "lm.bin", 3, vocab=upper, model_dir_out=model_dir)
    _CACHE["lms"] = BuiltLMs(
        root=root,
        upper_bin=upper_bin,
        upper_arpa=upper_arpa,
        lower_arpa=lower_arpa,
        mixed_arpa=mixed_arpa,
        greek_bin=greek_bin,
        model_dir=model_dir,
        corpus=corpus,
    )
    return _CACHE["lms"]


# --------------------------------------------------------------------------- emissions


def emissions_for(
    text: str,
    vocab: Vocabulary,
    *,
    confusions: dict[int, tuple[str, float, float]] | None = None,
    extra: dict[int, tuple[str, float]] | None = None,
    frame_duration: float = 0.02,
    offset: float = 0.5,
    jump_after: int | None = None,
    jump: float = 0.37,
    peak: float = 0.9,
) -> tuple[Emissions, list[tuple[str, int, int]]]:
    """CTC log-probabilities that spell ``text``, and the true ``(word, first, end)`` frames.

    Each character gets one frame (``peak`` probability) followed by a blank frame; a space
    becomes a delimiter frame and a blank. ``confusions[i] = (wrong, p_wrong, p_right)``
    makes character ``i`` ambiguous (greedy picks ``wrong`` when ``p_wrong > p_right``).
    ``extra[frame_index] = (token, p)`` inserts a frame where ``token`` has probability
    ``p`` (e.g. an ``<unk>``). The rest of each frame's mass is spread over the other ids.
    Frames start at ``offset`` and, after frame ``jump_after``, ``jump`` seconds later than
    an even spacing would say (stitched chunks are not evenly spaced).
    """
    confusions = confusions or {}
    extra = extra or {}
    ids = {t: i for i, t in enumerate(vocab.tokens)}
    delim = vocab.tokens[vocab.delimiter_id] if vocab.delimiter_id is not None else " "
    blank = vocab.tokens[vocab.blank_id]
    frames: list[dict[str, float]] = []
    spans: list[tuple[str, int, int]] = []
    word_start: int | None = None
    for i, ch in enumerate(text):
        if ch == " ":
            frames.append({delim: peak})
            frames.append({blank: peak})
            continue
        if word_start is None:
            word_start = len(frames)
        if i in confusions:
            wrong, p_wrong, p_right = confusions[i]
            frames.append({wrong: p_wrong, ch: p_right})
        else:
            frames.append({ch: peak})
        if i + 1 == len(text) or text[i + 1] == " ":
            word = text[text.rfind(" ", 0, i) + 1 : i + 1]
            spans.append((word, word_start, len(frames)))
            word_start = None
        frames.append({blank: peak})
    for at in sorted(extra):
        token, p = extra[at]
        frames.insert(at, {token: p})
        spans = [(w, s + (s >= at), e + (e > at)) for w, s, e in spans]
    probs = np.zeros((len(frames), vocab.size), dtype=np.float64)
    for t, frame in enumerate(frames):
        rest = 1.0 - sum(frame.values())
        others = [i for tok, i in ids.items() if tok not in frame]
        probs[t, others] = rest / len(others)
        for tok, p in frame.items():
            probs[t, ids[tok]] = p
    starts = offset + frame_duration * np.arange(len(frames), dtype=np.float64)
    if jump_after is not None:
        starts[jump_after + 1 :] += jump
    emissions = Emissions(
        log_probs=np.log(probs).astype(np.float32),
        frame_starts=starts,
        frame_duration=frame_duration,
        duration=float(starts[-1] + frame_duration + 0.5),
    )
    return emissions, spans


# --------------------------------------------------------------------------- engines

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def dependency_markers() -> dict[str, str]:
    """``{package: environment marker}`` of the base dependencies that carry one, read
    from pyproject.toml's ``dependencies`` list (a plain text scan: ``tomllib`` is Python
    3.11+)."""
    import re

    text = PYPROJECT.read_text(encoding="utf-8")
    start = text.index("\ndependencies = [")
    block = text[start : text.index("\n]", start)]
    out = {}
    for line in block.splitlines():
        m = re.match(r'\s*"([A-Za-z0-9_.-]+)[^";]*;\s*([^"]+)",', line)
        if m:
            out[m.group(1)] = m.group(2).strip()
    return out


#: Which of CI's two test environments this is: unset in the main one (what users install:
#: ctc-beam-decoder, numpy 2), ``pyctcdecode`` in the second (``.ci/pyctcdecode``), where
#: pyctcdecode and the kenlm module must be installed.
TEST_ENV = "W2V2_TEST_ENV"
#: How a test that needs pyctcdecode says where it runs instead (``conftest`` fails a test
#: that skips with it but lacks the ``pyctcdecode`` marker: CI would run it nowhere).
SECOND_ENVIRONMENT = "its tests run in CI's second environment (.ci/pyctcdecode)"


def ctc_beam_decoder_platform() -> bool:
    """Whether pyproject.toml installs ctc-beam-decoder on this platform. On Linux its wheel
    also needs glibc >= 2.35, which its marker cannot see (install.sh installs without it)."""
    import platform
    import sys

    from packaging.markers import Marker

    if not Marker(dependency_markers()["ctc-beam-decoder"]).evaluate():
        return False
    if sys.platform == "linux":
        lib, version = platform.libc_ver()
        return lib == "glibc" and tuple(map(int, version.split(".")[:2])) >= (2, 35)
    return True


def engine_expected_here(name: str) -> bool:
    """Whether this test environment must have the engine: ctc-beam-decoder where
    pyproject.toml installs it; pyctcdecode where it is the engine instead (no
    ctc-beam-decoder wheel) and in CI's second environment (``W2V2_TEST_ENV=pyctcdecode``)."""
    import os

    if name == "pyctcdecode":
        return os.environ.get(TEST_ENV) == "pyctcdecode" or not ctc_beam_decoder_platform()
    return ctc_beam_decoder_platform()


def require_engine(name: str) -> None:
    """Skip a test for an engine that is not installed where this environment need not have
    it; fail where it must be there, so CI cannot skip what it must check. A test that
    needs pyctcdecode carries the ``pyctcdecode`` marker (conftest calls this for it)."""
    from w2v2cli.decoding.beam_engines import engine_problem

    problem = engine_problem(name, True)
    if problem is None:
        return
    if engine_expected_here(name):
        pytest.fail(f"{name} should be installed in this environment: {problem}")
    if name == "pyctcdecode":
        pytest.skip(f"{name}: {problem}; {SECOND_ENVIRONMENT}")
    pytest.skip(f"{name}: {problem}")

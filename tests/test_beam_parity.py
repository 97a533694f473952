"""Parity: ctc-beam-decoder against pyctcdecode, the reference, on real model outputs.

Inputs are log-probabilities of real models on espeak-ng speech:

- **peaked**: the small trained model (``tests/assets``) as it is: most frames have one
  candidate above ``token_min_logp``;
- **soft**: the same at temperature 2 (``log_softmax(log_probs / 2)``), as a less certain
  model gives them: several candidates per frame, many more beams alive;
- **random**: a random-weight model on noise: near ties everywhere, ~27 of 32 symbols
  above ``token_min_logp`` in a frame.

Both engines get the same labels and settings through ``engines.open_search`` (what
``BeamCore`` uses), the same 4-gram binary KenLM built here from half of the spoken
sentences plus the generated corpus (so some sentences are in the LM and some are not),
with and without hotwords. Compared: the best beam's words and each word's frame range,
from which word times and confidences follow.

**Measured when written** (ctc-beam-decoder 0.2.0, pyctcdecode 0.5.0, numpy 1.26.4): the
same words and frames on every input of every configuration below, 62 of 62 comparisons.
None differed, not even by the order in which pyctcdecode visits a frame's candidates (a
Python set, whose order decides between equal-scoring beams; ctc-beam-decoder's README
measures order-only differences on 9 of its 72 recordings). So the tests below demand
identity; should a difference appear, its message says whether pyctcdecode itself gives
ctc-beam-decoder's answer when it visits candidates in ascending or descending order (an
order-only difference, to be counted here) or not (a real one).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from lm_fixtures import EN_LOWER, english_sentences, make_vocab, require_engine
from speech import SENTENCES

from w2v2cli.decoding.beam import BeamDecoder, beam_settings, lm_spec
from w2v2cli.decoding.beam_engines import SearchParams, WordFrames, open_search
from w2v2cli.options import DecodeOptions, ModelOptions, RunOptions
from w2v2cli.records import Emissions

pytestmark = [pytest.mark.slow, pytest.mark.pyctcdecode]  # both engines in every test

HOTWORDS = ("SWORD", "TIDE", "WORM")  # words of sentences the LM was not built from


@pytest.fixture(scope="module", autouse=True)
def _both_engines() -> None:
    require_engine("ctc-beam-decoder")
    require_engine("pyctcdecode")


def _emissions(model: Path, loaders: list) -> tuple[list[Emissions], object]:
    from w2v2cli import Transcriber

    options = RunOptions(model=ModelOptions(str(model), backend="torch"))
    with Transcriber(options) as t:
        out = [em for _, em in t.emissions(loaders)]
        vocabulary = t.loaded.vocabulary
    assert all(isinstance(em, Emissions) for em in out)
    return out, vocabulary


@pytest.fixture(scope="module")
def trained(trained_model: Path, speech) -> tuple[list[Emissions], object]:
    from w2v2cli.inference import file_loader

    return _emissions(trained_model, [file_loader(p, 16000) for p in speech.paths])


@pytest.fixture(scope="module")
def random_model(group_model: Path) -> tuple[list[Emissions], object]:
    from conftest import noise_audio

    return _emissions(group_model, [lambda i=i: noise_audio(3.0, i) for i in range(2)])


@pytest.fixture(scope="module")
def lms(tmp_path_factory: pytest.TempPathFactory, trained) -> dict[str, Path]:
    """4-gram binary LMs from the first half of the spoken sentences and the generated
    corpus: one in the model's (upper) case, one in lower case."""
    from lm_fixtures import require_kenlm_tools

    from w2v2cli.lm import build_lm

    require_kenlm_tools()
    root = tmp_path_factory.mktemp("parity_lm")
    corpus = root / "corpus.txt"
    corpus.write_text("\n".join(SENTENCES[:6] + english_sentences()), encoding="utf-8")
    _, vocabulary = trained
    return {
        "upper": build_lm([corpus], root / "upper" / "lm.bin", 4, vocab=vocabulary).lm_path,
        "lower": build_lm(
            [corpus], root / "lower" / "lm.bin", 4, vocab=make_vocab(EN_LOWER)
        ).lm_path,
    }


def soften(log_probs: np.ndarray, temperature: float) -> np.ndarray:
    x = np.asarray(log_probs, np.float64) / temperature
    return (x - np.logaddexp.reduce(x, axis=1, keepdims=True)).astype(np.float32)


def _ordered_set(key):  # type: ignore[no-untyped-def]
    class OrderedSet(set):  # type: ignore[type-arg]
        def __iter__(self):  # type: ignore[no-untyped-def]
            return iter(sorted(set.__iter__(self), key=key))

        def __or__(self, other):  # type: ignore[no-untyped-def]
            return OrderedSet(set.__or__(self, other))

    return OrderedSet


def _pyctcdecode_in_other_orders(search, log_probs, params) -> list[WordFrames]:  # type: ignore[no-untyped-def]
    """pyctcdecode's answer when it visits each frame's candidates in ascending, then
    descending order instead of a set's (its ``decoder`` module's global ``set``)."""
    import pyctcdecode.decoder as decoder_module

    answers = []
    for key in (int, lambda i: -int(i)):
        decoder_module.set = _ordered_set(key)  # type: ignore[attr-defined]
        try:
            answers.append(search.word_frames(log_probs, params))
        finally:
            del decoder_module.set  # type: ignore[attr-defined]
    return answers


def compare(
    emissions: list[Emissions], vocabulary, options: DecodeOptions, temperature: float = 1.0
) -> tuple[int, list[str]]:
    """``(identical count, descriptions of the differences)`` of the two engines."""
    settings = beam_settings(vocabulary, options)
    params = SearchParams(
        settings.beam_width,
        settings.beam_prune_logp,
        settings.token_min_logp,
        settings.hotwords,
        settings.hotword_weight,
    )
    engine = open_search("ctc-beam-decoder", list(settings.labels), lm_spec(settings))
    reference = open_search("pyctcdecode", list(settings.labels), lm_spec(settings))
    same, differences = 0, []
    try:
        for i, em in enumerate(emissions):
            log_probs = soften(em.log_probs, temperature) if temperature != 1 else em.log_probs
            log_probs = np.ascontiguousarray(log_probs, dtype=np.float32)
            got = engine.word_frames(log_probs, params)
            want = reference.word_frames(log_probs, params)
            if got == want:
                same += 1
                continue
            order_only = got in _pyctcdecode_in_other_orders(reference, log_probs, params)
            kind = "order-only" if order_only else "REAL"
            differences.append(f"#{i} {kind}: ctc-beam-decoder {got} / pyctcdecode {want}")
    finally:
        engine.close()
        reference.close()
    return same, differences


CONFIGS = {
    # name: (input, LM, hotwords, temperature)
    "peaked, no LM": ("trained", None, (), 1.0),
    "peaked, LM": ("trained", "upper", (), 1.0),
    "peaked, LM + hotwords": ("trained", "upper", HOTWORDS, 1.0),
    "peaked, hotwords only": ("trained", None, HOTWORDS, 1.0),
    "soft, LM + hotwords": ("trained", "upper", HOTWORDS, 2.0),
    "random model, LM": ("random", "upper", (), 1.0),
}


@pytest.mark.parametrize("config", list(CONFIGS))
def test_same_words_and_frames_as_pyctcdecode(config: str, trained, random_model, lms) -> None:
    source, lm, hotwords, temperature = CONFIGS[config]
    emissions, vocabulary = trained if source == "trained" else random_model
    options = DecodeOptions(
        lm=lms[lm] if lm else None, hotwords=hotwords, alpha=0.5, beta=1.0, workers=0
    )
    same, differences = compare(emissions, vocabulary, options, temperature)
    # Measured: identical on all of them (see the module docstring); 0 order-only.
    assert differences == [], f"{config}: {same}/{len(emissions)} identical; " + "; ".join(
        differences
    )
    assert same == len(emissions)


def test_the_lm_and_hotwords_change_the_result(trained, lms) -> None:
    """The configurations above are not vacuous: the LM and the hotwords each change the
    words found (in the same way on both engines, as tested above)."""
    emissions, vocabulary = trained

    def texts(**kw: object) -> list[str]:
        options = DecodeOptions(workers=0, alpha=0.5, beta=1.0, **kw)  # type: ignore[arg-type]
        with BeamDecoder(vocabulary, options) as dec:  # type: ignore[arg-type]
            return [dec.decode(em).text for em in emissions]

    plain = texts()
    with_lm = texts(lm=lms["upper"])
    with_hotwords = texts(lm=lms["upper"], hotwords=HOTWORDS)
    assert sum(a != b for a, b in zip(plain, with_lm, strict=True)) >= 3
    assert with_hotwords != with_lm


def test_case_mapped_lm_gives_the_same_transcripts_on_both_engines(trained, lms) -> None:
    """A lower-case LM for the upper-case model: both engines search in the LM's case and
    map words back; transcripts (text, word times, confidences) are equal, and equal to
    decoding with the same LM in the model's case."""
    emissions, vocabulary = trained
    results = {}
    for engine in ("ctc-beam-decoder", "pyctcdecode"):
        for case in ("lower", "upper"):
            options = DecodeOptions(lm=lms[case], hotwords=HOTWORDS, workers=0, engine=engine)
            with BeamDecoder(vocabulary, options) as dec:  # type: ignore[arg-type]
                assert dec.settings.lm_lookup_case == (None if case == "upper" else "lower")
                results[engine, case] = [dec.decode(em) for em in emissions]
    first = results["ctc-beam-decoder", "upper"]
    assert any(t.words for t in first)
    for key, transcripts in results.items():
        assert transcripts == first, key


@pytest.mark.parametrize("engine", ["ctc-beam-decoder", "pyctcdecode"])
def test_transcripts_do_not_depend_on_batch_size_or_workers(
    engine: str, trained_model: Path, speech, lms, tmp_path: Path, monkeypatch
) -> None:
    """``w2v2 transcribe --lm`` end to end: padded batches of 4 decoded by 2 worker
    processes give the same words, times and confidences as one file at a time decoded
    in-process, on each engine."""
    import json

    from click.testing import CliRunner

    from w2v2cli.cli import main

    monkeypatch.setenv("W2V2_BEAM_ENGINE", engine)
    outputs = []
    for batch, workers in (("1", "0"), ("4", "2")):
        out = tmp_path / f"b{batch}w{workers}"
        r = CliRunner().invoke(
            main,
            [
                "transcribe",
                *map(str, speech.paths[:6]),
                "-m",
                str(trained_model),
                "--backend",
                "torch",
                "--lm",
                str(lms["upper"]),
                "--hotword",
                "sword",
                "-b",
                batch,
                "--max-padding",
                "1",
                "--decode-workers",
                workers,
                "-f",
                "json",
                "-o",
                str(out),
                "-q",
            ],
        )
        assert r.exit_code == 0, r.output
        docs = [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]
        assert len(docs) == 6 and all(d["decoder"] == "beam" for d in docs)
        outputs.append([(d["text"], d["words"]) for d in docs])
    assert outputs[0] == outputs[1]
    assert sum(len(words) for _, words in outputs[0]) > 20


# --------------------------------------------------------------------------- subword


SUBWORD_PAIRS = [  # (said, heard): the acoustics narrowly prefer what was heard
    ("the cat sat on the mat", "the kat sat on the mat"),
    ("the dog slept on my bed", "the dog slept on my bad"),
    ("a big dog ran to the house", "a pig dog ran to the house"),
    ("my friend walked to the red chair", "my friend walked to the red chain"),
]
SUBWORD_HOTWORDS = ("zebra", "quilt")


@pytest.fixture(scope="module")
def subword_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4-gram binary LM for the subword vocabularies (all lower case), built with the
    Parakeet-style vocabulary from the subword tests' corpus."""
    from lm_fixtures import require_kenlm_tools
    from subword_fixtures import CORPUS, family_vocabulary

    from w2v2cli.lm import build_lm

    require_kenlm_tools()
    root = tmp_path_factory.mktemp("parity_subword_lm")
    corpus = root / "corpus.txt"
    corpus.write_text("\n".join(CORPUS), encoding="utf-8")
    return build_lm([corpus], root / "lm.bin", 4, vocab=family_vocabulary("parakeet")[1]).lm_path


def _subword_inputs(name: str) -> tuple[list[Emissions], object]:
    """The confusions of ``SUBWORD_PAIRS`` and two random inputs (near ties over every
    piece) for family ``name``."""
    from subword_fixtures import FRAME, confusion, family_vocabulary

    tokenizer, vocabulary = family_vocabulary(name)
    out = [confusion(tokenizer, vocabulary, a, b, seed=k) for k, (a, b) in enumerate(SUBWORD_PAIRS)]
    rng = np.random.default_rng(7)
    for _ in range(2):
        x = rng.normal(0.0, 1.5, size=(60, vocabulary.size))
        log_probs = (x - np.logaddexp.reduce(x, axis=1, keepdims=True)).astype(np.float32)
        starts = np.arange(60, dtype=np.float64) * FRAME
        out.append(Emissions(log_probs, starts, FRAME, 60 * FRAME))
    return out, vocabulary


SUBWORD_CONFIGS = {
    # name: (LM, hotwords, temperature)
    "no LM": (False, (), 1.0),
    "LM": (True, (), 1.0),
    "LM + hotwords": (True, SUBWORD_HOTWORDS, 1.0),
    "soft, LM + hotwords": (True, SUBWORD_HOTWORDS, 1.3),
}


@pytest.mark.parametrize("family", ["parakeet", "lasr", "omniasr"])
@pytest.mark.parametrize("config", list(SUBWORD_CONFIGS))
def test_subword_vocabularies_same_words_and_frames(family: str, config: str, subword_lm) -> None:
    """Subword (BPE) labels: word-initial pieces, continuations and the bare marker, on
    hand-built confusions and random near ties (the confusions only, when softened), with
    and without the LM and hotwords."""
    lm, hotwords, temperature = SUBWORD_CONFIGS[config]
    emissions, vocabulary = _subword_inputs(family)
    if temperature != 1.0:  # softened near ties would take pyctcdecode ~10 s each
        emissions = emissions[: len(SUBWORD_PAIRS)]
    options = DecodeOptions(
        lm=str(subword_lm) if lm else None, hotwords=hotwords, alpha=0.5, beta=1.0, workers=0
    )
    same, differences = compare(emissions, vocabulary, options, temperature)
    assert differences == [], f"{family}, {config}: {same}/{len(emissions)} identical; " + (
        "; ".join(differences)
    )
    assert same == len(emissions)


def test_subword_lm_changes_the_result(subword_lm) -> None:
    """Not vacuous: on the confusions the LM gives back what was said, on both engines."""
    for family in ("parakeet", "lasr", "omniasr"):
        emissions, vocabulary = _subword_inputs(family)
        for engine in ("ctc-beam-decoder", "pyctcdecode"):
            options = DecodeOptions(lm=str(subword_lm), workers=0, engine=engine, alpha=0.5)
            with BeamDecoder(vocabulary, options) as dec:  # type: ignore[arg-type]
                texts = [dec.decode(em).text for em in emissions[: len(SUBWORD_PAIRS)]]
            assert texts == [said for said, _ in SUBWORD_PAIRS], (family, engine)

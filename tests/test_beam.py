"""Beam search with and without KenLM: constructed CTC emissions for known sentences,
real LMs built in the session (see ``lm_fixtures.py``), pyctcdecode as the reference.

Every test runs once per engine (ctc-beam-decoder and pyctcdecode; the ``beam_engine``
fixture). Parity on real model outputs is in ``test_beam_parity.py``."""

from __future__ import annotations

import logging
import shutil
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import pytest
from lm_fixtures import (
    EN_LOWER,
    EN_UPPER,
    GREEK,
    BuiltLMs,
    built_lms,
    emissions_for,
    make_vocab,
    require_engine,
)

from w2v2cli.decoding import GreedyDecoder
from w2v2cli.decoding.beam import BeamDecoder
from w2v2cli.decoding.pool import start_method
from w2v2cli.decoding.timing import frame_end
from w2v2cli.errors import ConfigError, LMError, W2V2Error
from w2v2cli.lm import read_unigrams, unigrams_path_for
from w2v2cli.lm.alphabet import hf_alphabet_labels
from w2v2cli.options import DecodeOptions
from w2v2cli.records import Emissions, Transcript

UPPER = make_vocab(EN_UPPER)
TEXT = "THE CAT SAT ON THE MAT"
# Character 4 is the C of CAT; greedy hears B (0.50 > 0.45), the LM knows cats sit.
CONFUSE_B = {4: ("B", 0.50, 0.45)}
CONFUSE_K = {4: ("K", 0.50, 0.45)}


@pytest.fixture(scope="session")
def lms(tmp_path_factory: pytest.TempPathFactory) -> BuiltLMs:
    return built_lms(tmp_path_factory)


@pytest.fixture(autouse=True)
def _every_engine(beam_engine: str) -> str:
    return beam_engine


def test_the_chosen_engine_decodes(beam_engine: str) -> None:
    with beam() as dec:
        assert dec.engine == dec.settings.engine == beam_engine


@pytest.mark.pyctcdecode
def test_an_explicit_engine_beats_the_variable(beam_engine: str) -> None:
    other = "pyctcdecode" if beam_engine == "ctc-beam-decoder" else "ctc-beam-decoder"
    require_engine(other)
    with beam(engine=other) as dec:  # W2V2_BEAM_ENGINE names beam_engine
        assert dec.engine == dec.settings.engine == other


def beam(lm: Path | None = None, **kw: object) -> BeamDecoder:
    kw.setdefault("workers", 0)
    return BeamDecoder(UPPER, DecodeOptions(lm=lm, **kw))  # type: ignore[arg-type]


def test_lm_fixes_what_greedy_gets_wrong(lms: BuiltLMs) -> None:
    em, _ = emissions_for(TEXT, UPPER, confusions=CONFUSE_B)
    assert GreedyDecoder(UPPER).decode(em).text == "THE BAT SAT ON THE MAT"
    with beam() as no_lm:
        assert no_lm.decode(em).text == "THE BAT SAT ON THE MAT"
    with beam(lms.upper_bin) as with_lm:
        result = with_lm.decode(em)
    assert result.text == TEXT
    assert result.decoder == "beam"
    # An out-of-vocabulary misspelling is fixed too.
    em_k, _ = emissions_for(TEXT, UPPER, confusions=CONFUSE_K)
    assert GreedyDecoder(UPPER).decode(em_k).text == "THE KAT SAT ON THE MAT"
    with beam(lms.upper_bin) as with_lm:
        assert with_lm.decode(em_k).text == TEXT


@pytest.mark.pyctcdecode
def test_matches_pyctcdecode_called_directly(lms: BuiltLMs) -> None:
    """Same text and word frames as pyctcdecode on the same logits, with the labels
    transformers would use; our times are those frames' absolute start/end times."""
    from pyctcdecode import build_ctcdecoder

    unigrams = read_unigrams(unigrams_path_for(lms.upper_bin))
    reference = build_ctcdecoder(
        hf_alphabet_labels(UPPER),
        str(lms.upper_bin),
        unigrams=unigrams,
        alpha=0.5,
        beta=1.0,
    )
    try:
        for confusions in (CONFUSE_B, CONFUSE_K, {}):
            em, truth = emissions_for(TEXT, UPPER, confusions=confusions, jump_after=20)
            ref_text, _, ref_frames, _, _ = reference.decode_beams(
                em.log_probs, prune_history=True
            )[0]
            with beam(lms.upper_bin) as ours:
                got = ours.decode(em)
            assert got.text == ref_text == TEXT
            assert [w.text for w in got.words] == [w for w, _ in ref_frames]
            for word, (_, (first, end)) in zip(got.words, ref_frames, strict=True):
                assert word.start == pytest.approx(float(em.frame_starts[first]))
                assert word.end == pytest.approx(frame_end(em, end - 1))
            # ...and those frames are the true letter frames of each word.
            assert [(w, s, e) for w, (s, e) in ref_frames] == truth
    finally:
        reference.cleanup()


def test_word_times_are_absolute_and_confidences_in_range(lms: BuiltLMs) -> None:
    em, truth = emissions_for(TEXT, UPPER, confusions=CONFUSE_B, offset=12.0, jump_after=9)
    with beam(lms.upper_bin) as dec:
        result = dec.decode(em)
    assert len(result.words) == 6
    for word, (_, first, end) in zip(result.words, truth, strict=True):
        assert word.start == pytest.approx(12.0 + 0.02 * first + (0.37 if first > 9 else 0))
        assert word.end == pytest.approx(frame_end(em, end - 1))
        assert 0.0 < word.confidence <= 1.0
    # The corrected word's confidence reflects the acoustics: low where the C was unsure.
    cat = result.words[1]
    assert cat.text == "CAT" and cat.confidence < result.words[0].confidence
    assert result.confidence is not None and 0 < result.confidence < 1
    assert result.duration == em.duration


def test_arpa_binary_and_language_model_folder_agree(lms: BuiltLMs) -> None:
    em, _ = emissions_for(TEXT, UPPER, confusions=CONFUSE_B)
    texts = set()
    for lm in (lms.upper_bin, lms.upper_arpa, lms.model_dir, lms.model_dir / "language_model"):
        with beam(lm) as dec:
            texts.add(dec.decode(em).text)
    assert texts == {TEXT}


def test_alpha_beta_from_attrs_json_and_overrides(lms: BuiltLMs, tmp_path: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(lms.model_dir, model)
    (model / "language_model" / "attrs.json").write_text(
        '{"alpha": 0.7, "beta": 2.5, "unk_score_offset": -8.0, "score_boundary": false}'
    )
    with beam(model) as dec:
        assert (dec.alpha, dec.beta) == (0.7, 2.5)
        assert dec.settings.unk_score_offset == -8.0
        assert dec.settings.score_boundary is False
    with beam(model, alpha=0.3, beta=0.0) as dec:
        assert (dec.alpha, dec.beta) == (0.3, 0.0)
    with beam(lms.upper_bin) as dec:
        assert (dec.alpha, dec.beta) == (0.5, 1.0)


def test_no_lm_beam_equals_greedy_on_clear_emissions() -> None:
    em, _ = emissions_for(TEXT, UPPER)
    greedy = GreedyDecoder(UPPER).decode(em)
    with beam() as dec:
        result = dec.decode(em)
    assert result.text == greedy.text == TEXT
    assert [(w.start, w.end) for w in result.words] == [(w.start, w.end) for w in greedy.words]
    assert [w.confidence for w in result.words] == pytest.approx(
        [w.confidence for w in greedy.words]
    )


def test_special_tokens_never_become_text(lms: BuiltLMs) -> None:
    """An <unk> (or <s>) winning a frame is dropped without splitting the word, as greedy
    does; pyctcdecode with transformers' labels would print ⁇."""
    em, _ = emissions_for(TEXT, UPPER, extra={6: ("<unk>", 0.95), 12: ("<s>", 0.9)})
    assert GreedyDecoder(UPPER).decode(em).text == TEXT
    for lm in (None, lms.upper_bin):
        with beam(lm) as dec:
            assert dec.decode(em).text == TEXT


def test_hotwords_change_the_result() -> None:
    em, _ = emissions_for(TEXT, UPPER, confusions=CONFUSE_K)
    with beam() as dec:
        assert dec.decode(em).text == "THE KAT SAT ON THE MAT"
    # Given in lower case: hotwords are folded to the model's case.
    with beam(hotwords=("cat",)) as dec:
        assert dec.decode(em).text == TEXT
    with beam(hotwords=("cat",), hotword_weight=0.0) as dec:
        assert dec.decode(em).text == "THE KAT SAT ON THE MAT"


def test_hotword_the_model_cannot_spell_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="w2v2cli"), beam(hotwords=("naïve1",)):
        pass
    assert "never match" in caplog.text


def test_lower_case_lm_for_upper_case_model_is_converted(lms: BuiltLMs) -> None:
    em, _ = emissions_for(TEXT, UPPER, confusions=CONFUSE_B)
    with beam(lms.lower_arpa) as dec:
        assert dec.settings.lm_lookup_case == "lower"
        assert dec.decode(em).text == TEXT  # the LM's knowledge reaches the upper-case text


def test_upper_case_lm_for_lower_case_model_is_converted(lms: BuiltLMs) -> None:
    lower = make_vocab(EN_LOWER)
    em, _ = emissions_for(TEXT.lower(), lower, confusions={4: ("b", 0.50, 0.45)})
    assert GreedyDecoder(lower).decode(em).text == "the bat sat on the mat"
    with BeamDecoder(lower, DecodeOptions(lm=lms.upper_bin, workers=0)) as dec:
        assert dec.settings.lm_lookup_case == "upper"
        assert dec.decode(em).text == TEXT.lower()
    with BeamDecoder(lower, DecodeOptions(lm=lms.lower_arpa, workers=0)) as dec:
        assert dec.settings.lm_lookup_case is None
        assert dec.decode(em).text == TEXT.lower()


def test_mixed_case_lm_is_refused(lms: BuiltLMs) -> None:
    with pytest.raises(LMError, match="mixed/lm.arpa: .*mixed case.*w2v2 lm build --model"):
        beam(lms.mixed_arpa)


def test_lm_in_another_script_is_refused(lms: BuiltLMs) -> None:
    with pytest.raises(LMError, match="spelled with the model's alphabet"):
        beam(lms.greek_bin)


def test_greek_alphabet_with_greek_lm(lms: BuiltLMs) -> None:
    greek = make_vocab(GREEK)
    text = "η γάτα κάθεται στο χαλί"
    # γ of γάτα heard as κ: "κάτα" is no Greek word the LM knows.
    em, _ = emissions_for(text, greek, confusions={2: ("κ", 0.50, 0.45)})
    assert GreedyDecoder(greek).decode(em).text == "η κάτα κάθεται στο χαλί"
    with BeamDecoder(greek, DecodeOptions(lm=lms.greek_bin, workers=0)) as dec:
        result = dec.decode(em)
    assert result.text == text
    assert [w.text for w in result.words] == text.split()


def test_binary_lm_without_unigrams_warns_and_decodes(
    lms: BuiltLMs, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lone = tmp_path / "lone.bin"
    shutil.copyfile(lms.upper_bin, lone)
    with caplog.at_level(logging.WARNING, logger="w2v2cli"), beam(lone) as dec:
        em, _ = emissions_for(TEXT, UPPER)
        assert dec.decode(em).text == TEXT
    assert "no unigram list" in caplog.text and "degrade" in caplog.text
    # With --unigrams it is quiet.
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="w2v2cli"):
        beam(lone, unigrams=unigrams_path_for(lms.upper_bin)).close()
    assert "no unigram list" not in caplog.text


def test_bad_lm_inputs_fail_early(lms: BuiltLMs, tmp_path: Path) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_text("hello")
    with pytest.raises(LMError, match="junk.bin: neither a KenLM binary"):
        beam(junk)
    (tmp_path / "empty").mkdir()
    with pytest.raises(LMError, match="empty: a folder without a KenLM file"):
        beam(tmp_path / "empty")
    with pytest.raises(ConfigError, match="without a language model"):
        beam(None, unigrams=unigrams_path_for(lms.upper_bin))


def test_empty_emissions() -> None:
    em = Emissions(np.zeros((0, UPPER.size), np.float32), np.zeros(0), 0.02, 0.0)
    with beam() as dec:
        result = dec.decode(em)
    assert result.text == "" and result.words == () and result.confidence is None


def test_shape_mismatch_is_a_w2v2_error() -> None:
    em = Emissions(np.zeros((3, 5), np.float32), np.arange(3) * 0.02, 0.02, 0.1)
    with beam() as dec, pytest.raises(W2V2Error, match="vocabulary has"):
        dec.decode(em)


def test_pool_gives_the_same_results_as_in_process(lms: BuiltLMs) -> None:
    ems = [
        emissions_for(TEXT, UPPER, confusions=CONFUSE_B)[0],
        emissions_for(TEXT, UPPER, confusions=CONFUSE_K, offset=3.0)[0],
        emissions_for("A BIG DOG RAN TO THE HOUSE", UPPER, jump_after=5)[0],
        emissions_for("THE BAT FLEW AWAY", UPPER, confusions={4: ("P", 0.5, 0.45)})[0],
    ]
    with beam(lms.upper_bin) as local:
        expected = [local.decode(em) for em in ems]
    assert start_method() in ("forkserver", "spawn")
    with beam(lms.upper_bin, workers=2) as pooled:
        assert pooled.workers == 2
        futures = [pooled.submit(em) for em in ems]
        assert all(isinstance(f, Future) for f in futures)
        got: list[Transcript] = [f.result(timeout=60) for f in futures]
        assert pooled._pool is not None  # one pool, created on the first submit
        pool = pooled._pool
        pooled.submit(ems[0]).result(timeout=60)
        assert pooled._pool is pool
    assert pooled._pool is None  # closed by the context manager
    assert got == expected
    assert got[0].text == TEXT


def test_pool_reports_worker_errors_per_file() -> None:
    bad = Emissions(np.zeros((3, 5), np.float32), np.arange(3) * 0.02, 0.02, 0.1)
    good, _ = emissions_for(TEXT, UPPER)
    with beam(workers=2) as pooled:
        failed, ok = pooled.submit(bad), pooled.submit(good)
        with pytest.raises(W2V2Error, match="vocabulary has"):
            failed.result(timeout=60)
        assert ok.result(timeout=60).text == TEXT


def test_in_process_submit_and_workers_attribute() -> None:
    em, _ = emissions_for(TEXT, UPPER)
    for workers in (0, 1):
        with beam(workers=workers) as dec:
            assert dec.workers == 0
            assert dec.submit(em).result().text == TEXT
            assert dec._pool is None

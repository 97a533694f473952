"""Subword vocabularies (issue #25): SentencePiece-style pieces with the ``▁`` word-start
marker (Parakeet: blank = the last id; LASR/MedASR: blank ``<pad>`` = 0) and pieces that
start with a literal space (Omnilingual ASR: blank ``<s>`` = 0 from ``blank_token_id``).

Tokenizers and emissions come from ``subword_fixtures.py``: tokenizers trained here and
wrapped in transformers' own classes, emissions built by hand (real log-probability arrays
whose best path spells a known piece sequence), so every output is decisive;
transformers' ``batch_decode`` of the same best path is the reference for the text.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from subword_fixtures import (
    CORPUS,
    FAMILIES,
    FRAME,
    confusion,
    emissions_for,
    family_vocabulary,
    hf_text,
    spell,
    word_path,
)

from w2v2cli.decoding.greedy import GreedyDecoder
from w2v2cli.records import Vocabulary


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family(request):
    """(name, tokenizer, vocabulary) for each subword family."""
    return (request.param, *family_vocabulary(request.param))


# --------------------------------------------------------------------------- vocabulary


def test_vocabulary_of_each_family(family):
    name, tokenizer, vocab = family
    assert vocab.is_subword
    assert vocab.delimiter_id is None
    if name == "parakeet":
        assert vocab.blank_id == len(tokenizer) - 1 == tokenizer.pad_token_id
    elif name == "lasr":
        assert vocab.blank_id == 0 and vocab.tokens[0] == "<pad>"
    else:  # the config's blank, not the pad token
        assert vocab.blank_id == 0 and vocab.tokens[0] == "<s>"
        assert tokenizer.pad_token_id == 1 and 1 in vocab.special_ids
    marker = " " if name == "omniasr" else "▁"
    starts = [i for i in range(vocab.size) if vocab.starts_word(i)]
    assert starts and all(vocab.tokens[i].startswith(marker) for i in starts)
    assert all(not vocab.text(i).startswith(("▁", " ")) for i in range(vocab.size))
    bare = vocab.tokens.index(marker)  # the bare marker: a word boundary of its own
    assert vocab.is_word_boundary(bare) and not vocab.starts_word(bare)


def test_character_vocabularies_are_not_subword():
    from lm_fixtures import EN_UPPER, make_vocab

    vocab = make_vocab(EN_UPPER)
    assert not vocab.is_subword
    assert [vocab.text(i) for i in range(vocab.size)] == list(EN_UPPER)
    spaced = Vocabulary(("<pad>", " ", "a", "b"), 0, None, frozenset({0}))
    assert not spaced.is_subword and spaced.is_word_boundary(1)


# --------------------------------------------------------------------------- greedy


SENTENCES = [
    "the cat sat on the mat",
    "my friend walked to the red chair",
    "a big dog looked at the garden",
    "quick brown foxes jump over lazy dogs",
    "zebra quilt vexing jazz",
]


@pytest.mark.parametrize("sentence", SENTENCES)
def test_greedy_text_equals_transformers_decode(family, sentence):
    _, tokenizer, vocab = family
    path = spell(tokenizer, vocab, sentence)
    transcript = GreedyDecoder(vocab).decode(emissions_for(path, vocab.size))
    assert transcript.text == hf_text(tokenizer, path) == sentence
    assert [w.text for w in transcript.words] == sentence.split()
    assert all("▁" not in t.text and " " not in t.text for t in transcript.tokens)


def test_greedy_on_random_paths_equals_transformers_decode(family):
    """Any best path, specials, bare markers and repeats included: the same words as
    transformers' decode (which may keep a space before a word that starts with a bare
    marker; ours are always single spaces)."""
    _, tokenizer, vocab = family
    rng = np.random.default_rng(1)
    for trial in range(200):
        path = rng.integers(0, vocab.size, size=int(rng.integers(0, 40))).tolist()
        transcript = GreedyDecoder(vocab).decode(emissions_for(path, vocab.size, seed=trial))
        expected = hf_text(tokenizer, path)
        assert transcript.text == " ".join(expected.split()), (path, expected)
        assert [w.text for w in transcript.words] == expected.split()


def test_word_times_are_their_pieces_frames(family):
    """A word starts at its first piece's first frame and ends at its last piece's last
    frame (``word_path``: 12 frames a word, one blank between words); a bare marker before
    the word is not part of it."""
    _, tokenizer, vocab = family
    words = "my friend walked to the red chair".split()
    path = word_path(tokenizer, vocab, words)
    transcript = GreedyDecoder(vocab).decode(emissions_for(path, vocab.size))
    assert [w.text for w in transcript.words] == words
    for k, word in enumerate(transcript.words):
        frames = range(1 + 13 * k, 13 + 13 * k)
        pieces = [f for f in frames if path[f] != vocab.blank_id]
        pieces = [f for f in pieces if not vocab.is_word_boundary(path[f])]
        first, last = pieces[0], pieces[-1]
        assert word.start == pytest.approx(first * FRAME)
        assert word.end == pytest.approx((last + 1) * FRAME)
        assert word.confidence == pytest.approx(0.9, abs=1e-5)


# --------------------------------------------------------------------------- LM building


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("subword_corpus") / "corpus.txt"
    path.write_text("\n".join(CORPUS), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def subword_lm(tmp_path_factory, corpus) -> Path:
    """A 3-gram binary LM built for the Parakeet-style vocabulary (``lm build --model``)."""
    from lm_fixtures import require_kenlm_tools

    from w2v2cli.lm import build_lm

    require_kenlm_tools()
    _, vocab = family_vocabulary("parakeet")
    out = tmp_path_factory.mktemp("subword_lm") / "lm.bin"
    return build_lm([corpus], out, 3, vocab=vocab).lm_path


def test_lm_build_counts_words_and_writes_bpe_alphabet(family, corpus, tmp_path):
    """Every word of the corpus is counted as a word (OmniASR's leading space is no letter),
    and the model folder's alphabet.json says ``is_bpe`` beside ``▁`` labels, as
    pyctcdecode reads them."""
    from lm_fixtures import require_kenlm_tools

    from w2v2cli.lm import build_lm
    from w2v2cli.lm.alphabet import alphabet_chars

    require_kenlm_tools()
    name, _, vocab = family
    assert " " not in alphabet_chars(vocab) and "▁" not in alphabet_chars(vocab)
    result = build_lm(
        [corpus],
        tmp_path / "lm.arpa",
        2,
        vocab=vocab,
        binary=False,
        model_dir_out=tmp_path / "model",
    )
    assert result.words == sum(len(line.split()) for line in CORPUS)
    assert result.lines == len(CORPUS) and result.dropped_words == 0
    unigrams = set(result.unigrams_path.read_text(encoding="utf-8").split())
    assert {"the", "cat", "zebra", "quilt"} <= unigrams
    alphabet = json.loads((tmp_path / "model" / "alphabet.json").read_text(encoding="utf-8"))
    assert alphabet["is_bpe"] is True
    labels = alphabet["labels"]
    assert len(labels) == vocab.size and labels[vocab.blank_id] == ""
    assert not any(" " in label for label in labels)  # pyctcdecode refuses spaces in BPE
    for i in range(vocab.size):
        if vocab.starts_word(i):
            assert labels[i] == "▁" + vocab.text(i)


@pytest.mark.pyctcdecode
def test_saved_model_dir_loads_in_pyctcdecode_as_bpe(corpus, tmp_path):
    """pyctcdecode's ``load_from_dir`` (what transformers' ``Wav2Vec2ProcessorWithLM``
    delegates to) reads the folder as a BPE alphabet and decodes words from pieces."""
    from lm_fixtures import require_kenlm_tools
    from pyctcdecode import BeamSearchDecoderCTC

    from w2v2cli.lm import build_lm

    require_kenlm_tools()
    tokenizer, vocab = family_vocabulary("omniasr")
    build_lm([corpus], tmp_path / "lm.bin", 3, vocab=vocab, model_dir_out=tmp_path / "model")
    decoder = BeamSearchDecoderCTC.load_from_dir(str(tmp_path / "model"))
    try:
        assert decoder._alphabet.is_bpe
        sentence = "the cat sat on the mat"  # whole pieces: no bare marker
        emissions = emissions_for(spell(tokenizer, vocab, sentence), vocab.size)
        assert decoder.decode(emissions.log_probs) == sentence
    finally:
        decoder.cleanup()


# --------------------------------------------------------------------------- beam search

ENGINES = [
    "ctc-beam-decoder",
    pytest.param("pyctcdecode", marks=pytest.mark.pyctcdecode),
]


def _beam(vocab: Vocabulary, engine: str, **options):
    from lm_fixtures import require_engine

    from w2v2cli.decoding.beam import BeamDecoder
    from w2v2cli.options import DecodeOptions

    require_engine(engine)
    return BeamDecoder(vocab, DecodeOptions(engine=engine, workers=0, **options))


@pytest.mark.parametrize("engine", ENGINES)
def test_beam_without_lm_gives_the_spelled_words(family, engine):
    """Word-initial pieces, continuation pieces and bare markers: the same words as
    greedy decoding, at the same times (up to a frame) with the same confidences, on each
    engine."""
    _, tokenizer, vocab = family
    with _beam(vocab, engine) as beam:
        for k, sentence in enumerate(SENTENCES):
            emissions = emissions_for(spell(tokenizer, vocab, sentence), vocab.size, seed=k)
            got = beam.decode(emissions)
            greedy = GreedyDecoder(vocab).decode(emissions)
            assert got.text == sentence
            assert [w.text for w in got.words] == [w.text for w in greedy.words]
            for a, b in zip(got.words, greedy.words, strict=True):
                # The engines keep the frames of whichever path reached a merged beam
                # first, which may take a piece's run a frame shorter at either end.
                assert a.start == pytest.approx(b.start, abs=FRAME + 1e-9)
                assert a.end == pytest.approx(b.end, abs=FRAME + 1e-9)
                assert a.confidence == pytest.approx(b.confidence, abs=0.01)


@pytest.mark.parametrize("engine", ENGINES)
def test_beam_with_lm_recovers_the_likely_words(family, engine, subword_lm):
    """The acoustics narrowly prefer 'kat' (an unknown word, spelled with a bare marker)
    and 'bad'; the LM, built for the vocabulary from the corpus, gives back 'cat' and
    'bed'. Without the LM, beam search does not."""
    _, tokenizer, vocab = family
    cases = [
        ("the cat sat on the mat", "the kat sat on the mat"),
        ("the dog slept on my bed", "the dog slept on my bad"),
    ]
    with _beam(vocab, engine, lm=str(subword_lm), alpha=0.5, beta=1.0) as with_lm:
        with _beam(vocab, engine) as plain:
            for said, heard in cases:
                emissions = confusion(tokenizer, vocab, said, heard)
                assert GreedyDecoder(vocab).decode(emissions).text == heard
                assert plain.decode(emissions).text != said
                assert with_lm.decode(emissions).text == said


# --------------------------------------------------------------------------- align


def test_align_spells_with_the_models_tokenizer(family):
    """Each word is spelled with the tokenizer's own pieces (a word-initial piece, or a
    bare marker and continuations); without the tokenizer, by longest match."""
    from w2v2cli.alignment import split_text

    name, tokenizer, vocab = family
    text = "The cat sat on a mat, zebra-quilt."
    words = split_text(text, vocab, tokenizer)
    assert [w.text for w in words] == text.split()
    parts = ["the", "cat", "sat", "on", "a", "mat", "zebra", "quilt"]
    expected = [tuple(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in parts]
    assert [p for w in words for p in w.parts] == expected
    for ids in expected:  # a word starts with a word-initial piece or a bare marker
        assert vocab.starts_word(ids[0]) or vocab.is_word_boundary(ids[0])
    plain = split_text(text, vocab)
    spelled = ["".join(vocab.text(i) for i in p) for w in plain for p in w.parts]
    assert spelled == parts
    assert all(
        vocab.starts_word(p[0]) or vocab.is_word_boundary(p[0]) for w in plain for p in w.parts
    )
    if name == "lasr":  # Unigram: its tokenizer spells "a" as ▁ + a, not as the piece ▁a
        assert [p for w in plain for p in w.parts] != expected


def test_align_word_times_and_unspellable_words(family):
    """Known text against hand-built emissions: every word at its pieces' frames (a bare
    marker before a word is not part of it), a number the model cannot spell
    interpolated between its neighbours and flagged, the match score near 1."""
    from w2v2cli.alignment import align

    _, tokenizer, vocab = family
    said = "my friend walked to the red chair".split()
    path = word_path(tokenizer, vocab, said)
    emissions = emissions_for(path, vocab.size)
    greedy = GreedyDecoder(vocab).decode(emissions)
    text = "My friend walked to 1984 the red chair."
    aligned = align(emissions, text, vocab, tokenizer=tokenizer)
    assert [w.text for w in aligned.words] == text.split()
    assert [w.interpolated for w in aligned.words] == [False] * 4 + [True] + [False] * 3
    real = [w for w in aligned.words if not w.interpolated]
    assert [(w.start, w.end) for w in real] == [(w.start, w.end) for w in greedy.words]
    for a, b in zip(real, greedy.words, strict=True):
        assert a.confidence == pytest.approx(b.confidence)
    number = aligned.words[4]
    assert aligned.words[3].end <= number.start <= number.end <= aligned.words[5].start
    assert aligned.score > 0.9


# --------------------------------------------------------------------------- lm tune, eval


def invoke(*args: object):
    from click.testing import CliRunner

    from w2v2cli.cli import main

    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


TUNE_PAIRS = [  # (said, heard)
    ("the cat sat on the mat", "the kat sat on the mat"),
    ("the dog slept on my bed", "the dog slept on my bad"),
    ("a big dog ran to the house", "a pig dog ran to the house"),
]


def test_lm_tune_and_eval_on_saved_subword_logits(family, subword_lm, tmp_path):
    """``lm tune`` and ``eval`` on saved log-probabilities of a subword vocabulary (the
    vocabulary goes through the store's metadata): without LM weight the confusions stay
    (WER above 0), with it every word is right, and eval with the LM scores 0%."""
    from w2v2cli.evaluation import LogitsStore, ManifestEntry

    _, tokenizer, vocab = family
    manifest = tmp_path / "set" / "manifest.jsonl"
    manifest.parent.mkdir()
    rows = [{"audio_filepath": f"u{i}.wav", "text": said} for i, (said, _) in enumerate(TUNE_PAIRS)]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    logits = tmp_path / "logits"
    store = LogitsStore.create(logits, "constructed", None, vocab)
    for i, (said, heard) in enumerate(TUNE_PAIRS):
        entry = ManifestEntry(line=i + 1, audio=manifest.parent / f"u{i}.wav", text=said)
        store.save(i, entry, confusion(tokenizer, vocab, said, heard, seed=i))
    assert LogitsStore.open(logits).vocabulary == vocab
    base = ["--load-logits", logits, "-m", tmp_path / "none", "--decode-workers", 0]
    r = invoke(
        "lm", "tune", manifest, "--lm", subword_lm, *base, "--alphas", "0,0.5", "--betas", "1"
    )
    assert r.exit_code == 0, r.output
    table = {
        f[0]: float(f[2].rstrip("%"))
        for f in (ln.split() for ln in r.stdout.splitlines())
        if len(f) == 5 and f[2].endswith("%")
    }
    assert table["0.5"] == 0.0 and table["0"] > 0.0
    assert "best: --alpha 0.5 --beta 1 " in r.stdout
    r = invoke("eval", manifest, *base, "--decoder", "greedy", "-q")
    assert r.exit_code == 0 and " 15.79% " in r.stdout, r.output  # 3 of 19 words
    r = invoke("eval", manifest, *base, "--lm", subword_lm, "--alpha", 0.5, "--beta", 1, "-q")
    assert r.exit_code == 0 and "0.00%" in r.stdout, r.output


# --------------------------------------------------------------------------- command line


@pytest.mark.parametrize("family_name", ["parakeet_ctc", "lasr_ctc", "omniasr_ctc"])
def test_cli_end_to_end_with_a_subword_model(family_name, tmp_path):
    """A tiny random model folder of each family (``family_models.subword_folder``):
    ``transcribe`` to JSON and SRT (words, no markers, cues made of the words), ``lm build
    --model`` (every word counted, alphabet.json with is_bpe), ``transcribe --lm`` (beam
    search with it) and ``align`` of the model's own text (every word aligned)."""
    import soundfile as sf
    from conftest import TORCH_1_ARGS, noise_audio
    from family_models import subword_folder
    from lm_fixtures import require_kenlm_tools

    folder = subword_folder(family_name, tmp_path / "model", seed=3)
    paths = []
    for i, seconds in enumerate((2.5, 4.0)):
        paths.append(tmp_path / f"clip{i}.wav")
        sf.write(paths[-1], noise_audio(seconds, seed=70 + i), 16000, subtype="FLOAT")
    common = ["-m", folder, "-q", *TORCH_1_ARGS]

    out = tmp_path / "greedy"
    r = invoke("transcribe", *paths, *common, "-f", "json", "-f", "srt", "-o", out)
    assert r.exit_code == 0, r.output
    docs = [json.loads((out / f"clip{i}.json").read_text(encoding="utf-8")) for i in range(2)]
    for doc in docs:
        words = [w["text"] for w in doc["words"]]
        assert words and doc["text"] == " ".join(words)
        assert not any(m in w for w in words for m in ("▁", " ", "<"))
        assert all(w["start"] <= w["end"] for w in doc["words"])
        pairs = zip(doc["words"], doc["words"][1:], strict=False)
        assert all(a["end"] <= b["start"] + 1e-9 for a, b in pairs)
    srt = (out / "clip1.srt").read_text(encoding="utf-8")
    cue_text = [ln for ln in srt.splitlines() if ln and not ln.isdigit() and "-->" not in ln]
    assert " ".join(cue_text).split() == docs[1]["text"].split()

    require_kenlm_tools()
    corpus = tmp_path / "corpus.txt"
    lines = [doc["text"] for doc in docs] * 3 + CORPUS
    corpus.write_text("\n".join(lines), encoding="utf-8")
    lm = tmp_path / "lm" / "lm.bin"
    r = invoke(
        "lm",
        "build",
        corpus,
        "--model",
        folder,
        "-o",
        lm,
        "--order",
        3,
        "--save-model-dir",
        tmp_path / "lm_dir",
    )
    assert r.exit_code == 0, r.output
    total = sum(len(line.split()) for line in lines)
    assert f"{total:,} words kept, 0 dropped" in r.output
    alphabet = json.loads((tmp_path / "lm_dir" / "alphabet.json").read_text(encoding="utf-8"))
    assert alphabet["is_bpe"] is True and not any(" " in x for x in alphabet["labels"])

    out = tmp_path / "beam"
    r = invoke(
        "transcribe", *paths, *common, "--lm", lm, "--decode-workers", 0, "-f", "json", "-o", out
    )
    assert r.exit_code == 0, r.output
    for i in range(2):
        doc = json.loads((out / f"clip{i}.json").read_text(encoding="utf-8"))
        assert doc["decoder"] == "beam"
        assert doc["text"] == " ".join(w["text"] for w in doc["words"])
        assert not any("▁" in w["text"] or not w["text"] for w in doc["words"])

    manifest = tmp_path / "align.jsonl"
    rows = [{"audio_filepath": str(p), "text": d["text"]} for p, d in zip(paths, docs, strict=True)]
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    out = tmp_path / "aligned"
    # A random model writes words in pieces its tokenizer would not choose ("▁" "t" "h"
    # for "th", which the tokenizer spells "▁th"); the text is aligned as the tokenizer
    # spells it, so the match is poor (0.01 to 0.4 here): no minimum.
    r = invoke("align", manifest, *common, "--min-score", 0, "-f", "json", "-o", out)
    assert r.exit_code == 0, r.output
    for i, doc in enumerate(docs):
        aligned = json.loads((out / f"clip{i}.json").read_text(encoding="utf-8"))
        assert [w["text"] for w in aligned["words"]] == [w["text"] for w in doc["words"]]
        assert not any(w["interpolated"] for w in aligned["words"])
        assert 0 < aligned["score"] <= 1
        assert all(w["start"] <= w["end"] for w in aligned["words"])
        if aligned["score"] == 1:  # the text spelled as the model wrote it: its times
            times = [(w["start"], w["end"]) for w in aligned["words"]]
            assert times == [(w["start"], w["end"]) for w in doc["words"]]

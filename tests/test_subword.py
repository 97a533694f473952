"""Subword vocabularies (issue #25): SentencePiece-style pieces with the ``▁`` word-start
marker (Parakeet: blank = the last id; LASR/MedASR: blank ``<pad>`` = 0) and pieces that
start with a literal space (Omnilingual ASR: blank ``<s>`` = 0 from ``blank_token_id``).

Tokenizers are trained here with the ``tokenizers`` library on the LM tests' corpus and
wrapped in transformers' own tokenizer classes, so ``decode`` is transformers' own. Emissions
are built by hand (real log-probability arrays whose best path spells a known piece
sequence), so every output is decisive; transformers' ``batch_decode`` of the same best
path is the reference for the text.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from lm_fixtures import english_sentences

from w2v2cli.decoding.greedy import GreedyDecoder
from w2v2cli.models.vocab import vocabulary_from_tokenizer
from w2v2cli.records import Emissions, Vocabulary

FRAME = 0.08  # Parakeet's 80 ms frames

CORPUS = [s.lower() for s in english_sentences(200)] + [
    "quick brown foxes jump over lazy dogs",
    "zebra quilt vexing jazz",
]


def _trained(replacement: str, specials: list[str], vocab_size: int):
    """A Unigram tokenizer trained on ``CORPUS``: pieces start with ``replacement``."""
    from tokenizers import Tokenizer, decoders, pre_tokenizers, trainers
    from tokenizers.models import Unigram

    tok = Tokenizer(Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size, special_tokens=specials, unk_token="<unk>"
    )
    tok.train_from_iterator(CORPUS, trainer)
    if replacement == "▁":
        return tok
    # Omnilingual ASR's pieces carry a literal space where SentencePiece writes ▁.
    data = json.loads(tok.to_str())
    data["model"]["vocab"] = [[p.replace("▁", replacement), s] for p, s in data["model"]["vocab"]]
    for key in ("pre_tokenizer", "decoder"):
        data[key] = {
            "type": "Metaspace",
            "replacement": replacement,
            "prepend_scheme": "always",
            "split": True,
        }
    return Tokenizer.from_str(json.dumps(data))


def parakeet_tokenizer():
    """Parakeet CTC: ``▁`` pieces, ``<unk>`` = 0, blank = pad = the last id."""
    from transformers import ParakeetTokenizer

    tok = _trained("▁", ["<unk>"], 120)
    tok.add_special_tokens(["<pad>"])
    return ParakeetTokenizer(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>")


def lasr_tokenizer():
    """LASR/MedASR: ``▁`` pieces, blank ``<pad>`` = 0, ``</s>`` = 1, ``<unk>`` = 2."""
    from transformers import LasrTokenizer

    tok = _trained("▁", ["<pad>", "</s>", "<unk>"], 120)
    return LasrTokenizer(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", extra_ids=0
    )


def omni_tokenizer():
    """Omnilingual ASR CTC: pieces with a literal space, ``<s>`` = 0 is the blank
    (``config.blank_token_id``), ``<pad>`` = 1 is not."""
    from transformers import ParakeetTokenizer

    tok = _trained(" ", ["<s>", "<pad>", "</s>", "<unk>"], 120)
    return ParakeetTokenizer(
        tokenizer_object=tok,
        bos_token="<s>",
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
    )


FAMILIES = {
    "parakeet": (parakeet_tokenizer, None),
    "lasr": (lasr_tokenizer, None),
    "omniasr": (omni_tokenizer, 0),
}


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family(request):
    """(name, tokenizer, vocabulary) for each subword family."""
    make, blank = FAMILIES[request.param]
    tokenizer = make()
    vocab = vocabulary_from_tokenizer(tokenizer, blank_id=blank)
    return request.param, tokenizer, vocab


def emissions_for(path: list[int], size: int, *, seed: int = 0, peak: float = 0.9) -> Emissions:
    """Real log-probabilities whose argmax is ``path`` (one id a frame): ``peak`` on the
    path's id, the rest spread at random over the other ids."""
    rng = np.random.default_rng(seed)
    rest = rng.random((len(path), size)) + 1e-3
    rest[np.arange(len(path)), path] = 0.0
    rest *= (1.0 - peak) / rest.sum(axis=1, keepdims=True)
    rest[np.arange(len(path)), path] = peak
    log_probs = np.log(rest).astype(np.float32)
    starts = np.arange(len(path), dtype=np.float64) * FRAME
    return Emissions(log_probs, starts, FRAME, duration=len(path) * FRAME)


def spell(tokenizer, vocab: Vocabulary, text: str, *, hold: int = 2, gap: int = 1) -> list[int]:
    """A frame path for ``text``: each piece held ``hold`` frames, ``gap`` blanks between
    pieces (always one between a piece and its repeat) and at both ends."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    path = [vocab.blank_id] * 2
    for k, i in enumerate(ids):
        path += [i] * hold
        if gap or (k + 1 < len(ids) and ids[k + 1] == i):
            path += [vocab.blank_id] * max(gap, 1)
    return path + [vocab.blank_id] * 2


def hf_text(tokenizer, path: list[int]) -> str:
    """transformers' own CTC decode of a best path (as its processor's batch_decode)."""
    return tokenizer.batch_decode([path], skip_special_tokens=True)[0]


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

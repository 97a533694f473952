"""Subword vocabularies for the tests (issue #25): tokenizers trained here with the
``tokenizers`` library on the LM tests' corpus, wrapped in transformers' own tokenizer classes
(so ``decode`` is transformers' own), and CTC emissions built by hand for known piece
sequences, so that every decoder's output is decisive.

- **Parakeet CTC**: SentencePiece BPE pieces with ``▁``, ``<unk>`` = 0, the blank = pad =
  the last id.
- **LASR/MedASR**: Unigram pieces with ``▁``, blank ``<pad>`` = 0, ``</s>``, ``<unk>``.
- **Omnilingual ASR CTC**: BPE pieces that start with a literal space, blank ``<s>`` = 0
  (``config.blank_token_id``), ``<pad>`` = 1 is not the blank.

Imported by ``test_subword.py`` and ``test_beam_parity.py``.
"""

from __future__ import annotations

import json

import numpy as np
from lm_fixtures import english_sentences

from w2v2cli.models.vocab import vocabulary_from_tokenizer
from w2v2cli.records import Emissions, Vocabulary

FRAME = 0.08  # Parakeet's 80 ms frames

CORPUS = [s.lower() for s in english_sentences(200)] + [
    "quick brown foxes jump over lazy dogs",
    "zebra quilt vexing jazz",
]


def _trained(kind: str, replacement: str, specials: list[str]):
    """A ``kind`` (``bpe``/``unigram``) tokenizer trained on ``CORPUS``; its pieces start
    with ``replacement``. The BPE vocabulary is small enough that words come out as whole
    pieces (``▁the``), as a word piece and the rest (``▁m`` ``at``), and as a bare marker
    and characters (``▁`` ``z`` ``e`` ...); the Unigram one is mostly characters."""
    from tokenizers import Tokenizer, decoders, pre_tokenizers, trainers
    from tokenizers.models import BPE, Unigram

    if kind == "bpe":
        tok = Tokenizer(BPE(unk_token="<unk>"))
        trainer = trainers.BpeTrainer(
            vocab_size=70 + len(specials), special_tokens=specials, show_progress=False
        )
    else:
        tok = Tokenizer(Unigram())
        trainer = trainers.UnigramTrainer(
            vocab_size=120, special_tokens=specials, unk_token="<unk>", show_progress=False
        )
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tok.train_from_iterator(CORPUS, trainer)
    if replacement == "▁":
        return tok
    # Omnilingual ASR's pieces carry a literal space where SentencePiece writes ▁.
    data = json.loads(tok.to_str())
    model = data["model"]
    if kind == "bpe":
        model["vocab"] = {p.replace("▁", replacement): i for p, i in model["vocab"].items()}
        model["merges"] = [[p.replace("▁", replacement) for p in m] for m in model["merges"]]
    else:
        model["vocab"] = [[p.replace("▁", replacement), s] for p, s in model["vocab"]]
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

    tok = _trained("bpe", "▁", ["<unk>"])
    tok.add_special_tokens(["<pad>"])
    return ParakeetTokenizer(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>")


def lasr_tokenizer():
    """LASR/MedASR: ``▁`` pieces, blank ``<pad>`` = 0, ``</s>`` = 1, ``<unk>`` = 2."""
    from transformers import LasrTokenizer

    tok = _trained("unigram", "▁", ["<pad>", "</s>", "<unk>"])
    return LasrTokenizer(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", extra_ids=0
    )


def omni_tokenizer():
    """Omnilingual ASR CTC: pieces with a literal space, ``<s>`` = 0 is the blank
    (``config.blank_token_id``), ``<pad>`` = 1 is not."""
    from transformers import ParakeetTokenizer

    tok = _trained("bpe", " ", ["<s>", "<pad>", "</s>", "<unk>"])
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


_MADE: dict[str, tuple] = {}


def family_vocabulary(name: str) -> tuple:
    """``(tokenizer, Vocabulary)`` of family ``name`` (made once per session)."""
    if name not in _MADE:
        make, blank = FAMILIES[name]
        tokenizer = make()
        _MADE[name] = (tokenizer, vocabulary_from_tokenizer(tokenizer, blank_id=blank))
    return _MADE[name]


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


def word_path(tokenizer, vocab: Vocabulary, words: list[str], frames: int = 12) -> list[int]:
    """A frame path with ``frames`` frames a word (its pieces share them evenly, a blank
    between a piece and its repeat) and one blank frame between words and at both ends:
    paths of sentences with as many words have the same length and the same word frames."""
    path = [vocab.blank_id]
    for word in words:
        ids = tokenizer(word, add_special_tokens=False)["input_ids"]
        assert len(ids) <= frames // 2, (word, ids)
        base, extra = divmod(frames, len(ids))
        for k, i in enumerate(ids):
            n = base + (1 if k < extra else 0)
            if k + 1 < len(ids) and ids[k + 1] == i:
                path += [i] * (n - 1) + [vocab.blank_id]
            else:
                path += [i] * n
        path.append(vocab.blank_id)
    return path


def confusion(tokenizer, vocab: Vocabulary, said: str, heard: str, *, seed: int = 0) -> Emissions:
    """Emissions where ``heard`` (0.5 a frame) narrowly beats ``said`` (0.35) wherever their
    paths differ (``word_path``; as many words): greedy decoding gives ``heard``, an LM that
    knows ``said`` better can recover it."""
    a = word_path(tokenizer, vocab, said.split())
    b = word_path(tokenizer, vocab, heard.split())
    assert len(a) == len(b)
    rng = np.random.default_rng(seed)
    probs = rng.random((len(a), vocab.size)) + 1e-3
    rows = np.arange(len(a))
    probs[rows, a] = 0.0
    probs[rows, b] = 0.0
    differ = np.array(a) != np.array(b)
    rest = np.where(differ, 0.15, 0.1)
    probs *= (rest / probs.sum(axis=1))[:, None]
    probs[rows, a] += np.where(differ, 0.35, 0.9)
    probs[rows, b] += np.where(differ, 0.5, 0.0)
    starts = np.arange(len(a), dtype=np.float64) * FRAME
    return Emissions(np.log(probs).astype(np.float32), starts, FRAME, duration=len(a) * FRAME)

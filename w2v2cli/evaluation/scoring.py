"""WER/CER scoring: per-utterance edit counts, corpus-level scores, word alignments.

The eval command's scoring stage: it gets reference and hypothesis *texts* and never sees
the model, the audio or the manifest. Typical use::

    utts = utterance_scores(refs, hyps, ids=ids)          # one UtteranceScore per pair
    total = aggregate(utts)                               # corpus-level Score
    write_report("report.csv", [u.to_row() for u in utts])    # reports.py
    worst(utts, 5)                                        # for the CLI's alignment view

How errors are counted (the reasons are in the docstrings below):

* Texts are normalised (``normalize.normalize``), or with ``normalize=False`` only split on
  whitespace; either way words are whitespace-separated tokens.
* Word and character edit operations come from jiwer's Levenshtein alignment
  (``process_words`` / ``process_characters``).
* WER and CER are corpus-level: all errors over all reference words (characters), not the
  mean of per-utterance rates, which would let a two-word utterance weigh as much as a
  fifty-word one.
* CER counts the single space between words as a character (jiwer's and Hugging Face
  ``evaluate``'s convention): a CTC model that merges or splits words makes real errors.
* An utterance whose (normalised) reference is empty scores its hypothesis words/characters
  as insertions; its own rate is the insertion count (0.0 when the hypothesis is empty
  too), which is jiwer 4's convention. jiwer 3 refuses empty references, so such pairs are
  counted here, never passed to jiwer.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import jiwer

from .normalize import Normalization, prepare


@dataclass(frozen=True)
class ErrorCounts:
    """Edit operations of an alignment, in words or in characters. Counts add up with ``+``."""

    hits: int = 0
    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0

    @property
    def reference(self) -> int:
        """Length of the reference (words or characters)."""
        return self.hits + self.substitutions + self.deletions

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def rate(self) -> float:
        """errors / reference length; with an empty reference, the insertion count (jiwer 4)."""
        if self.reference == 0:
            return float(self.insertions)
        return self.errors / self.reference

    def __add__(self, other: ErrorCounts) -> ErrorCounts:
        return ErrorCounts(
            self.hits + other.hits,
            self.substitutions + other.substitutions,
            self.deletions + other.deletions,
            self.insertions + other.insertions,
        )


def _counts_row(wer: float, cer: float, words: ErrorCounts, chars: ErrorCounts) -> dict:
    """Rates and edit counts as flat report columns (shared by utterance and corpus rows)."""
    return {
        "wer": wer,
        "cer": cer,
        "ref_words": words.reference,
        "hits": words.hits,
        "substitutions": words.substitutions,
        "deletions": words.deletions,
        "insertions": words.insertions,
        "ref_chars": chars.reference,
        "char_hits": chars.hits,
        "char_substitutions": chars.substitutions,
        "char_deletions": chars.deletions,
        "char_insertions": chars.insertions,
    }


class Rates:
    """``wer`` and ``cer`` of anything that has word and character ``ErrorCounts``."""

    words: ErrorCounts
    chars: ErrorCounts

    @property
    def wer(self) -> float:
        return self.words.rate

    @property
    def cer(self) -> float:
        return self.chars.rate


@dataclass(frozen=True)
class UtteranceScore(Rates):
    """One scored pair. ``reference``/``hypothesis`` are the texts as given; ``ref``/``hyp``
    are the texts as scored (normalised, single spaces), which alignments use."""

    id: str
    reference: str
    hypothesis: str
    ref: str
    hyp: str
    words: ErrorCounts
    chars: ErrorCounts

    def to_row(self) -> dict[str, object]:
        """A flat record for ``write_report``; callers may add keys (decoder, duration...)."""
        return {
            "id": self.id,
            **_counts_row(self.wer, self.cer, self.words, self.chars),
            "ref": self.ref,
            "hyp": self.hyp,
            "reference": self.reference,
            "hypothesis": self.hypothesis,
        }


@dataclass(frozen=True)
class Score(Rates):
    """Corpus-level result: counts summed over utterances, rates computed from the sums."""

    words: ErrorCounts
    chars: ErrorCounts
    utterances: int

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready summary."""
        return {
            "utterances": self.utterances,
            **_counts_row(self.wer, self.cer, self.words, self.chars),
        }


def utterance_scores(
    references: Sequence[str],
    hypotheses: Sequence[str],
    *,
    normalize: Normalization = True,
    ids: Sequence[str] | None = None,
) -> list[UtteranceScore]:
    """Score each reference/hypothesis pair; ``ids`` default to "0", "1", ...

    All pairs with a non-empty reference go to jiwer in one call per unit (words,
    characters), and per-utterance counts are read off its alignments, so per-utterance and
    corpus numbers come from the same alignments.
    """
    if len(references) != len(hypotheses):
        raise ValueError(
            f"{len(references)} references but {len(hypotheses)} hypotheses; they must pair up"
        )
    if ids is None:
        ids = [str(i) for i in range(len(references))]
    elif len(ids) != len(references):
        raise ValueError(f"{len(ids)} ids for {len(references)} references")

    refs = [prepare(r, normalize) for r in references]
    hyps = [prepare(h, normalize) for h in hypotheses]
    word_counts = [ErrorCounts(insertions=len(h.split())) for h in hyps]
    char_counts = [ErrorCounts(insertions=len(h)) for h in hyps]

    scored = [i for i, r in enumerate(refs) if r]
    if scored:
        ref_batch = [refs[i] for i in scored]
        hyp_batch = [hyps[i] for i in scored]
        by_word = jiwer.process_words(ref_batch, hyp_batch)
        by_char = jiwer.process_characters(ref_batch, hyp_batch)
        for i, w_chunks, c_chunks in zip(
            scored, by_word.alignments, by_char.alignments, strict=True
        ):
            word_counts[i] = _counts(w_chunks)
            char_counts[i] = _counts(c_chunks)

    return [
        UtteranceScore(
            id=ids[i],
            reference=references[i],
            hypothesis=hypotheses[i],
            ref=refs[i],
            hyp=hyps[i],
            words=word_counts[i],
            chars=char_counts[i],
        )
        for i in range(len(refs))
    ]


def _counts(chunks: Iterable[jiwer.AlignmentChunk]) -> ErrorCounts:
    hits = subs = dels = ins = 0
    for c in chunks:
        if c.type == "equal":
            hits += c.ref_end_idx - c.ref_start_idx
        elif c.type == "substitute":
            subs += c.ref_end_idx - c.ref_start_idx
        elif c.type == "delete":
            dels += c.ref_end_idx - c.ref_start_idx
        elif c.type == "insert":
            ins += c.hyp_end_idx - c.hyp_start_idx
    return ErrorCounts(hits, subs, dels, ins)


def aggregate(utterances: Iterable[UtteranceScore]) -> Score:
    """Sum per-utterance counts into a corpus-level ``Score``."""
    words = chars = ErrorCounts()
    n = 0
    for u in utterances:
        words += u.words
        chars += u.chars
        n += 1
    return Score(words=words, chars=chars, utterances=n)


def score(
    references: Sequence[str], hypotheses: Sequence[str], normalize: Normalization = True
) -> Score:
    """Corpus-level WER/CER of paired texts (total errors / total reference length)."""
    return aggregate(utterance_scores(references, hypotheses, normalize=normalize))


def worst(results: Iterable[UtteranceScore], n: int) -> list[UtteranceScore]:
    """The ``n`` utterances with the most word errors, ties broken by higher WER, then by
    input order. Absolute errors first: a 1-word utterance with 100% WER is rarely the
    most instructive failure."""
    if n <= 0:
        return []
    return sorted(results, key=lambda u: (-u.words.errors, -u.wer))[:n]


# --- word alignment --------------------------------------------------------------------


class AlignedWord(NamedTuple):
    """One column of a word alignment. ``op``: C (correct), S, D (``hyp`` None) or I
    (``ref`` None)."""

    op: str
    ref: str | None
    hyp: str | None


def align_words(ref: str, hyp: str) -> list[AlignedWord]:
    """Word alignment of two texts *as scored* (pass ``UtteranceScore.ref``/``.hyp``);
    they are only split on whitespace here."""
    ref_words, hyp_words = ref.split(), hyp.split()
    if not ref_words:
        return [AlignedWord("I", None, h) for h in hyp_words]
    chunks = jiwer.process_words(" ".join(ref_words), " ".join(hyp_words)).alignments[0]
    columns = []
    for c in chunks:
        r = ref_words[c.ref_start_idx : c.ref_end_idx]
        h = hyp_words[c.hyp_start_idx : c.hyp_end_idx]
        if c.type in ("equal", "substitute"):
            op = "C" if c.type == "equal" else "S"
            columns += [AlignedWord(op, a, b) for a, b in zip(r, h, strict=False)]
            # Levenshtein replace blocks pair 1:1; anything left over is a D or an I.
            columns += [AlignedWord("D", a, None) for a in r[len(h) :]]
            columns += [AlignedWord("I", None, b) for b in h[len(r) :]]
        elif c.type == "delete":
            columns += [AlignedWord("D", a, None) for a in r]
        else:
            columns += [AlignedWord("I", None, b) for b in h]
    return columns

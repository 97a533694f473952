"""Forced alignment of a known text to one file's emissions: ``align``. Pure, no model.

1. The text is split into words as written, each spelled for the model (``text.py``).
2. The token sequence is every spellable part's letters, in order (for a subword
   vocabulary its pieces, a word-initial one first, or a bare ``▁`` that is not part of
   the word). Between two words goes one optional token: the word delimiter (``|``) when
   the vocabulary has one (a subword vocabulary needs none), or, where
   words that cannot be aligned sit, the garbage token that absorbs their speech
   (``viterbi.py``). A windowed CTC Viterbi finds the best path (bounded memory).
3. A word runs from its first letter's first frame to its last letter's last frame; its
   score is the mean probability the model gave its letters on those frames (the
   ``confidence`` of ``transcribe``'s words), and the word's end (and start) are then
   refined by the rule every decoder shares (``decoding.timing.refine_spans``).
4. Words that cannot be aligned take the frames the garbage token took between their
   neighbours (from its first to its last frame whose best label is a letter, then
   refined like a word), shared among them in proportion to their length in characters; where the
   path skipped the garbage token (nothing was said there), they get an empty span at the
   end of the word before them (or the start of the word after them). They are flagged
   (``Word.interpolated``) and carry no score.
5. The file's **match score** says how well the text explains the audio compared with
   what the model hears unconstrained: ``exp((log P(forced path) - log P(best path)) /
   letters)``, the geometric mean, per aligned letter, of the likelihood the text keeps
   (1: the text is exactly what the model hears; each letter the model hears otherwise
   costs a factor), over the frames the text explains (not those of speech it cannot
   spell). Below ``min_score`` the text is taken not to be what the audio says
   and the file fails (``AlignmentError``) instead of being aligned silently. The file's
   ``confidence`` is, as for ``transcribe``, the character-weighted mean of the word
   scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..decoding.timing import (
    file_confidence,
    frame_end,
    frame_start,
    letter_mask,
    refine_spans,
)
from ..errors import AlignmentError, AlignmentImpossible
from ..records import Emissions, Transcript, Vocabulary, Word
from .text import TextWord, split_text
from .viterbi import (
    DEFAULT_COMMIT,
    DEFAULT_WINDOW,
    GARBAGE,
    AlignToken,
    Graph,
    build_graph,
    forced_states,
)

DECODER_NAME = "align"
#: Default ``min_score`` (see ``options.AlignOptions`` for the measurements behind it).
DEFAULT_MIN_SCORE = 0.05


@dataclass(frozen=True)
class _Plan:
    tokens: list[AlignToken]
    owner: list[int]  # per token: index of its word, or -1 (delimiter), or -2 - g (garbage g)
    groups: list[list[int]]  # per garbage token: the unalignable words it stands for


def _delimiter(vocabulary: Vocabulary) -> int | None:
    if vocabulary.is_subword:
        return None  # words begin with their own word-initial piece (or a bare marker)
    if vocabulary.delimiter_id is not None:
        return vocabulary.delimiter_id
    spaces = [i for i, t in enumerate(vocabulary.tokens) if t == " "]
    return spaces[0] if spaces else None


def _plan(words: tuple[TextWord, ...], vocabulary: Vocabulary) -> _Plan:
    delimiter = _delimiter(vocabulary)
    tokens: list[AlignToken] = []
    owner: list[int] = []
    groups: list[list[int]] = []
    pending: list[int] = []  # unalignable words since the last aligned part
    first = True
    for index, word in enumerate(words):
        if not word.alignable:
            pending.append(index)
            continue
        for part in word.parts:
            if pending:
                tokens.append(AlignToken(GARBAGE, optional=True))
                owner.append(-2 - len(groups))
                groups.append(pending)
                pending = []
            elif not first and delimiter is not None:
                tokens.append(AlignToken(delimiter, optional=True))
                owner.append(-1)
            first = False
            for token_id in part:
                tokens.append(AlignToken(token_id))
                # A bare marker (``▁`` + ``k`` ``at``) is said before the word, not in it.
                owner.append(-1 if vocabulary.is_word_boundary(token_id) else index)
    if pending:
        tokens.append(AlignToken(GARBAGE, optional=True))
        owner.append(-2 - len(groups))
        groups.append(pending)
    return _Plan(tokens, owner, groups)


def _runs(states: np.ndarray) -> list[tuple[int, int, int]]:
    """``(state, first_frame, last_frame)`` of each run of equal states (inclusive)."""
    if states.size == 0:
        return []
    starts = np.flatnonzero(np.concatenate(([True], states[1:] != states[:-1])))
    ends = np.append(starts[1:], states.size) - 1
    return [(int(states[a]), int(a), int(b)) for a, b in zip(starts, ends, strict=True)]


def align(
    emissions: Emissions,
    text: str,
    vocabulary: Vocabulary,
    *,
    min_score: float = DEFAULT_MIN_SCORE,
    window: int = DEFAULT_WINDOW,
    commit: int = DEFAULT_COMMIT,
    tokenizer: Any = None,
) -> Transcript:
    """Align ``text`` to ``emissions`` (see the module docstring); raises ``AlignmentError``
    when the text cannot be aligned or does not match the audio. ``tokenizer`` (the
    model's) spells words for a subword vocabulary (``text.split_text``)."""
    words = split_text(text, vocabulary, tokenizer)
    duration = emissions.duration
    if not words:
        return Transcript("", (), duration, None, decoder=DECODER_NAME)
    if not any(w.alignable for w in words):
        raise AlignmentError("none of the text's words can be spelled with the model's alphabet")
    plan = _plan(words, vocabulary)
    graph = build_graph(plan.tokens, vocabulary.blank_id, vocabulary.size)
    try:
        states = forced_states(emissions.log_probs, graph, window=window, commit=commit)
    except AlignmentImpossible as exc:
        raise AlignmentError(f"the text cannot be aligned to this audio: {exc}") from None
    match = match_score(emissions.log_probs, graph, states)
    if match < min_score:
        raise AlignmentError(
            f"the text does not match the audio (match score {match:.3f}, below the minimum "
            f"{min_score:g}; see --min-score)"
        )

    letters = letter_mask(vocabulary)
    n_words = len(words)
    first = np.full(n_words, -1)
    last = np.full(n_words, -1)
    prob_sum = np.zeros(n_words)
    frames = np.zeros(n_words, dtype=np.int64)
    garbage: dict[int, tuple[int, int]] = {}
    log_probs = emissions.log_probs
    for state, a, b in _runs(states):
        if state % 2 == 0:
            continue
        who = plan.owner[state // 2]
        if who >= 0:
            if first[who] < 0:
                first[who] = a
            last[who] = b
            label = plan.tokens[state // 2].label
            prob_sum[who] += float(np.exp(log_probs[a : b + 1, label].astype(np.float64)).sum())
            frames[who] += b - a + 1
        elif who <= -2:
            # The garbage token may also take the delimiter and blank frames around the
            # speech it stands for: the span is its frames whose best label is a letter.
            hits = np.flatnonzero(letters[log_probs[a : b + 1].argmax(axis=1)])
            garbage[-2 - who] = (a + int(hits[0]), a + int(hits[-1])) if hits.size else (a, b)

    # Spans to refine: aligned words and the garbage stretches, in time order.
    spans: list[tuple[int, int]] = []
    kinds: list[tuple[str, int]] = []
    group_of = {w: g for g, members in enumerate(plan.groups) for w in members}
    for index in range(n_words):
        if first[index] >= 0:
            spans.append((int(first[index]), int(last[index])))
            kinds.append(("word", index))
        elif group_of.get(index) is not None and plan.groups[group_of[index]][0] == index:
            g = group_of[index]
            if g in garbage:
                spans.append(garbage[g])
                kinds.append(("garbage", g))
    refined = refine_spans(spans, emissions)

    times: list[tuple[float, float] | None] = [None] * n_words
    group_span: dict[int, tuple[float, float]] = {}
    for (kind, index), (a, b) in zip(kinds, refined, strict=True):
        span = (frame_start(emissions, a), frame_end(emissions, b))
        if kind == "word":
            times[index] = span
        else:
            group_span[index] = span
    result: list[Word] = []
    for g, members in enumerate(plan.groups):
        if g in group_span:
            start, end = group_span[g]
        else:
            before = [times[i] for i in range(members[0]) if times[i] is not None]
            after = [times[i] for i in range(members[-1] + 1, n_words) if times[i] is not None]
            point = before[-1][1] if before else (after[0][0] if after else 0.0)
            start = end = point
        weights = np.array([max(len(words[i].text), 1) for i in members], dtype=np.float64)
        edges = start + (end - start) * np.concatenate(([0.0], np.cumsum(weights) / weights.sum()))
        for k, i in enumerate(members):
            times[i] = (float(edges[k]), float(edges[k + 1]))
    for index, word in enumerate(words):
        start, end = times[index]  # type: ignore[misc]
        if first[index] >= 0:
            confidence = prob_sum[index] / frames[index]
            result.append(Word(word.text, start, end, float(confidence), interpolated=False))
        else:
            result.append(Word(word.text, start, end, 0.0, interpolated=True))
    return Transcript(
        text=" ".join(w.text for w in result),
        words=tuple(result),
        duration=duration,
        confidence=file_confidence([w for w in result if not w.interpolated]),
        decoder=DECODER_NAME,
        score=match,
    )


def match_score(log_probs: np.ndarray, graph: Graph, states: np.ndarray) -> float:
    """``exp((log P(forced path) - log P(best path)) / letters)`` over the frames the text
    explains (the garbage token's frames, speech the text cannot spell, are left out); the
    best path takes each frame's most likely label. See the module docstring."""
    lp = np.asarray(log_probs, dtype=np.float64)
    columns = graph.labels[states]
    kept = columns != lp.shape[1]  # not the garbage token
    if not kept.any():
        return 1.0
    frames = np.flatnonzero(kept)
    forced = float(lp[frames, columns[kept]].sum())
    best = float(lp[frames].max(axis=1).sum())
    ratio = (forced - best) / max(graph.required_tokens, 1)
    return float(np.exp(min(ratio, 0.0)))

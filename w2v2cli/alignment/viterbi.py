"""CTC forced alignment: the best path of frames through a known token sequence (Viterbi).

Pure numpy; no model, no files. The graph is the usual CTC one: a blank state before every
token and one after the last, so a path reads ``blank* t0+ blank* t1+ ... blank*``; a token
can follow the previous one directly unless both have the same label (a doubled letter
needs a blank between). A token may be *optional* (the word delimiter between two words,
or the garbage token standing for words the model cannot spell): the path may skip it.
The garbage token (``GARBAGE``) scores each frame with the frame's best log-probability
(blank included) minus ``GARBAGE_PENALTY``, so it absorbs speech that no given token
explains (a number the model cannot spell, blanks between its letters and all) without
taking a neighbouring word's letters, and is skipped where nothing needs explaining.

**Bounded memory: a windowed Viterbi.** A full trellis for an hour of audio and its
transcript would hold frames x states back-pointers (180,000 x 100,000 bytes). Instead the
search runs over windows of ``window`` frames: from the state the previous window
committed, it finds the best path to the window's last frame (in any state), keeps the
first ``commit`` frames of it and starts the next window where that part ends. A window's
states are those reachable from its start (at most 4 further per frame), so back-pointers
never exceed ``window x (4 window + 1)`` bytes (4 MB for 20 s windows) whatever the file's
length, and time grows linearly with it. The last window must end in a final state.
Every committed frame was chosen with ``window - commit`` frames (10 s by default) of
look-ahead, far more than a CTC path's choices depend on; a file that fits in one window
(up to 20 s) is aligned exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import AlignmentImpossible

#: Label of the garbage token (a column added to the log-probabilities).
GARBAGE = -1
#: What the garbage token gives up against its frame's best label (natural log): enough
#: that a neighbouring word's letters and the blanks of silence keep their own frames.
GARBAGE_PENALTY = 0.5
#: The largest move between states in one frame: token i-2 to token i over a skipped
#: optional token i-1 is 4 states.
_MAX_STEP = 4

DEFAULT_WINDOW = 1000  # frames: 20 s of 20 ms frames
DEFAULT_COMMIT = 500


@dataclass(frozen=True)
class AlignToken:
    """One token of the sequence to align: a vocabulary id, or ``GARBAGE``."""

    label: int
    optional: bool = False


@dataclass(frozen=True)
class Graph:
    """The CTC state graph of a token sequence.

    State ``2i`` is the blank before token ``i``, ``2i+1`` token ``i``, ``2L`` the blank
    after the last. ``labels[s]`` is the log-probability column of state ``s`` (the
    garbage token's column is ``vocab_size``, appended by ``forced_states``);
    ``allowed[s, d]`` says whether the path may go from state ``s - d`` to ``s`` between
    two frames (``d = 0``: staying). ``min_frames`` is what the shortest path needs.
    """

    labels: np.ndarray  # (S,) int64
    allowed: np.ndarray  # (S, 5) bool
    min_frames: int
    finals: tuple[int, ...]  # states a path may end in
    required_tokens: int

    @property
    def num_states(self) -> int:
        return int(self.labels.shape[0])


def build_graph(tokens: Sequence[AlignToken], blank_id: int, vocab_size: int) -> Graph:
    """The state graph of ``tokens`` (see ``Graph``). Two optional tokens must not be
    next to each other (the aligner puts at most one between two words)."""
    n = len(tokens)
    for i, tok in enumerate(tokens):
        if tok.optional and i > 0 and tokens[i - 1].optional:
            raise ValueError("two optional tokens cannot be next to each other")
    labels = np.full(2 * n + 1, blank_id, dtype=np.int64)
    for i, tok in enumerate(tokens):
        labels[2 * i + 1] = vocab_size if tok.label == GARBAGE else tok.label
    allowed = np.zeros((2 * n + 1, _MAX_STEP + 1), dtype=bool)
    allowed[:, 0] = True
    for i in range(1, n + 1):  # blank state 2i: after token i-1, or over an optional one
        s = 2 * i
        allowed[s, 1] = True
        if tokens[i - 1].optional:
            allowed[s, 2] = True  # the blank before the skipped token
            allowed[s, 3] = i >= 2  # the token before it
    for i in range(n):  # token state 2i+1
        s = 2 * i + 1
        allowed[s, 1] = True  # its own blank
        if i >= 1 and labels[s - 2] != labels[s]:
            allowed[s, 2] = True  # straight from the previous token
        if i >= 1 and tokens[i - 1].optional:
            allowed[s, 3] = True  # the blank before the skipped token
            if i >= 2 and labels[s - 4] != labels[s]:
                allowed[s, 4] = True  # the token before it
    required = [t.label for t in tokens if not t.optional]
    repeats = sum(1 for a, b in zip(required, required[1:], strict=False) if a == b)
    last = 2 * n
    finals = (last, last - 1, last - 2, last - 3) if n and tokens[-1].optional else (last, last - 1)
    return Graph(
        labels, allowed, len(required) + repeats, tuple(s for s in finals if s >= 0), len(required)
    )


def emission_table(log_probs: np.ndarray) -> np.ndarray:
    """``log_probs`` (float64) with the garbage token's column appended."""
    lp = np.asarray(log_probs, dtype=np.float64)
    garbage = lp.max(axis=1, keepdims=True) - GARBAGE_PENALTY
    return np.concatenate([lp, garbage], axis=1)


def forced_states(
    log_probs: np.ndarray,
    graph: Graph,
    *,
    window: int = DEFAULT_WINDOW,
    commit: int = DEFAULT_COMMIT,
) -> np.ndarray:
    """The state of the best path at every frame: ``(T,)`` int64 indices into ``graph``.

    ``log_probs`` is ``(T, V)``. Raises ``AlignmentImpossible`` when the tokens need more
    frames than there are (or no path has a finite score).
    """
    num_frames = int(log_probs.shape[0])
    if graph.min_frames > num_frames:
        raise AlignmentImpossible(
            f"{graph.min_frames} frames are needed for the text and the audio has {num_frames}"
        )
    if not 0 < commit <= window:
        raise ValueError("commit must be between 1 and window")
    labels = graph.labels
    num_states = graph.num_states
    states = np.empty(num_frames, dtype=np.int64)
    t0, s0 = 0, 0
    while t0 < num_frames:
        t1 = min(num_frames, t0 + window)
        last = t1 == num_frames
        hi = min(num_states, s0 + _MAX_STEP * (t1 - t0) + 1)
        table = emission_table(log_probs[t0:t1])
        scores, pointers = _viterbi(table, labels[s0:hi], graph.allowed[s0:hi])
        if last:
            finals = [s for s in graph.finals if s0 <= s < hi]
            end = max(finals, key=lambda s: scores[s - s0]) if finals else None
            if end is None or not np.isfinite(scores[end - s0]):
                raise AlignmentImpossible("no path through the whole text reaches the end")
            keep = t1 - t0
        else:
            end = s0 + int(np.argmax(scores))
            keep = commit
        path = _backtrack(pointers, end - s0) + s0
        states[t0 : t0 + keep] = path[:keep]
        s0 = int(path[keep - 1])
        t0 += keep
    return states


def _viterbi(
    table: np.ndarray, labels: np.ndarray, allowed: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """One window: ``table`` is ``(n, V + 1)`` log-probabilities with the garbage column,
    ``labels`` ``(S,)`` the column of each state, ``allowed`` ``(S, 5)``; the path
    starts in local state 0 before the first frame. Returns the last frame's scores and
    the back-pointers (the step taken into each state, ``(n, S)`` uint8).

    Frame ``t`` computes only the states reachable by then (``4 (t + 1) + 1``); each step
    size is one vectorised comparison (steps 3 and 4 exist only at word boundaries).
    """
    n, num_states = table.shape[0], labels.shape[0]
    pad = np.full(num_states + _MAX_STEP, -np.inf)
    pad[_MAX_STEP] = 0.0  # local state 0 "before" the first frame
    pointers = np.zeros((n, num_states), dtype=np.uint8)
    blocked = [np.where(allowed[:, d], 0.0, -np.inf) for d in range(_MAX_STEP + 1)]
    sparse = [np.flatnonzero(allowed[:, d]) for d in range(_MAX_STEP + 1)]
    best = np.empty(num_states)
    cand = np.empty(num_states)
    better = np.empty(num_states, dtype=bool)
    for t in range(n):
        hi = min(num_states, _MAX_STEP * (t + 1) + 1)
        b, c, m = best[:hi], cand[:hi], better[:hi]
        b[:] = pad[_MAX_STEP : _MAX_STEP + hi]
        step = pointers[t, :hi]
        for d in (1, 2):
            np.add(pad[_MAX_STEP - d : _MAX_STEP - d + hi], blocked[d][:hi], out=c)
            np.greater(c, b, out=m)
            np.maximum(b, c, out=b)
            step[m] = d
        for d in (3, 4):
            idx = sparse[d]
            idx = idx[idx < hi]
            if idx.size:
                c3 = pad[idx + _MAX_STEP - d]
                win = c3 > b[idx]
                b[idx[win]] = c3[win]
                step[idx[win]] = d
        np.add(b, table[t].take(labels[:hi]), out=pad[_MAX_STEP : _MAX_STEP + hi])
    return pad[_MAX_STEP:].copy(), pointers


def _backtrack(pointers: np.ndarray, end: int) -> np.ndarray:
    n = pointers.shape[0]
    path = np.empty(n, dtype=np.int64)
    s = end
    for t in range(n - 1, -1, -1):
        path[t] = s
        s -= int(pointers[t, s])
    return path

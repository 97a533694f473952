"""Token and word timings and confidences from CTC frames. Pure functions, no model.

Every time comes from ``Emissions.frame_starts`` (frames of stitched chunks are not evenly
spaced), never from ``index * frame_duration``. Frame ranges are half-open: ``[first, end)``.

Definitions (docs/inputs-and-outputs.md, "Timing and confidence", quotes these):

- **Token times.** A token is a run of consecutive frames carrying the same non-blank id
  (so ``l l`` is one token and ``l <blank> l`` two). It starts at its first frame's start
  and ends at the end of its last frame, ``frame_starts[last] + frame_duration``, clipped
  to the next frame's start when stitched frames overlap and to the file's duration.
- **Word times.** A word starts where its first token starts and ends where its last token
  ends; leading and trailing blank frames are not part of it. Then both ends are refined
  from the audio's loudness (``refine_spans``), because CTC emits a letter as a short
  spike: the last letter's spike often comes well before the sound ends (by 100-260 ms
  after a vowel), while the blank already dominates the frames of the fading sound.
- **Token confidence.** The mean, over the token's frames, of the probability the model
  gave that token on that frame (``exp(log_prob)``).
- **Word confidence.** The mean of the same per-frame probabilities over all the frames of
  all the word's tokens (a token held for more frames weighs more). For a greedy path this
  equals the mean of the frame-wise maximum probability over the word's letter frames,
  which is what ``words_from_frame_spans`` computes for a beam decoder that knows only
  frame ranges: greedy and beam confidences are the same measure.
- **Refinement** (``refine_spans``, used by every decoder and by forced alignment alike).
  A word's end moves later, frame by frame, while the next frame is loud enough, at most
  ``REFINE_END_MAX`` (0.3 s), never into the next word's first frame and never across a
  gap between frames (audio that was not sent to the model, with ``--vad``). Its start
  moves earlier the same way, at most ``REFINE_START_MAX`` (60 ms), never into the
  previous word. *Loud enough* is at least the louder of: the word's own loudest frame
  minus 30 dB, and the file's noise floor (the 10th percentile of its frames' loudness)
  plus 6 dB. Frame loudness is ``Emissions.frame_energy``; without it (emissions built by
  hand) words keep their letter times. Token times are never refined.
- **File confidence.** The mean of word confidences weighted by the number of characters
  of each word (roughly a per-character average, so "a" weighs less than
  "transcription"); None when there are no words.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..records import Emissions, TokenSpan, Vocabulary, Word

# What each collapsed run of frames is, for word building.
LETTER, BOUNDARY, SPECIAL = "letter", "boundary", "special"


def collapse_path(path: np.ndarray | Sequence[int], blank_id: int) -> list[tuple[int, int, int]]:
    """Standard CTC collapse of a per-frame id path into non-blank runs.

    Returns ``(token_id, first_frame, end_frame)`` with ``end_frame`` exclusive. Any change
    of id ends a run (blanks and other ids alike); blank runs are dropped.
    """
    ids = np.asarray(path, dtype=np.int64).reshape(-1)
    if ids.size == 0:
        return []
    starts = np.flatnonzero(np.concatenate(([True], ids[1:] != ids[:-1])))
    ends = np.append(starts[1:], ids.size)
    runs = zip(starts.tolist(), ends.tolist(), strict=True)
    return [(int(ids[s]), s, e) for s, e in runs if int(ids[s]) != blank_id]


def token_kind(token_id: int, vocabulary: Vocabulary) -> str:
    """Classify an id: word boundary (delimiter, a space token or a bare ``▁``), special,
    or letter (a character, or a subword piece: a word-initial one is a letter too, and
    ``align_path`` starts a new word at it).

    Special ids (other than the blank, which never reaches here) are neither letters nor
    boundaries: they are dropped without splitting a word, so a stray ``<unk>`` inside
    ``ca<unk>t`` gives ``cat``. A boundary check comes first so that a delimiter listed as
    special still separates words.
    """
    if vocabulary.is_word_boundary(token_id):
        return BOUNDARY
    if token_id in vocabulary.special_ids:
        return SPECIAL
    return LETTER


def frame_end(emissions: Emissions, frame: int) -> float:
    """End time of ``frame``: its start plus the frame duration, clipped to the next frame's
    start (stitched frames may overlap by rounding) and to the file's duration."""
    starts = emissions.frame_starts
    end = float(starts[frame]) + emissions.frame_duration
    if frame + 1 < len(starts):
        end = min(end, max(float(starts[frame + 1]), float(starts[frame])))
    return min(end, emissions.duration) if emissions.duration > 0 else end


def _check_frames(emissions: Emissions) -> None:
    if len(emissions.frame_starts) != emissions.num_frames:
        raise ValueError(
            f"{len(emissions.frame_starts)} frame start times for {emissions.num_frames} frames"
        )


def frame_start(emissions: Emissions, frame: int) -> float:
    """Start time of ``frame``, clipped to the file's duration."""
    start = float(emissions.frame_starts[frame])
    return min(start, emissions.duration) if emissions.duration > 0 else start


def _id_table(vocabulary: Vocabulary) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Per id: its kind (0 letter, 1 boundary, 2 special: ``token_kind``), whether it
    starts a word, and its text; made once per vocabulary (``_TABLES``)."""
    key = id(vocabulary)
    cached = _TABLES.get(key)
    if cached is not None and cached[0] is vocabulary:
        return cached[1]
    codes = {LETTER: 0, BOUNDARY: 1, SPECIAL: 2}
    ids = range(vocabulary.size)
    kinds = np.array([codes[token_kind(i, vocabulary)] for i in ids], dtype=np.int8)
    starts = np.array([vocabulary.starts_word(i) for i in ids], dtype=bool)
    table = (kinds, starts, [vocabulary.text(i) for i in ids])
    if len(_TABLES) > 8:
        _TABLES.clear()
    _TABLES[key] = (vocabulary, table)
    return table


_TABLES: dict[int, tuple[Vocabulary, tuple[np.ndarray, np.ndarray, list[str]]]] = {}


def _frame_times(emissions: Emissions) -> tuple[np.ndarray, np.ndarray]:
    """Every frame's start and end (``frame_start``, ``frame_end``) at once."""
    starts = np.asarray(emissions.frame_starts, dtype=np.float64)
    following = np.append(starts[1:], np.inf)
    ends = np.minimum(starts + emissions.frame_duration, np.maximum(following, starts))
    if emissions.duration > 0:
        return np.minimum(starts, emissions.duration), np.minimum(ends, emissions.duration)
    return starts, ends


def align_path(
    path: np.ndarray | Sequence[int], emissions: Emissions, vocabulary: Vocabulary
) -> tuple[tuple[TokenSpan, ...], tuple[Word, ...]]:
    """Tokens and words of a per-frame id path (argmax for greedy, or any forced path).

    Only letter tokens become ``TokenSpan``s; boundaries split words, and so does a
    word-initial piece (``▁the``, `` the``), which begins the next word; specials vanish.
    Token and word texts never carry a word-start marker. Confidences follow the module
    docstring. Array code over the path's runs; Python only makes the records.
    """
    ids = np.asarray(path, dtype=np.int64).reshape(-1)
    _check_frames(emissions)
    if ids.size != emissions.num_frames:
        raise ValueError(f"path has {ids.size} frames, emissions have {emissions.num_frames}")
    if ids.size == 0:
        return (), ()
    frame_probs = np.exp(
        emissions.log_probs[np.arange(ids.size), ids].astype(np.float64, copy=False)
    )
    # Runs of equal ids (``collapse_path``), their probability sums, then the non-blank ones.
    run_first = np.flatnonzero(np.concatenate(([True], ids[1:] != ids[:-1])))
    run_end = np.append(run_first[1:], ids.size)
    run_sum = np.add.reduceat(frame_probs, run_first)
    run_ids = ids[run_first]
    kinds, initial, texts = _id_table(vocabulary)
    kind = kinds[run_ids]
    kind[run_ids == vocabulary.blank_id] = 2  # the blank is dropped like a special
    kept = kind != 2
    kind, run_ids = kind[kept], run_ids[kept]
    run_first, run_end, run_sum = run_first[kept], run_end[kept], run_sum[kept]
    letter = kind == 0
    if not letter.any():
        return (), ()
    # A letter begins a word after a boundary (or at the start) or when it is word-initial.
    after_boundary = np.concatenate(([True], kind[:-1] == 1))
    begins = (after_boundary | initial[run_ids])[letter]
    run_ids, run_first, run_end, run_sum = (
        run_ids[letter],
        run_first[letter],
        run_end[letter],
        run_sum[letter],
    )
    frame_start_t, frame_end_t = _frame_times(emissions)
    run_frames = run_end - run_first
    token_texts = [texts[i] for i in run_ids.tolist()]
    tokens = tuple(
        TokenSpan(text, start, end, confidence)
        for text, start, end, confidence in zip(
            token_texts,
            frame_start_t[run_first].tolist(),
            frame_end_t[run_end - 1].tolist(),
            (run_sum / run_frames).tolist(),
            strict=True,
        )
    )
    word_first = np.flatnonzero(begins)
    word_stop = np.append(word_first[1:], len(token_texts))
    confidences = np.add.reduceat(run_sum, word_first) / np.add.reduceat(run_frames, word_first)
    spans = list(
        zip(run_first[word_first].tolist(), (run_end[word_stop - 1] - 1).tolist(), strict=True)
    )
    refined = np.array(refine_spans(spans, emissions), dtype=np.int64).reshape(-1, 2)
    words = tuple(
        Word("".join(token_texts[lo:hi]), start, end, confidence)
        for lo, hi, start, end, confidence in zip(
            word_first.tolist(),
            word_stop.tolist(),
            frame_start_t[refined[:, 0]].tolist(),
            frame_end_t[refined[:, 1]].tolist(),
            confidences.tolist(),
            strict=True,
        )
    )
    return tokens, words


def letter_mask(vocabulary: Vocabulary) -> np.ndarray:
    """Boolean mask over the vocabulary: True for ids that can appear inside a word."""
    return np.array(
        [token_kind(i, vocabulary) == LETTER for i in range(vocabulary.size)], dtype=bool
    ) & (np.arange(vocabulary.size) != vocabulary.blank_id)


def words_from_frame_spans(
    spans: Sequence[tuple[str, int, int]], emissions: Emissions, vocabulary: Vocabulary
) -> tuple[Word, ...]:
    """Words for a decoder that knows only each word's frame range (e.g. pyctcdecode's
    ``(word, (start_frame, end_frame))``, end exclusive).

    Within ``[start, end)`` the word's frames are those whose argmax is a letter. Times span
    the first to the last of them and confidence is the mean of their maximum probability,
    which matches ``align_path`` exactly when the beam agrees with the greedy path. When
    no frame of the range has a letter as argmax (the LM chose a word the acoustics barely
    support), the whole range is used and confidence is the mean, over its frames, of the
    best letter probability. Ranges are clipped to the emissions; an empty range is taken
    as its start frame. Words with empty text are skipped.
    """
    _check_frames(emissions)
    total = emissions.num_frames
    if total == 0:
        return ()
    letters = letter_mask(vocabulary)
    log_probs = emissions.log_probs
    found: list[tuple[str, float]] = []
    frames: list[tuple[int, int]] = []
    for text, start, end in spans:
        if not text:
            continue
        first = min(max(int(start), 0), total - 1)
        stop = min(max(int(end), first + 1), total)
        block = log_probs[first:stop].astype(np.float64, copy=False)
        argmax = block.argmax(axis=1)
        hits = np.flatnonzero(letters[argmax])
        if hits.size:
            lo, hi = first + int(hits[0]), first + int(hits[-1])
            confidence = float(np.exp(block[hits, argmax[hits]]).mean())
        else:
            lo, hi = first, stop - 1
            best = block[:, letters].max(axis=1) if letters.any() else np.full(len(block), -np.inf)
            confidence = float(np.exp(best).mean())
        found.append((text, confidence))
        frames.append((lo, hi))
    return tuple(
        Word(text, frame_start(emissions, a), frame_end(emissions, b), confidence)
        for (text, confidence), (a, b) in zip(found, refine_spans(frames, emissions), strict=True)
    )


def file_confidence(words: Sequence[Word]) -> float | None:
    """Character-weighted mean of word confidences; None when there are no words."""
    weights = [len(w.text) for w in words]
    total = sum(weights)
    if not words or total == 0:
        return None
    return sum(w.confidence * n for w, n in zip(words, weights, strict=True)) / total


#: How far word-end refinement may move a word's end later and its start earlier (seconds).
REFINE_END_MAX = 0.30
REFINE_START_MAX = 0.06
#: A frame continues a word when it is at most this far below the word's loudest frame...
REFINE_BELOW_PEAK_DB = 30.0
#: ... and at least this far above the file's noise floor (``REFINE_FLOOR_PERCENTILE``).
REFINE_ABOVE_FLOOR_DB = 6.0
REFINE_FLOOR_PERCENTILE = 10.0


def refine_spans(spans: Sequence[tuple[int, int]], emissions: Emissions) -> list[tuple[int, int]]:
    """Word frame ranges ``(first, last)`` (inclusive, in order) moved to where the sound
    is, by the rule in the module docstring. Unchanged without ``frame_energy``."""
    energy = emissions.frame_energy
    total = emissions.num_frames
    if energy is None or not len(spans) or total == 0 or len(energy) != total:
        return [(int(a), int(b)) for a, b in spans]
    energy = np.asarray(energy, dtype=np.float64)
    floor = float(np.percentile(energy, REFINE_FLOOR_PERCENTILE)) + REFINE_ABOVE_FLOOR_DB
    step = emissions.frame_duration
    max_end = int(round(REFINE_END_MAX / step))
    max_start = int(round(REFINE_START_MAX / step))
    starts = emissions.frame_starts
    # joined[f]: frame f follows frame f - 1 without a gap (no audio left out between).
    joined_array = np.ones(total, dtype=bool)
    joined_array[1:] = np.diff(starts) <= 1.5 * step
    # Python lists: the loops below read single frames, which numpy makes slow.
    joined = joined_array.tolist()
    peaks = energy.tolist()
    out: list[tuple[int, int]] = []
    for k, (a, b) in enumerate(spans):
        a, b = int(a), int(b)
        following = int(spans[k + 1][0]) if k + 1 < len(spans) else total
        previous = out[-1][1] if out else -1
        loud = max(max(peaks[a : b + 1]) - REFINE_BELOW_PEAK_DB, floor)
        end = b
        while (
            end + 1 < following
            and end + 1 - b <= max_end
            and joined[end + 1]
            and peaks[end + 1] >= loud
        ):
            end += 1
        start = a
        while (
            start - 1 > previous
            and a - (start - 1) <= max_start
            and joined[start]
            and peaks[start - 1] >= loud
        ):
            start -= 1
        out.append((start, end))
    return out

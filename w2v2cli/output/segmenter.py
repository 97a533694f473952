"""Subtitle cues from timed words: one segmenter shared by SRT, VTT, TSV and JSON.

Rules, in order:

1. A pause of at least ``pause`` seconds between two words always starts a new cue.
2. Within a stretch without such pauses, words are grouped into the fewest cues such that
   each cue's text fits ``max_lines`` lines of ``max_line_chars`` characters (lines break
   only between words) and lasts at most ``max_cue_duration`` from its first word's start
   to its last word's end. Among groupings with that many cues, the one with the most even
   cue lengths wins, so a stretch does not end in a one-word orphan cue. A single word
   that is longer than a line or lasts longer than ``max_cue_duration`` gets a cue (and a
   line) of its own; words are never cut.
3. Lines within a cue are balanced: the fewest lines that fit, broken where the longest
   line is shortest; ties prefer the more even split, then a shorter top line.
4. Times are whole milliseconds (what SRT/VTT can carry) within ``[0, duration]``; every
   cue has ``start < end`` and ends at or before the next cue's start. A cue shorter than
   ``min_cue_duration`` is extended, never past the next cue's start or the file's end
   and never beyond ``max_cue_duration``.

Pure functions over ``Word``s; writers only format the ``Cue``s made here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..options import SubtitleOptions
from ..records import Cue, Word


def segment(words: Sequence[Word], options: SubtitleOptions, duration: float) -> tuple[Cue, ...]:
    """Group ``words`` (in order) into subtitle cues following the module's rules.

    Words with empty text are skipped. Raises ``ValueError`` only in the impossible case of
    more cues than milliseconds in ``duration``.
    """
    kept = [w for w in words if w.text.strip()]
    if not kept:
        return ()
    texts = [" ".join(w.text.split()) for w in kept]
    limit = _duration_ms(duration)
    starts = [min(max(_ms(w.start), 0), limit) for w in kept]
    ends = [min(max(_ms(w.end), s), limit) for w, s in zip(kept, starts, strict=True)]
    pause_ms = _ms(options.pause)
    max_ms = _ms(options.max_cue_duration)

    groups: list[tuple[int, int]] = []  # half-open word index ranges between pauses
    first, last_end = 0, ends[0]
    for i in range(1, len(kept)):
        if starts[i] - last_end >= pause_ms:
            groups.append((first, i))
            first = i
        last_end = max(last_end, ends[i])
    groups.append((first, len(kept)))

    ranges: list[tuple[int, int]] = []
    for lo, hi in groups:
        ranges.extend(_split_stretch(texts, starts, ends, lo, hi, options, max_ms))

    times = _cue_times(
        [(starts[lo], max(ends[lo:hi])) for lo, hi in ranges],
        limit,
        min(_ms(options.min_cue_duration), max_ms),
    )
    return tuple(
        Cue(start=s / 1000, end=e / 1000, lines=break_lines(texts[lo:hi], options))
        for (lo, hi), (s, e) in zip(ranges, times, strict=True)
    )


def _ms(seconds: float) -> int:
    return int(round(seconds * 1000))


def _duration_ms(duration: float) -> int:
    """The largest whole millisecond count ``d`` with ``d / 1000 <= duration``."""
    if not math.isfinite(duration) or duration <= 0:
        return 0
    d = math.floor(duration * 1000)
    while (d + 1) / 1000 <= duration:
        d += 1
    while d > 0 and d / 1000 > duration:
        d -= 1
    return d


def _split_stretch(
    texts: Sequence[str],
    starts: Sequence[int],
    ends: Sequence[int],
    lo: int,
    hi: int,
    options: SubtitleOptions,
    max_ms: int,
) -> list[tuple[int, int]]:
    """Fewest cues for words ``lo..hi``, then the most even in characters (min sum of squares).

    Forward dynamic programming over cue start ``j``: extending a cue word by word, line
    filling is incremental and feasibility is monotone, so each start costs O(cue size).
    """
    n = hi - lo
    best: list[tuple[int, int] | None] = [None] * (n + 1)
    back = [0] * (n + 1)
    best[0] = (0, 0)
    width, max_lines = options.max_line_chars, options.max_lines
    for j in range(n):
        base = best[j]
        assert base is not None  # every prefix is reachable: one word per cue always fits
        lines, line_len, chars, end = 0, 0, -1, 0
        for i in range(j, n):
            size = len(texts[lo + i])
            if lines and line_len + 1 + size <= width:
                line_len += 1 + size
            else:
                lines, line_len = lines + 1, size
            chars += 1 + size
            end = max(end, ends[lo + i])
            if i > j and (lines > max_lines or end - starts[lo + j] > max_ms):
                break
            cost = (base[0] + 1, base[1] + chars * chars)
            current = best[i + 1]
            if current is None or cost < current:
                best[i + 1] = cost
                back[i + 1] = j
    ranges: list[tuple[int, int]] = []
    i = n
    while i > 0:
        ranges.append((lo + back[i], lo + i))
        i = back[i]
    ranges.reverse()
    return ranges


def _line_count(lengths: Sequence[int], width: int) -> int:
    """Fewest lines for words of these lengths (greedy filling is optimal for this)."""
    lines, line_len = 0, 0
    for size in lengths:
        if lines and line_len + 1 + size <= width:
            line_len += 1 + size
        else:
            lines, line_len = lines + 1, size
    return lines


def break_lines(texts: Sequence[str], options: SubtitleOptions) -> tuple[str, ...]:
    """Balanced line breaks for one cue's words (see rule 3 in the module docstring).

    A line is either one word (which may exceed ``max_line_chars`` if the word does) or
    several words within ``max_line_chars``. Uses the fewest lines that fit; if even that
    exceeds ``max_lines`` (only possible for words the segmenter did not group), the extra
    words still get lines rather than being lost.
    """
    width = options.max_line_chars
    lengths = [len(t) for t in texts]
    k = _line_count(lengths, width)
    if k <= 1:
        return (" ".join(texts),) if texts else ()
    prefix = [0]
    for size in lengths:
        prefix.append(prefix[-1] + size)
    if k == 2:  # nearly every cue: the same rules, one pass over the break points
        return _two_lines(texts, prefix, width)
    return _balanced_lines(texts, prefix, k, width)


def _balanced_lines(texts: Sequence[str], prefix: list[int], k: int, width: int) -> tuple[str, ...]:
    """``break_lines`` into ``k`` lines, for any ``k`` (dynamic programming)."""
    m = len(texts)

    def length(j: int, i: int) -> int:
        return prefix[i] - prefix[j] + (i - j - 1)

    def allowed(j: int, i: int) -> bool:
        return i - j == 1 or length(j, i) <= width

    def balance_len(j: int, i: int) -> int:
        # A word longer than a line is forced onto its own line: it must not drive balance.
        return 0 if i - j == 1 and length(j, i) > width else length(j, i)

    inf = math.inf
    # 1) The smallest possible longest line with exactly k lines (min-max partition).
    f = [[inf] * (m + 1) for _ in range(k + 1)]
    f[0][0] = 0
    for lines in range(1, k + 1):
        for i in range(1, m + 1):
            for j in range(lines - 1, i):
                if f[lines - 1][j] < inf and allowed(j, i):
                    f[lines][i] = min(f[lines][i], max(f[lines - 1][j], balance_len(j, i)))
    cap = f[k][m]

    # 2) Under that cap, the most even split (min sum of squared lengths), computed backwards
    #    so that the first line is chosen last and ties can prefer a shorter top line.
    g = [[inf] * (m + 1) for _ in range(k + 1)]
    g[0][m] = 0
    for lines in range(1, k + 1):
        for j in range(m - 1, -1, -1):
            for i in range(j + 1, m + 1):
                if g[lines - 1][i] < inf and allowed(j, i) and balance_len(j, i) <= cap:
                    g[lines][j] = min(g[lines][j], g[lines - 1][i] + length(j, i) ** 2)
    out: list[str] = []
    j = 0
    for lines in range(k, 0, -1):
        choices = [
            (g[lines - 1][i] + length(j, i) ** 2, length(j, i), i)
            for i in range(j + 1, m + 1)
            if g[lines - 1][i] < inf and allowed(j, i) and balance_len(j, i) <= cap
        ]
        _, _, i = min(choices)
        out.append(" ".join(texts[j:i]))
        j = i
    return tuple(out)


def _two_lines(texts: Sequence[str], prefix: list[int], width: int) -> tuple[str, ...]:
    """``break_lines`` for a cue of exactly two lines: the break ``i`` whose longer line is
    shortest (a word longer than a line counts 0, as there), then the least sum of squared
    line lengths, then the shorter top line (the general search's order, in O(words))."""
    m = len(texts)
    total = prefix[m]
    candidates = []
    for i in range(1, m):
        top = prefix[i] + i - 1
        bottom = total - prefix[i] + (m - i - 1)
        if (i > 1 and top > width) or (i < m - 1 and bottom > width):
            continue  # a line of several words that does not fit
        balance = max(
            0 if i == 1 and top > width else top, 0 if i == m - 1 and bottom > width else bottom
        )
        candidates.append((balance, top * top + bottom * bottom, top, i))
    cap = min(c[0] for c in candidates)
    _, _, _, i = min(c for c in candidates if c[0] == cap)
    return (" ".join(texts[:i]), " ".join(texts[i:]))


def _cue_times(spans: Sequence[tuple[int, int]], limit: int, min_ms: int) -> list[tuple[int, int]]:
    """Whole-millisecond cue times: ordered, non-overlapping, non-empty, within ``[0, limit]``.

    ``spans`` are each cue's word span (first start, last end) in ms, already clamped.
    A forward pass removes overlaps and gives empty spans 1 ms; a backward pass pulls cues
    back inside the file; a last pass extends short cues to ``min_ms`` where there is room.
    """
    n = len(spans)
    if n > limit:
        raise ValueError(f"cannot fit {n} subtitle cues into {limit} ms of audio")
    times: list[list[int]] = []
    prev_end = 0
    for s, e in spans:
        start = max(s, prev_end)
        end = max(e, start + 1)
        times.append([start, end])
        prev_end = end
    bound = limit
    for cue in reversed(times):
        cue[1] = min(cue[1], bound)
        cue[0] = min(cue[0], cue[1] - 1)
        bound = cue[0]
    for i, cue in enumerate(times):
        if cue[1] - cue[0] < min_ms:
            room = times[i + 1][0] if i + 1 < n else limit
            cue[1] = max(cue[1], min(cue[0] + min_ms, room))
    return [(s, e) for s, e in times]

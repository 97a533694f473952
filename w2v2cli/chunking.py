"""Pure chunking and stitching, with the transformers ASR pipeline's arithmetic.

``split`` cuts a file's samples into overlapping chunks (``Splitter`` does the same for
audio arriving block by block); ``stitch`` drops each chunk's stride frames from its
log-probabilities (``keep``) and concatenates the rest (``join``), carrying the absolute
time of every kept frame. Both follow ``transformers.pipelines.automatic_speech_recognition``
(``chunk_iter``, ``rescale_stride`` and the CTC branch of ``postprocess``) exactly, so
that at batch size 1 our text equals the pipeline's. No torch here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .errors import ConfigError
from .options import ChunkOptions
from .records import Chunk, Emissions


@dataclass(frozen=True)
class ChunkPlan:
    """Chunk and stride lengths in samples, aligned to whole model frames. ``min_samples``
    is the shortest input that gives the model an output frame (see ``split``)."""

    chunk_len: int
    stride_left: int
    stride_right: int
    samples_per_frame: int
    sampling_rate: int
    min_samples: int = 1

    @property
    def step(self) -> int:
        return self.chunk_len - self.stride_left - self.stride_right


def plan(
    options: ChunkOptions, sampling_rate: int, samples_per_frame: int, min_samples: int = 1
) -> ChunkPlan:
    """Turn seconds into sample counts rounded to whole frames, as the pipeline does."""
    align = samples_per_frame

    def to_samples(seconds: float) -> int:
        return int(round(seconds * sampling_rate / align) * align)

    chunk_len = to_samples(options.chunk_length)
    left = to_samples(options.stride_left)
    right = to_samples(options.stride_right)
    if chunk_len < left + right or chunk_len - left - right <= 0:
        raise ConfigError(
            "chunk length must be greater than the two strides together once rounded to "
            f"model frames ({chunk_len} <= {left} + {right} samples)"
        )
    return ChunkPlan(chunk_len, left, right, samples_per_frame, sampling_rate, min_samples)


def split(file_index: int, samples: np.ndarray, chunk_plan: ChunkPlan) -> list[Chunk]:
    """Cut one file's samples into chunks (views, no copies).

    Mirrors ``chunk_iter``: chunks start every ``step`` samples; the first has no left
    stride, the last (the one reaching the end) no right stride; a chunk no longer than its
    left stride carries nothing new and is not emitted. A file shorter than one chunk is a
    single chunk with no strides. A last chunk shorter than ``min_samples`` (too short for
    the model to give a frame) is merged into the chunk before it.
    """
    splitter = Splitter(file_index, chunk_plan, copy=False)
    return splitter.feed(samples) + splitter.finish()


class Splitter:
    """``split`` for audio that arrives in blocks: each chunk comes out as soon as it is
    final, so a file is never held whole; the chunks are ``split``'s over the whole file.

    A chunk is final once the samples seen reach past its end (so it is not the last) and
    far enough into the next chunk that the next is not a tail short enough to be merged
    into it. ``feed`` returns the chunks that became final, ``finish`` the rest; then
    ``num_samples`` is the file's length and ``count`` its number of chunks. Chunks hold
    copies of their samples (``copy=False``: views, for a single ``feed`` of a whole array).
    """

    def __init__(self, file_index: int, chunk_plan: ChunkPlan, *, copy: bool = True) -> None:
        self.file_index = file_index
        self.plan = chunk_plan
        self.copy = copy
        self.num_samples = 0  # samples seen so far
        self.count = 0  # chunks given out so far
        self._buf = np.zeros(0, dtype=np.float32)
        self._buf_start = 0  # where _buf[0] is in the file
        self._blocks: list[np.ndarray] = []  # fed after _buf, not joined to it yet
        self._next = 0  # where the next chunk starts

    @property
    def held(self) -> int:
        """Samples held back (not yet in a chunk given out, or needed by the next one)."""
        return self._buf.size + sum(b.size for b in self._blocks)

    def _join(self) -> None:
        """Join the blocks fed since the last chunk went out to the buffer: once per chunk,
        not once per block (blocks can be a few hundred samples: an MP3 frame)."""
        if self._blocks:
            parts = [self._buf, *self._blocks] if self._buf.size else self._blocks
            self._buf = parts[0] if len(parts) == 1 else np.concatenate(parts)
            self._blocks = []

    def _piece(self, start: int, end: int) -> np.ndarray:
        piece = self._buf[start - self._buf_start : end - self._buf_start]
        return piece.copy() if self.copy else piece

    def _ready(self) -> bool:
        """Whether the next chunk is final (see the class docstring)."""
        p = self.plan
        start = self._next
        return self.num_samples >= max(start + p.chunk_len + 1, start + p.step + p.min_samples)

    def feed(self, block: np.ndarray) -> list[Chunk]:
        block = np.asarray(block)
        if block.ndim != 1:
            raise ValueError(f"audio blocks must be 1-D, not of shape {block.shape}")
        if block.size == 0:
            return []
        self._blocks.append(block)
        self.num_samples += block.size
        if not self._ready():
            return []
        self._join()
        p = self.plan
        out: list[Chunk] = []
        while self._ready():
            start = self._next
            left = 0 if start == 0 else p.stride_left
            out.append(
                Chunk(
                    self.file_index,
                    self.count,
                    start,
                    self._piece(start, start + p.chunk_len),
                    left,
                    p.stride_right,
                    False,
                )
            )
            self.count += 1
            self._next = start + p.step
        drop = self._next - self._buf_start
        if drop > 0:
            self._buf = self._buf[drop:]
            self._buf_start = self._next
        return out

    def finish(self) -> list[Chunk]:
        """The chunks not given out yet, the last one among them (none for no samples)."""
        self._join()
        p = self.plan
        n = self.num_samples
        out: list[Chunk] = []
        for start in range(self._next, max(n, 1), p.step):
            end = start + p.chunk_len
            left = 0 if start == 0 else p.stride_left
            is_last = end >= n
            right = 0 if is_last else p.stride_right
            stop = min(end, n)
            if stop - start > left:
                index = self.count + len(out)
                piece = self._piece(start, stop)
                out.append(Chunk(self.file_index, index, start, piece, left, right, is_last))
            if is_last:
                break
        if len(out) > 1 and out[-1].length < p.min_samples:
            prev = out[-2]
            out[-2:] = [
                Chunk(
                    self.file_index,
                    prev.index,
                    prev.start,
                    self._piece(prev.start, n),
                    prev.stride_left,
                    0,
                    True,
                )
            ]
        self.count += len(out)
        self._buf = np.zeros(0, dtype=np.float32)
        self._buf_start = self._next = n
        return out


def kept_frames(chunk: Chunk, samples_per_frame: int) -> tuple[int, int]:
    """The ``[first, stop)`` frame range of a chunk's output that survives its strides.

    This is ``rescale_stride`` + ``items[:, left:total_n - right]`` from the pipeline:
    ``total_n`` is the chunk length in frames *rounded*, which can exceed the number of
    frames the convolutions really produce by one; slicing clamps that, as numpy does.
    """
    input_n = chunk.length
    token_n = int(round(input_n / samples_per_frame))
    if input_n == 0:
        return 0, 0
    left = int(round(chunk.stride_left / input_n * token_n))
    right = int(round(chunk.stride_right / input_n * token_n))
    return left, token_n - right


def file_positions(chunk: Chunk, offsets: np.ndarray) -> np.ndarray:
    """Where sample ``offsets`` of ``chunk`` are in the file (``Chunk.pieces`` mapped back)."""
    if not chunk.pieces:
        return chunk.start + offsets
    starts = np.array([o for o, _ in chunk.pieces], dtype=np.int64)
    where = np.array([p for _, p in chunk.pieces], dtype=np.int64)
    k = np.searchsorted(starts, offsets, side="right") - 1
    return where[k] + offsets - starts[k]


#: A boundary frame's log-probability for everything but the boundary: practically never,
#: yet finite, so that no path through it is impossible.
BOUNDARY_FLOOR = float(np.log(1e-10))


@dataclass(frozen=True)
class KeptFrames:
    """What one chunk gives its file's emissions (``keep``): the frames that survive its
    strides, their times in the file and their loudness; the chunk's samples are no longer
    needed once this is made."""

    index: int  # the chunk's index in its file
    log_probs: np.ndarray
    times: np.ndarray
    energy: np.ndarray


def chunk_energy(chunk: Chunk, samples_per_frame: int) -> tuple[int, np.ndarray]:
    """``frame_energy`` of every frame of ``chunk`` that ``keep`` may keep, computed ahead
    (before the model runs, off its thread): the first such frame and their loudness,
    from the first kept frame to the last its samples reach, or to the last kept one."""
    first, stop = kept_frames(chunk, samples_per_frame)
    if not chunk.stride_right:
        stop = -(-chunk.length // samples_per_frame)
    return first, frame_energy(chunk.samples, first, stop, samples_per_frame)


def keep(
    chunk: Chunk,
    log_probs: np.ndarray,
    chunk_plan: ChunkPlan,
    energy: tuple[int, np.ndarray] | None = None,
) -> KeptFrames:
    """The kept frames of ``chunk`` from its ``(frames, vocab)`` output ``log_probs``
    (only the frames its real, unpadded samples produce). A frame's time is where its first
    sample is in the file (``file_positions``). ``energy``: the chunk's ``chunk_energy``,
    if it was computed ahead (the same values)."""
    spf = chunk_plan.samples_per_frame
    first, stop = kept_frames(chunk, spf)
    if not chunk.stride_right:
        # A chunk that ends where its audio ends keeps every frame its samples give:
        # Parakeet's padded subsampling gives ceil(n / 1,280), one more than round() when
        # the last frame is less than half full (a convolutional front end never does).
        stop = log_probs.shape[0]
    stop = min(stop, log_probs.shape[0])
    first = min(first, stop)
    offsets = np.arange(first, stop, dtype=np.int64) * spf
    if energy is not None and energy[0] <= first and stop - energy[0] <= energy[1].size:
        loudness = energy[1][first - energy[0] : stop - energy[0]]
    else:
        loudness = frame_energy(chunk.samples, first, stop, spf)
    return KeptFrames(
        chunk.index,
        np.array(log_probs[first:stop], dtype=np.float32),
        file_positions(chunk, offsets).astype(np.float64) / chunk_plan.sampling_rate,
        loudness,
    )


def stitch(
    chunks: Sequence[Chunk],
    log_probs: Sequence[np.ndarray],
    chunk_plan: ChunkPlan,
    num_samples: int,
    boundary: int | None = None,
) -> Emissions:
    """Concatenate the kept frames of one file's chunks, in order, with their times:
    ``join`` of each chunk's ``keep``. ``log_probs[i]`` is the output for ``chunks[i]``."""
    if len(chunks) != len(log_probs):
        raise ValueError("one log-prob array per chunk is needed")
    kept = [keep(c, lp, chunk_plan) for c, lp in zip(chunks, log_probs, strict=True)]
    vocab = log_probs[0].shape[1] if log_probs else 0
    return join(kept, chunk_plan, num_samples, vocab, boundary)


def join(
    kept: Sequence[KeptFrames],
    chunk_plan: ChunkPlan,
    num_samples: int,
    vocab: int,
    boundary: int | None = None,
) -> Emissions:
    """One file's ``Emissions`` from its chunks' ``KeptFrames`` (in any order).

    Where audio was left out between two frames (``--vad``: non-speech is never sent to the
    model) and ``boundary`` is given, a *boundary frame* is put in the gap: it starts where
    the frame before it ends, gives ``boundary`` (the word delimiter, or the blank for
    alphabets without one) probability 1 and everything else ``BOUNDARY_FLOOR``, and is
    silent (``SILENCE_DB``). So a word never runs across a pause the VAD cut out, and a
    letter on both sides of it is two letters, for every decoder alike. Contiguous frames
    (fixed chunks) get none.
    """
    spf = chunk_plan.samples_per_frame
    sr = chunk_plan.sampling_rate
    ordered = sorted(kept, key=lambda k: k.index)
    if ordered:
        lp_all = np.concatenate([k.log_probs for k in ordered], axis=0)
        t_all = np.concatenate([k.times for k in ordered])
        e_all = np.concatenate([k.energy for k in ordered])
    else:
        lp_all = np.zeros((0, vocab), np.float32)
        t_all = np.zeros(0, np.float64)
        e_all = np.zeros(0, np.float32)
    if boundary is not None and t_all.size > 1:
        gaps = np.flatnonzero(np.diff(t_all) > 1.5 * spf / sr) + 1
        if gaps.size:
            row = np.full((gaps.size, lp_all.shape[1]), BOUNDARY_FLOOR, dtype=lp_all.dtype)
            row[:, boundary] = 0.0
            lp_all = np.insert(lp_all, gaps, row, axis=0)
            t_all = np.insert(t_all, gaps, t_all[gaps - 1] + spf / sr)
            e_all = np.insert(e_all, gaps, np.float32(SILENCE_DB))
    return Emissions(
        log_probs=np.ascontiguousarray(lp_all, dtype=np.float32),
        frame_starts=t_all,
        frame_duration=spf / sr,
        duration=num_samples / sr,
        frame_energy=e_all,
    )


#: The loudness given to a frame of digital silence (dB); nothing real is this quiet.
SILENCE_DB = -100.0


def frame_energy(samples: np.ndarray, first: int, stop: int, samples_per_frame: int) -> np.ndarray:
    """Loudness in dB (``10 log10`` of the mean square) of frames ``[first, stop)`` of a
    chunk: frame ``f`` covers its samples ``[f * spf, (f + 1) * spf)`` (the last may be
    short). Used to find where words really end (``decoding.timing.refine_spans``)."""
    n = max(stop - first, 0)
    out = np.full(n, SILENCE_DB, dtype=np.float32)
    piece = samples[first * samples_per_frame : stop * samples_per_frame]
    full = min(n, piece.shape[0] // samples_per_frame)
    # Squared in float64 straight from the samples (no float64 copy first: same values).
    if full:
        squares = np.square(piece[: full * samples_per_frame], dtype=np.float64)
        power = squares.reshape(full, -1).mean(axis=1)
        out[:full] = 10.0 * np.log10(np.maximum(power, 10 ** (SILENCE_DB / 10)))
    if full < n and piece.shape[0] > full * samples_per_frame:
        power = float(np.square(piece[full * samples_per_frame :], dtype=np.float64).mean())
        out[full] = 10.0 * np.log10(max(power, 10 ** (SILENCE_DB / 10)))
    return out


def plan_batches(
    lengths: Sequence[int], batch_size: int, max_padding: float = 1.0
) -> list[list[int]]:
    """Group chunk indices into batches: longest first, at most ``batch_size`` per batch.

    Chunks are taken in order of decreasing length, so neighbours are alike. A chunk joins
    the current batch only while it is at least ``(1 - max_padding)`` of the batch's
    longest, i.e. padding stays under ``max_padding`` for every item. ``max_padding=0``
    batches only chunks of equal length (the CPU policy: there a batch runs no faster than
    its items one by one, so padding is pure loss); ``1`` limits nothing (CUDA, where
    batching is what makes the device fast and sorting keeps padding low).
    """
    if batch_size < 1:
        raise ValueError("batch size must be at least 1")
    order = sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True)
    batches: list[list[int]] = []
    for i in order:
        current = batches[-1] if batches else None
        if (
            current is not None
            and len(current) < batch_size
            and lengths[i] >= (1.0 - max_padding) * lengths[current[0]]
        ):
            current.append(i)
        else:
            batches.append([i])
    return batches

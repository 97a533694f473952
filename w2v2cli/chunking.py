"""Pure chunking and stitching, with the transformers ASR pipeline's arithmetic.

``split`` cuts a file's samples into overlapping chunks; ``stitch`` drops each chunk's
stride frames from its log-probabilities and concatenates the rest, carrying the absolute
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
    single chunk with no strides.
    """
    n = int(samples.shape[0])
    p = chunk_plan
    chunks: list[Chunk] = []
    for start in range(0, max(n, 1), p.step):
        end = start + p.chunk_len
        piece = samples[start:end]
        left = 0 if start == 0 else p.stride_left
        is_last = end >= n
        right = 0 if is_last else p.stride_right
        if piece.shape[0] > left:
            chunks.append(Chunk(file_index, len(chunks), start, piece, left, right, is_last))
        if is_last:
            break
    if len(chunks) > 1 and chunks[-1].length < p.min_samples:
        prev = chunks[-2]
        merged = samples[prev.start:n]
        chunks[-2:] = [Chunk(file_index, prev.index, prev.start, merged, prev.stride_left, 0, True)]
    return chunks


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


def stitch(
    chunks: Sequence[Chunk],
    log_probs: Sequence[np.ndarray],
    chunk_plan: ChunkPlan,
    num_samples: int,
    boundary: int | None = None,
) -> Emissions:
    """Concatenate the kept frames of one file's chunks, in order, with their times.

    ``log_probs[i]`` is the ``(frames, vocab)`` output for ``chunks[i]`` holding only the
    frames that the chunk's real (unpadded) samples produce. A frame's time is where its
    first sample is in the file (``file_positions``).

    Where audio was left out between two frames (``--vad``: non-speech is never sent to the
    model) and ``boundary`` is given, a *boundary frame* is put in the gap: it starts where
    the frame before it ends, gives ``boundary`` (the word delimiter, or the blank for
    alphabets without one) probability 1 and everything else ``BOUNDARY_FLOOR``, and is
    silent (``SILENCE_DB``). So a word never runs across a pause the VAD cut out, and a
    letter on both sides of it is two letters, for every decoder alike. Contiguous frames
    (fixed chunks) get none.
    """
    if len(chunks) != len(log_probs):
        raise ValueError("one log-prob array per chunk is needed")
    spf = chunk_plan.samples_per_frame
    sr = chunk_plan.sampling_rate
    pieces: list[np.ndarray] = []
    times: list[np.ndarray] = []
    energies: list[np.ndarray] = []
    for chunk, lp in sorted(zip(chunks, log_probs, strict=True), key=lambda cl: cl[0].index):
        first, stop = kept_frames(chunk, spf)
        stop = min(stop, lp.shape[0])
        first = min(first, stop)
        pieces.append(lp[first:stop])
        offsets = np.arange(first, stop, dtype=np.int64) * spf
        times.append(file_positions(chunk, offsets).astype(np.float64) / sr)
        energies.append(frame_energy(chunk.samples, first, stop, spf))
    vocab = log_probs[0].shape[1] if log_probs else 0
    lp_all = np.concatenate(pieces, axis=0) if pieces else np.zeros((0, vocab), np.float32)
    t_all = np.concatenate(times) if times else np.zeros(0, np.float64)
    e_all = np.concatenate(energies) if energies else np.zeros(0, np.float32)
    if boundary is not None and t_all.size > 1:
        gaps = np.flatnonzero(np.diff(t_all) > 1.5 * spf / sr) + 1
        if gaps.size:
            row = np.full((gaps.size, vocab), BOUNDARY_FLOOR, dtype=lp_all.dtype)
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
    short). Used to find where words really end (``decoding.alignment.refine_spans``)."""
    n = max(stop - first, 0)
    out = np.full(n, SILENCE_DB, dtype=np.float32)
    piece = np.asarray(samples[first * samples_per_frame:stop * samples_per_frame], np.float64)
    full = min(n, piece.shape[0] // samples_per_frame)
    if full:
        power = np.square(piece[: full * samples_per_frame]).reshape(full, -1).mean(axis=1)
        out[:full] = 10.0 * np.log10(np.maximum(power, 10 ** (SILENCE_DB / 10)))
    if full < n and piece.shape[0] > full * samples_per_frame:
        power = float(np.square(piece[full * samples_per_frame:]).mean())
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

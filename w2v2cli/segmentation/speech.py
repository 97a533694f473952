"""Chunks cut at pauses: stretches of speech in, ``Chunk``s out. Pure, no torch.

Rules (docs/vad.md quotes them):

- Only the stretches of speech (``spans``, padding included: ``inference/vad.py``) are sent to the
  model; the pauses between them never are.
- Consecutive stretches are joined, in order, into one chunk as long as the chunk stays
  within ``chunk_length`` (their samples back to back; ``Chunk.pieces`` records where each
  came from, so every frame's time is its time in the file).
- A stretch longer than ``chunk_length`` gets chunks of its own, cut with strides exactly
  as a whole file is (``chunking.split``): words cut by a chunk boundary come out whole.
- Stitching puts a boundary frame wherever audio was left out (``chunking.stitch``), so a
  word never spans a cut pause.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from ..chunking import ChunkPlan, split
from ..records import Chunk


def merge_spans(
    spans: Sequence[tuple[int, int]], num_samples: int, padding: int = 0
) -> list[tuple[int, int]]:
    """``spans`` grown by ``padding`` samples on each side, clipped to the file, sorted,
    and merged where they touch or overlap."""
    out: list[tuple[int, int]] = []
    for a, b in sorted(
        (max(0, int(a) - padding), min(num_samples, int(b) + padding)) for a, b in spans
    ):
        if b <= a:
            continue
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def speech_chunks(
    file_index: int,
    samples: np.ndarray,
    spans: Sequence[tuple[int, int]],
    chunk_plan: ChunkPlan,
) -> list[Chunk]:
    """The chunks of one file's speech (see the module's rules). ``spans`` are sorted,
    disjoint ``[start, end)`` sample ranges (``merge_spans``); none gives no chunks."""
    chunks: list[Chunk] = []
    group: list[tuple[int, int]] = []
    size = 0

    def add(chunk: Chunk) -> None:
        chunks.append(dataclasses.replace(chunk, index=len(chunks), is_last=False))

    def flush() -> None:
        nonlocal group, size
        if group:
            offsets = np.cumsum([0] + [b - a for a, b in group[:-1]])
            pieces = tuple((int(o), a) for o, (a, _) in zip(offsets, group, strict=True))
            joined = np.concatenate([samples[a:b] for a, b in group])
            start = group[0][0]
            add(Chunk(file_index, 0, start, joined, 0, 0, False, pieces if len(group) > 1 else ()))
        group, size = [], 0

    for a, b in spans:
        length = b - a
        if length > chunk_plan.chunk_len:
            flush()
            for piece in split(file_index, samples[a:b], chunk_plan):
                add(dataclasses.replace(piece, start=a + piece.start))
            continue
        if size + length > chunk_plan.chunk_len:
            flush()
        group.append((a, b))
        size += length
    flush()
    if chunks:
        chunks[-1] = dataclasses.replace(chunks[-1], is_last=True)
    return chunks

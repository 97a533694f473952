"""Pure chunking and stitching, checked against the transformers pipeline's own arithmetic."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from transformers.pipelines.automatic_speech_recognition import chunk_iter, rescale_stride

from w2v2cli import chunking
from w2v2cli.errors import ConfigError
from w2v2cli.options import ChunkOptions

SR, SPF = 16000, 320


class _IdentityFE:
    """Stands in for a feature extractor so ``chunk_iter`` exposes its raw windows."""

    sampling_rate = SR

    def __call__(self, chunk, **_kw):
        return {"input_values": chunk}


def _reference(samples, plan):
    out = []
    for item in chunk_iter(
        samples, _IdentityFE(), plan.chunk_len, plan.stride_left, plan.stride_right
    ):
        length, left, right = item["stride"]
        out.append((length, left, right, item["is_last"], item["input_values"]))
    return out


def test_plan_rounds_to_whole_frames():
    p = chunking.plan(ChunkOptions(10.0, 2.01, 1.0), SR, SPF)
    assert p.chunk_len % SPF == 0 and p.stride_left % SPF == 0 and p.stride_right % SPF == 0
    assert p.chunk_len == 160000 and p.stride_left == 32000 and p.stride_right == 16000


def test_plan_rejects_strides_eating_the_chunk():
    with pytest.raises(ConfigError):
        ChunkOptions(4.0, 2.0, 2.0)
    with pytest.raises(ConfigError):
        chunking.plan(ChunkOptions(0.05, 0.024, 0.024), SR, SPF)  # 640 - 320 - 320


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=200_000),
    chunk_s=st.sampled_from([1.0, 2.0, 3.3, 5.0]),
    left_s=st.sampled_from([0.0, 0.2, 0.5]),
    right_s=st.sampled_from([0.0, 0.3, 0.5]),
)
def test_split_matches_pipeline_chunk_iter(n, chunk_s, left_s, right_s):
    assume(left_s + right_s < chunk_s)
    p = chunking.plan(ChunkOptions(chunk_s, left_s, right_s), SR, SPF)
    samples = np.arange(n, dtype=np.float32)
    ours = chunking.split(3, samples, p)
    ref = _reference(samples, p)
    assert len(ours) == len(ref)
    for c, (length, left, right, is_last, values) in zip(ours, ref, strict=True):
        got = (c.length, c.stride_left, c.stride_right, c.is_last)
        assert got == (length, left, right, is_last)
        np.testing.assert_array_equal(c.samples, values)
        assert c.file_index == 3
    # kept frame ranges equal the pipeline's rescale_stride + slice
    for c in ours:
        ((token_n, left, right),) = rescale_stride(
            [(c.length, c.stride_left, c.stride_right)], 1 / SPF
        )
        assert chunking.kept_frames(c, SPF) == (left, token_n - right)


def test_stitch_keeps_middle_frames_with_absolute_times():
    p = chunking.plan(ChunkOptions(1.0, 0.2, 0.2), SR, SPF)  # 50 frames, 10 each side
    n = SR * 3
    chunks = chunking.split(0, np.zeros(n, np.float32), p)
    # Give each frame a one-hot "log-prob" that encodes its absolute frame number mod 7.
    outs = []
    for c in chunks:
        frames = c.length // SPF - 1  # what wav2vec2's convolutions produce
        lp = np.full((frames, 7), -10.0, np.float32)
        absolute = c.start // SPF + np.arange(frames)
        lp[np.arange(frames), absolute % 7] = 0.0
        outs.append(lp)
    em = chunking.stitch(chunks, outs, p, n)
    assert em.frame_duration == pytest.approx(0.02)
    assert em.duration == pytest.approx(3.0)
    # strictly increasing times, frames land where their content says
    assert np.all(np.diff(em.frame_starts) > 0)
    absolute_from_time = np.round(em.frame_starts / 0.02).astype(int)
    np.testing.assert_array_equal(em.log_probs.argmax(1), absolute_from_time % 7)
    # interior frames are contiguous: every 20 ms step once, from 0 to the end
    np.testing.assert_allclose(np.diff(em.frame_starts), 0.02)
    assert em.frame_starts[0] == 0.0


def test_stitch_order_does_not_depend_on_argument_order():
    p = chunking.plan(ChunkOptions(1.0, 0.2, 0.2), SR, SPF)
    chunks = chunking.split(0, np.zeros(SR * 2, np.float32), p)
    outs = [np.full((c.length // SPF - 1, 3), float(i), np.float32) for i, c in enumerate(chunks)]
    a = chunking.stitch(chunks, outs, p, SR * 2)
    b = chunking.stitch(chunks[::-1], outs[::-1], p, SR * 2)
    np.testing.assert_array_equal(a.log_probs, b.log_probs)
    np.testing.assert_array_equal(a.frame_starts, b.frame_starts)


@settings(max_examples=100, deadline=None)
@given(
    lengths=st.lists(st.integers(min_value=1, max_value=1000), max_size=60),
    batch_size=st.integers(min_value=1, max_value=9),
    max_padding=st.sampled_from([0.0, 0.1, 0.5, 1.0]),
)
def test_plan_batches_limits(lengths, batch_size, max_padding):
    batches = chunking.plan_batches(lengths, batch_size, max_padding)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(lengths)))  # every chunk exactly once
    for b in batches:
        assert 1 <= len(b) <= batch_size
        longest = max(lengths[i] for i in b)
        assert all(lengths[i] >= (1 - max_padding) * longest for i in b)
    if max_padding == 1.0:  # unlimited: only the last batch may be short
        assert all(len(b) == batch_size for b in batches[:-1])


def test_plan_batches_cpu_policy_groups_equal_lengths():
    lengths = [320, 320, 100, 320, 99, 320, 320]
    assert chunking.plan_batches(lengths, 4, 0.0) == [[0, 1, 3, 5], [6], [2], [4]]
    assert chunking.plan_batches(lengths, 4, 1.0) == [[0, 1, 3, 5], [6, 2, 4]]


def test_a_tail_too_short_for_a_frame_is_merged_into_the_chunk_before():
    p = chunking.plan(ChunkOptions(1.0, 0.0, 0.0), SR, SPF, min_samples=560)
    samples = np.arange(16000 * 2 + 300, dtype=np.float32)
    chunks = chunking.split(0, samples, p)
    assert [(c.start, c.length, c.stride_right, c.is_last) for c in chunks] == [
        (0, 16000, 0, False),
        (16000, 16300, 0, True),
    ]
    np.testing.assert_array_equal(np.concatenate([c.samples for c in chunks]), samples)
    long_enough = chunking.split(0, np.zeros(32000 + 560, np.float32), p)
    assert [c.length for c in long_enough] == [16000, 16000, 560]
    alone = chunking.split(0, samples[:300], p)  # a file shorter than a frame stays whole
    assert [c.length for c in alone] == [300]


def _reference_merged(samples, plan):
    """The pipeline's chunks, then the one rule of ours on top: a last chunk shorter than
    ``min_samples`` joins the chunk before it (as (start, samples, left, right, is_last))."""
    out, start = [], 0
    for _length, left, right, is_last, values in _reference(samples, plan):
        out.append([start, values, left, right, is_last])
        start += plan.step
    if len(out) > 1 and len(out[-1][1]) < plan.min_samples:
        prev = out[-2]
        out[-2:] = [[prev[0], samples[prev[0] :], prev[2], 0, True]]
    return out


@settings(max_examples=300, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=120_000),
    chunk_s=st.sampled_from([1.0, 2.0, 3.3]),
    left_s=st.sampled_from([0.0, 0.2, 0.5]),
    right_s=st.sampled_from([0.0, 0.3, 0.5]),
    min_samples=st.sampled_from([1, 400, 5000, 12000]),
    cuts=st.lists(st.integers(min_value=0, max_value=120_000), max_size=12),
)
def test_splitter_fed_in_blocks_gives_the_chunks_of_the_whole_file(
    n, chunk_s, left_s, right_s, min_samples, cuts
):
    assume(left_s + right_s < chunk_s)
    p = chunking.plan(ChunkOptions(chunk_s, left_s, right_s), SR, SPF, min_samples=min_samples)
    samples = np.arange(n, dtype=np.float32)
    bounds = [0, *sorted(c for c in cuts if c < n), n]
    splitter = chunking.Splitter(5, p)
    got, held = [], 0
    for a, b in zip(bounds, bounds[1:], strict=False):
        for c in splitter.feed(samples[a:b]):
            # given out only once final: its end is already in, and so is enough of the next
            assert c.start + c.length < b and not c.is_last
            got.append(c)
        held = max(held, splitter.held)
    got += splitter.finish()
    assert splitter.num_samples == n and splitter.count == len(got)
    ref = _reference_merged(samples, p)
    assert [(c.start, c.stride_left, c.stride_right, c.is_last) for c in got] == [
        (s, left, right, last) for s, _, left, right, last in ref
    ]
    for c, (_, values, *_rest) in zip(got, ref, strict=True):
        np.testing.assert_array_equal(c.samples, values)
        assert c.samples.base is None  # a copy: holds no block of the stream alive
    assert [c.index for c in got] == list(range(len(got)))
    assert all(c.file_index == 5 for c in got)
    # what is held back is about one chunk and a step, plus the block just fed
    biggest_block = max(b - a for a, b in zip(bounds, bounds[1:], strict=False))
    assert held <= p.chunk_len + p.step + p.min_samples + biggest_block


def test_splitter_on_a_stream_of_tiny_blocks_holds_little():
    p = chunking.plan(ChunkOptions(1.0, 0.2, 0.2), SR, SPF)
    splitter = chunking.Splitter(0, p)
    rng = np.random.default_rng(0)
    samples = rng.standard_normal(16000 * 30).astype(np.float32)
    chunks = []
    for a in range(0, samples.size, 1152):  # an MP3 frame at a time
        chunks += splitter.feed(samples[a : a + 1152])
        assert splitter.held <= p.chunk_len + p.step + 1152
    chunks += splitter.finish()
    whole = chunking.split(0, samples, p)
    assert len(chunks) == len(whole) > 30
    for c, w in zip(chunks, whole, strict=True):
        assert (c.start, c.stride_left, c.stride_right, c.is_last) == (
            w.start,
            w.stride_left,
            w.stride_right,
            w.is_last,
        )
        np.testing.assert_array_equal(c.samples, w.samples)


def test_keep_and_join_give_stitch():
    p = chunking.plan(ChunkOptions(1.0, 0.2, 0.2), SR, SPF)
    rng = np.random.default_rng(1)
    samples = rng.standard_normal(16000 * 3 + 777).astype(np.float32)
    chunks = chunking.split(0, samples, p)
    outs = [rng.standard_normal((c.length // SPF, 7)).astype(np.float32) for c in chunks]
    whole = chunking.stitch(chunks, outs, p, samples.size)
    kept = [chunking.keep(c, o, p) for c, o in zip(chunks, outs, strict=True)]
    joined = chunking.join(kept[::-1], p, samples.size, 7)
    for field in ("log_probs", "frame_starts", "frame_energy"):
        np.testing.assert_array_equal(getattr(joined, field), getattr(whole, field))
    assert joined.log_probs.shape[0] == sum(k.log_probs.shape[0] for k in kept) > 100
    empty = chunking.join([], p, 0, 7)
    assert empty.log_probs.shape == (0, 7)


@pytest.mark.parametrize("min_samples", [1, 400, 9000])
def test_splitter_at_the_lengths_where_a_chunk_becomes_the_last(min_samples):
    """Lengths ending exactly at a chunk's end, a step further, and one sample either side:
    where "is this chunk the last?" and "is the next one a tail to merge?" change."""
    p = chunking.plan(ChunkOptions(2.0, 0.4, 0.4), SR, SPF, min_samples=min_samples)
    lengths = sorted(
        {
            p.chunk_len + k * p.step + d + e
            for k in range(3)
            for d in (-1, 0, 1)
            for e in (0, min_samples)
        }
    )
    for n in lengths:
        samples = np.arange(n, dtype=np.float32)
        ref = _reference_merged(samples, p)
        for block in (n, 1000, p.step, p.chunk_len + 1):
            splitter = chunking.Splitter(0, p)
            got = []
            for a in range(0, n, block):
                got += splitter.feed(samples[a : a + block])
            got += splitter.finish()
            assert [(c.start, c.length, c.stride_right, c.is_last) for c in got] == [
                (s0, len(v), right, last) for s0, v, _, right, last in ref
            ], (n, block)


def test_splitter_refuses_blocks_that_are_not_1d():
    p = chunking.plan(ChunkOptions(1.0, 0.2, 0.2), SR, SPF)
    with pytest.raises(ValueError, match="1-D"):
        chunking.Splitter(0, p).feed(np.zeros((100, 2), np.float32))

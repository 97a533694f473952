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
    for item in chunk_iter(samples, _IdentityFE(), plan.chunk_len, plan.stride_left,
                           plan.stride_right):
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
        (token_n, left, right), = rescale_stride([(c.length, c.stride_left, c.stride_right)],
                                                 1 / SPF)
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
        (0, 16000, 0, False), (16000, 16300, 0, True)]
    np.testing.assert_array_equal(np.concatenate([c.samples for c in chunks]), samples)
    long_enough = chunking.split(0, np.zeros(32000 + 560, np.float32), p)
    assert [c.length for c in long_enough] == [16000, 16000, 560]
    alone = chunking.split(0, samples[:300], p)  # a file shorter than a frame stays whole
    assert [c.length for c in alone] == [300]

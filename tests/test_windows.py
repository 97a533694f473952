"""``Engine.from_options`` and the engine's steps (``inference/windows.py``) with batches
left in flight as on CUDA, on the torch backend with a tiny random model: the CPU computes
a batch when it is started, so the backend is wrapped to compute it only when its result
is waited for, and the runner then reports it as still running (``Started.done``)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from conftest import noise_audio

from w2v2cli import chunking
from w2v2cli.errors import AudioError, W2V2Error
from w2v2cli.inference import Engine
from w2v2cli.inference.runner import Started
from w2v2cli.inference.vad import SileroVad
from w2v2cli.options import ChunkOptions, ModelOptions, RunOptions, VadOptions


class _Later:
    """A batch the backend has started and not computed yet (as on CUDA): computed when
    its result is waited for."""

    def __init__(self, compute):
        self._compute = compute

    def result(self) -> np.ndarray:
        return self._compute()


def _leave_in_flight(engine: Engine) -> tuple[list[int], list[int]]:
    """Make ``engine``'s batches stay running until waited for. Returns, updated as the
    engine runs, how many started batches had not been waited for at each start, and how
    many have not been now (``[n]``)."""
    backend, runner = engine.runner.backend, engine.runner
    start, submit = backend.start, runner.submit
    backend.start = lambda batch, lengths: _Later(lambda: start(batch, lengths).result())
    running, peaks = [0], []

    def counting_submit(chunks, *rest):
        started = submit(chunks, *rest)
        running[0] += 1
        peaks.append(running[0])

        def result():
            running[0] -= 1
            return started()

        return Started(result, started.done)

    runner.submit = counting_submit
    return peaks, running


def _options(model, batch_size: int) -> RunOptions:
    return RunOptions(
        model=ModelOptions(model=str(model), backend="torch"),
        chunking=ChunkOptions(2.0, 0.4, 0.4),
        batch_size=batch_size,
        max_padding=1.0,  # padded batches of several lengths even on the CPU
    )


@pytest.mark.parametrize("batch_size", [1, 4])
def test_batches_left_in_flight_give_what_batches_computed_at_once_give(group_model, batch_size):
    """With one batch in flight while the next is started (never more), the files, their
    order, their emissions, their failures and the progress reported are those that
    batches computed at once give, one chunk at a time and in padded batches of 4."""
    clips = [noise_audio(s, seed=i) for i, s in enumerate([3.1, 0.7, 9.3, 1.2, 5.0])]

    def stream():
        for a in range(0, clips[2].size, 3000):
            yield clips[2][a : a + 3000]

    def bad():
        raise AudioError("bad.wav", "not audio (test)")

    def loaders():
        return [
            lambda: clips[0],
            lambda: clips[1],
            stream,
            bad,
            lambda: clips[3],
            lambda: np.zeros(0, np.float32),
            lambda: clips[4],
        ]

    engine = Engine.from_options(_options(group_model, batch_size))
    try:
        progress_at_once: list[float] = []
        at_once = list(engine.emissions(loaders(), on_audio=progress_at_once.append))
        peaks, _ = _leave_in_flight(engine)
        progress: list[float] = []
        got = list(engine.emissions(loaders(), on_audio=progress.append))
    finally:
        engine.close()
    assert [i for i, _ in got] == [i for i, _ in at_once] == list(range(7))
    for (_, a), (_, b) in zip(at_once, got, strict=True):
        if isinstance(a, W2V2Error):
            assert type(b) is type(a) and str(b) == str(a)
            continue
        assert not isinstance(b, Exception), b
        for name in ("log_probs", "frame_starts", "frame_energy"):
            np.testing.assert_array_equal(getattr(b, name), getattr(a, name))
        assert b.duration == a.duration
    assert isinstance(got[3][1], AudioError) and "no audio" in str(got[5][1])
    assert progress == progress_at_once  # the same chunks, completed in the same order
    assert len(peaks) >= 3 and max(peaks) == 2  # one in flight while the next starts


def test_closing_with_a_batch_in_flight_stops_the_reading_thread(group_model):
    """A consumer that stops while a batch is in flight and the reader is in the middle of
    an endless stream leaves no reading thread behind."""
    engine = Engine.from_options(_options(group_model, 1))
    _, running = _leave_in_flight(engine)
    ahead = threading.Event()  # the reader has queued chunks of the endless stream
    submit = engine.runner.submit

    def waiting_submit(chunks, *rest):
        assert ahead.wait(30), "the reader never read ahead"
        return submit(chunks, *rest)

    engine.runner.submit = waiting_submit

    def endless():
        rng = np.random.default_rng(7)
        for n in range(1_000_000):
            if n == 40:  # 10 s read: chunks of this stream wait in the reader's queue
                ahead.set()
            yield rng.uniform(-0.5, 0.5, 4000).astype(np.float32)

    try:
        gen = engine.emissions([lambda: noise_audio(1.0, 1), endless])
        assert next(gen)[0] == 0
        assert running[0] == 1  # the stream's first batch is in flight
        closer = threading.Thread(target=gen.close, daemon=True)  # a hang fails, not blocks
        closer.start()
        closer.join(timeout=10)
        assert not closer.is_alive(), "closing the emissions did not stop the reading thread"
        assert not [th for th in threading.enumerate() if th.name.startswith("w2v2-audio")]
    finally:
        engine.close()


def test_from_options_builds_the_engine_the_options_ask_for(group_model):
    """Model, chunking, batch size, padding limit and VAD come from the ``RunOptions``;
    ``exact`` turns exact batching off (benchmarks)."""
    options = RunOptions(
        model=ModelOptions(model=str(group_model), backend="torch"),
        chunking=ChunkOptions(3.0, 0.6, 0.4),
        batch_size=3,
        max_padding=0.5,
        vad=VadOptions(),
    )
    engine = Engine.from_options(options)
    try:
        assert engine.model_options == options.model and engine.backend == "torch"
        assert (engine.runner.batch_size, engine.runner.max_padding) == (3, 0.5)
        spf, least = engine.loaded.samples_per_frame, engine.runner.min_samples
        assert engine.plan == chunking.plan(options.chunking, 16000, spf, least)
        assert isinstance(engine.vad, SileroVad) and engine.runner.patched
    finally:
        engine.close()
    plain = Engine.from_options(RunOptions(model=options.model), exact=False)
    try:
        assert plain.vad is None and not plain.runner.patched
        assert (plain.runner.batch_size, plain.runner.max_padding) == (1, 0.0)
        assert plain.plan == chunking.plan(ChunkOptions(), 16000, spf, least)
    finally:
        plain.close()

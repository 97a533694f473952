"""The engine against the transformers ASR pipeline, and batch-size independence, on the
torch backend with random models (the OpenVINO backend's are in test_openvino.py, on a
trained model: random weights make near ties that another kernel's rounding can flip)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from conftest import noise_audio

from w2v2cli import Transcriber
from w2v2cli.options import ChunkOptions, ModelOptions, RunOptions

SPECIALS = re.compile(r"<s>|</s>|<unk>|<pad>")


def _pipeline_text(model_dir, audio, chunk, stride):
    from transformers import pipeline

    asr = pipeline("automatic-speech-recognition", model=str(model_dir), device="cpu")
    out = asr(audio.copy(), chunk_length_s=chunk, stride_length_s=stride, batch_size=1)
    # The pipeline keeps special tokens for plain CTC (skip_special_tokens=False) and may
    # leave double spaces; we never print special tokens and join words with one space.
    return " ".join(SPECIALS.sub("", out["text"]).split())


@pytest.mark.slow
@pytest.mark.parametrize("family", ["group_model", "layer_model"])
@pytest.mark.parametrize(("chunk", "stride"), [(2.0, (0.4, 0.4)), (3.0, (1.0, 0.5))])
def test_same_text_as_transformers_pipeline(family, chunk, stride, request):
    model_dir = request.getfixturevalue(family)
    audio = noise_audio(9.7, seed=4)  # several chunks long, last one short
    options = RunOptions(
        model=ModelOptions(model=str(model_dir), backend="torch"),
        chunking=ChunkOptions(chunk, *stride),
        batch_size=1,
    )
    ours = Transcriber(options).transcribe_array(audio)
    ref = _pipeline_text(model_dir, audio, chunk, stride)
    assert len(ref.split()) > 5, "the tiny model should emit words for this test to bite"
    assert ours.text == ref


@pytest.mark.parametrize("family", ["group_model", "layer_model"])
def test_text_does_not_depend_on_batch_size(family, request):
    model_dir = request.getfixturevalue(family)
    clips = [noise_audio(s, seed=i) for i, s in enumerate([0.6, 7.5, 2.2, 13.0, 1.1, 4.4])]
    texts = {}
    for bs in (1, 3, 8):
        options = RunOptions(
            model=ModelOptions(model=str(model_dir), backend="torch"),
            chunking=ChunkOptions(5.0, 1.0, 1.0),
            batch_size=bs,
            max_padding=1.0,
        )  # padded batches even on CPU
        t = Transcriber(options)
        texts[bs] = [
            em.log_probs.argmax(-1) for _, em in t.emissions([(lambda c=c: c) for c in clips])
        ]
    for a, b in zip(texts[1], texts[8], strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(texts[1], texts[3], strict=True):
        np.testing.assert_array_equal(a, b)


def test_emissions_in_input_order_with_failures(group_model):
    from w2v2cli.errors import AudioError

    t = Transcriber(RunOptions(model=ModelOptions(model=str(group_model)), batch_size=4))

    def bad():
        raise AudioError("x.wav", "not audio")

    loaders = [
        lambda: noise_audio(3.0, 1),
        bad,
        lambda: noise_audio(0.5, 2),
        lambda: np.zeros(0, np.float32),
    ]
    got = list(t.emissions(loaders))
    assert [i for i, _ in got] == [0, 1, 2, 3]
    assert isinstance(got[1][1], AudioError)
    assert got[0][1].duration == pytest.approx(3.0)
    assert got[2][1].duration == pytest.approx(0.5)
    assert "no audio" in str(got[3][1])


def test_device_defaults_for_batching(group_model):
    """CPU: one chunk at a time, no padding; an explicit batch size is honoured."""
    t = Transcriber(RunOptions(model=ModelOptions(model=str(group_model), device="cpu")))
    assert (t.runner.batch_size, t.runner.max_padding) == (1, 0.0)
    t = Transcriber(
        RunOptions(
            model=ModelOptions(model=str(group_model), device="cpu"), batch_size=8, max_padding=0.25
        )
    )
    assert (t.runner.batch_size, t.runner.max_padding) == (8, 0.25)


def _same_emissions(a, b):
    for name in ("log_probs", "frame_starts", "frame_energy"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.duration == b.duration


@pytest.mark.parametrize("batch_size", [1, 4])
def test_a_streamed_file_gives_the_emissions_of_the_whole_array(group_model, tmp_path, batch_size):
    """Files are decoded block by block and chunked as they arrive; the result is the one
    the whole decoded array gives, whatever the blocks (44.1 kHz stereo: resampled too)."""
    import soundfile as sf

    from w2v2cli.audio import load_audio
    from w2v2cli.inference import file_loader

    stereo = np.stack([noise_audio(37.3, 7, sr=44100), noise_audio(37.3, 8, sr=44100)], 1)
    path = tmp_path / "long.wav"
    sf.write(path, stereo, 44100, subtype="FLOAT")
    options = RunOptions(
        model=ModelOptions(model=str(group_model), backend="torch"),
        chunking=ChunkOptions(5.0, 1.0, 1.0),
        batch_size=batch_size,
    )
    t = Transcriber(options)
    whole = load_audio(path, 16000)

    def tiny_blocks():
        for a in range(0, whole.size, 1152):
            yield whole[a : a + 1152]

    loaders = [file_loader(path, 16000), lambda: whole, tiny_blocks]
    (_, streamed), (_, from_array), (_, from_tiny) = list(t.emissions(loaders))
    assert streamed.log_probs.shape[0] > 1500  # 37 s of 20 ms frames
    _same_emissions(streamed, from_array)
    _same_emissions(from_tiny, from_array)


def test_a_stream_is_read_only_a_bounded_way_ahead_of_the_model(group_model):
    """Memory does not grow with a file's length: the reading thread stays within the
    window and its queue of the chunks the model has run, on a 10-minute stream."""
    options = RunOptions(
        model=ModelOptions(model=str(group_model), backend="torch"),
        chunking=ChunkOptions(2.0, 0.4, 0.4),
    )
    t = Transcriber(options)
    plan = t.engine.plan
    block = 4000
    read = [0]

    def stream():
        rng = np.random.default_rng(3)
        for _ in range(10 * 60 * 16000 // block):
            read[0] += block
            yield rng.uniform(-0.5, 0.5, block).astype(np.float32)

    ran, ahead = [0], []
    submit = t.runner.submit

    def counting_submit(chunks, *rest):
        ahead.append(read[0] - (ran[0] * plan.step))
        ran[0] += len(chunks)
        return submit(chunks, *rest)

    t.runner.submit = counting_submit
    ((_, em),) = list(t.emissions([stream]))
    assert em.duration == pytest.approx(600.0)
    assert ran[0] > 350
    window, queued = 1, 8  # Engine.emissions at batch size 1
    assert max(ahead) <= (window + queued + 3) * plan.chunk_len
    assert max(ahead) >= queued * plan.step  # it does read ahead of the model


@pytest.mark.parametrize("batch_size", [1, 2])
def test_each_file_comes_out_as_soon_as_its_chunks_have_run(group_model, batch_size):
    """A stream's first result does not wait for later files: at batch size 1 (the CPU
    default) chunks run in input order, so when file k comes out the model has run no
    chunk of a later file; at batch size 2 chunks are sorted within a window of 32, so a
    short first file waits for longer ones that come after it."""
    options = RunOptions(
        model=ModelOptions(model=str(group_model), backend="torch"),
        chunking=ChunkOptions(2.0, 0.4, 0.4),
        batch_size=batch_size,
    )
    t = Transcriber(options)
    ran: list[int] = []
    submit = t.runner.submit

    def recording_submit(chunks, *rest):
        ran.extend(c.file_index for c in chunks)
        return submit(chunks, *rest)

    t.runner.submit = recording_submit
    seconds = [1.0, 6.0, 1.5, 9.0, 3.0]
    later_run = []
    for idx, em in t.emissions([lambda s=s, i=i: noise_audio(s, i) for i, s in enumerate(seconds)]):
        assert em.duration == pytest.approx(seconds[idx])
        later_run.append(sum(f > idx for f in ran))
    if batch_size == 1:
        assert later_run == [0] * len(seconds)
        assert ran == sorted(ran)
    else:
        assert later_run[0] > 0


def test_a_file_failing_midway_fails_alone(group_model):
    """A file whose decoding fails after some of its chunks have run yields its error;
    the files around it are untouched."""
    from w2v2cli.errors import AudioError

    options = RunOptions(
        model=ModelOptions(model=str(group_model), backend="torch"),
        chunking=ChunkOptions(2.0, 0.4, 0.4),
    )
    t = Transcriber(options)
    before, after = noise_audio(5.0, 1), noise_audio(3.0, 2)

    def breaks():
        good = noise_audio(80.0, 3)
        for a in range(0, good.size, 16000):
            yield good[a : a + 16000]
        raise AudioError("midway.flac", "corrupt or truncated audio data (test)")

    got = list(t.emissions([lambda: before, breaks, lambda: after]))
    assert [i for i, _ in got] == [0, 1, 2]
    assert isinstance(got[1][1], AudioError) and "corrupt" in str(got[1][1])
    ((_, alone_before), (_, alone_after)) = list(t.emissions([lambda: before, lambda: after]))
    _same_emissions(got[0][1], alone_before)
    _same_emissions(got[2][1], alone_after)


def test_progress_counts_every_second_of_every_file(group_model):
    options = RunOptions(
        model=ModelOptions(model=str(group_model), backend="torch"),
        chunking=ChunkOptions(2.0, 0.4, 0.4),
    )
    t = Transcriber(options)
    clips = [noise_audio(s, seed=i) for i, s in enumerate([0.7, 9.3, 3.0])]

    def stream():
        for a in range(0, clips[1].size, 5000):
            yield clips[1][a : a + 5000]

    seen = []
    loaders = [lambda: clips[0], stream, lambda: clips[2]]
    got = list(t.emissions(loaders, on_audio=seen.append))
    assert len(got) == 3 and min(seen) >= 0
    assert sum(seen) == pytest.approx(0.7 + 9.3 + 3.0, abs=1e-6)
    assert len(seen) >= 5 + 2  # per chunk, not per file


@pytest.mark.parametrize("when", ["start", "result"])
def test_a_file_the_model_fails_on_is_not_read_or_run_any_further(group_model, when):
    """Once the model has failed on a file, none of its later chunks is run and its
    reading stops, on a long stream; the next file is untouched. The model may fail when a
    batch is started or, on CUDA, only when its result is waited for, by which time the
    next batch is in flight: at most that one more batch of the file runs."""
    options = RunOptions(
        model=ModelOptions(model=str(group_model), backend="torch"),
        chunking=ChunkOptions(2.0, 0.4, 0.4),
    )
    t = Transcriber(options)
    blocks = [0]

    def long_stream():
        rng = np.random.default_rng(5)
        for _ in range(600):  # 10 minutes
            blocks[0] += 1
            yield rng.uniform(-0.5, 0.5, 16000).astype(np.float32)

    from w2v2cli.inference.runner import Started

    submit, batches = t.runner.submit, []

    def failing_submit(chunks, *rest):
        batches.append([c.file_index for c in chunks])
        if any(c.file_index == 0 for c in chunks):
            if when == "start":
                raise RuntimeError("out of memory (test)")
            result = submit(chunks, *rest)

            def failing_result():
                result()
                raise RuntimeError("out of memory (test)")

            return Started(failing_result, False)  # as on CUDA: still running
        return Started(submit(chunks, *rest), False)

    t.runner.submit = failing_submit
    after = noise_audio(3.0, 6)
    got = list(t.emissions([long_stream, lambda: after]))
    assert [i for i, _ in got] == [0, 1]
    assert "out of memory (test)" in str(got[0][1])
    assert sum(0 in b for b in batches) == (1 if when == "start" else 2)
    assert blocks[0] < 200  # stopped long before the end of the 600 blocks
    t.runner.submit = submit
    ((_, alone),) = list(t.emissions([lambda: after]))
    _same_emissions(got[1][1], alone)


def test_closing_early_stops_the_reading_thread(group_model):
    """A consumer that stops (Ctrl-C, `| head`) leaves no reading thread behind, even while
    the reader is in the middle of an endless stream."""
    import threading
    import time

    options = RunOptions(
        model=ModelOptions(model=str(group_model), backend="torch"),
        chunking=ChunkOptions(2.0, 0.4, 0.4),
    )
    t = Transcriber(options)

    def endless():
        rng = np.random.default_rng(7)
        while True:
            yield rng.uniform(-0.5, 0.5, 4000).astype(np.float32)

    gen = t.emissions([lambda: noise_audio(1.0, 1), endless])
    first = next(gen)
    assert first[0] == 0
    closer = threading.Thread(target=gen.close, daemon=True)  # a hang fails, not blocks
    started = time.monotonic()
    closer.start()
    closer.join(timeout=10)
    assert not closer.is_alive(), "closing the emissions did not stop the reading thread"
    assert time.monotonic() - started < 5
    assert not [th for th in threading.enumerate() if th.name.startswith("w2v2-audio")]


def test_loaders_must_give_mono_samples(group_model):
    """A 2-D array (channels not mixed down) fails that file in one line; a plain list of
    samples is one array."""
    t = Transcriber(RunOptions(model=ModelOptions(model=str(group_model), backend="torch")))
    mono = noise_audio(2.0, 3)
    got = list(
        t.emissions([lambda: np.stack([mono, mono], 1), lambda: mono.tolist(), lambda: mono])
    )
    assert "1-D" in str(got[0][1]) and "(32000, 2)" in str(got[0][1])
    _same_emissions(got[1][1], got[2][1])


def _in_flight(t):
    """Make ``t``'s batches look still running when started, as on CUDA, so that the engine
    keeps one in flight (on the CPU a batch is computed by the time it is started)."""
    from w2v2cli.inference.runner import Started

    submit = t.runner.submit
    t.runner.submit = lambda chunks, *rest: Started(submit(chunks, *rest), False)


def test_failing_loaders_still_give_the_files_before_them(group_model):
    """When the iterable of loaders itself raises, every file before it, the one whose
    batch was still in flight included, is yielded first; then the error propagates."""
    t = Transcriber(
        RunOptions(
            model=ModelOptions(model=str(group_model), backend="torch"),
            chunking=ChunkOptions(2.0, 0.4, 0.4),
        )
    )
    _in_flight(t)
    clips = [noise_audio(1.5, seed=i) for i in range(5)]

    def loaders():
        for c in clips:
            yield lambda c=c: c
        raise RuntimeError("the list of files broke (test)")

    got = []
    with pytest.raises(RuntimeError, match="list of files broke"):
        for idx, em in t.emissions(loaders()):
            got.append(idx)
            assert not isinstance(em, Exception)
    assert got == [0, 1, 2, 3, 4]


def test_a_batch_in_flight_is_finished_before_the_engine_waits_for_audio(group_model):
    """A file whose last chunk is in the batch in flight comes out as soon as the reader
    has nothing more to give, not a window of audio later: here the next file's audio
    only arrives once the first file's result has been taken."""
    import threading

    from w2v2cli import chunking

    t = Transcriber(
        RunOptions(
            model=ModelOptions(model=str(group_model), backend="torch"),
            chunking=ChunkOptions(2.0, 0.4, 0.4),
        )
    )
    _in_flight(t)
    plan, n = t.engine.plan, 16000
    while len(chunking.split(0, np.zeros(n, np.float32), plan)) != 32:  # one whole window
        n += 1600
    first = noise_audio(n / 16000, seed=1)
    taken = threading.Event()

    def second():
        assert taken.wait(30), "the first file's result never came while the reader waited"
        return noise_audio(2.0, seed=2)

    got = []
    for idx, em in t.emissions([lambda: first, second]):
        got.append(idx)
        taken.set()
        assert not isinstance(em, Exception), em
    assert got == [0, 1]

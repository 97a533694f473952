"""Audio reading processes (``inference/readers.py``): files decoded ahead of the model,
several at once, in processes.

Real processes and real files throughout: runs with and without readers compared byte for
byte over every decoder path (MP3, Ogg Vorbis, FLAC, WAV at other rates) with files long
enough to stream in many blocks, a bad file among good ones, a reader killed mid-file,
a run stopped early and the run after it, files given up on by the model, warnings from a
reader, the work computed ahead of the model, and the default's choice.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner
from conftest import noise_audio

from w2v2cli import chunking
from w2v2cli.audio import load_audio, stream_audio
from w2v2cli.cli import main
from w2v2cli.errors import W2V2Error
from w2v2cli.inference.readers import (
    MAX_DEFAULT_READERS,
    QUEUE_BLOCKS,
    SLOT_SAMPLES,
    AudioReaders,
    FileLoader,
    default_readers,
)
from w2v2cli.records import Chunk

#: (name, seconds, native rate): every decoder and the resampler; c1 spans several slots.
FILES = [
    ("c0.mp3", 7.0, 44100),
    ("c1.flac", 40.0, 48000),
    ("c2.ogg", 3.0, 22050),
    ("c3.wav", 0.6, 8000),
    ("c4.wav", 12.0, 16000),
    ("c5.mp3", 2.0, 32000),
]


def invoke(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args])


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _mp3(path: Path, samples: np.ndarray, rate: int) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libmp3lame", rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(samples[None, :], format="flt", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("clips")
    for i, (name, secs, rate) in enumerate(FILES):
        x = noise_audio(secs, 40 + i, sr=rate)
        if name.endswith(".mp3"):
            _mp3(folder / name, x, rate)
        else:
            sf.write(folder / name, x, rate)
    return folder


def test_default_readers_follow_the_usable_cores():
    """A third of the cores from four on (at most 6); on CUDA at least one; none below
    four cores on the CPU."""
    assert [default_readers(False, cores=c) for c in (1, 2, 3)] == [0, 0, 0]
    assert default_readers(False, cores=4) == 1
    assert default_readers(False, cores=12) == 4
    assert default_readers(False, cores=96) == MAX_DEFAULT_READERS
    assert default_readers(True, cores=1) == 1
    assert default_readers(True, cores=2) == 1
    assert default_readers(True, cores=16) == 5


def test_readers_give_load_audios_samples_in_order(clips):
    """Each file's blocks, joined, are ``load_audio``'s samples, for files given out
    several at a time to two readers, a file longer than a reader's ring among them."""
    readers = AudioReaders(2)
    stop = threading.Event()
    try:
        assert readers.claim() and not readers.claim()  # one run at a time
        paths = sorted(clips.iterdir())
        given = [(readers.dispatch(FileLoader(p, 16000)), p) for p in paths]
        assert [reader for (reader, _), _ in given] == [0, 1, 0, 1, 0, 1]
        for (reader, ticket), path in given:
            blocks = list(readers.blocks(reader, ticket, FileLoader(path, 16000), stop))
            assert all(b.dtype == np.float32 and b.size <= SLOT_SAMPLES for b in blocks)
            np.testing.assert_array_equal(np.concatenate(blocks), load_audio(path, 16000))
        readers.release()
        assert readers.claim()  # kept for the next run
        assert len(readers.pids()) == 2
    finally:
        readers.close()


def test_readers_write_what_the_reading_thread_writes(group_model, clips, tmp_path):
    """Every format, byte for byte, with 0 (the thread), 1 and 3 readers, at batch sizes
    1 and 4 (chunks of several files in one batch)."""
    trees = {}
    for readers in ("0", "1", "3"):
        for batch in ("1", "4"):
            out = tmp_path / f"out-{readers}-{batch}"
            r = invoke(
                "transcribe", clips, "-m", group_model, "-o", out, "-f", "all", "-q",
                "--read-workers", readers, "-b", batch, "--decode-workers", "0",
            )  # fmt: skip
            assert r.exit_code == 0, r.output
            trees[readers, batch] = tree(out)
    reference = trees["0", "1"]
    assert len(reference) == 5 * len(FILES)
    assert all(t == reference for t in trees.values())


def test_a_bad_file_fails_alone_with_the_threads_reason(group_model, clips, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for name in ("c0.mp3", "c2.ogg", "c4.wav"):
        (folder / name).write_bytes((clips / name).read_bytes())
    (folder / "c1.flac").write_bytes(b"fLaC" + os.urandom(3000))  # damaged
    (folder / "c3.wav").write_bytes(b"not audio at all\n" * 20)
    errors = {}
    for readers in ("0", "2"):
        out = tmp_path / f"out-{readers}"
        r = invoke(
            "transcribe", folder, "-m", group_model, "-o", out, "-f", "txt", "-q",
            "--read-workers", readers,
        )  # fmt: skip
        assert r.exit_code == 1, r.output
        errors[readers] = sorted(ln for ln in r.stderr.splitlines() if ln.startswith("error:"))
        assert sorted(p.name for p in out.iterdir()) == ["c0.txt", "c2.txt", "c4.txt"]
    assert len(errors["0"]) == 2
    assert "c1.flac" in errors["0"][0] and "c3.wav" in errors["0"][1]
    assert errors["2"] == errors["0"]


def test_a_reader_killed_fails_its_file_and_the_next_are_read_here(clips, tmp_path):
    """SIGKILL (the out-of-memory killer) on a reader in the middle of a file: that file
    fails with one line; the files given to that reader after it are read in the thread."""
    readers = AudioReaders(1)
    stop = threading.Event()
    long = tmp_path / "long.flac"
    sf.write(long, noise_audio(200.0, 8, sr=48000), 48000)
    assert len(list(stream_audio(long, 16000))) > 2 * QUEUE_BLOCKS  # the ring fills up
    try:
        readers.claim()
        first = readers.dispatch(FileLoader(long, 16000))
        after = clips / "c2.ogg"
        second = readers.dispatch(FileLoader(after, 16000))
        blocks = readers.blocks(*first, FileLoader(long, 16000), stop)
        next(blocks)
        (pid,) = readers.pids()
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(W2V2Error, match="audio reading process died"):
            for _ in blocks:
                pass
        got = list(readers.blocks(*second, FileLoader(after, 16000), stop))
        np.testing.assert_array_equal(np.concatenate(got), load_audio(after, 16000))
        third = readers.dispatch(FileLoader(after, 16000))  # the dead reader takes no more
        got = list(readers.blocks(*third, FileLoader(after, 16000), stop))
        np.testing.assert_array_equal(np.concatenate(got), load_audio(after, 16000))
        readers.release()  # the next run has a live reader again
        assert readers.claim()
        fourth = readers.dispatch(FileLoader(after, 16000))
        assert readers.pids() != [pid]
        got = list(readers.blocks(*fourth, FileLoader(after, 16000), stop))
        np.testing.assert_array_equal(np.concatenate(got), load_audio(after, 16000))
    finally:
        readers.close()


def test_a_reader_killed_in_a_run_fails_one_file(group_model, clips, tmp_path):
    """The same in a whole run: one file fails, the others are transcribed as usual."""
    from w2v2cli import Transcriber
    from w2v2cli.inference import file_loader
    from w2v2cli.options import ModelOptions, RunOptions

    options = RunOptions(model=ModelOptions(model=str(group_model)), read_workers=1)
    paths = [clips / n for n in ("c1.flac", "c0.mp3", "c2.ogg")]
    with Transcriber(options) as t:
        reference = [em for _, em in t.emissions([file_loader(p, 16000) for p in paths])]
        readers = t.engine.readers
        killed = []

        def kill_when_started() -> None:
            deadline = time.monotonic() + 60
            while not readers.pids() and time.monotonic() < deadline:
                time.sleep(0.005)
            os.kill(readers.pids()[0], signal.SIGKILL)
            killed.append(True)

        readers.close()  # fresh: the killer sees it start
        killer = threading.Thread(target=kill_when_started)
        killer.start()
        got = [em for _, em in t.emissions([file_loader(p, 16000) for p in paths])]
        killer.join()
    assert killed
    failed = [i for i, em in enumerate(got) if isinstance(em, W2V2Error)]
    assert failed == [0] and "audio reading process died" in str(got[0])
    for i, em in enumerate(got):
        if i not in failed:
            np.testing.assert_array_equal(em.log_probs, reference[i].log_probs)


def test_a_run_stopped_early_leaves_the_next_run_right(group_model, clips):
    """A consumer that stops after the first file (Ctrl-C, ``break``) leaves readers that
    were decoding further; the next run gets its own files' emissions, not theirs."""
    from w2v2cli import Transcriber
    from w2v2cli.inference import file_loader
    from w2v2cli.options import ModelOptions, RunOptions

    paths = sorted(clips.iterdir())
    loaders = [file_loader(p, 16000) for p in paths]
    options = RunOptions(model=ModelOptions(model=str(group_model)), read_workers=2)
    with Transcriber(options) as t:
        reference = [em for _, em in t.emissions(loaders)]
        for _ in t.emissions(loaders):
            break
        again = [em for _, em in t.emissions(list(reversed(loaders)))]
    for em, ref in zip(again, reversed(reference), strict=True):
        np.testing.assert_array_equal(em.log_probs, ref.log_probs)


def test_files_given_up_on_leave_the_others_right(group_model, clips):
    """A batch that fails fails its file; the rest of that file, still coming from its
    reader, is passed over, and the files after it get their own samples."""
    from w2v2cli import Transcriber
    from w2v2cli.inference import file_loader
    from w2v2cli.options import ModelOptions, RunOptions

    paths = sorted(clips.iterdir())
    loaders = [file_loader(p, 16000) for p in paths]
    options = RunOptions(model=ModelOptions(model=str(group_model)), read_workers=1)
    with Transcriber(options) as t:
        reference = [em for _, em in t.emissions(loaders)]
        submit = t.runner.submit

        def failing_submit(chunks, *rest):
            if any(c.file_index == 1 for c in chunks):  # c1.flac: 40 s, many blocks
                raise RuntimeError("out of memory (test)")
            return submit(chunks, *rest)

        t.runner.submit = failing_submit
        got = [em for _, em in t.emissions(loaders)]
    assert isinstance(got[1], W2V2Error) and "out of memory (test)" in str(got[1])
    for i, em in enumerate(got):
        if i != 1:
            np.testing.assert_array_equal(em.log_probs, reference[i].log_probs)


def test_in_memory_audio_and_files_mix_in_input_order(group_model, clips):
    """Loaders that are not files (arrays, the library's own) are read in the thread, in
    their place among the files the readers decode."""
    from w2v2cli import Transcriber
    from w2v2cli.inference import file_loader
    from w2v2cli.options import ModelOptions, RunOptions

    arrays = [noise_audio(s, 90 + i) for i, s in enumerate((1.5, 25.0))]
    paths = [clips / "c0.mp3", clips / "c2.ogg", clips / "c4.wav"]
    mixed = [
        file_loader(paths[0], 16000),
        lambda: arrays[0],
        file_loader(paths[1], 16000),
        lambda: iter(np.array_split(arrays[1], 7)),
        file_loader(paths[2], 16000),
    ]
    options = {
        n: RunOptions(model=ModelOptions(model=str(group_model)), read_workers=n) for n in (0, 2)
    }
    results = {}
    for n, opts in options.items():
        with Transcriber(opts) as t:
            results[n] = list(t.emissions(mixed))
    assert [i for i, _ in results[2]] == list(range(5))
    for (_, a), (_, b) in zip(results[0], results[2], strict=True):
        np.testing.assert_array_equal(a.log_probs, b.log_probs)
        np.testing.assert_array_equal(a.frame_energy, b.frame_energy)


def test_a_readers_warning_reaches_the_runs_log(group_model, clips, tmp_path, caplog):
    """A damaged file's warning (NaN samples replaced) is logged by the run, as the
    reading thread would, once per file."""
    bad = tmp_path / "nan.wav"
    x = noise_audio(2.0, 3)
    x[1000:1010] = np.nan
    sf.write(bad, x, 16000, subtype="FLOAT")
    caplog.set_level(logging.WARNING, logger="w2v2cli")
    out = tmp_path / "out"
    r = invoke(
        "transcribe", bad, "-m", group_model, "-o", out, "-f", "txt", "--read-workers", "1"
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    warnings = [rec.getMessage() for rec in caplog.records if rec.levelno == logging.WARNING]
    assert warnings == [f"{bad}: replaced NaN/infinite samples with silence"]


def test_the_choice_is_shown_with_verbose(group_model, clips, tmp_path, caplog):
    caplog.set_level(logging.DEBUG, logger="w2v2cli")
    out = tmp_path / "out"
    r = invoke("-v", "transcribe", clips, "-m", group_model, "-o", out, "-f", "txt", "-q")
    assert r.exit_code == 0, r.output
    cores = len(os.sched_getaffinity(0))
    expected = default_readers(False, cores=cores)
    assert f"audio reading processes: {expected} ({cores} usable cores, model on CPU" in (
        caplog.text
    )


def test_energy_computed_ahead_is_the_energy_computed_after():
    """``chunk_energy`` (ahead of the model) sliced by ``keep`` gives the values ``keep``
    computes itself, bit for bit, for chunks of every position and length, whatever the
    number of frames the model returns."""
    rng = np.random.default_rng(5)
    spf = 320
    plan = chunking.ChunkPlan(6400, 960, 960, spf, 16000, 400)
    for trial in range(300):
        n = int(rng.integers(100, 9000))
        samples = (rng.standard_normal(n) * rng.uniform(0.001, 1)).astype(np.float32)
        if trial % 7 == 0:
            samples[: n // 2] = 0.0  # digital silence
        left = 0 if trial % 3 == 0 else 960
        right = 0 if trial % 2 == 0 or n <= 2000 else 960
        chunk = Chunk(0, 1, 6400 * trial, samples, left, right, right == 0)
        for frames in {n // spf - 1, n // spf, -(-n // spf), -(-n // spf) + 1}:
            frames = max(frames, 0)
            out = rng.standard_normal((frames, 5)).astype(np.float32)
            direct = chunking.keep(chunk, out, plan)
            ahead = chunking.keep(chunk, out, plan, chunking.chunk_energy(chunk, spf))
            assert ahead.energy.dtype == direct.energy.dtype
            np.testing.assert_array_equal(ahead.energy, direct.energy)
            np.testing.assert_array_equal(ahead.times, direct.times)


def test_readers_that_cannot_start_leave_the_reading_to_the_thread(
    group_model, clips, monkeypatch, caplog
):
    """Where the system refuses the processes or their shared memory (too many open files,
    a full /dev/shm), one warning, and the run reads in its thread with the same result."""
    from w2v2cli import Transcriber
    from w2v2cli.inference import file_loader, readers
    from w2v2cli.options import ModelOptions, RunOptions

    paths = sorted(clips.iterdir())
    loaders = [file_loader(p, 16000) for p in paths]
    results = {}
    for n in (0, 2):
        options = RunOptions(model=ModelOptions(model=str(group_model)), read_workers=n)
        with Transcriber(options) as t:
            if n:

                def refused(self, context):
                    raise OSError(24, "Too many open files")

                monkeypatch.setattr(readers._Process, "__init__", refused)
                caplog.set_level(logging.WARNING, logger="w2v2cli")
            results[n] = [em for _, em in t.emissions(loaders)]
            if n:
                results["again"] = [em for _, em in t.emissions(loaders[:2])]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "cannot start audio reading processes ([Errno 24] Too many open files): "
        "reading in one thread"
    ]
    for a, b in zip(results[0], results[2], strict=True):
        np.testing.assert_array_equal(a.log_probs, b.log_probs)
    assert len(results["again"]) == 2

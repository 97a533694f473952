"""``--vad``: chunks cut at pauses (pure), Silero on speech whose positions are known, times
mapped back exactly, and the commands that take it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st
from speech import timed_speech

from w2v2cli.chunking import file_positions, plan, stitch
from w2v2cli.options import ChunkOptions, ModelOptions, RunOptions, VadOptions
from w2v2cli.segmentation import merge_spans, speech_chunks

SR = 16000
PLAN = plan(ChunkOptions(2.0, 0.25, 0.25), SR, 320)  # 2 s chunks, 0.25 s strides


def test_merge_spans_pads_clips_and_merges():
    assert merge_spans([(100, 200), (5000, 6000), (250, 400)], 5500, padding=50) == [
        (50, 450),
        (4950, 5500),
    ]
    assert merge_spans([], 100) == []
    assert merge_spans([(10, 10)], 100) == []


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 200_000), st.integers(320, 60_000)), max_size=12))
def test_speech_chunks_send_exactly_the_speech_and_map_it_back(raw):
    n = 260_000
    spans = merge_spans([(a, a + length) for a, length in raw], n)
    samples = np.arange(n, dtype=np.float32)  # each sample's value is its position
    chunks = speech_chunks(0, samples, spans, PLAN)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert all(c.length <= PLAN.chunk_len for c in chunks)
    kept: list[np.ndarray] = []
    for c in chunks:
        where = file_positions(c, np.arange(c.length))
        assert np.array_equal(c.samples, where.astype(np.float32))  # the map is exact
        kept.append(where[c.stride_left : c.length - c.stride_right])
    covered = np.concatenate(kept) if kept else np.zeros(0, np.int64)
    expected = (
        np.concatenate([np.arange(a, b) for a, b in spans]) if spans else np.zeros(0, np.int64)
    )
    assert np.array_equal(np.sort(covered), expected)  # every speech sample once, nothing else


def test_stitch_puts_a_boundary_frame_in_every_gap():
    samples = np.zeros(4 * SR, np.float32)
    samples[SR : 2 * SR] = 0.1
    spans = [(0, SR // 2), (SR, SR + SR // 2)]  # 0.5 s each, 0.5 s left out between
    (chunk,) = speech_chunks(0, samples, spans, PLAN)
    assert chunk.pieces == ((0, 0), (SR // 2, SR))
    frames = chunk.length // 320
    lp = np.log(np.full((frames, 5), 0.2, np.float32))
    em = stitch([chunk], [lp], PLAN, len(samples), boundary=4)
    assert em.num_frames == frames + 1
    gap = frames // 2
    assert em.frame_starts[gap] == pytest.approx(0.5)  # where the frame before ends
    assert em.frame_starts[gap + 1] == pytest.approx(1.0)
    assert em.log_probs[gap].argmax() == 4 and em.log_probs[gap, 4] == 0.0
    assert em.frame_energy[gap] <= -99 and em.frame_energy[gap + 1] == pytest.approx(-20, abs=0.1)
    none = stitch([chunk], [lp], PLAN, len(samples))
    assert none.num_frames == frames


# With Silero and the trained model ---------------------------------------------------------


def require_silero() -> None:
    """The vad extra must be there (install.sh installs it): a missing package fails the
    test with the command that installs it, rather than skipping what CI must check."""
    try:
        import silero_vad  # noqa: F401
    except ImportError:
        pytest.fail("silero-vad is not installed: pip install -e '.[vad]'")


PAUSED_TEXT = (
    "the quick brown fox jumps over the lazy dog please call stella and ask her "
    "to bring these things with her from the store"
)
PAUSES = (0.12, 0.2, 2.5, 0.08, 0.15, 3.5)  # phrases of three words, long pauses between


@pytest.fixture(scope="module")
def paused(tmp_path_factory):
    """Speech with known word times, about half of it silence (long pauses every 3 words)."""
    require_silero()
    return timed_speech(tmp_path_factory.mktemp("paused"), PAUSED_TEXT, PAUSES, "en-us")


def spoken_seconds(t) -> float:
    return sum(e - s for s, e in t.times)


def test_silero_finds_the_speech_and_leaves_out_the_long_pauses(paused):
    from w2v2cli.inference.vad import SileroVad

    audio, rate = sf.read(paused.path, dtype="float32")
    spans = SileroVad(VadOptions(), rate).speech_spans(audio)
    total = len(audio) / rate
    kept = sum(b - a for a, b in spans) / rate
    assert spoken_seconds(paused) / total < 0.6  # the audio is mostly pauses...
    assert kept < 0.75 * total  # ...which are left out
    for s, e in paused.times:  # every word is inside a stretch of speech
        assert any(a / rate <= s + 0.03 and e - 0.03 <= b / rate for a, b in spans), (s, e)
    for (_, e0), (s1, _) in zip(paused.times, paused.times[1:], strict=False):
        if s1 - e0 >= 2.0:  # a long pause is cut out (all but the padding)
            assert not any(a / rate < s1 - 0.5 and b / rate > e0 + 0.5 for a, b in spans)


def test_parallel_streams_find_what_one_sequential_pass_finds(paused):
    """Silero read as parallel streams (inference/vad.py) against its own one-window-at-a-time
    pass."""
    import torch
    from silero_vad import get_speech_timestamps

    from w2v2cli.inference.vad import SileroVad

    audio, rate = sf.read(paused.path, dtype="float32")
    vad = SileroVad(VadOptions(), rate)
    o = VadOptions()
    probs = vad.speech_probs(audio)
    streams_found = vad.speech_spans(audio)
    threads = torch.get_num_threads()
    try:
        one = get_speech_timestamps(
            torch.from_numpy(audio),
            vad._model,
            threshold=o.threshold,
            sampling_rate=rate,
            min_speech_duration_ms=100,
            min_silence_duration_ms=500,
            speech_pad_ms=200,
        )
        vad._model.reset_states()
        sequential = [
            vad._model(torch.from_numpy(audio[i : i + 512]), rate).item()
            for i in range(0, len(audio) - 511, 512)
        ]
    finally:
        torch.set_num_threads(threads)
    assert len(audio) // 512 > 3 * 256  # several streams
    assert np.abs(probs[: len(sequential)] - np.array(sequential)).mean() < 0.05
    assert len(streams_found) == len(one)
    for (a, b), ref in zip(streams_found, one, strict=True):
        assert abs(a - ref["start"]) <= 2 * 512 and abs(b - ref["end"]) <= 2 * 512


@pytest.fixture(scope="module")
def both(trained_model, paused):
    """The paused file transcribed without and with --vad (and the emissions of both)."""
    from w2v2cli import Transcriber
    from w2v2cli.inference import file_loader

    out = {}
    for vad in (None, VadOptions()):
        options = RunOptions(
            model=ModelOptions(str(trained_model), backend="torch"),
            vad=vad,
            chunking=ChunkOptions(8.0, 1.5, 1.5),
        )
        with Transcriber(options) as t:
            ((_, em),) = list(t.emissions([file_loader(paused.path, t.sampling_rate)]))
            out[vad is not None] = (em, t.decoder.decode(em))
    return out


def test_vad_sends_less_audio_and_the_words_and_times_hold(both, paused):
    from speech import matched_errors

    em_full, full = both[False]
    em_vad, vad = both[True]
    assert em_vad.duration == em_full.duration  # times are the file's
    assert em_vad.num_frames < 0.75 * em_full.num_frames  # non-speech never reached the model
    gaps = np.diff(em_vad.frame_starts)
    assert (gaps > 1.0).sum() >= 4  # the long pauses are gaps between frames
    import jiwer

    ref = PAUSED_TEXT.upper()  # the same words, or better (no word runs across a pause)
    assert jiwer.wer(ref, vad.text) <= jiwer.wer(ref, full.text) + 0.05
    starts, ends = matched_errors(vad.words, paused)
    full_starts, full_ends = matched_errors(full.words, paused)
    assert len(starts) >= 10
    # Times map back to the file exactly: as close to the known times as without --vad
    # (the few words whose first letter the small model misreads start late either way).
    for err, without in ((starts, full_starts), (ends, full_ends)):
        assert np.median(np.abs(err)) <= 0.040
        assert np.percentile(np.abs(err), 90) <= np.percentile(np.abs(without), 90) + 0.02


def test_no_word_spans_a_cut_pause(both, paused):
    _, vad = both[True]
    long_pauses = [
        (e0, s1)
        for (_, e0), (s1, _) in zip(paused.times, paused.times[1:], strict=False)
        if s1 - e0 >= 2.0
    ]
    for w in vad.words:
        assert not any(w.start < a + 0.3 and w.end > b - 0.3 for a, b in long_pauses), w


def test_forced_alignment_with_vad_meets_the_targets(trained_model, paused):
    from w2v2cli import Aligner

    options = RunOptions(model=ModelOptions(str(trained_model), backend="torch"), vad=VadOptions())
    with Aligner(options) as a:
        result = a.align_file(paused.path, PAUSED_TEXT)
    starts = np.abs([w.start - s for w, (s, _) in zip(result.words, paused.times, strict=True)])
    ends = np.abs([w.end - e for w, (_, e) in zip(result.words, paused.times, strict=True)])
    for err in (starts, ends):
        assert np.median(err) <= 0.040 and np.percentile(err, 90) <= 0.100


def invoke(*args):
    from click.testing import CliRunner

    from w2v2cli.cli import main

    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_cli_vad_same_text_at_any_batch_size_and_subtitles_break_at_pauses(
    trained_model, paused, speech, tmp_path
):
    silent = tmp_path / "silence.wav"
    rng = np.random.default_rng(1)
    sf.write(silent, (0.001 * rng.standard_normal(3 * SR)).astype(np.float32), SR)
    inputs = [paused.path, speech.paths[0], silent]
    texts = {}
    for batch in ("1", "8"):
        out = tmp_path / f"b{batch}"
        r = invoke(
            "transcribe",
            *inputs,
            "-m",
            trained_model,
            "--backend",
            "torch",
            "--vad",
            "-b",
            batch,
            "--max-padding",
            "1",
            "-o",
            out,
            "-f",
            "json",
            "-f",
            "srt",
            "-q",
        )
        assert r.exit_code == 0, r.stderr
        texts[batch] = {p.name: json.loads(p.read_text())["text"] for p in out.rglob("*.json")}
    assert texts["1"] == texts["8"] and len(texts["1"]) == 3
    assert texts["1"]["silence.json"] == ""  # no speech: an empty transcript, not a failure
    # Audio decoded in reader processes: the VAD sees the same samples, every byte the same.
    readers = tmp_path / "readers"
    r = invoke(
        "transcribe", *inputs, "-m", trained_model, "--backend", "torch", "--vad",
        "--read-workers", "2", "-o", readers, "-f", "json", "-f", "srt", "-q",
    )  # fmt: skip
    assert r.exit_code == 0, r.stderr
    one = {p.relative_to(tmp_path / "b1"): p.read_bytes() for p in (tmp_path / "b1").rglob("*.*")}
    two = {p.relative_to(readers): p.read_bytes() for p in readers.rglob("*.*")}
    assert two == one and len(one) == 6
    (srt_path,) = (tmp_path / "b1").rglob(f"{paused.path.stem}.srt")
    srt = srt_path.read_text()
    assert srt.count(" --> ") >= 5  # a cue per phrase: the pauses break them


def test_cli_vad_on_silence_noise_and_a_blip(trained_model, speech, tmp_path):
    """Digital silence, loud white noise, a mains hum and a 50 ms blip: no speech, so each
    gets an empty transcript (not a failure, not a crash); a spoken file beside them is
    transcribed, and the run exits 0."""
    require_silero()
    rng = np.random.default_rng(7)
    t = np.arange(5 * SR) / SR
    clips = {
        "zeros": np.zeros(5 * SR, np.float32),
        "noise": np.clip(0.3 * rng.standard_normal(5 * SR), -1, 1).astype(np.float32),
        "hum": (0.5 * np.sin(2 * np.pi * 100 * t)).astype(np.float32),
        "blip": (0.3 * rng.standard_normal(SR // 20)).astype(np.float32),
    }
    for name, samples in clips.items():
        sf.write(tmp_path / f"{name}.wav", samples, SR)
    out = tmp_path / "out"
    inputs = [*(tmp_path / f"{name}.wav" for name in clips), speech.paths[0]]
    args = ["-m", trained_model, "--backend", "torch", "-f", "json", "-q"]
    r = invoke("transcribe", *inputs, "--vad", "-o", out, *args)
    assert r.exit_code == 0, r.stderr
    docs = {p.stem: json.loads(p.read_text()) for p in out.rglob("*.json")}
    assert sorted(docs) == sorted([*clips, speech.paths[0].stem])
    for name in clips:
        assert docs[name]["text"] == "" and docs[name]["words"] == [], (name, docs[name])
    assert docs["zeros"]["duration"] == 5.0 and docs["blip"]["duration"] == 0.05
    plain = invoke("transcribe", speech.paths[0], "-o", tmp_path / "plain", *args)
    assert plain.exit_code == 0
    (spoken_path,) = (tmp_path / "plain").rglob("*.json")
    spoken = json.loads(spoken_path.read_text())
    assert docs[speech.paths[0].stem]["text"] == spoken["text"] != ""


def test_cli_eval_takes_vad(trained_model, speech, tmp_path):
    manifest = tmp_path / "m.tsv"
    manifest.write_text(
        "path\ttext\n"
        + "".join(f"{p}\t{t}\n" for p, t in zip(speech.paths[:3], speech.references, strict=False))
    )
    r = invoke(
        "eval",
        manifest,
        "-m",
        trained_model,
        "--backend",
        "torch",
        "--vad",
        "--decoder",
        "greedy",
        "-q",
    )
    assert r.exit_code == 0, r.stderr
    assert "greedy" in r.stdout and "%" in r.stdout


def test_vad_options_are_refused_where_they_would_be_ignored(trained_model, speech, tmp_path):
    r = invoke("transcribe", speech.paths[0], "-m", trained_model, "--vad-threshold", "0.3")
    assert r.exit_code == 2 and "--vad-threshold needs --vad" in r.stderr
    store = tmp_path / "logits"
    store.mkdir()
    manifest = tmp_path / "m.tsv"
    manifest.write_text(f"path\ttext\n{speech.paths[0]}\tX\n")
    r = invoke("eval", manifest, "--load-logits", store, "--vad")
    assert r.exit_code == 2 and "--vad has no effect with --load-logits" in r.stderr


def test_missing_silero_is_one_line_naming_the_install(
    trained_model, speech, monkeypatch, tmp_path
):
    import sys

    monkeypatch.setitem(sys.modules, "silero_vad", None)  # import fails as if not installed
    r = invoke(
        "transcribe",
        speech.paths[0],
        "-m",
        trained_model,
        "--backend",
        "torch",
        "--vad",
        "--stdout",
    )
    assert r.exit_code == 2
    assert (
        r.stderr.strip() == "error: --vad needs the silero-vad package: pip install 'w2v2cli[vad]'"
    )
    assert r.stdout == ""
    manifest = tmp_path / "m.tsv"  # eval (and so lm tune, which shares its engine) too
    manifest.write_text(f"path\ttext\n{speech.paths[0]}\tX\n")
    r = invoke("eval", manifest, "-m", trained_model, "--backend", "torch", "--vad")
    assert r.exit_code == 2 and "pip install 'w2v2cli[vad]'" in r.stderr


def test_loading_silero_leaves_the_models_threads_alone(monkeypatch):
    """Importing silero_vad sets torch's threads to 1; SileroVad gives the loading thread
    its setting back (else the model would run on one core)."""
    import sys

    require_silero()
    import torch

    from w2v2cli.inference.vad import SileroVad

    for name in [m for m in sys.modules if m.split(".")[0] == "silero_vad"]:
        monkeypatch.delitem(sys.modules, name)  # so that the import runs again

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        SileroVad(VadOptions(), SR).speech_spans(np.zeros(SR, np.float32))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_cli_lm_tune_takes_vad_and_its_saved_logits_replay(
    trained_model, speech, tmp_path, tmp_path_factory
):
    from lm_fixtures import built_lms

    lm = built_lms(tmp_path_factory).upper_bin
    manifest = tmp_path / "m.tsv"
    manifest.write_text(
        "path\ttext\n"
        + "".join(f"{p}\t{t}\n" for p, t in zip(speech.paths[:3], speech.references, strict=False))
    )
    logits = tmp_path / "logits"
    common = ["--lm", lm, "--alphas", "0,0.5", "--betas", "0", "--decode-workers", "0", "-q"]
    first = invoke(
        "lm",
        "tune",
        manifest,
        "-m",
        trained_model,
        "--backend",
        "torch",
        "--vad",
        "--save-logits",
        logits,
        *common,
    )
    assert first.exit_code == 0, first.stderr
    assert "best: --alpha" in first.stdout
    again = invoke("lm", "tune", manifest, "--load-logits", logits, *common)
    assert again.exit_code == 0 and again.stdout == first.stdout


def test_a_gap_ends_the_word_in_a_subword_vocabulary(tmp_path):
    """Without a delimiter, the frame put in a gap left by ``--vad`` is the vocabulary's
    bare word marker (``▁``), so a continuation piece after the pause starts a new word;
    the blank there would have glued it to the word before."""
    from family_models import subword_folder

    from w2v2cli.decoding import GreedyDecoder
    from w2v2cli.inference import Engine
    from w2v2cli.options import ModelOptions, RunOptions

    folder = subword_folder("parakeet_ctc", tmp_path / "parakeet")
    engine = Engine.from_options(RunOptions(model=ModelOptions(model=str(folder))))
    try:
        vocab = engine.loaded.vocabulary
        boundary = engine._boundary
    finally:
        engine.close()
    assert vocab.delimiter_id is None and vocab.tokens[boundary] == "\u2581"
    start = next(i for i in range(vocab.size) if vocab.starts_word(i) and len(vocab.text(i)) > 1)
    more = next(
        i
        for i in range(vocab.size)
        if i not in vocab.special_ids and i != vocab.blank_id and vocab.tokens[i][0].isalpha()
    )
    spf = 1280
    parakeet_plan = plan(ChunkOptions(2.0, 0.25, 0.25), SR, spf)
    samples = np.full(4 * SR, 0.1, np.float32)
    piece = 10 * spf  # ten frames of speech on each side of a 1.2 s pause
    spans = [(0, piece), (2 * SR, 2 * SR + piece)]
    (chunk,) = speech_chunks(0, samples, spans, parakeet_plan)
    frames = chunk.length // spf
    assert frames == 20
    lp = np.full((frames, vocab.size), -20.0, np.float32)
    lp[:, vocab.blank_id] = 0.0
    lp[7, start] = lp[12, more] = 1.0  # a piece on each side of the gap
    em = stitch([chunk], [lp], parakeet_plan, len(samples), boundary=boundary)
    words = [w.text for w in GreedyDecoder(vocab).decode(em).words]
    assert words == [vocab.text(start), vocab.text(more)]

"""``w2v2 align`` with the small trained model: accuracy on speech with known word times,
long files, text the model cannot spell, wrong transcripts, and the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from speech import SENTENCES, timed_speech

from w2v2cli.options import AlignOptions, ChunkOptions, ModelOptions, RunOptions

#: The issue's targets for word start and end errors (seconds).
MEDIAN, P90 = 0.040, 0.100


def errors(words, times):
    starts = np.array([w.start - s for w, (s, _) in zip(words, times, strict=True)])
    ends = np.array([w.end - e for w, (_, e) in zip(words, times, strict=True)])
    return np.abs(starts), np.abs(ends)


@pytest.fixture(scope="module")
def aligner(trained_model):
    """8 s chunks with 1.5 s strides: the timed files (13-15 s) are cut and stitched, as
    long recordings are."""
    from w2v2cli import Aligner

    options = RunOptions(
        model=ModelOptions(str(trained_model), backend="torch"),
        chunking=ChunkOptions(8.0, 1.5, 1.5),
    )
    with Aligner(options) as a:
        yield a


@pytest.fixture(scope="module")
def timed_emissions(aligner, timed):
    from w2v2cli.inference import file_loader

    loaders = [file_loader(t.path, aligner.sampling_rate) for t in timed]
    return [em for _, em in aligner.emissions(loaders)]


def test_word_times_meet_the_targets_and_refinement_is_what_gets_the_ends_there(
    aligner, timed, timed_emissions
):
    import dataclasses

    refined, raw = [], []
    for t, em in zip(timed, timed_emissions, strict=True):
        refined.append(errors(aligner.align(em, t.text).words, t.times))
        letters_only = dataclasses.replace(em, frame_energy=None)  # no refinement
        raw.append(errors(aligner.align(letters_only, t.text).words, t.times))
    assert min(em.duration for em in timed_emissions) > 8  # cut into chunks and stitched
    starts = np.concatenate([s for s, _ in refined])
    ends = np.concatenate([e for _, e in refined])
    assert len(starts) == sum(len(t.words) for t in timed) > 60
    for name, err in (("start", starts), ("end", ends)):
        assert np.median(err) <= MEDIAN, name
        assert np.percentile(err, 90) <= P90, name
    raw_ends = np.concatenate([e for _, e in raw])
    assert np.percentile(raw_ends, 90) > P90  # the letter spikes alone end words too early


def test_a_long_file_is_aligned_in_windows_as_well_as_in_one(aligner, timed, timed_emissions):
    """42 s of speech (the three files' emissions one after another, each already
    chunked and stitched by the engine) aligned in 20 s windows meets the targets and gives
    the times one window over the whole minute gives."""
    from w2v2cli.alignment import align
    from w2v2cli.records import Emissions

    offsets = np.cumsum([0.0] + [em.duration for em in timed_emissions[:-1]])
    em = Emissions(
        np.concatenate([e.log_probs for e in timed_emissions]),
        np.concatenate([e.frame_starts + o for e, o in zip(timed_emissions, offsets, strict=True)]),
        timed_emissions[0].frame_duration,
        float(sum(e.duration for e in timed_emissions)),
        np.concatenate([e.frame_energy for e in timed_emissions]),
    )
    times = [(s + o, e + o) for t, o in zip(timed, offsets, strict=True) for s, e in t.times]
    text = " ".join(t.text for t in timed)
    assert em.num_frames > 2 * 1000  # more than two windows
    windowed = align(em, text, aligner.loaded.vocabulary)
    whole = align(em, text, aligner.loaded.vocabulary, window=10**6, commit=10**6)
    assert [(w.start, w.end) for w in windowed.words] == [(w.start, w.end) for w in whole.words]
    starts, ends = errors(windowed.words, times)
    assert np.median(starts) <= MEDIAN and np.percentile(starts, 90) <= P90
    assert np.median(ends) <= MEDIAN and np.percentile(ends, 90) <= P90


def test_a_number_the_model_cannot_spell_is_interpolated_and_flagged(aligner, tmp_path):
    spoken = "we met in nineteen eighty four at the lake"
    t = timed_speech(tmp_path, spoken, (0.1, 0.2), "en-us")
    result = aligner.align_file(t.path, "We met in 1984, at the lake.")
    words = {w.text: w for w in result.words}
    assert list(words) == ["We", "met", "in", "1984,", "at", "the", "lake."]
    number = words["1984,"]
    assert number.interpolated is True
    assert all(w.interpolated is False for w in result.words if w is not number)
    said_from, said_to = t.times[3][0], t.times[5][1]  # "nineteen eighty four"
    assert abs(number.start - said_from) <= 0.1 and abs(number.end - said_to) <= 0.1
    for name, index in (("in", 2), ("at", 6), ("lake.", 8)):  # neighbours stay accurate
        assert abs(words[name].start - t.times[index][0]) <= 0.1
        assert abs(words[name].end - t.times[index][1]) <= 0.1


def test_another_files_text_is_refused(aligner, speech):
    from w2v2cli.errors import AlignmentError

    good = aligner.align_file(speech.paths[0], SENTENCES[0])
    assert good.score > 0.3
    with pytest.raises(AlignmentError, match="does not match"):
        aligner.align_file(speech.paths[0], SENTENCES[3])


def w2v2(*args):
    from click.testing import CliRunner

    from w2v2cli.cli import main

    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_cli_audio_and_text_to_stdout(trained_model, speech, tmp_path):
    text = tmp_path / "fox.txt"
    text.write_text("\ufeffThe quick brown fox — jumps over the lazy dog!\n", encoding="utf-8")
    out = w2v2(
        "align", speech.paths[0], text, "-m", trained_model, "--backend", "torch", "--stdout", "-q"
    )
    assert out.exit_code == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["decoder"] == "align"
    assert doc["text"] == "The quick brown fox — jumps over the lazy dog!"
    assert [w["text"] for w in doc["words"]][3:5] == ["fox —", "jumps"]
    assert all(w["interpolated"] is False for w in doc["words"])
    assert 0 < doc["score"] <= 1
    starts = [w["start"] for w in doc["words"]]
    assert starts == sorted(starts) and doc["words"][-1]["end"] <= doc["duration"]
    srt = w2v2(
        "align",
        speech.paths[0],
        text,
        "-m",
        trained_model,
        "--backend",
        "torch",
        "--stdout",
        "-f",
        "srt",
        "--case",
        "lower",
        "-q",
    )
    assert srt.exit_code == 0 and "the quick brown fox —" in srt.stdout


def test_cli_manifest_every_format_and_a_wrong_transcript_fails_alone(
    trained_model, speech, tmp_path
):
    import srt as srt_lib
    import webvtt

    manifest = tmp_path / "set.tsv"
    rows = [
        "path\ttext",
        f"{speech.paths[0]}\t{SENTENCES[0]}",
        f"{speech.paths[1]}\t{SENTENCES[6]}",  # the wrong text
        f"{speech.paths[2]}\t{SENTENCES[2]}",
        f"{tmp_path / 'missing.wav'}\tnothing",
    ]
    manifest.write_text("\n".join(rows) + "\n")
    out_dir = tmp_path / "out"
    run = w2v2(
        "align",
        manifest,
        "-m",
        trained_model,
        "--backend",
        "torch",
        "-o",
        out_dir,
        "-f",
        "all",
        "-q",
    )
    assert run.exit_code == 1
    errors = run.stderr.strip().splitlines()
    assert len(errors) == 2
    assert any("missing.wav" in e for e in errors)
    assert any(str(speech.paths[1]) in e and "does not match the audio" in e for e in errors)
    written = sorted(p.name for p in out_dir.iterdir())
    assert written == sorted(
        f"{p.stem}.{f}"
        for p in (speech.paths[0], speech.paths[2])
        for f in ("txt", "json", "srt", "vtt", "tsv")
    )
    doc = json.loads((out_dir / f"{speech.paths[2].stem}.json").read_text())
    assert doc["text"] == SENTENCES[2]
    cues = list(srt_lib.parse((out_dir / f"{speech.paths[2].stem}.srt").read_text()))
    assert " ".join(c.content.replace("\n", " ") for c in cues) == SENTENCES[2]
    vtt = webvtt.read(str(out_dir / f"{speech.paths[2].stem}.vtt"))
    assert len(vtt.captions) == len(cues)
    # A second run skips the finished files; --min-score 0 aligns even the wrong text.
    again = w2v2(
        "align",
        manifest,
        "-m",
        trained_model,
        "--backend",
        "torch",
        "-o",
        out_dir,
        "-f",
        "json",
        "--min-score",
        "0",
    )
    assert again.exit_code == 1  # the missing file
    assert "1 done, 2 skipped, 1 failed" in again.stderr
    assert (out_dir / f"{speech.paths[1].stem}.json").exists()


def test_cli_refuses_bad_arguments(trained_model, speech, tmp_path):
    three = w2v2("align", speech.paths[0], speech.paths[1], speech.paths[2], "-m", trained_model)
    assert three.exit_code == 2 and "AUDIO TEXT_FILE" in three.stderr
    missing = w2v2("align", speech.paths[0], tmp_path / "nope.txt", "-m", trained_model)
    assert missing.exit_code == 2 and "nope.txt" in missing.stderr
    score = w2v2("align", speech.paths[0], tmp_path / "x.txt", "--min-score", "2")
    assert score.exit_code == 2


def test_align_options_validate():
    from w2v2cli.errors import ConfigError

    with pytest.raises(ConfigError):
        AlignOptions(min_score=-0.1)


@pytest.mark.parametrize("decoder", ["greedy", "beam"])
def test_decoders_word_ends_are_refined_too(aligner, timed, timed_emissions, decoder):
    """The same refinement for transcribe's decoders: on the words they recognisably got,
    ends meet the targets with it and miss them without (letter frames only)."""
    import dataclasses

    from speech import matched_errors

    from w2v2cli.decoding import make_decoder
    from w2v2cli.options import DecodeOptions

    options = DecodeOptions(decoder=decoder, workers=0)
    with make_decoder(aligner.loaded.vocabulary, options) as d:
        refined, raw = [], []
        for t, em in zip(timed, timed_emissions, strict=True):
            refined.append(matched_errors(d.decode(em).words, t))
            plain = dataclasses.replace(em, frame_energy=None)
            raw.append(matched_errors(d.decode(plain).words, t))
    starts = np.abs(np.concatenate([s for s, _ in refined]))
    ends = np.abs(np.concatenate([e for _, e in refined]))
    raw_ends = np.abs(np.concatenate([e for _, e in raw]))
    assert len(ends) >= 20
    assert np.median(ends) <= MEDIAN and np.percentile(ends, 90) <= P90
    assert np.median(starts) <= MEDIAN
    assert np.percentile(raw_ends, 90) > P90


# --- faults of the text: not UTF-8, empty, nothing the model can spell --------------------


def test_cli_text_that_is_not_utf8_is_one_line_before_the_model_loads(speech, tmp_path):
    """As a text file and as a manifest row; the model named does not exist, so the line
    comes before any model is loaded."""
    latin1 = tmp_path / "fox.txt"
    latin1.write_bytes("the quick brown fox caf\u00e9\n".encode("latin-1"))
    manifest = tmp_path / "set.tsv"
    manifest.write_bytes(f"path\ttext\n{speech.paths[0]}\tcaf\u00e9\n".encode("latin-1"))
    for inputs, where in (
        ((speech.paths[0], latin1), f"{latin1}:"),
        ((manifest,), f"{manifest}:2:"),
    ):
        r = w2v2("align", *inputs, "-m", tmp_path / "no-model", "--stdout")
        assert r.exit_code == 2
        (line,) = r.stderr.strip().splitlines()
        assert line == f"error: {where} not UTF-8 text", line


def test_cli_empty_and_unspellable_texts(trained_model, speech, tmp_path):
    """An empty text aligns to nothing (an empty transcript, as transcribe gives for
    silence); a text with nothing the model can spell fails that file alone, named in one
    line, while the other files of the manifest are aligned."""
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    r = w2v2("align", speech.paths[0], empty, "-m", trained_model, "--backend", "torch", "--stdout")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["text"] == "" and doc["words"] == []

    manifest = tmp_path / "set.tsv"
    rows = [
        "path\ttext",
        f"{speech.paths[0]}\t\u65e5\u672c\u8a9e \u2603",
        f"{speech.paths[2]}\t{SENTENCES[2]}",
    ]
    manifest.write_text("\n".join(rows) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    r = w2v2("align", manifest, "-m", trained_model, "--backend", "torch", "-o", out)
    assert r.exit_code == 1
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: {speech.paths[0]}: none of the text's words can be spelled with the model's "
        "alphabet"
    ], r.stderr
    assert sorted(p.name for p in out.iterdir()) == [f"{speech.paths[2].stem}.json"]
    assert json.loads((out / f"{speech.paths[2].stem}.json").read_text())["text"] == SENTENCES[2]

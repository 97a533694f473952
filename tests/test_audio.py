"""load_audio / audio_duration over real files in many formats, and over broken ones.

Every file is written here: WAV/FLAC/Ogg Vorbis with soundfile, MP3/AAC/Opus/G.722/AC-3
and a small MP4 video with PyAV's bundled encoders. Content is checked, not just shapes:
the dominant frequency of a known sine, amplitudes (integer scaling, channel averaging)
and, for lossless inputs, sample-level agreement with soxr on the ideal signal.
"""

from __future__ import annotations

import logging
import struct
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
import soxr

from w2v2cli.audio import audio_duration, load_audio, stream_audio
from w2v2cli.errors import AudioError

TARGET = 16000
FREQ = 440.0


def sine(rate: int, seconds: float, freq: float = FREQ, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(rate * seconds))) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def dominant_freq(x: np.ndarray, rate: int = TARGET) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * rate / len(x))


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def encode_pyav(
    path: Path,
    channels: list[np.ndarray],
    rate: int,
    codec: str,
    *,
    video: bool = False,
) -> Path:
    """Encode planar float channels with one of PyAV's bundled encoders."""
    layout = {1: "mono", 2: "stereo"}[len(channels)]
    planar = np.stack(channels).astype(np.float32)
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate)
        stream.layout = layout
        vstream = None
        if video:
            vstream = out.add_stream("mpeg4", rate=5)
            vstream.width, vstream.height, vstream.pix_fmt = 32, 32, "yuv420p"
        frame_size = stream.codec_context.frame_size or 1024
        for start in range(0, planar.shape[1], frame_size):
            block = np.ascontiguousarray(planar[:, start : start + frame_size])
            frame = av.AudioFrame.from_ndarray(block, format="fltp", layout=layout)
            frame.sample_rate = rate
            frame.pts = start
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
        if vstream is not None:
            for i in range(int(planar.shape[1] / rate * 5)):
                image = np.full((32, 32, 3), 40 * (i % 6), dtype=np.uint8)
                vframe = av.VideoFrame.from_ndarray(image, format="rgb24")
                vframe.pts = i
                out.mux(vstream.encode(vframe))
            out.mux(vstream.encode(None))
    return path


def assert_clean(y: np.ndarray, seconds: float, tol: float) -> None:
    assert y.dtype == np.float32
    assert y.ndim == 1
    assert abs(len(y) / TARGET - seconds) <= tol, len(y) / TARGET
    assert abs(dominant_freq(y) - FREQ) < 3.0
    assert np.isfinite(y).all()


# --- lossless, through soundfile ---------------------------------------------------------


def test_wav_int16_8k_stereo_is_scaled_averaged_and_resampled(tmp_path: Path) -> None:
    rate = 8000
    left = sine(rate, 2.0, amp=0.5)
    right = np.zeros_like(left)
    path = tmp_path / "stereo8k.wav"
    sf.write(path, np.stack([left, right], axis=1), rate, subtype="PCM_16")

    y = load_audio(path, TARGET)

    assert len(y) == 2 * TARGET  # exact for a lossless, integer-ratio conversion
    assert_clean(y, 2.0, 0)
    # Mean of a 0.5 sine and silence: a 0.25 sine, so int16 was scaled to [-1, 1).
    assert rms(y[1000:-1000]) == pytest.approx(0.25 / np.sqrt(2), rel=0.01)
    expected = soxr.resample((left + right) / 2, rate, TARGET, quality="HQ")
    np.testing.assert_allclose(y, expected, atol=2e-4)  # int16 quantisation only


def test_channels_are_averaged_not_picked(tmp_path: Path) -> None:
    x = sine(TARGET, 1.0)
    path = tmp_path / "antiphase.wav"
    sf.write(path, np.stack([x, -x], axis=1), TARGET, subtype="FLOAT")
    assert np.abs(load_audio(path, TARGET)).max() < 1e-6


def test_same_rate_float_wav_is_returned_unchanged(tmp_path: Path) -> None:
    x = np.random.default_rng(0).uniform(-0.9, 0.9, TARGET).astype(np.float32)
    path = tmp_path / "same.wav"
    sf.write(path, x, TARGET, subtype="FLOAT")
    np.testing.assert_array_equal(load_audio(str(path), TARGET), x)


def test_flac_44k_long_enough_for_several_blocks_matches_one_shot_soxr(tmp_path: Path) -> None:
    rate = 44100
    x = sine(rate, 7.0, amp=0.3) + sine(rate, 7.0, freq=1234.0, amp=0.1)
    path = tmp_path / "long.flac"
    sf.write(path, x, rate, subtype="PCM_24")

    y = load_audio(path, TARGET)

    assert_clean(y, 7.0, 1 / TARGET)
    expected = soxr.resample(x, rate, TARGET, quality="HQ")
    assert len(y) == len(expected)
    np.testing.assert_allclose(y, expected, atol=1e-5)  # streaming == one call
    blocks = list(stream_audio(path, TARGET))
    assert len(blocks) > 1 and all(b.dtype == np.float32 and b.ndim == 1 for b in blocks)
    np.testing.assert_array_equal(np.concatenate(blocks), y)


def test_stream_audio_gives_blocks_of_load_audio_and_fails_when_read(tmp_path: Path) -> None:
    """MP3 through PyAV comes in blocks of gathered frames, never the whole file at once;
    errors come where they are found, when the blocks are asked for (the engine reads them
    in its own thread)."""
    mp3 = encode_pyav(tmp_path / "a.mp3", [sine(44100, 3.0)], 44100, "libmp3lame")
    blocks = list(stream_audio(mp3, TARGET))
    # about 32,768 native samples a block, resampled (plus what the resampler held back)
    bound = 2 * 32768 * TARGET / 44100
    assert len(blocks) > 2 and max(b.size for b in blocks) <= bound
    # against an independent decode: the whole file through PyAV, one soxr call
    with av.open(str(mp3)) as container:
        native = np.concatenate([f.to_ndarray()[0] for f in container.decode(audio=0)])
    expected = soxr.resample(native.astype(np.float32), 44100, TARGET, quality="HQ")
    streamed = np.concatenate(blocks)
    assert len(streamed) == len(expected)
    np.testing.assert_allclose(streamed, expected, atol=1e-5)
    np.testing.assert_array_equal(streamed, load_audio(mp3, TARGET))
    missing = stream_audio(tmp_path / "none.wav", TARGET)  # nothing read yet: no error
    with pytest.raises(AudioError, match="no such file"):
        next(missing)
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, np.float32), TARGET)
    with pytest.raises(AudioError, match="no audio samples"):
        list(stream_audio(empty, TARGET))


def test_ogg_vorbis_48k_six_channels(tmp_path: Path) -> None:
    rate = 48000
    x = sine(rate, 1.5, amp=0.6)
    # 5.1 in Vorbis order ends with the LFE channel, which the encoder low-passes, so it
    # carries silence here; the mean of five 0.6 sines and one silent channel is a 0.5 sine.
    channels = [x, x, x, x, x, np.zeros_like(x)]
    path = tmp_path / "surround.ogg"
    sf.write(path, np.stack(channels, axis=1), rate, format="OGG", subtype="VORBIS")

    y = load_audio(path, TARGET)

    assert_clean(y, 1.5, 0.01)
    assert rms(y[2000:-2000]) == pytest.approx(0.5 / np.sqrt(2), rel=0.05)
    assert audio_duration(path) == pytest.approx(1.5, abs=0.01)


def test_upsampling_from_8k_to_a_higher_model_rate(tmp_path: Path) -> None:
    path = tmp_path / "up.wav"
    sf.write(path, sine(8000, 1.0), 8000)
    y = load_audio(path, 24000)
    assert len(y) == 24000
    assert abs(dominant_freq(y, 24000) - FREQ) < 3.0


# --- lossy and video containers, through PyAV --------------------------------------------


@pytest.mark.parametrize(
    ("name", "codec", "rate", "stereo", "video"),
    [
        ("speech.mp3", "libmp3lame", 44100, True, False),
        ("speech.m4a", "aac", 48000, False, False),
        ("speech.webm", "libopus", 48000, True, False),
        ("speech.opus", "libopus", 48000, False, False),
        ("talk.mp4", "aac", 44100, True, True),
        ("speech.mka", "g722", 16000, False, False),
        ("speech.ac3", "ac3", 48000, True, False),
    ],
)
def test_pyav_formats(
    tmp_path: Path, name: str, codec: str, rate: int, stereo: bool, video: bool
) -> None:
    x = sine(rate, 1.5)
    channels = [x, x] if stereo else [x]
    path = encode_pyav(tmp_path / name, channels, rate, codec, video=video)

    y = load_audio(path, TARGET)

    # Lossy codecs add encoder delay/padding (AAC: up to ~1-2 frames).
    assert_clean(y, 1.5, 0.05)
    assert rms(y[4000:-4000]) == pytest.approx(0.5 / np.sqrt(2), rel=0.1)
    duration = audio_duration(path)
    assert duration is not None and duration == pytest.approx(1.5, abs=0.05)


@pytest.mark.parametrize(
    ("name", "codec", "rate", "stereo"),
    [
        ("a.mp3", "libmp3lame", 44100, False),
        ("b.mp3", "libmp3lame", 44100, True),
        ("c.m4a", "aac", 48000, True),
        ("d.ac3", "ac3", 48000, True),
        ("e.mka", "g722", 16000, False),
    ],
)
def test_frames_are_read_from_their_planes_as_to_ndarray_gives_them(
    tmp_path: Path, name: str, codec: str, rate: int, stereo: bool
) -> None:
    """Each decoded frame's mono samples, read straight from its planes, are bit for bit
    those of PyAV's ``to_ndarray`` averaged (the way they were read before), for mono and
    stereo, and for codecs whose frames come as another sample format first (G.722)."""
    from w2v2cli.audio import _frame_mono, _pyav_frames, _to_mono

    rng = np.random.default_rng(4)
    channels = [(0.3 * rng.standard_normal(rate * 2)).astype(np.float32) for _ in range(2)]
    path = encode_pyav(tmp_path / name, channels if stereo else channels[:1], rate, codec)
    frames = 0
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        for frame in _pyav_frames(path, container, stream):
            expected = _to_mono(frame.to_ndarray(), axis=0)
            got = _frame_mono(frame)
            assert got.dtype == np.float32 and got.shape == expected.shape
            np.testing.assert_array_equal(got, expected)
            frames += 1
    assert frames > 10


def test_mp3_goes_through_pyav_even_if_libsndfile_could_read_it(tmp_path: Path) -> None:
    # Named .mp3 or not, MPEG audio is decoded by PyAV (same samples on every install).
    x = sine(44100, 1.0)
    mp3 = encode_pyav(tmp_path / "a.mp3", [x], 44100, "libmp3lame")
    renamed = tmp_path / "a.bin"
    renamed.write_bytes(mp3.read_bytes())
    np.testing.assert_array_equal(load_audio(mp3, TARGET), load_audio(renamed, TARGET))


# --- broken inputs -------------------------------------------------------------------------


def _wav_bytes(seconds: float = 1.0, rate: int = 8000) -> bytes:
    import io

    buf = io.BytesIO()
    sf.write(buf, sine(rate, seconds), rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _unknown_codec_wav(path: Path) -> Path:
    """A well-formed RIFF/WAVE whose format tag (0x1234) no decoder knows."""
    data = np.zeros(800, dtype="<i2").tobytes()
    fmt = struct.pack("<HHIIHH", 0x1234, 1, 8000, 16000, 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(data)) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def _make_bad(tmp_path: Path, kind: str) -> Path:
    if kind == "missing":
        return tmp_path / "missing.wav"
    if kind == "folder":
        (tmp_path / "folder.wav").mkdir()
        return tmp_path / "folder.wav"
    path = tmp_path / {"random": "noise.mp3", "video_only": "silent.mp4"}.get(kind, f"{kind}.wav")
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("the quick brown fox jumps over the lazy dog\n" * 10)
    elif kind == "cut_header":
        path.write_bytes(_wav_bytes()[:30])
    elif kind == "random":
        path.write_bytes(np.random.default_rng(0).bytes(20000))
    elif kind == "zero_frames":
        sf.write(path, np.zeros((0, 1), np.float32), 16000)
    elif kind == "unknown_codec":
        _unknown_codec_wav(path)
    elif kind == "video_only":
        with av.open(str(path), "w") as out:
            v = out.add_stream("mpeg4", rate=5)
            v.width, v.height, v.pix_fmt = 32, 32, "yuv420p"
            for i in range(5):
                frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), "rgb24")
                frame.pts = i
                out.mux(v.encode(frame))
            out.mux(v.encode(None))
    return path


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("missing", "no such file"),
        ("folder", "folder"),
        ("empty", "empty file"),
        ("text", "text file"),
        ("cut_header", "not a recognised"),
        ("random", "not a recognised"),
        ("zero_frames", "no audio samples"),
        ("unknown_codec", "unsupported audio codec"),
        ("video_only", "no audio stream"),
    ],
)
def test_bad_inputs_raise_one_line_audio_error(tmp_path: Path, kind: str, reason: str) -> None:
    path = _make_bad(tmp_path, kind)
    with pytest.raises(AudioError) as info:
        load_audio(path, TARGET)
    err = info.value
    assert err.path == path
    assert str(err).startswith(str(path))
    assert reason in err.reason
    assert "\n" not in str(err)
    assert "Traceback" not in str(err)


@pytest.mark.parametrize("kind", ["missing", "folder", "empty", "text", "random", "cut_header"])
def test_audio_duration_never_raises(tmp_path: Path, kind: str) -> None:
    assert audio_duration(_make_bad(tmp_path, kind)) is None


def test_truncated_wav_data_decodes_what_is_there_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = _wav_bytes(seconds=2.0)
    path = tmp_path / "cut_data.wav"
    path.write_bytes(data[: 44 + 8000 * 2])  # header + 1 s of 16-bit mono at 8 kHz
    with caplog.at_level(logging.WARNING, logger="w2v2cli"):
        y = load_audio(path, TARGET)
    assert_clean(y, 1.0, 0.01)
    assert "truncated" in caplog.text


def test_truncated_mp3_decodes_what_is_there(tmp_path: Path) -> None:
    path = encode_pyav(tmp_path / "cut.mp3", [sine(44100, 2.0)], 44100, "libmp3lame")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2 + 7])  # cut mid-frame
    y = load_audio(path, TARGET)
    assert_clean(y, 1.0, 0.1)


def test_bad_sample_rate_is_a_programming_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        load_audio(tmp_path / "x.wav", 0)

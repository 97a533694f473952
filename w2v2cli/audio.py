"""Decode any common audio or video file to mono float32 at the model's sample rate.

Two decoders, one result:

* **soundfile** (libsndfile) first, for WAV, FLAC, Ogg Vorbis/Opus, AIFF, CAF, ...: exact,
  fast, and it scales integer PCM to [-1, 1) itself (``dtype="float32"``).
* **PyAV** (FFmpeg's libraries, bundled in the wheel, no ``ffmpeg`` binary needed) for
  everything libsndfile cannot open: MP3, AAC/M4A, Opus in WebM/Matroska, the audio track of
  MP4/MKV/MOV video, G.722, AMR, WMA, AC-3, ... MP3 always goes to PyAV, even where
  libsndfile was built with MP3 support, so results do not depend on the libsndfile build
  (and corrupt MP3s do not make libmpg123 print notes on stderr).

Channels are averaged to mono; rates are converted with soxr (see ``_SOXR_QUALITY``).
Decoding is streamed block by block through the resampler: ``stream_audio`` yields
target-rate blocks as they come (the engine chunks them as they arrive, so a file's length
does not raise memory), and ``load_audio`` joins them into one array, never holding the
whole file at its native rate and channel count.

Every failure is an ``AudioError`` with a one-line reason; no library traceback escapes.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np
import soxr

from .errors import AudioError

if TYPE_CHECKING:
    import av
    import soundfile as sf


def _soundfile() -> ModuleType:
    """soundfile, imported on first use: it and PyAV take about 0.25 s each to import, which
    ``import w2v2cli`` and ``w2v2 --help`` never need."""
    import soundfile

    return soundfile


def _pyav() -> ModuleType:
    """PyAV (with ``av.error``), imported on first use (see ``_soundfile``)."""
    import av
    import av.error

    return av


log = logging.getLogger("w2v2cli")

# "HQ" is soxr's 20-bit setting: passband to ~91% of Nyquist, stopband attenuation well
# below anything a 16-bit recording or an ASR front end can resolve. "VHQ" (28-bit) costs
# roughly twice the CPU for differences ~50 dB further below the noise floor of speech
# recordings, which changes no transcript. "HQ" is also soxr's and librosa's default.
_SOXR_QUALITY = "HQ"

# Frames per soundfile read: ~6 s at 44.1 kHz, a few MB even for multichannel files.
_BLOCK_FRAMES = 1 << 18
#: Samples PyAV's decoded frames are gathered into before they go on (``_pyav_blocks``).
_PYAV_BLOCK = 1 << 15

# Extensions whose files go straight to PyAV (see the module docstring).
_PYAV_ONLY_EXTENSIONS = frozenset({"mp3", "mp2", "mp1", "mpga"})

# libsndfile format names that PyAV decodes instead, whatever the file's name.
_PYAV_ONLY_SF_FORMATS = frozenset({"MP3", "MPEG"})


def load_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """Decode ``path`` to a 1-D float32 mono array at ``sample_rate`` Hz.

    Raises ``AudioError`` (with the path and a one-line reason) for anything that is not
    decodable audio: missing files, folders, empty or truncated files, text or random bytes,
    containers without an audio stream, codecs this FFmpeg build cannot decode.
    """
    blocks = list(stream_audio(path, sample_rate))
    audio = np.concatenate(blocks) if len(blocks) > 1 else blocks[0]
    return np.ascontiguousarray(audio, dtype=np.float32)


def stream_audio(path: str | Path, sample_rate: int) -> Iterator[np.ndarray]:
    """Decode ``path`` block by block: 1-D float32 mono arrays at ``sample_rate`` Hz whose
    concatenation is ``load_audio``'s result, so memory does not grow with the file's length.

    Nothing is read until the first block is asked for. ``AudioError`` as in ``load_audio``,
    raised where it is found: at the start (a missing file, an unknown format), midway
    (damaged data) or at the end (a recording with no samples).
    """
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, not {sample_rate}")
    p = Path(path)
    _check_file(p)
    blocks = None
    if p.suffix.lower().lstrip(".") not in _PYAV_ONLY_EXTENSIONS:
        blocks = _soundfile_blocks(p)
    if blocks is None:
        blocks = _pyav_blocks(p)
    sink = _ResamplingSink(sample_rate)
    warned = False
    total = 0

    def clean(out: np.ndarray) -> np.ndarray:
        nonlocal warned
        if not np.isfinite(out).all():
            if not warned:
                log.warning("%s: replaced NaN/infinite samples with silence", p)
                warned = True
            out = np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)
        return out

    for block, rate in blocks:
        for out in sink.push(block, rate):
            total += out.size
            yield clean(out)
    for out in sink.flush():
        total += out.size
        yield clean(out)
    if total == 0:
        raise AudioError(p, "no audio samples decoded (empty recording)")


def resample(samples: np.ndarray, in_rate: int, out_rate: int) -> np.ndarray:
    """Mono ``samples`` at ``in_rate`` → float32 at ``out_rate``, with the resampler file
    decoding uses (so an array gives the samples its file would)."""
    sink = _ResamplingSink(out_rate)
    parts = sink.push(np.asarray(samples, dtype=np.float32).reshape(-1), int(in_rate))
    parts += sink.flush()
    if not parts:
        return np.zeros(0, dtype=np.float32)
    return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)


def audio_duration(path: str | Path) -> float | None:
    """Duration in seconds from the file's header, or None when unknown; never raises.

    Cheap (no decoding): meant for progress-bar totals, not for timing anything.
    """
    sf = _soundfile()
    p = Path(path)
    try:
        if p.suffix.lower().lstrip(".") not in _PYAV_ONLY_EXTENSIONS:
            try:
                info = sf.info(str(p))
            except (sf.LibsndfileError, RuntimeError):
                pass
            else:
                if info.format not in _PYAV_ONLY_SF_FORMATS and info.samplerate > 0:
                    return info.frames / info.samplerate
        av = _pyav()
        with av.open(str(p), metadata_errors="ignore") as container:
            if container.duration is not None and container.duration > 0:
                return container.duration / av.time_base
            for stream in container.streams.audio:
                if stream.duration and stream.time_base:
                    return float(stream.duration * stream.time_base)
    except Exception:  # noqa: BLE001 - progress totals are optional; a bad file fails later
        return None
    return None


# --- checks and sniffing ----------------------------------------------------------------


def _check_file(p: Path) -> None:
    """Fail early with a clear reason for the cases both libraries report obscurely."""
    try:
        if p.is_dir():
            raise AudioError(p, "is a folder, not an audio file")
        st = p.stat()
    except FileNotFoundError:
        raise AudioError(p, "no such file") from None
    except OSError as e:
        raise AudioError(p, f"cannot read: {_os_reason(e)}") from None
    if st.st_size == 0:
        raise AudioError(p, "empty file (0 bytes)")
    try:
        with p.open("rb"):
            pass
    except OSError as e:
        raise AudioError(p, f"cannot read: {_os_reason(e)}") from None


def _looks_like_text(p: Path) -> bool:
    """True when the file starts with printable UTF-8 text (a transcript saved as .wav...)."""
    try:
        with p.open("rb") as f:
            head = f.read(1024)
    except OSError:
        return False
    if not head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(head) - 4:  # a multi-byte character cut at the end is fine
            return False
        text = head[: e.start].decode("utf-8")
    return all(ch.isprintable() or ch in "\t\r\n\f" for ch in text)


def _os_reason(e: OSError) -> str:
    return e.strerror or type(e).__name__


def _ffmpeg_reason(e: Exception) -> str:
    reason = getattr(e, "strerror", None) or str(e) or type(e).__name__
    return _one_line(reason)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


# --- the sink: mono blocks in, target-rate array out ------------------------------------


class _ResamplingSink:
    """Mono float32 blocks in at any (even changing) rate, blocks at ``out_rate`` out.

    A streaming soxr resampler gives the same samples as one ``soxr.resample`` call over
    the whole signal, without holding the native-rate signal in memory. A rate change in
    the middle of a stream (possible in broadcast AAC/MP3) flushes and starts a new one.
    ``push`` and ``flush`` return the output blocks ready so far (possibly none).
    """

    def __init__(self, out_rate: int) -> None:
        self.out_rate = out_rate
        self._in_rate: int | None = None
        self._stream: soxr.ResampleStream | None = None

    def push(self, block: np.ndarray, in_rate: int) -> list[np.ndarray]:
        ready: list[np.ndarray] = []
        if in_rate != self._in_rate:
            ready = self.flush()
            self._in_rate = in_rate
            if in_rate != self.out_rate:
                self._stream = soxr.ResampleStream(
                    in_rate, self.out_rate, 1, dtype="float32", quality=_SOXR_QUALITY
                )
        if block.size == 0:
            return ready
        block = np.ascontiguousarray(block, dtype=np.float32)
        if self._stream is None:
            ready.append(block)
        else:
            out = self._stream.resample_chunk(block, last=False)
            if out.size:
                ready.append(out)
        return ready

    def flush(self) -> list[np.ndarray]:
        """The resampler's last samples (the end of the stream or of one rate)."""
        ready: list[np.ndarray] = []
        if self._stream is not None:
            out = self._stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
            if out.size:
                ready.append(out)
        self._stream = None
        return ready


def _to_mono(block: np.ndarray, axis: int) -> np.ndarray:
    """Average channels (the plain mean, no downmix matrix: every channel counts the same).
    One channel is returned as a view, not copied (nothing writes to it)."""
    if block.shape[axis] == 1:
        return np.squeeze(block, axis=axis)
    return block.mean(axis=axis, dtype=np.float32)


# --- soundfile ---------------------------------------------------------------------------


def _soundfile_blocks(p: Path) -> Iterator[tuple[np.ndarray, int]] | None:
    """Mono blocks at the native rate from libsndfile, or None when it cannot (or should
    not) read the file, which then goes to PyAV. The file is opened here, read lazily."""
    sf = _soundfile()
    try:
        f = sf.SoundFile(str(p))
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError):
        return None
    except OSError as e:
        raise AudioError(p, f"cannot read: {_os_reason(e)}") from None
    if f.format in _PYAV_ONLY_SF_FORMATS:
        f.close()
        return None
    if f.samplerate <= 0 or f.channels <= 0:
        f.close()
        raise AudioError(p, "invalid header (no sample rate or channels)")
    return _read_soundfile(p, f)


def _read_soundfile(p: Path, f: sf.SoundFile) -> Iterator[tuple[np.ndarray, int]]:
    sf = _soundfile()
    with f:
        if _header_claims_more_data(f):
            log.warning(
                "%s: file is shorter than its header says (truncated?); decoding the rest", p
            )
        try:
            while True:
                block = f.read(_BLOCK_FRAMES, dtype="float32", always_2d=True)
                if block.shape[0] == 0:
                    break
                yield _to_mono(block, axis=1), f.samplerate
        except (sf.LibsndfileError, RuntimeError, ValueError) as e:
            raise AudioError(p, f"corrupt or truncated audio data ({_one_line(str(e))})") from None


def _header_claims_more_data(f: sf.SoundFile) -> bool:
    """libsndfile reads a truncated WAV/AIFF silently; its log says "data : N (should be M)".

    Streaming writers leave 0 or 0xFFFFFFFF as the size; those are not truncation.
    """
    sf = _soundfile()
    try:
        m = _SHOULD_BE.search(f.extra_info)
    except (sf.LibsndfileError, RuntimeError, UnicodeDecodeError):
        return False
    if m is None:
        return False
    claimed, actual = int(m.group(1)), int(m.group(2))
    return actual < claimed < 0xFFFFFFFF


_SHOULD_BE = re.compile(r"^(?:data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)


# --- PyAV --------------------------------------------------------------------------------


def _pyav_blocks(p: Path) -> Iterator[tuple[np.ndarray, int]]:
    """Mono blocks at the native rate from PyAV (FFmpeg)."""
    av = _pyav()
    try:
        container = av.open(str(p), metadata_errors="ignore")
    except av.error.InvalidDataError:
        if _looks_like_text(p):
            raise AudioError(p, "a text file, not audio") from None
        raise AudioError(p, "not a recognised audio or video format (or a damaged file)") from None
    except av.error.FFmpegError as e:
        raise AudioError(p, f"cannot open: {_ffmpeg_reason(e)}") from None
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise AudioError(p, f"cannot open: {_one_line(str(e)) or type(e).__name__}") from None
    with container:
        if not container.streams.audio:
            if _looks_like_text(p):
                raise AudioError(p, "a text file, not audio")
            what = "only video or images" if container.streams.video else "nothing FFmpeg can read"
            raise AudioError(p, f"no audio stream ({what})")
        stream = container.streams.audio[0]
        if stream.codec_context is None:
            raise AudioError(p, "unsupported audio codec (no decoder for it in this FFmpeg build)")
        codec = stream.codec_context.name
        bad_packets = 0
        last_error = ""
        decoded = 0
        # Frames are short (1,152 samples of MP3, 1,024 of AAC): they are gathered into
        # blocks of about _PYAV_BLOCK samples, so the Python work and the resampler's calls
        # are per block, not per frame (the resampler's output does not depend on how its
        # input is cut).
        pending: list[np.ndarray] = []
        pending_size, pending_rate = 0, 0
        for frame in _pyav_frames(p, container, stream):
            if isinstance(frame, Exception):
                bad_packets += 1
                last_error = _ffmpeg_reason(frame)
                continue
            mono = _frame_mono(frame)
            decoded += mono.size
            if pending and frame.sample_rate != pending_rate:
                yield _joined(pending), pending_rate
                pending, pending_size = [], 0
            pending.append(mono)
            pending_size += mono.size
            pending_rate = frame.sample_rate
            if pending_size >= _PYAV_BLOCK:
                yield _joined(pending), pending_rate
                pending, pending_size = [], 0
        if pending:
            yield _joined(pending), pending_rate
        if bad_packets:
            log.warning(
                "%s: skipped %d undecodable %s packet(s): %s", p, bad_packets, codec, last_error
            )
            if decoded == 0:
                raise AudioError(p, f"corrupt {codec} audio data ({last_error})")


def _frame_mono(frame: av.AudioFrame) -> np.ndarray:
    """A planar float frame's samples averaged to mono: ``_to_mono(frame.to_ndarray(), 0)``,
    the same values, read straight from its planes (``to_ndarray`` stacks them in Python
    for every frame, which cost more than decoding MP3)."""
    n = frame.samples
    planes = [np.frombuffer(plane, dtype=np.float32, count=n) for plane in frame.planes]
    return planes[0] if len(planes) == 1 else _to_mono(np.stack(planes), axis=0)


def _joined(blocks: list[np.ndarray]) -> np.ndarray:
    return blocks[0] if len(blocks) == 1 else np.concatenate(blocks)


def _pyav_frames(
    p: Path, container: av.container.InputContainer, stream: av.AudioStream
) -> Iterator[av.AudioFrame | Exception]:
    """Decoded frames as planar float at their native rate; packet errors yielded, not raised.

    Like the ffmpeg CLI, a damaged packet is skipped and decoding goes on. AudioResampler is
    used only to convert the sample *format* to float (rate and layout stay as decoded); it
    is rebuilt if the stream changes format, layout or rate midway.
    """
    av = _pyav()
    resampler: av.AudioResampler | None = None
    setup: tuple[str, str, int] | None = None
    try:
        packets = container.demux(stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                break
            except av.error.EOFError:
                break
            except (av.error.FFmpegError, OSError) as e:
                # A demuxer error means the rest of the file is unreadable: keep what we have
                # (the caller warns, and fails if that is nothing).
                yield e
                break
            try:
                frames = packet.decode()
            except av.error.DecoderNotFoundError:
                raise AudioError(p, "unsupported audio codec") from None
            except (av.error.FFmpegError, ValueError) as e:
                yield e
                continue
            for frame in frames:
                if frame.format.name == "fltp":  # already planar float: nothing to convert
                    yield frame
                    continue
                key = (frame.format.name, frame.layout.name, frame.sample_rate)
                if key != setup:
                    resampler = av.AudioResampler(format="fltp")
                    setup = key
                assert resampler is not None
                yield from resampler.resample(frame)
    except (av.error.FFmpegError, OSError, ValueError) as e:
        raise AudioError(p, f"cannot decode: {_ffmpeg_reason(e)}") from None

"""Frozen option records, validated once, with the reasons for their defaults.

The CLI builds these from its arguments; scripts build them directly. No I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError

DEFAULT_MODEL = "facebook/wav2vec2-base-960h"

# Every choice the options offer, defined once (the CLI's choices come from here).
DEVICES_HELP = "auto, cpu, cuda or cuda:N"
DTYPES = ("auto", "float32", "float16", "bfloat16", "int8")
BACKENDS = ("auto", "torch", "openvino")
INT8_METHODS = ("auto", "weights", "full")
DECODERS = ("auto", "greedy", "beam")
#: Beam-search engines: auto = $W2V2_BEAM_ENGINE, else the first installed of the other two.
BEAM_ENGINES = ("auto", "ctc-beam-decoder", "pyctcdecode")
FORMATS = ("txt", "json", "srt", "vtt", "tsv")
CASE_MODES = ("keep", "lower", "sentence")


@dataclass(frozen=True)
class ModelOptions:
    """Which model to load, where and how it runs.

    ``device="auto"`` picks CUDA when available. ``dtype="auto"`` is float16 on CUDA (half
    the memory traffic, same greedy text in practice) and float32 on CPU (the text of the
    transformers pipeline); ``bfloat16`` (CPUs with native bf16) and ``int8`` (OpenVINO)
    trade a little accuracy for speed. ``backend="auto"`` is OpenVINO on the CPU when its
    extra is installed, else PyTorch (``inference/backends.py``). ``threads=None``: the
    cores this process may use. ``language``: the vocabulary and adapter of a model with one
    per language (MMS, ``models/languages.py``). Remote code is never run
    (``trust_remote_code=False``). ``int8`` is how ``dtype="int8"`` quantizes (``weights``,
    ``full`` or ``auto``) and ``calibration`` the audio files full quantization calibrates
    on (empty: the run's own input); see ``inference/quantize.py``.
    """

    model: str = DEFAULT_MODEL
    device: str = "auto"
    dtype: str = "auto"
    cache_dir: Path | None = None
    revision: str | None = None
    backend: str = "auto"
    threads: int | None = None
    language: str | None = None
    int8: str = "auto"
    calibration: tuple[Path, ...] = ()

    def __post_init__(self) -> None:
        if self.language is not None and not self.language.strip():
            raise ConfigError("language must be a code such as 'fra', not empty")
        if self.int8 not in INT8_METHODS:
            raise ConfigError(f"int8 must be one of {', '.join(INT8_METHODS)}, not {self.int8!r}")
        if self.dtype not in DTYPES:
            raise ConfigError(f"dtype must be one of {', '.join(DTYPES)}, not {self.dtype!r}")
        if self.backend not in BACKENDS:
            raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, not {self.backend!r}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError("threads must be at least 1")
        dev = self.device
        if not (dev in ("auto", "cpu", "cuda") or (dev.startswith("cuda:") and dev[5:].isdigit())):
            raise ConfigError(f"device must be {DEVICES_HELP}, not {dev!r}")


@dataclass(frozen=True)
class ChunkOptions:
    """How long recordings are cut, with the transformers ASR pipeline's meaning.

    Each chunk is ``chunk_length`` seconds; consecutive chunks overlap by
    ``stride_left + stride_right`` seconds; the frames of the strides are dropped from each
    chunk's output (except at the file's ends) and the rest is concatenated.

    Defaults: 20 s chunks with 3 s strides. wav2vec2 was fine-tuned on utterances of up to
    ~35 s (LibriSpeech), so 20 s is well inside what it has seen while keeping attention cost
    (quadratic in length) low; the convolutional front end sees only 25 ms, so 3 s of
    context on each side is ample for the kept middle, and 70% of the computed audio is kept
    (14 of 20 s). Files shorter than one chunk are run whole, with no stride cost.
    """

    chunk_length: float = 20.0
    stride_left: float = 3.0
    stride_right: float = 3.0

    def __post_init__(self) -> None:
        if self.chunk_length <= 0:
            raise ConfigError("chunk length must be positive")
        if self.stride_left < 0 or self.stride_right < 0:
            raise ConfigError("stride lengths must not be negative")
        if self.stride_left + self.stride_right >= self.chunk_length:
            raise ConfigError(
                f"chunk length ({self.chunk_length:g} s) must be greater than the two strides "
                f"together ({self.stride_left:g} + {self.stride_right:g} s)"
            )


@dataclass(frozen=True)
class VadOptions:
    """Speech-aware segmentation (``--vad``): Silero VAD finds speech, chunks are cut at
    pauses, and non-speech is never sent to the model (``segmentation/``, ``inference/vad.py``).

    ``threshold``: Silero's speech probability above which a 32 ms window is speech (0.5,
    its default). ``min_silence``: a pause shorter than this does not end a stretch of
    speech (0.5 s: word gaps and stop closures stay inside; pauses between phrases and
    sentences are cut). ``padding``: audio kept on each side of every stretch of speech
    (0.2 s: the quiet ends of words that the VAD's 32 ms windows miss, and a little
    silence for the model to end and begin words in); a pause shorter than twice the
    padding is kept whole. Stretches shorter than ``MIN_SPEECH`` (0.1 s) are clicks, not
    words, and are dropped.
    """

    threshold: float = 0.5
    min_silence: float = 0.5
    padding: float = 0.2

    MIN_SPEECH = 0.1

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ConfigError("VAD threshold must be between 0 and 1")
        if self.min_silence < 0 or self.padding < 0:
            raise ConfigError("VAD minimum silence and padding must not be negative")


@dataclass(frozen=True)
class DecodeOptions:
    """Decoder choice and beam-search settings.

    ``decoder="auto"`` is beam search when an LM is given or the model ships one
    (``language_model/``), else greedy. Beam defaults follow pyctcdecode's. ``engine``
    runs the search: ``auto`` is ``$W2V2_BEAM_ENGINE`` when set, else ctc-beam-decoder where
    it is installed, else pyctcdecode (see ``decoding.beam_engines``).
    """

    decoder: str = "auto"  # auto | greedy | beam
    lm: Path | None = None
    unigrams: Path | None = None
    beam_width: int = 100
    alpha: float | None = None  # None: the model's language_model/attrs.json, else 0.5
    beta: float | None = None  # None: the model's language_model/attrs.json, else 1.0
    beam_prune_logp: float = -10.0
    token_min_logp: float = -5.0
    hotwords: tuple[str, ...] = ()
    hotword_weight: float = 10.0
    workers: int | None = None  # None: the number of CPU cores
    engine: str = "auto"  # auto | ctc-beam-decoder | pyctcdecode

    def __post_init__(self) -> None:
        if self.decoder not in DECODERS:
            raise ConfigError(f"decoder must be {', '.join(DECODERS)}, not {self.decoder!r}")
        if self.engine not in BEAM_ENGINES:
            raise ConfigError(
                f"beam search engine must be {', '.join(BEAM_ENGINES)}, not {self.engine!r}"
            )
        if self.beam_width < 1:
            raise ConfigError("beam width must be at least 1")
        if self.workers is not None and self.workers < 0:
            raise ConfigError("decode workers must not be negative")


@dataclass(frozen=True)
class SubtitleOptions:
    """Cue segmentation limits for SRT/VTT (see ``output/segmenter.py``).

    42 characters and 2 lines are the common broadcast limits (BBC, Netflix style guides);
    6 s keeps a cue readable; a pause of 0.8 s or more between words starts a new cue.
    """

    max_line_chars: int = 42
    max_lines: int = 2
    max_cue_duration: float = 6.0
    pause: float = 0.8
    min_cue_duration: float = 0.7

    def __post_init__(self) -> None:
        if self.max_line_chars < 1 or self.max_lines < 1:
            raise ConfigError("max line chars and max lines must be at least 1")
        if self.max_cue_duration <= 0 or self.pause <= 0 or self.min_cue_duration < 0:
            raise ConfigError("cue durations and pause must be positive")


@dataclass(frozen=True)
class OutputOptions:
    """Where and how results are written.

    ``output_dir=None`` writes each result next to its input file (what media players
    expect for subtitles); a folder mirrors the input tree under it. ``stdout=True`` writes
    results to standard output instead of files.
    """

    output_dir: Path | None = None
    formats: tuple[str, ...] = ("txt", "json")
    overwrite: bool = False
    stdout: bool = False
    case: str = "keep"  # keep | lower | sentence
    subtitles: SubtitleOptions = field(default_factory=SubtitleOptions)

    def __post_init__(self) -> None:
        for f in self.formats:
            if f not in FORMATS:
                raise ConfigError(f"unknown format {f!r}; choose from {', '.join(FORMATS)} or all")
        if not self.formats:
            raise ConfigError("at least one output format is needed")
        if self.case not in CASE_MODES:
            raise ConfigError(f"case must be {', '.join(CASE_MODES)}, not {self.case!r}")


@dataclass(frozen=True)
class AlignOptions:
    """Forced alignment (``w2v2 align``, ``alignment/``).

    ``min_score``: a file whose match score (``alignment/aligner.py``: the likelihood the
    given text keeps against what the model hears unconstrained, per letter) is below this
    fails as "the text does not match the audio" instead of being aligned silently. On
    the small trained test model, 12 espeak-ng sentences scored 0.54-0.95 with their own
    text, 0.0014-0.08 with half of the text replaced, and at most 0.007 with another
    sentence's text (docs/alignment.md); 0.05 lies between, in log terms well away
    from both.
    """

    min_score: float = 0.05

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_score <= 1.0:
            raise ConfigError("min score must be between 0 and 1")


@dataclass(frozen=True)
class RunOptions:
    """Everything one transcription run needs besides its inputs."""

    model: ModelOptions = field(default_factory=ModelOptions)
    chunking: ChunkOptions = field(default_factory=ChunkOptions)
    decoding: DecodeOptions = field(default_factory=DecodeOptions)
    output: OutputOptions = field(default_factory=OutputOptions)
    # Chunks per model call, at most. None: 8 on CUDA, where batching keeps the GPU busy,
    # and 1 on CPU, where one chunk at a time measured fastest (benchmarks/RESULTS.md).
    batch_size: int | None = None
    # Padding a chunk may bring into a batch, as a share of the batch's longest chunk. None:
    # 0 on CPU (there a batch is no faster than its items one by one, so padding is pure
    # loss) and 1 (no limit) on CUDA, where batching is the speed. Results never depend on it.
    max_padding: float | None = None
    # Speech-aware segmentation (--vad); None: fixed chunks over the whole file.
    vad: VadOptions | None = None
    # Processes that decode audio files ahead of the model (inference/readers.py). None: a
    # third of the cores from 4 cores on or on CUDA, else 0 (the engine's reading thread).
    read_workers: int | None = None

    def __post_init__(self) -> None:
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError("batch size must be at least 1")
        if self.max_padding is not None and not 0.0 <= self.max_padding <= 1.0:
            raise ConfigError("max padding must be between 0 and 1")
        if self.read_workers is not None and self.read_workers < 0:
            raise ConfigError("read workers must not be negative")

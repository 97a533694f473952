"""w2v2cli: batch speech transcription and subtitles with wav2vec 2.0-style CTC models.

The library behind the ``w2v2`` command. A script can do what the CLI does::

    from w2v2cli import RunOptions, ModelOptions, Transcriber, discover, run

    items = discover(["talks/"], output_dir=Path("out")).items
    summary = run(items, RunOptions(model=ModelOptions("facebook/wav2vec2-base-960h")))

or transcribe in memory::

    with Transcriber() as t:
        print(t.transcribe_file("talk.mp3").text)

Heavy imports (torch, transformers) happen when a model is loaded, not at import.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .audio import load_audio, stream_audio
from .discovery import discover
from .errors import (
    AlignmentError,
    AudioError,
    ConfigError,
    DecodeError,
    LMError,
    LogitsError,
    ManifestError,
    ModelError,
    OutputError,
    ToolError,
    W2V2Error,
)
from .evaluation import evaluate, load_manifest
from .inference import Engine
from .options import (
    AlignOptions,
    ChunkOptions,
    DecodeOptions,
    ModelOptions,
    OutputOptions,
    RunOptions,
    SubtitleOptions,
    VadOptions,
)
from .pipeline import Aligner, RunSummary, Transcriber
from .records import AudioItem, Chunk, Cue, Emissions, FileResult, Transcript, Vocabulary, Word

# Last: the function ``run`` is bound over the submodule of the same name.
from .run import iter_run, run

try:
    __version__ = version("w2v2cli")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = [
    "AlignOptions",
    "Aligner",
    "AlignmentError",
    "AudioError",
    "AudioItem",
    "Chunk",
    "ChunkOptions",
    "ConfigError",
    "Cue",
    "DecodeError",
    "DecodeOptions",
    "Emissions",
    "Engine",
    "FileResult",
    "LMError",
    "LogitsError",
    "ManifestError",
    "ModelError",
    "ModelOptions",
    "OutputError",
    "OutputOptions",
    "RunOptions",
    "RunSummary",
    "SubtitleOptions",
    "ToolError",
    "Transcriber",
    "Transcript",
    "VadOptions",
    "Vocabulary",
    "W2V2Error",
    "Word",
    "discover",
    "evaluate",
    "iter_run",
    "load_audio",
    "load_manifest",
    "run",
    "stream_audio",
]

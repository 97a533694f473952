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
from typing import TYPE_CHECKING, Any

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
from .records import AudioItem, Chunk, Cue, Emissions, FileResult, Transcript, Vocabulary, Word

# Imported here, not lazily: the module shares its name with the function, and importing
# the submodule later would make ``w2v2cli.run`` the module. It is light (no torch).
from .run import RunSummary, Transcriber, iter_run, run

try:
    __version__ = version("w2v2cli")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

if TYPE_CHECKING:
    from .audio import load_audio, stream_audio
    from .discovery import discover
    from .evaluation import evaluate, load_manifest
    from .inference import Engine
    from .pipeline import Aligner

_LAZY = {
    "Aligner": "pipeline",
    "Engine": "inference",
    "discover": "discovery",
    "load_audio": "audio",
    "stream_audio": "audio",
    "evaluate": "evaluation",
    "load_manifest": "evaluation",
}


def __getattr__(name: str) -> Any:
    """Import the heavy parts (torch, transformers, PyAV) only when first used."""
    if name in _LAZY:
        import importlib

        module = importlib.import_module(f".{_LAZY[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module 'w2v2cli' has no attribute {name!r}")


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

"""Every exception the library raises on purpose; ``cli/errors.py`` maps them to messages
and exit statuses in one place.

Each class names a kind of fault, so a caller can tell "this input is bad" from "this run
cannot start". Messages are one line and name the file they are about when there is one.

=================  =====================================================  ============
class              raised when                                            CLI exit
=================  =====================================================  ============
``ConfigError``    options that contradict each other or cannot work      2
``OutputError``    an output path that cannot be written (checked early)  2
``ModelError``     the model cannot be loaded or used                     2
``ConversionError`` OpenVINO cannot convert the model (auto: use torch)    2
``ManifestError``  an eval manifest cannot be read                        2
``LogitsError``    saved log-probabilities cannot be read                 2 (per file)
``LMError``        a language model, its unigrams or attrs.json is bad    2
``ToolError``      KenLM's lmplz/build_binary is missing or failed        2
``AudioError``     one input cannot be decoded as audio                   1 (per file)
``DecodeError``    decoding one file's emissions failed                   1 (per file)
``AlignmentError`` a text cannot be aligned to its audio, or does not      1 (per file)
                   match it (``w2v2 align``)
``AlignmentImpossible`` forced alignment finds no path (more tokens than  (becomes an
                   frames): the aligner turns it into ``AlignmentError``  AlignmentError)
=================  =====================================================  ============

Per-file faults (audio, decoding, writing one output) fail that file: the run goes on and
ends with exit status 1. The others stop the command before (or instead of) any work.
"""

from __future__ import annotations

from pathlib import Path


class W2V2Error(Exception):
    """Base class for every error this package raises on purpose."""


class ConfigError(W2V2Error):
    """Options that contradict each other or cannot work (bad chunk or stride lengths...)."""


class OutputError(W2V2Error):
    """An output path that cannot be written: a folder that is a file, no permission..."""


class ModelError(W2V2Error):
    """The model or its processor cannot be loaded or used (missing, no CTC head, no tokenizer)."""


class ConversionError(ModelError):
    """A backend cannot convert this model (OpenVINO and an unsupported family): with
    ``--backend auto`` the run falls back to PyTorch."""


class PathError(W2V2Error):
    """An error about one file; ``path`` and ``reason`` are kept for reports and messages."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")

    def __reduce__(self) -> tuple[type, tuple[Path, str]]:
        # Errors cross process boundaries (decode workers): rebuild from both fields.
        return type(self), (self.path, self.reason)


class AudioError(PathError):
    """One input file cannot be read as audio. Carries the path so messages name it."""


class LogitsError(PathError):
    """Saved log-probabilities (``--save-logits``) that cannot be read."""


class LMError(PathError):
    """A language model file, its unigram list or its ``attrs.json`` cannot be used."""


class ManifestError(W2V2Error):
    """A manifest that cannot be read; the message names the file and, if known, the line.

    ``line`` is 1-based, or None for problems of the whole file or folder (not found, no
    entries, audio files without references).
    """

    def __init__(self, path: str | Path, line: int | None, reason: str) -> None:
        self.path = Path(path)
        self.line = line
        self.reason = reason
        where = f"{path}:{line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {reason}")

    def __reduce__(self) -> tuple[type, tuple[Path, int | None, str]]:
        return type(self), (self.path, self.line, self.reason)


class ToolError(W2V2Error):
    """An external tool (KenLM's lmplz or build_binary) is missing or failed."""


class DecodeError(W2V2Error):
    """Decoding one file's emissions failed (a beam-search worker died, a library error)."""


class AlignmentError(DecodeError):
    """``w2v2 align``: one file's text cannot be aligned to its audio (nothing in it can be
    spelled, more letters than frames) or does not match it (its score is below the
    minimum): that file fails."""


class AlignmentImpossible(W2V2Error, ValueError):
    """The tokens cannot be placed in the frames (more tokens than frames): raised by the
    forced-alignment search (``alignment/viterbi.py``), which knows no files; the aligner
    reports it as the file's ``AlignmentError``."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread (by the CLI's handler) so that it unwinds exactly
    like Ctrl-C: temporary files are removed, finished outputs kept, workers stopped."""


def reason_of(exc: BaseException) -> str:
    """The message without the path prefix for errors that carry one (for per-file lines
    that already name the file), else the whole message."""
    if isinstance(exc, PathError):
        return exc.reason
    return str(exc) or type(exc).__name__

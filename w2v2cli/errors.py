"""Exceptions raised by the library; the CLI turns them into one-line messages."""

from __future__ import annotations

from pathlib import Path


class W2V2Error(Exception):
    """Base class for every error this package raises on purpose."""


class ModelError(W2V2Error):
    """The model or its processor cannot be loaded or used (missing, no CTC head, no tokenizer)."""


class AudioError(W2V2Error):
    """One input file cannot be read as audio. Carries the path so messages name it."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class ConfigError(W2V2Error):
    """Options that contradict each other or cannot work (bad chunk or stride lengths...)."""

"""``--manifest-out FILE.jsonl``: one JSON line per input as it finishes.

Each line is one JSON object::

    {"audio_filepath": "data/a.wav", "id": "a.wav", "status": "done", "duration": 12.3,
     "text": "...", "outputs": ["out/a.txt", "out/a.json"], "error": null, "shard": "1/4"}

``status`` is ``done``, ``skipped`` (every output already existed) or ``failed`` (then
``error`` says why, and ``text`` is null). The file is opened for appending and each line
goes out in one ``write`` call of the whole line, so lines from several processes never
interleave and a killed run leaves only whole lines. Use one file per shard on shared
(network) disks, whose appends are not atomic across machines; the files concatenate into
one manifest (``cat shard-*.jsonl``).

``audio_filepath`` is absolute (a manifest is read from anywhere); ``id`` is the input as
named. The keys are NeMo's (``audio_filepath``, ``text``, ``duration``), so ``w2v2 eval``
reads a run manifest as a reference: it scores another model or decoder against this
run's text (lines that are not ``done`` are left out; of a file done twice, by a rerun
with ``--overwrite``, the last line counts).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import OutputError
from ..records import FileResult


def manifest_record(result: FileResult, shard: str | None = None) -> dict[str, Any]:
    """The manifest line of one finished input, as a dict (pure)."""
    done = result.status == "done" and result.transcript is not None
    return {
        "audio_filepath": os.path.abspath(result.item.path),
        "id": result.item.id,
        "status": result.status,
        "duration": round(result.duration, 3) if result.status == "done" else None,
        "text": result.transcript.text if done and result.transcript else None,
        "outputs": [str(p) for p in result.outputs],
        "error": result.error,
        "shard": shard,
    }


def input_error_record(path: Path, reason: str, shard: str | None = None) -> dict[str, Any]:
    """The manifest line of an input that could not be used at all (a missing file)."""
    return {
        "audio_filepath": os.path.abspath(path),
        "id": str(path),
        "status": "failed",
        "duration": None,
        "text": None,
        "outputs": [],
        "error": reason,
        "shard": shard,
    }


class RunManifest:
    """Appends whole JSON lines to ``path`` (created if missing, never truncated)."""

    def __init__(self, path: str | Path, shard: str | None = None) -> None:
        self.path = Path(path)
        self.shard = shard
        try:
            if self.path.parent != Path():
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        except OSError as exc:
            raise OutputError(
                f"cannot open the run manifest {self.path}: {exc.strerror or exc}"
            ) from None

    def add(self, result: FileResult) -> None:
        """Append ``result``'s line."""
        self._append(manifest_record(result, self.shard))

    def add_input_error(self, path: Path, reason: str) -> None:
        """Append the line of an input that could not be used."""
        self._append(input_error_record(path, reason, self.shard))

    def _append(self, record: dict[str, Any]) -> None:
        if self._fd is None:
            raise OutputError(f"the run manifest {self.path} is closed")
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8", "surrogateescape")
        try:
            written = os.write(self._fd, line)  # O_APPEND: one write, one whole line
        except OSError as exc:
            raise OutputError(
                f"cannot write the run manifest {self.path}: {exc.strerror or exc}"
            ) from None
        if written != len(line):  # a full disk: the rest would land after another's line
            raise OutputError(f"cannot write the run manifest {self.path}: disk full")

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunManifest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

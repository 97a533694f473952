"""The one place that draws progress. Silent mode is a null object with the same methods."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text


def format_seconds(seconds: float) -> str:
    """``H:MM:SS`` for audio durations in messages and the summary."""
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}"


class NullProgress:
    """Does nothing; used with ``--quiet`` and by library callers who want no output."""

    def start(self, files: int, audio_seconds: float | None) -> None:
        pass

    def advance_audio(self, seconds: float) -> None:
        pass

    def file_done(self) -> None:
        pass

    def message(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


class _AudioColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        done = format_seconds(task.completed)
        total = format_seconds(task.total) if task.total else "?"
        return Text(f"{done} / {total} audio", style="progress.download")


class _SpeedColumn(ProgressColumn):
    def __init__(self, started: float) -> None:
        super().__init__()
        self.started = started

    def render(self, task: Task) -> Text:
        wall = time.perf_counter() - self.started
        if wall <= 0 or not task.completed:
            return Text("-- x RT", style="progress.data.speed")
        return Text(f"{task.completed / wall:.1f} x RT", style="progress.data.speed")


class _FilesColumn(ProgressColumn):
    def __init__(self) -> None:
        super().__init__()
        self.done = 0
        self.total = 0

    def render(self, task: Task) -> Text:
        return Text(f"{self.done}/{self.total} files")


class RichProgress:
    """A rich progress bar on stderr: files, audio time done, speed as x real time, ETA."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.console = Console(file=stream or sys.stderr)
        self.started = time.perf_counter()
        self._files = _FilesColumn()
        self._progress = Progress(
            TextColumn("[bold]transcribing"),
            BarColumn(),
            self._files,
            _AudioColumn(),
            _SpeedColumn(self.started),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self._task = None

    def start(self, files: int, audio_seconds: float | None) -> None:
        self.started = time.perf_counter()
        self._files.total = files
        self._task = self._progress.add_task("run", total=audio_seconds or None)
        self._progress.start()

    def advance_audio(self, seconds: float) -> None:
        if self._task is not None:
            self._progress.advance(self._task, seconds)

    def file_done(self) -> None:
        self._files.done += 1
        if self._task is not None:
            self._progress.refresh()

    def message(self, text: str) -> None:
        self._progress.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def close(self) -> None:
        if self._task is not None:  # stopping a bar that never started prints a blank line
            self._progress.stop()

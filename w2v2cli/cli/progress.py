"""The one place that draws progress: a rich bar on stderr, implementing ``pipeline.Progress``
(``pipeline.NullProgress`` is the silent one)."""

from __future__ import annotations

import time

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

from .render import format_seconds


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
    """A rich progress bar on stderr: files, audio time done, speed as x real time, ETA.

    Give it the ``Console.err`` that error lines are printed on, so they appear above the
    bar. A context manager: leaving it (normally or by an exception) stops the bar.
    """

    def __init__(self, console: Console, label: str = "transcribing") -> None:
        self.console = console
        self.started = time.perf_counter()
        self._files = _FilesColumn()
        self._progress = Progress(
            TextColumn(f"[bold]{label}"),
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

    def close(self) -> None:
        if self._task is not None:  # stopping a bar that never started prints a blank line
            self._progress.stop()
            self._task = None

    def __enter__(self) -> RichProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

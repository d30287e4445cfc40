"""Progress reporting for long work: rich bars on a terminal, silence in tests and services."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from rich.progress import TaskID


class Progress(Protocol):
    def start(self, task: str, total: int) -> None: ...
    def advance(self, task: str, n: int = 1) -> None: ...
    def log(self, message: str) -> None: ...


class NullProgress:
    def start(self, task: str, total: int) -> None:
        pass

    def advance(self, task: str, n: int = 1) -> None:
        pass

    def log(self, message: str) -> None:
        pass


class RichProgress:
    """Bars on stderr; use as a context manager."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as _P

        self.console = Console(stderr=True)
        self._progress = _P(
            TextColumn("{task.description:<10}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> RichProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def start(self, task: str, total: int) -> None:
        self._tasks[task] = self._progress.add_task(task, total=total)

    def advance(self, task: str, n: int = 1) -> None:
        if task in self._tasks:
            self._progress.advance(self._tasks[task], n)

    def log(self, message: str) -> None:
        self._progress.console.print(message, highlight=False)

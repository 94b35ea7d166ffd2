"""How a running benchmark shows its progress on stderr.

- stderr is a terminal: a ``rich`` progress bar, the latest progress line as its text, how much
  of the current phase is done where the benchmark counts it (:class:`Bar`), and the time
  since the start; it disappears when the run ends, before the results are printed;
- otherwise the progress lines themselves, one per line, unless the output is one JSON
  object (``--json``): then nothing, so a log of stderr holds only what went wrong.

stdout is never written to here: its last line stays the result.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TaskProgressColumn, TextColumn, TimeElapsedColumn

from corral.bench.common import Say


class Bar:
    """Progress lines and counts shown on one ``rich`` progress bar (a :class:`~corral.bench.common.Counting`)."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._task: TaskID = progress.add_task("starting", total=None)

    def __call__(self, message: str) -> None:
        self._progress.update(self._task, description=message.strip())

    def count(self, done: float, total: float) -> None:
        self._progress.update(self._task, completed=done, total=total)


class Lines:
    """Progress lines, one per line, on ``console``."""

    def __init__(self, console: Console) -> None:
        self._console = console

    def __call__(self, message: str) -> None:
        self._console.out(message, highlight=False)


def bar(console: Console) -> Progress:
    """The progress bar of a benchmark, on ``console``, gone once it stops."""
    return Progress(SpinnerColumn(), TextColumn("{task.description}", markup=False), BarColumn(),
                    TaskProgressColumn(), TimeElapsedColumn(), console=console, transient=True)


@contextlib.contextmanager
def shown(as_json: bool, console: Console | None = None) -> Iterator[Say | None]:
    """The progress reporter of one run (see the module's docstring); ``console`` is stderr's
    unless given."""
    console = console or Console(stderr=True)
    if console.is_terminal:
        with bar(console) as progress:
            yield Bar(progress)
    elif as_json:
        yield None
    else:
        yield Lines(console)

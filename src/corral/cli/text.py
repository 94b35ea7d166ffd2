"""How the ``corral`` command writes: counts with their nouns, help without type tags on
flags, and a status line on a terminal while something slow runs."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

C = TypeVar("C")
IRREGULAR = {"VM": "VMs", "copy": "copies"}


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``1 pool``, ``2 pools``, ``0 pools``."""
    if n == 1:
        return f"{n} {noun}"
    return f"{n} {plural or IRREGULAR.get(noun) or noun + 's'}"


def plain_flags(command: C) -> C:
    """Show no value type beside a flag (``--json``, ``--help``) in help: a flag takes no value.

    The command's tree is walked once: every flag option of every command, the help options
    included, gets an empty metavar, which is what the help shows in the type column.
    """
    import typer

    cmd: Any = command
    for param in cmd.get_params(typer.Context(cmd)):
        if getattr(param, "is_flag", False):
            param.metavar = ""
    for sub in getattr(cmd, "commands", {}).values():
        plain_flags(sub)
    return command


def is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def err_console() -> Console:
    from rich.console import Console

    return Console(stderr=True)


def cell(value: object) -> Text:
    """A table cell shown as given (no rich markup read from server text)."""
    from rich.text import Text

    return Text("" if value is None else str(value))


@contextmanager
def slow_status(message: str, *, after: float = 1.0, stream: TextIO | None = None) -> Iterator[None]:
    """A spinner with ``message`` on standard error once the block has run ``after`` seconds,
    gone when it ends; nothing at all when standard error is not a terminal."""
    out = stream if stream is not None else sys.stderr
    if not is_terminal(out):
        yield
        return
    from rich.console import Console

    status = Console(file=out).status(message)
    lock = threading.Lock()
    shown = False
    ended = False

    def show() -> None:
        nonlocal shown
        with lock:
            if not ended:
                status.start()
                shown = True

    timer = threading.Timer(after, show)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        with lock:
            ended = True
            if shown:
                status.stop()

"""Adding result rows to the tables of ``docs/benchmarks.md``."""

from __future__ import annotations

from pathlib import Path


def append_row(path: Path, header: str, row: str, intro: str = "") -> None:
    """Add ``row`` after the last row of the table that starts with ``header``.

    Without such a table in ``path``, ``intro`` (a section heading and its text) and the
    table are added at the end of the file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    text = path.read_text() if path.exists() else ""
    if header in text:
        head, tail = text.split(header, 1)
        rest = tail.splitlines(keepends=True)
        rows = []
        while rest and rest[0].startswith("|"):
            rows.append(rest.pop(0))
        path.write_text(head + header + "".join(rows) + row + "".join(rest))
        return
    if text and not text.endswith("\n\n"):
        text += "\n" if text.endswith("\n") else "\n\n"
    path.write_text(text + intro + header + row)

"""The project and its tests read nothing outside the repository: what a test needs is copied
into tests/fixtures/."""

from __future__ import annotations

import re
from pathlib import Path

from helpers import REPO

# "../shared", "shared/reference", and the same path built by parts ("shared" / "reference").
FORBIDDEN = re.compile(r"\.\./shared|shared\W{0,8}reference")
SEARCHED = ("src", "tests", "scripts", "Makefile", ".ci")


def files_under(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    return [p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts]


def test_nothing_reads_the_shared_reference_directory():
    this = Path(__file__).resolve()
    found = []
    for name in SEARCHED:
        for path in files_under(REPO / name):
            if path.resolve() == this:
                continue
            text = path.read_bytes().decode("utf-8", errors="replace")
            found += [f"{path.relative_to(REPO)}: {m.group()}" for m in FORBIDDEN.finditer(text)]
    assert found == [], found

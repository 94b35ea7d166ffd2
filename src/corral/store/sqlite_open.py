"""Why a sqlite store could not be opened, said once and in the file system's terms.

sqlite reports a store it may not write as "unable to open database file" or "attempt to
write a readonly database", which names neither the directory nor the cause. When the file
system explains such an error (a read-only mount, a directory or file this user may not
write), that explanation is the reason given instead.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from corral.store.base import StoreError

# sqlite's primary result codes for a file it cannot open or cannot write.
_CANNOT_WRITE = (sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_PERM)


class StoreOpenError(StoreError):
    """The store at ``path`` cannot be opened, for ``reason`` (which does not repeat the path)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"cannot open the sqlite store {path!r}: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True, slots=True)
class PathAccess:
    """What the file system says about a store's file and its directory."""

    directory: str
    directory_exists: bool
    directory_writable: bool
    read_only_fs: bool  # the directory, or the nearest one that exists, is on a read-only mount
    file_exists: bool
    file_readable: bool
    file_writable: bool

    @classmethod
    def of(cls, path: str) -> PathAccess:
        file = Path(path)
        directory = file.parent
        existing = next((d for d in (directory, *directory.parents) if d.is_dir()), Path("/"))
        try:
            read_only_fs = bool(os.statvfs(existing).f_flag & os.ST_RDONLY)
        except OSError:
            read_only_fs = False
        return cls(directory=str(directory), directory_exists=directory.is_dir(),
                   directory_writable=os.access(directory, os.W_OK | os.X_OK), read_only_fs=read_only_fs,
                   file_exists=file.exists(), file_readable=os.access(file, os.R_OK),
                   file_writable=os.access(file, os.W_OK))


def open_problem(error: str, code: int | None, access: PathAccess) -> str:
    """The reason a store could not be opened: the file system's cause when it explains an
    error of writing or opening (``code``, sqlite's result code), else sqlite's ``error``."""
    if code is None or code & 0xFF not in _CANNOT_WRITE:
        return error
    if access.read_only_fs:
        return f"the directory {access.directory!r} is on a read-only file system"
    if access.directory_exists and not access.directory_writable:
        return f"the directory {access.directory!r} is read-only for this user"
    if access.file_exists and not access.file_readable:
        return "the file may not be read by this user"
    if access.file_exists and not access.file_writable:
        return "the file is read-only for this user"
    return error


def directory_problem(directory: str, exc: OSError) -> str:
    """The reason the store's directory could not be made."""
    text = exc.strerror or str(exc)
    return f"cannot create the directory {directory!r}: {text[:1].lower()}{text[1:]}"

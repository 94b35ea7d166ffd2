"""Why a sqlite store could not be opened: the file system's cause when it has one."""

from __future__ import annotations

import sqlite3
from dataclasses import replace

import pytest

from corral.store.sqlite_open import PathAccess, open_problem

FINE = PathAccess(directory="/var/corral", directory_exists=True, directory_writable=True, read_only_fs=False,
                  file_exists=True, file_readable=True, file_writable=True)
CANTOPEN, READONLY, NOTADB = sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_NOTADB


@pytest.mark.parametrize(("error", "code", "access", "reason"), [
    ("unable to open database file", CANTOPEN, replace(FINE, read_only_fs=True),
     "the directory '/var/corral' is on a read-only file system"),
    ("attempt to write a readonly database", READONLY, replace(FINE, read_only_fs=True),
     "the directory '/var/corral' is on a read-only file system"),
    ("unable to open database file", CANTOPEN | (2 << 8), replace(FINE, directory_writable=False),
     "the directory '/var/corral' is read-only for this user"),
    ("unable to open database file", CANTOPEN, replace(FINE, file_readable=False, file_writable=False),
     "the file may not be read by this user"),
    ("attempt to write a readonly database", READONLY, replace(FINE, file_writable=False),
     "the file is read-only for this user"),
    # a directory that does not exist is not called read-only
    ("unable to open database file", CANTOPEN, replace(FINE, directory_exists=False, directory_writable=False,
                                                       file_exists=False),
     "unable to open database file"),
    # nothing on the file system explains it: sqlite's own words
    ("unable to open database file", CANTOPEN, FINE, "unable to open database file"),
    # not an error of writing: the file system is not blamed
    ("file is not a database", NOTADB, replace(FINE, read_only_fs=True), "file is not a database"),
    ("unable to open database file", None, replace(FINE, read_only_fs=True), "unable to open database file"),
])
def test_open_problem(error: str, code: int | None, access: PathAccess, reason: str) -> None:
    assert open_problem(error, code, access) == reason

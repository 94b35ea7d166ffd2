"""Persistence of the simulated VMs in a small sqlite file.

Each mutating provider call commits before it returns, so a new simulator opened on the
same file (after the process was killed, even with ``kill -9``) finds the same VMs. Host
state (up/down) is a test hook and is not kept.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import astuple, fields

from corral.providers.sim.world import SimVm

_COLUMNS = [f.name for f in fields(SimVm)]
_SCHEMA = """
CREATE TABLE IF NOT EXISTS sim_vms (
    name TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pool TEXT,
    template TEXT,
    cpus INTEGER NOT NULL,
    memory_mb INTEGER NOT NULL,
    ip TEXT NOT NULL,
    created_at REAL NOT NULL,
    powered_on INTEGER NOT NULL,
    guest_ready INTEGER NOT NULL,
    boot_deadline REAL
)
"""


class SimStateFile:
    """The VMs of one simulated world, one row each."""

    def __init__(self, path: str) -> None:
        self._db = sqlite3.connect(path)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # a committed write survives a killed process
        with self._db:
            self._db.execute(_SCHEMA)

    def load(self) -> list[SimVm]:
        rows = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM sim_vms ORDER BY created_at, name")
        vms = [SimVm(*row) for row in rows]
        for vm in vms:
            vm.powered_on = bool(vm.powered_on)
            vm.guest_ready = bool(vm.guest_ready)
        return vms

    def save(self, vms: Iterable[SimVm]) -> None:
        """Insert or replace these VMs in one transaction."""
        placeholders = ", ".join("?" * len(_COLUMNS))
        with self._db:
            self._db.executemany(
                f"INSERT OR REPLACE INTO sim_vms ({', '.join(_COLUMNS)}) VALUES ({placeholders})",
                [astuple(vm) for vm in vms],
            )

    def delete(self, name: str) -> None:
        with self._db:
            self._db.execute("DELETE FROM sim_vms WHERE name = ?", (name,))

    def close(self) -> None:
        self._db.close()

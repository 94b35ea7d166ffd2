"""Persistence of the simulated VMs in a small sqlite file.

Each mutating provider call commits before it returns, so a new simulator opened on the
same file (after the process was killed, even with ``kill -9``) finds the same VMs, with
their disks and snapshots. Host state (up/down) is a test hook and is not kept.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import fields

from corral.providers.sim.world import SimSnapshot, SimVm

_STORAGE = ("disks", "snapshots")  # kept as JSON in sim_vm_storage, one row per VM
_COLUMNS = [f.name for f in fields(SimVm) if f.name not in _STORAGE]
_SCHEMA = [
    """
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
    """,
    # a table of its own, so that state files written before disks and snapshots still open
    """
    CREATE TABLE IF NOT EXISTS sim_vm_storage (
        name TEXT PRIMARY KEY,
        disks TEXT NOT NULL,
        snapshots TEXT NOT NULL
    )
    """,
]


def _storage_row(vm: SimVm) -> tuple[str, str, str]:
    snapshots = [
        [name, list(snap.disks), snap.powered_on, snap.guest_ready] for name, snap in vm.snapshots.items()
    ]
    return vm.name, json.dumps(vm.disks), json.dumps(snapshots)


def _load_storage(vm: SimVm, disks: str, snapshots: str) -> None:
    vm.disks = list(json.loads(disks))
    vm.snapshots = {
        name: SimSnapshot(disks=tuple(snap_disks), powered_on=on, guest_ready=ready)
        for name, snap_disks, on, ready in json.loads(snapshots)
    }


class SimStateFile:
    """The VMs of one simulated world, one row each."""

    def __init__(self, path: str) -> None:
        self._db = sqlite3.connect(path)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # a committed write survives a killed process
        with self._db:
            for statement in _SCHEMA:
                self._db.execute(statement)

    def load(self) -> list[SimVm]:
        rows = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM sim_vms ORDER BY created_at, name")
        vms = [SimVm(*row) for row in rows]
        for vm in vms:
            vm.powered_on = bool(vm.powered_on)
            vm.guest_ready = bool(vm.guest_ready)
        by_name = {vm.name: vm for vm in vms}
        for name, disks, snapshots in self._db.execute("SELECT name, disks, snapshots FROM sim_vm_storage"):
            if name in by_name:
                _load_storage(by_name[name], disks, snapshots)
        return vms

    def save(self, vms: Iterable[SimVm]) -> None:
        """Insert or replace these VMs in one transaction."""
        vms = list(vms)
        placeholders = ", ".join("?" * len(_COLUMNS))
        with self._db:
            self._db.executemany(
                f"INSERT OR REPLACE INTO sim_vms ({', '.join(_COLUMNS)}) VALUES ({placeholders})",
                [tuple(getattr(vm, column) for column in _COLUMNS) for vm in vms],
            )
            self._db.executemany(
                "INSERT OR REPLACE INTO sim_vm_storage (name, disks, snapshots) VALUES (?, ?, ?)",
                [_storage_row(vm) for vm in vms],
            )

    def delete(self, name: str) -> None:
        with self._db:
            self._db.execute("DELETE FROM sim_vms WHERE name = ?", (name,))
            self._db.execute("DELETE FROM sim_vm_storage WHERE name = ?", (name,))

    def close(self) -> None:
        self._db.close()

"""Work a user asks for on a checked-out VM: extra disks, snapshots, reverting to a snapshot.

Each is a provider call run in the background (the API answers 202 at once); the result is
written to the VM's record, where ``GET /vm/<hostname>`` shows it. Tasks on one VM run one
at a time, so two disks added together are both recorded.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import string
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from corral.domain.models import Vm
from corral.pools.ledger import Ledger
from corral.providers.base import Provider, ProviderError
from corral.store.base import Store

log = logging.getLogger("corral.vmtasks")

_ALPHABET = string.ascii_lowercase + string.digits


def new_snapshot_name() -> str:
    """32 random lowercase letters and digits, starting with a letter (as vmpooler's)."""
    return secrets.choice(string.ascii_lowercase) + "".join(secrets.choice(_ALPHABET) for _ in range(31))


class VmTasks:
    def __init__(self, store: Store, ledger: Ledger, providers: Mapping[str, Provider],
                 spawn: Callable[[Coroutine[Any, Any, object], str], None]) -> None:
        self.store = store
        self.ledger = ledger
        self.providers = providers
        self.spawn = spawn
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}  # tasks of a VM holding or waiting for its lock
        self.failures = 0

    def add_disk(self, name: str, size_gb: int) -> None:
        self._run(name, "disk", self._add_disk(name, size_gb))

    def snapshot(self, name: str) -> str:
        snapshot = new_snapshot_name()
        self._run(name, "snapshot", self._snapshot(name, snapshot))
        return snapshot

    def revert(self, name: str, snapshot: str) -> None:
        self._run(name, "revert", self._revert(name, snapshot))

    def _run(self, name: str, kind: str, coro: Coroutine[Any, Any, None]) -> None:
        self.spawn(self._locked(name, kind, coro), f"{kind}-{name}")

    async def _locked(self, name: str, kind: str, coro: Coroutine[Any, Any, None]) -> None:
        lock = self._locks.setdefault(name, asyncio.Lock())
        self._users[name] = self._users.get(name, 0) + 1
        try:
            async with lock:
                await coro
        except ProviderError as exc:
            self.failures += 1
            log.warning(f"{kind} task failed", extra={"vm": name, "error": str(exc)})
        finally:
            self._users[name] -= 1
            if not self._users[name]:  # no other task of this VM holds or waits for the lock
                del self._users[name]
                self._locks.pop(name, None)

    def _provider(self, name: str) -> tuple[Vm, Provider]:
        vm = self.store.get_vm(name)
        if vm is None:
            raise ProviderError(f"VM {name!r} is not recorded", retryable=False)
        return vm, self.providers[vm.provider]

    async def _add_disk(self, name: str, size_gb: int) -> None:
        vm, provider = self._provider(name)
        await provider.add_disk(name, size_gb)
        current = self.store.get_vm(name)
        if current is not None:
            self.ledger.update(name, disks=[*current.disks, f"+{size_gb}gb"])
        log.info("disk added", extra={"vm": name, "pool": vm.pool, "size_gb": size_gb})

    async def _snapshot(self, name: str, snapshot: str) -> None:
        vm, provider = self._provider(name)
        await provider.create_snapshot(name, snapshot)
        current = self.store.get_vm(name)
        if current is not None:
            self.ledger.update(name, snapshots=[*current.snapshots, snapshot])
        log.info("snapshot taken", extra={"vm": name, "pool": vm.pool, "snapshot": snapshot})

    async def _revert(self, name: str, snapshot: str) -> None:
        vm, provider = self._provider(name)
        await provider.revert_snapshot(name, snapshot)
        log.info("reverted to snapshot", extra={"vm": name, "pool": vm.pool, "snapshot": snapshot})

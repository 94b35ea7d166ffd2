"""Work that store tests run in other threads and processes.

Importable (the "spawn" start method pickles these functions by reference) and runnable as
a script: ``python _workers.py churn DB`` loops state moves on a sqlite store until killed.
It imports only the standard library and corral.
"""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

from corral.domain.models import Vm
from corral.domain.states import VmState

BARRIER_TIMEOUT_S = 60.0


def checkout_until_empty(store: Any, pool: str, label: str, barrier: Any) -> list[str]:
    """Wait for every other worker, then check out of ``pool`` until it is empty.

    Each VM is checked out with ``token=label`` so the test can tell who got it.
    """
    taken: list[str] = []
    barrier.wait(BARRIER_TIMEOUT_S)
    while (vm := store.checkout(pool, now=time.time(), lifetime_s=60.0, token=label)) is not None:
        if vm.state is not VmState.RUNNING or vm.token != label:
            raise AssertionError(f"checkout returned {vm!r} to {label}")
        taken.append(vm.name)
    return taken


def checkout_process(
    store_factory: Callable[[], Any], pool: str, label: str, barrier: Any, results: Any
) -> None:
    """A child process: open its own store handle, then :func:`checkout_until_empty`.

    Puts ``(label, names)`` on ``results``, or ``(label, traceback text)`` on failure.
    """
    try:
        store = store_factory()
        try:
            results.put((label, checkout_until_empty(store, pool, label, barrier)))
        finally:
            store.close()
    except BaseException:  # report it to the parent; it would otherwise wait for a result
        barrier.abort()
        results.put((label, traceback.format_exc()))


# -- churn: a process that moves VMs through their lifecycle until it is killed ----------

CHURN_POOLS = ("churn-a", "churn-b")
CHURN_VMS = tuple(f"churn-{i:02d}" for i in range(40))


def churn_vm(name: str, step: int) -> Vm:
    return Vm(
        name=name,
        pool=CHURN_POOLS[int(name[-2:]) % len(CHURN_POOLS)],
        template="tpl",
        created_at=float(step),
        reason=f"step {step}",
    )


def churn(path: str) -> None:
    """Move the churn VMs round their lifecycle forever; print each step once committed."""
    from corral.store.sqlite import SqliteStore

    store = SqliteStore(path)
    for name in CHURN_VMS:
        if store.get_vm(name) is None:
            store.add_vm(churn_vm(name, 0))
    step = max(int(vm.reason.split()[1]) for vm in store.list_vms() if vm.reason) + 1
    while True:
        name = CHURN_VMS[step % len(CHURN_VMS)]
        vm = store.get_vm(name)
        assert vm is not None
        mark: dict[str, Any] = {"reason": f"step {step}"}
        now = float(step)
        if vm.state is VmState.PENDING:
            store.transition(name, [vm.state], VmState.READY, ready_at=now, ip="10.0.0.1", **mark)
        elif vm.state is VmState.READY:
            store.transition(
                name, [vm.state], VmState.RUNNING, checkout_at=now, lifetime_s=60.0,
                token="churn", **mark,
            )
        elif vm.state in (VmState.RUNNING, VmState.MIGRATING):
            store.transition(name, [vm.state], VmState.COMPLETED, completed_at=now, **mark)
        elif vm.state is VmState.COMPLETED:
            store.transition(name, [vm.state], VmState.DESTROYED, destroyed_at=now, **mark)
        else:
            store.add_vm(churn_vm(name, step))
        if step % 5 == 0:  # a multi-statement transaction to be killed in, now and then
            store.checkout_many(
                [(CHURN_POOLS[0], 1), (CHURN_POOLS[1], 1)], now=now,
                lifetimes=dict.fromkeys(CHURN_POOLS, 30.0), token="churn-many",
            )
        print(step, flush=True)
        step += 1


if __name__ == "__main__":
    if sys.argv[1:2] == ["churn"] and len(sys.argv) == 3:
        churn(sys.argv[2])
    else:
        sys.exit("usage: _workers.py churn DB")

"""On-demand requests: VMs built for one request instead of taken from a pool's stock.

A request names pools (or aliases) and counts. Its VMs are created by the pool manager's
ordinary clone path, tagged with the request id; the store keeps them out of the pools'
stock (they are never counted as a pool's ready VMs and never checked out by others). When
one becomes ready it is handed to the requester at once (ready -> running). The request is
``ready`` when every VM it asked for is running, ``failed`` when ``ondemand_request_ttl``
passed first (its VMs are then destroyed), and ``deleted`` when its owner deletes it.

Nothing here is kept only in memory: what a request still needs is worked out from the
store each time, so a restart picks up where the last run stopped.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from corral.domain.models import OndemandRequest, Pool, RequestStatus, Vm
from corral.domain.states import LIVE_STATES, VmState
from corral.pools.ledger import Ledger
from corral.runner import Priority, QueueFull, Runner, Work
from corral.store.base import Store

log = logging.getLogger("corral.ondemand")

ENDED = (RequestStatus.FAILED, RequestStatus.DELETED)
HANDED_OUT = (VmState.RUNNING, VmState.MIGRATING)


def needed(request: OndemandRequest) -> Counter[str]:
    """VMs the request asks for, per pool (two labels may name one pool)."""
    need: Counter[str] = Counter()
    for line in request.requested:
        need[line.pool] += line.count
    return need


class OndemandQueue:
    """``inflight`` holds the names of on-demand VMs queued in the runner or being created (shared
    with the runner's client, which forgets them when their call is over); ``create`` builds the
    works of new VMs; ``backing_off`` says whether a pool's clones wait; ``wake`` asks the refill
    loop (which fills requests too) for a round."""

    def __init__(self, pools: Mapping[str, Pool], store: Store, ledger: Ledger, runner: Runner, *,
                 inflight: set[str], create: Callable[[list[tuple[str, str | None]], Priority], list[Work]],
                 backing_off: Callable[[str], bool], wake: Callable[[], None],
                 spawn: Callable[[Coroutine[Any, Any, object], str], None], clone_limit: int = 10,
                 ttl_s: float = 300.0, lifetime_auth_s: float | None = None) -> None:
        self.pools = pools
        self.store = store
        self.ledger = ledger
        self.runner = runner
        self.inflight = inflight
        self.create = create
        self.backing_off = backing_off
        self.wake = wake
        self.spawn = spawn
        self.clone_limit = clone_limit
        self.ttl_s = ttl_s
        self.lifetime_auth_s = lifetime_auth_s

    # -- the API side ------------------------------------------------------------------------
    def submit(self, request: OndemandRequest) -> bool:
        """Record a request and start building it; False if its id is taken.

        Raises :class:`~corral.runner.QueueFull` (nothing recorded) when the runner has no room
        for its VMs.
        """
        self.runner.check_room(sum(line.count for line in request.requested))
        if not self.store.add_request(request):
            return False
        log.info("on-demand request", extra={"request": request.id, "user": request.user,
                                             "pools": ",".join(f"{r.pool}:{r.count}" for r in request.requested)})
        self.wake()
        return True

    def delete(self, request_id: str) -> OndemandRequest | None:
        """Mark a request deleted and destroy its VMs; None if there is no such request."""
        request = self.store.get_request(request_id)
        if request is None:
            return None
        if request.status != RequestStatus.DELETED:
            self.store.set_request_status(request_id, (request.status,), RequestStatus.DELETED, self.ledger.clock())
        self._destroy_vms(request_id, "on-demand request deleted")
        return request

    def assignments(self, request: OndemandRequest) -> dict[str, list[Vm]]:
        """The request's handed-out VMs grouped by the label they were asked for."""
        running: dict[str, list[Vm]] = {}
        for vm in self.store.request_vms(request.id):
            if vm.state in HANDED_OUT:
                running.setdefault(vm.pool, []).append(vm)
        result: dict[str, list[Vm]] = {}
        for line in request.requested:
            taken, running[line.pool] = running.get(line.pool, [])[:line.count], running.get(line.pool, [])[line.count:]
            result.setdefault(line.label, []).extend(taken)
        return result

    # -- the manager side -------------------------------------------------------------------
    def fill(self) -> None:
        """Start clones for what pending requests still lack, within ``ondemand_clone_limit``."""
        # the runner's room too: what it would refuse is asked for again on the next round
        slots = min(self.clone_limit - len(self.inflight), self.runner.room(Priority.ONDEMAND))
        if slots <= 0:
            return
        wanted: list[tuple[str, str]] = []
        for request in self.store.list_requests((RequestStatus.PENDING,)):
            have = Counter(vm.pool for vm in self.store.request_vms(request.id) if vm.state in LIVE_STATES)
            have.update(w.spec.pool for w in self.runner.new_for_request(request.id))
            for pool, count in needed(request).items():
                if pool not in self.pools or self.backing_off(pool):
                    continue
                for _ in range(max(count - have[pool], 0)):
                    if slots == 0:
                        return self._start(wanted)
                    wanted.append((pool, request.id))
                    slots -= 1
        self._start(wanted)

    def _start(self, wanted: list[tuple[str, str]]) -> None:
        if wanted:
            self.clone_for_requests(wanted)

    def clone_for_requests(self, wanted: list[tuple[str, str]]) -> None:
        """Queue clones of (pool, on-demand request id) in the runner, above pool refills."""
        works = self.create(list(wanted), Priority.ONDEMAND)
        try:
            self.runner.submit(works)
        except QueueFull as exc:
            log.warning("on-demand clones wait: %s", exc)
            return
        self.inflight.update(w.name for w in works)

    def vm_ready(self, vm: Vm) -> None:
        """A VM of a request is up: hand it to the requester, or destroy it if the request ended."""
        assert vm.request_id is not None
        request = self.store.get_request(vm.request_id)
        if request is None or request.status != RequestStatus.PENDING:
            self.spawn(self.ledger.destroy(vm, reason="on-demand request ended"), f"destroy-{vm.name}")
            return
        pool = self.pools.get(vm.pool)
        lifetime = self.lifetime_auth_s if request.token and self.lifetime_auth_s else (
            pool.lifetime_s if pool else 24 * 3600.0)
        moved = self.ledger.move(vm.name, (VmState.READY,), VmState.RUNNING, checkout_at=self.ledger.clock(),
                                 lifetime_s=lifetime, token=request.token, user=request.user)
        if moved is not None:
            log.info("on-demand VM handed out", extra={"request": request.id, "vm": vm.name, "pool": vm.pool})
        self._complete_if_done(request)

    def _complete_if_done(self, request: OndemandRequest) -> None:
        handed = Counter(vm.pool for vm in self.store.request_vms(request.id) if vm.state in HANDED_OUT)
        if all(handed[pool] >= count for pool, count in needed(request).items()):
            if self.store.set_request_status(request.id, (RequestStatus.PENDING,), RequestStatus.READY,
                                             self.ledger.clock()):
                log.info("on-demand request ready", extra={"request": request.id})

    def sweep(self, now: float) -> None:
        """Fail requests past their TTL; finish ones a crash left half-recorded; clean up ended ones."""
        for request in self.store.list_requests((RequestStatus.PENDING,)):
            if now - request.created_at > self.ttl_s:
                if self.store.set_request_status(request.id, (RequestStatus.PENDING,), RequestStatus.FAILED, now):
                    log.warning("on-demand request failed: not ready in time",
                                extra={"request": request.id, "ttl": self.ttl_s})
                    self._destroy_vms(request.id, "on-demand request failed")
            else:
                self._complete_if_done(request)
        for request in self.store.list_requests(ENDED):
            if any(vm.state in LIVE_STATES for vm in self.store.request_vms(request.id)):
                self._destroy_vms(request.id, f"on-demand request {request.status}")

    def _destroy_vms(self, request_id: str, reason: str) -> None:
        runner = self.runner
        for work in runner.cancel(runner.new_for_request(request_id)):  # not created yet: never will be
            self.inflight.discard(work.name)
        for vm in self.store.request_vms(request_id):
            if vm.state in LIVE_STATES and not self.ledger.cloning(vm.name):
                self.spawn(self.ledger.destroy(vm, reason=reason), f"destroy-{vm.name}")

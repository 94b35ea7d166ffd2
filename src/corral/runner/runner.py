"""The central runner: every VM corral creates or starts goes through here.

A loop takes works from the priority queue (:mod:`corral.runner.queue`) after a short
aggregation window, so that works arriving together are placed together: one bulk placement
per provider, grouped by host, and one provider call per host and kind of work (one call per
VM where the provider has no bulk call). Calls wait for slots in the :class:`Gate` (the global
``task_limit`` and the per-host limit), most urgent first, and run in parallel.

A failed VM is placed again on a host it has not tried, after a backoff, as a rerun, until
``max_tries``; an error the provider calls permanent is final at once. What the runner does
not know about, the pool manager does: it is told through a :class:`RunnerClient` (record
the intent before a call, then the outcome).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from corral.providers.base import CreateResult, Provider, ProviderError
from corral.runner.breaker import HostBreakers, OpenBreaker, blames_host
from corral.runner.gate import Gate
from corral.runner.model import Dispatch, NotRecorded, Placing, RunnerClient, RunnerSettings, RunnerStats
from corral.runner.queue import WorkQueue
from corral.runner.work import Op, Priority, QueueFull, Work

log = logging.getLogger("corral.runner")


@dataclass(frozen=True, slots=True)
class RunnerView:
    """The runner's own counters for the status endpoint: its queue, its calls, its slots and
    the hosts its breakers keep out (the field names are the JSON keys, in their order)."""

    queued: int
    queued_by_class: Mapping[str, int]  # works waiting, by the label of their class
    queue_limit: int
    calls_in_flight: int
    calls_waiting: int
    task_limit: int
    host_limit: int
    refused: int
    calls: int
    vms_sent: int
    created: int
    restarted: int
    reruns: int
    failed: int
    permanent_failures: int
    unplaced: int
    cancelled: int
    hosts_avoided: tuple[OpenBreaker, ...]
    breakers_opened: int = 0  # times a host's circuit breaker opened
    breakers_closed: int = 0  # times one closed again (its host took VMs again)


class Runner:
    """Takes works, places them in batches, and sends them to the providers; see the module docstring.

    ``need`` gives a pool's need for refills (lower: served first), read when works are taken
    (:mod:`corral.runner.queue`); without it, or with ``refill_order`` "arrival", refills go first
    come, first served."""

    def __init__(self, providers: Mapping[str, Provider], placer: Placing, client: RunnerClient,
                 settings: RunnerSettings | None = None, clock: Callable[[], float] = time.monotonic,
                 need: Callable[[str], float] | None = None) -> None:
        self.providers = providers
        self.placer = placer
        self.client = client
        self.settings = s = settings or RunnerSettings()
        self.clock = clock
        self.queue = WorkQueue(s.queue_limit, need if s.refill_order == "need" else None)
        self._arrived = asyncio.Event()  # work came, a rerun is due, or a call slot freed
        self.gate = Gate(s.task_limit, s.host_limit, on_free=self._arrived.set)
        self.stats = RunnerStats()
        self.breakers = HostBreakers(s.breakers, clock)
        self.log: deque[Dispatch] = deque(maxlen=10_000)
        self.held: dict[str, Work] = {}  # every work accepted and not finished, by VM name
        self._new_by_pool: Counter[str] = Counter()  # creates accepted and not recorded yet
        self._new_by_request: Counter[str] = Counter()
        self._loop: asyncio.Task[None] | None = None
        self._calls: set[asyncio.Task[None]] = set()

    # -- life ----------------------------------------------------------------------------------
    def run(self) -> None:
        if self._loop is None:
            self._loop = asyncio.create_task(self._run(), name="runner")

    async def stop(self) -> None:
        tasks = [t for t in (self._loop, *self._calls) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._loop = None

    # -- taking work -----------------------------------------------------------------------------
    def room(self, priority: Priority) -> int:
        """How many more works of class ``priority`` the queue takes now."""
        share = self.settings.refill_share if priority is Priority.REFILL else 1.0
        return self.queue.room(share)

    def check_room(self, count: int, refills: int = 0) -> None:
        """Raise :class:`QueueFull` unless ``count`` new VMs (``refills`` of them pool refills) fit."""
        room = self.room(Priority.ONDEMAND)
        if count > room or refills > self.room(Priority.REFILL):
            self.queue.refused += 1
            raise QueueFull(f"too much work queued: this asks for {count} VMs and the runner has room for {room} "
                            f"({len(self.queue)} of {self.queue.limit} waiting to be created or started); "
                            "try again later")

    def submit(self, works: Iterable[Work]) -> None:
        """Queue ``works`` (all or none). New refills and on-demand VMs count against the bound
        (:class:`QueueFull` when they do not fit); HA restarts do not, users hold those VMs."""
        works = [w for w in works if w.name not in self.held]
        refills = sum(1 for w in works if w.priority is Priority.REFILL)
        self.check_room(refills + sum(1 for w in works if w.priority is Priority.ONDEMAND), refills)
        now = self.clock()
        for work in works:
            self.queue.put(work, now, over_limit=True)
            self.held[work.name] = work
            if work.op is Op.CREATE and not work.recorded:
                self._count_new(work, +1)
        self.stats.submitted += len(works)
        if works:
            self._arrived.set()

    def _count_new(self, work: Work, sign: int) -> None:
        if work.request_id is None:
            self._new_by_pool[work.pool.name] += sign
        else:
            self._new_by_request[work.request_id] += sign

    def holds(self, name: str) -> bool:
        """True while a work for VM ``name`` is queued, placed or in flight."""
        return name in self.held

    def waiting(self, pool: str) -> int:
        """New stock VMs of ``pool`` (not on-demand ones) accepted and not recorded in the store yet."""
        return self._new_by_pool[pool]

    def waiting_for_request(self, request_id: str) -> int:
        return self._new_by_request[request_id]

    def new_for_request(self, request_id: str) -> list[Work]:
        """The request's new VMs accepted and not recorded in the store yet."""
        if not self._new_by_request[request_id]:
            return []
        return self.works(lambda w: w.request_id == request_id and not w.recorded)

    def works(self, predicate: Callable[[Work], bool]) -> list[Work]:
        return [w for w in self.held.values() if predicate(w)]

    def cancel(self, works: Iterable[Work]) -> list[Work]:
        """Drop ``works`` that have not been sent yet; returns those dropped.

        A work already sent cannot be called back: its outcome arrives as usual.
        """
        dropped = []
        for work in works:
            if work.cancelled or self.held.get(work.name) is not work or work.sent:
                continue
            self.queue.cancel([work])
            self._forget(work)
            dropped.append(work)
        self.stats.cancelled += len(dropped)
        return dropped

    def _forget(self, work: Work) -> None:
        if self.held.get(work.name) is work:
            del self.held[work.name]
            if work.op is Op.CREATE and not work.recorded:
                self._count_new(work, -1)

    # -- the loop ----------------------------------------------------------------------------------
    async def _run(self) -> None:
        s = self.settings
        while True:
            self._arrived.clear()
            now = self.clock()
            due = self.queue.due(now)
            if due == 0:
                await self._until_due(now)
                continue
            # HA restarts come in one burst per dead host: they do not wait for company
            if due < s.batch_size and self.queue.most_urgent(now) is not Priority.HA_RESTART:
                oldest = self.queue.oldest_arrival(now)
                if oldest is not None and now - oldest < s.window_s:
                    await _wait(self._arrived, s.window_s - (now - oldest))
                    continue
            before = None
            if self.gate.full:
                # every call slot is taken: only work more urgent than some call still waiting
                # for a slot may go ahead of it (the gate serves the most urgent first)
                waiting = self.gate.least_urgent_waiting()
                best = self.queue.most_urgent(now)
                if waiting is None or best is None or best >= waiting[0]:
                    await self._until_due(now)  # a rerun due later may be more urgent
                    continue
                before = Priority(waiting[0])
            batch = self.queue.take(s.batch_size, self.clock(), self._intake(), before)
            if batch:
                try:
                    self._dispatch(batch)
                except Exception:  # keep the loop alive; the works are failed, not lost
                    log.exception("dispatch failed")
                    for work in batch:
                        if self.held.get(work.name) is work and not work.sent:
                            self._forget(work)
                            self.client.failed(work, "internal error while placing")
                # let the calls just made reach the gate, so that the next look sees their slots taken
                # (else the whole queue would go to wait at the gate, in arrival order)
                await asyncio.sleep(0)

    async def _until_due(self, now: float) -> None:
        """Sleep until work arrives, a call slot frees, or the next delayed work is due."""
        upcoming = self.queue.next_due()
        await _wait(self._arrived, None if upcoming is None else max(upcoming - now, 0.0))

    def _intake(self) -> Callable[[Work], bool]:
        """Admit works of providers without a bulk call only as far as call slots are free."""
        free = max(self.settings.task_limit - self.gate.outstanding, 1)
        single: Counter[str] = Counter()

        def accept(work: Work) -> bool:
            provider = self.providers.get(work.provider)
            if provider is None or provider.bulk_calls:
                return True
            if single[work.provider] >= free:
                return False
            single[work.provider] += 1
            return True

        return accept

    def _dispatch(self, batch: list[Work]) -> None:
        self.stats.batches += 1
        by_provider: dict[str, list[Work]] = {}
        for work in batch:
            by_provider.setdefault(work.provider, []).append(work)
        calls: list[tuple[tuple[int, int, int], str, str, Op, list[Work]]] = []
        for provider_name, works in by_provider.items():
            if provider_name not in self.providers:
                for work in works:
                    self._finish(work, f"provider {provider_name!r} is not configured")
                continue
            broken = self.breakers.open_hosts(provider_name)
            excludes: dict[str, frozenset[str]] = {}
            for work in works:
                avoid = work.avoid()
                if avoid or broken:
                    excludes[work.name] = avoid | broken if avoid else broken  # shared: one kind to place
            placed = self.placer.place(provider_name, [(w.name, w.pool) for w in works], excludes or None)
            groups: dict[tuple[str, Op, Priority], list[Work]] = {}
            for work, where in zip(works, placed, strict=True):
                if where.host is None:
                    self._unplaced(work, where.why or "no host can take it")
                else:
                    groups.setdefault((where.host, work.op, work.priority), []).append(work)
            bulk = self.providers[provider_name].bulk_calls
            for (host, op, _), works_here in groups.items():
                for call in ([works_here] if bulk else [[w] for w in works_here]):
                    calls.append((min(w.key() for w in call), provider_name, host, op, call))
        calls.sort(key=lambda c: c[0])
        for key, provider_name, host, op, call in calls:
            task = asyncio.create_task(self._send(key, provider_name, host, op, call), name=f"{op.value}-{host}")
            self._calls.add(task)
            task.add_done_callback(self._calls.discard)

    def _unplaced(self, work: Work, why: str) -> None:
        if work.op is Op.START or work.recorded:
            work.tries += 1  # an HA restart or a rerun keeps trying for a while: hosts may come back
            self._retry_or_fail(work, None, why, retryable=True)
        else:
            self.stats.unplaced += 1
            self._forget(work)
            self.client.dropped(work, why)

    async def _send(self, key: tuple[int, int, int], provider_name: str, host: str, op: Op, works: list[Work]) -> None:
        gate_key = (provider_name, host)
        await self.gate.acquire(gate_key, key)
        try:
            live = []
            for work in works:
                if work.cancelled or self.held.get(work.name) is not work:
                    self.placer.release(provider_name, work.name)
                else:
                    live.append(work)
            if live:
                try:
                    wanted = self.client.record(live, host)
                except NotRecorded:
                    self._not_recorded(provider_name, live)
                    return
                except Exception as exc:
                    self._record_failed(provider_name, host, live, exc)
                    return
                kept = {id(w) for w in wanted}
                for work in live:
                    if id(work) not in kept:
                        self.placer.release(provider_name, work.name)
                        self._forget(work)
                if wanted:
                    await self._call(provider_name, host, op, wanted)
        finally:
            self.gate.release(gate_key)

    def _not_recorded(self, provider_name: str, works: list[Work]) -> None:
        """The store could not take the intent of a call (:class:`NotRecorded`, explained by the
        client): nothing is called, and the works wait to be placed again (no try counted: nothing
        was tried)."""
        self.stats.not_recorded += len(works)
        now = self.clock()
        for work in works:
            self.placer.release(provider_name, work.name)
            work.not_before = now + self.settings.backoff(1)
            self.queue.put(work, now, over_limit=True)
        self._arrived.set()

    def _record_failed(self, provider_name: str, host: str, works: list[Work], exc: Exception) -> None:
        """Recording the intent of a call failed otherwise (a write the store refused, a bug):
        nothing is called; each work counts a try and is placed again or fails, as after a failed
        call, so that it cannot come back for ever."""
        log.error("recording a call's intent failed", extra={"provider": provider_name, "host": host}, exc_info=exc)
        for work in works:
            self.placer.release(provider_name, work.name)
            work.tries += 1
            self._settle(work, lambda w: self._retry_or_fail(w, host, f"its record could not be written: {exc}",
                                                             retryable=True))

    def _settle(self, work: Work, settle: Callable[[Work], None]) -> None:
        """Settle one work of a call (its outcome told to the client): one that fails does not
        keep the others of the call from being settled."""
        try:
            settle(work)
        except Exception:
            log.exception("settling a work failed", extra={"vm": work.name, "pool": work.spec.pool})

    async def _call(self, provider_name: str, host: str, op: Op, works: list[Work]) -> None:
        for work in works:
            if work.op is Op.CREATE and not work.recorded:
                work.recorded = True
                self._count_new(work, -1)
            work.sent = True
            work.tries += 1
        self.log.append(Dispatch(self.clock(), op, provider_name, host, tuple(w.name for w in works),
                                 tuple(w.priority for w in works)))
        self.stats.calls += 1
        self.stats.vms_sent += len(works)
        provider = self.providers[provider_name]
        started = self.clock()
        whole_call_failed = False
        try:
            if op is Op.CREATE:
                results = await provider.create_vms(host, [w.spec for w in works])
            else:
                results = await provider.start_vms(host, [w.name for w in works])
        except ProviderError as exc:
            results = [CreateResult(w.name, ok=False, error=str(exc), retryable=exc.retryable, cause=exc.cause)
                       for w in works]
            whole_call_failed = True
            if exc.retryable and blames_host(exc.cause):
                self.breakers.failed(provider_name, host, str(exc))  # one failed call counts once
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a provider bug: treat as a failed call, keep the runner going
            log.exception("provider call raised", extra={"provider": provider_name, "host": host})
            results = [CreateResult(w.name, ok=False, error=f"provider error: {type(exc).__name__}") for w in works]
            whole_call_failed = True
        seconds = self.clock() - started
        outcome = {r.name: r for r in results}

        def settle(work: Work) -> None:
            result = outcome.get(work.name) or CreateResult(work.name, ok=False,
                                                            error="the provider returned no result")
            work.cause = result.cause
            if result.ok:
                self.breakers.succeeded(provider_name, host)
                self._forget(work)
                if op is Op.CREATE:
                    self.stats.created += 1
                else:
                    self.stats.started += 1
                self.client.done(work, host, seconds)
            else:
                self.placer.release(provider_name, work.name)
                work.tried.add(host)
                if result.retryable and not whole_call_failed and blames_host(result.cause):
                    self.breakers.failed(provider_name, host, result.error or "failed")
                self._retry_or_fail(work, host, result.error or "failed", retryable=result.retryable)

        for work in works:
            work.sent = False
        for work in works:
            self._settle(work, settle)

    def _retry_or_fail(self, work: Work, host: str | None, error: str, *, retryable: bool) -> None:
        if work.cancelled:
            self._forget(work)
            self.client.failed(work, f"cancelled after: {error}")
            return
        if retryable and work.tries < self.settings.max_tries:
            if work.op is Op.CREATE:
                work.priority = Priority.RERUN
            work.not_before = self.clock() + self.settings.backoff(work.tries)
            self.queue.put(work, self.clock(), over_limit=True)
            self.stats.reruns += 1
            self._arrived.set()
            self.client.retrying(work, host, error)
            return
        if retryable:
            error = f"{error} (gave up after {work.tries} {'try' if work.tries == 1 else 'tries'})"
        else:
            self.stats.permanent += 1
        self._finish(work, error)

    def _finish(self, work: Work, error: str) -> None:
        self.stats.failed += 1
        self._forget(work)
        self.client.failed(work, error)

    # -- views -------------------------------------------------------------------------------------
    def view(self) -> RunnerView:
        """For the status endpoint."""
        s = self.stats
        return RunnerView(
            queued=len(self.queue),
            queued_by_class={p.label: self.queue.by_class[p] for p in Priority},
            queue_limit=self.queue.limit,
            calls_in_flight=self.gate.in_flight,
            calls_waiting=self.gate.waiting,
            task_limit=self.settings.task_limit,
            host_limit=self.settings.host_limit,
            refused=self.queue.refused,
            calls=s.calls,
            vms_sent=s.vms_sent,
            created=s.created,
            restarted=s.started,
            reruns=s.reruns,
            failed=s.failed,
            permanent_failures=s.permanent,
            unplaced=s.unplaced,
            cancelled=s.cancelled,
            hosts_avoided=self.breakers.view(),
            breakers_opened=self.breakers.opened,
            breakers_closed=self.breakers.closed,
        )


    def calls_by_host(self) -> dict[tuple[str, str], int]:
        """(provider, host) -> the runner's calls to that host now in flight."""
        return {key: n for key, n in self.gate.per_host.items() if isinstance(key, tuple) and n > 0}


async def _wait(event: asyncio.Event, timeout: float | None) -> None:
    if timeout is None:
        await event.wait()
        return
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            await event.wait()

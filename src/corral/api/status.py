"""Status and statistics: /status, /summary, /poolstat, /totalrunning, /healthcheck."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from corral.api.common import ApiError, Version, respond, service_of
from corral.domain.models import TimingKind
from corral.pools.service import (
    AutosizeView,
    HostStatus,
    MonitoringStatus,
    PoolStatus,
    ProviderFailures,
    ProviderStatus,
    RunnerStatus,
    SchedulingStatus,
)
from corral.runtime import Service
from corral.store.base import StoreUnavailable

STATUS_VIEWS = ("capacity", "queue", "clone", "boot", "pools", "status", "monitoring", "scheduling", "runner", "hosts")
# Views given only when named in ``?view=``, never in the default answer.
ON_REQUEST_VIEWS = ("timings", "autosize")
RECENT_S = 3600.0  # the timings view covers the last hour
RECENT_MAX = 100  # and at most the latest this many clone and boot times each
DAY = 86400.0
DATE_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")


def duration_stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {"average": 0, "min": 0, "max": 0, "total": 0}
    total = sum(values)
    low, high = round(min(values), 2), round(max(values), 2)
    # rounded alike and kept between them, so the average never prints below min or above max
    return {"average": min(max(round(total / len(values), 2), low), high), "min": low, "max": high,
            "total": round(total, 2)}


def _utc_day_start(day: dt.date) -> float:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()


def _task_metrics(rows: list[tuple[float, str, float]], *, by_pool: bool) -> dict[str, Any]:
    """vmpooler's per-task block: duration stats and counts, optionally per pool."""
    values = [seconds for _, _, seconds in rows]
    block: dict[str, Any] = {"duration": duration_stats(values), "count": {"total": len(values)}}
    if by_pool and rows:
        per_pool: dict[str, list[float]] = defaultdict(list)
        for _, pool, seconds in rows:
            per_pool[pool].append(seconds)
        block["duration"]["pool"] = {p: duration_stats(v) for p, v in sorted(per_pool.items())}
        block["count"]["pool"] = {p: {"total": len(v)} for p, v in sorted(per_pool.items())}
    return block


def _status(service: Service, wanted: set[str], last_boots: LastBoots) -> dict[str, Any]:
    pools = service.pools
    with contextlib.suppress(StoreUnavailable):  # kept for the next flush; the status is read anyway
        pools.flush_timings()  # clone and boot times are stored in batches: store what is waiting
    stock = pools.stock()
    totals = stock.totals
    body: dict[str, Any] = {}
    status: dict[str, Any] = {"ok": True, "message": "Battle station fully armed and operational."}
    empty = [p.name for p in stock.pools if p.size > 0 and p.ready == 0]
    if empty:
        status.update(ok=False, message=f"Found {len(empty)} empty pools.", empty=empty)
    store = pools.store_status()
    if not store.available:
        status.update(ok=False, message=f"The store is unavailable: {store.error}",
                      store=dataclasses.asdict(store))
    status["uptime"] = round(time.time() - service.started_at, 1)
    if "capacity" in wanted:
        size = sum(p.size for p in stock.pools)
        body["capacity"] = {"current": totals.ready, "total": size,
                            "percent": round(100.0 * totals.ready / size, 1) if size else 0}
    if "queue" in wanted:
        cloning = pools.clones_in_flight
        queue = {"requested": pools.requested(), "pending": totals.pending, "cloning": cloning,
                 "booting": max(totals.pending - cloning, 0), "ready": totals.ready,
                 "running": totals.running, "completed": totals.completed}
        queue["total"] = sum(queue[k] for k in ("requested", "pending", "ready", "running", "completed"))
        body["queue"] = queue
    if "clone" in wanted or "boot" in wanted:
        today = _utc_day_start(dt.datetime.now(dt.UTC).date())
        for task in (TimingKind.CLONE, TimingKind.BOOT):
            if task.value in wanted:
                body[task.value] = _task_metrics(pools.durations(task, today, today + DAY), by_pool=False)
    if "pools" in wanted:
        body["pools"] = _pools(service, stock.pools, last_boots)
        for name, view in pools.autosizing().items():
            if name in body["pools"]:
                body["pools"][name]["autosize"] = autosize_json(view, history=False)
    if "autosize" in wanted:
        body["autosize"] = {name: autosize_json(view) for name, view in pools.autosizing().items()}
    if "monitoring" in wanted:
        body["monitoring"] = {**monitoring_json(pools.monitoring()),
                              **provider_failures_json(pools.provider_failures())}
    if "scheduling" in wanted:
        body["scheduling"] = scheduling_json(pools.scheduling())
    if "runner" in wanted:
        body["runner"] = runner_json(pools.runner())
    if "hosts" in wanted:
        body["hosts"] = hosts_json(pools.hosts())
    if "timings" in wanted:
        now = time.time()
        body["timings"] = {task.value: latest_durations(pools.durations(task, now - RECENT_S, now + 1), RECENT_MAX)
                           for task in (TimingKind.CLONE, TimingKind.BOOT)}
    body["status"] = status
    return dict(sorted(body.items()))


async def managers_json(service: Service) -> dict[str, Any]:
    """corral's own, with several processes on Redis: each live manager's state, score, the
    pools it holds and acts on, and the seconds left before it stops acting without a renewal;
    ``me``: this process's manager, if it runs one."""
    assert service.managers is not None
    try:
        managers = await service.managers()
    except StoreUnavailable:
        raise
    except Exception as exc:
        raise StoreUnavailable(f"cannot read the managers from the store: {type(exc).__name__}") from None
    return {"me": service.cluster.me if service.cluster is not None else None,
            "live": {name: managers[name] for name in sorted(managers)}}


#: ``lastBoot`` shows a pool's latest boot within this many seconds (vmpooler's week)
LAST_BOOT_WINDOW = 7 * DAY
#: boot times stored this late (in a batch, by another process) are still seen
LATE_S = 300.0


class LastBoots:
    """Each pool's latest boot time within :data:`LAST_BOOT_WINDOW`, for ``lastBoot`` in
    ``/status``: the week of boot times is read once, and after that only the times stored
    since the last read (with :data:`LATE_S` of overlap); a status read during a busy fill no
    longer reads a week of records each time."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self.read_until: float | None = None

    def update(self, read: Callable[[float, float], Iterable[tuple[float, str, float]]],
               now: float) -> dict[str, float]:
        """Read what is new with ``read(since, until)`` and answer pool -> latest boot."""
        oldest = now - LAST_BOOT_WINDOW
        since = oldest if self.read_until is None else max(self.read_until - LATE_S, oldest)
        for at, pool, _ in read(since, now + 1):
            if at > self.at.get(pool, 0.0):
                self.at[pool] = at
        self.read_until = now
        self.at = {pool: at for pool, at in self.at.items() if at >= oldest}
        return self.at


def _pools(service: Service, rows: tuple[PoolStatus, ...], last_boots: LastBoots) -> dict[str, Any]:
    last_boot = last_boots.update(lambda since, until: service.pools.durations(TimingKind.BOOT, since, until),
                                  time.time())
    pools: dict[str, Any] = {}
    for row in rows:
        name = row.name
        pools[name] = {"ready": row.ready, "running": row.running, "pending": row.pending, "max": row.size,
                       "lastBoot": time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(last_boot[name]))
                       if name in last_boot else ""}
        if row.alias:
            pools[name]["alias"] = list(row.alias)
        if row.placement_error is not None:
            pools[name]["placement_error"] = row.placement_error
    return pools


def autosize_json(v: AutosizeView, *, history: bool = True) -> dict[str, Any]:
    """corral's own: an autosized pool's ``target`` and why (``rate_per_hour`` of checkouts,
    ``ready_s`` to make a VM ready, what the model ``needed``, the ``bound`` that applies and the
    ``reason``), whether a size set at the API ``held`` it, its keys, and (in ``?view=autosize``)
    the ``history`` of its changes, oldest first."""
    row = dataclasses.asdict(v)
    if not history:
        del row["history"]
    return row


def monitoring_json(m: MonitoringStatus) -> dict[str, Any]:
    """corral's own: the providers' sessions and inventory feeds, the event bus, and what the
    safety nets repaired. A provider that cannot be reached shows ``connected: false``, the
    ``error`` of its last attempt and the seconds until the next one (``retry_in``).
    ``destroy_failures`` counts the VMs whose destroy failed (retrying, or held after a
    permanent error) and shows a few of them."""
    providers = {name: {"connected": p.connected, "error": p.error, "attempts": p.attempts, "retry_in": p.retry_in,
                        **_feed(p)} for name, p in m.providers.items()}
    return {
        "reconcile": {"runs": m.reconciles, "store_repairs": m.store_repairs,
                      "inventory_repairs": sum(p.repairs for p in m.providers.values())},
        "vanished": m.vanished, "orphans_destroyed": m.orphans_destroyed,
        "host_drops": m.host_drops,
        "destroy_failures": dataclasses.asdict(m.destroy_failures),
        "providers": providers, "events": dataclasses.asdict(m.events),
        "store": dataclasses.asdict(m.store),
    }


def provider_failures_json(f: ProviderFailures) -> dict[str, Any]:
    """corral's own, in the ``monitoring`` view: ``provider_failures``, every failed provider call
    (and every VM a bulk create or start failed) since the process started, as provider ->
    operation (the provider method) -> cause (session, unreachable, timeout, host, not_found,
    refused, feed, injected, other) -> count; ``sessions_renewed``, provider -> sessions that
    expired and were renewed (the call then went on: not failures)."""
    return {"provider_failures": {p: {op: dict(causes) for op, causes in ops.items()} for p, ops in f.failures.items()},
            "sessions_renewed": dict(f.sessions_renewed)}


def _feed(p: ProviderStatus) -> dict[str, Any]:
    """A provider's inventory feed: its counters, ``vms``, ``hosts`` and ``hosts_down`` (nothing
    before the provider is brought in)."""
    if p.feed is None:
        return {}
    return {**dataclasses.asdict(p.feed), "hosts_down": list(p.feed.hosts_down)}


def runner_json(r: RunnerStatus) -> dict[str, Any]:
    """corral's own: the runner's queue, calls, slots, the hosts its breakers keep out
    (``hosts_avoided``: provider -> {host: seconds until it is tried again}), how often a breaker
    opened and closed (``breakers_opened``, ``breakers_closed``) and HA restarts."""
    hosts_avoided: dict[str, dict[str, float]] = {}
    for b in r.queue.hosts_avoided:
        hosts_avoided.setdefault(b.provider, {})[b.host] = b.retry_in
    return {**dataclasses.asdict(r.queue),
            "hosts_avoided": hosts_avoided, "ha_restarts": r.ha_restarts, "ha_failures": r.ha_failures}


def hosts_json(rows: tuple[HostStatus, ...]) -> dict[str, dict[str, Any]]:
    """corral's own: provider -> host -> its size and use, ``up`` (as the provider reports it),
    ``down`` (declared down by the inventory), maintenance, health, VMs on it and the runner's
    calls to it in flight."""
    out: dict[str, dict[str, Any]] = {}
    for h in rows:
        row = dataclasses.asdict(h)
        del row["provider"], row["name"]
        out.setdefault(h.provider, {})[h.name] = row
    return out


def latest_durations(rows: list[tuple[float, str, float]], limit: int) -> list[dict[str, Any]]:
    """corral's own ``timings`` view: the latest ``limit`` of ``rows`` (when, pool, seconds),
    oldest first, as {"at", "pool", "seconds"} (for the dashboard's clone and boot charts)."""
    latest = sorted(rows, key=lambda row: row[0])[-limit:] if limit > 0 else []
    return [{"at": round(at, 3), "pool": pool, "seconds": round(seconds, 3)} for at, pool, seconds in latest]


def scheduling_json(s: SchedulingStatus) -> dict[str, Any]:
    """corral's own: placements, reservations held, placement failures and migrations (with, per
    provider that cannot move VMs between hosts, why)."""
    migrations = s.migrations
    return {
        "policy": s.policy,
        "providers": {name: dataclasses.asdict(p) for name, p in s.providers.items()},
        "placement_errors": dict(s.placement_errors),
        "migrations": {"limit": migrations.limit, "in_flight": migrations.in_flight,
                       **dataclasses.asdict(migrations.counts), "cannot_migrate": dict(migrations.cannot_migrate)},
    }


def _date(value: str | None, what: str) -> dt.date:
    if value is None:
        return dt.datetime.now(dt.UTC).date()
    try:
        if not DATE_RE.match(value):  # fromisoformat alone also takes ISO week dates (2020-W01-1)
            raise ValueError
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ApiError(400, f"Invalid date format {value[:40]!r} for '{what}', must match YYYY-MM-DD.") from None


def _date_range(from_: str | None, to: str | None) -> list[dt.date]:
    start, end = _date(from_, "from"), _date(to, "to")
    if end < start:
        raise ApiError(400, "Date range is invalid, 'to' cannot come before 'from'.")
    if start > dt.datetime.now(dt.UTC).date():
        raise ApiError(400, "Date range is invalid, 'from' must be in the past.")
    if (end - start).days > 366:
        raise ApiError(400, "Date range is invalid: at most 366 days at a time.")
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


def _tag_counts(records: list[tuple[float, str, str, str]], only: str | None) -> dict[str, dict[str, int]]:
    latest: dict[tuple[str, str], str] = {}
    for _, vm, tag, value in sorted(records):
        latest[(vm, tag)] = value  # a tag set twice on one VM in a day counts once, as the last value
    tags: dict[str, dict[str, int]] = {}
    for (_, tag), value in latest.items():
        if only and tag != only:
            continue
        counts = tags.setdefault(tag, {})
        counts[value] = counts.get(value, 0) + 1
        counts["total"] = counts.get("total", 0) + 1
    return tags


def summary(service: Service, days: list[dt.date], section: str | None = None,
            key: str | None = None) -> dict[str, Any]:
    start, end = _utc_day_start(days[0]), _utc_day_start(days[-1]) + DAY
    service.pools.flush_timings()
    result: dict[str, Any] = {}
    daily: list[dict[str, Any]] = [{"date": d.isoformat()} for d in days]

    def day_index(at: float) -> int:
        return int((at - start) // DAY)

    for kind in (TimingKind.BOOT, TimingKind.CLONE):
        task = kind.value  # the section's name in the answer
        if section not in (None, task):
            continue
        rows = service.pools.durations(kind, start, end)
        buckets: list[list[tuple[float, str, float]]] = [[] for _ in days]
        for row in rows:
            buckets[day_index(row[0])].append(row)
        overall = _task_metrics(rows, by_pool=True)
        per_day = [len(b) for b in buckets]
        overall["count"].update(average=round(sum(per_day) / len(per_day), 1), min=min(per_day), max=max(per_day))
        for entry, bucket in zip(daily, buckets, strict=True):
            entry[task] = _task_metrics(bucket, by_pool=True)
        if key:
            overall = {k: v for k, v in overall.items() if k == key}
            for entry in daily:
                entry[task] = {k: v for k, v in entry[task].items() if k == key}
        result[task] = overall
    if section in (None, "tag"):
        records = service.pools.tag_records(start, end)
        tag_buckets: list[list[tuple[float, str, str, str]]] = [[] for _ in days]
        for record in records:
            tag_buckets[day_index(record[0])].append(record)
        total: dict[str, dict[str, int]] = {}
        for entry, tag_bucket in zip(daily, tag_buckets, strict=True):
            entry["tag"] = _tag_counts(tag_bucket, key if section == "tag" else None)
            for tag, counts in entry["tag"].items():
                for value, n in counts.items():
                    total.setdefault(tag, {})[value] = total.get(tag, {}).get(value, 0) + n
        result["tag"] = total
    result["daily"] = daily
    return result


def build(router: APIRouter, version: Version) -> None:
    schema = version.name == "v3"

    @router.get("/status", include_in_schema=schema)
    async def status(request: Request, view: str | None = Query(None)) -> JSONResponse:
        """The live state: capacity, queue, clone, boot, pools and status (``?view=a,b`` picks)."""
        service = service_of(request)
        wanted = {v.strip() for v in view.split(",")} if view else {*STATUS_VIEWS, "managers"}
        body = _status(service, wanted, request.app.state.last_boots)
        if "managers" in wanted and service.managers is not None:
            body["managers"] = await managers_json(service)
        return respond(dict(sorted(body.items())))

    @router.get("/summary", include_in_schema=schema)
    async def summary_all(request: Request, from_: str | None = Query(None, alias="from"),
                          to: str | None = Query(None)) -> JSONResponse:
        """Boot and clone times and tag counts between ``from`` and ``to`` (YYYY-MM-DD, UTC days)."""
        return respond(summary(service_of(request), _date_range(from_, to)))

    @router.get("/summary/{section}", include_in_schema=schema)
    @router.get("/summary/{section}/{key}", include_in_schema=schema)
    async def summary_section(request: Request, section: str, key: str | None = None,
                              from_: str | None = Query(None, alias="from"),
                              to: str | None = Query(None)) -> JSONResponse:
        """One section of the summary (boot, clone or tag), optionally one key of it."""
        if section not in ("boot", "clone", "tag"):
            raise ApiError(404, f"no summary section {section[:40]!r} (boot, clone or tag)")
        return respond(summary(service_of(request), _date_range(from_, to), section, key))

    @router.get("/poolstat", include_in_schema=schema)
    async def poolstat(request: Request, pool: str | None = Query(None)) -> JSONResponse:
        """ready, max and alias of the pools named (or aliased) in ``?pool=a,b``."""
        service = service_of(request)
        asked = set(pool.split(",")) if pool else set()
        pools: dict[str, Any] = {}
        for p in service.pools.stock().pools:
            if p.name in asked or asked & set(p.alias):
                pools[p.name] = {"ready": p.ready, "max": p.size}
                if p.alias:
                    pools[p.name]["alias"] = list(p.alias)
        return respond({"pools": pools})

    @router.get("/totalrunning", include_in_schema=schema)
    async def totalrunning(request: Request) -> JSONResponse:
        """How many VMs are checked out."""
        return respond({"running": service_of(request).pools.stock().totals.running})

    @router.get("/healthcheck", include_in_schema=schema)
    async def healthcheck() -> JSONResponse:
        return respond({"ok": True})

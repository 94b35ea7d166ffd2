"""VM routes: list pools, check out (all or nothing), look at, change and return VMs, add
disks and snapshots."""

from __future__ import annotations

import random
import re
import time
from collections import Counter
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from corral.api.common import (
    MAX_VMS_PER_POOL,
    TAG_KEY_RE,
    TAG_VALUE_RE,
    ApiError,
    Version,
    as_int,
    check_hostname,
    check_owner,
    hostname,
    parse_body_pools,
    parse_path_pools,
    read_json_object,
    respond,
    rfc3339,
    service_of,
    token_record,
    v1_domain,
)
from corral.domain.limits import MAX_LIFETIME_HOURS
from corral.domain.models import Vm
from corral.domain.states import LIVE_STATES, VmState
from corral.pools.destroying import describe
from corral.runtime import Service

STATE_NAMES = {VmState.PENDING: "pending", VmState.READY: "ready", VmState.RUNNING: "running",
               VmState.MIGRATING: "running"}


# -- pools and aliases ---------------------------------------------------------------------------
def candidates(service: Service, label: str) -> list[str]:
    """The pools a requested name can be served from: the pool of that name, then alias targets."""
    pools = service.manager.pools
    found = [label] if label in pools else []
    return found + [p.name for p in pools.values() if label in p.alias and p.name != label]


def unknown_labels(service: Service, labels: list[str]) -> list[str]:
    return [label for label in labels if not candidates(service, label)]


def weights(service: Service, pools: list[str]) -> list[float] | None:
    """``backend_weight`` by each pool's clone target, when every candidate has one."""
    table = service.config.config.backend_weight
    found = [table.get(service.manager.pools[p].clone_target or "") for p in pools]
    return None if not table or None in found else found  # type: ignore[return-value]


def preference(service: Service, pools: list[str]) -> list[str]:
    """The candidates in the order to try them: one picked by weight (or at random) first."""
    if len(pools) == 1:
        return pools
    w = weights(service, pools)
    first = random.choices(pools, weights=w)[0] if w else random.choice(pools)
    return [first] + [p for p in pools if p != first]


def split_by_weight(service: Service, label: str, count: int) -> dict[str, int]:
    """Spread ``count`` VMs asked for as ``label`` over its pools (for on-demand requests)."""
    pools = candidates(service, label)
    if len(pools) == 1:
        return {pools[0]: count}
    w = weights(service, pools)
    return dict(Counter(random.choices(pools, weights=w, k=count) if w else random.choices(pools, k=count)))


def allocate(service: Service, wanted: dict[str, int], *, token: str | None, user: str | None,
             lifetime_s: float | None) -> list[tuple[str, Vm]] | None:
    """Check out every VM asked for, or none: (label, VM) pairs in request order."""
    manager = service.manager
    for _ in range(3):  # a race with another checkout can spoil a plan; plan again
        ready = None
        plan: list[tuple[str, str]] = []
        for label, count in wanted.items():
            pools = candidates(service, label)
            if len(pools) == 1:
                plan += [(label, pools[0])] * count
                continue
            if ready is None:
                ready = {p: c.get(VmState.READY, 0) for p, c in service.store.counts().items()}
            for _ in range(count):
                order = preference(service, pools)
                pick = next((p for p in order if ready.get(p, 0) > 0), order[0])
                ready[pick] = ready.get(pick, 0) - 1
                plan.append((label, pick))
        vms = manager.checkout([p for _, p in plan], token=token, user=user, lifetime_s=lifetime_s)
        if vms is not None:
            return [(label, vm) for (label, _), vm in zip(plan, vms, strict=True)]
        if ready is None or any(v < 0 for v in ready.values()):
            return None  # short of stock: planning again will not help
    return None


def checkout_answer(service: Service, version: Version, taken: list[tuple[str, Vm]]) -> dict[str, Any]:
    body: dict[str, Any] = {"ok": True}
    for label, vm in taken:
        name = hostname(service, version, vm)
        entry = body.setdefault(label, {})
        if "hostname" not in entry:
            entry["hostname"] = name
        elif isinstance(entry["hostname"], list):
            entry["hostname"].append(name)
        else:
            entry["hostname"] = [entry["hostname"], name]
    if version.short_names and (domain := v1_domain(service, [vm for _, vm in taken])):
        body["domain"] = domain
    return body


async def _checkout(request: Request, version: Version, wanted: dict[str, int]) -> JSONResponse:
    service = service_of(request)
    bad = unknown_labels(service, list(wanted))
    if bad:
        raise ApiError(404, f"unknown pool or alias: {', '.join(bad)}")
    record = token_record(request, required=False)
    lifetime = None
    if record is not None and service.config.config.vm_lifetime_auth:
        lifetime = service.config.config.vm_lifetime_auth * 3600.0
    taken = allocate(service, wanted, token=record.hash if record else None,
                     user=record.user if record else None, lifetime_s=lifetime)
    if taken is None:
        ready = {p: c.get(VmState.READY, 0) for p, c in service.store.counts().items()}
        short = shortfalls(wanted, {label: candidates(service, label) for label in wanted}, ready)
        return respond(empty_answer(short), 503)
    return respond(checkout_answer(service, version, taken))


def shortfalls(wanted: dict[str, int], sources: dict[str, list[str]], ready: dict[str, int]) -> dict[str, int]:
    """The requested names that cannot be served whole, with the ready VMs they have now (every
    pool a name can be served from counts). Empty when a race, not stock, spoilt the checkout."""
    return {label: have for label, count in wanted.items()
            if (have := sum(ready.get(pool, 0) for pool in sources[label])) < count}


def empty_answer(short: dict[str, int]) -> dict[str, Any]:
    """vmpooler's 503 ``{"ok": false}``, saying which pools were short."""
    if not short:
        error = "the ready VMs were taken by other checkouts; try again"
    else:
        error = "not enough ready VMs: " + ", ".join(f"{label} has {have} ready" for label, have in short.items())
    return {"ok": False, "error": error, "message": error, "empty": list(short)}


async def checkout_by_path(request: Request, version: Version, pools: str) -> JSONResponse:
    return await _checkout(request, version, parse_path_pools(pools))


async def return_one(request: Request, name: str) -> JSONResponse:
    """Return a checked-out VM; for a VM whose destroy failed, ask for the destroy again."""
    service = service_of(request)
    short = check_hostname(name)
    manager = service.manager
    if service.authenticator is None:  # nobody's ownership to check: the move is the whole check
        if not manager.return_vm(short) and not manager.retry_destroy(short):
            raise ApiError(404, f"no checked-out VM named {short}")
        return respond({"ok": True})
    vm = service.store.get_vm(short)
    if vm is not None and vm.name in manager.destroys.failures:
        check_owner(request, vm, token_needed=False)
        manager.retry_destroy(vm.name)
        return respond({"ok": True})
    if vm is None or vm.state not in (VmState.RUNNING, VmState.MIGRATING):
        raise ApiError(404, f"no checked-out VM named {name.split('.', 1)[0]}")
    check_owner(request, vm, token_needed=False)
    if not service.manager.return_vm(vm.name):
        raise ApiError(404, f"no checked-out VM named {vm.name}")
    return respond({"ok": True})


# -- a VM's record ---------------------------------------------------------------------------------
def live_vm(service: Service, raw_hostname: str) -> Vm:
    vm = service.store.get_vm(check_hostname(raw_hostname))
    if vm is None or vm.state not in LIVE_STATES:
        raise ApiError(404, f"no VM named {raw_hostname.split('.', 1)[0]}")
    return vm


def _hours(seconds: float) -> float | int:
    hours = seconds / 3600.0
    return int(hours) if hours == int(hours) else round(hours, 2)


MAX_LIFETIME_S = MAX_LIFETIME_HOURS * 3600.0


def vm_info(service: Service, version: Version, vm: Vm) -> dict[str, Any]:
    default_lifetime = service.manager.pools[vm.pool].lifetime_s if vm.pool in service.manager.pools else 86400.0
    lifetime_s = min(vm.lifetime_s or default_lifetime, MAX_LIFETIME_S)  # whatever was stored, it can be shown
    info: dict[str, Any] = {
        "template": vm.pool,
        "lifetime": _hours(lifetime_s),
        "state": STATE_NAMES.get(vm.state, "destroyed"),
    }
    if vm.checkout_at is not None and vm.lifetime_s is not None:
        end = vm.destroyed_at or vm.completed_at if vm.state not in LIVE_STATES else None
        info["running"] = round(((end or time.time()) - vm.checkout_at) / 3600.0, 2)
        if vm.state in LIVE_STATES:
            info["remaining"] = round(max(vm.checkout_at + lifetime_s - time.time(), 0.0) / 3600.0, 2)
            info["start_time"] = rfc3339(vm.checkout_at)
            info["end_time"] = rfc3339(vm.checkout_at + lifetime_s)
    if vm.tags:
        info["tags"] = dict(vm.tags)
    if vm.snapshots:
        info["snapshots"] = list(vm.snapshots)
    if vm.disks:
        info["disk"] = list(vm.disks)
    info["ip"] = vm.ip or ""
    info["fqdn"] = hostname(service, Version("v3"), vm)  # the name itself without a domain: clients print it
    if version.short_names and (domain := v1_domain(service, [vm])):
        info["domain"] = domain
    if vm.host:
        info["host"] = vm.host
    if vm.migrated:
        info["migrated"] = "true"
        if vm.migration_s is not None:
            info["migration_time"] = round(vm.migration_s, 2)
    if vm.request_id:
        info["request_id"] = vm.request_id
    failure = service.manager.destroys.failures.get(vm.name)
    if failure is not None:  # corral's own: why its destroy failed, and when it is tried again
        shown = describe(failure, time.monotonic())
        info["destroy_error"], info["destroy_retry_in"] = shown["error"], shown["retry_in"]
    return info


# -- changes -------------------------------------------------------------------------------------
def _filter_tags(service: Service, tags: dict[str, str]) -> dict[str, str]:
    """vmpooler's ``:tagfilter:``: a tag's value becomes what the pattern's groups capture."""
    out = dict(tags)
    for tag, pattern in service.config.tagfilter.items():
        if tag in out and (match := re.search(pattern, out[tag])):
            out[tag] = "".join(g for g in match.groups() if g) if match.groups() else out[tag]
    return out


def _check_changes(request: Request, service: Service, vm: Vm, body: dict[str, Any]) -> tuple[list[str], int | None]:
    """The problems with a PUT body, and the lifetime (hours) it sets, if any."""
    failures: list[str] = []
    settings = service.config.config
    lifetime: int | None = None
    for key, value in body.items():
        if key == "lifetime":
            check_owner(request, vm, token_needed=True)
            try:  # the hard cap holds even without max_lifetime_upper_limit
                hours = as_int(value, "lifetime", 1, MAX_LIFETIME_HOURS)
            except ApiError as exc:
                failures.append(exc.body["error"])
                continue
            limit = settings.max_lifetime_upper_limit
            if limit is not None and hours > limit:
                failures.append(f"You provided a lifetime ({hours}) that exceeds the configured maximum of {limit:g}.")
                continue
            lifetime = hours
        elif key == "tags":
            if not isinstance(value, dict):
                failures.append(f"You provided tags ({str(value)[:60]}) as something other than a hash.")
                continue
            for tag, text in value.items():
                if not TAG_KEY_RE.match(tag):
                    failures.append(f"Invalid tag key {tag[:60]!r}: use 1-50 letters, digits, '.', '_' or '-'")
                elif type(text) is not str or not TAG_VALUE_RE.match(text):  # a LongNumber is a number, not text
                    failures.append(f"Invalid value for tag {tag!r}: a string of at most 255 ASCII letters, digits, "
                                    "spaces and _ . @ : / -")
            allowed = settings.allowed_tags
            if allowed is not None and (extra := sorted(set(value) - set(allowed))):
                failures.append(f"You provided unsupported tags ({', '.join(extra)}); allowed: {', '.join(allowed)}.")
        else:
            failures.append(f"Unknown argument {str(key)[:60]!r}; expected lifetime or tags.")
    return failures, lifetime


def build(router: APIRouter, version: Version) -> None:
    schema = version.name == "v3"

    @router.get("/vm", include_in_schema=schema)
    async def list_pools(request: Request) -> JSONResponse:
        """The pools VMs can be checked out from."""
        return respond(list(service_of(request).manager.pools))

    @router.post("/vm", include_in_schema=schema)
    async def checkout_body(request: Request) -> JSONResponse:
        """Check out ``{"pool": count, ...}``: every VM or none (503)."""
        body = await read_json_object(request, empty_ok=False)
        return await _checkout(request, version, parse_body_pools(body))

    @router.post("/vm/{pools}", include_in_schema=schema)
    async def checkout_path(request: Request, pools: str) -> JSONResponse:
        """Check out one VM per ``+``-separated pool name or alias: every VM or none (503)."""
        return await checkout_by_path(request, version, pools)

    @router.get("/vm/{name}", include_in_schema=schema)
    async def get_vm(request: Request, name: str) -> JSONResponse:
        service = service_of(request)
        vm = service.store.get_vm(check_hostname(name))
        if vm is None:
            raise ApiError(404, f"no VM named {name.split('.', 1)[0]}")
        return respond({"ok": True, vm.name: vm_info(service, version, vm)})

    @router.put("/vm/{name}", include_in_schema=schema)
    async def change_vm(request: Request, name: str) -> JSONResponse:
        """Set ``lifetime`` (hours) and/or ``tags`` of a VM."""
        service = service_of(request)
        vm = live_vm(service, name)
        body = await read_json_object(request)
        check_owner(request, vm, token_needed=False)
        failures, lifetime = _check_changes(request, service, vm, body)
        if failures:
            return respond({"ok": False, "failure": failures, "error": " ".join(failures)}, 400)
        fields: dict[str, Any] = {}
        if lifetime is not None:
            fields["lifetime_s"] = lifetime * 3600.0
        if body.get("tags"):
            tags = _filter_tags(service, {k: v for k, v in body["tags"].items() if v})
            fields["tags"] = {**vm.tags, **tags}
            service.store.record_tags(vm.name, tags, time.time())
        if fields:
            service.store.update_vm(vm.name, **fields)
        return respond({"ok": True})

    @router.delete("/vm/{name}", include_in_schema=schema)
    async def return_vm(request: Request, name: str) -> JSONResponse:
        """Return a checked-out VM; it is destroyed."""
        return await return_one(request, name)

    @router.post("/vm/{name}/disk/{size}", include_in_schema=schema)
    async def add_disk(request: Request, name: str, size: str) -> JSONResponse:
        """Attach a new disk of ``size`` GB (1-2048); see ``disk`` in GET /vm/<name>."""
        service = service_of(request)
        short = check_hostname(name)
        gigabytes = as_int(size, "Disk size", 1, 2048)
        vm = live_vm(service, short)
        check_owner(request, vm, token_needed=True)
        service.manager.tasks.add_disk(vm.name, gigabytes)
        return respond({"ok": True, vm.name: {"disk": f"+{gigabytes}gb"}}, 202)

    @router.post("/vm/{name}/snapshot", include_in_schema=schema)
    async def snapshot(request: Request, name: str) -> JSONResponse:
        """Take a snapshot; its name is answered at once, it appears in GET /vm/<name> when done."""
        service = service_of(request)
        vm = live_vm(service, name)
        check_owner(request, vm, token_needed=True)
        return respond({"ok": True, vm.name: {"snapshot": service.manager.tasks.snapshot(vm.name)}}, 202)

    @router.post("/vm/{name}/snapshot/{snapshot_name}", include_in_schema=schema)
    async def revert(request: Request, name: str, snapshot_name: str) -> JSONResponse:
        """Revert a VM to one of its snapshots."""
        service = service_of(request)
        vm = live_vm(service, name)
        check_owner(request, vm, token_needed=True)
        if snapshot_name not in vm.snapshots:
            raise ApiError(404, f"VM {vm.name} has no snapshot {snapshot_name[:64]!r}")
        service.manager.tasks.revert(vm.name, snapshot_name)
        return respond({"ok": True}, 202)


__all__ = ["MAX_VMS_PER_POOL", "build", "candidates", "split_by_weight", "unknown_labels", "hostname"]

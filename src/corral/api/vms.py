"""VM routes: list pools, check out (all or nothing), look at, change and return VMs, add
disks and snapshots."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
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
from corral.pools.service import Short
from corral.runtime import Service

STATE_NAMES = {VmState.PENDING: "pending", VmState.READY: "ready", VmState.RUNNING: "running",
               VmState.MIGRATING: "running"}


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
    recorder = service.metrics.recorder
    bad = service.pools.unknown_labels(list(wanted))
    if bad:
        recorder.checkout_invalid(bad)
        raise ApiError(404, f"unknown pool or alias: {', '.join(bad)}")
    record = token_record(request, required=False)
    result = service.pools.checkout(wanted, token=record.hash if record else None, user=record.user if record else None)
    if isinstance(result, Short):
        recorder.checkout_empty(result.short)
        return respond(empty_answer(result.short), 503)
    recorder.checkout_success(vm.pool for _, vm in result.vms)
    return respond(checkout_answer(service, version, list(result.vms)))


def empty_answer(short: Mapping[str, int]) -> dict[str, Any]:
    """vmpooler's 503 ``{"ok": false}``, saying which pools were short."""
    if not short:
        error = "the ready VMs were taken by other checkouts; try again"
    else:
        error = "not enough ready VMs: " + ", ".join(f"{label} has {have} ready" for label, have in short.items())
    return {"ok": False, "error": error, "message": error, "empty": list(short)}


async def checkout_by_path(request: Request, version: Version, pools: str) -> JSONResponse:
    return await _checkout(request, version, parse_path_pools(pools))


async def return_one(request: Request, name: str) -> JSONResponse:
    """Return a checked-out VM; for a VM whose destroy failed, ask for the destroy again.
    Counted as vmpooler counts deletes: a success, or a failure (any refusal)."""
    recorder = service_of(request).metrics.recorder
    try:
        response = _return_one(request, name)
    except Exception:  # refused, the store unreachable, the VM's owner elsewhere: all failed deletes
        recorder.returned(False)
        raise
    recorder.returned(True)
    return response


def _return_one(request: Request, name: str) -> JSONResponse:
    service = service_of(request)
    short = check_hostname(name)
    pools = service.pools
    if service.authenticator is None:  # nobody's ownership to check: the move is the whole check
        if not pools.return_vm(short) and not pools.retry_destroy(short):
            raise ApiError(404, f"no checked-out VM named {short}")
        return respond({"ok": True})
    vm = pools.vm(short)
    if vm is not None and pools.destroy_failure(vm.name) is not None:
        check_owner(request, vm, token_needed=False)
        pools.retry_destroy(vm.name)
        return respond({"ok": True})
    if vm is None or vm.state not in (VmState.RUNNING, VmState.MIGRATING):
        raise ApiError(404, f"no checked-out VM named {name.split('.', 1)[0]}")
    check_owner(request, vm, token_needed=False)
    if not pools.return_vm(vm.name):
        raise ApiError(404, f"no checked-out VM named {vm.name}")
    return respond({"ok": True})


# -- a VM's record ---------------------------------------------------------------------------------
def live_vm(service: Service, raw_hostname: str) -> Vm:
    vm = service.pools.vm(check_hostname(raw_hostname))
    if vm is None or vm.state not in LIVE_STATES:
        raise ApiError(404, f"no VM named {raw_hostname.split('.', 1)[0]}")
    return vm


def _hours(seconds: float) -> float | int:
    hours = seconds / 3600.0
    return int(hours) if hours == int(hours) else round(hours, 2)


MAX_LIFETIME_S = MAX_LIFETIME_HOURS * 3600.0


def vm_info(service: Service, version: Version, vm: Vm) -> dict[str, Any]:
    pool = service.pools.pool(vm.pool)
    default_lifetime = pool.lifetime_s if pool is not None else 86400.0
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
    failure = service.pools.destroy_failure(vm.name)
    if failure is not None:  # corral's own: why its destroy failed, and when it is tried again
        info["destroy_error"], info["destroy_retry_in"] = failure.error, failure.retry_in
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
        return respond(list(service_of(request).pools.configured))

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
        vm = service.pools.vm(check_hostname(name))
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
        tags = _filter_tags(service, {k: v for k, v in body["tags"].items() if v}) if body.get("tags") else None
        service.pools.change_vm(vm, lifetime_s=lifetime * 3600.0 if lifetime is not None else None, tags=tags)
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
        service.pools.add_disk(vm.name, gigabytes)
        return respond({"ok": True, vm.name: {"disk": f"+{gigabytes}gb"}}, 202)

    @router.post("/vm/{name}/snapshot", include_in_schema=schema)
    async def snapshot(request: Request, name: str) -> JSONResponse:
        """Take a snapshot; its name is answered at once, it appears in GET /vm/<name> when done."""
        service = service_of(request)
        vm = live_vm(service, name)
        check_owner(request, vm, token_needed=True)
        return respond({"ok": True, vm.name: {"snapshot": service.pools.snapshot(vm.name)}}, 202)

    @router.post("/vm/{name}/snapshot/{snapshot_name}", include_in_schema=schema)
    async def revert(request: Request, name: str, snapshot_name: str) -> JSONResponse:
        """Revert a VM to one of its snapshots."""
        service = service_of(request)
        vm = live_vm(service, name)
        check_owner(request, vm, token_needed=True)
        if snapshot_name not in vm.snapshots:
            raise ApiError(404, f"VM {vm.name} has no snapshot {snapshot_name[:64]!r}")
        service.pools.revert(vm.name, snapshot_name)
        return respond({"ok": True}, 202)


__all__ = ["MAX_VMS_PER_POOL", "build", "hostname"]

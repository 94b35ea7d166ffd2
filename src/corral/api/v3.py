"""vmpooler's API v3: the VM and status routes, with vmpooler's JSON shapes and status codes."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from corral.domain.models import Vm
from corral.domain.states import VmState
from corral.runtime import Service

router = APIRouter()


def _service(request: Request) -> Service:
    return request.app.state.service  # type: ignore[no-any-return]


def _fail(status: int, **extra: Any) -> JSONResponse:
    return JSONResponse({"ok": False, **extra}, status_code=status)


def _fqdn(service: Service, vm: Vm) -> str:
    pool = service.manager.pools.get(vm.pool)
    return f"{vm.name}.{pool.domain}" if pool is not None and pool.domain else vm.name


def _resolve(service: Service, requested: str) -> str | None:
    """A pool name or alias to the pool's name."""
    pools = service.manager.pools
    if requested in pools:
        return requested
    for pool in pools.values():
        if requested in pool.alias:
            return pool.name
    return None


@router.get("/vm")
async def list_pools(request: Request) -> list[str]:
    """The pool names (and aliases) a VM can be requested from."""
    pools = _service(request).manager.pools.values()
    return [p.name for p in pools] + [a for p in pools for a in p.alias]


@router.post("/vm/{template}")
async def checkout(request: Request, template: str) -> JSONResponse:
    """Check out one VM per ``+``-separated pool name: all of them or none."""
    service = _service(request)
    requested = [t for t in template.split("+") if t]
    pools = [_resolve(service, t) for t in requested]
    if not requested or None in pools:
        return _fail(404)
    vms = service.manager.checkout([p for p in pools if p is not None])
    if vms is None:
        return _fail(503)
    body: dict[str, Any] = {"ok": True}
    for label, vm in zip(requested, vms, strict=True):
        entry = body.setdefault(label, {"hostname": []})
        entry["hostname"].append(_fqdn(service, vm))
    for label in set(requested):
        names = body[label]["hostname"]
        if len(names) == 1:
            body[label]["hostname"] = names[0]
    return JSONResponse(body)


def _short(hostname: str) -> str:
    return hostname.split(".", 1)[0]


@router.get("/vm/{hostname}")
async def vm_info(request: Request, hostname: str) -> JSONResponse:
    service = _service(request)
    vm = service.store.get_vm(_short(hostname))
    if vm is None:
        return _fail(404)
    info: dict[str, Any] = {
        "template": vm.pool,
        "state": vm.state.value,
        "ip": vm.ip or "",
        "host": vm.host or "",
        "tags": vm.tags,
        "migrated": "true" if vm.migrated else "false",
    }
    if vm.checkout_at is not None and vm.lifetime_s is not None:
        lifetime_h = vm.lifetime_s / 3600.0
        running_h = ((vm.completed_at or time.time()) - vm.checkout_at) / 3600.0
        info.update(
            lifetime=round(lifetime_h, 2) if lifetime_h % 1 else int(lifetime_h),
            running=round(running_h, 2),
            remaining=round(max(lifetime_h - running_h, 0.0), 2),
            start_time=_iso(vm.checkout_at),
            end_time=_iso(vm.checkout_at + vm.lifetime_s),
        )
    return JSONResponse({"ok": True, vm.name: info})


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(ts))


@router.delete("/vm/{hostname}")
async def return_vm(request: Request, hostname: str) -> JSONResponse:
    """Schedule a checked-out VM for deletion; 404 for anything not checked out."""
    if not _service(request).manager.return_vm(_short(hostname)):
        return _fail(404)
    return JSONResponse({"ok": True})


STATUS_VIEWS = ("capacity", "queue", "clone", "boot", "pools", "status")


@router.get("/status")
async def status(request: Request, view: str | None = Query(None)) -> JSONResponse:
    service = _service(request)
    manager = service.manager
    counts = service.store.counts()
    wanted = set(view.split(",")) if view else set(STATUS_VIEWS)
    per_pool = {name: {s: counts.get(name, {}).get(s, 0) for s in VmState} for name in manager.pools}
    total = lambda state: sum(c.get(state, 0) for c in counts.values())  # noqa: E731
    ready, pending = total(VmState.READY), total(VmState.PENDING)
    size = sum(p.size for p in manager.pools.values())
    body: dict[str, Any] = {}
    if "capacity" in wanted:
        body["capacity"] = {"current": ready, "total": size,
                            "percent": round(100.0 * ready / size, 1) if size else 0.0}
    if "queue" in wanted:
        cloning = manager.clones_in_flight
        queue = {"pending": pending, "cloning": cloning, "booting": max(pending - cloning, 0),
                 "ready": ready, "running": total(VmState.RUNNING) + total(VmState.MIGRATING),
                 "completed": total(VmState.COMPLETED) + total(VmState.FAILED)}
        queue["total"] = sum(queue[k] for k in ("pending", "ready", "running", "completed"))
        body["queue"] = queue
    if "clone" in wanted:
        body["clone"] = {"duration": _summary(manager.stats.clone_seconds),
                         "count": {"total": manager.stats.clones}}
    if "boot" in wanted:
        body["boot"] = {"duration": _summary(manager.stats.boot_seconds)}
    if "pools" in wanted:
        body["pools"] = {
            name: {"ready": c[VmState.READY], "running": c[VmState.RUNNING] + c[VmState.MIGRATING],
                   "pending": c[VmState.PENDING], "max": manager.pools[name].size}
            for name, c in per_pool.items()
        }
    if "status" in wanted:
        empty = [n for n, p in manager.pools.items() if p.size > 0 and per_pool[n][VmState.READY] == 0]
        body["status"] = ({"ok": True, "message": "All pools have ready VMs."} if not empty
                          else {"ok": False, "message": f"Found {len(empty)} empty pools.", "empty": empty})
    return JSONResponse(body)


def _summary(values: Any) -> dict[str, float]:
    data = list(values)
    if not data:
        return {"average": 0.0, "min": 0.0, "max": 0.0}
    return {"average": round(sum(data) / len(data), 2), "min": round(min(data), 2), "max": round(max(data), 2)}

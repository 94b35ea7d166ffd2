"""On-demand routes: ask for VMs to be built, poll the request, delete it."""

from __future__ import annotations

import time
import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from corral.api.common import (
    REQUEST_ID_RE,
    ApiError,
    Version,
    hostname,
    parse_body_pools,
    parse_path_pools,
    read_json_object,
    respond,
    service_of,
    token_record,
    v1_domain,
)
from corral.domain.models import OndemandRequest, RequestedPool, RequestStatus
from corral.pools.service import Submitted


async def _submit(request: Request, wanted: dict[str, int], request_id: Any) -> JSONResponse:
    service = service_of(request)
    record = token_record(request, required=True)
    bad = service.pools.unknown_labels(list(wanted))
    if bad:
        raise ApiError(404, f"unknown pool or alias: {', '.join(bad)}", bad_templates=bad)
    limit = service.config.config.max_ondemand_instances_per_request
    if too_many := [label for label, n in wanted.items() if n > limit]:
        message = f"requested amount of instances exceeds the maximum {limit}"
        raise ApiError(403, f"{message} ({', '.join(too_many)})", message=message)
    if request_id is None:
        request_id = str(uuid.uuid4())
    elif type(request_id) is not str or not REQUEST_ID_RE.fullmatch(request_id):  # not a LongNumber
        raise ApiError(400, "request_id must be 1-100 letters, digits, '.', '_' or '-'")
    lines = [RequestedPool(label, pool, n) for label, count in wanted.items()
             for pool, n in service.pools.split(label, count).items()]
    new = OndemandRequest(id=request_id, requested=lines, created_at=time.time(),
                          token=record.hash if record else None, user=record.user if record else None)
    submitted = service.pools.submit(new)
    if submitted.outcome is Submitted.REFUSED:
        reason = submitted.reason or ""
        raise ApiError(503, reason, headers={"Retry-After": "5"}, message=reason)
    if submitted.outcome is Submitted.DUPLICATE:
        message = f"request_id '{request_id}' has already been created"
        raise ApiError(409, message, message=message, request_id=request_id)
    return respond({"ok": True, "request_id": request_id}, 201)


def build(router: APIRouter, version: Version) -> None:
    schema = version.name == "v3"

    @router.post("/ondemandvm", include_in_schema=schema)
    async def create(request: Request) -> JSONResponse:
        """``{"pool": count, ..., "request_id": optional}``: 201 with the request's id."""
        body = await read_json_object(request, empty_ok=False)
        return await _submit(request, parse_body_pools(body, skip=("request_id",)), body.get("request_id"))

    @router.post("/ondemandvm/{pools}", include_in_schema=schema)
    async def create_from_path(request: Request, pools: str) -> JSONResponse:
        """One VM per ``+``-separated pool name or alias."""
        return await _submit(request, parse_path_pools(pools), None)

    @router.get("/ondemandvm/{request_id}", include_in_schema=schema)
    async def poll(request: Request, request_id: str) -> JSONResponse:
        """202 while VMs are being built; 200 with hostnames when ready, or a message if it failed."""
        service = service_of(request)
        found = service.pools.request(request_id) if REQUEST_ID_RE.fullmatch(request_id) else None
        if found is None:
            raise ApiError(404, message=f"no request found for request_id '{request_id[:100]}'")
        body: dict[str, Any] = {"ok": True, "request_id": found.id, "ready": found.status == RequestStatus.READY}
        if found.status == RequestStatus.READY:
            assigned = service.pools.assignments(found)
            for label, vms in assigned.items():
                body[label] = {"hostname": [hostname(service, version, vm) for vm in vms]}
            if version.short_names and (domain := v1_domain(service, [vm for vms in assigned.values() for vm in vms])):
                body["domain"] = domain
            return respond(body)
        # corral's own: why a pool of the request cannot place its VMs, while that lasts
        failures = service.pools.placement_errors()
        placement = {line.pool: failures[line.pool] for line in found.requested if line.pool in failures}
        if found.status == RequestStatus.FAILED:
            ttl = service.config.config.ondemand_request_ttl
            body["message"] = (f"The request failed to provision instances within the configured "
                               f"ondemand_request_ttl '{ttl:g}'")
            if placement:
                body["message"] += ": " + "; ".join(f"{pool}: {why}" for pool, why in sorted(placement.items()))
            return respond(body)
        if found.status == RequestStatus.DELETED:
            body["message"] = "The request has been deleted"
            return respond(body)
        asked: dict[str, int] = {}
        for line in found.requested:
            asked[line.label] = asked.get(line.label, 0) + line.count
        for label, vms in service.pools.assignments(found).items():
            body[label] = {"ready": str(len(vms)), "pending": str(asked[label] - len(vms))}
        if placement:
            body["placement_error"] = placement
        return respond(body, 202)

    @router.delete("/ondemandvm/{request_id}", include_in_schema=schema)
    async def delete(request: Request, request_id: str) -> JSONResponse:
        """Delete a request and destroy its VMs."""
        service = service_of(request)
        record = token_record(request, required=True)
        found = service.pools.request(request_id) if REQUEST_ID_RE.fullmatch(request_id) else None
        if found is None:
            raise ApiError(404, message=f"no request found for request_id '{request_id[:100]}'")
        if found.user is not None and record is not None and record.user != found.user:
            raise ApiError(403, "the request belongs to another user")
        if found.status == RequestStatus.DELETED:
            service.pools.delete_request(found.id)  # destroys anything left over
            return respond({"ok": True, "message": "the request has already been deleted"})
        service.pools.delete_request(found.id)
        return respond({"ok": True})

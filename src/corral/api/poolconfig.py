"""Pool configuration: read it, and (with ``experimental_features``) change pool sizes,
templates and clone targets or reset pools at run time. Changes are stored and outlive
restarts until they are reset."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from corral.api.common import (
    ApiError,
    Version,
    as_int,
    experimental,
    read_json_object,
    respond,
    service_of,
    token_record,
)
from corral.config import ConfigError, model_view, safe_view
from corral.pools.service import Reset, SetCloneTarget, SetSize, SetTemplate, Setting
from corral.runtime import Service

MAX_POOL_SIZE = 10_000


def pool_configuration(service: Service) -> list[dict[str, Any]]:
    """Each pool's declared, safe keys (see :mod:`corral.config.safe`), with its live size,
    template and clone target."""
    out = []
    pools = service.pools.pools  # read once: a process that only answers the API reads the store for it
    for settings in service.config.pools:
        live = pools.get(settings.name)
        if live is None:  # a reload under way: the pool is not running yet
            continue
        entry = model_view(settings)
        entry.update(size=live.size, template=live.template, provider=live.provider,
                     clone_target=live.clone_target, template_ready=True)
        out.append({k: v for k, v in entry.items() if v is not None})
    return out


def full_config(service: Service) -> dict[str, Any]:
    """The configuration as :func:`corral.config.safe_view` shows it, pools as they run."""
    data = safe_view(service.config)
    data["pools"] = pool_configuration(service)
    if "auth" in data:  # who may log in is nobody's business
        data["auth"] = {"provider": data["auth"].get("provider")}
    return data


def clone_target_problem(pool: str, target: Any, clusters: list[str] | None) -> str | None:
    """Why ``target`` cannot be ``pool``'s clone target (None: it can). ``clusters`` are those
    its provider knows (None: no such pool)."""
    if clusters is None:
        return "no such pool"
    if type(target) is not str or not target or len(target) > 255 or not target.isprintable():
        return "a clone target is the name of a cluster (1-255 printable characters)"
    if target not in clusters:
        known = ", ".join(clusters[:20]) or "none: the provider is not connected"
        return f"the provider knows no cluster {target!r} (clusters: {known})"
    return None


def _reset(request: Request, pool: str, setting: Setting) -> Reset:
    """Drop the override of ``setting``: the configured value and the value before the reset."""
    experimental(request)
    token_record(request, required=True)
    service = service_of(request)
    if pool not in service.pools.configured:
        raise ApiError(404, f"unknown pool {pool[:100]!r}")
    return service.pools.reset_setting(pool, setting)


async def _changes(request: Request) -> dict[str, Any]:
    experimental(request)
    token_record(request, required=True)
    body = await read_json_object(request, empty_ok=False)
    return body


def build(router: APIRouter, version: Version) -> None:
    schema = version.name == "v3"

    @router.get("/config", include_in_schema=schema)
    async def config(request: Request) -> JSONResponse:
        """The pools as they run now (with changes made at the API)."""
        return respond({"pool_configuration": pool_configuration(service_of(request)), "status": {"ok": True}})

    @router.get("/full_config", include_in_schema=schema)
    async def full(request: Request) -> JSONResponse:
        """The whole configuration, without passwords, keys or tokens."""
        return respond({"full_config": full_config(service_of(request)), "status": {"ok": True}})

    @router.post("/config/poolsize", include_in_schema=schema)
    async def set_sizes(request: Request) -> JSONResponse:
        """``{"pool": size}``: 201 if a size changed, 200 if none did."""
        service = service_of(request)
        body = await _changes(request)
        bad = [p for p in body if p not in service.pools.configured]
        sizes: dict[str, int] = {}
        for pool, size in body.items():
            try:
                sizes[pool] = as_int(size, f"size of {pool!r}", 0, MAX_POOL_SIZE)
            except ApiError:
                bad.append(pool)
        if bad:
            raise ApiError(400, f"unknown pool or bad size (0-{MAX_POOL_SIZE}): {', '.join(sorted(set(bad)))}",
                           not_configured=sorted(set(bad)))
        changed = service.pools.change([SetSize(pool, size) for pool, size in sizes.items()])
        return respond({"ok": True}, 201 if changed else 200)

    @router.delete("/config/poolsize/{pool}", include_in_schema=schema)
    async def reset_size(request: Request, pool: str) -> JSONResponse:
        reset = _reset(request, pool, Setting.SIZE)
        return respond({"ok": True, "pool_size_before_overrides": reset.original,
                        "pool_size_before_reset": reset.before}, 201 if reset.changed else 200)

    @router.post("/config/pooltemplate", include_in_schema=schema)
    async def set_templates(request: Request) -> JSONResponse:
        """``{"pool": "template"}``: the pool's ready and pending VMs are replaced."""
        service = service_of(request)
        body = await _changes(request)
        bad = [p for p, t in body.items() if p not in service.pools.configured or type(t) is not str
               or not t.strip() or t.startswith("/") or t.endswith("/") or len(t) > 255 or not t.isprintable()]
        if bad:
            raise ApiError(400, f"unknown pool or bad template: {', '.join(bad)}", bad_templates=bad)
        changed = service.pools.change([SetTemplate(pool, template) for pool, template in body.items()])
        return respond({"ok": True}, 201 if changed else 200)

    @router.delete("/config/pooltemplate/{pool}", include_in_schema=schema)
    async def reset_template(request: Request, pool: str) -> JSONResponse:
        reset = _reset(request, pool, Setting.TEMPLATE)
        return respond({"ok": True, "template_before_overrides": reset.original,
                        "template_before_reset": reset.before}, 201 if reset.changed else 200)

    @router.post("/config/clonetarget", include_in_schema=schema)
    async def set_clone_targets(request: Request) -> JSONResponse:
        """``{"pool": "cluster"}``: the pool's new VMs go to that cluster of its provider."""
        service = service_of(request)
        body = await _changes(request)
        problems = {p: why for p, t in body.items()
                    if (why := clone_target_problem(p, t, service.pools.clusters(p))) is not None}
        if problems:
            raise ApiError(400, "; ".join(f"{str(p)[:100]!r}: {why}" for p, why in problems.items()),
                           bad_templates=list(problems))
        changed = service.pools.change([SetCloneTarget(pool, target) for pool, target in body.items()])
        return respond({"ok": True}, 201 if changed else 200)

    @router.delete("/config/clonetarget/{pool}", include_in_schema=schema)
    async def reset_clone_target(request: Request, pool: str) -> JSONResponse:
        """Back to the configured clone target (the pool's, else ``:config:``'s, else none)."""
        reset = _reset(request, pool, Setting.CLONE_TARGET)
        return respond({"ok": True, "clone_target_before_overrides": reset.original,
                        "clone_target_before_reset": reset.before}, 201 if reset.changed else 200)

    @router.post("/config/reload", include_in_schema=schema)
    async def reload(request: Request) -> JSONResponse:
        """Read the configuration file again and apply it: what changed (``restart_needed`` keys
        wait for a restart), or 400 naming every problem of an invalid file, nothing changed.
        Needs a token (and so ``:auth:``)."""
        service = service_of(request)
        if service.authenticator is None:
            raise ApiError(403, "reloading over the API needs a token, and so :auth:; send SIGHUP to the "
                                "corral process instead")
        token_record(request, required=True)
        try:
            reloaded = await service.reload()
        except ConfigError as exc:
            raise ApiError(400, f"configuration not reloaded: {len(exc.problems)} problem(s); the running "
                                "configuration stays", problems=exc.problems) from None
        return respond({"ok": True, **reloaded.as_dict()})

    @router.post("/poolreset", include_in_schema=schema)
    async def pool_reset(request: Request) -> JSONResponse:
        """Replace the ready and pending VMs of the pools named in ``{"pool": ...}``."""
        service = service_of(request)
        body = await _changes(request)
        bad = [p for p in body if p not in service.pools.configured]
        if bad:
            raise ApiError(400, f"unknown pool: {', '.join(bad)}", bad_pools=bad)
        for pool in body:
            service.pools.reset_pool(pool)
        return respond({"ok": True}, 201)

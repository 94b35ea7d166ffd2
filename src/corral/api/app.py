"""The FastAPI application: vmpooler's API under /api/v3, /api/v2, /api/v1 and the old
unversioned paths, with vmpooler's error shapes. Starts the pool service with the server."""

from __future__ import annotations

import gc
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request as StarletteRequest

from corral import __version__
from corral.api import dashboard, events, metrics, ondemand, openapi, poolconfig, status, tokens, vms
from corral.api.common import ApiError, Version
from corral.api.head import bodiless, head_as_get
from corral.api.middleware import RateLimiter, RequestLogger, body_deadline, loggable_path
from corral.pools.service import Elsewhere
from corral.runtime import Service, reload_on_sighup
from corral.store.base import StoreUnavailable

log = logging.getLogger("corral.api")

VERSIONS = {"/api/v3": "v3", "/api/v2": "v2", "/api/v1": "v1", "": ""}
# The two calls CI clients make most: check out by path, and return.
HOT_PATH = re.compile(r"^(?:/api/(v[123]))?/vm/([^/]+)/?$")


class Router(APIRouter):
    """vmpooler answers paths with or without a trailing slash: so does every route here."""

    def add_api_route(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().add_api_route(path, endpoint, **kwargs)
        if not path.endswith("/"):
            kwargs["include_in_schema"] = False
            super().add_api_route(path + "/", endpoint, **kwargs)


def build_router(version: Version) -> APIRouter:
    router = Router()
    for module in (vms, tokens, ondemand, status, poolconfig, events):
        module.build(router, version)
    return router


class HotPath:
    """Serves ``POST /vm/<pools>`` and ``DELETE /vm/<hostname>`` (every version) straight from
    their handlers, without walking FastAPI's route table: they are most of the traffic, and
    the routing and dependency machinery cost more than the work. Same handlers, same answers
    and errors as the routed paths (which stay, for the OpenAPI description)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.versions = {name: Version(name) for name in VERSIONS.values()}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if not (scope["type"] == "http" and await self.handle(scope, receive, send)):
            await self.app(scope, receive, send)

    async def handle(self, scope: dict[str, Any], receive: Any, send: Any) -> bool:
        """Serve the request if it is one of the hot two; False if it is not."""
        method = scope.get("method")
        if method not in ("POST", "DELETE") or not (match := HOT_PATH.match(scope["path"])):
            return False
        request = StarletteRequest(scope, receive)
        try:
            if method == "POST":
                response = await vms.checkout_by_path(request, self.versions[match[1] or ""], match[2])
            else:
                response = await vms.return_one(request, match[2])
        except ApiError as exc:
            response = JSONResponse(exc.body, status_code=exc.status, headers=exc.headers)
        except StoreUnavailable as exc:
            response = await _store_unavailable(request, exc)  # type: ignore[arg-type]
        except Exception as exc:  # as the routed paths: logged, and a 500 that reveals nothing
            response = await _unexpected(request, exc)  # type: ignore[arg-type]
        await response(scope, receive, send)
        return True


class CorralApp(FastAPI):
    hot_path: HotPath | None = None
    body_timeout: float | None = None  # :api: body_timeout

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if self.body_timeout is not None and scope["type"] == "http":
            receive = body_deadline(receive, self.body_timeout)
        if (as_get := head_as_get(scope)) is not None:
            scope, send = as_get, bodiless(send)
        if self.hot_path is not None and scope["type"] == "http":
            scope["app"] = self
            if await self.hot_path.handle(scope, receive, send):
                return
        await super().__call__(scope, receive, send)


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return JSONResponse(exc.body, status_code=exc.status, headers=exc.headers)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code in (404, 405):  # as vmpooler: an unknown route or method is a 404
        return JSONResponse({"ok": False}, status_code=404)
    return JSONResponse({"ok": False, "error": str(exc.detail)}, status_code=exc.status_code)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
    return JSONResponse({"ok": False, "error": problems[:500]}, status_code=400)


async def _elsewhere(request: Request, exc: Exception) -> JSONResponse:
    """What needs the provider, asked of a process that only answers the API."""
    return JSONResponse({"ok": False, "reason": str(exc)}, status_code=503, headers={"Retry-After": "5"})


#: an outage's 503s are logged once, then at most once per this many seconds (with their count)
UNAVAILABLE_LOG_EVERY_S = 30.0


def log_again(last_at: float | None, now: float) -> bool:
    """Whether a 503 for an unavailable store is logged: the first, or one
    :data:`UNAVAILABLE_LOG_EVERY_S` after the last logged. Not one per new reason: within one
    outage the reasons vary (refused, timed out, reading the managers) and would each be logged."""
    return last_at is None or now - last_at >= UNAVAILABLE_LOG_EVERY_S


class UnavailableAnswers:
    """The API's 503s for an unavailable store: counted (a metric), and logged once per streak."""

    def __init__(self) -> None:
        self.last_at: float | None = None
        self.since_logged = 0

    def answered(self, reason: str, method: str, path: str) -> None:
        self.since_logged += 1
        now = time.monotonic()
        if log_again(self.last_at, now):
            log.warning("store unavailable: answering 503", extra={
                "error": reason, "method": method, "path": path, "answers": self.since_logged})
            self.last_at, self.since_logged = now, 0


async def _store_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """The store cannot be reached (Redis down or restarting) or is locked by another process
    (sqlite): a 503 that says so, with Retry-After; the message names the store and the cause,
    never a password."""
    reason = str(exc)
    state = request.app.state
    state.service.metrics.recorder.count("store_unavailable_answers")
    state.unavailable.answered(reason, request.method, loggable_path(request.url.path))
    return JSONResponse({"ok": False, "reason": reason}, status_code=503, headers={"Retry-After": "1"})


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error", extra={"method": request.method, "path": loggable_path(request.url.path)})
    return JSONResponse({"ok": False, "error": "internal error"}, status_code=500)


def tune_gc() -> None:
    """For a long-running server: objects alive after start-up (config, modules, the app) are
    never collected, and young-generation collections run 30 times less often. A request
    allocates short-lived objects by the thousand; at the default threshold (700) the collector
    ran every few requests and its pauses were the slowest requests."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 50, 100)


def create_app(service: Service, *, manage_lifecycle: bool = True, server_gc: bool = False,
               reload_on_hangup: bool = False) -> FastAPI:
    """The API for ``service``; with ``manage_lifecycle`` the app starts and stops it.

    ``server_gc`` applies :func:`tune_gc` once the service has started (for ``corral serve``);
    ``reload_on_hangup`` reloads the configuration file on SIGHUP (the main thread's loop only).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if manage_lifecycle:
            await service.start()
        if server_gc:
            tune_gc()
        if reload_on_hangup:
            reload_on_sighup(service)
        try:
            yield
        finally:
            if manage_lifecycle:
                await service.stop()

    app = CorralApp(title="corral", version=__version__, lifespan=lifespan, docs_url=None,
                  openapi_url="/openapi.json", redoc_url=None,
                  description="vmpooler's REST API. Every route is also served under /api/v2 "
                              "(same answers), /api/v1 and without a prefix (short hostnames and a "
                              "'domain' key).")
    app.state.service = service
    app.body_timeout = service.config.api.body_timeout
    app.state.streams = events.Streams()
    app.state.last_boots = status.LastBoots()
    app.state.unavailable = UnavailableAnswers()
    for prefix, name in VERSIONS.items():
        app.include_router(build_router(Version(name)), prefix=prefix)

    @app.get("/api/openapi.json", include_in_schema=False)
    async def openapi_alias() -> JSONResponse:
        return JSONResponse(app.openapi())

    metrics.install(app, service)  # the Prometheus exposition
    openapi.install(app)  # the completed description, and Swagger UI at /api/docs without a CDN
    dashboard.install(app)  # /dashboard, and / sends browsers there

    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Elsewhere, _elsewhere)
    app.add_exception_handler(StoreUnavailable, _store_unavailable)
    app.add_exception_handler(Exception, _unexpected)
    settings = service.config.config
    if settings.rate_limiting_enabled or settings.request_logger:
        app.add_middleware(HotPath)  # innermost: rate limits and request logs apply to it too
    else:
        app.hot_path = HotPath(None)  # ahead of the whole middleware stack
    if settings.rate_limiting_enabled:
        app.add_middleware(RateLimiter, limits=service.config.rate_limits, service=service)
    if settings.request_logger:
        app.add_middleware(RequestLogger)
    return app

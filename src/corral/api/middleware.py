"""ASGI middleware: rate limiting (vmpooler 3.9's rules and answers), request logging, and
the deadline of a request's body.

Rate limiting is off unless ``rate_limiting_enabled: true`` in ``:config:``. A client is its
token (when it sends X-AUTH-TOKEN) or its IP address; each kind of request has its own
allowance per period (``:rate_limits:``): VM checkouts (POST on a ``/vm`` path), VM returns
(DELETE on a ``/vm`` path), other requests with a token, and everything else. Counts are
kept in memory per server process, in fixed windows that start at a client's first request.
Health checks (GET or HEAD on ``/healthcheck``, any version, with or without a trailing slash)
are never limited nor counted: a load balancer's probe must not take a server out of service.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import time
from typing import Any

from corral.api.common import ApiError
from corral.config import RateLimit, RateLimits
from corral.runtime import Service

log = logging.getLogger("corral.api")

Scope = dict[str, Any]


_HEALTHCHECK_RE = re.compile(r"^(?:/api/v[123])?/healthcheck/?\Z")


def is_healthcheck(method: str, path: str) -> bool:
    """Whether a request is a load balancer's health probe (never rate-limited)."""
    return method in ("GET", "HEAD") and _HEALTHCHECK_RE.match(path) is not None


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value  # type: ignore[no-any-return]
    return None


class RateLimiter:
    """``service``: the service whose tokens count as a client of their own."""

    def __init__(self, app: Any, limits: RateLimits, service: Service, clock: Any = time.monotonic) -> None:
        self.app = app
        self.by_kind: dict[str, RateLimit] = {
            "vm_creation": limits.vm_creation, "vm_deletion": limits.vm_deletion,
            "authenticated": limits.authenticated, "global_per_ip": limits.global_per_ip,
        }
        self.service = service
        self.clock = clock
        self.windows: dict[tuple[str, str], list[float]] = {}  # (kind, client) -> [count, window end]
        self._next_prune = 0.0

    def classify(self, scope: Scope, token: bytes | None) -> tuple[str, RateLimit]:
        method, path = scope["method"], scope["path"]
        if method == "POST" and "/vm" in path:
            kind = "vm_creation"
        elif method == "DELETE" and "/vm" in path:
            kind = "vm_deletion"
        elif token:
            kind = "authenticated"
        else:
            kind = "global_per_ip"
        return kind, self.by_kind[kind]

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or is_healthcheck(scope["method"], scope["path"]):
            return await self.app(scope, receive, send)
        token = _header(scope, b"x-auth-token")
        if token and not self._valid(token):
            token = None  # made-up tokens must not buy a fresh allowance: count by IP
        if token:
            client = "token:" + hashlib.sha256(token).hexdigest()[:32]  # never keep the token itself
        else:
            client = "ip:" + (scope.get("client") or ("unknown", 0))[0]
        kind, limit = self.classify(scope, token)
        now = self.clock()
        self._prune(now)
        window = self.windows.get((kind, client))
        if window is None or now >= window[1]:
            window = self.windows[(kind, client)] = [0, now + limit.period]
        if window[0] >= limit.limit:
            return await self._refuse(send, limit, window[1] - now)
        window[0] += 1
        await self.app(scope, receive, send)

    def _valid(self, token: bytes) -> bool:
        if self.service.authenticator is None:
            return False
        try:
            return self.service.tokens.get_token(hashlib.sha256(token).hexdigest()) is not None
        except Exception:  # the store is down: fall back to counting by IP
            return False

    def _prune(self, now: float) -> None:
        if now < self._next_prune:
            return
        self._next_prune = now + 10.0
        for key in [k for k, w in self.windows.items() if w[1] <= now]:
            del self.windows[key]

    async def _refuse(self, send: Any, limit: RateLimit, wait: float) -> None:
        retry = max(int(wait + 0.999), 1)
        period = int(limit.period) if limit.period == int(limit.period) else limit.period  # 60, not 60.0
        body = json.dumps({"ok": False, "error": "Rate limit exceeded", "limit": limit.limit,
                           "period": period, "retry_after": retry}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"x-ratelimit-limit", str(limit.limit).encode()), (b"x-ratelimit-remaining", b"0"),
                   (b"x-ratelimit-reset", str(int(time.time()) + retry).encode()),
                   (b"retry-after", str(retry).encode())]
        await send({"type": "http.response.start", "status": 429, "headers": headers})
        await send({"type": "http.response.body", "body": body})


_TOKEN_PATH_RE = re.compile(r"(/token/)[^/]+")


def loggable_path(path: str) -> str:
    """``path`` with a token in it (``/token/<token>``) replaced by ``<redacted>``."""
    return _TOKEN_PATH_RE.sub(r"\1<redacted>", path)


class RequestLogger:
    """``request_logger: true``: one log line per request (never headers or bodies)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.monotonic()
        status = 0

        async def sending(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            log.info("request", extra={"method": scope["method"], "path": loggable_path(scope["path"]),
                                       "status": status, "duration": round(time.monotonic() - started, 4)})


def body_deadline(receive: Any, seconds: float, clock: Any = time.monotonic) -> Any:
    """``receive`` of one request, with ``seconds`` from now for its whole body to arrive.

    A client sending its body slower (one byte a second, say) gets a 408 and its connection is
    closed (the answer says ``Connection: close``), rather than holding a task of the server for
    as long as it likes. Once the body is in, what the app receives next (a disconnect) is not
    timed: an event stream may wait on it for hours."""
    deadline = clock() + seconds
    done = False

    async def receiving() -> dict[str, Any]:
        nonlocal done
        if done:
            return await receive()  # type: ignore[no-any-return]
        try:
            async with asyncio.timeout(max(deadline - clock(), 0.0)):
                message: dict[str, Any] = await receive()
        except TimeoutError:
            done = True
            raise ApiError(408, f"request body not received within {seconds:g} s (:api: body_timeout)",
                           headers={"Connection": "close"}) from None
        if message.get("type") != "http.request" or not message.get("more_body", False):
            done = True
        return message

    return receiving

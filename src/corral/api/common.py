"""What every route shares: errors, request bodies, input checks, versions, auth and ownership."""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from corral.auth.base import AuthUnavailable
from corral.auth.guard import LoginRefused
from corral.auth.tokens import hash_token
from corral.domain.limits import MAX_VMS_PER_POOL
from corral.domain.models import TokenRecord, Vm
from corral.domain.names import HOSTNAME_RE, TOKEN_FORMAT_RE, pool_name_problem
from corral.runtime import Service

MAX_BODY_BYTES = 10_240
MAX_JSON_DEPTH = 5
INTEGER_RE = re.compile(r"^[0-9]+\Z")
TAG_KEY_RE = re.compile(r"^[A-Za-z0-9_.-]{1,50}\Z")
# vmpooler's rule for tag values: ASCII letters, digits, space and _ . @ : / - (no tabs, line
# breaks or other Unicode; \w and \s would let those in).
TAG_VALUE_RE = re.compile(r"^[A-Za-z0-9 _.@:/-]{0,255}\Z")
# A whole number from a client is refused by its length before it is converted: Python's int()
# of thousands of digits is slow, and past 4,300 digits it raises.
MAX_INTEGER_DIGITS = 18
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,100}\Z")


WWW_AUTHENTICATE = {"WWW-Authenticate": 'Basic realm="Authentication required"'}


class ApiError(Exception):
    """Answer the request with ``status`` and ``{"ok": false, **body}``."""

    def __init__(self, status: int, error: str | None = None, *, headers: dict[str, str] | None = None,
                 **body: Any) -> None:
        super().__init__(error or str(status))
        self.status = status
        self.body: dict[str, Any] = {"ok": False, **({"error": error} if error else {}), **body}
        self.headers = headers


def respond(body: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status)


def service_of(request: Request) -> Service:
    return request.app.state.service  # type: ignore[no-any-return]


# -- versions ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Version:
    """v2/v3 answer with FQDNs; v1 and the unversioned paths with short names and a "domain" key."""

    name: str

    @property
    def short_names(self) -> bool:
        return self.name in ("v1", "")


def domain_of(service: Service, pool: str) -> str | None:
    p = service.pools.pool(pool)
    return p.domain if p is not None else service.config.default_domain


def hostname(service: Service, version: Version, vm: Vm) -> str:
    domain = domain_of(service, vm.pool)
    if version.short_names or not domain:
        return vm.name
    return f"{vm.name}.{domain}"


def v1_domain(service: Service, vms: list[Vm]) -> str | None:
    """The domain a v1 answer reports: that of the first VM's pool with one (a pool's own
    domain, its dns plugin's, else ``:config:``'s), so it agrees with the VM's FQDN; the
    default one without VMs."""
    for vm in vms:
        if domain := domain_of(service, vm.pool):
            return domain
    return service.config.default_domain


# -- request bodies ------------------------------------------------------------------------------
async def read_body(request: Request) -> bytes:
    """The body, refused (400) past MAX_BODY_BYTES without reading the rest."""
    declared = request.headers.get("content-length")
    if declared is not None and INTEGER_RE.match(declared) and (len(declared) > 9 or int(declared) > MAX_BODY_BYTES):
        raise ApiError(400, f"Request body too large (at most {MAX_BODY_BYTES} bytes)")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ApiError(400, f"Request body too large (at most {MAX_BODY_BYTES} bytes)")
        chunks.append(chunk)
    return b"".join(chunks)


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


class LongNumber(str):
    """A JSON integer too long to be any count corral takes, kept as its digits: never converted
    (Python's int() is slow on thousands of digits and refuses more than 4,300), so the check of
    the key it was sent for refuses it by its length and names that key."""


def _json_int(text: str) -> int | LongNumber:
    return int(text) if len(text) <= 2 * MAX_INTEGER_DIGITS else LongNumber(text)


async def read_json_object(request: Request, *, empty_ok: bool = True) -> dict[str, Any]:
    """The body as a JSON object: 400 naming the problem if it is not one."""
    raw = await read_body(request)
    if not raw.strip():
        if empty_ok:
            return {}
        raise ApiError(400, "Request body is empty; expected a JSON object")
    try:
        data = json.loads(raw, parse_int=_json_int)
    except (ValueError, RecursionError) as exc:
        detail = exc.msg if isinstance(exc, json.JSONDecodeError) else "not valid UTF-8 JSON"
        raise ApiError(400, f"Invalid JSON: {detail}", message="JSON payload could not be parsed") from None
    if not isinstance(data, dict):
        raise ApiError(400, f"Request body must be a JSON object, got {type(data).__name__}")
    if _depth(data) > MAX_JSON_DEPTH:
        raise ApiError(400, f"Request body too complex (nested deeper than {MAX_JSON_DEPTH})")
    return data


# -- input checks ----------------------------------------------------------------------------------
def check_pool_name(name: Any) -> str:
    if (problem := pool_name_problem(name)) is not None:
        raise ApiError(400, f"Invalid pool name {str(name)[:100]!r}: {problem}")
    return name  # type: ignore[no-any-return]


def as_int(value: Any, what: str, low: int, high: int) -> int:
    """An integer given as a JSON number or a string of digits, within [low, high].

    The size is checked before anything is converted or echoed: a number of thousands of
    digits is refused by its length."""
    bounds = f"between {low} and {high}"
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ApiError(400, f"{what} must be a whole number {bounds}, got {type(value).__name__}")
    if isinstance(value, int):
        if value < low or value > high:
            shown = value if abs(value) < 10**MAX_INTEGER_DIGITS else "a larger number"
            raise ApiError(400, f"{what} must be {bounds}, got {shown}")
        return value
    if not INTEGER_RE.match(value):
        raise ApiError(400, f"{what} must be a whole number {bounds}, got {ascii(value[:40])}")
    digits = value.lstrip("0") or "0"
    if len(digits) > MAX_INTEGER_DIGITS:
        raise ApiError(400, f"{what} must be {bounds}, got a number of {len(digits)} digits")
    number = int(digits)
    if number < low or number > high:
        raise ApiError(400, f"{what} must be {bounds}, got {number}")
    return number


def check_hostname(name: str) -> str:
    """A hostname or FQDN from the path, as the short name the store knows (names are
    matched case-insensitively, as DNS does: corral's names are lowercase)."""
    if len(name) > 253 or not HOSTNAME_RE.match(name):
        raise ApiError(400, "Invalid hostname format")
    return name.split(".", 1)[0].lower()


def parse_path_pools(spec: str) -> dict[str, int]:
    """``a+a+b`` -> {"a": 2, "b": 1}, names checked, in order of first appearance."""
    counts: dict[str, int] = {}
    for name in spec.split("+"):
        counts[check_pool_name(name)] = counts.get(name, 0) + 1
    for name, n in counts.items():
        if n > MAX_VMS_PER_POOL:
            raise ApiError(400, f"VM count for {name!r} must be between 1 and {MAX_VMS_PER_POOL}, got {n}")
    return counts


def parse_body_pools(body: dict[str, Any], *, skip: tuple[str, ...] = ()) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name, count in body.items():
        if name in skip:
            continue
        counts[check_pool_name(name)] = as_int(count, f"VM count for {name!r}", 1, MAX_VMS_PER_POOL)
    if not counts:
        raise ApiError(400, "No pools requested; send a JSON object of pool name to count")
    return counts


# -- auth ------------------------------------------------------------------------------------------
def auth_enabled(service: Service) -> bool:
    return service.authenticator is not None


def _unauthorized(error: str) -> ApiError:
    return ApiError(401, error, headers=WWW_AUTHENTICATE)


async def basic_user(request: Request) -> str:
    """The user named by valid HTTP Basic credentials; 401 otherwise (404 without ``:auth:``).

    Behind the login guard: 503 when too many logins are in progress, 429 after repeated
    failures of the user or from the client's address, both with ``Retry-After``."""
    service = service_of(request)
    if service.authenticator is None:
        raise ApiError(404, "authentication is not configured")
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        raise _unauthorized("HTTP Basic credentials are required")
    try:
        user, sep, password = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise _unauthorized("malformed HTTP Basic credentials") from None
    if not sep or not user:
        raise _unauthorized("malformed HTTP Basic credentials")
    try:
        ok = await service.authenticator.login(user, password, request.client.host if request.client else None)
    except LoginRefused as exc:
        raise ApiError(exc.status, str(exc), headers={"Retry-After": str(exc.retry_after)},
                       retry_after=exc.retry_after) from None
    except AuthUnavailable:
        raise ApiError(503, "the authentication service is unavailable") from None
    if not ok:
        raise _unauthorized("invalid user name or password")
    return user


def presented_token(request: Request) -> str | None:
    return request.headers.get("x-auth-token") or None


def token_record(request: Request, *, required: bool) -> TokenRecord | None:
    """The valid token sent in X-AUTH-TOKEN (marking it used).

    Without ``:auth:`` tokens mean nothing (None). With it, a token that is sent must be
    valid (401), and ``required`` makes sending one compulsory.
    """
    service = service_of(request)
    if service.authenticator is None:
        return None
    token = presented_token(request)
    if token is None:
        if required:
            raise _unauthorized("an X-AUTH-TOKEN header is required")
        return None
    record = service.tokens.get_token(hash_token(token)) if TOKEN_FORMAT_RE.match(token) else None
    if record is None:
        raise _unauthorized("the X-AUTH-TOKEN is not valid")
    service.tokens.touch_token(record.hash, time.time())
    return record


def check_owner(request: Request, vm: Vm, *, token_needed: bool) -> TokenRecord | None:
    """A VM checked out with a token may be changed only by that token's user (401/403).

    As vmpooler: a token sent for a VM checked out without one is not looked at unless the
    change needs a token (``token_needed``), so a stale token in a client's settings does not
    stop it returning or tagging such a VM."""
    owned = auth_enabled(service_of(request)) and vm.user is not None
    if not owned and not token_needed:
        return None
    record = token_record(request, required=token_needed or owned)
    if owned and record is not None and record.user != vm.user:
        raise ApiError(403, f"VM {vm.name} belongs to another user")
    return record


def experimental(request: Request) -> None:
    if not service_of(request).config.config.experimental_features:
        raise ApiError(405, "this endpoint needs experimental_features: true in :config:")


def ruby_time(ts: float | None) -> str | None:
    """A time as vmpooler writes it: ``2015-04-28 19:17:47 -0700``."""
    if ts is None:
        return None
    return time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(ts))


def rfc3339(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(ts))

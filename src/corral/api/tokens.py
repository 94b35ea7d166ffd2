"""Token routes: create, list and delete with HTTP Basic credentials; look one up by itself.

Only a token's SHA-256 hash is stored. A listing cannot show tokens, so it is keyed by a
hint (the first and last four characters); a user sees and deletes only their own tokens.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from corral.api.common import (
    TOKEN_FORMAT_RE,
    ApiError,
    Version,
    basic_user,
    respond,
    ruby_time,
    service_of,
)
from corral.auth.tokens import hash_token, new_token, token_hint
from corral.domain.models import TokenRecord
from corral.runtime import Service


def _lookup(service: Service, token: str) -> TokenRecord | None:
    if service.authenticator is None:
        raise ApiError(404, "authentication is not configured")
    if not TOKEN_FORMAT_RE.match(token):
        return None
    return service.tokens.get_token(hash_token(token))


def build(router: APIRouter, version: Version) -> None:
    schema = version.name == "v3"

    @router.post("/token", include_in_schema=schema)
    async def create_token(request: Request) -> JSONResponse:
        """A new token for the user of the HTTP Basic credentials."""
        user = await basic_user(request)
        service = service_of(request)
        token = new_token()
        service.tokens.add_token(TokenRecord(hash=hash_token(token), user=user, created_at=time.time(),
                                            hint=token_hint(token)))
        return respond({"ok": True, "token": token})

    @router.get("/token", include_in_schema=schema)
    async def list_tokens(request: Request) -> JSONResponse:
        """The caller's tokens, keyed by hint; 404 when there are none."""
        user = await basic_user(request)
        records = service_of(request).tokens.user_tokens(user)
        body: dict[str, object] = {"ok": bool(records)}
        for record in records:
            body[record.hint] = {"created": ruby_time(record.created_at),
                                 "last": ruby_time(record.last_used_at) or "never"}
        return respond(body, 200 if records else 404)

    @router.get("/token/{token}", include_in_schema=schema)
    async def show_token(request: Request, token: str) -> JSONResponse:
        """A token's user, times and running VMs; knowing the token is the credential."""
        service = service_of(request)
        record = _lookup(service, token)
        if record is None:
            raise ApiError(404, "no such token")
        running = [vm.name for vm in service.pools.checked_out() if vm.token == record.hash]
        info: dict[str, object] = {"user": record.user, "created": ruby_time(record.created_at),
                                   "last": ruby_time(record.last_used_at) or "never"}
        if running:
            info["vms"] = {"running": running}
        return respond({"ok": True, token: info})

    @router.delete("/token/{token}", include_in_schema=schema)
    async def delete_token(request: Request, token: str) -> JSONResponse:
        """Delete one of the caller's own tokens."""
        user = await basic_user(request)
        service = service_of(request)
        record = _lookup(service, token)
        if record is None:
            raise ApiError(404, "no such token")
        if record.user != user:
            raise ApiError(403, "the token belongs to another user")
        service.tokens.delete_token(record.hash)
        return respond({"ok": True})

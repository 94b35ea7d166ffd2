"""``HEAD`` on every ``GET`` route, answered as ``GET`` without a body (as Sinatra, and so
vmpooler, does). The route tables stay GET-only, so the API description lists each route once."""

from __future__ import annotations

from typing import Any

# Set in the scope of a HEAD request served by a GET route: a route whose answer never ends
# (the event stream) checks it and answers with its headers only.
HEAD_FLAG = "corral.head"


def head_as_get(scope: dict[str, Any]) -> dict[str, Any] | None:
    """The scope to serve a HEAD request with (a GET, flagged); None for any other request."""
    if scope.get("type") != "http" or scope.get("method") != "HEAD":
        return None
    return {**scope, "method": "GET", HEAD_FLAG: True}


def bodiless(send: Any) -> Any:
    """``send`` that passes a response's start and drops its body (keeping the end of it)."""

    async def sending(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            message = {**message, "body": b""}
        await send(message)

    return sending

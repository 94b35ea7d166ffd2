"""The uvicorn server corral runs its API on, and the socket it listens on."""

from __future__ import annotations

import logging
import socket
from typing import Any

import uvicorn

log = logging.getLogger("corral.api")


class CannotListen(Exception):
    """The address cannot be listened on; the message says which and why, in one line."""


def shown_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def listen_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host``:``port``, for :meth:`Server.run`.

    Bound first, before the pool manager starts: a port in use fails here, before any VM is
    touched. It starts listening once the server has started, so a client meanwhile is
    refused rather than left waiting.
    """
    where = shown_address(host, port)
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                              flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise CannotListen(f"cannot listen on {where}: {_reason(exc)}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: a restart need not wait
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise CannotListen(f"cannot listen on {where}: {_reason(exc)}") from None
    return sock


def _reason(exc: OSError) -> str:
    text = exc.strerror or str(exc)
    return text[:1].lower() + text[1:]


class Server(uvicorn.Server):
    """uvicorn's server, ending the open event streams first when it stops.

    uvicorn waits for every response in progress before it shuts down; an event stream
    never finishes on its own, so without this a ``corral serve`` with a client attached
    would not stop.
    """

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and sockets:  # uvicorn names the address only of sockets it made itself
            host, port = sockets[0].getsockname()[:2]
            log.info("listening", extra={"url": f"http://{shown_address(host, port)}"})

    async def shutdown(self, sockets: Any = None) -> None:
        app = self.config.app
        streams = getattr(getattr(app, "state", None), "streams", None)
        if streams is not None:
            streams.close_all()
        await super().shutdown(sockets)

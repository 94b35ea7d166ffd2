"""The uvicorn server corral runs its API on, and the socket it listens on."""

from __future__ import annotations

import logging
import socket
from typing import Any

import uvicorn

from corral.config import ApiConfig

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


#: Descriptors a process needs besides its clients' connections: the store, the providers'
#: sessions, Redis, logs, the listening socket, Python's own files.
SPARE_FILES = 256


def uvicorn_config(app: Any, limits: ApiConfig, **kwargs: Any) -> uvicorn.Config:
    """uvicorn's settings for ``app`` with the limits of ``:api:`` (the connections it holds at
    once, the idle keep-alive timeout); ``kwargs`` are uvicorn's other settings."""
    return uvicorn.Config(app, limit_concurrency=limits.max_connections,
                          timeout_keep_alive=limits.keepalive_timeout, **kwargs)


def open_files_needed(limits: ApiConfig) -> int:
    """The descriptors a process serving ``limits`` may need at once."""
    return limits.max_connections + SPARE_FILES


def open_files_plan(soft: int, hard: int, need: int) -> tuple[int | None, str | None]:
    """What to do about the open-files limit: the soft limit to set (None: leave it) and a
    warning to log (None: nothing to say). ``resource.RLIM_INFINITY`` is -1."""
    unlimited = hard < 0
    if soft < 0 or soft >= need:
        return None, None
    if unlimited or hard >= need:
        return need, None
    warning = (f"open-files limit {hard} (hard) is below the {need} descriptors :api: max_connections needs; "
               f"beyond about {max(hard - SPARE_FILES, 0)} connections new clients are refused by the system")
    return (hard if hard > soft else None), warning


def raise_open_files(limits: ApiConfig) -> None:
    """Raise this process's soft open-files limit to what ``limits`` needs, where the hard limit
    allows; log what was done, and a warning where it falls short."""
    try:
        import resource
    except ImportError:  # not on this system: nothing to raise
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = open_files_needed(limits)
    target, warning = open_files_plan(soft, hard, need)
    if target is not None:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            log.info("open-files limit raised", extra={"from": soft, "to": target})
        except (ValueError, OSError) as exc:
            warning = f"cannot raise the open-files limit from {soft} to {target}: {exc}"
    if warning is not None:
        log.warning(warning)


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

"""The servers ``corral bench api`` measures, each run in a process of its own.

``python -m corral.bench.api_server corral --config FILE --port N [--role all|api]`` serves a
real corral (the same assembly as ``corral serve``: configuration, service, FastAPI app; with
``--role api`` on the Redis store, the API only, the managers being other processes);
``python -m corral.bench.api_server baseline --port N`` serves :func:`baseline_app`, which
answers the same two requests with canned JSON and does no work: the ceiling of the HTTP
stack. Both run uvicorn with the same settings (uvloop, httptools, no access log), on
127.0.0.1, until SIGINT or SIGTERM.

With ``--profile FILE`` the process profiles itself with cProfile between a SIGUSR1 and
a SIGUSR2 (the orchestrator sends them around each measured run, so start-up and the
initial fill stay out), and writes the statistics to ``FILE`` (``pstats`` format) when it
stops.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import faulthandler
import json
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn

if TYPE_CHECKING:
    from corral.config import ApiConfig

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

BASELINE_HOSTNAME = "bench-baseline-vm.bench.example"


def _json_response(body: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    return ({"type": "http.response.start", "status": 200, "headers": headers},
            {"type": "http.response.body", "body": body})


_OK = _json_response(b'{"ok":true}')


def _checkout_answer(pool: str) -> tuple[dict[str, Any], dict[str, Any]]:
    return _json_response(json.dumps({"ok": True, pool: {"hostname": BASELINE_HOSTNAME}}).encode())


async def baseline_app(scope: Scope, receive: Receive, send: Send) -> None:
    """A raw ASGI app: ``POST /api/v3/vm/<pool>`` and ``DELETE /api/v3/vm/<name>``, canned."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    if scope["method"] == "POST":
        start, body = _checkout_answer(scope["path"].rsplit("/", 1)[-1])
    else:
        start, body = _OK
    await send(start)
    await send(body)


def corral_app(config_path: Path, role: str = "all", manager_id: str | None = None) -> tuple[Any, ApiConfig]:
    """The corral app for a configuration file, as ``corral serve --role ROLE`` builds it, and
    the limits of its ``:api:`` section."""
    from corral.api import create_app
    from corral.config import load_config
    from corral.ha.roles import Role
    from corral.runtime import build_service

    config, _warnings = load_config(config_path)
    return create_app(build_service(config, Role(role), manager_id), server_gc=True), config.api


def _print_tasks(*_: Any) -> None:
    try:
        tasks = asyncio.all_tasks(asyncio.get_running_loop())
    except RuntimeError:
        return
    print(f"-- {len(tasks)} asyncio tasks", file=sys.stderr)
    for task in tasks:
        task.print_stack(limit=8, file=sys.stderr)
    sys.stderr.flush()


def serve(app: Any, port: int, profile: Path | None = None, limits: ApiConfig | None = None) -> None:
    """Serve ``app`` on 127.0.0.1:``port`` with the benchmark's uvicorn settings and, for corral,
    the limits of its ``:api:`` section (as ``corral serve`` does)."""
    from corral.api.server import raise_open_files, uvicorn_config

    logging.basicConfig(level=logging.WARNING)
    faulthandler.register(signal.SIGQUIT)  # `kill -QUIT` prints where a stuck server's thread is
    signal.signal(signal.SIGHUP, _print_tasks)  # `kill -HUP` prints where its asyncio tasks are
    settings: dict[str, Any] = {"host": "127.0.0.1", "port": port, "loop": "uvloop", "http": "httptools",
                                "access_log": False, "log_config": None, "log_level": "warning", "lifespan": "on"}
    if limits is not None:
        raise_open_files(limits)
        config = uvicorn_config(app, limits, **settings)
    else:
        config = uvicorn.Config(app, **settings)
    server = uvicorn.Server(config)
    if profile is None:
        server.run()
        return
    profiler = cProfile.Profile()
    signal.signal(signal.SIGUSR1, lambda *_: profiler.enable())
    signal.signal(signal.SIGUSR2, lambda *_: profiler.disable())
    try:
        server.run()
    finally:
        profiler.disable()
        profiler.dump_stats(str(profile))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m corral.bench.api_server")
    parser.add_argument("kind", choices=["corral", "baseline"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--config", type=Path, help="corral's configuration file (for kind corral)")
    parser.add_argument("--role", choices=["all", "api"], default="all", help="corral's role (api: Redis only)")
    parser.add_argument("--manager-id", help="corral's manager name (role all on Redis)")
    parser.add_argument("--profile", type=Path, help="run under cProfile and write the statistics here")
    args = parser.parse_args(argv)
    if args.kind == "corral":
        if args.config is None:
            parser.error("corral needs --config")
        app, limits = corral_app(args.config, args.role, args.manager_id)
    else:
        app, limits = baseline_app, None
    serve(app, args.port, args.profile, limits)


if __name__ == "__main__":
    main()

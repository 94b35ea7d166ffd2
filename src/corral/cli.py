"""The ``corral`` command: serve, config check, status, checkout, bench."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from corral import __version__
from corral.bench.cli import bench_app
from corral.ha.roles import Role

if TYPE_CHECKING:
    from corral.config import Config

app = typer.Typer(help="corral: pools of ready VMs, handed out in milliseconds.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)
config_app = typer.Typer(help="Work with configuration files.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(bench_app, name="bench")
auth_app = typer.Typer(help="Users and passwords for the static auth provider.", no_args_is_help=True)
app.add_typer(auth_app, name="auth")

ConfigPath = Annotated[Path, typer.Option("--config", "-c", help="Configuration file (vmpooler.yaml format).",
                                          envvar="VMPOOLER_CONFIG_FILE")]
Url = Annotated[str, typer.Option("--url", help="Base URL of a running corral.", envvar="CORRAL_URL")]


def _load(path: Path):  # type: ignore[no-untyped-def]
    from corral.config import ConfigError, load_config

    try:
        config, warnings = load_config(path)
    except ConfigError as exc:
        typer.echo(f"error: {path}: configuration is invalid ({len(exc.problems)} problem"
                   f"{'s' if len(exc.problems) != 1 else ''}):", err=True)
        for problem in exc.problems:
            typer.echo(f"  {problem}", err=True)
        raise typer.Exit(2) from None
    for warning in warnings:
        typer.echo(f"warning: {warning}", err=True)
    return config


@app.command()
def version() -> None:
    """Print corral's version."""
    typer.echo(__version__)


class LogLevel(StrEnum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"
    critical = "critical"


class LogFormat(StrEnum):
    text = "text"
    json = "json"


@app.command()
def serve(
    config: ConfigPath,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8080,
    log_format: Annotated[LogFormat, typer.Option(help="Log format.", case_sensitive=False)] = LogFormat.text,
    log_level: Annotated[LogLevel, typer.Option(help="Log level.", case_sensitive=False)] = LogLevel.info,
    role: Annotated[Role, typer.Option(help="What this process does: all (the API and the pools), api (the API "
                                            "only) or manager (the pools only, no API). api and manager need "
                                            "the Redis store.", case_sensitive=False)] = Role.ALL,
    manager_id: Annotated[str | None, typer.Option(help="This manager's name among the site's managers "
                                                        "(default: :ha: manager_id, else host:pid).")] = None,
) -> None:
    """Run the pool manager and the API.

    The port is taken before anything else starts: a port in use stops corral before any VM
    or store record is touched. With the Redis store, several processes share the pools:
    for example two `corral serve --role api` processes behind a balancer and two
    `corral serve --role manager` processes.
    """
    import uvicorn

    from corral.api import create_app
    from corral.api.server import CannotListen, Server, listen_socket
    from corral.config import ConfigError
    from corral.logs import setup_logging
    from corral.runtime import build_service

    setup_logging(log_format.value, log_level.value)  # type: ignore[arg-type]
    cfg = _load(config)
    if role is Role.MANAGER:
        _run_manager(cfg, manager_id)
        return
    try:
        sock = listen_socket(host, port)
    except CannotListen as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    with sock:
        try:
            service = build_service(cfg, role, manager_id)
        except ConfigError as exc:
            for problem in exc.problems:
                typer.echo(f"error: {problem}", err=True)
            raise typer.Exit(2) from None
        app = create_app(service, server_gc=True)
        Server(uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False)).run(sockets=[sock])


def _run_manager(cfg: Config, manager_id: str | None) -> None:
    """Run a manager with no API until SIGTERM or SIGINT, then drain (hand its pools over)."""
    import asyncio
    import signal

    from corral.config import ConfigError
    from corral.runtime import build_manager

    try:
        cluster = build_manager(cfg, manager_id)
    except ConfigError as exc:
        for problem in exc.problems:
            typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(2) from None

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await cluster.start()
        ended = asyncio.ensure_future(cluster.wait())
        await asyncio.wait([ended, asyncio.ensure_future(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
        await cluster.stop()

    asyncio.run(run())


@config_app.command("check")
def config_check(path: Annotated[Path, typer.Argument(help="Configuration file to check.")]) -> None:
    """Check a configuration file; exit 2 and name every problem if it is invalid."""
    config = _load(path)
    pools = config.domain_pools()
    typer.echo(f"{path}: ok: {len(pools)} pools, {sum(p.size for p in pools)} VMs, "
               f"{len(config.providers)} providers, store {config.store.type}")


@app.command()
def status(url: Url = "http://127.0.0.1:8080") -> None:
    """Show the status of a running corral."""
    import httpx

    try:
        body = httpx.get(f"{url}/api/v3/status", timeout=10).json()
    except httpx.HTTPError as exc:
        typer.echo(f"error: cannot reach corral at {url}: {exc}", err=True)
        raise typer.Exit(1) from None
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"corral at {url}")
    for col in ("pool", "ready", "pending", "running", "size"):
        table.add_column(col, justify="left" if col == "pool" else "right")
    for name, p in sorted(body.get("pools", {}).items()):
        table.add_row(name, str(p["ready"]), str(p["pending"]), str(p["running"]), str(p["max"]))
    console = Console()
    console.print(table)
    managers = body.get("managers")
    if isinstance(managers, dict) and managers.get("live") is not None:
        live = managers["live"]
        shown = Table(title=f"{len(live)} manager{'' if len(live) == 1 else 's'}")
        for col in ("manager", "state", "score", "pools", "acting", "lease left s"):
            shown.add_column(col, justify="right" if col in ("score", "lease left s") else "left")
        for name, m in sorted(live.items()):
            left = m.get("lease_left_s")
            shown.add_row(name + (" (this process)" if name == managers.get("me") else ""), str(m.get("state", "")),
                          str(m.get("score", "")), ", ".join(m.get("pools", [])), ", ".join(m.get("acting", [])),
                          "" if left is None else f"{left:.1f}")
        console.print(shown)
    typer.echo(body.get("status", {}).get("message", ""))


@app.command()
def checkout(
    pools: Annotated[list[str], typer.Argument(help="Pool names; repeat a name for several VMs.")],
    url: Url = "http://127.0.0.1:8080",
) -> None:
    """Check out VMs from a running corral (all or nothing) and print the answer."""
    import httpx

    try:
        resp = httpx.post(f"{url}/api/v3/vm/{'+'.join(pools)}", timeout=30)
    except httpx.HTTPError as exc:
        typer.echo(f"error: cannot reach corral at {url}: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps(resp.json(), indent=2))
    if resp.status_code != 200:
        raise typer.Exit(1)


@auth_app.command("hash-password")
def auth_hash_password(
    stdin: Annotated[bool, typer.Option("--stdin", help="Read the password from the first line of standard input.")]
    = False,
) -> None:
    """Print a password hash for ``:auth: users:`` (the static provider). Asks for the password
    twice unless --stdin is given; the password itself is never printed."""
    import sys

    from corral.auth.passwords import hash_password

    if stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    if not password:
        typer.echo("error: the password is empty", err=True)
        raise typer.Exit(2)
    typer.echo(hash_password(password))


def main() -> None:
    app()


if __name__ == "__main__":
    main()

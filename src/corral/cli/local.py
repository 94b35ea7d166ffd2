"""The commands that run here: version, serve, config check, auth hash-password."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from corral import __version__
from corral.cli.remote import CliProblem, PasswordStdin, read_password
from corral.cli.text import count, is_terminal, slow_status
from corral.ha.roles import Role

if TYPE_CHECKING:
    from corral.config import Config

ConfigPath = Annotated[Path, typer.Option("--config", "-c", help="Configuration file (vmpooler.yaml format).",
                                          envvar="VMPOOLER_CONFIG_FILE")]
BIG_FILE = 1_000_000  # bytes: a status line at once while a file this big is checked


def load(path: Path) -> Config:
    """The configuration in ``path``, its warnings on standard error; exit 2 naming every
    problem when it is invalid."""
    from corral.config import ConfigError, load_config

    try:
        size = path.stat().st_size
    except OSError:
        size = 0
    try:
        with slow_status(f"checking {path} ({size / 1e6:.1f} MB)", after=0.0 if size >= BIG_FILE else 1.0):
            config, warnings = load_config(path)
    except ConfigError as exc:
        typer.echo(f"error: {path}: configuration is invalid ({count(len(exc.problems), 'problem')}):", err=True)
        for problem in exc.problems:
            typer.echo(f"  {problem}", err=True)
        raise typer.Exit(2) from None
    for warning in warnings:
        typer.echo(f"warning: {warning}", err=True)
    return config


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
                                                        "(default: manager_id of the ha section, else "
                                                        "host:pid).")] = None,
) -> None:
    """Run the pool manager and the API.

    The port is taken before anything else starts: a port in use stops corral before any VM
    or store record is touched. With the Redis store, several processes share the pools:
    for example two processes with --role api behind a balancer and two with --role manager.
    """
    from corral.api import create_app
    from corral.api.server import CannotListen, Server, listen_socket, raise_open_files, uvicorn_config
    from corral.config import ConfigError
    from corral.logs import setup_logging
    from corral.runtime import build_service

    setup_logging(log_format.value, log_level.value)
    cfg = load(config)
    if role is Role.MANAGER:
        _run_manager(cfg, manager_id, config.resolve())
        return
    try:
        sock = listen_socket(host, port)
    except CannotListen as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    with sock:
        try:
            service = build_service(cfg, role, manager_id, path=config.resolve())
        except ConfigError as exc:
            for problem in exc.problems:
                typer.echo(f"error: {problem}", err=True)
            raise typer.Exit(2) from None
        app = create_app(service, server_gc=True, reload_on_hangup=True)
        raise_open_files(cfg.api)
        Server(uvicorn_config(app, cfg.api, host=host, port=port, log_config=None,
                              access_log=False)).run(sockets=[sock])


def _run_manager(cfg: Config, manager_id: str | None, path: Path) -> None:
    """Run a manager with no API until SIGTERM or SIGINT, then drain (hand its pools over);
    SIGHUP reloads its configuration file."""
    import asyncio
    import signal

    from corral.config import ConfigError
    from corral.runtime import build_manager, reload_on_sighup

    try:
        manager = build_manager(cfg, manager_id, path)
    except ConfigError as exc:
        for problem in exc.problems:
            typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(2) from None

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        reload_on_sighup(manager)
        cluster = manager.cluster
        await cluster.start()
        ended = asyncio.ensure_future(cluster.wait())
        await asyncio.wait([ended, asyncio.ensure_future(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
        await cluster.stop()

    asyncio.run(run())


def config_summary(config: Config) -> str:
    pools = config.domain_pools()
    return (f"{count(len(pools), 'pool')}, {count(sum(p.size for p in pools), 'VM')}, "
            f"{count(len(config.providers), 'provider')}, store {config.store.type}")


def config_check(path: Annotated[Path, typer.Argument(help="Configuration file to check.", metavar="FILE")]) -> None:
    """Check a configuration file; exit 2 and name every problem if it is invalid.

    On a terminal a status line shows while a big file is checked.
    """
    typer.echo(f"{path}: ok: {config_summary(load(path))}")


def auth_hash_password(
    stdin: PasswordStdin = False,
) -> None:
    """Print a password hash for the users of the static auth provider.

    Asks for the password twice on a terminal; reads the first line of standard input when it
    is not a terminal (a pipe or a file) or with --password-stdin. The password itself is never printed.
    """
    from corral.auth.passwords import hash_password

    try:
        if stdin or not is_terminal(sys.stdin):
            password = read_password(sys.stdin)
        else:
            password = typer.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)  # never empty
    except CliProblem as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(int(exc.code)) from None
    typer.echo(hash_password(password))

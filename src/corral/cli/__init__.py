"""The ``corral`` command: serve and check configurations here (``local``); check out,
return and look at VMs (``vms``), tokens (``tokens``) and the status (``status``) of a
running corral; benchmarks (``corral.bench.cli``)."""

from __future__ import annotations

from typing import Any

import typer
from typer.main import get_command

from corral.bench.cli import bench_app
from corral.cli import local, reload, status, tokens, vms
from corral.cli.remote import EXIT_CODES_HELP
from corral.cli.text import plain_flags

app = typer.Typer(help="corral: pools of ready VMs, handed out in milliseconds.", no_args_is_help=True,
                  add_completion=True, pretty_exceptions_enable=False, rich_markup_mode="rich",
                  epilog="Example: corral serve --config vmpooler.yaml\n\n" + EXIT_CODES_HELP)

app.command(epilog="Example: corral version")(local.version)
app.command(epilog="Example: corral serve --config vmpooler.yaml --port 8080")(local.serve)
app.command(epilog="Example: corral status --url http://corral.example.com:8080")(status.status)
app.command(epilog="Examples: corral checkout debian-12 ubuntu=2 --token \"$CORRAL_TOKEN\", or with a wait for "
                   "ready VMs: corral checkout debian-12=3 --wait --timeout 600")(vms.checkout)
app.command("return", epilog="Example: corral return abcdefghijklmno.example.com")(vms.return_vms)
app.command(epilog="Example: corral vm abcdefghijklmno")(vms.vm)
app.add_typer(tokens.token_app, name="token")

config_app = typer.Typer(help="Work with configuration files.", no_args_is_help=True,
                         epilog="Example: corral config check vmpooler.yaml")
config_app.command("check", epilog="Example: corral config check /etc/vmpooler/vmpooler.yaml")(local.config_check)
config_app.command("reload", epilog="Example: corral config reload --url http://corral:8080 --token "
                                    "\"$CORRAL_TOKEN\"")(reload.config_reload)
app.add_typer(config_app, name="config")

app.add_typer(bench_app, name="bench")

auth_app = typer.Typer(help="Users and passwords for the static auth provider.", no_args_is_help=True,
                       epilog="Example: corral auth hash-password")
auth_app.command("hash-password", epilog="Example: printf '%s\\n' \"$PASSWORD\" | corral auth "
                                         "hash-password")(local.auth_hash_password)
app.add_typer(auth_app, name="auth")


def command() -> Any:  # typer's own click command
    """The ``corral`` command as typer runs it: the typer app, flags shown without a type."""
    return plain_flags(get_command(app))


def main() -> None:
    command()(prog_name="corral")

"""``corral token create|list|delete``: a user's tokens, with the user's password (HTTP Basic).

The password is asked for on a terminal without echo, or read from the first line of
standard input when that is not a terminal or with --password-stdin; it is never printed.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Annotated

import typer

from corral.cli.remote import (
    DEFAULT_URL,
    AsJson,
    CliProblem,
    Exit,
    PasswordStdin,
    Url,
    basic_header,
    check_token,
    check_user,
    connect,
    read_password,
    reported,
    shown_url,
)
from corral.cli.text import cell, count, is_terminal

token_app = typer.Typer(help="Create, list and delete your tokens (needs the server's auth).",
                        no_args_is_help=True, epilog="Example: corral token create --user alice")

User = Annotated[str | None, typer.Option("--user", "-u", help="Your user name (also CORRAL_USER).",
                                          envvar="CORRAL_USER", show_envvar=False, show_default=False)]


def credentials(user: str | None, password_stdin: bool) -> dict[str, str]:
    """The HTTP Basic header for ``user``, asking for the password (hidden) on a terminal."""
    name = check_user(user)
    if password_stdin or not is_terminal(sys.stdin):
        password = read_password(sys.stdin)
    else:
        password = typer.prompt(f"Password for {name}", hide_input=True, err=True)  # stdout keeps the answer
    return basic_header(name, password)


@token_app.command("create", epilog="Example: corral token create --user alice --url http://corral:8080")
def create(user: User = None, password_stdin: PasswordStdin = False, url: Url = DEFAULT_URL) -> None:
    """Create a token and print it, once: keep it (corral stores only its hash)."""
    with reported():
        remote = connect(url)
        answer = remote.call("POST", "/token", headers=credentials(user, password_stdin))
        if not answer.ok:
            raise answer.problem(remote.url, "token create")
        token = answer.body.get("token") if isinstance(answer.body, Mapping) else None
        if not isinstance(token, str):
            raise CliProblem(f"corral at {shown_url(remote.url)} answered without a token", Exit.UNREACHABLE)
        typer.echo(token)


@token_app.command("list", epilog="Example: printf '%s\\n' \"$PASSWORD\" | corral token list --user alice")
def list_tokens(user: User = None, password_stdin: PasswordStdin = False, url: Url = DEFAULT_URL,
                as_json: AsJson = False) -> None:
    """List your tokens: a hint of each (its first and last four characters), when it was
    made and when it was last used."""
    with reported():
        remote = connect(url)
        name = check_user(user)
        answer = remote.call("GET", "/token", headers=credentials(name, password_stdin))
        body = answer.body if isinstance(answer.body, Mapping) else {}
        none = answer.status == 404 and body.get("ok") is False and len(body) == 1  # no tokens, not no auth
        if not answer.ok and not none:
            raise answer.problem(remote.url, "token list")
        if as_json:
            import json

            typer.echo(json.dumps(body, indent=2))
            return
        rows = [(hint, info) for hint, info in body.items() if isinstance(info, Mapping)]
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"{name}: {count(len(rows), 'token')}")
        for col in ("token", "created", "last used"):
            table.add_column(col)
        for hint, info in rows:
            table.add_row(cell(hint), cell(info.get("created")), cell(info.get("last")))
        Console().print(table)


@token_app.command("delete", epilog="Example: corral token delete --user alice \"$TOKEN\"")
def delete(
    token: Annotated[str, typer.Argument(help="The token to delete (the whole token, not its hint).",
                                         show_default=False)],
    user: User = None, password_stdin: PasswordStdin = False, url: Url = DEFAULT_URL,
) -> None:
    """Delete one of your tokens."""
    with reported():
        remote = connect(url)
        checked = check_token(token, "the token to delete")
        if checked is None:
            raise CliProblem("name the token to delete", Exit.USAGE)
        answer = remote.call("DELETE", f"/token/{checked}", headers=credentials(user, password_stdin))
        if not answer.ok:
            raise answer.problem(remote.url, "token delete")
        typer.echo("deleted the token")

"""``corral config reload``: have a running corral read its configuration file again."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import typer

from corral.cli.remote import DEFAULT_URL, AsJson, CliProblem, Exit, Token, Url, connect, reason_of, reported


def summary(body: Mapping[str, Any]) -> list[str]:
    """The lines that tell what a reload changed (from the API's answer)."""
    if not body.get("changed"):
        return ["reloaded: nothing changed"]
    lines = ["reloaded"]
    named = (("pools added", "pools_added"), ("pools removed (draining)", "pools_removed"),
             ("providers added", "providers_added"), ("scheduling", "scheduling"), ("taken in", "other"))
    for label, key in named:
        if body.get(key):
            lines.append(f"  {label}: {', '.join(map(str, body[key]))}")
    for label, key in (("pools changed", "pools_changed"), ("providers changed", "providers_changed")):
        if isinstance(body.get(key), Mapping) and body[key]:
            lines.append(f"  {label}: " + "; ".join(f"{name} ({', '.join(map(str, keys))})"
                                                    for name, keys in body[key].items()))
    if body.get("auth"):
        lines.append("  auth: replaced")
    if body.get("restart_needed"):
        lines.append(f"  restart needed for: {', '.join(map(str, body['restart_needed']))}")
    return lines


def problems_of(body: Any) -> Sequence[str]:
    problems = body.get("problems") if isinstance(body, Mapping) else None
    return [str(p) for p in problems] if isinstance(problems, list) else []


def config_reload(url: Url = DEFAULT_URL, token: Token = None, as_json: AsJson = False) -> None:
    """Have the corral at --url read its configuration file again and apply it (as SIGHUP does).

    Prints what changed, and what waits for a restart. An invalid file changes nothing: every
    problem is printed and the exit code is 2.
    """
    with reported():
        remote = connect(url, token)
        answer = remote.call("POST", "/config/reload")
        problems = problems_of(answer.body)
        if answer.status == 400 and problems:
            for problem in problems:
                typer.echo(f"  {problem}", err=True)
            raise CliProblem(f"config reload: {reason_of(answer.body)}", Exit.USAGE)
        if not answer.ok:
            raise answer.problem(remote.url, "config reload")
        if as_json:
            typer.echo(json.dumps(answer.body, indent=2))
            return
        for line in summary(answer.body):
            typer.echo(line)
        for warning in answer.body.get("warnings") or []:
            typer.echo(f"warning: {warning}", err=True)

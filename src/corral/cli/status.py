"""``corral status``: the pools, hosts, runner and managers of a running corral."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import typer

from corral.cli.remote import DEFAULT_URL, AsJson, Token, Url, connect, reported, shown_url
from corral.cli.text import cell, count

VIEWS = "pools,hosts,runner,managers,status"


def _percent(value: Any) -> str:
    return f"{value:.0f}%" if isinstance(value, int | float) else ""


def host_state(row: Mapping[str, Any]) -> str:
    """A host's state in a few words: down, not up, in maintenance, its health otherwise."""
    words = []
    if row.get("down"):
        words.append("down")
    elif not row.get("up", True):
        words.append("not responding")
    if row.get("maintenance"):
        words.append("maintenance")
    health = row.get("health")
    if not words and isinstance(health, str):
        words.append(health)
    return ", ".join(words)


def runner_line(runner: Mapping[str, Any]) -> str:
    """The runner's queue and calls in one sentence."""
    by_class = runner.get("queued_by_class") or {}
    queued = count(int(runner.get("queued", 0)), "work item")
    classes = ", ".join(f"{name} {n}" for name, n in sorted(by_class.items()) if n)
    return (f"runner: {queued} queued{f' ({classes})' if classes else ''} of at most {runner.get('queue_limit', '?')}; "
            f"{count(int(runner.get('calls_in_flight', 0)), 'call')} in flight, "
            f"{runner.get('calls_waiting', 0)} waiting; {count(int(runner.get('created', 0)), 'VM')} created, "
            f"{count(int(runner.get('failed', 0)), 'failure')}")


def status(url: Url = DEFAULT_URL, token: Token = None, as_json: AsJson = False) -> None:
    """Show the pools, hosts, runner and managers of a running corral.

    Pools: ready, pending and running VMs against each pool's size. Hosts: each provider's hosts
    with their CPU and memory use, VMs and state. Managers: with several processes on Redis,
    which manager runs which pools.
    """
    with reported():
        remote = connect(url, token)
        answer = remote.call("GET", "/status", params={"view": VIEWS})
        if not answer.ok or not isinstance(answer.body, Mapping):
            raise answer.problem(remote.url, "status")
        body = answer.body
        if as_json:
            typer.echo(json.dumps(body, indent=2))
            return
        from rich.console import Console
        from rich.table import Table

        console = Console()
        pools = body.get("pools") or {}
        table = Table(title=f"corral at {shown_url(remote.url)}: {count(len(pools), 'pool')}")
        for col in ("pool", "ready", "pending", "running", "size"):
            table.add_column(col, justify="left" if col == "pool" else "right")
        for name, p in sorted(pools.items()):
            table.add_row(cell(name), cell(p.get("ready")), cell(p.get("pending")), cell(p.get("running")),
                          cell(p.get("max")))
        console.print(table)
        hosts = body.get("hosts") or {}
        rows = [(provider, name, row) for provider, named in sorted(hosts.items())
                for name, row in sorted(named.items())]
        if rows:
            shown = Table(title=count(len(rows), "host"))
            for col in ("provider", "host", "cluster", "cpu", "memory", "VMs", "calls", "state"):
                shown.add_column(col, justify="right" if col in ("cpu", "memory", "VMs", "calls") else "left")
            for provider, name, row in rows:
                shown.add_row(cell(provider), cell(name), cell(row.get("cluster")),
                              cell(_percent(row.get("cpu_percent"))), cell(_percent(row.get("memory_percent"))),
                              cell(row.get("vms")),
                              cell(row.get("calls_in_flight")), cell(host_state(row)))
            console.print(shown)
        runner = body.get("runner")
        if isinstance(runner, Mapping):
            typer.echo(runner_line(runner))
        managers = body.get("managers")
        if isinstance(managers, Mapping) and isinstance(managers.get("live"), Mapping):
            live = managers["live"]
            held = Table(title=count(len(live), "manager"))
            for col in ("manager", "state", "score", "pools", "acting", "lease left s"):
                held.add_column(col, justify="right" if col in ("score", "lease left s") else "left")
            for name, m in sorted(live.items()):
                left = m.get("lease_left_s")
                me = " (this process)" if name == managers.get("me") else ""
                held.add_row(cell(name + me), cell(m.get("state")), cell(m.get("score")),
                             cell(", ".join(m.get("pools", []))), cell(", ".join(m.get("acting", []))),
                             cell("" if left is None else f"{left:.1f}"))
            console.print(held)
        typer.echo(status_line(body.get("status")))


def status_line(status: Any) -> str:
    """The last line: all is well, or which pools have no ready VM."""
    if not isinstance(status, Mapping):
        return ""
    empty = status.get("empty")
    if isinstance(empty, list) and empty:
        return f"{count(len(empty), 'empty pool')}: {', '.join(str(p) for p in empty)}"
    return str(status.get("message", ""))

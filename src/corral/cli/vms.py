"""VMs of a running corral: checkout (with --wait), return, vm (a VM's record)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Annotated, Any

import typer

from corral.cli.remote import (
    DEFAULT_URL,
    Answer,
    AsJson,
    CliProblem,
    Exit,
    Remote,
    Token,
    Url,
    check_host,
    connect,
    fail,
    parse_wanted,
    reason_of,
    reported,
    shown_url,
)
from corral.cli.text import cell, err_console, is_terminal

MAX_WAIT_S = 86400.0
RETRY_S = 1.0


def hostnames(body: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(requested name, hostname) of each VM in a checkout answer, in the answer's order."""
    rows: list[tuple[str, str]] = []
    for label, entry in body.items():
        if not isinstance(entry, Mapping) or "hostname" not in entry:
            continue
        names = entry["hostname"]
        for name in names if isinstance(names, list) else [names]:
            rows.append((label, str(name)))
    return rows


def worth_waiting(answer: Answer) -> bool:
    """A 503 that says the pools are short of ready VMs: another try may get them."""
    return answer.status == 503 and isinstance(answer.body, Mapping) and "empty" in answer.body


class Waiting:
    """What ``checkout --wait`` shows while it waits: a line on a terminal's standard error
    with what it waits for, the time left and a bar of the time used; nothing otherwise."""

    def __init__(self, wanted: Mapping[str, int], timeout: float, shown: bool) -> None:
        self.what = ", ".join(f"{n} {pool}" for pool, n in wanted.items())
        self.timeout = timeout
        self.shown = shown
        self.progress: Any = None
        self.task: Any = None

    @contextmanager
    def running(self) -> Iterator[Waiting]:
        if not self.shown:
            yield self
            return
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeRemainingColumn

        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                 TimeRemainingColumn(), console=err_console(), transient=True)
        with self.progress:
            self.task = self.progress.add_task(f"waiting for {self.what}", total=self.timeout)
            yield self

    def update(self, elapsed: float, reason: str) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=min(elapsed, self.timeout),
                                 description=f"waiting for {self.what}: {reason}")


def checkout_until(remote: Remote, wanted: Mapping[str, int], *, wait: bool, timeout: float,
                   waiting: Waiting, clock: Callable[[], float] = time.monotonic,
                   sleep: Callable[[float], None] = time.sleep) -> Answer:
    """Check out ``wanted`` (all or nothing); with ``wait``, try again after each 503 "no VMs
    ready" until ``timeout`` seconds have passed. The last answer."""
    start = clock()
    with waiting.running():
        while True:
            answer = remote.call("POST", "/vm", body=dict(wanted))
            elapsed = clock() - start
            if not (wait and worth_waiting(answer)):
                return answer
            left = timeout - elapsed
            if left <= 0:
                raise CliProblem(f"no VMs after {timeout:g} s of waiting: {reason_of(answer.body)}", Exit.LATER)
            waiting.update(elapsed, reason_of(answer.body))
            sleep(min(RETRY_S, left))  # the last try is at the deadline


def checkout(
    pools: Annotated[list[str], typer.Argument(help="Pools to take VMs from: POOL for one VM, POOL=N for N; a "
                                                    "pool named twice adds up.", metavar="POOL[=N]",
                                               show_default=False)],
    url: Url = DEFAULT_URL,
    token: Token = None,
    wait: Annotated[bool, typer.Option("--wait", help="When the pools have too few ready VMs, try again "
                                                      "every second until they have them or --timeout "
                                                      "passes.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds --wait waits at most.", min=1, max=MAX_WAIT_S)] = 300.0,
    as_json: AsJson = False,
) -> None:
    """Check out VMs: all of them, or none.

    Prints one line per VM: the pool asked for and the VM's hostname. Without --wait a pool
    short of ready VMs ends the command with exit code 5.
    """
    with reported():
        wanted = parse_wanted(pools)
        remote = connect(url, token)
        waiting = Waiting(wanted, timeout, shown=wait and is_terminal(sys.stderr))
        answer = checkout_until(remote, wanted, wait=wait, timeout=timeout, waiting=waiting)
        if not answer.ok:
            raise answer.problem(remote.url, "checkout")
        if as_json:
            typer.echo(json.dumps(answer.body, indent=2))
            return
        got = hostnames(answer.body)
        if not got:
            raise answer.problem(remote.url, "checkout")  # a success without a VM: not an answer corral gives
        for label, name in got:
            typer.echo(f"{label} {name}")


def return_vms(
    hosts: Annotated[list[str], typer.Argument(help="Hostnames (short or FQDN) of checked-out VMs.",
                                               metavar="HOST", show_default=False)],
    url: Url = DEFAULT_URL,
    token: Token = None,
) -> None:
    """Return checked-out VMs; each is destroyed.

    Every VM named is tried; the exit code is that of the first that could not be returned.
    """
    with reported():
        remote = connect(url, token)
        for host in hosts:
            check_host(host)
        worst = Exit.OK
        for host in hosts:
            try:
                answer = remote.call("DELETE", f"/vm/{host}")
                if not answer.ok:
                    raise answer.problem(remote.url, f"return {host}")
            except CliProblem as exc:
                typer.echo(f"error: {exc}", err=True)
                worst = worst or exc.code
                continue
            typer.echo(f"returned {host}")
        if worst:
            raise typer.Exit(int(worst))


INFO_ORDER = ("state", "template", "fqdn", "ip", "host", "lifetime", "running", "remaining", "start_time",
              "end_time", "tags", "disk", "snapshots", "migrated", "migration_time", "request_id",
              "destroy_error", "destroy_retry_in")
INFO_LABELS = {"template": "pool", "lifetime": "lifetime (hours)", "running": "running (hours)",
               "remaining": "remaining (hours)", "start_time": "checked out", "end_time": "ends",
               "disk": "disks", "migration_time": "migration (s)", "destroy_error": "destroy error",
               "destroy_retry_in": "destroy retried in (s)", "request_id": "request"}


def info_rows(info: Mapping[str, Any]) -> list[tuple[str, str]]:
    """A VM record as (label, text) rows: the known fields in a set order, any others after."""
    keys = [k for k in INFO_ORDER if k in info] + sorted(k for k in info if k not in INFO_ORDER)
    rows = []
    for key in keys:
        value = info[key]
        if isinstance(value, Mapping):
            text = ", ".join(f"{k}={v}" for k, v in value.items())
        elif isinstance(value, list):
            text = ", ".join(str(v) for v in value)
        else:
            text = "" if value is None else str(value)
        rows.append((INFO_LABELS.get(key, key.replace("_", " ")), text))
    return rows


def vm(
    host: Annotated[str, typer.Argument(help="Hostname (short or FQDN) of the VM.", show_default=False)],
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Show a VM's record: its state, pool, addresses, lifetime, tags, disks and snapshots."""
    with reported():
        remote = connect(url, token)
        answer = remote.call("GET", f"/vm/{check_host(host)}")
        if not answer.ok:
            raise answer.problem(remote.url, f"vm {host}")
        if as_json:
            typer.echo(json.dumps(answer.body, indent=2))
            return
        entries = [(name, info) for name, info in answer.body.items() if isinstance(info, Mapping)]
        if not entries:
            fail(f"corral at {shown_url(remote.url)} answered without a VM record", Exit.UNREACHABLE)
        from rich.console import Console
        from rich.table import Table

        name, info = entries[0]
        table = Table(title=cell(name), show_header=False)
        table.add_column("field", style="bold")
        table.add_column("value")
        for label, text in info_rows(info):
            table.add_row(cell(label), cell(text))
        Console().print(table)

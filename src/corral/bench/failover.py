"""``corral bench failover``: how long a site's pools go without a manager when one is killed.

Real processes on a real redis-server (:mod:`corral.bench.site`): two managers and one API
process. Each round kills the manager holding the most pools with ``kill -9``, checks a VM
out of each of its pools through the API (so each needs a new one), and measures the time
from the kill to the first VM of those pools that the other manager creates (its ``pending``
record: the intent written just before the create call). The killed manager is then started
again, as a supervisor would, and the site settles before the next round.

The baseline, in the same run: one manager alone, killed the same way and started again at
once by a supervisor (the same manager name, so it takes its own leases back without waiting
for them to expire): what a site without a standby gets at best. The bound is twice the lease
TTL.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from corral.bench.common import Say, append_row, counter, machine, sayer
from corral.bench.redisd import RedisServer
from corral.bench.site import Process, Site

POOLS = {"alpha": 4, "beta": 4, "gamma": 3, "delta": 3}
TABLE_HEADER = ("| date | kills | lease TTL s | takeover median s | takeover worst s | bound (2 × TTL) s | "
                "worst / bound | restart median s | takeover / restart | target | command |\n"
                "|---|---|---|---|---|---|---|---|---|---|---|\n")
SECTION_INTRO = ("## Control-plane failover (`corral bench failover`)\n\n"
                 "Two managers and one API process on one redis-server, with the simulator. Each kill is a "
                 "`kill -9` of the manager holding the most pools; a VM is then checked out of each of its "
                 "pools, and the time runs from the kill to the first VM of those pools the other manager "
                 "creates. The baseline is one manager alone, killed the same way and started again at once "
                 "by a supervisor. Target: the worst takeover within twice the lease TTL.\n\n")


@dataclass
class FailoverResult:
    kills: int
    ttl_s: float
    takeovers_s: list[float] = field(default_factory=list)
    restarts_s: list[float] = field(default_factory=list)
    machine: str = field(default_factory=machine)

    @property
    def bound_s(self) -> float:
        return 2 * self.ttl_s

    @property
    def worst_s(self) -> float:
        return max(self.takeovers_s, default=float("inf"))

    @property
    def median_s(self) -> float:
        return statistics.median(self.takeovers_s) if self.takeovers_s else float("inf")

    @property
    def restart_median_s(self) -> float:
        return statistics.median(self.restarts_s) if self.restarts_s else float("inf")

    @property
    def target_met(self) -> bool:
        return len(self.takeovers_s) == self.kills and self.worst_s <= self.bound_s

    @property
    def ok(self) -> bool:
        return self.target_met and len(self.restarts_s) == self.kills

    def as_dict(self) -> dict[str, Any]:
        return {"benchmark": "failover", **asdict(self), "bound_s": self.bound_s,
                "takeover_median_s": round(self.median_s, 3), "takeover_worst_s": round(self.worst_s, 3),
                "restart_median_s": round(self.restart_median_s, 3),
                "worst_vs_bound": round(self.worst_s / self.bound_s, 3),
                "takeover_vs_restart": round(self.median_s / self.restart_median_s, 3),
                "targets_met": {"worst_within_2_ttl": self.target_met}, "ok": self.ok}

    def summary(self) -> str:
        return (f"failover: {len(self.takeovers_s)} kills, takeover median {self.median_s:.2f} s, worst "
                f"{self.worst_s:.2f} s against a bound of {self.bound_s:.1f} s "
                f"({'met' if self.target_met else 'NOT met'}); a supervisor's restart alone: median "
                f"{self.restart_median_s:.2f} s")

    def tables(self) -> list[Any]:
        from rich.table import Table

        table = Table(title="kill -9 of the owner → first VM made by the new owner (s)")
        table.add_column("round")
        table.add_column("takeover (standby)", justify="right")
        table.add_column("restart (no standby)", justify="right")
        for i in range(max(len(self.takeovers_s), len(self.restarts_s))):
            cells = [f"{x[i]:.3f}" if i < len(x) else "" for x in (self.takeovers_s, self.restarts_s)]
            table.add_row(str(i + 1), *cells)
        return [table]

    def append_markdown(self, path: Path, command: str) -> None:
        row = (f"| {time.strftime('%Y-%m-%d')} | {len(self.takeovers_s)} | {self.ttl_s:g} | {self.median_s:.2f} | "
               f"{self.worst_s:.2f} | {self.bound_s:.1f} | {self.worst_s / self.bound_s:.2f} | "
               f"{self.restart_median_s:.2f} | {self.median_s / self.restart_median_s:.2f} | "
               f"{'met' if self.target_met else 'NOT met'} | `{command}` |\n")
        append_row(path, TABLE_HEADER, row, intro=SECTION_INTRO)


def first_new_vm(site: Site, pools: set[str], since: float, timeout: float) -> float:
    """Seconds from ``since`` (wall clock) until a VM of ``pools`` created after it is recorded."""
    deadline = time.monotonic() + timeout
    with site.store() as store:
        while time.monotonic() < deadline:
            for pool in pools:
                if any(vm.created_at >= since for vm in store.list_vms(pool=pool)):
                    return time.time() - since
            time.sleep(0.01)
    raise TimeoutError(f"no new VM in {sorted(pools)} within {timeout:.0f} s of the kill")


def take_one_of_each(api: Process, pools: set[str]) -> None:
    """Check a VM out of each of ``pools``, so that each needs a new one."""
    with httpx.Client(timeout=5) as client:
        for pool in pools:
            client.post(f"{api.url}/vm/{pool}")


def kill_and_time(site: Site, victim: Process, api: Process, pools: set[str], timeout: float) -> float:
    """kill -9 ``victim``, take a VM out of each of ``pools``, and time the first new VM."""
    victim.kill9()
    killed = time.time()
    take_one_of_each(api, pools)
    return first_new_vm(site, pools, killed, timeout)


def settle(site: Site, managers: int, timeout: float = 60) -> None:
    site.wait_converged(timeout)
    deadline = time.monotonic() + timeout
    while len(site.owners()) < len(site.pools) or len(site.holdings()) < managers:
        if time.monotonic() > deadline:
            raise TimeoutError("the managers did not share the pools")
        time.sleep(0.05)


def run_failover(kills: int = 10, ttl_s: float = 5.0, *, progress: Say | None = None) -> FailoverResult:
    say, count = sayer(progress), counter(progress)
    result = FailoverResult(kills=kills, ttl_s=ttl_s)
    renew = min(1.0, ttl_s / 5)
    timeout = 4 * ttl_s + 30
    with tempfile.TemporaryDirectory(prefix="corral-failover-") as tmp:
        for mode in ("takeover", "restart"):
            work = Path(tmp) / mode
            work.mkdir()
            with RedisServer(workdir=work, persist=True) as server:
                site = Site(work, server, POOLS, lease_ttl=ttl_s, renew_every=renew)
                try:
                    names = ["m1", "m2"] if mode == "takeover" else ["m1"]
                    procs = {n: site.manager(n) for n in names}
                    api = site.api("api")
                    settle(site, len(names))
                    for i in range(kills):
                        owners = site.holdings()
                        name = max(owners, key=lambda m: len(owners[m]))
                        seconds = kill_and_time(site, procs[name], api, owners[name], timeout) \
                            if mode == "takeover" else restart_and_time(site, procs, name, api, owners[name],
                                                                        timeout)
                        (result.takeovers_s if mode == "takeover" else result.restarts_s).append(seconds)
                        say(f"{mode} {i + 1}/{kills}: {seconds:.2f} s")
                        count(len(result.takeovers_s) + len(result.restarts_s), 2 * kills)
                        if mode == "takeover":
                            procs[name] = site.manager(name)
                        settle(site, len(names))
                finally:
                    site.stop_all()
    return result


def restart_and_time(site: Site, procs: dict[str, Process], name: str, api: Process, pools: set[str],
                     timeout: float) -> float:
    """The baseline: kill -9 the only manager and start it again at once, as a supervisor would."""
    procs[name].kill9()
    killed = time.time()
    procs[name] = site.manager(name)
    take_one_of_each(api, pools)
    return first_new_vm(site, pools, killed, timeout)

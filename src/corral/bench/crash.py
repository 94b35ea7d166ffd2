"""``corral bench crash`` and the crash suite: ``kill -9`` at random moments of a fill under load.

Real ``corral serve`` processes (forked by :mod:`corral.bench.zygote`) fill 500 VMs over four
pools on the simulator, whose world survives a killed corral (its ``state_file``), while a
client thread checks VMs out, returns them and makes on-demand requests. Each round waits a
moment drawn from a seeded RNG (the seed is printed; ``--seed`` replays it), then sends
``SIGKILL``. On ``sqlite`` and ``redis`` the one process is killed and started again; on
``redis-ha`` (one API process, two ``--role manager`` processes) the manager holding the most
pool leases is killed, the other must take its pools over, and the killed one is started again
under a new name.

Right after each kill the store and the simulator's file say what was in flight: pending
records whose VM the simulator does not have yet (a create call under way) and records with a
destroy intent whose VM the simulator still has (a destroy under way). The last rounds, when
no earlier kill landed in a create or in a destroy, wait for one before they kill ("aimed").

After each restart, within ``startup + one reconcile``: every VM the simulator holds is known
to the store (else it is leaked), the creates and destroys in flight at the kill are resolved,
no ready or running record lacks its VM (lost), every VM the client holds is running in the
store and powered on at the simulator, and no VM was ever handed out twice. After the last
kill the client stops and the pools must converge: each full of ready VMs, nothing pending or
being destroyed, and the simulator and the store agreeing on every VM.
"""

from __future__ import annotations

import random
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from corral.bench.common import Say, append_row, counter, free_port, machine, sayer
from corral.bench.redisd import RedisServer
from corral.bench.site import LATENCY, Site
from corral.bench.zygote import Child, Zygote
from corral.domain.models import Vm
from corral.domain.states import ACTIVE_STATES, DESTROY_INTENT_STATES, VmState
from corral.store.sqlite import SqliteStore

STORES = ("sqlite", "redis", "redis-ha")
POOLS = {"alpha": 200, "beta": 150, "gamma": 100, "delta": 50}  # 500 VMs
HELD_STATES = (VmState.RUNNING, VmState.MIGRATING)

TABLE_HEADER = ("| date | store | kills | seed | in a create | in a destroy | leaked | duplicates | lost | "
                "not running | recovery median s | recovery worst s | converged s | ok | command |\n"
                "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
SECTION_INTRO = ("## Crashes (`corral bench crash`)\n\n"
                 "`kill -9` at seeded random moments of a 500-VM fill over four pools on the simulator, with a "
                 "client checking out, returning and making on-demand requests throughout. After each restart: "
                 "VMs at the simulator unknown to the store (leaked), VMs handed out twice, ready or running "
                 "records without their VM (lost), held VMs not running; the recovery is the time from the kill "
                 "until every VM is accounted for and the creates and destroys in flight at the kill are "
                 "resolved; convergence is timed after the last kill.\n\n")


@dataclass(frozen=True)
class CrashSettings:
    store: str = "sqlite"
    kills: int = 20
    seed: int | None = None
    pools: dict[str, int] = field(default_factory=lambda: dict(POOLS))
    # a clone 40 ms (a bulk call of 40 VMs on one host about 0.4 s), a boot 200 ms, a destroy 40 ms: calls
    # end well within the time between two kills, so the fill goes on from one run to the next
    time_scale: float = 0.02
    hosts: int = 16
    moment_s: tuple[float, float] = (0.5, 2.5)  # a kill comes this long after the restart answers
    reconcile_interval: float = 2.0
    check_interval: float = 0.3
    # the product's defaults: shorter leases are lost to a CPU-starved manager's late renewals
    # (it stops acting on its pools and takes them again), which slows the fill down
    lease_ttl: float = 5.0
    renew_every: float = 1.0
    converge_limit_s: float = 90.0

    def check(self) -> None:
        if self.store not in STORES:
            raise ValueError(f"--store must be one of {', '.join(STORES)}, not {self.store!r}")
        if self.kills < 1:
            raise ValueError("--kills must be at least 1")

    @property
    def recovery_limit_s(self) -> float:
        """What a restart may take to account for every VM: start-up, a takeover on Redis and one reconcile."""
        return 15.0 + self.reconcile_interval + (2 * self.lease_ttl if self.store == "redis-ha" else 0)


@dataclass
class Kill:
    """One round: when the kill came, what it cut through, what the restart found."""

    index: int
    moment_s: float
    victim: str
    aimed: bool
    creating: int  # pending records whose VM the simulator did not have: a create call under way
    destroying: int  # destroy-intent records whose VM the simulator still had: a destroy under way
    at_sim: int
    restart_s: float = 0.0  # from the kill until the restarted process answers (0 for a manager)
    recovery_s: float | None = None  # from the kill until everything is accounted for
    leaked: int = 0
    lost: int = 0
    not_running: int = 0
    unresolved: int = 0  # creates or destroys in flight at the kill still open at the limit

    @property
    def landed(self) -> str:
        parts = [f"create ({self.creating} VMs)" if self.creating else "",
                 f"destroy ({self.destroying} VMs)" if self.destroying else ""]
        return " + ".join(p for p in parts if p) or "idle"

    @property
    def clean(self) -> bool:
        return self.recovery_s is not None and not (self.leaked or self.lost or self.not_running or self.unresolved)


@dataclass
class CrashResult:
    store: str
    seed: int
    kills: list[Kill] = field(default_factory=list)
    handed_out: int = 0
    duplicates: list[str] = field(default_factory=list)
    returned: int = 0
    ondemand_requests: int = 0
    ondemand_vms: int = 0
    lost_answers: int = 0  # requests whose answer a kill cut off
    unclaimed_running: int = 0  # running in the store, held by no client: bounded by lost answers
    converged_s: float | None = None
    final_leaked: int = 0
    final_lost: int = 0
    tracebacks: int = 0
    not_converged: str = ""  # what differed at the limit, when the pools did not converge
    machine: str = field(default_factory=machine)

    @property
    def leaked(self) -> int:
        return sum(k.leaked for k in self.kills) + self.final_leaked

    @property
    def lost(self) -> int:
        return sum(k.lost for k in self.kills) + self.final_lost

    @property
    def not_running(self) -> int:
        return sum(k.not_running for k in self.kills)

    @property
    def in_create(self) -> int:
        return sum(1 for k in self.kills if k.creating)

    @property
    def in_destroy(self) -> int:
        return sum(1 for k in self.kills if k.destroying)

    @property
    def recoveries(self) -> list[float]:
        return sorted(k.recovery_s for k in self.kills if k.recovery_s is not None)

    @property
    def targets_met(self) -> dict[str, bool]:
        return {
            "no_leak": self.leaked == 0,
            "no_duplicate": not self.duplicates,
            "none_lost": self.lost == 0,
            "held_stay_running": self.not_running == 0,
            "every_restart_recovers": all(k.clean for k in self.kills),
            "converged": self.converged_s is not None,
            "a_kill_in_a_create": self.in_create > 0,
            "a_kill_in_a_destroy": self.in_destroy > 0,
            "claims_within_lost_answers": self.unclaimed_running <= self.lost_answers,
        }

    @property
    def ok(self) -> bool:
        return all(self.targets_met.values())

    def as_dict(self) -> dict[str, Any]:
        rec = self.recoveries
        return {"benchmark": "crash", **asdict(self), "kills": [{**asdict(k), "landed": k.landed} for k in self.kills],
                "leaked": self.leaked, "lost": self.lost, "not_running": self.not_running,
                "kills_in_a_create": self.in_create, "kills_in_a_destroy": self.in_destroy,
                "recovery_median_s": rec[len(rec) // 2] if rec else None, "recovery_worst_s": rec[-1] if rec else None,
                "targets_met": self.targets_met, "ok": self.ok}

    def summary(self) -> str:
        rec = self.recoveries
        worst = f"{rec[-1]:.2f} s" if rec else "none"
        conv = f"{self.converged_s:.1f} s" if self.converged_s is not None else "NOT converged"
        return (f"crash ({self.store}, seed {self.seed}): {len(self.kills)} kills ({self.in_create} in a create, "
                f"{self.in_destroy} in a destroy), {self.handed_out} VMs handed out ({self.ondemand_vms} on demand, "
                f"{self.ondemand_requests} requests), {self.returned} returned; leaked {self.leaked}, "
                f"duplicates {len(self.duplicates)}, lost {self.lost}, held not running {self.not_running}; "
                f"worst recovery {worst}; converged after the last kill in {conv}; "
                f"{'ok' if self.ok else 'NOT ok'}")

    def tables(self) -> list[Any]:
        from rich.table import Table

        table = Table(title=f"kill -9 on {self.store} (seed {self.seed})")
        for column in ("kill", "moment s", "victim", "landed in", "leaked", "lost", "not running", "restart s",
                       "recovery s"):
            table.add_column(column, justify="left" if column in ("victim", "landed in") else "right")
        for k in self.kills:
            table.add_row(str(k.index), f"{k.moment_s:.3f}" + (" (aimed)" if k.aimed else ""), k.victim, k.landed,
                          str(k.leaked), str(k.lost), str(k.not_running), f"{k.restart_s:.2f}",
                          f"{k.recovery_s:.2f}" if k.recovery_s is not None else "—")
        return [table]

    def append_markdown(self, path: Path, command: str) -> None:
        rec = self.recoveries
        med = f"{rec[len(rec) // 2]:.2f}" if rec else "—"
        worst = f"{rec[-1]:.2f}" if rec else "—"
        conv = f"{self.converged_s:.1f}" if self.converged_s is not None else "—"
        row = (f"| {time.strftime('%Y-%m-%d')} | {self.store} | {len(self.kills)} | {self.seed} | {self.in_create} | "
               f"{self.in_destroy} | {self.leaked} | {len(self.duplicates)} | {self.lost} | {self.not_running} | "
               f"{med} | {worst} | {conv} | {'yes' if self.ok else 'NO'} | `{command}` |\n")
        append_row(path, TABLE_HEADER, row, intro=SECTION_INTRO)


# -- what the simulator and the store hold -------------------------------------------------------

def sim_power(state_file: Path, pools: dict[str, int]) -> dict[str, bool]:
    """VM name -> powered on, of every VM the simulator's file holds in one of ``pools``."""
    if not state_file.exists():
        return {}
    db = sqlite3.connect(state_file, timeout=10)
    try:
        rows = db.execute("SELECT name, pool, powered_on FROM sim_vms").fetchall()
    except sqlite3.OperationalError:  # not created yet
        return {}
    finally:
        db.close()
    return {name: bool(on) for name, pool, on in rows if pool in pools}


@dataclass(frozen=True)
class Landing:
    creating: frozenset[str]
    destroying: frozenset[str]
    at_sim: int


def landing(records: list[Vm], at_sim: dict[str, bool]) -> Landing:
    """What a kill cut through, from the store and the simulator read after it (pure)."""
    creating = frozenset(v.name for v in records if v.state is VmState.PENDING and v.name not in at_sim)
    destroying = frozenset(v.name for v in records if v.state in DESTROY_INTENT_STATES and v.name in at_sim)
    return Landing(creating, destroying, len(at_sim))


def unknown_at_sim(records: list[Vm], at_sim: dict[str, bool]) -> set[str]:
    """VMs the simulator holds that the store does not know (active records): leaks if they stay."""
    return set(at_sim) - {v.name for v in records}


def without_vm(records: list[Vm], at_sim: dict[str, bool]) -> set[str]:
    """Ready or running records whose VM the simulator does not have: lost VMs."""
    return {v.name for v in records if v.state in (VmState.READY, *HELD_STATES) and v.name not in at_sim}


def open_flights(records: list[Vm], at_kill: Landing) -> set[str]:
    """The creates and destroys under way at the kill that are still open: a create's VM still
    pending without existing, a destroy's VM still waiting to be destroyed."""
    by_name = {v.name: v for v in records}
    still = {n for n in at_kill.creating if n in by_name and by_name[n].state is VmState.PENDING}
    return still | {n for n in at_kill.destroying if n in by_name and by_name[n].state in DESTROY_INTENT_STATES}


def pools_converged(records: list[Vm], at_sim: dict[str, bool], pools: dict[str, int]) -> bool:
    ready: dict[str, int] = {}
    for vm in records:
        if vm.state is VmState.READY and vm.request_id is None:
            ready[vm.pool] = ready.get(vm.pool, 0) + 1
        elif vm.state not in HELD_STATES:
            return False
    return all(ready.get(p, 0) == n for p, n in pools.items()) and set(at_sim) == {v.name for v in records}


def describe(records: list[Vm], at_sim: dict[str, bool]) -> str:
    """The records by pool and state, and the VMs only one side has: why pools are not converged."""
    counts: dict[str, dict[str, int]] = {}
    for vm in records:
        by_state = counts.setdefault(vm.pool, {})
        by_state[vm.state.value] = by_state.get(vm.state.value, 0) + 1
    known = {v.name for v in records}
    return (f"{counts}; only at the simulator: {sorted(set(at_sim) - known)[:10]}; "
            f"only in the store: {sorted(known - set(at_sim))[:10]}")


# -- the client ------------------------------------------------------------------------------------

class Client:
    """One thread checking VMs out, returning them and making on-demand requests through ``url()``.
    :attr:`lock` is held around each operation and its bookkeeping, so an audit taking it sees
    :attr:`held` as the store should."""

    def __init__(self, url: Callable[[], str], pools: list[str], seed: int, max_held: int = 40) -> None:
        self.url = url
        self.pools = pools
        self.max_held = max_held
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.handed: list[str] = []
        self.held: set[str] = set()
        self.uncertain: set[str] = set()  # returned, but the answer was lost
        self.returned = 0
        self.ondemand_requests = 0
        self.ondemand_vms = 0
        self.lost_answers = 0
        self.requests: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="crash-client")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        with httpx.Client(timeout=5) as http:
            while not self._stop.is_set():
                with self.lock:
                    try:
                        self._step(http)
                    except httpx.HTTPError:
                        self.lost_answers += 1
                        failed = True
                    else:
                        failed = False
                self._stop.wait(0.05 if failed else 0.005)

    def _got(self, names: list[str]) -> None:
        self.handed.extend(names)
        self.held.update(names)

    def _step(self, http: httpx.Client) -> None:
        base = self.url()
        if self.requests:
            self._poll(http, base)
        roll = self.rng.random()
        if self.held and (roll < 0.4 or len(self.held) >= self.max_held):
            name = self.rng.choice(sorted(self.held))
            self.held.discard(name)
            try:
                answer = http.delete(f"{base}/vm/{name}")
            except httpx.HTTPError:
                self.uncertain.add(name)
                raise
            if answer.status_code == 200:
                self.returned += 1
            else:
                self.held.add(name)
        elif roll < 0.95 or len(self.requests) >= 2:
            pool = self.rng.choice(self.pools)
            answer = http.post(f"{base}/vm/{pool}")
            if answer.status_code == 200:
                self._got([answer.json()[pool]["hostname"]])
        else:
            pool = self.rng.choice(self.pools)
            answer = http.post(f"{base}/ondemandvm", json={pool: 2})
            if answer.status_code == 201:
                self.requests.append(answer.json()["request_id"])
                self.ondemand_requests += 1

    def _poll(self, http: httpx.Client, base: str) -> None:
        request = self.requests[0]
        answer = http.get(f"{base}/ondemandvm/{request}")
        if answer.status_code == 202:
            return
        self.requests.pop(0)
        body = answer.json()
        if answer.status_code == 200 and body.get("ready"):
            names = [n for key, value in body.items() if isinstance(value, dict) for n in value.get("hostname", [])]
            self.ondemand_vms += len(names)
            self._got(names)

    def duplicates(self) -> list[str]:
        seen: set[str] = set()
        dup: set[str] = set()
        for name in self.handed:
            (dup if name in seen else seen).add(name)
        return sorted(dup)


# -- the set-ups ------------------------------------------------------------------------------------

class Setup:
    """The processes of one store's scenario, their restarts, and what the store holds."""

    def __init__(self, settings: CrashSettings, work: Path, zygote: Zygote) -> None:
        self.settings = settings
        self.work = work
        self.zygote = zygote
        self.state_file = work / "sim-world.db"
        self.port = free_port()
        self.api_url = f"http://127.0.0.1:{self.port}/api/v3"
        self.restarts = 0

    def url(self) -> str:
        return self.api_url

    def start(self) -> None:
        raise NotImplementedError

    def records(self) -> list[Vm]:
        """Every record in an active state."""
        raise NotImplementedError

    def victim(self) -> Child:
        """The process the next kill is for."""
        raise NotImplementedError

    def restart(self, killed: Child) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def logs(self) -> list[Path]:
        return sorted(self.work.glob("*.log"))

    def _serve(self, name: str, config: Path, extra: list[str], port: int | None) -> Child:
        argv = ["serve", "--config", str(config), *extra]
        if port is not None:
            argv += ["--port", str(port)]
        return self.zygote.start(name, argv, self.work / f"{name}.log", port)

    def _answering(self, child: Child, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=1) as http:
            while True:
                if not child.alive():
                    raise RuntimeError(f"{child.name} exited: {child.tail()}")
                try:
                    http.get(f"{child.url}/status?view=status")
                    return
                except httpx.HTTPError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{child.name} did not answer in {timeout:.0f} s: {child.tail()}") from None
                    time.sleep(0.02)


class SqliteSetup(Setup):
    def start(self) -> None:
        s = self.settings
        sim = {"provider_class": "sim", "time_scale": s.time_scale, "hosts": s.hosts,
               "state_file": str(self.state_file), "latency": LATENCY}
        doc = {":providers": {":sim": sim}, ":store": {"path": str(self.work / "corral.db")},
               ":config": {"task_limit": 8, "check_interval": s.check_interval},
               ":monitoring": {"reconcile_interval": s.reconcile_interval},
               ":pools": [{"name": n, "template": f"t/{n}", "size": size} for n, size in s.pools.items()]}
        self.config = self.work / "corral.yaml"
        self.config.write_text(yaml.safe_dump(doc))
        self.process = self._serve("corral", self.config, [], self.port)
        self._answering(self.process)
        self.store = SqliteStore(self.work / "corral.db")

    def records(self) -> list[Vm]:
        return self.store.list_vms(states=ACTIVE_STATES)

    def victim(self) -> Child:
        return self.process

    def restart(self, killed: Child) -> None:
        self.process = self._serve("corral", self.config, [], self.port)
        self._answering(self.process)

    def close(self) -> None:
        if hasattr(self, "store"):
            self.store.close()


class RedisSetup(Setup):
    """One process (``--role all``), or with ``ha`` an API process and two managers."""

    def __init__(self, settings: CrashSettings, work: Path, zygote: Zygote, *, ha: bool) -> None:
        super().__init__(settings, work, zygote)
        self.ha = ha

    def start(self) -> None:
        s = self.settings
        self.server = RedisServer(workdir=self.work).start()
        self.site = Site(self.work, self.server, s.pools, lease_ttl=s.lease_ttl, renew_every=s.renew_every,
                         check_interval=s.check_interval, task_limit=8, hosts=s.hosts, time_scale=s.time_scale,
                         reconcile_interval=s.reconcile_interval)
        self.state_file = self.site.state_file
        self.store = self.site.store()
        if self.ha:
            self.api = self._serve("api", self.site.config, ["--role", "api", "--manager-id", "api"], self.port)
            self.managers = {n: self._serve(n, self.site.config, ["--role", "manager", "--manager-id", n], None)
                             for n in ("m1", "m2")}
            self._answering(self.api)
        else:
            self.api = self._serve("corral", self.site.config, ["--manager-id", "corral"], self.port)
            self._answering(self.api)

    def records(self) -> list[Vm]:
        return self.store.list_vms(states=ACTIVE_STATES)

    def victim(self) -> Child:
        if not self.ha:
            return self.api
        deadline = time.monotonic() + 30
        while True:
            held = {m: pools for m, pools in self.site.holdings().items() if m in self.managers}
            if held:
                name = max(sorted(held), key=lambda m: len(held[m]))
                return self.managers[name]
            if time.monotonic() > deadline:
                raise RuntimeError("no manager holds a pool")
            time.sleep(0.02)

    def restart(self, killed: Child) -> None:
        if not self.ha:
            self.api = self._serve("corral", self.site.config, ["--manager-id", "corral"], self.port)
            self._answering(self.api)
            return
        # a new manager, as a supervisor would start on another machine: the survivor takes over
        # the killed one's pools when their leases expire, and shares them with the new one
        del self.managers[killed.name]
        self.restarts += 1
        name = f"m{self.restarts + 2}"
        self.managers[name] = self._serve(name, self.site.config, ["--role", "manager", "--manager-id", name], None)

    def close(self) -> None:
        if hasattr(self, "store"):
            self.store.close()
        if hasattr(self, "server"):
            self.server.stop()


def make_setup(settings: CrashSettings, work: Path, zygote: Zygote) -> Setup:
    if settings.store == "sqlite":
        return SqliteSetup(settings, work, zygote)
    return RedisSetup(settings, work, zygote, ha=settings.store == "redis-ha")


# -- the scenario -----------------------------------------------------------------------------------

@contextmanager
def _workdir(path: Path | None) -> Iterator[Path]:
    if path is not None:
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="corral-crash-") as tmp:
        yield Path(tmp)


def run_crash(settings: CrashSettings, *, progress: Say | None = None, workdir: Path | None = None) -> CrashResult:
    say, count = sayer(progress), counter(progress)
    seed = settings.seed if settings.seed is not None else random.SystemRandom().randrange(1, 2**31)
    say(f"crash on {settings.store}: seed {seed} (replay with --seed {seed})")
    rng = random.Random(seed)
    moments = [round(rng.uniform(*settings.moment_s), 3) for _ in range(settings.kills)]
    say("moments (s after the restart): " + ", ".join(f"{m:.3f}" for m in moments))
    result = CrashResult(store=settings.store, seed=seed)
    with _workdir(workdir) as work, Zygote() as zygote:
        setup = make_setup(settings, work, zygote)
        try:
            setup.start()
            client = Client(setup.url, sorted(settings.pools), seed)
            client.start()
            try:
                for index, moment in enumerate(moments, start=1):
                    kill = _one_kill(setup, client, settings, index, moment, result)
                    result.kills.append(kill)
                    say(f"kill {index}/{settings.kills} of {kill.victim} at {moment:.3f} s"
                        f"{' (aimed)' if kill.aimed else ''}: in {kill.landed}; recovery "
                        f"{kill.recovery_s if kill.recovery_s is None else round(kill.recovery_s, 2)} s, leaked "
                        f"{kill.leaked}, lost {kill.lost}, not running {kill.not_running}")
                    count(index, settings.kills + 1)
            finally:
                client.stop()
            _finish(setup, client, settings, result)
            if result.converged_s is None:
                say(f"not converged: {result.not_converged}")
            count(settings.kills + 1, settings.kills + 1)
            result.tracebacks = sum(p.read_text(errors="replace").count("Traceback") for p in setup.logs())
        finally:
            zygote.close()
            setup.close()
    return result


def _still_wanted(done: list[Kill], left: int) -> str | None:
    """What the kill to come must land in, when the kills so far and the ``left`` after it may
    not make it otherwise: a create, a destroy, or None (a moment of the RNG will do)."""
    missing = [what for what, seen in (("create", any(k.creating for k in done)),
                                       ("destroy", any(k.destroying for k in done))) if not seen]
    return missing[0] if len(missing) > left else None


def _aim(setup: Setup, want_create: bool, limit_s: float = 10) -> bool:
    """Wait until a create (or a destroy) is under way; whether one was seen in time."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        seen = landing(setup.records(), sim_power(setup.state_file, setup.settings.pools))
        if seen.creating if want_create else seen.destroying:
            return True
        time.sleep(0.003)
    return False


def _one_kill(setup: Setup, client: Client, settings: CrashSettings, index: int, moment: float,
              result: CrashResult) -> Kill:
    time.sleep(moment)
    aimed = False
    want = _still_wanted(result.kills, settings.kills - index)
    if want is not None:
        aimed = _aim(setup, want_create=want == "create")
    victim = setup.victim()
    victim.kill9()
    killed_at = time.monotonic()
    at_sim = sim_power(setup.state_file, settings.pools)
    at_kill = landing(setup.records(), at_sim)
    kill = Kill(index, moment, victim.name, aimed, len(at_kill.creating), len(at_kill.destroying), at_kill.at_sim)
    setup.restart(victim)
    kill.restart_s = time.monotonic() - killed_at
    _audit(setup, client, settings, kill, at_kill, killed_at)
    return kill


def _audit(setup: Setup, client: Client, settings: CrashSettings, kill: Kill, at_kill: Landing,
           killed_at: float) -> None:
    """Wait until the restart has accounted for every VM, then check what must hold."""
    deadline = killed_at + settings.recovery_limit_s
    while True:
        with client.lock:
            at_sim = sim_power(setup.state_file, settings.pools)
            records = setup.records()
            unknown = unknown_at_sim(records, at_sim)
            if unknown:  # a VM destroyed between the two reads is not a leak: read the simulator again
                unknown &= set(sim_power(setup.state_file, settings.pools))
            flights = open_flights(records, at_kill)
            done = not unknown and not flights
            if done or time.monotonic() > deadline:
                kill.recovery_s = time.monotonic() - killed_at if done else None
                kill.leaked = len(unknown)
                kill.unresolved = len(flights)
                records = setup.records()
                at_sim = sim_power(setup.state_file, settings.pools)
                gone = without_vm(records, at_sim)
                if gone:  # read the store again: a VM returned meanwhile is being destroyed, not lost
                    gone &= without_vm(setup.records(), at_sim)
                kill.lost = len(gone)
                by_name = {v.name: v for v in records}
                kill.not_running = sum(1 for n in client.held
                                       if n not in by_name or by_name[n].state not in HELD_STATES
                                       or not at_sim.get(n, False))
                return
        time.sleep(0.02)


def _finish(setup: Setup, client: Client, settings: CrashSettings, result: CrashResult) -> None:
    result.handed_out = len(client.handed)
    result.duplicates = client.duplicates()
    result.returned = client.returned
    result.ondemand_requests = client.ondemand_requests
    result.ondemand_vms = client.ondemand_vms
    result.lost_answers = client.lost_answers
    start = time.monotonic()
    while time.monotonic() - start < settings.converge_limit_s:
        at_sim = sim_power(setup.state_file, settings.pools)
        records = setup.records()
        if pools_converged(records, at_sim, settings.pools):
            result.converged_s = time.monotonic() - start
            break
        time.sleep(0.1)
    records = setup.records()
    at_sim = sim_power(setup.state_file, settings.pools)
    if result.converged_s is None:
        result.not_converged = describe(records, at_sim)
    result.final_leaked = len(unknown_at_sim(records, at_sim))
    result.final_lost = len(without_vm(records, at_sim))
    open_requests = set(client.requests)
    running = {v.name for v in records if v.state in HELD_STATES and v.request_id not in open_requests}
    result.unclaimed_running = len(running - client.held - client.uncertain)

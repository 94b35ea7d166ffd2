"""Store faults with a real server and real clients: the sqlite file locked by another process
for 10 s, and Redis stopped (SIGTERM, append-only file on) for 10 s and then for 60 s.

During each fault every answer is a correct one or a 503 naming the store (with Retry-After),
never another 5xx, and none waits past a bound; the manager pauses (no create call whose
``pending`` record could not be written) and says so once; afterwards both resume by
themselves, the pools converge, and every record from before is still there. The numbers
each run measures are printed (``-s``) for docs/reliability.md.
"""

from __future__ import annotations

import base64
import logging
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from corral.auth.passwords import hash_password
from corral.bench.redisd import RedisServer
from corral.domain.states import VmState
from helpers import ServerThread, quick_config, wait_until

PASSWORD = "pw-Faults-4417"
BASIC = {"Authorization": "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()}
POOL = "debian"
SIZE = 4
LOCK_WAIT_S = 1.0  # :store: lock_wait of the sqlite test
SQLITE_LOCK_S = 10.0
REDIS_OUTAGES_S = (10.0, 60.0)
SQLITE_BOUND_S = 3.0  # no answer during a sqlite lock may take longer (lock_wait + the loop's share)
# a Redis that is stopping or starting may take a connection and answer it late: a call then waits for the
# client's socket timeout (5 s), whose error is the 503; once it refuses connections the 503 is at once
REDIS_BOUND_S = 6.0


class Logs(logging.Handler):
    """Every record of corral's loggers (any thread)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self.guard:
            self.records.append(record)

    def first(self, words: tuple[str, ...], after: float) -> float | None:
        """When (time.time()) the first message with one of ``words`` was logged after ``after``."""
        with self.guard:
            return next((r.created for r in self.records if r.created >= after
                         and any(w in r.getMessage() for w in words)), None)

    def messages(self, level: int = logging.DEBUG) -> list[str]:
        with self.guard:
            return [r.getMessage() for r in self.records if r.levelno >= level]


@pytest.fixture
def logs() -> Iterator[Logs]:
    handler = Logs()
    logger = logging.getLogger("corral")
    old = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(old)


@dataclass
class Answers:
    """What the clients got during a fault."""

    codes: Counter[int] = field(default_factory=Counter)
    slowest_s: float = 0.0
    bad: list[str] = field(default_factory=list)  # answers that break the rule
    bound_s: float = SQLITE_BOUND_S  # no answer may take longer
    guard: threading.Lock = field(default_factory=threading.Lock)

    def add(self, what: str, resp: httpx.Response, seconds: float, store_words: str) -> None:
        with self.guard:
            self.codes[resp.status_code] += 1
            self.slowest_s = max(self.slowest_s, seconds)
            if resp.status_code >= 500 and resp.status_code != 503:
                self.bad.append(f"{what}: {resp.status_code} {resp.text[:200]}")
            elif resp.status_code == 503:
                reason = resp.json().get("reason", "")
                if store_words not in reason or "Retry-After" not in resp.headers:
                    self.bad.append(f"{what}: 503 without the store's reason: {resp.text[:200]}")
                if PASSWORD in resp.text:
                    self.bad.append(f"{what}: a secret in the answer")
            if seconds > self.bound_s:
                self.bad.append(f"{what}: took {seconds:.2f} s")


KINDS = ("checkout", "return", "read", "status", "ondemand", "token", "metrics")
# On Redis an on-demand request is refused with its own 503 (another process's manager would have
# to carry it out), whatever the store does: those clients are left out there.
REDIS_KINDS = tuple(k for k in KINDS if k != "ondemand")


class Clients:
    """Threads that hit every kind of endpoint until stopped: checkout, return, GET vm, status,
    on-demand, tokens, metrics."""

    def __init__(self, url: str, token: str, running: list[str], answers: Answers, store_words: str,
                 kinds: tuple[str, ...] = KINDS) -> None:
        self.url = url
        self.token = token
        self.running = running  # checked-out VMs, returned by the clients one by one
        self.answers = answers
        self.store_words = store_words
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._loop, args=(kind,), daemon=True)
                        for kind in kinds]

    def __enter__(self) -> Clients:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(30)

    def _loop(self, kind: str) -> None:
        tok = {"X-AUTH-TOKEN": self.token}
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self.stop.is_set():
                started = time.monotonic()
                if kind == "checkout":
                    resp = client.post(f"/api/v3/vm/{POOL}", headers=tok)
                    if resp.status_code == 200:
                        self.running.append(resp.json()[POOL]["hostname"].split(".")[0])
                elif kind == "return":
                    if not self.running:
                        time.sleep(0.05)
                        continue
                    name = self.running[0]
                    resp = client.delete(f"/api/v3/vm/{name}", headers=tok)
                    if resp.status_code == 200 and name in self.running:
                        self.running.remove(name)
                elif kind == "read":
                    resp = client.get(f"/api/v3/vm/{self.running[-1] if self.running else 'nosuchvm'}")
                elif kind == "status":
                    resp = client.get("/api/v3/status")
                elif kind == "ondemand":
                    resp = client.post("/api/v3/ondemandvm", json={POOL: "1"}, headers=tok)
                elif kind == "token":
                    resp = client.post("/api/v3/token", headers=BASIC)
                else:
                    resp = client.get("/metrics")
                self.answers.add(f"{kind} at {time.strftime('%X')}", resp, time.monotonic() - started,
                                 self.store_words)
                time.sleep(0.05)


def document(tmp_path: Path, **store: Any) -> dict[str, Any]:
    doc = quick_config(tmp_path, [{"name": POOL, "template": f"t/{POOL}", "size": SIZE}])
    doc[":auth"] = {"provider": "static", "users": {"alice": hash_password(PASSWORD, iterations=1000)}}
    doc[":store"].update(store)
    return doc


def live_records(service: Any) -> dict[str, VmState]:
    return {vm.name: vm.state for vm in service.pools.store.list_vms() if vm.state is not VmState.DESTROYED}


def created_names(service: Any) -> set[str]:
    """Every VM the simulator was asked to create."""
    sim = service.pools.providers["sim"]
    return {name for call in list(sim.call_log) if call.op == "create" for name in call.names}


def converged(service: Any) -> bool:
    counts = service.pools.store.counts().get(POOL, {})
    return counts.get(VmState.READY, 0) == SIZE and counts.get(VmState.PENDING, 0) == 0


def check_after(service: Any, before: dict[str, VmState], url: str, token: str) -> tuple[float, float]:
    """After a fault: a checkout works again and the pool converges (seconds to each); every
    record from before is still there, and every VM the simulator created is known to the store."""
    started = time.monotonic()
    with httpx.Client(base_url=url, timeout=10) as client:
        def checkout() -> bool:
            resp = client.post(f"/api/v3/vm/{POOL}", headers={"X-AUTH-TOKEN": token})
            assert resp.status_code in (200, 503), resp.text
            return resp.status_code == 200
        wait_until(checkout, 30, 0.05)
        first_checkout_s = time.monotonic() - started
    wait_until(lambda: converged(service), 30, 0.05)
    converged_s = time.monotonic() - started
    after = {vm.name: vm.state for vm in service.pools.store.list_vms()}
    assert not [name for name in before if name not in after], "records lost"
    assert created_names(service) <= set(after), "a VM was created that the store does not know"

    sim = service.pools.providers["sim"]

    def same_vms() -> bool:  # the simulator holds exactly the VMs the store knows as live
        live = live_records(service)
        return all((sim.controls.vm(name) is not None) == (name in live) for name in created_names(service))
    wait_until(same_vms, 15, 0.05)
    return first_checkout_s, converged_s


def session(url: str) -> tuple[str, list[str]]:
    """A token, and two VMs checked out with it."""
    with httpx.Client(base_url=url, timeout=10) as client:
        token = client.post("/api/v3/token", headers=BASIC).json()["token"]
        running = []
        for _ in range(2):
            resp = client.post(f"/api/v3/vm/{POOL}", headers={"X-AUTH-TOKEN": token})
            assert resp.status_code == 200, resp.text
            running.append(resp.json()[POOL]["hostname"].split(".")[0])
    return token, running


def metric(url: str, name: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + " ")
               or line.startswith(name + "{"))


def pauses(logs: Logs) -> int:
    return sum("store unavailable: the manager pauses" in m for m in logs.messages())


def test_sqlite_locked_by_another_process_for_10_s(tmp_path: Path, logs: Logs) -> None:
    with ServerThread(document(tmp_path, lock_wait=LOCK_WAIT_S)) as server:
        service = server.service
        server.wait(lambda: converged(service), 15)
        token, running = session(server.url)
        server.wait(lambda: converged(service), 15)
        before = live_records(service)
        answers = Answers()
        locker = subprocess.Popen([sys.executable, "-c", (
            "import sqlite3, sys, time\n"
            f"c = sqlite3.connect({str(tmp_path / 'corral.db')!r}, isolation_level=None)\n"
            "c.execute('BEGIN EXCLUSIVE'); print('locked', flush=True)\n"
            f"time.sleep({SQLITE_LOCK_S}); c.execute('COMMIT')\n")], stdout=subprocess.PIPE, text=True)
        assert locker.stdout is not None and locker.stdout.readline().strip() == "locked"
        locked_at = time.monotonic()
        paused_s = status_said_s = None
        with Clients(server.url, token, running, answers, "is locked by another process"):
            while locker.poll() is None:
                if paused_s is None and pauses(logs):
                    paused_s = time.monotonic() - locked_at
                if status_said_s is None:
                    body = httpx.get(f"{server.url}/api/v3/status", timeout=10).json()
                    if "store" in body["status"]:
                        assert body["status"]["ok"] is False and body["status"]["store"]["available"] is False
                        assert "locked by another process" in body["status"]["message"]
                        status_said_s = time.monotonic() - locked_at
                time.sleep(0.05)
            held_s = time.monotonic() - locked_at
        assert locker.wait() == 0
        # the clients kept going until the lock was released; their answers after it are fine too
        assert not answers.bad, answers.bad[:5]
        assert answers.codes[503] > 0, answers.codes
        assert paused_s is not None and status_said_s is not None
        first_checkout_s, converged_s = check_after(service, before, server.url, token)
        assert pauses(logs) == 1, "the pause is said once"
        assert sum("store available again" in m for m in logs.messages()) == 1
        assert not [m for m in logs.messages(logging.ERROR)], logs.messages(logging.ERROR)[:5]
        assert metric(server.url, "corral_store_outages_total") == 1
        assert metric(server.url, "corral_store_unavailable_answers_total") == answers.codes[503]
        assert metric(server.url, "corral_store_available") == 1
        print(f"\nsqlite locked {held_s:.1f} s: answers {dict(answers.codes)}, slowest {answers.slowest_s:.2f} s, "
              f"manager paused after {paused_s:.2f} s, /status said so after {status_said_s:.2f} s; after the "
              f"lock: checkout in {first_checkout_s:.2f} s, pool converged in {converged_s:.2f} s; records "
              f"before {len(before)}, all there after")


@pytest.fixture
def redis_persistent(tmp_path: Path) -> Iterator[RedisServer]:
    (tmp_path / "redis").mkdir()
    with RedisServer(workdir=tmp_path / "redis", persist=True) as server:
        yield server


def test_redis_stopped_for_10_s_and_for_60_s(tmp_path: Path, redis_persistent: RedisServer, redis_site: str,
                                             logs: Logs) -> None:
    doc = document(tmp_path, type="redis", site=redis_site)
    doc[":redis"] = {"server": "127.0.0.1", "port": redis_persistent.port}
    with ServerThread(doc) as server:
        service = server.service
        server.wait(lambda: converged(service), 20)
        token, running = session(server.url)
        for outage_s in REDIS_OUTAGES_S:
            server.wait(lambda: converged(service), 20)
            before = live_records(service)
            answers = Answers(bound_s=REDIS_BOUND_S)
            errors_before = len(logs.messages(logging.ERROR))
            with Clients(server.url, token, running, answers, f"Redis at 127.0.0.1:{redis_persistent.port}",
                         REDIS_KINDS):
                time.sleep(0.5)
                redis_persistent.stop()  # SIGTERM: Redis writes its append-only file and exits
                stopped_at, stopped_wall = time.monotonic(), time.time()
                created_before = created_names(service)
                time.sleep(outage_s)
                calls_during = len(created_names(service) - created_before)  # records written before the stop
                redis_persistent.start()
                started_wall = time.time()
            assert not answers.bad, answers.bad[:5]
            assert answers.codes[503] > 0, answers.codes
            first_checkout_s, converged_s = check_after(service, before, server.url, token)
            errors = logs.messages(logging.ERROR)[errors_before:]
            assert not errors, errors[:5]
            paused = logs.first(("the manager pauses", "acting on no pool"), stopped_wall)
            resumed = logs.first(("acting on pools", "the manager resumes"), started_wall)
            assert paused is not None and paused < started_wall and resumed is not None
            assert len([m for m in logs.messages(logging.WARNING) if "answering 503" in m]) <= 2 + outage_s / 30
            print(f"\nRedis stopped {outage_s:.0f} s ({time.monotonic() - stopped_at:.1f} s to now): manager "
                  f"paused after {paused - stopped_wall:.2f} s, resumed {resumed - started_wall:.2f} s after the "
                  f"restart; answers {dict(answers.codes)}, slowest {answers.slowest_s:.2f} s; VMs sent to the "
                  f"simulator during the outage {calls_during}; after the restart: checkout in "
                  f"{first_checkout_s:.2f} s, pool converged in {converged_s:.2f} s; records before {len(before)}, "
                  "all there after")

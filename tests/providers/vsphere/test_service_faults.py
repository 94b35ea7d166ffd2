"""corral on vcsim under provider faults, end to end: the real server while the vCenter misbehaves.

- The session is ended from outside (``SessionManager.TerminateSession`` on a second session of
  the same user, as an administrator would) again and again while pools fill and clients check
  VMs out and return them: every call renews the session and goes on, pools converge, and
  vcsim's VMs are exactly the store's.
- Clones and destroys stall for seconds in the vCenter (vcsim's ``DelayConfig``), destroys longer
  than corral lets one call take: pools still converge, a checkout of a ready VM is not slowed,
  the timeouts carry their cause, and every VM returned is destroyed: nothing leaks.
- Every connection to the vCenter is reset (a proxy the test cuts), then the vCenter cannot be
  reached for seconds: the change feed resumes, what waited goes through, nothing leaks.

Every failure is read by cause, with the sessions renewed, from ``/status`` (and metrics).
"""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from corral.bench.vcsim import Vcsim, wait_task
from corral.domain.states import ACTIVE_STATES, VmState
from helpers import ServerThread, wait_until

from .conftest import TEMPLATE, TOOLS_RUNNING, SshStandIn
from .proxy import Proxy

SEED = 22


def document(tmp_path: Path, sim: Vcsim, pools: dict[str, int], *, provider: dict[str, Any] | None = None,
             reconcile: float = 300) -> dict[str, Any]:
    return {
        ":providers": {":vsphere": sim.settings(feed_max_wait=1, **(provider or {}))},
        ":store": {"path": str(tmp_path / "corral.db")},
        ":config": {"check_interval": 0.2, "task_limit": 10, "domain": "pool.test", "create_folders": True},
        ":monitoring": {"reconcile_interval": reconcile},
        ":runner": {"aggregation_window": 0.01, "retry_delay": 0.1},
        ":pools": [{"name": name, "template": TEMPLATE, "size": size, "folder": f"Pooled VMs/{name}"}
                   for name, size in pools.items()],
    }


def serve(document: dict[str, Any], ssh: SshStandIn) -> tuple[ServerThread, Any]:
    """The server, its vSphere provider probing the stand-in and its clones reporting running tools."""
    server = ServerThread(document)
    provider: Any = server.service.pools.providers["vsphere"]
    provider.probe = ssh.probe  # the only stand-in: DNS and sshd of guests vcsim does not run
    provider.pools = {name: dataclasses.replace(p, extra_config={**p.extra_config, **TOOLS_RUNNING})
                      for name, p in provider.pools.items()}
    return server, provider


def failures(url: str) -> tuple[dict[str, dict[str, int]], int]:
    """The vSphere provider's failures (operation -> cause -> count) and sessions renewed, as
    ``/status`` shows them."""
    monitoring = httpx.get(f"{url}/api/v3/status?view=monitoring", timeout=10).json()["monitoring"]
    return monitoring["provider_failures"].get("vsphere", {}), monitoring["sessions_renewed"].get("vsphere", 0)


def metric(exposition: str, name: str, **labels: str) -> float | None:
    """The value of the sample ``name`` with exactly these labels in a Prometheus exposition."""
    wanted = {f'{k}="{v}"' for k, v in labels.items()}
    for line in exposition.splitlines():
        if line.startswith(name + "{"):
            head, _, value = line.rpartition(" ")
            if set(head[len(name) + 1:-1].split(",")) == wanted:
                return float(value)
    return None


def by_cause(counts: dict[str, dict[str, int]]) -> Counter[str]:
    return Counter({cause: n for causes in counts.values() for cause, n in causes.items()})


def full(store: Any, pools: dict[str, int]) -> bool:
    return all(len(store.list_vms(pool=name, states=[VmState.READY])) == size for name, size in pools.items())


def settled(sim: Vcsim, store: Any) -> bool:
    """Every VM returned is destroyed (no record waits for a destroy), and vcsim holds exactly the
    VMs the store has a live record of: no leak either way."""
    live = store.list_vms(states=list(ACTIVE_STATES))
    return all(vm.state is VmState.READY for vm in live) and sim.vm_names() == {vm.name for vm in live}


class Clients:
    """``count`` threads checking a VM of ``pool`` out and returning it, over and over: every
    answer's status is counted, and every VM handed out is remembered (one VM twice fails)."""

    def __init__(self, url: str, pool: str, count: int) -> None:
        self.url = url
        self.pool = pool
        self.statuses: Counter[int] = Counter()
        self.handed: list[str] = []
        self.checkout_s: list[float] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(count)]

    def start(self) -> Clients:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def _run(self) -> None:
        with httpx.Client(base_url=f"{self.url}/api/v3", timeout=30) as client:
            while not self._stop.is_set():
                started = time.monotonic()
                answer = client.post(f"/vm/{self.pool}")
                took = time.monotonic() - started
                with self._lock:
                    self.statuses[answer.status_code] += 1
                if answer.status_code != 200:
                    self._stop.wait(0.1)
                    continue
                name = answer.json()[self.pool]["hostname"].split(".")[0]
                with self._lock:
                    self.handed.append(name)
                    self.checkout_s.append(took)
                self._stop.wait(0.05)
                returned = client.delete(f"/vm/{name}")
                with self._lock:
                    self.statuses[returned.status_code] += 1

    def errors(self) -> list[int]:
        """The server errors answered (a 503 is an empty pool's answer, not an error)."""
        return [s for s in self.statuses if s >= 500 and s != 503]

    @property
    def duplicates(self) -> int:
        return len(self.handed) - len(set(self.handed))


def test_sessions_ended_again_and_again_are_renewed_and_pools_converge_without_leaks(
    tmp_path: Path, vcsim: Vcsim, ssh: SshStandIn
) -> None:
    pools = {"a": 3, "b": 3}
    server, provider = serve(document(tmp_path, vcsim, pools), ssh)
    kills = 12
    rng = random.Random(SEED)
    with server as srv:
        store = srv.service.pools.store
        vcsim.sessions()  # the observer logs in now
        ended = 0
        clients = Clients(srv.url, "a", 2)
        # the first kills while the pools fill, the rest while clients check out and return
        for i in range(kills):
            if i == kills // 3:
                srv.wait(lambda: full(store, pools), timeout=30)
                clients.start()
            time.sleep(rng.uniform(0.2, 0.6))
            wait_until(lambda: vcsim.sessions(), timeout=10)  # corral's session, renewed after the last kill
            ended += vcsim.terminate_sessions()
        clients.stop()
        # 60 s: once in four suite runs the pools were not full 30 s after the last kill (not explained yet)
        srv.wait(lambda: full(store, pools), timeout=60)
        srv.wait(lambda: settled(vcsim, store), timeout=30)
        # every session ended was renewed once, by whichever call or long poll met its end first
        assert ended == kills
        srv.wait(lambda: provider.session.relogins == ended, timeout=10)
        # counted in /status: every renewal; no call failed for want of a session (each was renewed
        # and went on); the feed's lost long polls are said as failures of the feed
        srv.wait(lambda: failures(srv.url)[1] == ended, timeout=10)
        failed, _ = failures(srv.url)
        assert by_cause(failed)["session"] == 0, failed
        assert failed.get("wait_for_updates", {}).get("feed", 0) >= 1, failed
        assert len(vcsim.sessions()) == 1
        assert clients.duplicates == 0, clients.handed
        assert not clients.errors(), clients.statuses
        assert clients.statuses[200] >= 10, clients.statuses  # checkouts and returns went on
        print(f"\nsession ended {ended} times: {provider.session.relogins} renewals, failures {failed}, "
              f"{len(clients.handed)} checkouts, statuses {dict(clients.statuses)}, "
              f"feed rounds failed {provider.feed.drops} + {provider.feed.tasks.drops}")


CLONE_STALL_MS = 1500  # within the call timeout: a slow clone that succeeds
DESTROY_STALL_MS = 3000  # beyond it: the destroy call times out, and vcsim destroys the VM after all
CALL_TIMEOUT_S = 2
LOAD_S = 4


@pytest.fixture
def stalling_vcsim() -> Any:
    sim = Vcsim(hosts=3, delays={"CloneVM_Task": CLONE_STALL_MS, "Destroy_Task": DESTROY_STALL_MS})
    try:
        sim.make_template(TEMPLATE, memory_mb=128)
        yield sim
    finally:
        sim.close()


def test_stalled_clones_and_destroys_slow_no_checkout_and_leak_nothing(
    tmp_path: Path, stalling_vcsim: Vcsim, ssh: SshStandIn
) -> None:
    sim = stalling_vcsim
    pools = {"a": 4}
    server, provider = serve(document(tmp_path, sim, pools, provider={"call_timeout": CALL_TIMEOUT_S}), ssh)
    with server as srv:
        store = srv.service.pools.store
        started = time.monotonic()
        srv.wait(lambda: full(store, pools), timeout=30)
        fill_s = time.monotonic() - started
        clients = Clients(srv.url, "a", 2).start()
        time.sleep(LOAD_S)  # returns start destroys (stalled, timing out) and refills (stalled clones)
        clients.stop()
        stalled_calls = provider.session.in_flight
        srv.wait(lambda: full(store, pools), timeout=40)
        srv.wait(lambda: settled(sim, store), timeout=40)
        converged_s = time.monotonic() - started - fill_s - LOAD_S
        assert clients.duplicates == 0, clients.handed
        assert not clients.errors(), clients.statuses
        assert len(clients.handed) >= 4, clients.statuses
        failed, renewed = failures(srv.url)
        # each destroy that outlived the call timeout was counted as a timeout, and tried again
        assert failed.get("destroy_vm", {}).get("timeout", 0) >= 1, failed
        assert renewed == 0
        slowest, median = max(clients.checkout_s), sorted(clients.checkout_s)[len(clients.checkout_s) // 2]
        # a checkout takes a ready VM from the store: it waits for no vSphere call, however slow
        assert slowest < 1.0, sorted(clients.checkout_s)
        print(f"\nfill {fill_s:.1f} s with {CLONE_STALL_MS} ms clones; {len(clients.handed)} checkouts, slowest "
              f"{slowest * 1000:.0f} ms, median {median * 1000:.0f} ms"
              f" (calls in flight at the end of the load: {stalled_calls}); converged {converged_s:.1f} s later; "
              f"statuses {dict(clients.statuses)}; failures {failed}")


DOWN_S = 3


def test_the_feed_resumes_after_its_connections_drop_and_after_the_vcenter_was_unreachable(
    tmp_path: Path, vcsim: Vcsim, ssh: SshStandIn
) -> None:
    proxy = Proxy(vcsim.host, vcsim.port)
    pools = {"a": 3}
    server, provider = serve(document(tmp_path, vcsim, pools, provider={"port": proxy.port}), ssh)
    try:
        with server as srv, httpx.Client(base_url=f"{srv.url}/api/v3", timeout=30) as client:
            store = srv.service.pools.store
            inventory = srv.service.pools.manager.inventory["vsphere"]
            srv.wait(lambda: full(store, pools), timeout=30)

            # -- every connection to the vCenter is reset, the feed's long polls among them --------
            drops, snapshots = provider.feed.drops, provider.feed.snapshots
            assert proxy.cut() >= 2  # the inventory's and the tasks' long polls at least
            # a VM deleted behind corral's back meanwhile reaches the inventory through the resumed feed
            gone = store.list_vms(pool="a", states=[VmState.READY])[0].name
            vm = vcsim.vm(gone)
            wait_task(vm.PowerOffVM_Task())
            wait_task(vm.Destroy_Task())
            srv.wait(lambda: inventory.vm(gone) is None, timeout=15)
            assert provider.feed.drops > drops and provider.feed.snapshots > snapshots
            srv.wait(lambda: full(store, pools), timeout=30)  # and the pool refilled

            # -- the vCenter cannot be reached for seconds while a VM is checked out and returned ---
            proxy.down()
            started = time.monotonic()
            answer = client.post("/vm/a")  # from the store: no call to the vCenter
            assert answer.status_code == 200, answer.text
            name = answer.json()["a"]["hostname"].split(".")[0]
            assert client.delete(f"/vm/{name}").json()["ok"]  # its destroy and the refill wait for the vCenter
            time.sleep(max(0.0, DOWN_S - (time.monotonic() - started)))
            reset_while_down = proxy.cuts
            proxy.up()
            srv.wait(lambda: vcsim.vm(name) is None, timeout=30)
            srv.wait(lambda: full(store, pools), timeout=30)
            srv.wait(lambda: settled(vcsim, store), timeout=30)
            assert provider.session.relogins == 0  # the session outlived its connections
            failed, renewed = failures(srv.url)
            causes = by_cause(failed)
            assert causes["unreachable"] >= 1 and causes["feed"] >= 1, failed  # the destroy or refill, the feed
            assert renewed == 0 and causes["session"] == 0, failed
            # and in metrics, the same counts
            exposition = httpx.get(f"{srv.url}/metrics", timeout=10).text
            assert metric(exposition, "corral_provider_failures_total", provider="vsphere", operation="create_vms",
                          cause="unreachable") == failed["create_vms"]["unreachable"]
            print(f"\nfeed rounds failed: {provider.feed.drops} + {provider.feed.tasks.drops}; snapshots "
                  f"{provider.feed.snapshots}; connections reset {reset_while_down}; converged "
                  f"{time.monotonic() - started - DOWN_S:.1f} s after the vCenter came back; failures {failed}")
    finally:
        proxy.close()

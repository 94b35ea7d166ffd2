"""Provider faults on a real corral (HTTP API, pool manager, simulator, sqlite): clones that fail
at 10 %, a session that expires every few calls, a stalled host, a host down, the whole endpoint
unreachable for 30 s, a change feed that drops its connection.

Each test injects its fault through the simulator's hooks while clients check VMs out and
return them over the API, then shows that the pools converge, that breakers open and close
where they should, that every failure is counted by cause in ``/status`` and in the metrics
(as many as the simulator injected), and that the simulator's VMs are exactly the store's (no
leak, nothing lost). Each prints one line of numbers; docs/reliability.md records them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from corral.domain.states import DESTROY_INTENT_STATES, LIVE_STATES

from .conftest import Server
from .test_metrics import scrape

POOLS = [{"name": "a", "template": "t/a", "size": 12}, {"name": "b", "template": "t/b", "size": 12}]
SIZE = sum(p["size"] for p in POOLS)
H1 = "sim-host-01"


def runner(**keys: Any) -> dict[str, Any]:
    return {":runner": {"aggregation_window": 0.01, "retry_delay": 0.02, **keys}}


def failures(server: Server) -> dict[str, Any]:
    """``monitoring.provider_failures`` and ``sessions_renewed`` of /status."""
    body = server.client.get("/status", params={"view": "monitoring"}).json()["monitoring"]
    return {"failures": body["provider_failures"].get("sim", {}), "renewed": body["sessions_renewed"].get("sim", 0)}


def breakers(server: Server) -> tuple[int, int]:
    body = server.client.get("/status", params={"view": "runner"}).json()["runner"]
    return body["breakers_opened"], body["breakers_closed"]


def metric_failures(server: Server) -> dict[tuple[str, str], float]:
    """(operation, cause) -> corral_provider_failures_total of the simulator, from a scrape."""
    out = {}
    for (name, labels), value in scrape(server).items():
        if name == "corral_provider_failures_total" and dict(labels)["provider"] == "sim":
            out[(dict(labels)["operation"], dict(labels)["cause"])] = value
    return out


def of_cause(counts: dict[str, dict[str, int]], cause: str) -> int:
    return sum(causes.get(cause, 0) for causes in counts.values())


def churn(server: Server, rounds: int, per_round: int = 4) -> int:
    """Check out up to ``per_round`` VMs of each pool and return them, ``rounds`` times; the VMs handed out."""
    handed: list[str] = []
    for _ in range(rounds):
        for pool in ("a", "b"):
            resp = server.client.post(f"/vm/{'+'.join([pool] * per_round)}")
            if resp.status_code == 200:
                names = resp.json()[pool]["hostname"]
                handed += [names] if isinstance(names, str) else names
        for name in handed[-2 * per_round:]:
            server.client.delete(f"/vm/{name}")
    assert len(handed) == len(set(handed)), "a VM was handed out twice"
    return len(handed)


def settled(server: Server) -> bool:
    """Every pool full, nothing pending or waiting to be destroyed, and the simulator's VMs are
    exactly the store's live ones."""
    store, sim = server.store, server.sim.controls
    counts = store.counts()
    full = all(counts.get(p["name"], {}).get(state, 0) == (p["size"] if state.value == "ready" else 0)
               for p in POOLS for state in LIVE_STATES)
    live = {v.name for v in store.list_vms(states=tuple(LIVE_STATES))}
    waiting = store.list_vms(states=DESTROY_INTENT_STATES)
    return full and not waiting and live == sim.vm_names()


def converge(server: Server, timeout: float) -> float:
    """Seconds until :func:`settled` (fails after ``timeout``)."""
    started = time.monotonic()
    server.wait(lambda: settled(server), timeout)
    return round(time.monotonic() - started, 2)


def counted_alike(server: Server, kind: str, cause: str) -> int:
    """The failures of ``cause`` in /status and in the metrics, each as many as the simulator injected."""
    injected = server.sim.controls.injected().get(kind, 0)
    status = failures(server)["failures"]
    assert of_cause(status, cause) == injected, (status, injected)
    scraped = metric_failures(server)
    assert sum(v for (_, c), v in scraped.items() if c == cause) == injected, scraped
    return injected


def wait_for(server: Server, check: Callable[[], Any], timeout: float = 10.0) -> Any:
    return server.wait(check, timeout)


def test_ten_percent_of_clones_fail(make_server: Any) -> None:
    server = make_server(POOLS, extra=runner(), max_tries=5)
    server.sim.controls.fail_clones(0.1, seed=22)
    handed = churn(server, rounds=6)
    took = converge(server, 20)
    injected = counted_alike(server, "clone", "injected")
    assert injected >= 3 and set(failures(server)["failures"]) == {"create_vms"}
    print(f"\n10% failed clones: {handed} VMs handed out, {injected} clones failed (all counted as "
          f"create_vms/injected), converged {took} s after the churn, no leak")


def test_a_session_that_expires_every_few_calls_is_renewed(make_server: Any) -> None:
    server = make_server(POOLS, extra=runner())
    server.sim.controls.expire_session_every(5)
    handed = churn(server, rounds=4)
    converge(server, 15)
    # counted as the call that renewed it starts or returns: a long poll of the feed may hold one a while
    renewed = wait_for(server, lambda: failures(server)["renewed"] == server.sim.sessions_renewed
                       and failures(server)["renewed"])
    assert renewed >= 10
    assert failures(server)["failures"] == {}  # a renewal is no failure
    samples = scrape(server)
    assert samples[("corral_provider_sessions_renewed_total", (("provider", "sim"),))] == renewed
    server.sim.controls.fail_renewals(3)  # then three renewals fail: those calls fail, with cause session
    handed += churn(server, rounds=2)
    took = converge(server, 15)
    failed = counted_alike(server, "renewal", "session")
    assert failed == 3
    print(f"\nsession expiring every 5 calls: {handed} VMs handed out, {failures(server)['renewed']} renewals, "
          f"{failed} failed renewals counted as session, converged {took} s after, no leak")


def test_a_stalled_host_does_not_hold_up_the_others(make_server: Any) -> None:
    # one call at a time per host: the stalled host's next calls wait at the runner's gate, and
    # must not hold up the calls to the other hosts that come after them
    server = make_server(POOLS, extra=runner(host_task_limit=1), task_limit=8)
    server.sim.controls.stall_host(H1, 5.0)
    started = time.monotonic()
    handed = churn(server, rounds=4)  # four rounds of refills while H1 stalls
    runner_log = server.service.pools.manager.runner.log
    # H1's second call goes once its first is done, 5 s in: then the stall is lifted
    wait_for(server, lambda: [d for d in runner_log if d.host == H1 and d.at - started >= 4.5], 8)
    server.sim.controls.stall_host(H1, 0)
    took = converge(server, 15)
    sent = [d for d in runner_log if d.at >= started]  # the calls made since
    others = [d.at - started for d in sent if d.host != H1]
    on_h1 = [d.at - started for d in sent if d.host == H1]
    assert others and on_h1
    assert max(others) < 2.0, sorted(others)  # none waited behind H1's calls
    assert max(on_h1) >= 4.5, sorted(on_h1)  # while H1's next call did wait for its stalled one
    assert failures(server)["failures"] == {}  # slow is not failed
    print(f"\nhost stalled 5 s: {handed} VMs handed out and returned; {len(others)} calls to the other hosts all "
          f"sent within {max(others):.2f} s, {len(on_h1)} to the stalled host (the last after {max(on_h1):.2f} s); "
          f"converged {took} s after the stall was lifted, no leak")


def test_a_host_down_moves_its_vms_and_a_failing_host_trips_its_breaker(make_server: Any) -> None:
    server = make_server(POOLS, extra={**runner(), ":monitoring": {"host_down_grace": 0.5}},
                         circuit_breaker_failure_threshold=2, circuit_breaker_timeout=1.0,
                         circuit_breaker_half_open_attempts=2)
    controls = server.sim.controls
    on_h1 = lambda: [v.name for v in server.store.list_vms(states=tuple(LIVE_STATES)) if v.host == H1]  # noqa: E731
    was_there = len(on_h1())
    assert was_there
    # a host down: its VMs are replaced elsewhere, and placement leaves it alone (it reports itself down)
    controls.set_host_down(H1)
    started = time.monotonic()
    wait_for(server, lambda: not on_h1() and settled(server), 10)
    moved = round(time.monotonic() - started, 2)
    assert server.client.get("/status", params={"view": "monitoring"}).json()["monitoring"]["host_drops"] == was_there
    handed = churn(server, rounds=2)
    assert not on_h1()
    # back up, but failing every VM put on it: its breaker opens, and closes once it works again
    controls.set_host_down(H1, False)
    controls.fail_on_host(H1)
    wait_for(server, lambda: churn(server, rounds=1) and breakers(server)[0] >= 1, 15)
    controls.fail_on_host(H1, False)
    wait_for(server, lambda: churn(server, rounds=1) and breakers(server)[1] >= 1, 15)
    took = converge(server, 15)
    opened, closed = breakers(server)
    host_failures = of_cause(failures(server)["failures"], "host")
    assert host_failures >= 2
    assert sum(v for (_, c), v in metric_failures(server).items() if c == "host") == host_failures
    samples = scrape(server)
    assert samples[("corral_runner_breakers_opened_total", ())] == opened >= 1
    assert samples[("corral_runner_breakers_closed_total", ())] == closed >= 1
    print(f"\nhost down: its {was_there} VMs replaced elsewhere, pools full again in {moved} s; host failing VMs: "
          f"{host_failures} VMs failed (counted as host), breaker opened {opened} and closed {closed} times; "
          f"{handed} VMs handed out; converged {took} s after the host worked again, no leak")


def test_the_endpoint_unreachable_for_30_seconds(make_server: Any) -> None:
    server = make_server(POOLS, extra=runner())
    server.sim.controls.unreachable_for(30.0)
    started = time.monotonic()
    handed = churn(server, rounds=2)  # checkouts go on from the store; returns wait to be destroyed
    wait_for(server, lambda: time.monotonic() - started >= 30.0, 35.0)
    took = converge(server, 20)
    injected = counted_alike(server, "unreachable", "unreachable")
    by_op = {op: causes["unreachable"] for op, causes in failures(server)["failures"].items()}
    assert {"destroy_vm", "wait_for_updates"} <= set(by_op)
    assert breakers(server) == (0, 0)  # the endpoint's outage is no host's fault: no host was shut out after it
    print(f"\nendpoint unreachable 30 s: {handed} VMs handed out and returned during it, {injected} calls failed, "
          f"counted as unreachable ({by_op}); converged {took} s after it ended, no leak")


def test_a_change_feed_that_drops_loses_no_change(make_server: Any) -> None:
    server = make_server(POOLS, extra=runner())
    def feed() -> dict[str, Any]:
        body = server.client.get("/status", params={"view": "monitoring"}).json()
        return dict(body["monitoring"]["providers"]["sim"])

    answers = feed()["answers"]
    server.sim.controls.drop_feed(3)
    started = time.monotonic()
    handed = churn(server, rounds=3)  # VMs made and destroyed while the feed is down (retried after 0.5, 1, 2 s)
    wait_for(server, lambda: feed()["feed_errors"] == 3 and feed()["answers"] > answers, 10)  # it is back
    took = converge(server, 15)
    after = round(time.monotonic() - started, 2)
    # the inventory has every change: the feed asked again from its last version, no full snapshot needed
    inventory = server.service.pools.manager.inventory.monitors["sim"].repo
    wait_for(server, lambda: set(inventory.vms) == server.sim.controls.vm_names(), 5)
    assert feed()["resnapshots"] == 0 and feed()["repairs"] == 0
    dropped = counted_alike(server, "feed", "feed")
    assert dropped == 3 and set(failures(server)["failures"]) == {"wait_for_updates"}
    print(f"\nchange feed dropped 3 times: {handed} VMs handed out, {dropped} drops counted as feed, no full "
          f"snapshot read again, the inventory equal to the simulator; converged {after} s after the first drop "
          f"({took} s after the last), no leak")


"""The dashboard in a real headless Chromium (Debian's ``chromium``, driven by playwright): it
loads without console errors, shows the configured pools with the numbers ``/status`` gives,
changes within a second after a checkout, and shows names as text.

Every run saves a screenshot under the test's tmp path; with ``CORRAL_DASHBOARD_SHOT=PATH``
it is also written to PATH (``CORRAL_DASHBOARD_SHOT=docs/dashboard.png`` renews the one in the
documentation).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from helpers import ServerThread, wait_until

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWS = "pools,queue,runner,hosts,managers,clone,boot,timings"

# Pools and hosts that look like a site's (the screenshot in the documentation is of these).
POOLS = [
    {"name": "debian-12-x86_64", "template": "templates/debian-12", "size": 6},
    {"name": "ubuntu-2404-x86_64", "template": "templates/ubuntu-2404", "size": 5, "alias": ["ubuntu"]},
    {"name": "rocky-9-x86_64", "template": "templates/rocky-9", "size": 4},
    {"name": "win-2022-x86_64", "template": "templates/win-2022", "size": 3},
]
HOSTS = [{"name": f"esx-{n:02d}.lab", "cluster": "cluster-a" if n <= 3 else "cluster-b", "cores": 16,
          "memory_mb": 65536} for n in range(1, 6)]
# Slower than the tests' usual simulator and with jitter, so the charts show times of a plausible shape.
SIM = {"time_scale": 0.02, "jitter": 0.4, "hosts": HOSTS, "template_defaults": {"cpus": 2, "memory_mb": 4096}}


def require_chromium(path: Path) -> None:
    """Fail the test, saying what to install, when there is no Chromium at ``path``."""
    if not path.is_file():
        pytest.fail(f"Chromium is not installed at {path}: the dashboard tests need Debian's 'chromium' "
                    "package (make test-deps installs it, from scripts/system-packages.txt)", pytrace=False)


def test_a_missing_chromium_fails_with_what_to_install(tmp_path):
    with pytest.raises(pytest.fail.Exception, match="Chromium is not installed at .*nowhere.*'chromium'"):
        require_chromium(tmp_path / "nowhere" / "chromium")
    require_chromium(CHROMIUM)  # and the real one is there


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """A fresh headless Chromium profile; fails (never skips) when Chromium is not installed."""
    require_chromium(CHROMIUM)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 1000}, device_scale_factor=1)
        try:
            yield context
        finally:
            context.close()


class Watched:
    """A page whose console errors and warnings, uncaught errors and failed requests are kept."""

    def __init__(self, context: Any) -> None:
        self.page = context.new_page()
        self.problems: list[str] = []
        self.page.on("console", lambda m: m.type in ("error", "warning") and self.problems.append(
            f"console {m.type}: {m.text}"))
        self.page.on("pageerror", lambda e: self.problems.append(f"uncaught: {e}"))
        self.page.on("response", lambda r: r.status >= 400 and self.problems.append(f"{r.status} {r.url}"))

    def pools(self) -> dict[str, dict[str, int]]:
        rows = self.page.eval_on_selector_all(
            "#pools tbody tr",
            "rows => rows.map(r => [r.dataset.pool, ...['ready', 'pending', 'running', 'size']"
            ".map(c => r.querySelector('td.' + c).textContent)])")
        return {name: {"ready": int(r), "pending": int(p), "running": int(run), "max": int(size)}
                for name, r, p, run, size in rows}


def status_pools(server: Any) -> dict[str, dict[str, int]]:
    pools = server.client.get("/status", params={"view": "pools"}).json()["pools"]
    return {name: {k: p[k] for k in ("ready", "pending", "running", "max")} for name, p in pools.items()}


def wait_for_live(page: Any) -> None:
    page.wait_for_selector("#link[data-state='live']", timeout=10_000)
    page.wait_for_function("() => Number(document.body.dataset.reads) >= 1", timeout=10_000)


def test_the_dashboard_shows_the_status_and_follows_a_checkout(make_server, browser, tmp_path):
    server = make_server(POOLS, sim=SIM)
    watched = Watched(browser)
    page = watched.page
    page.goto(server.url + "/")
    assert page.url == f"{server.url}/dashboard/", "/ sends the browser to the dashboard"
    wait_for_live(page)

    # the configured pools, with the numbers of /status (the pools are full and idle: both agree)
    assert set(watched.pools()) == {p["name"] for p in POOLS}
    assert watched.pools() == status_pools(server)
    status = server.client.get("/status", params={"view": VIEWS}).json()
    hosts = page.eval_on_selector_all("#hosts tbody tr", "rows => rows.map(r => r.dataset.host)")
    assert sorted(hosts) == sorted(status["hosts"]["sim"]) == [h["name"] for h in HOSTS]
    vms = page.eval_on_selector_all("#hosts tbody tr td.vms", "cells => cells.map(c => Number(c.textContent))")
    assert sum(vms) == sum(h["vms"] for h in status["hosts"]["sim"].values())
    assert page.text_content("[data-tile='ready'] .value") == str(status["queue"]["ready"])
    assert page.text_content("[data-tile='created'] .value") == str(status["runner"]["created"])
    assert page.is_hidden("#managers-card"), "one process on sqlite: no managers to show"
    clone_dots = page.eval_on_selector_all("#clone-chart circle", "dots => dots.length")
    assert clone_dots == len(status["timings"]["clone"]) > 0
    assert page.text_content("#message") == status["status"]["message"]

    # a checkout through the API shows within a second: the pool's running count, and the event
    before = watched.pools()["debian-12-x86_64"]["running"]
    started = time.monotonic()
    answer = server.client.post("/vm/debian-12-x86_64")
    assert answer.status_code == 200, answer.text
    page.wait_for_function(
        "want => document.querySelector(\"#pools tr[data-pool='debian-12-x86_64'] td.running\").textContent == want",
        arg=str(before + 1), timeout=1000)
    assert time.monotonic() - started < 1.0
    hostname = answer.json()["debian-12-x86_64"]["hostname"]
    page.wait_for_function(
        "name => [...document.querySelectorAll('#events li')].some(li => li.textContent.includes(name + ' "
        "(debian-12-x86_64): ready \u2192 running'))", arg=hostname, timeout=1000)
    assert time.monotonic() - started < 1.0

    # a few more, for a page that looks used; then the numbers settle and agree again
    for pool in ("ubuntu", "ubuntu", "rocky-9-x86_64", "debian-12-x86_64"):
        assert server.client.post(f"/vm/{pool}").status_code == 200
    server.wait_full()
    server.wait(lambda: watched.pools() == status_pools(server), timeout=5)
    assert watched.pools()["ubuntu-2404-x86_64"]["running"] == 2
    page.wait_for_timeout(300)  # the last read is drawn

    shot = tmp_path / "dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if target := os.environ.get("CORRAL_DASHBOARD_SHOT"):
        shutil.copyfile(shot, target)
    assert watched.problems == []


def test_names_are_shown_as_text(make_server, browser):
    evil = '<img src=x onerror="window.pwned=1">esx'
    hosts = [{"name": evil, "cluster": "<b>bold</b>"}]
    server = make_server([{"name": "plain", "template": "t/plain", "size": 2}], sim={"hosts": hosts})
    watched = Watched(browser)
    page = watched.page
    page.goto(server.url + "/dashboard")
    wait_for_live(page)
    assert server.client.post("/vm/plain").status_code == 200  # events naming the host arrive too
    page.wait_for_function("() => document.querySelectorAll('#events li').length > 0", timeout=2000)
    server.wait_full()
    page.wait_for_timeout(300)
    assert page.eval_on_selector_all("#hosts tbody tr", "rows => rows.map(r => r.dataset.host)") == [evil]
    assert page.text_content("#hosts tbody td.name") == evil
    assert "sim / <b>bold</b>" in page.text_content("#hosts tbody")
    assert page.eval_on_selector_all("img, b", "found => found.length") == 0
    assert page.evaluate("window.pwned") is None
    assert watched.problems == []


def test_the_page_reconnects_after_a_restart_and_reads_everything_again(make_server, browser):
    pools = [{"name": "plain", "template": "t/plain", "size": 2}]
    server = make_server(pools)
    watched = Watched(browser)
    page = watched.page
    page.goto(server.url + "/dashboard/")
    wait_for_live(page)
    server.stop()
    page.wait_for_selector("#link:not([data-state='live'])", timeout=5000)

    again = ServerThread(server.document)  # the same store and port: a restart
    again.port, again.url = server.thread.port, server.url
    with again:
        wait_until(lambda: again.service.pools.running, timeout=10)
        with httpx.Client(base_url=f"{again.url}/api/v3", timeout=10) as client:
            assert client.post("/vm/plain").status_code == 200
            page.wait_for_selector("#link[data-state='live']", timeout=10_000)
            page.wait_for_function(
                "() => document.querySelector(\"#pools tr[data-pool='plain'] td.running\").textContent === '1'",
                timeout=5000)
            running = client.get("/status", params={"view": "pools"}).json()["pools"]["plain"]["running"]
            assert running == 1
    # only the stream's and the status's failed connections while the server was down
    assert all("ERR_CONNECTION_REFUSED" in p or "status could not be read" in p for p in watched.problems), \
        watched.problems


def test_a_refused_status_read_is_shown_and_retried_later(make_server, browser):
    # the page and its two files pass; the status read and the stream are over the limit
    server = make_server([{"name": "plain", "template": "t/plain", "size": 1}], rate_limiting_enabled=True,
                         extra={":rate_limits": {"global_per_ip": {"limit": 3, "period": 60}}})
    page = Watched(browser).page
    page.goto(server.url + "/dashboard/")
    page.wait_for_selector("#problem:not([hidden])", timeout=5000)
    text = page.text_content("#problem")
    assert "HTTP 429: Rate limit exceeded" in text and re.search(r"trying again in (5\d|60) s", text), text
    assert page.text_content("#pools tbody") == "", "nothing is made up while the status cannot be read"


def test_hosts_in_maintenance_or_down_show_at_once(make_server, browser):
    server = make_server([{"name": "plain", "template": "t/plain", "size": 2}],
                         extra={":monitoring": {"host_down_grace": 0.1}})
    watched = Watched(browser)
    page = watched.page
    page.goto(server.url + "/dashboard/")
    wait_for_live(page)

    def badge(host: str) -> str:
        return str(page.text_content(f"#hosts tr[data-host='{host}'] .badge"))

    assert badge("sim-host-02") == badge("sim-host-03") == "green"
    server.sim.controls.set_host_maintenance("sim-host-02")  # plain flag flips, safe from this thread
    server.sim.controls.set_host_down("sim-host-03")
    page.wait_for_selector("#hosts tr[data-host='sim-host-02'] .badge:text-is('maintenance')", timeout=2000)
    page.wait_for_selector("#hosts tr[data-host='sim-host-03'] .badge:text-is('down')", timeout=2000)
    page.wait_for_selector("#events li[data-kind='host.maintenance']", timeout=1000)
    page.wait_for_selector("#events li[data-kind='host.down']", timeout=1000)
    hosts = server.client.get("/status", params={"view": "hosts"}).json()["hosts"]["sim"]
    assert hosts["sim-host-02"]["maintenance"] and hosts["sim-host-03"]["down"]
    assert badge("sim-host-01") == "green"
    assert watched.problems == []


def test_the_managers_of_a_site_on_redis_are_shown(make_server, browser, redis_server, redis_site):
    server = make_server([{"name": "plain", "template": "t/plain", "size": 1}],
                         extra={":store": {"type": "redis", "site": redis_site},
                                ":redis": {"server": "127.0.0.1", "port": redis_server.port}})
    watched = Watched(browser)
    page = watched.page
    page.goto(server.url + "/dashboard/")
    wait_for_live(page)
    me = server.service.cluster.me
    server.wait(lambda: server.client.get("/status", params={"view": "managers"}).json()["managers"]["live"]
                .get(me, {}).get("state") == "Active")
    assert server.client.post("/vm/plain").status_code == 200  # an event, so the page reads again
    page.wait_for_selector("#managers-card:not([hidden])", timeout=2000)
    page.wait_for_function("me => document.querySelector(`#managers tr[data-manager='${me}']`)"
                           ".cells[1].textContent === 'Active'", arg=me, timeout=2000)
    cells = page.eval_on_selector_all(f"#managers tr[data-manager='{me}'] td", "cells => cells.map(c => c.textContent)")
    assert cells[0] == f"{me}this process" and cells[3] == "plain"
    assert watched.problems == []


def test_an_autosized_pool_shows_its_target_and_reason(make_server, browser):
    auto = {"name": "auto", "template": "t/auto", "size": 1, "min_size": 1, "max_size": 4, "target_wait": 0.001,
            "scale_down_after": 600, "demand_window": 1}
    server = make_server([auto, {"name": "plain", "template": "t/plain", "size": 1}], sim={"time_scale": 0.02})
    for _ in range(3):
        assert server.client.post("/vm/auto").status_code in (200, 503)  # an empty pool is demand too
    target = server.client.get("/status").json()["pools"]["auto"]["autosize"]["target"]
    assert target > 1
    watched = Watched(browser)
    page = watched.page
    page.goto(server.url + "/dashboard")
    wait_for_live(page)
    shown = page.text_content("#pools tr[data-pool='auto'] .autosize")
    assert shown.startswith(f"autosized: target {target} of 1–4; ") and "checkouts/h" in shown
    assert page.query_selector("#pools tr[data-pool='plain'] .autosize") is None, "a fixed pool shows none"
    assert watched.problems == []

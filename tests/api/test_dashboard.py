"""The dashboard over real HTTP: ``/`` sends browsers to it, its page and files are served from
the package with a strict Content-Security-Policy, it needs no token when ``:auth:`` is on, and
the ``timings`` view of ``/status`` it draws its charts from."""

from __future__ import annotations

import re
import time

import pytest

from corral.api.status import RECENT_MAX, latest_durations

POOLS = [
    {"name": "plain", "template": "t/plain", "size": 2},
    {"name": "other", "template": "t/other", "size": 1},
]


@pytest.fixture
def server(make_server):
    return make_server(POOLS)


def test_root_sends_browsers_to_the_dashboard(server):
    for method in ("GET", "HEAD"):
        resp = server.root.request(method, "/")
        assert resp.status_code == 302 and resp.headers["location"] == "/dashboard/", (method, resp.headers)
    followed = server.root.get("/", follow_redirects=True)
    assert followed.status_code == 200 and str(followed.url) == f"{server.url}/dashboard/"
    assert followed.headers["content-type"].startswith("text/html")
    assert "<title>corral dashboard</title>" in followed.text


def test_the_page_and_its_files_come_from_the_package(server):
    pages = [server.root.get(path) for path in ("/dashboard", "/dashboard/")]
    assert pages[0].text == pages[1].text
    page = pages[0]
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp and "default-src 'none'" in csp
    assert "unsafe-inline" not in csp and page.headers["x-content-type-options"] == "nosniff"
    linked = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sorted(linked) == ["/dashboard/static/dashboard.css", "/dashboard/static/dashboard.js",
                              "/dashboard/static/favicon.svg"]
    assert "<script>" not in page.text and "http://" not in page.text and "https://" not in page.text
    types = {"dashboard.css": "text/css", "dashboard.js": "javascript", "favicon.svg": "image/svg+xml"}
    for path in linked:
        resp = server.root.get(path)
        assert resp.status_code == 200 and types[path.rsplit("/", 1)[1]] in resp.headers["content-type"], path
        assert "{{" not in resp.text, "a file served as it is has no template marks"
    # the event kinds the script listens for are the stream's
    kinds = re.search(r'data-kinds="([^"]*)"', page.text)
    assert kinds is not None and "vm.lifecycle" in kinds[1].split(",") and "host.down" in kinds[1].split(",")
    missing = server.root.get("/dashboard/static/nothing.js")
    assert missing.status_code == 404 and missing.json() == {"ok": False}
    assert server.root.get("/dashboard/static/../page.html").status_code == 404


def test_the_script_never_writes_html():
    from corral.api.dashboard import STATIC

    script = (STATIC / "dashboard.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in script, sink


def test_the_dashboard_needs_no_token_with_auth_on(make_server):
    server = make_server(POOLS[:1], auth="static")
    assert server.root.get("/dashboard/").status_code == 200
    assert server.root.get("/dashboard/static/dashboard.js").status_code == 200
    status = server.client.get("/status", params={"view": "pools,queue,runner,hosts,managers,clone,boot,timings"})
    assert status.status_code == 200 and status.json()["pools"]["plain"]["ready"] == 2
    assert server.root.head("/api/v3/events", timeout=5).status_code == 200
    assert server.client.get("/token").status_code == 401, "auth is on: listing tokens needs credentials"


def test_the_timings_view_has_the_latest_clone_and_boot_times(server):
    assert "timings" not in server.client.get("/status").json(), "only given when asked for"
    body = server.client.get("/status", params={"view": "timings"}).json()
    assert set(body) == {"timings", "status"}
    now = time.time()
    for task in ("clone", "boot"):
        rows = body["timings"][task]
        assert len(rows) >= 3, (task, rows)  # the first fill: one clone and one boot per VM
        assert {r["pool"] for r in rows} == {"plain", "other"}
        assert all(set(r) == {"at", "pool", "seconds"} and now - 3600 < r["at"] <= now and r["seconds"] > 0
                   for r in rows)
        assert [r["at"] for r in rows] == sorted(r["at"] for r in rows)
    name = server.client.post("/vm/plain").json()["plain"]["hostname"]
    assert name
    server.wait(lambda: len(server.client.get("/status", params={"view": "timings"}).json()["timings"]["boot"])
                > len(body["timings"]["boot"]))


@pytest.mark.parametrize(("rows", "limit", "want"), [
    ([], 5, []),
    ([(3.0, "a", 1.0), (1.0, "b", 2.0), (2.0, "a", 3.0)], 5, [(1.0, "b", 2.0), (2.0, "a", 3.0), (3.0, "a", 1.0)]),
    ([(3.0, "a", 1.0), (1.0, "b", 2.0), (2.0, "a", 3.0)], 2, [(2.0, "a", 3.0), (3.0, "a", 1.0)]),
    ([(1.0, "a", 1.0)], 0, []),
    ([(1.23456, "a", 0.0004999)], 1, [(1.235, "a", 0.0)]),
])
def test_latest_durations(rows, limit, want):
    assert latest_durations(rows, limit) == [{"at": at, "pool": pool, "seconds": s} for at, pool, s in want]


def test_the_timings_view_is_bounded():
    rows = [(float(i), "p", 1.0) for i in range(RECENT_MAX * 3)]
    latest = latest_durations(rows, RECENT_MAX)
    assert len(latest) == RECENT_MAX and latest[-1]["at"] == RECENT_MAX * 3 - 1


def test_the_package_ships_every_file_of_the_dashboard():
    import tomllib
    from fnmatch import fnmatchcase

    from helpers import REPO

    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["corral"]
    package = REPO / "src" / "corral"
    files = [p.relative_to(package).as_posix() for p in (package / "api" / "dashboard").rglob("*")
             if p.is_file() and p.suffix not in (".py", ".pyc")]
    assert "api/dashboard/page.html" in files and "api/dashboard/static/dashboard.js" in files
    assert [f for f in files if not any(fnmatchcase(f, pattern) for pattern in patterns)] == []

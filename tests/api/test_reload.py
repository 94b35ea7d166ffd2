"""POST /api/v3/config/reload and ``corral config reload`` against a real server, and SIGHUP on
a ``corral serve`` subprocess."""

from __future__ import annotations

import copy
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml

from api.conftest import tok
from api.test_cli_remote import corral
from helpers import free_port, quick_config, wait_until

POOLS = [{"name": "a", "template": "t-a", "size": 2}, {"name": "b", "template": "t-b", "size": 1}]


def from_file(server: Any, tmp_path: Path) -> Path:
    """Have ``server`` reload from a file holding its document."""
    path = tmp_path / "corral.yaml"
    path.write_text(yaml.safe_dump(server.document), encoding="utf-8")
    server.service.path = path
    return path


def rewrite(path: Path, server: Any, **sizes: int) -> None:
    for pool in server.document[":pools"]:
        if pool["name"] in sizes:
            pool["size"] = sizes[pool["name"]]
    path.write_text(yaml.safe_dump(server.document), encoding="utf-8")


def test_reload_needs_a_token_and_answers_what_changed(make_server: Any, tmp_path: Path) -> None:
    server = make_server(copy.deepcopy(POOLS), auth="static")
    path = from_file(server, tmp_path)
    rewrite(path, server, a=3)
    assert server.client.post("/config/reload").status_code == 401
    assert server.client.post("/config/reload", headers=tok("not-a-token")).status_code == 401
    assert server.service.pools.pools["a"].size == 2  # refused: nothing read
    resp = server.client.post("/config/reload", headers=tok(server.token()))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["ok"] is True and body["changed"] is True
    assert body["pools_changed"] == {"a": ["size"]} and body["restart_needed"] == []
    server.wait_full()
    assert len(server.ready("a")) == 3
    again = server.client.post("/config/reload", headers=tok(server.token())).json()
    assert again["changed"] is False


def test_reload_over_the_api_needs_auth(make_server: Any, tmp_path: Path) -> None:
    server = make_server(copy.deepcopy(POOLS))
    path = from_file(server, tmp_path)
    rewrite(path, server, a=3)
    resp = server.client.post("/config/reload")
    assert resp.status_code == 403 and "SIGHUP" in resp.json()["error"]
    assert server.service.pools.pools["a"].size == 2


def test_an_invalid_file_is_refused_with_every_problem(make_server: Any, tmp_path: Path) -> None:
    server = make_server(copy.deepcopy(POOLS), auth="static")
    path = from_file(server, tmp_path)
    server.document[":pools"][0]["size"] = -1
    server.document[":pools"].append({"name": "c", "template": "t-c", "size": 1, "provider": "nowhere"})
    path.write_text(yaml.safe_dump(server.document), encoding="utf-8")
    resp = server.client.post("/config/reload", headers=tok(server.token()))
    assert resp.status_code == 400
    body = resp.json()
    assert body["ok"] is False and "running configuration stays" in body["error"]
    assert any("pools[0].size" in p for p in body["problems"]) and any("nowhere" in p for p in body["problems"])
    assert set(server.service.pools.pools) == {"a", "b"} and server.service.pools.pools["a"].size == 2


def test_the_cli_reloads_and_names_problems(make_server: Any, tmp_path: Path) -> None:
    server = make_server(copy.deepcopy(POOLS), auth="static")
    path = from_file(server, tmp_path)
    token = server.token()
    rewrite(path, server, b=2)
    out = corral("config", "reload", url=server.url, token=token)
    assert out.returncode == 0, out.stderr
    assert "pools changed: b (size)" in out.stdout
    server.wait_full()
    assert len(server.ready("b")) == 2
    out = corral("config", "reload", url=server.url)
    assert out.returncode == 4 and "401" in out.stderr
    server.document[":pools"][0]["size"] = "many"
    path.write_text(yaml.safe_dump(server.document), encoding="utf-8")
    out = corral("config", "reload", url=server.url, token=token)
    assert out.returncode == 2
    assert "pools[0].size" in out.stderr and "running configuration stays" in out.stderr
    assert server.service.pools.pools["a"].size == 2


def serve(cfg: Path, log: Path, *args: str) -> subprocess.Popen[bytes]:
    """``corral serve --config cfg *args`` in a process of its own, its output in ``log``."""
    with log.open("w") as fh:
        return subprocess.Popen([sys.executable, "-m", "corral.cli", "serve", "--config", str(cfg), *args],
                                stderr=fh, stdout=fh)


def grow_and_hang_up(proc: subprocess.Popen[bytes], cfg: Path, doc: dict[str, Any],
                     ready: Callable[[str], int | None], *, a: int, b: int) -> None:
    """Once pool a has its 2 ready VMs: write a file where a has size ``a`` and a new pool b size
    ``b``, send SIGHUP, and wait until both pools have those sizes ready."""
    wait_until(lambda: ready("a") == 2, 30, interval=0.05)
    doc[":pools"][0]["size"] = a
    doc[":pools"].append({"name": "b", "template": "t-b", "size": b})
    cfg.write_text(yaml.safe_dump(doc))
    proc.send_signal(signal.SIGHUP)
    wait_until(lambda: ready("a") == a and ready("b") == b, 30, interval=0.05)


def test_sighup_reloads_a_served_corral(tmp_path: Path) -> None:
    doc = quick_config(tmp_path, [{"name": "a", "template": "t-a", "size": 2}])
    cfg, log, port = tmp_path / "c.yaml", tmp_path / "log.txt", free_port()
    cfg.write_text(yaml.safe_dump(doc))
    proc = serve(cfg, log, "--port", str(port))

    def ready(pool: str) -> int | None:
        assert proc.poll() is None, log.read_text()
        try:
            return httpx.get(f"http://127.0.0.1:{port}/api/v3/status").json()["pools"].get(pool, {}).get("ready")
        except httpx.HTTPError:
            return None

    try:
        grow_and_hang_up(proc, cfg, doc, ready, a=4, b=1)
        doc[":pools"][0]["size"] = "lots"
        cfg.write_text(yaml.safe_dump(doc))
        proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "configuration not reloaded" in log.read_text(), 10, interval=0.05)
        assert proc.poll() is None and ready("a") == 4
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
    text = log.read_text()
    assert "configuration reloaded" in text and "pools[0].size" in text and "Traceback" not in text


def test_a_process_on_redis_reloads_its_own_pools(make_server: Any, redis_server: Any, redis_site: str,
                                                  tmp_path: Path) -> None:
    redis = {":store": {"type": "redis", "site": redis_site},
             ":redis": {"server": "127.0.0.1", "port": redis_server.port}}
    server = make_server(copy.deepcopy(POOLS), auth="static", extra=redis)
    path = from_file(server, tmp_path)
    server.document[":pools"][0]["size"] = 3
    server.document[":pools"].append({"name": "c", "template": "t-c", "size": 2})
    path.write_text(yaml.safe_dump(server.document), encoding="utf-8")
    resp = server.client.post("/config/reload", headers=tok(server.token()))
    assert resp.status_code == 200, resp.text
    assert resp.json()["pools_added"] == ["c"] and resp.json()["pools_changed"] == {"a": ["size"]}
    server.wait_full(20)
    assert len(server.ready("a")) == 3 and len(server.ready("c")) == 2


def test_sighup_reloads_a_manager_without_an_api(redis_server: Any, redis_site: str, tmp_path: Path) -> None:
    from corral.domain.states import VmState
    from corral.store.redis import RedisStore

    doc = quick_config(tmp_path, [{"name": "a", "template": "t-a", "size": 2}])
    doc.update({":store": {"type": "redis", "site": redis_site},
                ":redis": {"server": "127.0.0.1", "port": redis_server.port}})
    cfg, log = tmp_path / "c.yaml", tmp_path / "log.txt"
    cfg.write_text(yaml.safe_dump(doc))
    store = RedisStore("127.0.0.1", redis_server.port, None, site=redis_site)
    proc = serve(cfg, log, "--role", "manager")

    def ready(pool: str) -> int:
        assert proc.poll() is None, log.read_text()
        return store.counts().get(pool, {}).get(VmState.READY, 0)

    try:
        grow_and_hang_up(proc, cfg, doc, ready, a=3, b=2)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        store.close()
    assert "configuration reloaded" in log.read_text()


def test_every_view_answers_while_a_removed_pool_drains(make_server: Any, tmp_path: Path) -> None:
    server = make_server(copy.deepcopy(POOLS), auth="static")
    path = from_file(server, tmp_path)
    token = server.token()
    held = server.client.post("/vm/b", headers=tok(token)).json()["b"]["hostname"]
    server.document[":pools"].pop(1)
    path.write_text(yaml.safe_dump(server.document), encoding="utf-8")
    assert server.client.post("/config/reload", headers=tok(token)).json()["pools_removed"] == ["b"]
    for route in ("/status?view=pools,monitoring,scheduling,runner,hosts", "/config", "/full_config", "/summary",
                  "/poolstat?pool=a", "/totalrunning", f"/vm/{held}"):
        resp = server.client.get(route)
        assert resp.status_code == 200, (route, resp.text)
    assert server.root.get("/metrics").status_code == 200
    assert server.client.get(f"/vm/{held}").json()[held]["state"] == "running"
    assert "b" not in server.client.get("/vm").json()
    assert server.client.post("/vm/b").status_code == 404
    assert server.client.delete(f"/vm/{held}", headers=tok(token)).status_code == 200
    server.wait(lambda: server.client.get(f"/vm/{held}").json()[held]["state"] == "destroyed")

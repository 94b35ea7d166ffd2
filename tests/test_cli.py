"""The corral command: serve on real configs, log formats, bench output."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from corral.cli import app
from corral.logs import JsonFormatter, TextFormatter
from helpers import REPO, free_port, quick_config, wait_until


def corral(*args: str, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "corral.cli", *args], capture_output=True, text=True,
                          timeout=120, **kw)


def wait_for_status(port: int, proc: subprocess.Popen, log: Path, ready, timeout: float) -> None:
    """Poll a served corral's /status until ``ready(status)``; fail at once if the process died."""

    def probe() -> bool:
        assert proc.poll() is None, log.read_text()
        try:
            return bool(ready(httpx.get(f"http://127.0.0.1:{port}/api/v3/status").json()))
        except httpx.HTTPError:
            return False

    wait_until(probe, timeout, interval=0.05)


def test_serve_refuses_a_bad_config_with_status_2(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({":pools": [{"name": "p", "template": "t", "size": "many"}]}))
    out = corral("serve", "--config", str(bad), "--port", str(free_port()))
    assert out.returncode == 2
    assert "pools[0].size: must be a whole number, got 'many'" in out.stderr
    assert "Traceback" not in out.stderr


def _config(tmp_path: Path, pools: list[dict], **sim) -> Path:
    doc = quick_config(tmp_path, pools)
    doc[":providers"][":sim"].update(sim)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(doc))
    return cfg


@pytest.mark.parametrize(("option", "value", "complaint"), [
    ("--port", "99999", "less than or equal to 65535"),
    ("--port", "0", "greater than or equal to 1"),
    ("--port", "http", "should be a valid integer"),
    ("--log-level", "loud", "'loud' is not one of 'debug', 'info', 'warning', 'error', 'critical'"),
    ("--log-format", "xml", "'xml' is not one of 'text', 'json'"),
])
def test_serve_refuses_bad_options_before_anything_else(tmp_path: Path, option: str, value: str,
                                                        complaint: str) -> None:
    cfg = _config(tmp_path, [{"name": "p", "template": "t", "size": 1}])
    out = CliRunner().invoke(app, ["serve", "--config", str(cfg), option, value])
    assert out.exit_code == 2, out.output
    assert "Invalid value for" in out.output and option in out.output
    assert complaint in " ".join(out.output.replace("│", " ").split())
    assert "Traceback" not in out.output and not (tmp_path / "corral.db").exists()


def test_serve_takes_levels_and_formats_in_any_case(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({":pools": [{"name": "p", "template": "t", "size": "many"}]}))
    for level, fmt in (("DEBUG", "JSON"), ("Warning", "Text"), ("error", "json")):
        out = CliRunner().invoke(app, ["serve", "--config", str(bad), "--log-level", level, "--log-format", fmt])
        assert out.exit_code == 2 and "size: must be a whole number" in out.output, out.output  # past the options


def test_serve_on_a_port_in_use_fails_in_one_line_before_touching_a_vm(tmp_path: Path) -> None:
    state = tmp_path / "sim.db"
    cfg = _config(tmp_path, [{"name": "p", "template": "t", "size": 2}], state_file=str(state))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = corral("serve", "--config", str(cfg), "--port", str(port))
    assert out.returncode == 1, out.stderr
    assert out.stderr == f"error: cannot listen on 127.0.0.1:{port}: address already in use\n"
    assert not (tmp_path / "corral.db").exists() and not state.exists(), "nothing was written"


def _serve(cfg: Path, port: int, log: Path, *extra: str) -> subprocess.Popen:
    with log.open("w") as fh:
        return subprocess.Popen([sys.executable, "-m", "corral.cli", "serve", "--config", str(cfg), "--port",
                                 str(port), *extra], stderr=fh, stdout=fh)


def test_serve_starts_without_a_vcenter_it_cannot_reach_and_keeps_trying(tmp_path: Path):
    doc = quick_config(tmp_path, [{"name": "sim-pool", "template": "t", "size": 2, "provider": "sim"},
                                  {"name": "vc-pool", "template": "Templates/debian", "size": 2,
                                   "provider": "vcenter"}])
    doc[":providers"][":vcenter"] = {"provider_class": "vsphere", "server": "127.0.0.1", "port": free_port(),
                                     "username": "corral", "password": "not-a-real-password", "insecure": True,
                                     "datacenter": "dc1"}
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(doc))
    port, log = free_port(), tmp_path / "log.txt"
    proc = _serve(cfg, port, log)
    try:
        wait_for_status(port, proc, log, lambda st: st["pools"]["sim-pool"]["ready"] == 2, timeout=30)
        body = httpx.post(f"http://127.0.0.1:{port}/api/v3/vm/sim-pool").json()
        assert body["ok"] is True
        wait_until(lambda: log.read_text().count("provider unreachable, retrying") >= 2, timeout=10)
        monitoring = httpx.get(f"http://127.0.0.1:{port}/api/v3/status?view=monitoring,pools").json()
        down = monitoring["monitoring"]["providers"]["vcenter"]
        assert down["connected"] is False and down["attempts"] >= 2 and 0 <= down["retry_in"] <= 4
        assert "cannot connect" in down["error"] and "not-a-real-password" not in down["error"]
        assert monitoring["monitoring"]["providers"]["sim"]["connected"] is True
        assert monitoring["pools"]["vc-pool"]["ready"] == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
    text = log.read_text()
    retries = [line for line in text.splitlines() if "provider unreachable, retrying" in line]
    assert len(retries) >= 2 and all("provider=vcenter" in line and "cannot connect" in line for line in retries)
    assert "retry_in=1.0" in retries[0] and "retry_in=2.0" in retries[1]
    assert "Traceback" not in text and "not-a-real-password" not in text


def test_serve_without_libvirt_python_refuses_a_libvirt_provider_saying_how_to_install_it(tmp_path: Path):
    doc = quick_config(tmp_path, [{"name": "p", "template": "t", "size": 1, "provider": "kvm"}])
    doc[":providers"][":kvm"] = {"provider_class": "libvirt", "hosts": ["qemu+ssh://root@kvm1/system"]}
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(doc))
    blocked = "import sys; sys.modules['libvirt'] = None; sys.argv[0] = 'corral'; from corral.cli import main; main()"
    out = subprocess.run([sys.executable, "-c", blocked, "serve", "--config", str(cfg), "--port", str(free_port())],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert ("providers.kvm: the libvirt provider needs libvirt-python: pip install 'corral[libvirt]' "
            "(and Debian's libvirt-dev to build it)") in out.stderr, out.stderr
    assert "Traceback" not in out.stderr


def test_serve_names_a_store_it_cannot_open(tmp_path: Path):
    not_a_db = tmp_path / "not-a-db"
    not_a_db.write_text("hello, this is not sqlite" * 100)
    for path, reason in ((not_a_db, "file is not a database"),
                         (not_a_db / "sub" / "x.db", f"cannot create the directory {str(not_a_db / 'sub')!r}: "
                                                     "not a directory")):
        doc = quick_config(tmp_path, [{"name": "p", "template": "t", "size": 1}])
        doc[":store"] = {"path": str(path)}
        cfg = tmp_path / "c.yaml"
        cfg.write_text(yaml.safe_dump(doc))
        out = corral("serve", "--config", str(cfg), "--port", str(free_port()))
        assert out.returncode == 2, out.stderr
        assert out.stderr == f"error: store.path: cannot open the sqlite store {str(path)!r}: {reason}\n"


def corral_with_read_only(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``corral *args`` with ``directory`` read-only: by its mode for an ordinary user; for root,
    whom modes do not stop, by a read-only bind mount in a user namespace of its own."""
    command = [sys.executable, "-m", "corral.cli", *args]
    if os.geteuid() != 0:
        directory.chmod(0o555)
        try:
            return subprocess.run(command, capture_output=True, text=True, timeout=120)
        finally:
            directory.chmod(0o755)
    mount = 'mount --bind "$0" "$0" && mount -o remount,ro,bind "$0" "$0" && exec "$@"'
    return subprocess.run(["unshare", "--map-root-user", "--mount", "sh", "-c", mount, str(directory), *command],
                          capture_output=True, text=True, timeout=120)


def test_serve_says_once_that_the_store_directory_is_read_only(tmp_path: Path):
    from corral.store.sqlite import SqliteStore

    ro = tmp_path / "ro"
    ro.mkdir()
    SqliteStore(ro / "existing.db").close()
    for path in (ro / "new.db", ro / "existing.db", ro / "sub" / "new.db"):
        doc = quick_config(tmp_path, [{"name": "p", "template": "t", "size": 1}])
        doc[":store"] = {"path": str(path)}
        cfg = tmp_path / "c.yaml"
        cfg.write_text(yaml.safe_dump(doc))
        out = corral_with_read_only(ro, "serve", "--config", str(cfg), "--port", str(free_port()))
        assert out.returncode == 2, out.stderr
        assert out.stderr.startswith(f"error: store.path: cannot open the sqlite store {str(path)!r}: "), out.stderr
        assert out.stderr.count("\n") == 1 and out.stderr.count(str(path)) == 1, out.stderr
        assert out.stderr.lower().count("read-only") == 1, out.stderr
        assert "Traceback" not in out.stderr


def test_serve_with_json_logs_fills_pools_and_serves(tmp_path: Path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(quick_config(tmp_path, [{"name": "p", "template": "t", "size": 2}])))
    port = free_port()
    log = tmp_path / "log.jsonl"
    with log.open("w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "corral.cli", "serve", "--config", str(cfg), "--port",
                                 str(port), "--log-format", "json"], stderr=fh, stdout=fh)
    try:
        wait_for_status(port, proc, log, lambda st: st["pools"]["p"]["ready"] == 2, timeout=30)
        resp = httpx.post(f"http://127.0.0.1:{port}/api/v3/vm/p")
        assert resp.status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
    records = [json.loads(line) for line in log.read_text().splitlines()]
    ready = [r for r in records if r["msg"] == "ready"]
    assert len(ready) >= 2 and {"pool", "vm", "host", "duration", "ts", "level"} <= set(ready[0])
    assert any(r["msg"] == "checked out" and r["pool"] == "p" for r in records)


def _record(**extra) -> logging.LogRecord:
    record = logging.LogRecord("corral.pool", logging.INFO, __file__, 1, "ready", None, None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_log_lines_carry_the_facts_and_hide_secrets():
    text = TextFormatter().format(_record(pool="debian", vm="abc", duration=1.23456, password="hunter2"))
    assert "ready pool=debian vm=abc duration=1.235s" in text
    assert "hunter2" not in text and "password=<redacted>" in text
    doc = json.loads(JsonFormatter().format(_record(pool="debian", token="s3cret")))
    assert doc["pool"] == "debian" and doc["token"] == "<redacted>" and doc["msg"] == "ready"


def test_bench_fill_prints_json_last(tmp_path: Path):
    out = corral("bench", "fill", "--vms", "40", "--pools", "4", "--task-limit", "5", "--time-scale", "0.005",
                 "--json", "--record", "--output", str(tmp_path / "b.md"))
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["vms"] == 40 and result["pools"] == 4
    # nothing can beat the simulated lower bound, and both sides did real work
    assert result["corral_s"] >= result["ideal_s"] * 0.95
    assert result["baseline_s"] >= result["ideal_s"] * 0.95
    assert result["baseline_calls_per_vm"] >= 2, "one clone call and at least one readiness call per VM"
    table = (tmp_path / "b.md").read_text()
    assert "| corral/ideal |" in table and "`corral bench fill --vms 40" in table


def test_quickstart_config_fills_and_hands_out_a_vm(tmp_path: Path):
    """What `make run` starts: the example config, run from a fresh working directory."""
    port = free_port()
    log = tmp_path / "log.txt"
    with log.open("w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "corral.cli", "serve", "--config",
                                 str(REPO / "examples" / "quickstart.yaml"), "--port", str(port)],
                                stderr=fh, stdout=fh, cwd=tmp_path)
    try:
        wait_for_status(port, proc, log, lambda st: st["status"]["ok"], timeout=60)
        body = httpx.post(f"http://127.0.0.1:{port}/api/v3/vm/debian-12").json()
        assert body["ok"] is True and len(body["debian-12"]["hostname"]) == 15
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
    assert (tmp_path / "var" / "quickstart.db").exists()
    text = log.read_text()
    assert " ready " in text and "pool=debian-12" in text and "Traceback" not in text


def test_quickstart_keeps_checked_out_vms_across_a_restart(tmp_path: Path):
    """`make run`, Ctrl-C, `make run`: the simulator's VMs are kept in its state file."""
    doc = yaml.safe_load((REPO / "examples" / "quickstart.yaml").read_text())
    doc[":providers"][":sim"]["time_scale"] = 0.005  # faster, nothing else changed
    cfg = tmp_path / "quickstart.yaml"
    cfg.write_text(yaml.safe_dump(doc))
    port = free_port()

    def run(log: Path) -> subprocess.Popen:
        with log.open("w") as fh:
            return subprocess.Popen([sys.executable, "-m", "corral.cli", "serve", "--config", str(cfg),
                                     "--port", str(port)], stderr=fh, stdout=fh, cwd=tmp_path)

    first_log, second_log = tmp_path / "first.txt", tmp_path / "second.txt"
    proc = run(first_log)
    try:
        wait_for_status(port, proc, first_log, lambda st: st["status"]["ok"], timeout=60)
        body = httpx.post(f"http://127.0.0.1:{port}/api/v3/vm/debian-12").json()
        name = body["debian-12"]["hostname"]
        # the checkout starts a clone; stop once the pools are full again, as a user would (a Ctrl-C
        # during a clone leaves its recorded intent, which the next start rightly reports lost)
        wait_for_status(port, proc, first_log, lambda st: all(
            p["pending"] == 0 and p["ready"] == p["max"] for p in st["pools"].values()), timeout=60)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(15)
    proc = run(second_log)
    try:
        wait_for_status(port, proc, second_log, lambda st: st["status"]["ok"], timeout=60)
        vm = httpx.get(f"http://127.0.0.1:{port}/api/v3/vm/{name}").json()
        assert vm[name]["state"] == "running", vm
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(15)
    text = second_log.read_text()
    assert not [line for line in text.splitlines() if " WARNING " in line and "not found" in line], text
    assert "Traceback" not in text


def test_auth_hash_password_makes_a_hash_the_static_provider_accepts():
    import asyncio
    import subprocess
    import sys

    from corral.auth.static import StaticAuthenticator

    out = subprocess.run([sys.executable, "-m", "corral.cli", "auth", "hash-password", "--stdin"],
                         input="s3cret pass\n", capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    encoded = out.stdout.strip()
    assert encoded.startswith("pbkdf2_sha256$") and "s3cret" not in out.stdout
    auth = StaticAuthenticator({"alice": encoded})
    assert asyncio.run(auth.authenticate("alice", "s3cret pass")) is True
    assert asyncio.run(auth.authenticate("alice", "wrong")) is False
    empty = subprocess.run([sys.executable, "-m", "corral.cli", "auth", "hash-password", "--stdin"],
                           input="\n", capture_output=True, text=True, timeout=60)
    assert empty.returncode == 2 and "empty" in empty.stderr


@pytest.mark.parametrize("role", ["api", "manager"])
def test_roles_other_than_all_need_the_redis_store(tmp_path: Path, role: str):
    cfg = _config(tmp_path, [{"name": "p", "template": "t", "size": 1}])
    out = corral("serve", "--config", str(cfg), "--port", str(free_port()), "--role", role)
    assert out.returncode == 2, out.stderr
    assert f"--role {role}: several processes need a shared store; set :store: type: redis" in out.stderr
    assert "Traceback" not in out.stderr

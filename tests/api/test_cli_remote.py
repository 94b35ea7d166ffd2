"""The corral command against a real corral server (uvicorn, simulator, static auth): tokens,
checkout (with --wait), return, vm and status, run as subprocesses."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from typing import Any

import httpx

from api.conftest import PASSWORDS
from corral.auth.tokens import token_hint
from helpers import free_port

POOLS = [{"name": "deb", "template": "t/deb", "size": 3}, {"name": "ubu", "template": "t/ubu", "size": 1},
         {"name": "never", "template": "t/never", "size": 0}]


def corral(*args: str, url: str | None = None, token: str | None = None, user: str | None = None,
           stdin: str = "") -> subprocess.CompletedProcess[str]:
    """``corral *args`` with CORRAL_URL, CORRAL_TOKEN and CORRAL_USER set as given (and never
    inherited), standard input a pipe."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORRAL_")}
    env["COLUMNS"] = "200"
    for key, value in (("CORRAL_URL", url), ("CORRAL_TOKEN", token), ("CORRAL_USER", user)):
        if value is not None:
            env[key] = value
    return subprocess.run([sys.executable, "-m", "corral.cli", *args], input=stdin, capture_output=True,
                          text=True, timeout=90, env=env)


def no_secret(out: subprocess.CompletedProcess[str], *secrets: str) -> None:
    for secret in (*PASSWORDS.values(), *secrets):
        assert secret not in out.stdout and secret not in out.stderr


def test_token_lifecycle_with_a_piped_password(make_server: Any) -> None:
    server = make_server(POOLS, auth="static")
    alice = PASSWORDS["alice"] + "\n"
    made = corral("token", "create", "--user", "alice", url=server.url, stdin=alice)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert re.fullmatch(r"[a-z0-9]{32}", token) and made.stderr == ""
    no_secret(made)
    assert server.client.get(f"/token/{token}").json()[token]["user"] == "alice"

    listed = corral("token", "list", url=server.url, user="alice", stdin=alice)  # the user from CORRAL_USER
    assert listed.returncode == 0, listed.stderr
    assert "alice: 1 token" in listed.stdout and token_hint(token) in listed.stdout
    assert token not in listed.stdout
    as_json = json.loads(corral("token", "list", "--json", "-u", "alice", url=server.url, stdin=alice).stdout)
    assert as_json["ok"] is True and len(as_json) == 2

    wrong = corral("token", "list", "--user", "alice", url=server.url, stdin="not-her-password\n")
    assert wrong.returncode == 4
    assert wrong.stderr == (f"error: token list: corral at {server.url} answered 401: invalid user name or "
                            "password\n")
    assert "not-her-password" not in wrong.stderr + wrong.stdout
    others = corral("token", "delete", token, "--user", "bob", url=server.url, stdin=PASSWORDS["bob"] + "\n")
    assert others.returncode == 4 and "403: the token belongs to another user" in others.stderr
    no_secret(others, token)

    gone = corral("token", "delete", token, "--user", "alice", url=server.url, stdin=alice)
    assert gone.returncode == 0 and gone.stdout == "deleted the token\n", gone.stderr
    assert server.client.get(f"/token/{token}").status_code == 404
    none = corral("token", "list", "--user", "alice", url=server.url, stdin=alice)
    assert none.returncode == 0 and "alice: 0 tokens" in none.stdout, none.stderr
    again = corral("token", "delete", token, "--user", "alice", url=server.url, stdin=alice)
    assert again.returncode == 1 and "answered 404: no such token" in again.stderr
    no_secret(again, token)


def test_token_commands_need_a_user_and_auth_on_the_server(make_server: Any) -> None:
    server = make_server(POOLS)
    nobody = corral("token", "create", url=server.url, stdin="x\n")
    assert nobody.returncode == 2 and nobody.stderr == "error: a user is needed: give --user or set CORRAL_USER\n"
    no_auth = corral("token", "create", "--user", "alice", url=server.url, stdin="x\n")
    assert no_auth.returncode == 1 and "answered 404: authentication is not configured" in no_auth.stderr
    empty = corral("token", "create", "--user", "alice", url=server.url, stdin="")
    assert empty.returncode == 2 and empty.stderr == "error: the password is empty\n"


def test_checkout_vm_and_return_with_a_token(make_server: Any) -> None:
    server = make_server(POOLS, auth="static")
    token, bobs = server.token("alice"), server.token("bob")
    out = corral("checkout", "deb=2", "ubu", url=server.url, token=token)
    assert out.returncode == 0, out.stderr
    lines = [line.split(" ") for line in out.stdout.splitlines()]
    assert [pool for pool, _ in lines] == ["deb", "deb", "ubu"]
    hosts = [host for _, host in lines]
    running = server.client.get(f"/token/{token}").json()[token]["vms"]["running"]
    assert sorted(running) == sorted(h.split(".")[0] for h in hosts)

    shown = corral("vm", hosts[0], url=server.url)
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    assert hosts[0] in text and re.search(r"state\s+│\s+running", text) and re.search(r"pool\s+│\s+deb", text)
    assert "lifetime (hours)" in text and "remaining (hours)" in text
    raw = json.loads(corral("vm", hosts[0], "--json", url=server.url).stdout)
    assert raw["ok"] is True and raw[hosts[0].split(".")[0]]["state"] == "running"

    not_yours = corral("return", hosts[0], url=server.url, token=bobs)
    assert not_yours.returncode == 4 and "403" in not_yours.stderr
    no_token = corral("return", hosts[0], url=server.url)
    assert no_token.returncode == 4 and "401" in no_token.stderr
    back = corral("return", *hosts, "nosuchvm", url=server.url, token=token)
    assert back.returncode == 1, back.stderr
    assert back.stdout.splitlines() == [f"returned {h}" for h in hosts]
    assert back.stderr == (f"error: return nosuchvm: corral at {server.url} answered 404: no checked-out VM named "
                           "nosuchvm\n")
    gone = corral("vm", hosts[0], url=server.url)
    assert gone.returncode == 0 and re.search(r"state\s+│\s+destroyed", gone.stdout), gone.stdout + gone.stderr
    never = corral("vm", "nosuchvm", url=server.url)
    assert never.returncode == 1 and "answered 404: no VM named nosuchvm" in never.stderr
    no_secret(back, token)


def test_checkout_errors_are_named_with_their_exit_codes(make_server: Any) -> None:
    server = make_server(POOLS, auth="static")
    bad_token = corral("checkout", "deb", url=server.url, token="a" * 32)
    assert bad_token.returncode == 4 and "answered 401" in bad_token.stderr and "a" * 32 not in bad_token.stderr
    unknown = corral("checkout", "deb", "nope", url=server.url)
    assert unknown.returncode == 1 and "answered 404: unknown pool or alias: nope" in unknown.stderr
    short = corral("checkout", "ubu=2", url=server.url)
    assert short.returncode == 5 and "answered 503: not enough ready VMs: ubu has 1 ready" in short.stderr
    assert server.ready("ubu"), "all or nothing: the ready VM is still there"
    usage = corral("checkout", "deb=0", url=server.url)
    assert usage.returncode == 2 and usage.stderr == "error: 'deb=0': the count after '=' must be a whole number " \
                                                     "from 1 to 100\n"
    port = free_port()
    away = corral("status", url=f"http://127.0.0.1:{port}")
    assert away.returncode == 3 and away.stderr.startswith(f"error: cannot reach corral at http://127.0.0.1:{port}: ")
    secret_url = corral("status", "--url", f"http://bob:hunter2@127.0.0.1:{port}")
    assert secret_url.returncode == 3 and "hunter2" not in secret_url.stderr
    bad_url = corral("status", url="corral:8080")
    assert bad_url.returncode == 2 and "the URL must look like http://HOST:PORT" in bad_url.stderr


def test_checkout_wait_gets_vms_once_the_pool_fills(make_server: Any) -> None:
    server = make_server([{"name": "slow", "template": "t", "size": 1}], sim={"time_scale": 0.2}, wait=False)
    server.wait_full(timeout=30)
    taken = server.client.post("/vm/slow").json()["slow"]["hostname"]  # the refill takes about 2 s
    now = corral("checkout", "slow", url=server.url)
    assert now.returncode == 5 and "not enough ready VMs: slow has 0 ready" in now.stderr
    started = time.monotonic()
    waited = corral("checkout", "slow", "--wait", "--timeout", "60", url=server.url)
    assert waited.returncode == 0, waited.stderr
    pool, host = waited.stdout.split()
    assert pool == "slow" and host != taken
    assert time.monotonic() - started < 60
    assert waited.stderr == "", "no progress line when standard error is not a terminal"
    assert httpx.get(f"{server.url}/api/v3/vm/{host}").json()[host.split(".")[0]]["state"] == "running"


def test_checkout_wait_gives_up_at_its_timeout(make_server: Any) -> None:
    server = make_server(POOLS)
    started = time.monotonic()
    out = corral("checkout", "never", "--wait", "--timeout", "2", url=server.url)
    assert out.returncode == 5
    assert out.stderr == "error: no VMs after 2 s of waiting: not enough ready VMs: never has 0 ready\n"
    assert 2 <= time.monotonic() - started < 30


def test_status_shows_pools_hosts_and_the_runner(make_server: Any) -> None:
    server = make_server(POOLS)
    out = corral("status", url=server.url + "/api/v3/")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert f"corral at {server.url}: 3 pools" in text
    assert re.search(r"deb\s+│\s+3\s+│\s+0\s+│\s+0\s+│\s+3", text), text
    hosts = server.client.get("/status?view=hosts").json()["hosts"]["sim"]
    assert f"{len(hosts)} hosts" in text and all(name in text for name in hosts)
    assert re.search(r"^runner: \d+ work items? queued", text, re.M)
    assert text.rstrip().endswith(server.client.get("/status").json()["status"]["message"])
    body = json.loads(corral("status", "--json", url=server.url).stdout)
    assert set(body["hosts"]["sim"]) == set(hosts) and body["pools"]["deb"]["max"] == 3


def test_checkout_wait_shows_what_it_waits_for_on_a_terminal(make_server: Any) -> None:
    from helpers import corral_with_terminal_stderr

    server = make_server([{"name": "slow", "template": "t", "size": 1}], sim={"time_scale": 0.2}, wait=False)
    server.wait_full(timeout=30)
    server.client.post("/vm/slow")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("CORRAL_")}, "COLUMNS": "150"}
    code, out, terminal = corral_with_terminal_stderr(
        ["checkout", "slow", "--wait", "--timeout", "60", "--url", server.url], env)
    assert code == 0, terminal
    assert out.startswith("slow ") and len(out.splitlines()) == 1, "the progress stays off standard output"
    assert "waiting for 1 slow: not enough ready VMs: slow has 0 ready" in terminal


def test_token_create_asks_for_the_password_on_a_terminal_without_echoing_it(make_server: Any) -> None:
    import pty
    import select

    server = make_server(POOLS, auth="static")
    main, side = pty.openpty()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("CORRAL_")}, "CORRAL_URL": server.url}
    proc = subprocess.Popen([sys.executable, "-m", "corral.cli", "token", "create", "--user", "alice"], stdin=side,
                            stdout=subprocess.PIPE, stderr=side, env=env, start_new_session=True)
    os.close(side)
    seen = bytearray()

    def read_until(text: bytes, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while text not in seen and time.monotonic() < deadline:
            if select.select([main], [], [], 0.1)[0]:
                seen.extend(os.read(main, 4096))
        assert text in seen, bytes(seen)

    try:
        read_until(b"Password for alice: ")
        os.write(main, PASSWORDS["alice"].encode() + b"\n")
        assert proc.stdout is not None
        token = proc.stdout.read().decode().strip()
        assert proc.wait(30) == 0, bytes(seen)
        while select.select([main], [], [], 0.2)[0]:
            try:
                seen.extend(os.read(main, 4096))
            except OSError:
                break
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
        os.close(main)
    assert PASSWORDS["alice"].encode() not in seen, "the password is not echoed"
    assert server.client.get(f"/token/{token}").json()[token]["user"] == "alice"

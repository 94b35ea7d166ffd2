"""Logins over real HTTP cannot take the service down: password checks run one at a time in
their own executor, a full queue is refused at once (503), and repeated failures back off per
user and per client address (429) without hashing."""

from __future__ import annotations

import asyncio
import base64

import httpx

from api.conftest import HASHES, PASSWORDS, basic
from corral.auth.passwords import hash_password

POOLS = [{"name": "a", "template": "t/a", "size": 1}]


def static_auth(users: dict[str, str] | None = None, **limits: object) -> dict[str, object]:
    return {":auth": {"provider": "static", "users": dict(users or HASHES), **limits}}


def creds(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def assert_backed_off(resp: httpx.Response, why: str) -> None:
    assert resp.status_code == 429, resp.text
    body = resp.json()
    retry = int(resp.headers["Retry-After"])
    assert retry >= 1 and body["retry_after"] == retry
    assert body["ok"] is False and "too many failed logins" in body["error"] and why in body["error"]


async def test_a_burst_of_slow_logins_is_bounded_and_healthcheck_answers(make_server):
    slow = {"alice": hash_password(PASSWORDS["alice"], iterations=200_000)}
    server = make_server(POOLS, extra=static_auth(slow, login_workers=1, login_queue=2))
    backend = server.service.authenticator.backend

    async with httpx.AsyncClient(base_url=f"{server.url}/api/v3", timeout=30) as client:
        logins = [asyncio.create_task(client.post("/token", headers=creds(f"user{n}", "wrong")))
                  for n in range(12)]
        while backend.stats.active == 0 and not all(task.done() for task in logins):
            await asyncio.sleep(0.005)  # until a verification is under way
        health = await client.get("/healthcheck")
        still_running = sum(not task.done() for task in logins)
        answers = await asyncio.gather(*logins)

    assert health.status_code == 200 and health.json() == {"ok": True}
    assert still_running > 0  # the healthcheck did not wait for the logins
    statuses = [resp.status_code for resp in answers]
    assert set(statuses) == {401, 503}, statuses  # some verified, some refused at once
    for resp in answers:
        if resp.status_code == 503:
            assert resp.json()["error"].startswith("too many logins in progress")
            assert int(resp.headers["Retry-After"]) >= 1
    assert backend.stats.total == statuses.count(401) and backend.stats.peak == 1
    assert server.client.post("/token", headers=basic("alice")).status_code == 200  # and then it works


def test_repeated_failures_back_off_per_user(make_server, log_lines):
    server = make_server(POOLS, extra=static_auth(login_backoff=30))
    backend = server.service.authenticator.backend
    for _ in range(5):
        assert server.client.post("/token", headers=basic("alice", "not-her-password")).status_code == 401
    hashed = backend.stats.total

    assert_backed_off(server.client.post("/token", headers=basic("alice")), "user")  # even the right password
    assert_backed_off(server.client.get("/token", headers=basic("alice")), "user")
    assert_backed_off(server.client.post("/token", headers=basic("alice", "again-wrong")), "user")
    assert backend.stats.total == hashed  # refused without hashing
    token = server.token("bob")  # other users are not affected

    # a success resets a user's count: bob fails four times, logs in, and may fail four more
    for _ in range(2):
        for _ in range(4):
            assert server.client.post("/token", headers=basic("bob", "nope")).status_code == 401
        assert server.client.get("/token", headers=basic("bob")).status_code == 200

    logged = log_lines()
    for secret in (*PASSWORDS.values(), "not-her-password", "again-wrong", token):
        assert secret not in logged


def test_repeated_failures_back_off_per_address(make_server):
    server = make_server(POOLS, extra=static_auth(login_failures=10, login_address_failures=3, login_backoff=30))
    for user in ("carol", "dave", "erin"):
        assert server.client.post("/token", headers=creds(user, "x")).status_code == 401
    assert_backed_off(server.client.post("/token", headers=basic("bob")), "address")


def test_the_guard_is_in_front_of_every_authenticator(make_server, monkeypatch):
    monkeypatch.setenv("VMPOOLER_DEBUG", "1")
    server = make_server(POOLS, auth="dummy")
    for _ in range(5):
        assert server.client.post("/token", headers=creds("zed", "zed")).status_code == 401
    assert_backed_off(server.client.post("/token", headers=creds("zed", "other")), "user")
    assert server.client.post("/token", headers=creds("amy", "other")).status_code == 200

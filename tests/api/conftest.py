"""Fixtures for the API tests: real corral servers (uvicorn, manager, simulator, sqlite).

``make_server(pools, auth=..., **config)`` starts one and waits until its pools are full;
every server it started is stopped at the end of the test. ``server.client`` is an httpx
client on ``/api/v3``; ``server.token(user)`` makes a token with that user's password.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from corral.auth.passwords import hash_password
from corral.domain.states import VmState
from corral.logs import JsonFormatter, TextFormatter
from helpers import ServerThread, quick_config

# Two static users; low PBKDF2 work keeps logins fast.
PASSWORDS = {"alice": "alice-Secret-pw-1", "bob": "bob-Secret-pw-2"}
HASHES = {user: hash_password(pw, iterations=1000) for user, pw in PASSWORDS.items()}


def basic(user: str, password: str | None = None) -> dict[str, str]:
    raw = f"{user}:{PASSWORDS[user] if password is None else password}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def tok(token: str) -> dict[str, str]:
    return {"X-AUTH-TOKEN": token}


class Server:
    """A running :class:`ServerThread` with an HTTP client and a few shortcuts."""

    def __init__(self, thread: ServerThread, document: dict[str, Any]) -> None:
        self.thread = thread
        self.document = document
        self.service = thread.service
        self.url = thread.url
        self.client = httpx.Client(base_url=f"{thread.url}/api/v3", timeout=10)
        self.root = httpx.Client(base_url=thread.url, timeout=10)
        self.running = True

    @property
    def store(self) -> Any:
        return self.service.pools.store

    @property
    def sim(self) -> Any:
        return self.service.pools.providers["sim"]

    def wait(self, check: Callable[[], Any], timeout: float = 10.0) -> Any:
        return self.thread.wait(check, timeout)

    def ready(self, pool: str) -> list[str]:
        """Names of the pool's ready stock (not on-demand VMs)."""
        return sorted(v.name for v in self.store.list_vms(pool=pool, states=(VmState.READY,)) if v.request_id is None)

    def wait_full(self, timeout: float = 10.0) -> None:
        def full() -> bool:
            counts = self.store.counts()
            return all(counts.get(n, {}).get(VmState.READY, 0) == p.size
                       and counts.get(n, {}).get(VmState.PENDING, 0) == 0
                       for n, p in self.service.pools.pools.items())
        self.wait(full, timeout)

    def token(self, user: str = "alice") -> str:
        resp = self.client.post("/token", headers=basic(user))
        assert resp.status_code == 200, resp.text
        return str(resp.json()["token"])

    def stop(self) -> None:
        if self.running:
            self.running = False
            self.client.close()
            self.root.close()
            self.thread.__exit__(None, None, None)


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """``make_server(pools, auth="static"|"dummy"|None, sim={...}, extra={...}, wait=True, **config)``.

    ``sim`` is merged into the simulator's settings, ``extra`` into the top of the document
    (e.g. ``{":tagfilter": {...}}``), ``config`` into ``:config:``. Servers made in one test
    share its store file, so a second server is a restart of the first.
    """
    started: list[Server] = []

    def make(pools: list[dict[str, Any]], *, auth: str | None = None, sim: dict[str, Any] | None = None,
             extra: dict[str, Any] | None = None, wait: bool = True, **config: Any) -> Server:
        document = quick_config(tmp_path, pools, **config)
        document[":providers"][":sim"].update(sim or {})
        if auth == "static":
            document[":auth"] = {"provider": "static", "users": dict(HASHES)}
        elif auth is not None:
            document[":auth"] = {"provider": auth}
        document.update(extra or {})
        thread = ServerThread(document).__enter__()
        server = Server(thread, document)
        started.append(server)
        if wait:
            server.wait_full()
        return server

    yield make
    for server in reversed(started):
        server.stop()


@pytest.fixture
def log_lines(caplog: pytest.LogCaptureFixture) -> Callable[[], str]:
    """What the server logged (corral and uvicorn loggers, any thread, DEBUG and up), as text
    and as JSON lines; the test's own HTTP client logs are left out."""
    caplog.set_level(logging.DEBUG)
    text, as_json = TextFormatter(), JsonFormatter()

    def lines() -> str:
        return "\n".join(f"{text.format(r)}\n{as_json.format(r)}" for r in caplog.records
                         if r.name.startswith(("corral", "uvicorn")))

    return lines

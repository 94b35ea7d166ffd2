"""A destroy that failed for good shows in /status and GET /vm, and DELETE asks for it again."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from corral.domain.states import VmState

from .conftest import Server, tok

POOLS = [{"name": "a", "template": "t/a", "size": 1}]


def checkout(server: Server, headers: dict[str, str] | None = None) -> str:
    answer = server.client.post("/vm/a", headers=headers or {}).json()
    assert answer["ok"], answer
    return str(answer["a"]["hostname"])


def held(server: Server, name: str) -> bool:
    return server.service.pools.destroy_failure(name) is not None


def test_a_held_destroy_is_shown_and_retried_on_delete(make_server: Callable[..., Server]) -> None:
    server = make_server(POOLS)
    name = checkout(server)
    server.sim.controls.fail_next("destroy", retryable=False)
    assert server.client.delete(f"/vm/{name}").json() == {"ok": True}
    server.wait(lambda: held(server, name))

    assert server.store.get_vm(name).state is VmState.COMPLETED  # its destroy intent stays recorded
    record: dict[str, Any] = server.client.get(f"/vm/{name}").json()[name]
    assert record["destroy_error"] == "injected failure (permanent)" and record["destroy_retry_in"] is None
    monitoring = server.client.get("/status", params={"view": "monitoring"}).json()["monitoring"]
    assert monitoring["destroy_failures"] == {
        "retrying": 0, "held": 1,
        "vms": {name: {"error": "injected failure (permanent)", "permanent": True, "attempts": 1, "retry_in": None}}}

    assert server.client.delete(f"/vm/{name}").json() == {"ok": True}  # the cause is mended: try again
    server.wait(lambda: server.store.get_vm(name).state is VmState.DESTROYED)
    assert "destroy_error" not in server.client.get(f"/vm/{name}").json()[name]
    assert server.client.delete(f"/vm/{name}").status_code == 404  # nothing left to destroy
    assert server.sim.calls["destroy_vm"] == 2


def test_only_the_owner_asks_again_for_the_destroy_of_their_vm(make_server: Callable[..., Server]) -> None:
    server = make_server(POOLS, auth="static")
    alice = tok(server.token("alice"))
    name = checkout(server, alice)
    server.sim.controls.fail_next("destroy", retryable=False)
    assert server.client.delete(f"/vm/{name}", headers=alice).json() == {"ok": True}
    server.wait(lambda: held(server, name))
    assert server.client.delete(f"/vm/{name}", headers=tok(server.token("bob"))).status_code == 403
    assert server.client.delete(f"/vm/{name}").status_code == 401
    assert held(server, name) and server.sim.calls["destroy_vm"] == 1
    assert server.client.delete(f"/vm/{name}", headers=alice).json() == {"ok": True}
    server.wait(lambda: server.store.get_vm(name).state is VmState.DESTROYED)

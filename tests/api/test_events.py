"""GET /api/v3/events: Server-Sent Events to a real HTTP client."""

from __future__ import annotations

import json
import queue
import threading
import time
from typing import Any

import httpx

POOLS = [{"name": "a", "template": "t-a", "size": 2}, {"name": "b", "template": "t-b", "size": 1}]


class Reader:
    """Reads an SSE stream in a thread; parsed messages land on a queue."""

    def __init__(self, url: str, params: dict[str, str] | None = None, headers: dict[str, str] | None = None) -> None:
        self.messages: queue.Queue[dict[str, Any]] = queue.Queue()
        self.status: int | None = None
        self.content_type = ""
        self.opened = threading.Event()
        self.ended = threading.Event()
        self._client = httpx.Client(timeout=httpx.Timeout(10, read=30))
        self._thread = threading.Thread(target=self._run, args=(url, params, headers), daemon=True)
        self._thread.start()
        assert self.opened.wait(10), "the stream did not open"

    def _run(self, url: str, params: Any, headers: Any) -> None:
        try:
            with self._client.stream("GET", url, params=params, headers=headers) as resp:
                self.status = resp.status_code
                self.content_type = resp.headers.get("content-type", "")
                self.opened.set()
                message: dict[str, Any] = {}
                for line in resp.iter_lines():
                    if line == "":
                        if "data" in message:
                            message["data"] = json.loads(message["data"])
                            self.messages.put(message)
                        message = {}
                    elif line.startswith(":"):
                        message.setdefault("comments", []).append(line)
                    else:
                        key, _, value = line.partition(": ")
                        message[key] = value
        except httpx.HTTPError:
            pass
        finally:
            self.opened.set()
            self.ended.set()

    def next(self, timeout: float = 10) -> dict[str, Any]:
        return self.messages.get(timeout=timeout)

    def until(self, check: Any, timeout: float = 10) -> list[dict[str, Any]]:
        """Messages up to and including the first one ``check`` accepts."""
        got: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while True:
            got.append(self.next(max(0.01, deadline - time.monotonic())))
            if check(got[-1]):
                return got

    def close(self) -> None:
        self._client.close()


def test_a_client_waits_for_its_vm_without_polling(make_server):
    server = make_server(POOLS)
    reader = Reader(f"{server.url}/api/v3/events", params={"pool": "a", "type": "vm.lifecycle"})
    try:
        assert reader.status == 200 and reader.content_type.startswith("text/event-stream")
        name = server.client.post("/vm/a").json()["a"]["hostname"].split(".")[0]
        msgs = reader.until(lambda m: m["data"]["new"] == "ready")  # the refill behind the checkout
        first = msgs[0]
        assert first["event"] == "vm.lifecycle" and first["data"]["vm"] == name
        assert (first["data"]["old"], first["data"]["new"]) == ("ready", "running")
        assert all(m["data"]["pool"] == "a" for m in msgs)
        assert [int(m["id"]) for m in msgs] == sorted(int(m["id"]) for m in msgs)
        server.client.delete(f"/vm/{name}")
        gone = reader.until(lambda m: m["data"]["vm"] == name and m["data"]["new"] == "destroyed")
        mine = [(m["data"]["old"], m["data"]["new"]) for m in gone if m["data"]["vm"] == name]
        assert mine == [("running", "completed"), ("completed", "destroyed")]
    finally:
        reader.close()


def test_filters_by_vm_and_type_family(make_server):
    server = make_server(POOLS)
    wanted = server.ready("b")[0]
    reader = Reader(f"{server.url}/api/v3/events", params={"vm": f"{wanted}.example.com", "type": "vm."})
    try:
        other = server.client.post("/vm/a").json()["a"]["hostname"].split(".")[0]
        server.client.delete(f"/vm/{other}")
        server.client.post("/vm/b")
        server.client.delete(f"/vm/{wanted}")
        msgs = reader.until(lambda m: m["event"] == "vm.disappeared")
        assert {m["data"]["vm"] for m in msgs} == {wanted}
        assert {m["event"] for m in msgs} >= {"vm.lifecycle", "vm.disappeared"}
    finally:
        reader.close()


def test_inventory_events_reach_the_stream(make_server):
    server = make_server(POOLS, extra={":monitoring": {"host_down_grace": 0.1}})
    reader = Reader(f"{server.url}/api/v3/events", params={"type": "host.down,host.up"})
    try:
        host = server.store.list_vms(pool="a")[0].host
        server.service.pools.providers["sim"].controls.set_host_down(host)  # a plain flag flip, safe from this thread
        down = reader.next()
        assert down["event"] == "host.down" and down["data"]["host"] == host and down["data"]["provider"] == "sim"
        assert "not responding" in down["data"]["reason"]
    finally:
        reader.close()


def test_last_event_id_replays_what_a_client_missed(make_server):
    server = make_server(POOLS)
    first = Reader(f"{server.url}/api/v3/events", params={"type": "vm.lifecycle"})
    try:
        server.client.post("/vm/b")
        seen = first.until(lambda m: m["data"]["new"] == "running")
    finally:
        first.close()
    last_id = seen[-1]["id"]
    name = server.client.post("/vm/a").json()["a"]["hostname"].split(".")[0]  # while nobody listens
    again = Reader(f"{server.url}/api/v3/events", params={"type": "vm.lifecycle"},
                   headers={"Last-Event-ID": last_id})
    try:
        msgs = again.until(lambda m: m["data"]["vm"] == name and m["data"]["new"] == "running")
        assert all(int(m["id"]) > int(last_id) for m in msgs)
    finally:
        again.close()


def test_a_client_too_far_behind_is_told_to_resync(make_server):
    server = make_server(POOLS, extra={":monitoring": {"event_history": 10}})
    for _ in range(4):  # more than ten events
        name = server.client.post("/vm/a").json()["a"]["hostname"].split(".")[0]
        server.client.delete(f"/vm/{name}")
        server.wait_full()
    reader = Reader(f"{server.url}/api/v3/events", headers={"Last-Event-ID": "1"})
    try:
        msg = reader.next()
        assert msg["event"] == "resync" and "re-read" in msg["data"]["reason"]
    finally:
        reader.close()


def test_bad_filters_are_refused_with_a_reason(make_server):
    server = make_server(POOLS)
    resp = server.client.get("/events", params={"type": "vm.exploded"})
    assert resp.status_code == 400 and "unknown event type 'vm.exploded'" in resp.json()["error"]
    resp = server.client.get("/events", headers={"Last-Event-ID": "abc"})
    assert resp.status_code == 400 and "Last-Event-ID" in resp.json()["error"]
    assert server.root.get("/api/v1/events").status_code == 404


def test_the_server_stops_promptly_with_a_stream_open(make_server):
    server = make_server(POOLS)
    reader = Reader(f"{server.url}/api/v3/events")
    started = time.monotonic()
    server.stop()
    assert reader.ended.wait(10), "the stream was not ended by the shutdown"
    assert time.monotonic() - started < 8
    assert all(s.closed for s in server.service.pools.manager.bus.subscriptions)
    reader.close()

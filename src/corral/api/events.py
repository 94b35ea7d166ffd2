"""``GET /api/v3/events``: the event bus as a Server-Sent Events stream.

A client waits for its VM without polling::

    curl -N 'http://127.0.0.1:8080/api/v3/events?vm=abc123&type=vm.lifecycle'

Filters (each a comma-separated list, all optional, combined with AND): ``pool``, ``vm``
(short name or FQDN) and ``type`` (event kinds such as ``vm.lifecycle``, ``host.down``;
a prefix ending in a dot, ``vm.``, takes a family). Host events have no pool or VM, so a
``pool`` or ``vm`` filter leaves them out.

Each event is one SSE message: ``id`` is its sequence number, ``event`` its kind and
``data`` its JSON. A client that reconnects with ``Last-Event-ID`` gets what it missed while
the server still remembers it (``:monitoring: event_history``); if it does not, or if the
client reads too slowly and its queue overflows, it gets an ``event: resync`` message: some
events were lost, re-read the state (``GET /vm/<name>``) and go on. A comment line every
``event_stream_keepalive`` seconds keeps proxies from closing an idle stream.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse

from corral.api.common import ApiError, Version, service_of
from corral.api.head import HEAD_FLAG
from corral.domain.events import INVENTORY_EVENTS, Event, VmLifecycle
from corral.pools.service import Resync, Subscription, SubscriptionClosed
from corral.runtime import Service

STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
KINDS = sorted({cls.kind for cls in (*INVENTORY_EVENTS, VmLifecycle)})
MAX_FILTER_ITEMS = 100


def _items(value: str | None, what: str) -> set[str] | None:
    if value is None or value == "":
        return None
    items = {v.strip() for v in value.split(",") if v.strip()}
    if len(items) > MAX_FILTER_ITEMS:
        raise ApiError(400, f"at most {MAX_FILTER_ITEMS} values for {what!r}")
    if any(len(v) > 255 for v in items):
        raise ApiError(400, f"a value for {what!r} is longer than 255 characters")
    return items


def short_names(vms: set[str] | None) -> frozenset[str] | None:
    """The VMs of a ``vm`` filter as the events name them: short, in lower case (names match in
    any case)."""
    return frozenset(v.split(".", 1)[0].lower() for v in vms) if vms is not None else None


def event_filter(pools: set[str] | None, vms: set[str] | None, kinds: set[str] | None) -> Callable[[Event], bool]:
    if kinds is not None:
        unknown = sorted(k for k in kinds if not k.endswith(".") and k not in KINDS)
        if unknown:
            raise ApiError(400, f"unknown event type {unknown[0][:40]!r} (known: {', '.join(KINDS)})")
    short_vms = short_names(vms)

    def accepts(event: Event) -> bool:
        if kinds is not None and not any(event.kind == k or (k.endswith(".") and event.kind.startswith(k))
                                         for k in kinds):
            return False
        if pools is not None and getattr(event, "pool", None) not in pools:
            return False
        return short_vms is None or getattr(event, "vm", None) in short_vms

    return accepts


def _message(seq: int, event: Event) -> str:
    return f"id: {seq}\nevent: {event.kind}\ndata: {json.dumps(event.as_dict(), separators=(',', ':'))}\n\n"


def _resync(seq: int, why: str) -> str:
    return f"id: {seq}\nevent: resync\ndata: {json.dumps({'type': 'resync', 'reason': why})}\n\n"


class Streams:
    """The open streams of one process: counted for the limit, ended when the server stops."""

    def __init__(self) -> None:
        self.subs: set[Subscription] = set()

    @property
    def open(self) -> int:
        return len(self.subs)

    def close_all(self) -> None:
        """End every stream (the server is stopping: open streams would hold it up forever)."""
        for sub in list(self.subs):
            sub.close()


async def _stream(service: Service, streams: Streams, accepts: Callable[[Event], bool],
                  last: int | None, vms: frozenset[str] | None) -> AsyncIterator[str]:
    """Subscribe on the first read (a response never started leaves nothing behind)."""
    pools = service.pools
    settings = service.config.monitoring
    sub = pools.stream("event-stream", accepts=accepts, queue_size=settings.subscriber_queue, vms=vms)
    streams.subs.add(sub)
    try:
        yield "retry: 2000\n: corral event stream\n\n"
        if last is not None:  # read right after subscribing: nothing is missed or repeated
            missed = pools.events_since(last)
            if missed is None:
                yield _resync(last, "events after this id are no longer kept; re-read the state")
            else:
                for seq, event in missed:
                    if accepts(event):
                        yield _message(seq, event)
        while True:
            try:
                async with asyncio.timeout(settings.event_stream_keepalive):
                    seq, item = await sub.get()
            except TimeoutError:
                yield ": keepalive\n\n"
                continue
            except SubscriptionClosed:
                return
            if isinstance(item, Resync):
                yield _resync(seq, "this stream fell behind and lost events; re-read the state")
            else:
                yield _message(seq, item)
    finally:
        streams.subs.discard(sub)
        sub.close()


def build(router: APIRouter, version: Version) -> None:
    if version.name not in ("v3", "v2"):
        return

    @router.get("/events", include_in_schema=version.name == "v3", response_class=StreamingResponse)
    async def events(request: Request, pool: str | None = Query(None), vm: str | None = Query(None),
                     type: str | None = Query(None), last_event_id: str | None = Query(None)) -> StreamingResponse:
        """Lifecycle and inventory events as Server-Sent Events, filtered by ``pool``, ``vm`` and ``type``."""
        service = service_of(request)
        streams: Streams = request.app.state.streams
        vm_items = _items(vm, "vm")
        accepts = event_filter(_items(pool, "pool"), vm_items, _items(type, "type"))
        raw_last = request.headers.get("last-event-id") or last_event_id
        last: int | None = None
        if raw_last:
            if not raw_last.isdigit() or len(raw_last) > 19:
                raise ApiError(400, "Last-Event-ID must be an event number")
            last = int(raw_last)
        most = service.config.api.max_event_streams
        if streams.open >= most:
            raise ApiError(503, f"too many event streams open (at most {most}, :api: max_event_streams)",
                           headers={"Retry-After": "5"})
        if request.scope.get(HEAD_FLAG):  # HEAD: the headers, not a stream that never ends
            return Response(media_type="text/event-stream", headers=STREAM_HEADERS)  # type: ignore[return-value]
        return StreamingResponse(_stream(service, streams, accepts, last, short_names(vm_items)),
                                 media_type="text/event-stream",
                                 headers=STREAM_HEADERS)

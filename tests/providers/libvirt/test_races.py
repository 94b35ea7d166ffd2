"""The libvirt provider when things happen at once, on libvirt's test driver: a full list read
while VMs are made, destroyed or powered off; a call still running on a connection since
replaced; a create pass that outlasts its budget; a host whose first read fails; a destroy that
finds the domain gone and its volumes left; a clone whose XML cannot be made; an HA restart
after a disk was added.

The test driver answers at once, so each test holds a worker thread at the point where a real
host would be slow (a :class:`Gate`, through a wrapped function of ``operations`` or ``cloning``)
and lets it go when the other thing has happened: no test depends on timing."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import libvirt
import pytest

from corral.domain.models import VmSpec
from corral.providers.base import ProviderError, VmNotFound
from corral.providers.libvirt import cloning, operations
from corral.providers.libvirt.domxml import clone_domain
from corral.providers.libvirt.errors import INVALID_CONN
from corral.providers.libvirt.provider import LibvirtProvider

from ..contract import FeedReader, eventually
from .conftest import POOL, TEMPLATE, host_uris, made, make_provider, raw

HOST1, HOST2 = host_uris(["host1", "host2"])
HOLD = 5.0  # seconds a held thread waits for the test at most (a failing test must not hang)


class Gate:
    """Holds the worker threads that reach it until the test opens it."""

    def __init__(self) -> None:
        self.reached = threading.Event()
        self.open = threading.Event()

    def hold(self) -> None:
        self.reached.set()
        if not self.open.wait(HOLD):
            raise RuntimeError(f"the test did not open the gate within {HOLD} s")

    async def wait_reached(self) -> None:
        assert await asyncio.to_thread(self.reached.wait, HOLD), "no thread reached the gate"


def hold_the_next_list(monkeypatch: pytest.MonkeyPatch, gate: Gate) -> None:
    """The next full read of a host lists its domains, then waits at ``gate`` before it returns
    (as a big host's other reads would take their time)."""
    original = operations.read_host

    def read_host(c: Any, known: Any) -> operations.HostRead:
        read = original(c, known)
        if not gate.reached.is_set():
            gate.hold()
        return read

    monkeypatch.setattr(operations, "read_host", read_host)


def spec(name: str) -> VmSpec:
    return VmSpec(name=name, pool=POOL, template=TEMPLATE)


def volumes(provider: LibvirtProvider, host: str = "host1") -> set[str]:
    return set(raw(provider, host).storagePoolLookupByName("default").listVolumes())


def domains(provider: LibvirtProvider, host: str = "host1") -> set[str]:
    return {d.name() for d in raw(provider, host).listAllDomains()}


def alive(conn: Any) -> bool:
    try:
        return bool(conn.isAlive())
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == INVALID_CONN:  # closed
            return False
        raise


async def until(check: Callable[[], bool], timeout: float = 2.0) -> None:
    async def checked() -> bool:
        return check()

    await eventually(checked, timeout)


# -- a full list and what changes while it is read ----------------------------------------------


async def test_a_vm_made_while_a_full_list_is_read_is_not_reported_gone(monkeypatch: pytest.MonkeyPatch) -> None:
    provider = make_provider([HOST1], host_stats_interval=60)
    await provider.connect()
    gate = Gate()
    try:
        before = provider.changes.version
        hold_the_next_list(monkeypatch, gate)
        listing = asyncio.create_task(provider.wait_for_updates(None, 0))
        await gate.wait_reached()  # listed without it

        await made(provider, "fresh")
        gate.open.set()
        snapshot = await listing

        assert "fresh" in {vm.name for vm in snapshot.vms}
        assert "fresh" in provider.cache.domains
        update = provider.cache.update_since(before)
        assert update is not None and "fresh" not in update.removed_vms
        assert raw(provider).lookupByName("fresh").isActive()
    finally:
        gate.open.set()
        await provider.close()


async def test_a_vm_destroyed_or_powered_off_while_a_full_list_is_read_stays_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    provider = make_provider([HOST1], host_stats_interval=60)
    await provider.connect()
    gate = Gate()
    try:
        await made(provider, "doomed", "stopper")
        feed = FeedReader(provider)
        await feed.read()
        hold_the_next_list(monkeypatch, gate)
        listing = asyncio.create_task(provider.wait_for_updates(None, 0))
        await gate.wait_reached()  # listed both, running

        await provider.destroy_vm("doomed")
        await provider.power_off("stopper")
        gate.open.set()
        snapshot = {vm.name: vm for vm in (await listing).vms}

        assert "doomed" not in snapshot and "doomed" not in provider.cache.domains
        assert not snapshot["stopper"].powered_on and not provider.cache.domains["stopper"].active
        await feed.read()
        assert "doomed" in feed.removed and not feed.vms["stopper"].powered_on
        with pytest.raises(VmNotFound):
            await provider.destroy_vm("doomed")
    finally:
        gate.open.set()
        await provider.close()


# -- connections ---------------------------------------------------------------------------------


async def test_a_call_on_a_connection_since_replaced_fails_without_taking_the_new_one_down() -> None:
    provider = make_provider([HOST1], host_stats_interval=60, reconnect_min=0.05, reconnect_max=0.05)
    await provider.connect()
    conn = provider.hosts["host1"]
    gate = Gate()
    try:
        def slow(c: Any) -> Any:
            gate.hold()  # a long call, or one queued behind others
            return c.getInfo()

        stale = asyncio.create_task(conn.call("read", "host1", slow))
        await gate.wait_reached()
        raw(provider).close()
        with pytest.raises(ProviderError):
            await conn.call("read", "host1", lambda c: c.getInfo())
        assert not conn.up
        await until(lambda: conn.up)
        generation, current = conn.generation, conn.conn

        gate.open.set()
        with pytest.raises(ProviderError, match="connection to the host is lost"):
            await stale
        assert (conn.up, conn.generation, conn.conn) == (True, generation, current)
        assert (await conn.call("read", "host1", lambda c: c.getInfo()))[2] == 16
    finally:
        gate.open.set()
        await provider.close()


async def test_a_host_whose_first_read_fails_is_opened_again_without_keeping_the_first_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    opened: list[Any] = []

    def opener(uri: str) -> Any:
        conn = libvirt.open(uri)
        if uri == HOST1:
            opened.append(conn)
        return conn

    original = operations.read_host

    def read_host(c: Any, known: Any) -> operations.HostRead:
        if c.getURI() == HOST1 and len(opened) == 1:
            c.lookupByName("corral-no-such-domain")  # a real libvirt error, not one of a lost connection
        return original(c, known)

    monkeypatch.setattr(operations, "read_host", read_host)
    provider = make_provider([HOST1, HOST2], opener=opener, host_stats_interval=60, reconnect_min=0.05)
    await provider.connect()
    try:
        feed = FeedReader(provider)
        await feed.until(lambda f: "host1" in f.hosts and f.hosts["host1"].up and f.hosts["host1"].cores == 16, 2.0)
        assert len(opened) == 2
        assert not alive(opened[0])  # the first is closed once the second replaces it
        await made(provider, "after-reopen")
    finally:
        await provider.close()
    assert not any(alive(conn) for conn in opened)


# -- creates -------------------------------------------------------------------------------------


async def test_a_create_pass_over_its_budget_fails_for_good_keeps_its_names_and_its_vms_arrive_when_it_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gate = Gate()
    original = clone_domain

    def held_clone(*args: Any, **kwargs: Any) -> str:
        gate.hold()  # after its disks are cloned: a full clone of a real disk takes long
        return original(*args, **kwargs)

    monkeypatch.setattr(cloning, "clone_domain", held_clone)
    provider = make_provider([HOST1, HOST2], host_stats_interval=60, call_timeout=0.25)
    await provider.connect()
    try:
        feed = FeedReader(provider)
        await feed.read()
        names = ["slow-1", "slow-2"]
        started = time.monotonic()
        results = await provider.create_vms("host1", [spec(name) for name in names])
        assert time.monotonic() - started >= 0.5  # 0.25 s per VM
        assert [(r.ok, r.retryable) for r in results] == [(False, False)] * 2
        assert all(r.error is not None and "longer than 0.5 s" in r.error for r in results), results

        retried = await provider.create_vms("host2", [spec(name) for name in names])
        assert [(r.ok, r.retryable) for r in retried] == [(False, False)] * 2
        assert all(r.error is not None and "already exists" in r.error for r in retried), retried

        gate.open.set()
        await until(lambda: not provider.cache.pending)  # the pass ended
        assert {name: provider.cache.domains[name].host for name in names} == dict.fromkeys(names, "host1")
        await feed.until(lambda f: all(name in f.vms and f.vms[name].host == "host1" for name in names), 2.0)
        assert set(names) <= domains(provider) and not set(names) & domains(provider, "host2")
    finally:
        gate.open.set()
        await provider.close()


async def test_a_clone_whose_xml_cannot_be_made_fails_alone_and_leaves_no_volume(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    original = clone_domain

    def failing_clone(xml: str, *, name: str, **kwargs: Any) -> str:
        if name == "unmakeable":
            raise ValueError("the template has no <devices>")
        return original(xml, name=name, **kwargs)

    monkeypatch.setattr(cloning, "clone_domain", failing_clone)
    provider = make_provider([HOST1], host_stats_interval=60)
    await provider.connect()
    try:
        vols, doms = volumes(provider), domains(provider)
        first, bad, last = await provider.create_vms("host1", [spec("first"), spec("unmakeable"), spec("last")])
        assert (first.ok, bad.ok, bad.retryable, last.ok) == (True, False, False, True)
        assert bad.error is not None and "'unmakeable'" in bad.error and "no <devices>" in bad.error
        assert volumes(provider) - vols == {"first-vda.qcow2", "last-vda.qcow2"}
        assert domains(provider) - doms == {"first", "last"}
        assert "unmakeable" not in provider.cache.domains and not provider.cache.pending
    finally:
        await provider.close()


# -- destroy and HA restart ----------------------------------------------------------------------


async def test_destroying_a_vm_whose_domain_is_gone_deletes_its_volumes_only_and_it_is_not_found() -> None:
    provider = make_provider([HOST1], host_stats_interval=60)
    await provider.connect()
    try:
        await made(provider, "half", "half-2")
        feed = FeedReader(provider)
        await feed.read()
        # the undefine's event is lost (as while a connection is reopened): corral still has the VM
        provider.hosts["host1"].on_event = lambda event: None
        dom = raw(provider).lookupByName("half")
        dom.destroy()
        dom.undefine()  # a destroy that stopped here left the volumes
        assert "half" in provider.cache.domains and "half-vda.qcow2" in volumes(provider)

        with pytest.raises(VmNotFound):
            await provider.destroy_vm("half")
        assert "half-vda.qcow2" not in volumes(provider)
        assert "half-2-vda.qcow2" in volumes(provider)  # another VM's, though its name starts alike
        assert "half" not in provider.cache.domains
        await feed.read()
        assert "half" in feed.removed and "half-2" in feed.vms
    finally:
        await provider.close()


async def test_a_destroy_that_failed_after_the_undefine_leaves_no_volume_once_it_is_asked_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    provider = make_provider([HOST1], host_stats_interval=60)
    await provider.connect()
    try:
        await made(provider, "torn", "torn-2")

        def stops_after_the_undefine(c: Any, name: str, host: str) -> None:
            dom = c.lookupByName(name)
            dom.destroy()
            dom.undefineFlags(0)
            raise ProviderError("the disk is busy")  # as a volume delete that failed

        monkeypatch.setattr(operations, "destroy", stops_after_the_undefine)
        with pytest.raises(ProviderError, match="busy"):
            await provider.destroy_vm("torn")
        monkeypatch.undo()
        await until(lambda: "torn" not in provider.cache.domains)  # the undefine's event arrived
        assert "torn-vda.qcow2" in volumes(provider)

        with pytest.raises(VmNotFound):  # the retry finds no domain, and still the volumes
            await provider.destroy_vm("torn")
        assert "torn-vda.qcow2" not in volumes(provider)
        assert "torn-2-vda.qcow2" in volumes(provider) and "torn-2" in domains(provider)
    finally:
        await provider.close()


async def test_a_vm_restarted_on_another_host_has_the_disk_added_to_it() -> None:
    host1_down = False

    def opener(uri: str) -> Any:
        if host1_down and uri == HOST1:
            return libvirt.open("test:///nonexistent/corral-host.xml")  # fails as an unreachable host does
        return libvirt.open(uri)

    provider = make_provider([HOST1, HOST2], opener=opener, reconnect_min=0.05, reconnect_max=0.1)
    await provider.connect()
    try:
        await made(provider, "ha-disk")
        await provider.add_disk("ha-disk", 1)
        feed = FeedReader(provider)
        await feed.read()
        host1_down = True
        raw(provider).close()
        await feed.until(lambda f: not f.hosts["host1"].up, 1.0)

        [started] = await provider.start_vms("host2", ["ha-disk"])
        assert started.ok, started
        xml = raw(provider, "host2").lookupByName("ha-disk").XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        assert "ha-disk-vda.qcow2" in xml and "ha-disk-vdb.qcow2" in xml
    finally:
        await provider.close()

"""Host connections of the libvirt provider on libvirt's test driver: a connection lost and
reopened with back-off, hosts that cannot be reached, and VMs restarted away from a host that is down.

The test driver reloads its file at every open, so what a connection created is gone after a
reopen; a domain written into the host file is there again after it."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import libvirt
import pytest

from corral.domain.models import VmSpec
from corral.providers.base import HostUnavailable, ProviderError

from ..contract import FeedReader
from .conftest import POOL, TEMPLATE, foreign_domain_xml, host_file, host_uri, host_uris, made, make_provider, raw

HOST1, HOST2 = host_uris(["host1", "host2"])


def unreachable(_uri: str) -> Any:
    """An open that fails as libvirt fails it (a host file that is not there)."""
    return libvirt.open("test:///nonexistent/corral-host.xml")


def host_file_with_a_vm(tmp_path: Path, vm: str) -> Path:
    """A copy of host1's file with one domain of corral's (pool ``lv-pool``) in it, running."""
    copy = tmp_path / "host1.xml"
    copy.write_text(host_file("host1").read_text().replace("</node>", foreign_domain_xml(vm, pool=POOL) + "</node>"))
    return copy


async def test_a_dropped_connection_is_noticed_and_reopened_and_no_vm_is_reported_gone_while_the_host_is_away(
    tmp_path: Path,
) -> None:
    provider = make_provider([host_uri(host_file_with_a_vm(tmp_path, "in-the-file")), HOST2], reconnect_min=0.3)
    await provider.connect()
    try:
        await made(provider, "made-before")
        feed = FeedReader(provider)
        await feed.read()
        assert {"in-the-file", "made-before"} <= feed.vms.keys()
        assert feed.vms["in-the-file"].pool == POOL
        generation = provider.hosts["host1"].generation

        raw(provider).close()  # noticed by the next periodic read of the host's use
        seen_down = False
        deadline = time.monotonic() + 5
        while True:
            update = await feed.read(timeout=0.5)
            seen_down = seen_down or not feed.hosts["host1"].up
            if update.removed_vms:
                # the reopened host no longer has what was made on the old connection (the file was
                # reloaded): that is reported, and only now, with the host up again
                assert update.removed_vms == ["made-before"]
                assert seen_down and feed.hosts["host1"].up
                break
            assert time.monotonic() < deadline, "the host was not reopened within 5 s"
        assert "in-the-file" in feed.vms and "in-the-file" not in feed.removed
        assert provider.hosts["host1"].generation == generation + 1
        assert "in-the-file" in {vm.name for vm in await provider.list_vms()}
    finally:
        await provider.close()


async def test_a_call_on_a_dropped_connection_marks_the_host_down_at_once() -> None:
    provider = make_provider(host_uris(["host1", "host2"]), host_stats_interval=60, reconnect_min=1.0,
                             reconnect_max=1.0)
    await provider.connect()
    try:
        await made(provider, "on-dropped")
        feed = FeedReader(provider)
        await feed.read()
        raw(provider).close()
        with pytest.raises(ProviderError) as caught:
            await provider.power_off("on-dropped")
        assert caught.value.retryable and "host1" in str(caught.value)
        await feed.until(lambda f: not f.hosts["host1"].up, 0.5)
        with pytest.raises(HostUnavailable):
            await provider.power_on("on-dropped")
        with pytest.raises(HostUnavailable):
            await provider.create_vms("host1", [VmSpec(name="meanwhile", pool=POOL, template=TEMPLATE)])
        assert "on-dropped" in feed.vms and not feed.removed
    finally:
        await provider.close()


async def test_a_host_unreachable_at_first_stays_down_is_retried_with_back_off_and_comes_up() -> None:
    attempts: list[float] = []

    def opener(uri: str) -> Any:
        if uri == HOST1:
            attempts.append(time.monotonic())
            if len(attempts) <= 3:
                return unreachable(uri)
        return libvirt.open(uri)

    provider = make_provider([HOST1, HOST2], opener=opener, reconnect_min=0.05, reconnect_max=1.0)
    await provider.connect()
    try:
        feed = FeedReader(provider)
        await feed.read()
        assert (feed.hosts["host1"].up, feed.hosts["host2"].up) == (False, True)
        with pytest.raises(HostUnavailable):
            await provider.create_vms("host1", [VmSpec(name="too-early", pool=POOL, template=TEMPLATE)])
        await feed.until(lambda f: f.hosts["host1"].up, 3.0)
        assert len(attempts) == 4
        gaps = [later - earlier for earlier, later in zip(attempts, attempts[1:], strict=False)]
        for i, gap in enumerate(gaps):  # 0.05 s, then doubled at each failure
            assert gap >= 0.05 * 2**i * 0.9, gaps
        assert feed.hosts["host1"].cores == 16
        await made(provider, "in-the-end")
    finally:
        await provider.close()


def libvirt_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith(("libvirt-host", "libvirt-reopen"))}


async def test_a_provider_that_reaches_no_host_says_which_and_leaves_no_thread(tmp_path: Path) -> None:
    before = libvirt_threads()
    provider = make_provider([host_uri(tmp_path / "host1.xml"), host_uri(tmp_path / "host2.xml")])
    with pytest.raises(ProviderError) as caught:
        await provider.connect()
    message = str(caught.value)
    assert "no host could be reached" in message and "'host1'" in message and "'host2'" in message
    deadline = time.monotonic() + 2
    while libvirt_threads() - before:
        assert time.monotonic() < deadline, f"threads left: {libvirt_threads() - before}"
        time.sleep(0.01)
    with pytest.raises(ProviderError, match="not connected"):
        await provider.wait_for_updates(None, 0.1)


async def test_a_vm_of_a_host_that_is_down_is_started_on_another() -> None:
    host1_down = False

    def opener(uri: str) -> Any:
        return unreachable(uri) if host1_down and uri == HOST1 else libvirt.open(uri)

    provider = make_provider([HOST1, HOST2], opener=opener, reconnect_min=0.05, reconnect_max=0.1)
    await provider.connect()
    try:
        await made(provider, "ha-vm", "ha-other")
        [refused] = await provider.start_vms("host2", ["ha-vm"])
        assert (refused.ok, refused.retryable) == (False, False)

        feed = FeedReader(provider)
        await feed.read()
        host1_down = True
        raw(provider).close()
        await feed.until(lambda f: not f.hosts["host1"].up, 1.0)

        started, missing = await provider.start_vms("host2", ["ha-vm", "ha-never"])
        assert started.ok, started
        assert (missing.ok, missing.retryable) == (False, False)
        await feed.until(lambda f: f.vms["ha-vm"].host == "host2" and f.vms["ha-vm"].powered_on, 1.0)
        assert raw(provider, "host2").lookupByName("ha-vm").isActive()
        listed = {vm.name: vm for vm in await provider.list_vms()}
        assert (listed["ha-vm"].host, listed["ha-vm"].powered_on) == ("host2", True)
        assert listed["ha-other"].host == "host1"  # still known where it was while that host is away
        assert not feed.removed
    finally:
        await provider.close()

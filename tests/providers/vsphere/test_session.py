"""The shared session: one login per vCenter, re-login on loss, keepalive, logout, bounded calls."""

from __future__ import annotations

import asyncio
import time

import pytest
from pydantic import SecretStr, ValidationError

from corral.bench.vcsim import Vcsim, wait_task
from corral.domain.models import VmSpec
from corral.providers.base import Cause, ProviderError
from corral.providers.counting import Counted, ProviderCounts
from corral.providers.vsphere import VsphereSettings
from corral.providers.vsphere.session import Session

from ..contract import FeedReader
from .conftest import TEMPLATE, make_provider, pool


def settings(sim: Vcsim, **extra: object) -> VsphereSettings:
    return VsphereSettings.model_validate(sim.settings(**extra))


async def test_one_session_whatever_the_number_of_pools_and_calls(vcsim: Vcsim) -> None:
    pools = {f"p{i}": pool(f"p{i}") for i in range(10)}
    provider = make_provider(vcsim, pools=pools, concurrency=10)
    await provider.connect()
    try:
        specs = [VmSpec(name=f"vm-{p}-{i}", pool=p, template=TEMPLATE) for p in pools for i in range(2)]
        busy = asyncio.gather(*(provider.create_vms(host, [spec]) for host, spec in
                                zip(["DC0_C0_H0", "DC0_C0_H1", "DC0_C0_H2"] * 7, specs, strict=False)))
        counts = []
        while not busy.done():
            counts.append(len(await asyncio.to_thread(vcsim.sessions)))
            await asyncio.sleep(0.05)
        results = [r for batch in await busy for r in batch]
        assert all(r.ok for r in results), results
        assert counts and set(counts) == {1}
        assert provider.session.logins == 1
        assert provider.session.peak_in_flight <= 10
    finally:
        await provider.close()
    assert vcsim.sessions() == []  # logged out


async def test_concurrent_calls_on_a_terminated_session_log_in_once(vcsim: Vcsim) -> None:
    provider = make_provider(vcsim, pools={"p": pool("p")})
    await provider.connect()
    try:
        feed = FeedReader(provider)
        await feed.read()
        vcsim.terminate_sessions()
        results = await asyncio.gather(*(provider.create_vms("DC0_C0_H0", [VmSpec(name=f"r{i}", pool="p",
                                                                                 template=TEMPLATE)])
                                         for i in range(5)))
        assert all(r.ok for [r] in results), results
        assert provider.session.relogins == 1
        assert len(vcsim.sessions()) == 1
        # the feed rebuilt its collector on the new session and reports as before
        await feed.until(lambda f: all(f"r{i}" in f.vms for i in range(5)), 10)
        assert not feed.removed
        assert provider.feed.snapshots == 2
    finally:
        await provider.close()


async def test_a_refused_relogin_pauses_the_feed_which_says_so_and_resumes_once_a_login_succeeds(
        vcsim: Vcsim) -> None:
    """The session is ended and the password rotated: the feed's loops cannot log in again.
    They keep trying with back-off, every read of the feed says why (cause ``session``) instead
    of going silent on a stale copy, and once the password is right again the loops log in by
    themselves (no other call is made meanwhile) and the feed reports what changed."""
    provider = make_provider(vcsim, pools={"p": pool("p")}, keepalive_interval=600)
    await provider.connect()
    try:
        [made] = await provider.create_vms("DC0_C0_H0", [VmSpec(name="r0", pool="p", template=TEMPLATE)])
        assert made.ok, made
        counts = ProviderCounts()
        feed = FeedReader(Counted(provider, counts))  # read as the inventory reads it: failures counted
        await feed.until(lambda f: "r0" in f.vms and f.vms["r0"].powered_on, 10)
        held = provider.session.settings
        provider.session.settings = held.model_copy(update={"password": SecretStr("rotated-s3cr3t")})
        vcsim.terminate_sessions()

        async def refusal(within: float) -> ProviderError:
            deadline = time.monotonic() + within
            while True:
                try:  # the loss itself is said first (cause feed); then the refusal, at every read
                    await feed.read()
                except ProviderError as exc:
                    assert exc.cause is Cause.SESSION, exc
                    return exc
                assert time.monotonic() < deadline, "the feed never said that logging in again is refused"

        said = await refusal(10)
        assert "refused" in str(said) and "rotated-s3cr3t" not in str(said)
        await asyncio.to_thread(lambda: wait_task(vcsim.vm("r0").PowerOffVM_Task()))
        await asyncio.sleep(2)  # the loops keep trying (and failing) meanwhile
        await refusal(0)  # said at once
        assert provider.feed.drops >= 3  # the session lost, then logins refused again and again
        assert provider.session.relogins == 0 and provider.feed.fatal is None
        assert feed.vms["r0"].powered_on  # nothing reported from the stale copy

        provider.session.settings = held
        deadline = time.monotonic() + 40  # within the back-off (at most 30 s)
        while feed.vms["r0"].powered_on:
            assert time.monotonic() < deadline, "the feed did not resume once the login was accepted"
            try:
                await feed.read(0.5)
            except ProviderError as exc:  # still refused until the loops try again
                assert exc.cause is Cause.SESSION, exc
                await asyncio.sleep(0.1)
        assert provider.session.relogins == 1 and provider.feed.refused is None
        assert provider.feed.tasks.refused is None and provider.feed.fatal is None
        assert provider.feed.snapshots == 2 and len(vcsim.sessions()) == 1
        counted = counts.view()
        assert counted.total("vsphere", "wait_for_updates", "session") >= 2  # each refusal said, counted by cause
        assert counted.sessions_renewed == {"vsphere": 1}
    finally:
        await provider.close()


async def test_keepalive_pings_an_idle_session(vcsim: Vcsim) -> None:
    session = Session("vsphere", settings(vcsim, keepalive_interval=0.2))
    await session.connect()
    try:
        await asyncio.sleep(0.75)
        assert session.keepalives >= 2
        assert session.calls["CurrentTime"] == session.keepalives
        busy_until = asyncio.get_running_loop().time() + 0.6
        before = session.keepalives
        while asyncio.get_running_loop().time() < busy_until:  # a busy session is not pinged
            await session.call("CurrentTime", lambda: session.si.CurrentTime())
            await asyncio.sleep(0.05)
        assert session.keepalives == before
    finally:
        await session.close()


async def test_calls_are_bounded_by_concurrency() -> None:
    sim = Vcsim(hosts=1, delays={"CurrentTime": 200})
    try:
        session = Session("vsphere", settings(sim, concurrency=3, keepalive_interval=600))
        await session.connect()
        try:
            await asyncio.gather(*(session.call("CurrentTime", lambda: session.si.CurrentTime()) for _ in range(9)))
            assert session.peak_in_flight == 3
        finally:
            await session.close()
    finally:
        sim.close()


async def test_a_refused_login_names_the_endpoint_but_never_the_password(vcsim: Vcsim) -> None:
    secret = "s3cr3t-never-shown"
    session = Session("vsphere", VsphereSettings.model_validate({**vcsim.settings(), "password": secret,
                                                                "username": "nobody"}))
    with pytest.raises(ProviderError) as caught:
        await session.connect()
    assert "login refused" in str(caught.value) and f"{vcsim.host}:{vcsim.port}" in str(caught.value)
    assert secret not in str(caught.value) and not caught.value.retryable


async def test_an_unreachable_vcenter_is_a_clear_retryable_error() -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    session = Session("vsphere", VsphereSettings(server="127.0.0.1", port=port, protocol="http", username="u",
                                                 password="p", call_timeout=5))
    with pytest.raises(ProviderError) as caught:
        await session.connect()
    assert "cannot connect" in str(caught.value) and caught.value.retryable


def test_settings_read_vmpooler_keys_and_name_what_they_ignore() -> None:
    s = VsphereSettings.model_validate({"server": "vc.example", "username": "u", "password": "p",
                                        "insecure": True, "datacenter": "dc1", "connection_pool_size": 20,
                                        "folder_whitelist": ["keep"], "purge_unconfigured_folders": True})
    assert s.effective_port == 443 and s.insecure and s.datacenter == "dc1"
    assert s.purge and s.allowlist == ["keep"]
    assert [n.split(":")[0] for n in s.ignored()] == ["connection_pool_size"]
    with pytest.raises(ValidationError) as caught:
        VsphereSettings.model_validate({"server": "vc", "username": "u", "password": "p", "concurency": 3})
    assert "concurency" in str(caught.value)


async def test_ignored_settings_are_named_once_however_often_connecting_is_tried(caplog) -> None:
    import logging
    import socket

    from corral.providers.vsphere import VsphereProvider

    with socket.socket() as s:  # a port nobody listens on: every attempt fails
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    provider = VsphereProvider("vsphere", VsphereSettings(
        server="127.0.0.1", port=port, protocol="http", username="u", password="p", call_timeout=5,
        connection_pool_size=12))
    caplog.set_level(logging.WARNING, logger="corral.providers.vsphere")
    for _ in range(3):
        with pytest.raises(ProviderError):
            await provider.connect()
    said = [r for r in caplog.records if r.getMessage() == "vSphere setting ignored"]
    assert [r.detail for r in said] == [provider.settings.ignored()[0]]  # type: ignore[attr-defined]

"""The contract every provider passes, whatever cluster is behind it.

A provider's test module subclasses :class:`ProviderContract` and supplies fixtures:

``provider``
    an async fixture (``pytest_asyncio.fixture``) yielding a *connected* provider on a
    cluster with no VMs yet, closing it afterwards;
``host_name``
    a host that is up and can take a few small VMs;
``other_host_name``
    a second such host, for the migration tests (they are skipped without it);
``make_spec`` (optional)
    a callable ``make_spec(name=None) -> VmSpec``; the default makes uniquely named
    specs from ``pool``/``template`` below.

Class attributes tune it for slow or limited backends: ``supports_migration`` (False for a
provider that cannot move VMs, such as the libvirt one on libvirt's test driver: its migration
test then checks the refusal instead, a permanent error giving the reason the provider states in
``cannot_migrate``), ``ready_timeout`` (seconds to wait for a guest to boot) and ``feed_timeout``
(seconds to wait for the feed to report a change).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable

import pytest

from corral.domain.models import HostInfo, ProviderVm, VmSpec
from corral.providers.base import Cause, InventoryUpdate, Provider, ProviderError, VmNotFound

SpecMaker = Callable[..., VmSpec]
_serial = itertools.count(1)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float, interval: float = 0.01) -> None:
    """Poll ``check`` until it is true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)


class FeedReader:
    """Follows one provider's change feed and keeps the latest state it reported."""

    def __init__(self, provider: Provider) -> None:
        self.provider = provider
        self.version: int | None = None
        self.vms: dict[str, ProviderVm] = {}
        self.hosts: dict[str, HostInfo] = {}
        self.removed: set[str] = set()
        self.updates: list[InventoryUpdate] = []
        self.drops = 0  # the feed's word that it lost its connection (and resumes)

    async def read(self, timeout: float = 0.1) -> InventoryUpdate:
        """One answer of the feed. A feed that says it lost its connection (cause ``feed``) is
        asked again at once, as the inventory does after a pause: the feed resumes on its own."""
        while True:
            try:
                update = await self.provider.wait_for_updates(self.version, timeout)
                break
            except ProviderError as exc:
                if exc.cause is not Cause.FEED:
                    raise
                self.drops += 1
        self.updates.append(update)
        self.version = update.version
        if update.full:
            self.vms.clear()
            self.hosts.clear()
        for vm in update.vms:
            self.vms[vm.name] = vm
            self.removed.discard(vm.name)
        for name in update.removed_vms:
            self.vms.pop(name, None)
            self.removed.add(name)
        self.hosts.update((host.name, host) for host in update.hosts)
        return update

    async def until(self, seen: Callable[[FeedReader], bool], timeout: float) -> None:
        """Read the feed until ``seen(self)`` holds; fail the test after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not seen(self):
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(f"the feed did not report the change within {timeout} s")
            await self.read(timeout=min(left, 0.5))


class ProviderContract:
    supports_migration = True
    ready_timeout = 5.0
    feed_timeout = 5.0
    pool = "contract-pool"
    template = "contract-template"

    @pytest.fixture
    def other_host_name(self) -> str:
        """A second host for the migration tests; providers that migrate override this."""
        pytest.skip("the provider's tests name no second host")

    @pytest.fixture
    def make_spec(self) -> SpecMaker:
        def make(name: str | None = None) -> VmSpec:
            return VmSpec(name=name or f"contract-vm-{next(_serial)}", pool=self.pool, template=self.template)

        return make

    async def _create(self, provider: Provider, host: str, make_spec: SpecMaker, count: int = 1) -> list[str]:
        specs = [make_spec() for _ in range(count)]
        results = await provider.create_vms(host, specs)
        assert [r.ok for r in results] == [True] * count, results
        names = [spec.name for spec in specs]
        # a create returns when its calls have ended; its VMs reach the provider's feed at once on
        # the simulator, with the feed's next update on vSphere: the tests start from there
        await FeedReader(provider).until(lambda f: all(n in f.vms and f.vms[n].powered_on for n in names),
                                         self.feed_timeout)
        return names

    async def _ready(self, provider: Provider, name: str) -> None:
        async def ready() -> bool:
            return await provider.vm_ready(name)

        await eventually(ready, self.ready_timeout)

    async def _memory_used(self, provider: Provider, host: str) -> float:
        """The host's memory as placement counts VMs: allocated when reported, else used.

        (vSphere reports use as quickStats, which lag by about 20 s and which vcsim keeps
        fixed; the memory its VMs are configured with follows them at once.)
        """
        info = next(h for h in await provider.list_hosts() if h.name == host)
        return info.memory_allocated_mb if info.memory_allocated_mb is not None else info.memory_used_mb

    # -- session ---------------------------------------------------------------------------

    async def test_is_a_provider(self, provider: Provider) -> None:
        assert isinstance(provider, Provider)
        assert isinstance(provider.name, str) and provider.name
        assert isinstance(provider.bulk_calls, bool)
        assert isinstance(provider.probes_readiness, bool)

    async def test_connect_and_close_are_idempotent(self, provider: Provider, host_name: str) -> None:
        await provider.connect()
        assert host_name in {h.name for h in await provider.list_hosts()}
        await provider.close()
        await provider.close()

    # -- feed ------------------------------------------------------------------------------

    async def test_first_update_is_a_full_snapshot(self, provider: Provider, host_name: str) -> None:
        update = await provider.wait_for_updates(None, 1.0)
        assert update.full and not update.empty
        assert host_name in {h.name for h in update.hosts}
        listed = {vm.name for vm in await provider.list_vms()}
        assert {vm.name for vm in update.vms} == listed

    async def test_no_change_gives_an_empty_update_after_the_timeout(self, provider: Provider) -> None:
        snapshot = await provider.wait_for_updates(None, 1.0)
        started = time.monotonic()
        update = await provider.wait_for_updates(snapshot.version, 0.3)
        waited = time.monotonic() - started
        assert update.empty and not update.full
        assert update.version == snapshot.version
        assert 0.25 <= waited < 2.0

    async def test_a_change_wakes_a_waiting_reader(
        self, provider: Provider, host_name: str, make_spec: SpecMaker
    ) -> None:
        snapshot = await provider.wait_for_updates(None, 1.0)
        started = time.monotonic()
        waiting = asyncio.create_task(provider.wait_for_updates(snapshot.version, 30.0))
        [name] = await self._create(provider, host_name, make_spec)
        update = await asyncio.wait_for(waiting, self.feed_timeout)
        assert time.monotonic() - started < self.feed_timeout
        assert not update.full and update.version > snapshot.version
        assert name in {vm.name for vm in update.vms}

    async def test_created_vms_are_listed_and_reported_by_the_feed(
        self, provider: Provider, host_name: str, make_spec: SpecMaker
    ) -> None:
        feed = FeedReader(provider)
        await feed.read()
        specs = [make_spec(), make_spec()]
        results = await provider.create_vms(host_name, specs)
        assert [(r.name, r.ok) for r in results] == [(s.name, True) for s in specs]

        listed = {vm.name: vm for vm in await provider.list_vms()}
        for spec in specs:
            assert listed[spec.name].host == host_name
            assert listed[spec.name].pool == spec.pool
            assert listed[spec.name].powered_on

        versions = [feed.version]
        await feed.until(lambda f: all(s.name in f.vms for s in specs), self.feed_timeout)
        versions += [u.version for u in feed.updates[1:]]
        assert not any(u.full for u in feed.updates[1:])
        assert versions == sorted(versions) and versions[-1] > versions[0]
        assert {feed.vms[s.name].host for s in specs} == {host_name}

    async def test_creating_an_existing_name_fails_only_that_vm(
        self, provider: Provider, host_name: str, make_spec: SpecMaker
    ) -> None:
        [existing] = await self._create(provider, host_name, make_spec)
        fresh = make_spec()
        results = await provider.create_vms(host_name, [make_spec(existing), fresh])
        assert [r.name for r in results] == [existing, fresh.name]
        assert not results[0].ok and results[0].error
        assert results[1].ok
        names = [vm.name for vm in await provider.list_vms()]
        assert names.count(existing) == 1 and fresh.name in names

    # -- destroy ---------------------------------------------------------------------------

    async def test_destroy_removes_the_vm_and_the_feed_says_so(
        self, provider: Provider, host_name: str, make_spec: SpecMaker
    ) -> None:
        [name] = await self._create(provider, host_name, make_spec)
        feed = FeedReader(provider)
        await feed.read()
        assert name in feed.vms
        await provider.destroy_vm(name)
        assert name not in {vm.name for vm in await provider.list_vms()}
        await feed.until(lambda f: name in f.removed, self.feed_timeout)
        assert name not in feed.vms

    async def test_destroying_a_missing_vm_raises_vm_not_found(self, provider: Provider) -> None:
        with pytest.raises(VmNotFound):
            await provider.destroy_vm("contract-no-such-vm")

    # -- readiness and power ---------------------------------------------------------------

    async def test_vm_becomes_ready_after_boot(
        self, provider: Provider, host_name: str, make_spec: SpecMaker
    ) -> None:
        [name] = await self._create(provider, host_name, make_spec)
        await self._ready(provider, name)
        [vm] = [vm for vm in await provider.list_vms() if vm.name == name]
        assert vm.powered_on and vm.guest_ready

    async def test_vm_ready_of_a_missing_vm_raises_vm_not_found(self, provider: Provider) -> None:
        with pytest.raises(VmNotFound):
            await provider.vm_ready("contract-no-such-vm")

    async def test_power_off_makes_it_unready_and_power_on_ready_again(
        self, provider: Provider, host_name: str, make_spec: SpecMaker
    ) -> None:
        [name] = await self._create(provider, host_name, make_spec)
        await self._ready(provider, name)
        await provider.power_off(name)
        assert not await provider.vm_ready(name)
        [vm] = [vm for vm in await provider.list_vms() if vm.name == name]
        assert not vm.powered_on
        await provider.power_on(name)
        await self._ready(provider, name)

    # -- HA restarts -----------------------------------------------------------------------
    # Moving a VM off a failed host needs a host taken down, which this suite cannot do
    # generically; each provider's own tests cover that. What any provider can show: refusals.

    async def test_start_vms_refuses_a_running_vm_and_reports_a_missing_one(
        self, provider: Provider, host_name: str, make_spec: SpecMaker
    ) -> None:
        [name] = await self._create(provider, host_name, make_spec)
        missing = make_spec().name
        running, absent = await provider.start_vms(host_name, [name, missing])
        assert (running.name, running.ok, running.retryable) == (name, False, False)
        assert running.error and name in running.error and host_name in running.error
        assert (absent.name, absent.ok, absent.retryable) == (missing, False, False)
        assert absent.error and missing in absent.error
        [vm] = [vm for vm in await provider.list_vms() if vm.name == name]
        assert vm.host == host_name and vm.powered_on
        assert missing not in {vm.name for vm in await provider.list_vms()}

    # -- migration -------------------------------------------------------------------------

    async def test_migrate_moves_the_vm(
        self, provider: Provider, host_name: str, other_host_name: str, make_spec: SpecMaker
    ) -> None:
        if not self.supports_migration:
            await self._migration_is_refused(provider, host_name, other_host_name, make_spec)
            return
        assert provider.cannot_migrate is None
        [name] = await self._create(provider, host_name, make_spec)
        feed = FeedReader(provider)
        await feed.read()
        await provider.migrate_vm(name, other_host_name)
        [vm] = [vm for vm in await provider.list_vms() if vm.name == name]
        assert vm.host == other_host_name
        await feed.until(lambda f: f.vms[name].host == other_host_name, self.feed_timeout)

    async def _migration_is_refused(
        self, provider: Provider, host_name: str, other_host_name: str, make_spec: SpecMaker
    ) -> None:
        """A provider that cannot migrate says why in ``cannot_migrate``, and a migration fails
        for good with that reason, leaving the VM where it was."""
        reason = provider.cannot_migrate
        assert isinstance(reason, str) and reason.strip(), "a provider that cannot migrate says why"
        [name] = await self._create(provider, host_name, make_spec)
        feed = FeedReader(provider)
        await feed.read()
        with pytest.raises(ProviderError) as caught:
            await provider.migrate_vm(name, other_host_name)
        assert not isinstance(caught.value, VmNotFound)
        assert not caught.value.retryable
        assert reason in str(caught.value) and name in str(caught.value)
        [vm] = [vm for vm in await provider.list_vms() if vm.name == name]
        assert (vm.host, vm.powered_on) == (host_name, True)
        await feed.read(timeout=0.2)
        assert feed.vms[name].host == host_name

    async def test_migrating_a_missing_vm_raises_vm_not_found(
        self, provider: Provider, other_host_name: str
    ) -> None:
        with pytest.raises(VmNotFound):
            await provider.migrate_vm("contract-no-such-vm", other_host_name)

    # -- disks and snapshots ---------------------------------------------------------------

    async def test_a_disk_can_be_added_to_a_vm(
        self, provider: Provider, host_name: str, make_spec: SpecMaker
    ) -> None:
        [name] = await self._create(provider, host_name, make_spec)
        await provider.add_disk(name, 1)
        await provider.add_disk(name, 2)
        assert name in {vm.name for vm in await provider.list_vms()}

    async def test_a_vm_can_return_to_its_snapshot_again_and_again(
        self, provider: Provider, host_name: str, make_spec: SpecMaker
    ) -> None:
        [name] = await self._create(provider, host_name, make_spec)
        await self._ready(provider, name)
        await provider.create_snapshot(name, "contract-snap")
        await provider.revert_snapshot(name, "contract-snap")
        await provider.revert_snapshot(name, "contract-snap")
        [vm] = [vm for vm in await provider.list_vms() if vm.name == name]
        assert vm.powered_on

    async def test_reverting_to_an_unknown_snapshot_is_a_permanent_error(
        self, provider: Provider, host_name: str, make_spec: SpecMaker
    ) -> None:
        [name] = await self._create(provider, host_name, make_spec)
        await provider.create_snapshot(name, "contract-snap")
        with pytest.raises(ProviderError) as caught:
            await provider.revert_snapshot(name, "contract-no-such-snap")
        assert not isinstance(caught.value, VmNotFound)
        assert not caught.value.retryable

    @pytest.mark.parametrize("operation", ["add_disk", "create_snapshot", "revert_snapshot"])
    async def test_disk_and_snapshot_calls_on_a_missing_vm_raise_vm_not_found(
        self, provider: Provider, operation: str
    ) -> None:
        calls: dict[str, Callable[[], Awaitable[None]]] = {
            "add_disk": lambda: provider.add_disk("contract-no-such-vm", 1),
            "create_snapshot": lambda: provider.create_snapshot("contract-no-such-vm", "snap"),
            "revert_snapshot": lambda: provider.revert_snapshot("contract-no-such-vm", "snap"),
        }
        with pytest.raises(VmNotFound):
            await calls[operation]()

    # -- host use --------------------------------------------------------------------------

    async def test_host_memory_use_follows_the_vms(
        self, provider: Provider, host_name: str, make_spec: SpecMaker
    ) -> None:
        before = await self._memory_used(provider, host_name)
        names = await self._create(provider, host_name, make_spec, count=2)

        async def risen() -> bool:
            return await self._memory_used(provider, host_name) > before

        await eventually(risen, self.feed_timeout)
        with_vms = await self._memory_used(provider, host_name)
        for name in names:
            await provider.destroy_vm(name)

        async def fallen() -> bool:
            return await self._memory_used(provider, host_name) < with_vms

        await eventually(fallen, self.feed_timeout)

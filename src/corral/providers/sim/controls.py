"""The simulator's test hooks: what a test (or a benchmark) does to the simulated cluster
behind corral's back, and what it reads of it without a call.

They are plain sync methods of :class:`SimControls`, reachable as ``provider.controls``, and
take effect at once: a change reaches the change feed as the endpoint's own would.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from corral.domain.models import HostHealth, ProviderVm
from corral.providers.changefeed import ChangeFeed
from corral.providers.sim.boots import Boots
from corral.providers.sim.faults import Faults
from corral.providers.sim.settings import SimSettings
from corral.providers.sim.world import SimCluster, SimVm

#: The overall statuses a host can report, as vSphere's ``overallStatus`` names them.
HOST_HEALTH = tuple(HostHealth)


class SimControls:
    """Hooks on the simulated ``cluster``: injected failures and stalls (``faults``), clones that
    fail at a seeded rate, a session that expires, an endpoint out of reach, a change feed that
    drops, hosts down, stalled, in maintenance or unhealthy, guests that crash or come up, VMs
    nobody asked for.
    ``changed`` saves a changed VM (to the state file, if any) and tells the feed, ``remove``
    takes a VM away as a destroy does; ``settings`` size injected VMs."""

    def __init__(self, cluster: SimCluster, feed: ChangeFeed, faults: Faults, boots: Boots, settings: SimSettings,
                 *, changed: Callable[[SimVm], None], remove: Callable[[SimVm], None]) -> None:
        self.cluster = cluster
        self.feed = feed
        self.faults = faults
        self.boots = boots
        self.settings = settings
        self.changed = changed
        self.remove = remove

    # -- failures --------------------------------------------------------------------------

    def fail_next(self, op: str, count: int = 1, *, retryable: bool = True) -> None:
        """Make the next ``count`` calls of ``op`` raise ``ProviderError("injected failure")``;
        with ``retryable=False``, a permanent ``ProviderError("injected failure (permanent)")``.

        ``op`` is one of ``connect``, ``create``, ``start``, ``destroy``, ``migrate``, ``power``, ``disk``,
        ``snapshot``, ``revert``, ``vm_ready``, ``list_vms``, ``list_hosts``, ``template_info``,
        ``wait_for_updates``.
        """
        self.faults.fail_next(op, count, retryable=retryable)

    def stall(self, op: str, seconds: float) -> None:
        """Make every call of ``op`` sleep ``seconds`` more real seconds; 0 clears it."""
        self.faults.stall(op, seconds)

    def fail_on_host(self, host: str, failing: bool = True) -> None:
        """While set, every VM that create_vms or start_vms puts on ``host`` fails, retryably.

        The call itself succeeds; those VMs are not created or moved. Raises
        :class:`~corral.providers.base.HostUnavailable` for a host that does not exist.
        """
        self.cluster.host(host)
        self.faults.fail_on_host(host, failing)

    def fail_clones(self, rate: float, seed: int = 0) -> None:
        """From now on each VM of a create call fails with probability ``rate`` (0 stops it),
        drawn from a generator of its own seeded with ``seed``, so that a run fails the same VMs
        whatever else draws. The call itself succeeds; a failed VM's result says
        ``injected failure cloning VM ...`` (retryable, cause ``injected``) and nothing is made.
        Raises :class:`ValueError` for a rate outside 0..1.
        """
        self.faults.fail_clones(rate, seed)

    def expire_session_every(self, calls: int) -> None:
        """Let the endpoint's session expire after every ``calls`` calls (0: never), the change
        feed's included. The call that finds it expired renews it first, as the vSphere
        provider logs in again on ``NotAuthenticated``, and goes on; the provider counts it in
        ``sessions_renewed``. Raises :class:`ValueError` for a negative count.
        """
        self.faults.expire_session_every(calls)

    def fail_renewals(self, count: int = 1) -> None:
        """Make the next ``count`` session renewals fail: the call that needed one raises
        ``ProviderError`` with cause ``session`` and the session stays expired (the next call
        tries again)."""
        self.faults.fail_renewals(count)

    def unreachable_for(self, seconds: float) -> None:
        """Make the whole endpoint unreachable for ``seconds`` real seconds from now (0 ends an
        outage): every call, a connect and the change feed (a long poll under way included)
        raise ``ProviderError`` with cause ``unreachable``; nothing changes in the cluster.
        Boots go on (the guests do not need the endpoint). Raises :class:`ValueError` for a
        negative time.
        """
        self.faults.unreachable_for(seconds)
        self.feed.wake_all()

    def drop_feed(self, count: int = 1) -> None:
        """Drop the change feed's connection ``count`` times: the long poll under way (if any)
        and the next calls of ``wait_for_updates`` raise ``ProviderError`` with cause ``feed``,
        ``count`` in all. Changes made meanwhile stay in the feed's log, so a caller that asks
        again with its last version gets them."""
        self.faults.drop_feed(count)
        self.feed.wake_all()

    # -- hosts -----------------------------------------------------------------------------

    def set_host_down(self, host: str, down: bool = True) -> None:
        """Take a host down (its VMs are not ready, creates on it fail) or bring it back.

        Raises :class:`~corral.providers.base.HostUnavailable` for a host that does not exist.
        """
        target = self.cluster.host(host)
        if target.up == (not down):
            return
        target.up = not down
        self.feed.touch("host", host)

    def stall_host(self, host: str, seconds: float) -> None:
        """Make every call touching ``host`` sleep ``seconds`` more real seconds (0 clears it):
        creates and starts placed there, and destroys, power changes, readiness checks, disks,
        snapshots, reverts and migrations of its VMs (or onto it). The stall is slept before
        the call takes one of the endpoint's ``concurrency`` slots: a slow host does not hold
        the endpoint. Lifting it ends the stalls under way. Raises
        :class:`~corral.providers.base.HostUnavailable` for a host that does not exist and
        :class:`ValueError` for a negative time.
        """
        self.cluster.host(host)
        self.faults.stall_host(host, seconds)

    def set_host_maintenance(self, host: str, maintenance: bool = True) -> None:
        """Put a host into maintenance (creates and migrations onto it fail) or take it out."""
        target = self.cluster.host(host)
        if target.maintenance == maintenance:
            return
        target.maintenance = maintenance
        self.feed.touch("host", host)

    def set_host_health(self, host: str, health: str = "green", config_issues: int = 0) -> None:
        """Set a host's overall status and its count of configuration issues.

        Only placement minds them: a host that is not green, or has issues, still takes VMs.
        Raises :class:`ValueError` for a status other than green, yellow, red or gray, or a
        negative count, and :class:`~corral.providers.base.HostUnavailable` for an unknown host.
        """
        if health not in HOST_HEALTH:
            raise ValueError(f"unknown host health {health!r}; one of {', '.join(HOST_HEALTH)}")
        if config_issues < 0:
            raise ValueError(f"config_issues cannot be negative, got {config_issues}")
        target = self.cluster.host(host)
        if (target.health, target.config_issues) == (health, config_issues):
            return
        target.health = HostHealth(health)
        target.config_issues = config_issues
        self.feed.touch("host", host)

    # -- VMs -------------------------------------------------------------------------------

    def set_guest_ready(self, name: str, ready: bool) -> None:
        """Flip a powered-on VM's guest between booted and not (a guest crash, a hung boot).

        Raises :class:`~corral.providers.base.VmNotFound` for an unknown VM.
        """
        vm = self.cluster.vm(name)
        if not vm.powered_on or vm.guest_ready == ready:
            return
        self.boots.stop(vm, ready=ready)
        self.changed(vm)

    def inject_vm(
        self, name: str, host: str, pool: str | None, template: str | None = None, guest_ready: bool = True
    ) -> ProviderVm:
        """Add a powered-on VM nobody asked corral to create (an orphan, for instance).

        With ``guest_ready=False`` its guest stays unready until it is power-cycled. With a
        ``state_file`` call this after :meth:`SimProvider.connect`, so that the VM is persisted.
        """
        if name in self.cluster.vms:
            raise ValueError(f"VM {name!r} already exists")
        self.cluster.host(host)
        sizing = self.settings.template(template) if template else None
        sizing = sizing or self.settings.template_defaults  # orphans ignore strict_templates
        vm = SimVm(
            name=name,
            host=host,
            pool=pool,
            template=template,
            cpus=sizing.cpus,
            memory_mb=sizing.memory_mb,
            ip=self.cluster.allocate_ip(),
            created_at=time.time(),
            guest_ready=guest_ready,
        )
        self.cluster.add(vm)
        self.changed(vm)
        self.feed.touch("host", host)
        return vm.view()

    def vanish(self, name: str) -> None:
        """Drop a VM as if someone deleted it at the endpoint, behind corral's back (no call).

        Raises :class:`~corral.providers.base.VmNotFound` for an unknown VM.
        """
        self.remove(self.cluster.vm(name))

    # -- reads (no call) -------------------------------------------------------------------

    def vm(self, name: str) -> ProviderVm | None:
        """The VM as the simulator has it now; None when it has no VM of that name."""
        vm = self.cluster.vms.get(name)
        return vm.view() if vm is not None else None

    def vm_names(self) -> set[str]:
        """The names of every VM the simulator has now."""
        return set(self.cluster.vms)

    def injected(self) -> dict[str, int]:
        """The failures injected so far by kind: ``clone`` (:meth:`fail_clones`), ``renewal``
        (:meth:`fail_renewals`), ``unreachable`` (calls refused by :meth:`unreachable_for`) and
        ``feed`` (:meth:`drop_feed`)."""
        return dict(self.faults.injected)

    def vm_disks(self, name: str) -> list[int]:
        """The sizes in GiB of the disks added to a VM, in order."""
        return list(self.cluster.vm(name).disks)

    def vm_snapshots(self, name: str) -> list[str]:
        """The names of a VM's snapshots, oldest first."""
        return list(self.cluster.vm(name).snapshots)

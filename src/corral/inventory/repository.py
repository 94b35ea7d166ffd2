"""The in-memory inventory of one provider endpoint: its hosts, clusters and VMs.

Fed only by the provider's change feed: the first answer is a full snapshot, every later one
a delta. A record is the provider's own immutable view (:class:`ProviderVm`,
:class:`HostInfo`); an update about one VM replaces that one record and moves it between
the indexes it changed in. Nothing else in corral keeps a copy of this data.

Indexes: VMs by name, by provider id, by host and by pool; hosts by name, by id and by
cluster. Every lookup is O(1) or O(answer).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from corral.domain.models import HostInfo, ProviderVm
from corral.providers.base import InventoryUpdate


@dataclass(slots=True)
class Changes:
    """What one update changed: (old, new) record pairs, None where there was (or is) none."""

    vms: list[tuple[ProviderVm | None, ProviderVm | None]] = field(default_factory=list)
    hosts: list[tuple[HostInfo | None, HostInfo | None]] = field(default_factory=list)
    full: bool = False

    def __len__(self) -> int:
        return len(self.vms) + len(self.hosts)


def _index_add(index: dict[str, set[str]], key: str | None, name: str) -> None:
    if key is not None:
        index.setdefault(key, set()).add(name)


def _index_drop(index: dict[str, set[str]], key: str | None, name: str) -> None:
    if key is None:
        return
    members = index.get(key)
    if members is not None:
        members.discard(name)
        if not members:
            del index[key]


def _forget_id(ids: dict[str, str], old_id: str, name: str) -> None:
    """Drop ``old_id`` unless another record took it over already (ids can be reused)."""
    if ids.get(old_id) == name:
        del ids[old_id]


def _index_move(index: dict[str, set[str]], old_key: str | None, new_key: str | None, name: str) -> None:
    if old_key != new_key:
        _index_drop(index, old_key, name)
        _index_add(index, new_key, name)


def _id_move(ids: dict[str, str], old_id: str | None, new_id: str | None, name: str) -> None:
    if old_id is not None and old_id != new_id:
        _forget_id(ids, old_id, name)
    if new_id is not None:
        ids[new_id] = name


class Repository:
    """Hosts and VMs of one provider, indexed; see the module docstring."""

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.version: int | None = None
        self.vms: dict[str, ProviderVm] = {}
        self.hosts: dict[str, HostInfo] = {}
        self._vm_ids: dict[str, str] = {}
        self._host_ids: dict[str, str] = {}
        self._by_host: dict[str, set[str]] = {}
        self._by_pool: dict[str, set[str]] = {}
        self._by_cluster: dict[str, set[str]] = {}
        self.updates = 0  # feed answers applied
        self.loaded = False  # a full snapshot has been applied

    # -- reads -----------------------------------------------------------------------------

    def vm(self, name: str) -> ProviderVm | None:
        return self.vms.get(name)

    def vm_by_id(self, vm_id: str) -> ProviderVm | None:
        name = self._vm_ids.get(vm_id)
        return self.vms.get(name) if name is not None else None

    def host(self, name: str) -> HostInfo | None:
        return self.hosts.get(name)

    def host_by_id(self, host_id: str) -> HostInfo | None:
        name = self._host_ids.get(host_id)
        return self.hosts.get(name) if name is not None else None

    def vms_on(self, host: str) -> list[ProviderVm]:
        return [self.vms[n] for n in self._by_host.get(host, ())]

    def vms_in(self, pool: str) -> list[ProviderVm]:
        return [self.vms[n] for n in self._by_pool.get(pool, ())]

    def hosts_in(self, cluster: str) -> list[HostInfo]:
        return [self.hosts[n] for n in self._by_cluster.get(cluster, ())]

    def clusters(self) -> list[str]:
        return sorted(self._by_cluster)

    def hosts_with_vms(self) -> list[str]:
        """The hosts at least one VM is on, sorted."""
        return sorted(self._by_host)

    def pools_with_vms(self) -> list[str]:
        """The pools at least one VM belongs to, sorted."""
        return sorted(self._by_pool)

    # -- the feed --------------------------------------------------------------------------

    def apply(self, update: InventoryUpdate) -> Changes:
        """Fold one feed answer in; returns what changed (a full snapshot is diffed)."""
        self.updates += 1
        changes = Changes(full=update.full)
        if update.full:
            self._replace_all(update, changes)
            self.loaded = True
        else:
            for name in update.removed_vms:
                old = self._drop_vm(name)
                if old is not None:
                    changes.vms.append((old, None))
            for name in update.removed_hosts:
                old_host = self._drop_host(name)
                if old_host is not None:
                    changes.hosts.append((old_host, None))
            self._put_vms(update.vms, changes)
            self._put_hosts(update.hosts, changes)
        self.version = update.version
        return changes

    def _replace_all(self, update: InventoryUpdate, changes: Changes) -> None:
        seen_vms = {vm.name for vm in update.vms}
        for name in [n for n in self.vms if n not in seen_vms]:
            changes.vms.append((self._drop_vm(name), None))
        seen_hosts = {host.name for host in update.hosts}
        for name in [n for n in self.hosts if n not in seen_hosts]:
            changes.hosts.append((self._drop_host(name), None))
        self._put_vms(update.vms, changes)
        self._put_hosts(update.hosts, changes)

    def _put_vms(self, vms: Iterable[ProviderVm], changes: Changes) -> None:
        for vm in vms:
            old = self.vms.get(vm.name)
            if old == vm:
                continue
            self.vms[vm.name] = vm
            if old is None:
                _index_add(self._by_host, vm.host, vm.name)
                _index_add(self._by_pool, vm.pool, vm.name)
            else:
                _index_move(self._by_host, old.host, vm.host, vm.name)
                _index_move(self._by_pool, old.pool, vm.pool, vm.name)
            _id_move(self._vm_ids, old.id if old is not None else None, vm.id, vm.name)
            changes.vms.append((old, vm))

    def _put_hosts(self, hosts: Iterable[HostInfo], changes: Changes) -> None:
        for host in hosts:
            old = self.hosts.get(host.name)
            if old == host:
                continue
            self.hosts[host.name] = host
            if old is None:
                _index_add(self._by_cluster, host.cluster, host.name)
            else:
                _index_move(self._by_cluster, old.cluster, host.cluster, host.name)
            _id_move(self._host_ids, old.id if old is not None else None, host.id, host.name)
            changes.hosts.append((old, host))

    def _drop_vm(self, name: str) -> ProviderVm | None:
        old = self.vms.pop(name, None)
        if old is not None:
            _index_drop(self._by_host, old.host, name)
            _index_drop(self._by_pool, old.pool, name)
            if old.id is not None:
                _forget_id(self._vm_ids, old.id, name)
        return old

    def _drop_host(self, name: str) -> HostInfo | None:
        old = self.hosts.pop(name, None)
        if old is not None:
            _index_drop(self._by_cluster, old.cluster, name)
            if old.id is not None:
                _forget_id(self._host_ids, old.id, name)
        return old

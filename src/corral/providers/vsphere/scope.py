"""Which VMs of a vCenter are one provider's, when several providers share the vCenter.

Two corral services (two teams, say) may manage pools on one vCenter, each with its own
folders. Each reads the whole vCenter through its change feed, but reports only its own VMs
in ``list_vms`` and ``wait_for_updates``; otherwise each would see the other's VMs as VMs of
unknown pools, or, with pool names in common, as orphans to destroy. Hosts stay shared, and a
host's sums (VM count, memory) count every VM on it, whoever owns it: they all use the host.
Templates are found wherever they are.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from corral.providers.vsphere.settings import VspherePool


@dataclass(frozen=True, slots=True)
class Scope:
    """A provider's pools and their folders (paths below the datacenter's VM folder)."""

    pools: frozenset[str]
    folders: frozenset[str]
    root: bool  # a pool has no folder: its VMs live directly in the datacenter's VM folder

    @classmethod
    def of(cls, pools: Iterable[VspherePool]) -> Scope:
        pools = list(pools)
        folders = {(p.folder or "").strip("/") for p in pools}
        return cls(pools=frozenset(p.name for p in pools), folders=frozenset(folders - {""}), root="" in folders)


def owns(scope: Scope, folder: str | None, noted_pool: str | None, cloned: bool) -> bool:
    """Whether a VM is the provider's.

    ``folder`` is the VM's folder path below its datacenter's VM folder ("" for that folder,
    None when it is in none), ``noted_pool`` the pool its annotation names, ``cloned`` whether
    this provider cloned it. A VM is the provider's when it is in (or below) a pool's folder,
    directly in the VM folder while a pool has no folder, annotated with one of the pools, or
    cloned by this provider.
    """
    if cloned or (noted_pool is not None and noted_pool in scope.pools):
        return True
    if folder is None:
        return False
    if folder == "":
        return scope.root
    end = len(folder)
    while end != -1:  # the folder, then each folder above it
        if folder[:end] in scope.folders:
            return True
        end = folder.rfind("/", 0, end)
    return False

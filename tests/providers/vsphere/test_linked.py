"""Linked clones of a template without a snapshot: vmpooler's ``create_template_delta_disks``.

vcsim does not model disk chains: its CloneVM_Task ignores ``diskMoveType`` and gives every
clone's disks fresh backings without a ``parent`` (and the test template has no disk). So
the tests read what corral sent: a recording wrapper on the session's SOAP stub keeps every
method called, with its arguments, and passes the call on to vcsim unchanged.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from pyVmomi import vim, vmodl

from corral.bench.vcsim import Vcsim
from corral.config import ConfigError, parse_config
from corral.domain.models import VmSpec
from corral.providers.vsphere import VsphereProvider
from corral.providers.vsphere.linked import Plan, clone_plan
from corral.runtime import build_provider

from .conftest import make_provider, pool

BARE = "Templates/bare"  # a template without a snapshot

# (linked clones asked for, a snapshot is known, create_template_delta_disks, making one failed) -> plan
PLAN_TABLE: list[tuple[bool, bool, bool, bool, Plan]] = [
    (False, False, False, False, "full"),
    (False, True, True, False, "full"),  # full clones asked for: the snapshot does not matter
    (True, True, False, False, "linked"),
    (True, True, True, False, "linked"),  # a snapshot there (or made before): no second one
    (True, True, True, True, "linked"),
    (True, False, True, False, "snapshot"),
    (True, False, False, False, "full_warn"),  # today's rule without the key
    (True, False, True, True, "full_failed"),
]


@pytest.mark.parametrize(("linked", "known", "delta_disks", "failed", "plan"), PLAN_TABLE)
def test_clone_plan(linked: bool, known: bool, delta_disks: bool, failed: bool, plan: Plan) -> None:
    assert clone_plan(linked, known, delta_disks, failed) == plan


class Recorder:
    """Wraps a pyvmomi stub: records (method, object id, arguments) of every call it makes."""

    def __init__(self, stub: Any) -> None:
        self.calls: list[tuple[str, str, list[Any]]] = []
        invoke = stub.InvokeMethod

        def recording(mo: Any, info: Any, args: Any, *rest: Any) -> Any:
            self.calls.append((info.wsdlName, mo._moId, list(args)))
            return invoke(mo, info, args, *rest)

        stub.InvokeMethod = recording

    def named(self, method: str) -> list[list[Any]]:
        return [args for name, _, args in self.calls if name == method]

    def order(self, *methods: str) -> list[str]:
        return [name for name, _, _ in self.calls if name in methods]


def template_state(sim: Vcsim, name: str) -> dict[str, Any]:
    """The template's ``config.template`` and ``snapshot``, read through the observer session."""
    spec = vmodl.query.PropertyCollector
    found = sim.content.propertyCollector.RetrievePropertiesEx(
        specSet=[spec.FilterSpec(objectSet=[spec.ObjectSpec(obj=sim.vm(name))],
                                 propSet=[spec.PropertySpec(type=vim.VirtualMachine,
                                                            pathSet=["config.template", "snapshot"])])],
        options=spec.RetrieveOptions())
    return {p.name: p.val for o in found.objects for p in o.propSet}


def snapshots(tree: list[Any]) -> int:
    return sum(1 + snapshots(node.childSnapshotList) for node in tree or [])


def clone_specs(recorder: Recorder) -> list[Any]:
    return [args[2] for args in recorder.named("CloneVM_Task")]  # (folder, name, spec)


async def clone(provider: VsphereProvider, names: list[str], pool_name: str = "p") -> None:
    """Start the clones at once, spread over the hosts as the runner would."""
    hosts = ["DC0_C0_H0", "DC0_C0_H1", "DC0_C0_H2"]
    batches = await asyncio.gather(*(provider.create_vms(hosts[i % 3], [VmSpec(name=n, pool=pool_name, template=BARE)])
                                     for i, n in enumerate(names)))
    assert all(r.ok for batch in batches for r in batch), batches


@pytest.fixture
def bare(vcsim: Vcsim) -> Vcsim:
    vcsim.make_template(BARE, snapshot=None, memory_mb=128)
    return vcsim


async def test_a_template_without_a_snapshot_gets_one_and_every_clone_is_linked(bare: Vcsim) -> None:
    provider = make_provider(bare, pools={"p": pool("p", template=BARE, linked_clone=True)},
                             create_template_delta_disks=True)
    await provider.connect()
    try:
        recorder = Recorder(provider.session.si._stub)
        await clone(provider, [f"l{i}" for i in range(6)])
        state = template_state(bare, "bare")
        assert state["config.template"] is True  # a template again
        assert snapshots(state["snapshot"].rootSnapshotList) == 1
        base = state["snapshot"].currentSnapshot._moId
        # vCenter snapshots no template: it became a VM for the snapshot, once, then a template again
        assert recorder.order("MarkAsVirtualMachine", "CreateSnapshot_Task", "MarkAsTemplate") == \
            ["MarkAsVirtualMachine", "CreateSnapshot_Task", "MarkAsTemplate"]
        specs = clone_specs(recorder)
        assert len(specs) == 6
        assert {(s.snapshot._moId, s.location.diskMoveType) for s in specs} == {(base, "createNewChildDiskBacking")}
        await clone(provider, ["l6"])  # remembered: later clones use it, no second snapshot
        assert len(recorder.named("CreateSnapshot_Task")) == 1
        assert clone_specs(recorder)[-1].snapshot._moId == base
        assert snapshots(template_state(bare, "bare")["snapshot"].rootSnapshotList) == 1
    finally:
        await provider.close()


async def test_without_the_key_no_snapshot_is_made_and_one_warning_says_so(
        bare: Vcsim, caplog: pytest.LogCaptureFixture) -> None:
    provider = make_provider(bare, pools={"p": pool("p", template=BARE, linked_clone=True)})
    await provider.connect()
    try:
        recorder = Recorder(provider.session.si._stub)
        with caplog.at_level(logging.WARNING, logger="corral.providers.vsphere"):
            await clone(provider, ["f0", "f1", "f2"])
        assert template_state(bare, "bare").get("snapshot") is None
        assert recorder.order("MarkAsVirtualMachine", "CreateSnapshot_Task", "MarkAsTemplate") == []
        assert {(s.snapshot, s.location.diskMoveType) for s in clone_specs(recorder)} == {(None, None)}
        warnings = [r for r in caplog.records if "no snapshot" in r.getMessage()]
        assert len(warnings) == 1 and getattr(warnings[0], "template", None) == BARE
    finally:
        await provider.close()


async def test_a_snapshot_that_cannot_be_made_is_logged_once_and_the_pool_fills_with_full_clones(
        bare: Vcsim, caplog: pytest.LogCaptureFixture) -> None:
    provider = make_provider(bare, pools={"p": pool("p", template=BARE, linked_clone=True)},
                             create_template_delta_disks=True)
    await provider.connect()
    try:
        # someone makes the template a VM behind corral's back; vcsim does not report that change
        # through the property collector, so corral's copy still shows a template and its own
        # MarkAsVirtualMachine fails (NotSupported): a real failure of the snapshot step
        dc = bare.content.rootFolder.childEntity[0]
        cluster = dc.hostFolder.childEntity[0]
        bare.vm("bare").MarkAsVirtualMachine(pool=cluster.resourcePool, host=cluster.host[0])
        recorder = Recorder(provider.session.si._stub)
        with caplog.at_level(logging.WARNING, logger="corral.providers.vsphere"):
            await clone(provider, ["x0", "x1", "x2", "x3"])
            await clone(provider, ["x4"])
        assert len(recorder.named("MarkAsVirtualMachine")) == 1 and recorder.named("CreateSnapshot_Task") == []
        assert {(s.snapshot, s.location.diskMoveType) for s in clone_specs(recorder)} == {(None, None)}
        failures = [r for r in caplog.records if "snapshot" in r.getMessage()]
        assert len(failures) == 1, [r.getMessage() for r in failures]
        assert "NotSupported" in getattr(failures[0], "error", "") and getattr(failures[0], "template", None) == BARE
    finally:
        await provider.close()


def test_the_key_is_read_from_config_and_the_provider_overrides_it() -> None:
    def provider(config: dict[str, Any], keys: dict[str, Any]) -> Any:
        doc = {":providers": {":vsphere": {"server": "vc", "username": "u", "password": "p", **keys}},
               ":config": config, ":pools": [{"name": "p", "template": "t", "size": 1}]}
        parsed, warnings = parse_config(doc)
        assert warnings == []
        return build_provider(parsed, "vsphere")

    assert provider({}, {}).create_template_delta_disks is False  # vmpooler's default
    assert provider({"create_template_delta_disks": True}, {}).create_template_delta_disks is True
    assert provider({"create_template_delta_disks": True},
                    {"create_template_delta_disks": False}).create_template_delta_disks is False
    assert provider({}, {"create_template_delta_disks": True}).create_template_delta_disks is True
    with pytest.raises(ConfigError, match="create_template_delta_disks"):
        parse_config({":config": {"create_template_delta_disks": "sometimes"},
                      ":pools": [{"name": "p", "template": "t", "size": 1}]})

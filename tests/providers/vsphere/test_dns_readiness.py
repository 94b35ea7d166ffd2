"""Readiness of vSphere VMs built from a vmpooler 3 file: the probe connects to the VM's name
with the domain of its pool's DNS plugin (``:dns_configs:``), on vcsim."""

from __future__ import annotations

import dataclasses
from typing import Any

import yaml

from corral.bench.vcsim import Listener, Vcsim
from corral.config import parse_config
from corral.domain.models import VmSpec
from corral.runtime import build_providers
from helpers import REPO, eventually

from .conftest import TEMPLATE, TOOLS_RUNNING

DNS_FILE = REPO / "tests" / "fixtures" / "vmpooler-dns.yaml"


async def test_readiness_probes_the_name_with_the_dns_plugins_domain(vcsim: Vcsim, listener: Listener) -> None:
    document = yaml.safe_load(DNS_FILE.read_text(encoding="utf-8"))
    document[":providers"] = {":vsphere": vcsim.settings(feed_max_wait=2)}
    for entry in document[":pools"]:
        entry["template"] = TEMPLATE
    config, _ = parse_config(document)
    provider: Any = build_providers(config)["vsphere"]
    provider.probe = listener.probe  # the only stand-in: DNS and sshd of guests vcsim does not run
    provider.pools = {name: dataclasses.replace(p, extra_config={**p.extra_config, **TOOLS_RUNNING})
                      for name, p in provider.pools.items()}
    await provider.connect()
    try:
        specs = [VmSpec(name=f"d{i}", pool=p.name, template=TEMPLATE) for i, p in enumerate(config.pools)]
        results = await provider.create_vms("DC0_C0_H0", specs)
        assert all(r.ok for r in results), results
        for spec in specs:  # task ends and inventory changes arrive by separate long polls
            await eventually(lambda name=spec.name: (vm := provider.cache.vm(name)) is not None and vm.powered_on)
            assert await provider.vm_ready(spec.name)
        assert listener.asked == ["d0.example.com:22", "d1.cloud.example.net:22", "d2.own.example.org:22", "d3:22"]
    finally:
        await provider.close()

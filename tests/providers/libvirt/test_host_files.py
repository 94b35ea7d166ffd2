"""The host files of libvirt's test driver (tests/fixtures/libvirt/) are what their comments say:
the libvirt provider's tests rely on it."""

from __future__ import annotations

from pathlib import Path

import libvirt
import pytest

HOSTS = Path(__file__).resolve().parents[2] / "fixtures" / "libvirt"
GIB = 1024**3


@pytest.fixture
def opened(request: pytest.FixtureRequest):
    conn = libvirt.open(f"test://{HOSTS / request.param}")
    yield conn
    conn.close()


@pytest.mark.parametrize(
    ("opened", "memory_mb", "cpus", "mhz"),
    [("host1.xml", 32768, 16, 2400), ("host2.xml", 65536, 24, 2600), ("host3.xml", 65536, 32, 2600)],
    indirect=["opened"],
)
def test_each_host_has_its_own_cpu_and_memory(opened, memory_mb: int, cpus: int, mhz: int):
    _, memory, count, speed, *_ = opened.getInfo()
    assert (memory, count, speed) == (memory_mb, cpus, mhz)


@pytest.mark.parametrize("opened", ["host1.xml", "host2.xml", "host3.xml"], indirect=True)
def test_each_host_has_the_templates_shut_off_on_volumes_of_its_default_pool(opened):
    templates = {d.name(): (d.state()[0], d.info()[3], d.info()[1] // 1024)
                 for d in opened.listAllDomains()}
    assert templates == {"debian-12": (libvirt.VIR_DOMAIN_SHUTOFF, 2, 2048),
                         "centos-9": (libvirt.VIR_DOMAIN_SHUTOFF, 1, 1024)}
    pool = opened.storagePoolLookupByName("default")
    volumes = {v.name(): v.info()[1] for v in pool.listAllVolumes()}
    assert volumes == {"debian-12.qcow2": 10 * GIB, "centos-9.qcow2": 8 * GIB}
    assert opened.networkLookupByName("default").isActive()


@pytest.mark.parametrize("opened", ["host1.xml"], indirect=True)
def test_a_template_volume_can_be_copied_in_its_pool(opened):
    pool = opened.storagePoolLookupByName("default")
    source = pool.storageVolLookupByName("debian-12.qcow2")
    copy = pool.createXMLFrom(f"<volume><name>p-1-vda.qcow2</name><capacity unit='bytes'>{10 * GIB}</capacity>"
                              "<target><format type='qcow2'/></target></volume>", source, 0)
    assert (copy.path(), copy.info()[1]) == ("/var/lib/libvirt/images/p-1-vda.qcow2", 10 * GIB)

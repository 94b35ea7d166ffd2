"""A libvirt host's CPU from its capabilities, how busy its CPUs are, the memory it uses."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from corral.providers.libvirt.hostfigures import HostCpu, cpu_busy, describe_cpu, memory_used_mb, parse_capabilities

from .samples import KVM_CAPABILITIES, TEST_CAPABILITIES


def caps(cpu: str) -> str:
    return f"<capabilities><host>{cpu}</host></capabilities>"


@pytest.mark.parametrize(("xml", "expected"), [
    (KVM_CAPABILITIES, HostCpu("x86_64", "GenuineIntel", "Skylake-Client-IBRS", frozenset({"ds", "vmx", "pdpe1gb"}),
                               family=6)),
    (TEST_CAPABILITIES, HostCpu("i686", "", "", frozenset({"pae", "nonpae"}))),
    (caps("<cpu><arch>x86_64</arch><model>EPYC-Rome</model><vendor>AMD</vendor><feature name='svm'/></cpu>"),
     HostCpu("x86_64", "AuthenticAMD", "EPYC-Rome", frozenset({"svm"}))),
    (caps("<cpu><arch>aarch64</arch><model>cortex-a72</model><vendor>ARM</vendor></cpu>"),
     HostCpu("aarch64", "ARM", "cortex-a72", frozenset())),
    (caps("<cpu><arch> s390x </arch><feature/></cpu>"), HostCpu("s390x", "", "", frozenset())),
    (caps("<cpu><signature model='94'/></cpu>"), HostCpu("", "", "", frozenset())),
    (caps(""), HostCpu("", "", "", frozenset())),
    ("<capabilities/>", HostCpu("", "", "", frozenset())),
])
def test_parse_capabilities(xml: str, expected: HostCpu) -> None:
    assert parse_capabilities(xml) == expected


@pytest.mark.parametrize(("xml", "message"), [
    ("<capabilities><host>", "capabilities XML is not well-formed"),
    ("<domain/>", "capabilities XML has <domain> at its root, not <capabilities>"),
    (caps("<cpu><signature family='six'/></cpu>"), "the host CPU's signature family is not a whole number: 'six'"),
])
def test_parse_capabilities_refuses(xml: str, message: str) -> None:
    with pytest.raises(ValueError, match="^" + message):
        parse_capabilities(xml)


def times(user: int, kernel: int, idle: int, iowait: int) -> dict[str, int]:
    return {"user": user, "kernel": kernel, "idle": idle, "iowait": iowait}


BASE = times(1000, 1000, 8000, 0)


@pytest.mark.parametrize(("previous", "current", "busy"), [
    (None, BASE, 0.0),  # a first reading: nothing to compare with
    (BASE, BASE, 0.0),  # no time passed
    (BASE, times(1500, 1500, 9000, 0), 0.5),
    (BASE, times(2000, 2000, 8000, 0), 1.0),
    (BASE, times(1000, 1000, 9000, 1000), 0.0),  # idle and waiting for I/O: not busy
    (BASE, times(1100, 1000, 8600, 300), 0.1),
    (BASE, times(1000, 1300, 8700, 0), 0.3),  # kernel time is busy
    (BASE, times(10, 10, 80, 0), 0.0),  # counters went back: the host restarted
    (BASE, times(1500, 900, 9000, 0), 0.0),  # one counter went back
    ({"user": 0, "kernel": 0}, {"user": 1, "kernel": 1, "idle": 2}, 0.5),  # missing keys count 0
    (times(9797400000, 34678723400000, 87264900000, 763600000),  # the test driver's fixed figures
     times(9797400000, 34678723400000, 87264900000, 763600000), 0.0),
])
def test_cpu_busy(previous: Mapping[str, int] | None, current: Mapping[str, int], busy: float) -> None:
    assert cpu_busy(previous, current) == pytest.approx(busy)


GIB_KIB = 1024 * 1024


@pytest.mark.parametrize(("stats", "total_mb", "running_mb", "used"), [
    (None, 16384, 3072, 3072.0),  # no memory statistics: the running domains' memory
    (None, 16384, 0, 0.0),
    ({}, 16384, 2048, 2048.0),
    ({"total": 16 * GIB_KIB}, 16384, 2048, 2048.0),  # no free: no reading
    ({"total": 16 * GIB_KIB, "free": 8 * GIB_KIB, "buffers": GIB_KIB, "cached": 2 * GIB_KIB}, 16384, 0, 5120.0),
    ({"total": 16 * GIB_KIB, "free": 12 * GIB_KIB}, 16384, 9999, 4096.0),  # buffers and cached missing: 0
    ({"free": 4 * GIB_KIB, "buffers": 0, "cached": 0}, 8192, 0, 4096.0),  # total missing: the host's
    ({"total": 1024, "free": 512, "buffers": 0, "cached": 0}, 1, 0, 0.5),  # KiB to MiB, not rounded
    ({"total": GIB_KIB, "free": GIB_KIB, "buffers": 10, "cached": 10}, 1024, 0, 0.0),  # never below 0
])
def test_memory_used_mb(stats: Mapping[str, int] | None, total_mb: int, running_mb: int, used: float) -> None:
    assert memory_used_mb(stats, total_mb, running_mb) == pytest.approx(used)


@pytest.mark.parametrize(("cpu", "info_model", "text"), [
    (HostCpu("x86_64", "GenuineIntel", "Skylake-Client", frozenset()), "x86_64", "Intel Skylake-Client (x86_64)"),
    (HostCpu("x86_64", "AuthenticAMD", "EPYC-Rome", frozenset()), "x86_64", "AMD EPYC-Rome (x86_64)"),
    (HostCpu("x86_64", "HygonGenuine", "Dhyana", frozenset()), "x86_64", "Hygon Dhyana (x86_64)"),
    (HostCpu("aarch64", "ARM", "cortex-a72", frozenset()), "aarch64", "ARM cortex-a72 (aarch64)"),
    (HostCpu("x86_64", "", "qemu64", frozenset()), "x86_64", "qemu64 (x86_64)"),
    (HostCpu("", "GenuineIntel", "Haswell", frozenset()), "", "Intel Haswell"),
    (HostCpu("i686", "", "", frozenset({"pae"})), "i686", "i686"),  # the test driver: getInfo's model
    (HostCpu("x86_64", "GenuineIntel", "", frozenset()), "x86_64", "x86_64"),
    (HostCpu("ppc64le", "", "", frozenset()), "", "ppc64le"),  # no model at all: the arch
])
def test_describe_cpu(cpu: HostCpu, info_model: str, text: str) -> None:
    assert describe_cpu(cpu, info_model) == text

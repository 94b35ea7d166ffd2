"""Decoding a host's CPUID registers (vSphere's ``hardware.cpuFeature``) into vendor, family and flags."""

from __future__ import annotations

import pytest
from pyVmomi import vim

from corral.providers.vsphere.cpuid import CpuId, decode, register

INTEL = {"ebx": 0x756E6547, "edx": 0x49656E69, "ecx": 0x6C65746E}  # "Genu" "ineI" "ntel"
AMD = {"ebx": 0x68747541, "edx": 0x69746E65, "ecx": 0x444D4163}  # "Auth" "enti" "cAMD"


def bits(value: int) -> str:
    """A register as vSphere writes it: 32 binary digits in groups of four."""
    digits = f"{value:032b}"
    return ":".join(digits[i:i + 4] for i in range(0, 32, 4))


def leaf(level: int, **regs: int) -> vim.host.CpuIdInfo:
    signed = level - 2**32 if level >= 2**31 else level  # vSphere's level is a signed 32-bit field
    return vim.host.CpuIdInfo(level=signed, **{r: bits(regs.get(r, 0)) for r in ("eax", "ebx", "ecx", "edx")})


# The hardware.cpuFeature vcsim reports: captured from a VM on an Intel Xeon E5-1620 (Sandy Bridge-EP).
VCSIM = [
    vim.host.CpuIdInfo(level=0, eax="0000:0000:0000:0000:0000:0000:0000:1101",
                       ebx="0111:0101:0110:1110:0110:0101:0100:0111", ecx="0110:1100:0110:0101:0111:0100:0110:1110",
                       edx="0100:1001:0110:0101:0110:1110:0110:1001"),
    vim.host.CpuIdInfo(level=1, eax="0000:0000:0000:0010:0000:0110:1101:0111",
                       ebx="0000:0000:0000:0001:0000:1000:0000:0000", ecx="1001:0111:1011:1010:0010:0010:0010:1011",
                       edx="0000:1111:1010:1011:1111:1011:1111:1111"),
    vim.host.CpuIdInfo(level=-2147483648, eax="1000:0000:0000:0000:0000:0000:0000:1000",
                       ebx="0000:0000:0000:0000:0000:0000:0000:0000", ecx="0000:0000:0000:0000:0000:0000:0000:0000",
                       edx="0000:0000:0000:0000:0000:0000:0000:0000"),
    vim.host.CpuIdInfo(level=-2147483647, eax="0000:0000:0000:0000:0000:0000:0000:0000",
                       ebx="0000:0000:0000:0000:0000:0000:0000:0000", ecx="0000:0000:0000:0000:0000:0000:0000:0001",
                       edx="0010:1000:0001:0000:0000:1000:0000:0000"),
    vim.host.CpuIdInfo(level=-2147483640, eax="0000:0000:0000:0000:0011:0000:0010:1010",
                       ebx="0000:0000:0000:0000:0000:0000:0000:0000", ecx="0000:0000:0000:0000:0000:0000:0000:0000",
                       edx="0000:0000:0000:0000:0000:0000:0000:0000"),
]
# what Linux shows for it in /proc/cpuinfo, read off the bits (no leaf 7: no avx2, bmi, avx512)
VCSIM_FLAGS = {
    # leaf 1 EDX
    "fpu", "vme", "de", "pse", "tsc", "msr", "pae", "mce", "cx8", "apic", "sep", "mtrr", "pge", "mca", "cmov",
    "pat", "pse36", "clflush", "dts", "mmx", "fxsr", "sse", "sse2", "ss",
    # leaf 1 ECX (no fma, movbe, f16c or rdrand: those came after Sandy Bridge)
    "pni", "sse3", "pclmulqdq", "monitor", "vmx", "ssse3", "cx16", "pcid", "sse4_1", "sse4_2", "x2apic", "popcnt",
    "tsc_deadline_timer", "aes", "xsave", "avx", "hypervisor",
    # 0x80000001
    "syscall", "nx", "rdtscp", "lm", "lahf_lm",
}


def test_the_host_vcsim_reports() -> None:
    assert decode(VCSIM) == CpuId("GenuineIntel", 6, frozenset(VCSIM_FLAGS))


@pytest.mark.parametrize(("regs", "expected"), [
    (INTEL, "GenuineIntel"),
    (AMD, "AuthenticAMD"),
    ({"ebx": 0x6F677948, "edx": 0x6E65476E, "ecx": 0x656E6975}, "HygonGenuine"),
    ({}, ""),  # zeros: no vendor
    ({"ebx": 0x00FF0001, "edx": 0, "ecx": 0}, ""),  # not text
])
def test_vendor(regs: dict[str, int], expected: str) -> None:
    assert decode([leaf(0, eax=0xD, **regs)]).vendor == expected


@pytest.mark.parametrize(("eax", "expected"), [
    (0x000206D7, 6),  # Intel Xeon E5-1620 (Sandy Bridge-EP)
    (0x00050654, 6),  # Intel Xeon Scalable (Skylake-SP)
    (0x00000F29, 15),  # Intel Pentium 4 (Northwood): base family 15, extended 0
    (0x00100F91, 16),  # AMD Opteron 6100 (family 10h): 15 + 1
    (0x00830F10, 23),  # AMD EPYC 7002 (Zen 2, family 17h): 15 + 8
    (0x00A00F11, 25),  # AMD EPYC 7003 (Zen 3, family 19h): 15 + 10
    (0x00F00F00, 30),  # the extended family counts only with base family 15 ...
    (0x00F00600, 6),  # ... and not otherwise
])
def test_family(eax: int, expected: int) -> None:
    assert decode([leaf(0, **INTEL), leaf(1, eax=eax)]).family == expected


@pytest.mark.parametrize(("level", "register_name", "value", "expected"), [
    (1, "ecx", 1 << 0, {"pni", "sse3"}),
    (1, "ecx", 1 << 9 | 1 << 19 | 1 << 20 | 1 << 23, {"ssse3", "sse4_1", "sse4_2", "popcnt"}),
    (1, "ecx", 1 << 12 | 1 << 25 | 1 << 26 | 1 << 28, {"fma", "aes", "xsave", "avx"}),
    (1, "ecx", 1 << 27, set()),  # osxsave: Linux does not show it
    (1, "edx", 1 << 25 | 1 << 26, {"sse", "sse2"}),
    # Intel Xeon Scalable (Skylake-SP), leaf 7 EBX
    (7, "ebx", 0xD39FFFFB, {"fsgsbase", "tsc_adjust", "bmi1", "hle", "avx2", "smep", "bmi2", "erms", "invpcid",
                            "rtm", "cqm", "mpx", "rdt_a", "avx512f", "avx512dq", "rdseed", "adx", "smap",
                            "clflushopt", "clwb", "intel_pt", "avx512cd", "avx512bw", "avx512vl"}),
    (7, "ecx", 1 << 11 | 1 << 1, {"avx512_vnni", "avx512vbmi"}),
    (7, "edx", 1 << 10, {"md_clear"}),
    (0x80000001, "edx", 1 << 29 | 1 << 20 | 1 << 11, {"lm", "nx", "syscall"}),
    # AMD EPYC 7002 (Zen 2), leaf 0x80000001 ECX
    (0x80000001, "ecx", 0x75C237FF, {"lahf_lm", "cmp_legacy", "svm", "extapic", "cr8_legacy", "abm", "sse4a",
                                     "misalignsse", "3dnowprefetch", "osvw", "ibs", "skinit", "wdt", "tce",
                                     "topoext", "perfctr_core", "perfctr_nb", "bpext", "perfctr_llc", "mwaitx"}),
    (0x80000008, "ebx", 0xFFFFFFFF, set()),  # a leaf without named flags
])
def test_flags(level: int, register_name: str, value: int, expected: set[str]) -> None:
    assert decode([leaf(level, **{register_name: value})]).flags == expected


def test_nothing_reported_is_nothing_known() -> None:
    assert decode(None) == decode([]) == CpuId("", None, frozenset())
    assert decode([leaf(0x80000001, edx=1 << 29)]) == CpuId("", None, frozenset({"lm"}))


@pytest.mark.parametrize(("text", "value"), [
    ("0000:0000:0000:0000:0000:0000:0000:1101", 13),
    ("1000:0000:0000:0000:0000:0000:0000:0000", 0x80000000),
    ("00000000000000000000000000000001", 1),
    (None, 0),
])
def test_register(text: str | None, value: int) -> None:
    assert register(text) == value


@pytest.mark.parametrize("text", [
    "0000:0000",  # too short
    "0000:0000:0000:0000:0000:0000:0000:0000:0000",  # too long
    "xxxx:0000:0000:0000:0000:0000:0000:0000",  # a feature mask, not register bits
    "0000:0000:0000:0000:0000:0000:0000:2000",
])
def test_a_register_that_is_not_32_bits_is_named(text: str) -> None:
    with pytest.raises(ValueError, match=f"CPUID register '{text}' is not 32 binary digits"):
        register(text)
    with pytest.raises(ValueError, match="not 32 binary digits"):
        decode([vim.host.CpuIdInfo(level=1, eax=text)])

"""A host's CPU from its CPUID registers: vendor, family and feature flags.

vSphere reports what a host's CPU offers as ``hardware.cpuFeature``, a list of
``HostCpuIdInfo``: for each CPUID leaf (``level``) the four registers the instruction
returns, as strings of 32 binary digits in groups of four ("0000:0000:...:1101", most
significant bit first). Levels at and above 0x80000000 arrive as negative numbers (a signed
32-bit field).

The flags are named as Linux names them in /proc/cpuinfo (``pni`` for SSE3, ``lahf_lm``,
``sse4_2``, ...), which is how templates and the simulator name them; SSE3 is also reported
as ``sse3``, the name Intel's manuals use. Bits Linux does not show are left out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

EXTENDED = 0x80000000

# (leaf, register) -> {bit: flag}
FLAGS: dict[tuple[int, str], dict[int, str]] = {
    (1, "edx"): {
        0: "fpu", 1: "vme", 2: "de", 3: "pse", 4: "tsc", 5: "msr", 6: "pae", 7: "mce", 8: "cx8", 9: "apic",
        11: "sep", 12: "mtrr", 13: "pge", 14: "mca", 15: "cmov", 16: "pat", 17: "pse36", 18: "pn",
        19: "clflush", 21: "dts", 22: "acpi", 23: "mmx", 24: "fxsr", 25: "sse", 26: "sse2", 27: "ss",
        28: "ht", 29: "tm", 30: "ia64", 31: "pbe",
    },
    (1, "ecx"): {
        0: "pni", 1: "pclmulqdq", 2: "dtes64", 3: "monitor", 4: "ds_cpl", 5: "vmx", 6: "smx", 7: "est",
        8: "tm2", 9: "ssse3", 10: "cid", 11: "sdbg", 12: "fma", 13: "cx16", 14: "xtpr", 15: "pdcm",
        17: "pcid", 18: "dca", 19: "sse4_1", 20: "sse4_2", 21: "x2apic", 22: "movbe", 23: "popcnt",
        24: "tsc_deadline_timer", 25: "aes", 26: "xsave", 28: "avx", 29: "f16c", 30: "rdrand",
        31: "hypervisor",
    },
    (7, "ebx"): {
        0: "fsgsbase", 1: "tsc_adjust", 2: "sgx", 3: "bmi1", 4: "hle", 5: "avx2", 7: "smep", 8: "bmi2",
        9: "erms", 10: "invpcid", 11: "rtm", 12: "cqm", 14: "mpx", 15: "rdt_a", 16: "avx512f",
        17: "avx512dq", 18: "rdseed", 19: "adx", 20: "smap", 21: "avx512ifma", 23: "clflushopt",
        24: "clwb", 25: "intel_pt", 26: "avx512pf", 27: "avx512er", 28: "avx512cd", 29: "sha_ni",
        30: "avx512bw", 31: "avx512vl",
    },
    (7, "ecx"): {
        1: "avx512vbmi", 2: "umip", 3: "pku", 4: "ospke", 5: "waitpkg", 6: "avx512_vbmi2", 8: "gfni",
        9: "vaes", 10: "vpclmulqdq", 11: "avx512_vnni", 12: "avx512_bitalg", 13: "tme",
        14: "avx512_vpopcntdq", 16: "la57", 22: "rdpid", 24: "bus_lock_detect", 25: "cldemote",
        27: "movdiri", 28: "movdir64b", 29: "enqcmd", 30: "sgx_lc",
    },
    (7, "edx"): {
        2: "avx512_4vnniw", 3: "avx512_4fmaps", 4: "fsrm", 8: "avx512_vp2intersect", 10: "md_clear",
        14: "serialize", 16: "tsxldtrk", 18: "pconfig", 19: "arch_lbr", 20: "ibt", 22: "amx_bf16",
        23: "avx512_fp16", 24: "amx_tile", 25: "amx_int8", 28: "flush_l1d", 29: "arch_capabilities",
    },
    (EXTENDED + 1, "edx"): {
        11: "syscall", 19: "mp", 20: "nx", 22: "mmxext", 25: "fxsr_opt", 26: "pdpe1gb", 27: "rdtscp",
        29: "lm", 30: "3dnowext", 31: "3dnow",
    },
    (EXTENDED + 1, "ecx"): {
        0: "lahf_lm", 1: "cmp_legacy", 2: "svm", 3: "extapic", 4: "cr8_legacy", 5: "abm", 6: "sse4a",
        7: "misalignsse", 8: "3dnowprefetch", 9: "osvw", 10: "ibs", 11: "xop", 12: "skinit", 13: "wdt",
        15: "lwp", 16: "fma4", 17: "tce", 19: "nodeid_msr", 21: "tbm", 22: "topoext", 23: "perfctr_core",
        24: "perfctr_nb", 26: "bpext", 27: "ptsc", 28: "perfctr_llc", 29: "mwaitx",
    },
}
ALIASES = {"pni": "sse3"}  # flags also reported under another common name
REGISTERS = ("eax", "ebx", "ecx", "edx")


@dataclass(frozen=True, slots=True)
class CpuId:
    """What the registers say; empty fields where they say nothing."""

    vendor: str = ""  # "GenuineIntel", "AuthenticAMD", ...
    family: int | None = None
    flags: frozenset[str] = frozenset()


NOTHING = CpuId()


def register(text: str | None) -> int:
    """The value of one register as vSphere writes it ("0000:...:1101"); 0 when absent."""
    if text is None:
        return 0
    digits = text.replace(":", "")
    if len(digits) != 32 or digits.strip("01"):
        raise ValueError(f"CPUID register {text!r} is not 32 binary digits")
    return int(digits, 2)


def registers(leaves: Iterable[Any]) -> dict[int, dict[str, int]]:
    """The registers by leaf (0..0xFFFFFFFF) of ``HostCpuIdInfo``-like objects (``level``,
    ``eax`` ... ``edx``). A leaf listed twice keeps its last values."""
    out: dict[int, dict[str, int]] = {}
    for leaf in leaves:
        level = getattr(leaf, "level", None)
        if not isinstance(level, int):
            raise ValueError(f"CPUID leaf without a level: {leaf!r}")
        out[level & 0xFFFFFFFF] = {name: register(getattr(leaf, name, None)) for name in REGISTERS}
    return out


def vendor(regs: dict[int, dict[str, int]]) -> str:
    """The vendor string of leaf 0 (EBX, EDX, ECX, four ASCII characters each, low byte first)."""
    leaf = regs.get(0)
    if leaf is None:
        return ""
    raw = b"".join(leaf[r].to_bytes(4, "little") for r in ("ebx", "edx", "ecx"))
    text = raw.decode("ascii", errors="replace")
    return text if text.isprintable() and text.strip() else ""


def family(regs: dict[int, dict[str, int]]) -> int | None:
    """The family of leaf 1's EAX: the base family, plus the extended family when the base is 15."""
    leaf = regs.get(1)
    if leaf is None:
        return None
    eax = leaf["eax"]
    base = (eax >> 8) & 0xF
    return base + ((eax >> 20) & 0xFF) if base == 0xF else base


def flags(regs: dict[int, dict[str, int]]) -> frozenset[str]:
    """The named feature bits that are set."""
    out: set[str] = set()
    for (level, name), bits in FLAGS.items():
        leaf = regs.get(level)
        if leaf is None:
            continue
        value = leaf[name]
        out.update(flag for bit, flag in bits.items() if value >> bit & 1)
    out.update(alias for flag, alias in ALIASES.items() if flag in out)
    return frozenset(out)


def decode(leaves: Iterable[Any] | None) -> CpuId:
    """Vendor, family and flags of a host's ``hardware.cpuFeature`` (nothing for None).

    Raises ValueError naming a register or leaf that cannot be read.
    """
    if not leaves:
        return NOTHING
    regs = registers(leaves)
    return CpuId(vendor(regs), family(regs), flags(regs))

"""What placement speaks: a VM's demand, a host's load, a request and its placement."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from corral.domain.models import HostInfo, TemplateInfo


@dataclass(frozen=True, slots=True)
class CpuNeed:
    """The CPU a VM needs from its host. Empty fields ask for nothing.

    ``model`` is a model word (vmpooler's rule: the fifth word of the host's CPU description,
    such as ``v4`` in "Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz").
    """

    vendor: str = ""
    family: int | None = None
    flags: frozenset[str] = frozenset()
    model: str = ""

    @classmethod
    def of(cls, template: TemplateInfo) -> CpuNeed:
        return cls(template.cpu_vendor, template.cpu_family, template.cpu_flags, template.cpu_model)

    @classmethod
    def to_stay_on(cls, host: HostInfo, template: CpuNeed) -> CpuNeed:
        """What a running VM needs to move live from ``host``: the template's needs, the same
        vendor, and, where the host reports no flags, the same model word (vmpooler's rule)."""
        vendor = template.vendor or host.cpu_vendor
        model = template.model
        if not host.cpu_flags and not model:
            model = model_word(host.cpu_model)
        return cls(vendor, template.family, template.flags, model)

    def describe(self) -> str:
        parts = [p for p in (self.vendor, f"family {self.family}" if self.family is not None else "",
                             f"model {self.model}" if self.model else "",
                             "flags " + ",".join(sorted(self.flags)) if self.flags else "") if p]
        return " ".join(parts) or "any CPU"


def model_word(description: str) -> str:
    """The model word of a CPU description (its fifth word), or "" when it has fewer words."""
    words = description.split()
    return words[4] if len(words) > 4 else ""


@dataclass(frozen=True, slots=True)
class Demand:
    """What one VM asks of a host.

    ``pool`` matters only with ``max_per_host`` (anti-affinity). ``cluster`` is the pool's
    ``clone_target``; None allows every cluster.
    """

    cpus: int = 1
    memory_mb: int = 1024
    cpu: CpuNeed = CpuNeed()
    pool: str = ""
    cluster: str | None = None
    max_per_host: int | None = None

    @classmethod
    def of(cls, template: TemplateInfo, *, pool: str = "", cluster: str | None = None,
           max_per_host: int | None = None) -> Demand:
        # the pool name only matters to anti-affinity; without it, pools whose VMs ask the same
        # share one demand, so a bulk placement scores the hosts once for all of them
        return cls(template.cpus, template.memory_mb, CpuNeed.of(template), pool if max_per_host is not None else "",
                   cluster, max_per_host)

    def describe(self) -> str:
        return f"{self.cpus} vCPU, {self.memory_mb} MB, {self.cpu.describe()}"


@dataclass(frozen=True, slots=True)
class Request:
    """One VM to place. ``exclude`` names hosts it must not go to (tried already, or its own)."""

    name: str
    demand: Demand
    exclude: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True, init=False)
class Rejection:
    """Why a host cannot take a VM: the kind of problem (the filter's name, ``excluded`` or a
    short phrase such as ``in maintenance``) and what is wrong, empty when the kind says it all.

    ``str()`` gives the one-line reason, "kind: detail" or the kind alone.
    """

    kind: str
    detail: str

    def __init__(self, kind: str, detail: str = "") -> None:
        # filters make one for every host they reject, so it is set through the slots directly,
        # in about half the time of the __init__ a frozen dataclass generates
        _set_kind(self, kind)
        _set_detail(self, detail)

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}" if self.detail else self.kind


_set_kind: Callable[[Rejection, str], None] = Rejection.__dict__["kind"].__set__
_set_detail: Callable[[Rejection, str], None] = Rejection.__dict__["detail"].__set__


EXCLUDED = Rejection("excluded", "tried already or the VM's own host")
NO_ROOM = Rejection("no room")  # the fallback for a host left out although no filter rejects it


@dataclass(slots=True)
class Placement:
    """Where a request goes: ``host``, or None with the reason each host was rejected."""

    request: Request
    host: str | None
    rejected: Mapping[str, Rejection] | None = None  # host -> reason, when no host took it

    @property
    def ok(self) -> bool:
        return self.host is not None

    def why(self, limit: int = 3) -> str:
        """One line naming why no host could take the VM, hosts grouped by reason.

        For example: "no host can take a VM of 2 vCPU, 4096 MB, any CPU (4 hosts rejected):
        in maintenance x1 (h3); memory x3 (h1: 1024 MB free, needs 4096 MB; h2: ...; h4: ...)".
        """
        if self.host is not None:
            return f"placed on {self.host}"
        what = f"no host can take a VM of {self.request.demand.describe()}"
        if not self.rejected:
            return f"{what}: no hosts are up"
        groups: dict[str, list[str]] = {}
        for host, reason in sorted(self.rejected.items()):
            groups.setdefault(reason.kind, []).append(f"{host}: {reason.detail}" if reason.detail else host)
        parts = []
        for kind, hosts in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):
            more = f"; and {len(hosts) - limit} more" if len(hosts) > limit else ""
            parts.append(f"{kind} x{len(hosts)} ({'; '.join(hosts[:limit])}{more})")
        count = len(self.rejected)
        return f"{what} ({count} host{'' if count == 1 else 's'} rejected): " + "; ".join(parts)


# The fields of a HostLoad that filter and weight expressions may use.
LOAD_FIELDS = ("cpu_used", "cpu_cap", "vcpu_mhz", "mem_used", "mem_alloc", "mem_cap", "vm_count", "pools")


class HostLoad:
    """A host's load as placement sees it: reported use plus what placements reserved on it.

    CPU in MHz, memory in MB. ``vcpu_mhz`` is what one vCPU of a new VM is expected to use
    on this host (its core speed times the configured ``vcpu_load``).
    """

    __slots__ = ("info", "name", "index", "cpu_used", "cpu_cap", "vcpu_mhz", "mem_used", "mem_alloc",
                 "mem_cap", "vm_count", "pools")

    def __init__(self, info: HostInfo, index: int, vcpu_load: float) -> None:
        self.info = info
        self.name = info.name
        self.index = index  # the deterministic tie-break: hosts in name order
        self.cpu_used = float(info.cpu_used_mhz)
        self.cpu_cap = float(info.cores * info.mhz) or 1.0
        self.vcpu_mhz = info.mhz * vcpu_load
        self.mem_used = float(info.memory_used_mb)
        alloc = info.memory_allocated_mb
        self.mem_alloc = float(info.memory_used_mb if alloc is None else alloc)
        self.mem_cap = float(info.memory_mb) or 1.0
        self.vm_count = info.vm_count
        self.pools: dict[str, int] = {}  # VMs per pool, for the pools that limit VMs per host

    def add(self, demand: Demand, sign: int = 1) -> None:
        """Count (or with ``sign=-1`` uncount) one VM of ``demand`` on this host."""
        self.cpu_used += sign * demand.cpus * self.vcpu_mhz
        self.mem_used += sign * demand.memory_mb
        self.mem_alloc += sign * demand.memory_mb
        self.vm_count += sign
        if demand.max_per_host is not None:
            self.pools[demand.pool] = self.pools.get(demand.pool, 0) + sign

    def add_cpu(self, demand: Demand) -> None:
        """Count only the CPU one VM of ``demand`` is expected to use (the rest is counted already)."""
        self.cpu_used += demand.cpus * self.vcpu_mhz

    @staticmethod
    def add_source(demand: Demand) -> tuple[list[str], set[str]]:
        """Python lines doing what ``load.add(demand)`` does to a HostLoad named ``load``, and
        the fields they leave in locals of their names (for a fused placement step)."""
        lines = ["    vcpu_mhz = load.vcpu_mhz",
                 f"    load.cpu_used = cpu_used = load.cpu_used + {demand.cpus!r} * vcpu_mhz",
                 f"    load.mem_used = mem_used = load.mem_used + {demand.memory_mb!r}",
                 f"    load.mem_alloc = mem_alloc = load.mem_alloc + {demand.memory_mb!r}",
                 "    load.vm_count = vm_count = load.vm_count + 1"]
        bound = {"vcpu_mhz", "cpu_used", "mem_used", "mem_alloc", "vm_count"}
        if demand.max_per_host is not None:
            lines += ["    pools = load.pools",
                      f"    pools[{demand.pool!r}] = pools.get({demand.pool!r}, 0) + 1"]
            bound.add("pools")
        return lines, bound

    @property
    def cpu_percent(self) -> float:
        return 100.0 * self.cpu_used / self.cpu_cap

    @property
    def memory_percent(self) -> float:
        return 100.0 * self.mem_used / self.mem_cap

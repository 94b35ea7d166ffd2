"""The simulator's settings: hosts, templates, latencies, failure rates, persistence.

Every model allows unknown keys (``extra="allow"``): vmpooler configurations carry keys
the simulator does not use, and the config layer reports them as warnings.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field, ValidationInfo, field_validator

from corral.domain.settings_model import SettingsModel

Seconds = Annotated[float, Field(ge=0)]
Probability = Annotated[float, Field(ge=0, le=1)]

#: What a simulated host's CPU is unless told otherwise: a description whose fifth word is the
#: model word vmpooler matches templates against ("v4"), and a small set of x86 feature flags.
DEFAULT_CPU_MODEL = "Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz"
DEFAULT_CPU_FLAGS = ("sse4_2", "avx", "avx2", "aes")


class SimHostSettings(SettingsModel):
    """One simulated host. ``name`` is needed only in an explicit ``hosts`` list."""

    name: str = ""
    cluster: str = ""  # empty: ``sim-cluster-NN``, filled ``hosts_per_cluster`` hosts at a time
    cpu_model: str = DEFAULT_CPU_MODEL  # the CPU's description, as vSphere's cpuPkg[0].description
    cpu_vendor: str = "GenuineIntel"
    cpu_family: int | None = 6
    cpu_flags: list[str] = Field(default_factory=lambda: list(DEFAULT_CPU_FLAGS))
    cores: int = Field(32, ge=1)
    mhz: int = Field(2600, ge=1)
    memory_mb: int = Field(262144, ge=1)


class SimHostOverride(SettingsModel):
    """Per-host changes to the host defaults; only the keys given are changed."""

    cluster: str | None = None
    cpu_model: str | None = None
    cpu_vendor: str | None = None
    cpu_family: int | None = None
    cpu_flags: list[str] | None = None
    cores: int | None = Field(None, ge=1)
    mhz: int | None = Field(None, ge=1)
    memory_mb: int | None = Field(None, ge=1)


class SimTemplate(SettingsModel):
    """What a VM cloned from a template costs its host, and what it asks of the host's CPU.

    The CPU keys are requirements for placement (empty: any host); the simulator reports them
    through ``template_info`` but does not enforce them itself.
    """

    cpus: int = Field(2, ge=1)
    memory_mb: int = Field(4096, ge=1)
    cpu_vendor: str = ""  # e.g. "GenuineIntel"
    cpu_family: int | None = None
    cpu_flags: list[str] = Field(default_factory=list)  # every one must be offered by the host
    cpu_model: str = ""  # a model word: the fifth word of the host's CPU description, e.g. "v4"


class SimLatency(SettingsModel):
    """How long each operation takes, in seconds, before ``time_scale`` and jitter."""

    create_call: Seconds = 0.5  # fixed cost of one create_vms call
    create_per_vm: Seconds = 2.0  # one clone; a host runs ``host_clone_slots`` clones side by side
    start_call: Seconds = 0.5  # fixed cost of one start_vms call (an HA restart)
    start_per_vm: Seconds = 0.5  # one start; a host runs ``host_clone_slots`` of them side by side
    boot: Seconds = 10.0  # from create (or power on) until the guest is ready
    destroy: Seconds = 1.0
    migrate: Seconds = 5.0
    power: Seconds = 0.5
    disk: Seconds = 1.0  # attach one new disk
    snapshot: Seconds = 2.0  # take a snapshot
    revert: Seconds = 3.0  # return to a snapshot


class SimFailureRates(SettingsModel):
    """Probability that one VM's create, destroy, boot, migration, disk, snapshot or revert fails."""

    create: Probability = 0.0
    destroy: Probability = 0.0
    boot: Probability = 0.0  # the guest never becomes ready
    migrate: Probability = 0.0
    disk: Probability = 0.0
    snapshot: Probability = 0.0
    revert: Probability = 0.0


def _with_changes(base: SimHostSettings, changes: BaseModel) -> SimHostSettings:
    """``base`` with the host fields that ``changes`` sets explicitly (and not to None)."""
    update = {
        key: getattr(changes, key)
        for key in changes.model_fields_set & SimHostSettings.model_fields.keys()
        if getattr(changes, key) is not None
    }
    return base.model_copy(update=update)


def _host_names(hosts: int | list[SimHostSettings]) -> list[str]:
    if isinstance(hosts, int):
        return [f"sim-host-{i:02d}" for i in range(1, hosts + 1)]
    return [host.name for host in hosts]


class SimSettings(SettingsModel):
    """Everything the simulator can be told; see the package docstring."""

    time_scale: float = Field(1.0, gt=0)
    hosts: Annotated[int, Field(ge=1)] | list[SimHostSettings] = 4
    hosts_per_cluster: int = Field(32, ge=1)
    host_defaults: SimHostSettings = Field(default_factory=SimHostSettings)
    host_overrides: dict[str, SimHostOverride] = Field(default_factory=dict)
    templates: dict[str, SimTemplate] = Field(default_factory=dict)
    template_defaults: SimTemplate = Field(default_factory=SimTemplate)
    strict_templates: bool = False
    latency: SimLatency = Field(default_factory=SimLatency)
    jitter: Probability = 0.0
    failure_rates: SimFailureRates = Field(default_factory=SimFailureRates)
    concurrency: int = Field(8, ge=1)
    bulk_calls: bool = True  # what the provider reports: many VMs per create/start call is one call
    host_clone_slots: int = Field(8, ge=1)
    vm_cpu_load: float = Field(0.25, ge=0)
    state_file: str | None = None
    seed: int | None = None

    @field_validator("hosts")
    @classmethod
    def _hosts_named_once(cls, hosts: int | list[SimHostSettings]) -> Any:
        if isinstance(hosts, int):
            return hosts
        if not hosts:
            raise ValueError("must list at least one host")
        names = [host.name for host in hosts]
        if "" in names:
            raise ValueError("every host in an explicit list needs a name")
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"host names must be unique, repeated: {', '.join(repeated)}")
        return hosts

    @field_validator("host_overrides")
    @classmethod
    def _overrides_name_known_hosts(
        cls, overrides: dict[str, SimHostOverride], info: ValidationInfo
    ) -> dict[str, SimHostOverride]:
        if "hosts" not in info.data:
            return overrides  # hosts itself was invalid; that error is reported already
        known = _host_names(info.data["hosts"])
        unknown = sorted(set(overrides) - set(known))
        if unknown:
            raise ValueError(
                f"override for unknown host {', '.join(map(repr, unknown))} "
                f"(hosts: {', '.join(known)})"
            )
        return overrides

    def host_settings(self) -> list[SimHostSettings]:
        """Every host, with the defaults, its list entry and its override applied, in order."""
        if isinstance(self.hosts, int):
            hosts = [self.host_defaults.model_copy(update={"name": name}) for name in _host_names(self.hosts)]
        else:
            hosts = [_with_changes(self.host_defaults, entry) for entry in self.hosts]
        hosts = [
            _with_changes(host, self.host_overrides[host.name]) if host.name in self.host_overrides else host
            for host in hosts
        ]
        return [
            host if host.cluster
            else host.model_copy(update={"cluster": f"sim-cluster-{i // self.hosts_per_cluster + 1:02d}"})
            for i, host in enumerate(hosts)
        ]

    def template(self, name: str) -> SimTemplate | None:
        """The sizing of template ``name``; None when it is unknown and templates are strict."""
        if name in self.templates:
            return self.templates[name]
        return None if self.strict_templates else self.template_defaults

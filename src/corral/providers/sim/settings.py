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

    name: str = Field("", description="the host's name (needed in a `hosts` list)")
    cluster: str = Field("", description="the host's cluster; empty: `sim-cluster-01`, `-02`… "
                         "`hosts_per_cluster` hosts at a time")
    cpu_model: str = Field(DEFAULT_CPU_MODEL, description="the CPU's description (as vSphere's); its fifth word is "
                           "the model word templates are matched against")
    cpu_vendor: str = Field("GenuineIntel", description="the CPU's vendor")
    cpu_family: int | None = Field(6, description="the CPU's family")
    cpu_flags: list[str] = Field(default_factory=lambda: list(DEFAULT_CPU_FLAGS), description="the CPU's feature "
                                 "flags")
    cores: int = Field(32, ge=1, description="CPU cores")
    mhz: int = Field(2600, ge=1, description="MHz of one core")
    memory_mb: int = Field(262144, ge=1, description="memory, in MB")


class SimHostOverride(SettingsModel):
    """Per-host changes to the host defaults; only the keys given are changed."""

    cluster: str | None = Field(None, description="as in `host_defaults`, for this host")
    cpu_model: str | None = Field(None, description="as in `host_defaults`, for this host")
    cpu_vendor: str | None = Field(None, description="as in `host_defaults`, for this host")
    cpu_family: int | None = Field(None, description="as in `host_defaults`, for this host")
    cpu_flags: list[str] | None = Field(None, description="as in `host_defaults`, for this host")
    cores: int | None = Field(None, ge=1, description="as in `host_defaults`, for this host")
    mhz: int | None = Field(None, ge=1, description="as in `host_defaults`, for this host")
    memory_mb: int | None = Field(None, ge=1, description="as in `host_defaults`, for this host")


class SimTemplate(SettingsModel):
    """What a VM cloned from a template costs its host, and what it asks of the host's CPU.

    The CPU keys are requirements for placement (empty: any host); the simulator reports them
    through ``template_info`` but does not enforce them itself.
    """

    cpus: int = Field(2, ge=1, description="vCPUs of a VM cloned from the template")
    memory_mb: int = Field(4096, ge=1, description="memory of such a VM, in MB")
    cpu_vendor: str = Field("", description="the CPU vendor a host must have (e.g. `GenuineIntel`); empty: any")
    cpu_family: int | None = Field(None, description="the CPU family a host must have; none: any")
    cpu_flags: list[str] = Field(default_factory=list, description="CPU flags a host must offer, every one")
    cpu_model: str = Field("", description="a model word (the fifth word of a host's CPU description, e.g. `v4`) "
                           "a host must have; empty: any")


class SimLatency(SettingsModel):
    """How long each operation takes, in seconds, before ``time_scale`` and jitter."""

    create_call: Seconds = Field(0.5, description="seconds one bulk create call costs")
    create_per_vm: Seconds = Field(2.0, description="seconds one clone takes; a host runs `host_clone_slots` clones "
                                   "of one call side by side")
    start_call: Seconds = Field(0.5, description="seconds one bulk start call costs (restarting VMs of a failed "
                                "host on another, as HA does)")
    start_per_vm: Seconds = Field(0.5, description="seconds one VM's start takes; a host runs `host_clone_slots` "
                                  "starts of one call side by side")
    boot: Seconds = Field(10.0, description="seconds from create or power-on until the guest is up")
    destroy: Seconds = Field(1.0, description="seconds one destroy takes")
    migrate: Seconds = Field(5.0, description="seconds one migration takes")
    power: Seconds = Field(0.5, description="seconds one power operation takes")
    disk: Seconds = Field(1.0, description="seconds attaching one new disk takes")
    snapshot: Seconds = Field(2.0, description="seconds taking a snapshot takes")
    revert: Seconds = Field(3.0, description="seconds returning to a snapshot takes")


class SimFailureRates(SettingsModel):
    """Probability that one VM's create, destroy, boot, migration, disk, snapshot or revert fails."""

    create: Probability = Field(0.0, description="probability that one VM's create fails")
    destroy: Probability = Field(0.0, description="probability that one VM's destroy fails")
    boot: Probability = Field(0.0, description="probability that one VM's guest never becomes ready")
    migrate: Probability = Field(0.0, description="probability that one VM's migration fails")
    disk: Probability = Field(0.0, description="probability that adding a disk fails")
    snapshot: Probability = Field(0.0, description="probability that taking a snapshot fails")
    revert: Probability = Field(0.0, description="probability that reverting to a snapshot fails")


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

    corral_only = True

    time_scale: float = Field(1.0, gt=0, description="every latency is multiplied by it; `0.01` makes a 10 s boot "
                              "take 0.1 s")
    hosts: Annotated[int, Field(ge=1)] | list[SimHostSettings] = Field(
        4, description="a count (hosts named `sim-host-01`…, each as `host_defaults`) or a list of hosts, each with "
        "a `name` and any key of `host_defaults`")
    hosts_per_cluster: int = Field(32, ge=1, description="hosts without a `cluster` are put in `sim-cluster-01`, "
                                   "`-02`… this many at a time")
    host_defaults: SimHostSettings = Field(default_factory=SimHostSettings, description="what every host is unless "
                                           "its list entry or override says otherwise")
    host_overrides: dict[str, SimHostOverride] = Field(default_factory=dict, description="per host name: any of "
                                                       "the `host_defaults` keys; the host must exist")
    templates: dict[str, SimTemplate] = Field(
        default_factory=dict, description="per template name: what a VM cloned from it costs its host, and what it "
        "asks of the host's CPU for placement. The simulator reports the CPU needs to the scheduler but does not "
        "refuse an incompatible host itself")
    template_defaults: SimTemplate = Field(default_factory=SimTemplate, description="sizing (and CPU needs) of "
                                           "templates not listed")
    strict_templates: bool = Field(False, description="when true, cloning an unlisted template fails")
    latency: SimLatency = Field(default_factory=SimLatency, description="how long each operation takes")
    jitter: Probability = Field(0.0, description="each latency is multiplied by a random factor in `1 ± jitter`")
    failure_rates: SimFailureRates = Field(default_factory=SimFailureRates, description="probability that one VM's "
                                           "operation fails")
    concurrency: int = Field(8, ge=1, description="provider calls in flight at once, like one endpoint session's "
                             "limit")
    bulk_calls: bool = Field(True, description="whether the simulated endpoint creates and starts many VMs in one "
                             "call; when false, the central runner sends one VM per call, concurrently (the "
                             "simulator itself accepts either)")
    host_clone_slots: int = Field(8, ge=1, description="clones one host runs at once within a create call; also the "
                                  "starts it runs at once within a start call")
    vm_cpu_load: float = Field(0.25, ge=0, description="share of its vCPUs' MHz a running VM uses on its host")
    state_file: str | None = Field(None, description="an sqlite file the simulated VMs persist in, so they survive "
                                   "a restart of corral")
    seed: int | None = Field(None, description="seed of the random numbers (jitter, failure rates)")

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

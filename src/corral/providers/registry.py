"""The providers corral can run, by the class name a ``:providers:`` entry gives
(``provider_class``, else the entry's name).

Each :class:`ProviderClass` has its settings model (the keys of an entry beside
``provider_class``) and a factory that builds the provider from its name, its settings and a
:class:`ProviderContext` (what it reads of the rest of the configuration, as plain values).
The configuration loader checks entries, and the runtime builds providers, by looping over
:data:`PROVIDERS`: adding a provider is one entry here plus its package.

A class may have other names (vmpooler's ``dummy`` is the simulator), each with the keys of
vmpooler's own provider of that name that corral accepts without a word. :data:`PLANNED` are
classes a file may name but this version of corral cannot run (none today).

A factory whose provider needs a package that is not installed raises
:class:`ProviderUnavailable` (the runtime reports it as a configuration problem); a class's
settings never need that package, so a configuration is checked without it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from corral.domain.settings_model import SettingsModel
from corral.providers.base import Provider
from corral.providers.sim import SimProvider, SimSettings

__all__ = [
    "DUMMY_KEYS",
    "LIBVIRT_MISSING",
    "PLANNED",
    "PROVIDERS",
    "VMPOOLER_PROVIDER_KEYS",
    "ProviderAlias",
    "ProviderClass",
    "ProviderContext",
    "ProviderFactory",
    "ProviderUnavailable",
    "class_names",
    "find_class",
]


@dataclass(frozen=True)
class ProviderContext:
    """What a provider's factory reads of the configuration beyond its own entry.

    ``pools``: the keys of each pool that uses the provider, defaults filled in (as
    ``:pools:`` gives them: ``name``, ``template``, ``folder``, ``datastore`` …);
    ``config``: the keys of the ``:config:`` section, defaults filled in;
    ``dns_domains``: the domain of each ``:dns_configs:`` entry, by entry name.
    """

    pools: tuple[Mapping[str, Any], ...] = ()
    config: Mapping[str, Any] = field(default_factory=dict)
    dns_domains: Mapping[str, str | None] = field(default_factory=dict)


#: Builds a provider from its name, its settings (an instance of its class's model) and its context.
ProviderFactory = Callable[[str, Any, ProviderContext], Provider]


@dataclass(frozen=True)
class ProviderAlias:
    """Another name of a provider class; ``label`` names such an entry in messages, ``quiet``
    are keys of vmpooler's provider of that name that corral accepts and ignores."""

    name: str
    label: str
    quiet: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ProviderClass:
    """One kind of provider. ``label`` names an entry of the class in messages; ``settings``
    gives its settings model (a function, so that a heavy package is imported only when a
    configuration uses it)."""

    name: str
    label: str
    settings: Callable[[], type[SettingsModel]]
    build: ProviderFactory
    aliases: tuple[ProviderAlias, ...] = ()
    reads_pools: bool = True  # built with its pools' keys (``ProviderContext.pools``): rebuilt when they change

    def settings_of(self, entry: Mapping[str, Any]) -> BaseModel:
        """The settings of one ``:providers:`` entry; ``provider_class`` is passed on only to a
        model that declares it. Raises ``pydantic.ValidationError``."""
        model = self.settings()
        keys = dict(entry) if "provider_class" in model.model_fields else \
            {k: v for k, v in entry.items() if k != "provider_class"}
        return model.model_validate(keys)


# -- the simulator ---------------------------------------------------------------------------

#: vmpooler's keys of every provider, and those of its dummy provider (which corral runs as the
#: simulator): accepted without a word in a ``provider_class: dummy`` entry.
VMPOOLER_PROVIDER_KEYS = frozenset({
    "purge_unconfigured_resources", "purge_unconfigured_folders", "resources_allowlist", "folder_whitelist",
    "connection_pool_size", "connection_pool_timeout", "skip_dns_check_before_creating_vm",
})
DUMMY_KEYS = VMPOOLER_PROVIDER_KEYS | frozenset({
    "filename", "is_ready_timeout", "getvm_poweroff_percent", "getvm_rename_percent", "vmready_fail_percent",
    *(f"{op}_{what}" for op in ("createvm", "migratevm", "destroyvm", "createdisk", "createsnapshot",
                                "revertsnapshot") for what in ("max_time", "fail_percent")),
    "migratevm_couldmove_percent", "destroyvm_max_shutdown_time",
})


def _sim_settings() -> type[SettingsModel]:
    return SimSettings


def _build_sim(name: str, settings: SimSettings, context: ProviderContext) -> Provider:
    return SimProvider(name, settings)


# -- vSphere ---------------------------------------------------------------------------------
# The vSphere package imports pyvmomi (a quarter of a second): it is imported when a
# configuration names a vSphere provider, not when corral starts.


def _vsphere_settings() -> type[SettingsModel]:
    from corral.providers.vsphere.settings import VsphereSettings

    return VsphereSettings


def _build_vsphere(name: str, settings: Any, context: ProviderContext) -> Provider:
    """A vSphere provider with the vSphere keys of the pools that use it and ``:config:``'s defaults."""
    from corral.providers.probe import ReadyCheck
    from corral.providers.vsphere import VsphereProvider, vsphere_pools

    g = context.config
    pools = vsphere_pools(context.pools, settings, create_linked_clones=g["create_linked_clones"],
                          global_domain=g["domain"], dns_domains=context.dns_domains)
    return VsphereProvider(
        name,
        settings,
        pools,
        create_folders=g["create_folders"],
        create_template_delta_disks=g["create_template_delta_disks"],
        purge=g["purge_unconfigured_resources"] or g["purge_unconfigured_folders"],
        ready=ReadyCheck(g["ready_check_port"], g["ready_check_timeout"], g["ready_check_address"]),
    )


# -- libvirt ---------------------------------------------------------------------------------
# The provider needs libvirt-python, an optional extra compiled against libvirt's C library; the
# settings do not, so `corral config check` reads a libvirt entry without it.

#: What a libvirt configuration is told when libvirt-python is not installed.
LIBVIRT_MISSING = ("the libvirt provider needs libvirt-python: pip install 'corral[libvirt]' "
                   "(and Debian's libvirt-dev to build it)")


class ProviderUnavailable(Exception):
    """A provider class cannot run here: a package it needs is missing; the message says which
    and how to install it."""


def _libvirt_settings() -> type[SettingsModel]:
    from corral.providers.libvirt.settings import LibvirtSettings

    return LibvirtSettings


def _import_libvirt() -> None:
    """Raise :class:`ProviderUnavailable` when libvirt-python cannot be imported."""
    try:
        import libvirt  # noqa: F401
    except ModuleNotFoundError as exc:
        if exc.name != "libvirt":
            raise
        raise ProviderUnavailable(LIBVIRT_MISSING) from None
    except ImportError as exc:  # installed, but its C library cannot be loaded
        raise ProviderUnavailable(f"the libvirt provider cannot load libvirt-python: {exc}") from None


def _build_libvirt(name: str, settings: Any, context: ProviderContext) -> Provider:
    """A libvirt provider with the pools that use it, ``:config:``'s defaults under the entry's own."""
    _import_libvirt()
    from corral.providers.libvirt.provider import LibvirtProvider
    from corral.providers.libvirt.settings import libvirt_pools
    from corral.providers.probe import ReadyCheck, resolve_ready_check

    g = context.config
    pools = libvirt_pools(context.pools, settings, create_linked_clones=g["create_linked_clones"],
                          global_domain=g["domain"], dns_domains=context.dns_domains)
    ready = resolve_ready_check(ReadyCheck(g["ready_check_port"], g["ready_check_timeout"], g["ready_check_address"]),
                                port=settings.ready_check_port, timeout=settings.ready_check_timeout,
                                address=settings.ready_check_address)
    return LibvirtProvider(name, settings, pools, ready=ready)


# -- the registry ----------------------------------------------------------------------------

#: Every provider class corral can run, by name.
PROVIDERS: dict[str, ProviderClass] = {
    "sim": ProviderClass("sim", "a simulator provider", _sim_settings, _build_sim,
                         aliases=(ProviderAlias("dummy", "a dummy provider", DUMMY_KEYS),), reads_pools=False),
    "vsphere": ProviderClass("vsphere", "a vSphere provider", _vsphere_settings, _build_vsphere),
    "libvirt": ProviderClass("libvirt", "a libvirt provider", _libvirt_settings, _build_libvirt),
}

#: Classes a file may name that this version of corral cannot run: none today.
PLANNED: tuple[str, ...] = ()


def find_class(name: str) -> ProviderClass | None:
    """The provider class called ``name``, by its own name or another (``dummy``); None: no such class."""
    if name in PROVIDERS:
        return PROVIDERS[name]
    return next((cls for cls in PROVIDERS.values() for alias in cls.aliases if alias.name == name), None)


def class_names() -> tuple[str, ...]:
    """Every class name a file may give: each class followed by its other names, then the planned ones."""
    return (*(n for cls in PROVIDERS.values() for n in (cls.name, *(a.name for a in cls.aliases))), *PLANNED)

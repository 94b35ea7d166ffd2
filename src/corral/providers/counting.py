"""Every provider failure counted by (provider, operation, cause), in one place for every caller.

:class:`Counted` wraps one provider and delegates every call to it; a call that raises, and
every VM a bulk ``create_vms`` or ``start_vms`` answers with ``ok=False``, is counted in the
:class:`ProviderCounts` it is given, under the provider's name, the method's name (the
operation) and the failure's :class:`~corral.providers.base.Cause` (``ProviderError.cause``,
``CreateResult.cause``; none reads as ``other``, a ``TimeoutError`` as ``timeout``). Session
renewals (a session that expired and was renewed, the call then succeeding) are no failures
but are counted too: the counts read the provider's own ``sessions_renewed`` when they are
shown (a provider replaced by a reload keeps what it renewed).

The wrapper stands in for the provider everywhere (the runner, the pool manager, the inventory's
change feed, the control plane's probes): attributes it does not define itself are read from,
and set on, the provider it wraps, so a simulator's ``controls`` or a provider's ``probe`` are
reached through it as before.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from corral.domain.models import HostInfo, ProviderVm, TemplateInfo, VmSpec
from corral.providers.base import Cause, CreateResult, InventoryUpdate, Provider, ProviderError

__all__ = ["Counted", "ProviderCounts", "ProviderFailures", "counted"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ProviderFailures:
    """The counts as ``/status`` shows them: ``failures`` is provider -> operation -> cause -> failures,
    ``sessions_renewed`` provider -> sessions renewed (sorted by name throughout)."""

    failures: Mapping[str, Mapping[str, Mapping[str, int]]] = field(default_factory=dict)
    sessions_renewed: Mapping[str, int] = field(default_factory=dict)

    def total(self, provider: str | None = None, operation: str | None = None, cause: str | None = None) -> int:
        """The failures of ``provider``, ``operation`` and ``cause`` (None: any)."""
        return sum(n for p, ops in self.failures.items() if provider in (None, p)
                   for op, causes in ops.items() if operation in (None, op)
                   for c, n in causes.items() if cause in (None, c))


class ProviderCounts:
    """The failures and session renewals of a process's providers (one object, shared by them)."""

    def __init__(self) -> None:
        self._failures: Counter[tuple[str, str, str]] = Counter()
        self._renewed: Counter[str] = Counter()  # by providers replaced since
        self._renewals: dict[str, tuple[Callable[[], int], int]] = {}  # provider -> (its count, at first)

    def failed(self, provider: str, operation: str, cause: Cause | None, count: int = 1) -> None:
        self._failures[(provider, operation, str(cause or Cause.OTHER))] += count

    def track_renewals(self, provider: str, read: Callable[[], int]) -> None:
        """Count the sessions renewed by ``provider`` from now on, as ``read()`` says (it only
        grows); one that replaces another of its name adds to what that one renewed."""
        replaced = self._renewals.get(provider)
        if replaced is not None:
            self._renewed[provider] += replaced[0]() - replaced[1]
        self._renewals[provider] = (read, read())

    def view(self) -> ProviderFailures:
        failures: dict[str, dict[str, dict[str, int]]] = {}
        for (provider, operation, cause), n in sorted(self._failures.items()):
            failures.setdefault(provider, {}).setdefault(operation, {})[cause] = n
        renewed = Counter(self._renewed)
        for provider, (read, first) in self._renewals.items():
            renewed[provider] += read() - first
        return ProviderFailures(failures, {p: n for p, n in sorted(renewed.items()) if n})


_OWN = frozenset({"_inner", "_counts"})


class Counted(Provider):
    """``inner``, with its failures and session renewals counted in ``counts`` (see the module docstring)."""

    _inner: Provider
    _counts: ProviderCounts

    def __init__(self, inner: Provider, counts: ProviderCounts) -> None:
        object.__setattr__(self, "_inner", inner)
        object.__setattr__(self, "_counts", counts)
        counts.track_renewals(inner.name, lambda: inner.sessions_renewed)

    @property
    def inner(self) -> Provider:
        """The provider wrapped."""
        return self._inner

    # -- delegated attributes ------------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:  # only for names not found on the wrapper
        return getattr(self._inner, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _OWN:
            object.__setattr__(self, name, value)
        else:
            setattr(self._inner, name, value)

    @property
    def name(self) -> str:
        return self._inner.name

    @name.setter
    def name(self, value: str) -> None:
        self._inner.name = value

    @property
    def bulk_calls(self) -> bool:
        return self._inner.bulk_calls

    @bulk_calls.setter
    def bulk_calls(self, value: bool) -> None:
        self._inner.bulk_calls = value

    @property
    def probes_readiness(self) -> bool:
        return self._inner.probes_readiness

    @probes_readiness.setter
    def probes_readiness(self, value: bool) -> None:
        self._inner.probes_readiness = value

    @property
    def cannot_migrate(self) -> str | None:
        return self._inner.cannot_migrate

    @cannot_migrate.setter
    def cannot_migrate(self, value: str | None) -> None:
        self._inner.cannot_migrate = value

    @property
    def sessions_renewed(self) -> int:
        return self._inner.sessions_renewed

    @sessions_renewed.setter
    def sessions_renewed(self, value: int) -> None:
        self._inner.sessions_renewed = value

    # -- counting --------------------------------------------------------------------------------
    async def _counted(self, operation: str, call: Awaitable[T]) -> T:
        try:
            return await call
        except ProviderError as exc:
            self._counts.failed(self.name, operation, exc.cause)
            raise
        except TimeoutError:
            self._counts.failed(self.name, operation, Cause.TIMEOUT)
            raise
        except Exception:
            self._counts.failed(self.name, operation, Cause.OTHER)
            raise

    def _results(self, operation: str, results: list[CreateResult]) -> list[CreateResult]:
        for result in results:
            if not result.ok:
                self._counts.failed(self.name, operation, result.cause)
        return results

    # -- the protocol ------------------------------------------------------------------------------
    async def connect(self) -> None:
        await self._counted("connect", self._inner.connect())

    async def close(self) -> None:
        await self._counted("close", self._inner.close())

    async def list_hosts(self) -> list[HostInfo]:
        return await self._counted("list_hosts", self._inner.list_hosts())

    async def template_info(self, template: str) -> TemplateInfo | None:
        return await self._counted("template_info", self._inner.template_info(template))

    async def list_vms(self) -> list[ProviderVm]:
        return await self._counted("list_vms", self._inner.list_vms())

    async def create_vms(self, host: str, specs: list[VmSpec]) -> list[CreateResult]:
        return self._results("create_vms", await self._counted("create_vms", self._inner.create_vms(host, specs)))

    async def start_vms(self, host: str, names: list[str]) -> list[CreateResult]:
        return self._results("start_vms", await self._counted("start_vms", self._inner.start_vms(host, names)))

    async def destroy_vm(self, name: str) -> None:
        await self._counted("destroy_vm", self._inner.destroy_vm(name))

    async def power_on(self, name: str) -> None:
        await self._counted("power_on", self._inner.power_on(name))

    async def power_off(self, name: str) -> None:
        await self._counted("power_off", self._inner.power_off(name))

    async def migrate_vm(self, name: str, host: str) -> None:
        await self._counted("migrate_vm", self._inner.migrate_vm(name, host))

    async def vm_ready(self, name: str) -> bool:
        return await self._counted("vm_ready", self._inner.vm_ready(name))

    async def add_disk(self, name: str, size_gb: int) -> None:
        await self._counted("add_disk", self._inner.add_disk(name, size_gb))

    async def create_snapshot(self, name: str, snapshot: str) -> None:
        await self._counted("create_snapshot", self._inner.create_snapshot(name, snapshot))

    async def revert_snapshot(self, name: str, snapshot: str) -> None:
        await self._counted("revert_snapshot", self._inner.revert_snapshot(name, snapshot))

    async def wait_for_updates(self, version: int | None, timeout: float) -> InventoryUpdate:
        return await self._counted("wait_for_updates", self._inner.wait_for_updates(version, timeout))


def counted(providers: Mapping[str, Provider], counts: ProviderCounts) -> dict[str, Provider]:
    """Each of ``providers`` wrapped to count into ``counts`` (one already wrapped is kept as it is)."""
    return {name: p if isinstance(p, Counted) else Counted(p, counts) for name, p in providers.items()}

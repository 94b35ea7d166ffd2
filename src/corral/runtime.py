"""Assemble a running corral from its configuration: store, providers, pool manager."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from corral.auth import LoginGuard, build_authenticator
from corral.config import Config, ConfigError
from corral.config.settings import manager_settings, monitor_settings, provider_context
from corral.inventory import Inventory
from corral.pools.manager import PoolManager
from corral.providers.base import Provider
from corral.providers.registry import PROVIDERS
from corral.store.base import Store


@dataclass
class Service:
    config: Config
    store: Store
    providers: dict[str, Provider]
    manager: PoolManager
    authenticator: LoginGuard | None = None  # the provider behind the login guard; None: no ``:auth:``
    started_at: float = field(default_factory=time.time)

    async def start(self) -> None:
        await self.manager.start()

    async def stop(self) -> None:
        await self.manager.stop()
        self.store.close()


def build_providers(config: Config) -> dict[str, Provider]:
    """One provider object (one session) per configured endpoint that a pool uses."""
    used = {config.pool_provider(p) for p in config.pools}
    providers: dict[str, Provider] = {}
    problems = []
    for name in sorted(used):
        cls = config.provider_class(name)
        if cls in PROVIDERS:
            providers[name] = build_provider(config, name)
        else:
            problems.append(f"providers.{name}.provider_class: the {cls!r} provider is not available "
                            f"in this version of corral (available: {', '.join(PROVIDERS)})")
    if problems:
        raise ConfigError(problems)
    return providers


def build_provider(config: Config, name: str) -> Provider:
    """Provider ``name``, built by its class's factory (see :mod:`corral.providers.registry`)."""
    cls = PROVIDERS[config.provider_class(name)]
    return cls.build(name, config.provider_settings(name), provider_context(config, name))


def build_store(config: Config) -> Store:
    """The sqlite store; one line naming the path and the cause if it cannot be opened."""
    from corral.store.sqlite import SqliteStore
    from corral.store.sqlite_open import StoreOpenError

    path = Path(config.store.path)
    try:
        return SqliteStore(path)
    except StoreOpenError as exc:  # every StoreError of opening is one
        raise ConfigError([f"store.path: {exc}"]) from None
    except OSError as exc:
        detail = f"{exc.strerror}: {exc.filename}" if exc.strerror else str(exc)
        raise ConfigError([f"store.path: cannot open the sqlite store {str(path)!r}: {detail}"]) from None


def build_service(config: Config) -> Service:
    providers = build_providers(config)
    store = build_store(config)
    inventory = Inventory(providers, monitor_settings(config))
    manager = PoolManager(config.domain_pools(), providers, store, manager_settings(config), inventory=inventory)
    manager.apply_overrides(store.pool_overrides())
    authenticator = build_authenticator(config.auth) if config.auth is not None else None
    return Service(config=config, store=store, providers=providers, manager=manager, authenticator=authenticator)

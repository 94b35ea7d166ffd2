"""What each layer is given of the configuration: its own settings, built from the model."""

from __future__ import annotations

from corral.config.schema import Config
from corral.providers.registry import ProviderContext

__all__ = ["provider_context"]


def provider_context(config: Config, name: str) -> ProviderContext:
    """What provider ``name``'s factory reads beside its own entry: the pools that use it,
    ``:config:`` and the ``:dns_configs:`` domains, as plain values."""
    return ProviderContext(
        pools=tuple(p.model_dump() for p in config.pools if config.pool_provider(p) == name),
        config=config.config.model_dump(),
        dns_domains=config.dns_domains,
    )

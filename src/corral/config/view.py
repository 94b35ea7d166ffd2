"""The configuration as the API shows it: only declared, safe keys (see :mod:`corral.config.safe`)."""

from __future__ import annotations

from typing import Any

from corral.config.safe import model_view
from corral.config.schema import Config

__all__ = ["safe_view"]


def safe_view(config: Config) -> dict[str, Any]:
    """The whole configuration as it may be shown: each provider through its own settings
    model (the simulator's, vSphere's), so only their declared, safe keys appear."""
    view = model_view(config)
    view["providers"] = {name: _provider_view(config, name) for name in config.providers}
    return view


def _provider_view(config: Config, name: str) -> dict[str, Any]:
    entry = model_view(config.providers[name])
    try:
        return {**entry, **model_view(config.provider_settings(name))}
    except ValueError:  # no settings model (a planned class), or settings refused at load: show nothing more
        return entry

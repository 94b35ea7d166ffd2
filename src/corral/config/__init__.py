"""The configuration: vmpooler's ``vmpooler.yaml`` plus corral's own keys.

- :mod:`~corral.config.schema` and :mod:`~corral.config.schema_sections`: the pydantic model;
- :mod:`~corral.config.load`: reading a file, normalising it, the checks across sections;
- :mod:`~corral.config.errors`: :class:`ConfigError` and how pydantic's errors are worded;
- :mod:`~corral.config.keys`: keys the model does not declare (error, warning or nothing);
- :mod:`~corral.config.dns`: ``:dns_configs:``;
- :mod:`~corral.config.safe` and :mod:`~corral.config.view`: what may be shown;
- :mod:`~corral.config.yaml`: reading YAML within limits.
"""

from corral.config.errors import ConfigError
from corral.config.load import collect_warnings, load_config, parse_config
from corral.config.safe import model_view
from corral.config.schema import Config, PoolSettings, ProviderSettings
from corral.config.schema_sections import (
    ApiConfig,
    GlobalSettings,
    MonitoringSettings,
    RateLimit,
    RateLimits,
    RedisSettings,
    RunnerConfig,
    SchedulingSettings,
    StoreSettings,
)
from corral.config.view import safe_view

__all__ = [
    "ApiConfig",
    "Config",
    "ConfigError",
    "GlobalSettings",
    "MonitoringSettings",
    "PoolSettings",
    "ProviderSettings",
    "RateLimit",
    "RateLimits",
    "RedisSettings",
    "RunnerConfig",
    "SchedulingSettings",
    "StoreSettings",
    "collect_warnings",
    "load_config",
    "model_view",
    "parse_config",
    "safe_view",
]

"""Reading a configuration file: YAML in, a checked :class:`~corral.config.schema.Config` out.

:func:`load_config` returns the model and a list of warnings; a bad file raises
:class:`~corral.config.errors.ConfigError` carrying every problem found, each naming the key
path, the rule and the value (secrets are never echoed). Keys the model does not declare are
judged by :mod:`corral.config.keys` (an error in corral's own sections, a warning in
vmpooler's). The checks across sections (pools naming providers, aliases, DNS plugins, the
providers' own settings, ``:auth:``) are made here, on the raw document, so that they are
reported even when a key is bad.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from corral.auth.passwords import check_password_hash
from corral.auth.settings import AuthSettings
from corral.config.dns import check_dns_plugins, dns_warnings
from corral.config.errors import ConfigError, format_errors
from corral.config.keys import key_problems, section_index
from corral.config.providers import (
    check_provider_classes,
    check_provider_settings,
    default_provider,
    provider_key_models,
)
from corral.config.safe import REDACTED, debug_enabled
from corral.config.schema import Config
from corral.config.yaml import describe_yaml_error, read_yaml, spelling_clashes, unsymbol

__all__ = ["collect_warnings", "load_config", "normalise", "parse_config"]

SYMBOL_RE = re.compile(r"^:[A-Za-z_][A-Za-z0-9_]*$")


def normalise(value: Any) -> Any:
    """Turn Ruby-symbol keys and values (``:config``, ``:simple_tls``) into plain strings."""
    if isinstance(value, dict):
        return {unsymbol(k): normalise(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise(v) for v in value]
    if isinstance(value, str) and SYMBOL_RE.match(value):
        return value[1:]
    return value


def load_config(path: str | os.PathLike[str]) -> tuple[Config, list[str]]:
    """Read and check a configuration file; returns the model and its warnings."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{p}: cannot read: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{p}: not UTF-8 text (byte {exc.start + 1})"]) from None
    try:
        raw = read_yaml(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"{p}: {describe_yaml_error(exc)}"]) from None
    except RecursionError:
        raise ConfigError([f"{p}: refused: nested too deeply"]) from None
    return parse_config(raw)


def parse_config(raw: Any) -> tuple[Config, list[str]]:
    """Check an already-parsed document (a dict); see :func:`load_config`."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError([f"(top level): must be a mapping of sections, got {type(raw).__name__}"])
    clashes = spelling_clashes(raw)
    if clashes:
        raise ConfigError(clashes)
    data = normalise(raw)
    _adopt_legacy_vsphere(data)
    problems: list[str] = []
    config: Config | None = None
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        problems += format_errors(exc, Config)
    # The cross-checks read the raw document, so they are reported even when a key is bad.
    providers = data["providers"] if isinstance(data.get("providers"), dict) else {}
    pools = data["pools"] if isinstance(data.get("pools"), list) else []
    problems += _check_references(providers, pools) + check_provider_classes(providers)
    problems += check_provider_settings(providers, section_index(Config))
    problems += check_dns_plugins(data.get("dns_configs"), pools)
    key_errors, key_warnings = key_problems(data, Config, provider_key_models(providers))
    problems += key_errors
    if config is not None and config.auth is not None:
        problems += _check_auth(config.auth)
    if problems or config is None:
        raise ConfigError(problems)
    return config, key_warnings + collect_warnings(config)


def _check_auth(auth: AuthSettings) -> list[str]:
    if auth.provider == "dummy" and not debug_enabled(os.environ.get("VMPOOLER_DEBUG")):
        return ["auth.provider: 'dummy' accepts any password that differs from the user name; "
                "it is refused unless the environment variable VMPOOLER_DEBUG is true (1, true, yes or on)"]
    if auth.provider == "ldap" and auth.ldap is None:
        return ["auth.ldap: required key is missing (the ldap provider needs host, base and user_object)"]
    if auth.provider == "static" and not auth.users:
        return ["auth.users: the static provider needs at least one user (user: password hash)"]
    problems = []
    for user, encoded in auth.users.items():
        try:
            check_password_hash(encoded.get_secret_value())
        except ValueError:
            problems.append(f"auth.users.{user}: not a password hash made by 'corral auth hash-password', "
                            f"got {REDACTED}")
    return problems


def _adopt_legacy_vsphere(data: dict[str, Any]) -> None:
    """vmpooler copies a top-level ``:vsphere:`` section into ``:providers:`` if absent."""
    if data.get("providers") is None:
        data["providers"] = {}
    legacy, providers = data.get("vsphere"), data["providers"]
    if isinstance(legacy, dict) and isinstance(providers, dict) and "vsphere" not in providers:
        providers["vsphere"] = dict(legacy)


def _check_references(providers: dict[str, Any], pools: list[Any]) -> list[str]:
    problems: list[str] = []
    owner: dict[str, str] = {}
    for i, pool in enumerate(pools):
        if not isinstance(pool, dict) or not isinstance(pool.get("name"), str):
            continue
        if pool["name"] in owner:
            problems.append(f"pools[{i}].name: pool {pool['name']!r} is defined twice")
        owner.setdefault(pool["name"], pool["name"])
        provider = pool.get("provider") or default_provider(providers)
        if isinstance(provider, str) and provider not in providers:  # another type is the model's error
            known = ", ".join(sorted(providers)) or "none configured"
            problems.append(f"pools[{i}].provider: no provider named {provider!r} (providers: {known})")
    for i, pool in enumerate(pools):
        if not isinstance(pool, dict) or not isinstance(pool.get("name"), str):
            continue
        aliases = pool.get("alias") or []
        aliases = [aliases] if isinstance(aliases, str) else aliases if isinstance(aliases, list) else []
        for label in aliases:
            if isinstance(label, str) and label in owner and label != pool["name"]:
                problems.append(f"pools[{i}].alias: {label!r} is already used by pool {owner[label]!r}")
    return problems


def collect_warnings(config: Config) -> list[str]:
    """Warnings about a valid configuration (those about unknown keys come from
    :func:`corral.config.keys.key_problems`)."""
    domains = [pool.domain for pool in config.domain_pools()]
    return _ttl_warnings(config) + dns_warnings([p.dns_plugin for p in config.pools], domains, list(config.dns_configs))


def _ttl_warnings(config: Config) -> list[str]:
    redis = config.redis
    if redis is None or not {"data_ttl"} <= config.config.model_fields_set & redis.model_fields_set:
        return []
    if config.config.data_ttl == redis.data_ttl:
        return []
    return [f"config.data_ttl ({config.config.data_ttl:g} hours) and redis.data_ttl ({redis.data_ttl:g} hours) "
            "differ; config.data_ttl is used"]

"""The ``:providers:`` section as the loader checks it, by the classes of
:mod:`corral.providers.registry`: which class an entry is, that the class exists, its own keys
(through its settings model) and how its unknown keys are judged."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from corral.config.errors import format_errors
from corral.config.keys import KeyIndex, Rule, unknown_key_line
from corral.domain.settings_model import SettingsModel
from corral.providers.registry import PLANNED, PROVIDERS, class_names, find_class

__all__ = ["PROVIDER_RULES", "check_provider_classes", "check_provider_settings", "default_provider",
           "provider_key_models", "raw_provider_class"]


def _provider_rules() -> dict[str, Rule]:
    rules: dict[str, Rule] = {}
    for cls in PROVIDERS.values():
        rules[cls.name] = Rule(cls.label, strict=True, known=frozenset({"provider_class"}))
        for alias in cls.aliases:
            rules[alias.name] = Rule(alias.label, quiet=alias.quiet, known=frozenset({"provider_class"}))
    return rules


#: The rule of a ``:providers:`` entry, by its class (``provider_class``, else its name): a
#: class's own name is corral's key space; another name (``dummy``) accepts the keys of
#: vmpooler's provider of that name.
PROVIDER_RULES: dict[str, Rule] = _provider_rules()


def raw_provider_class(name: str, entry: Any) -> str:
    """The class of the ``:providers:`` entry ``name`` (``entry`` as the file gives it): its
    ``provider_class``, else its name; another name of a class (``dummy``) is the class's."""
    given = entry.get("provider_class") if isinstance(entry, dict) else None
    cls = str(given or name)
    found = find_class(cls)
    return found.name if found is not None else cls


def default_provider(providers: Mapping[str, Any]) -> str:
    """A pool without ``provider``: the only provider there is, else vmpooler's ``vsphere``."""
    return next(iter(providers)) if len(providers) == 1 else "vsphere"


def check_provider_classes(providers: Mapping[str, Any]) -> list[str]:
    """Each entry's class must be one corral knows (or one it plans, see :data:`PLANNED`)."""
    problems = []
    for name, entry in providers.items():
        if isinstance(entry, dict) and not isinstance(entry.get("provider_class") or "", str):
            continue  # not a string: the model's error, which does not echo it
        cls = raw_provider_class(name, entry)
        if cls not in PROVIDERS and cls not in PLANNED:
            problems.append(
                f"providers.{name}.provider_class: must be one of "
                f"{', '.join(class_names())}, got {cls!r}"
            )
    return problems


def check_provider_settings(providers: Mapping[str, Any], index: KeyIndex) -> list[str]:
    """Check each entry's own keys with its class's settings model; ``index`` (see
    :func:`corral.config.keys.section_index`) words the unknown keys of a model that forbids them."""
    problems: list[str] = []
    for name, entry in providers.items():
        cls = PROVIDERS.get(raw_provider_class(name, entry))
        if cls is None or not isinstance(entry, dict):
            continue  # a planned class's settings are checked by its provider
        try:
            cls.settings_of(entry)
        except ValidationError as exc:
            model = cls.settings()
            forbids = model.model_config.get("extra") == "forbid"
            unknown = unknown_key_line(model, PROVIDER_RULES[cls.name], index) if forbids else None
            problems += format_errors(exc, model, prefix=("providers", name), unknown=unknown)
    return problems


def provider_key_models(providers: Mapping[str, Any]) -> dict[str, tuple[type[SettingsModel], Rule]]:
    """The settings model and key rule (see :mod:`corral.config.keys`) of each entry of a class
    corral runs; entries of other classes are checked by their providers."""
    models: dict[str, tuple[type[SettingsModel], Rule]] = {}
    for name, entry in providers.items():
        given = entry.get("provider_class") if isinstance(entry, dict) else None
        label = given if isinstance(given, str) and given else name
        cls = find_class(label)
        if cls is not None:
            models[name] = (cls.settings(), PROVIDER_RULES[label])
    return models

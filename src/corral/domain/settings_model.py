"""The base of every configuration model, in corral's configuration and in a provider's settings."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict

__all__ = ["SettingsModel"]


class SettingsModel(BaseModel):
    """A model of a part of the configuration file; :mod:`corral.config.keys` judges the keys it
    does not declare, so they are kept (a model that refuses them says ``extra="forbid"``).
    ``known_unused``: vmpooler keys corral accepts but does not use, kept quiet instead of warned
    about."""

    model_config = ConfigDict(extra="allow")
    known_unused: ClassVar[frozenset[str]] = frozenset()

"""The base of every configuration model, in corral's configuration and in a provider's settings."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict

__all__ = ["SettingsModel"]


class SettingsModel(BaseModel):
    """A model of a part of the configuration file; :mod:`corral.config.keys` judges the keys it
    does not declare, so they are kept (a model that refuses them says ``extra="forbid"``).

    What each key is to a vmpooler user, as :mod:`corral.config.docs` lists it:

    - ``known_unused``: vmpooler keys corral accepts but does not use, kept quiet instead of
      warned about (not fields of the model);
    - ``corral_keys``: fields of corral's own, which vmpooler does not have; ``corral_only``:
      every field of the model, and of the models inside it, is corral's own;
    - ``not_acted_on``: fields corral reads (so that vmpooler's files load, and the value is
      checked) but that change nothing it does.

    Every other field is a vmpooler key with the same name and meaning.
    """

    model_config = ConfigDict(extra="allow")
    known_unused: ClassVar[frozenset[str]] = frozenset()
    corral_keys: ClassVar[frozenset[str]] = frozenset()
    corral_only: ClassVar[bool] = False
    not_acted_on: ClassVar[frozenset[str]] = frozenset()

"""What of the configuration may be shown, in API answers and in error messages alike.

The rule is an allow-list: a value is shown only when the configuration model declares its
key and the key is safe. A field is not safe when its type is, or holds, a ``SecretStr`` (or
``Any``: it could hold anything), or when it is marked ``json_schema_extra={"secret": True}``.
Keys the model does not know (a typo'd ``pasword:``, a section corral does not read) are never
shown. Strings that are URLs lose their ``user:password@`` part.

:func:`model_view` is a model as the API shows it (the whole configuration:
:func:`corral.config.view.safe_view`); :func:`shown_input` is how an error message shows the
value it complains about.
"""

from __future__ import annotations

import re
import types
from collections.abc import Mapping, Sequence
from inspect import isclass
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, SecretBytes, SecretStr
from pydantic.fields import FieldInfo

REDACTED = "<redacted>"
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
_USERINFO_RE = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s]*@")
_UNIONS = (Union, types.UnionType)
_MAPPINGS = (dict, Mapping)
_SEQUENCES = (list, tuple, set, frozenset, Sequence)

__all__ = ["REDACTED", "debug_enabled", "model_view", "shown_input", "strip_userinfo"]


def debug_enabled(value: str | None) -> bool:
    """Whether an environment value such as ``VMPOOLER_DEBUG`` turns something on: only
    ``1``, ``true``, ``yes`` or ``on`` (any case) do; ``false``, ``0`` or ``""`` do not."""
    return value is not None and value.strip().lower() in TRUE_WORDS


def strip_userinfo(text: str) -> str:
    """``text`` with the ``user:password@`` of every URL in it removed."""
    return _USERINFO_RE.sub(r"\1", text)


# -- the types of the model ------------------------------------------------------------------


def _bare(tp: Any) -> Any:
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    return tp


def _is_model(tp: Any) -> bool:
    return isclass(tp) and issubclass(tp, BaseModel)


def _secret_type(tp: Any) -> bool:
    """``tp`` is or holds a secret, or could hold anything; nested models answer per field."""
    tp = _bare(tp)
    if tp is Any or (isclass(tp) and issubclass(tp, (SecretStr, SecretBytes))):
        return True
    if _is_model(tp):
        return False
    return any(_secret_type(arg) for arg in get_args(tp) if arg is not Ellipsis)


def _hidden_field(info: FieldInfo) -> bool:
    extra = info.json_schema_extra
    marked = isinstance(extra, dict) and extra.get("secret") is True
    return marked or _secret_type(info.annotation)


def _field(model: type[BaseModel], key: Any) -> FieldInfo | None:
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            return info
    return None


def _members(tp: Any) -> list[Any]:
    return [m for m in get_args(tp) if m is not type(None)]


# -- errors: may the input at this key be echoed? --------------------------------------------


def _types_at(tp: Any, loc: tuple[Any, ...]) -> list[Any]:
    """The declared types that the error location ``loc`` below ``tp`` may stand for; none when
    it passes an unknown or secret key."""
    tp = _bare(tp)
    if _secret_type(tp):
        return []
    if not loc:
        return [tp]
    part, rest = loc[0], loc[1:]
    origin, args = get_origin(tp), get_args(tp)
    if _is_model(tp):
        info = _field(tp, part)
        return [] if info is None or _hidden_field(info) else _types_at(info.annotation, rest)
    if origin in _MAPPINGS and len(args) == 2:
        return _types_at(args[1], rest)
    if origin in _SEQUENCES and args and isinstance(part, int):
        return _types_at(args[0], rest)
    if origin in _UNIONS:
        members = _members(tp)
        found = [t for m in members for t in _types_at(m, loc)]
        if len(members) > 1 and isinstance(part, str):  # pydantic names the member it tried
            found += [t for m in members for t in _types_at(m, rest)]
        return found
    return []


def _fits(tp: Any, value: Any) -> bool:
    """``value`` has the shape ``tp`` declares, so nothing undeclared hides inside it."""
    tp = _bare(tp)
    if _secret_type(tp):
        return False
    if value is None:
        return True
    origin, args = get_origin(tp), get_args(tp)
    if origin in _UNIONS:
        return any(_fits(m, value) for m in _members(tp))
    if isinstance(value, dict):
        return origin in _MAPPINGS and len(args) == 2 and all(_fits(args[1], v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return origin in _SEQUENCES and bool(args) and all(_fits(args[0], v) for v in value)
    # a lone value where a section belongs may be anything (a provider's password, misplaced)
    return not _is_model(tp)


def shown_input(model: type[BaseModel], loc: tuple[Any, ...], value: Any) -> str:
    """How an error at ``loc`` (below ``model``) shows its input: its repr (URLs without
    user info, cut at 60 characters), or ``<redacted>``."""
    if not any(_fits(tp, value) for tp in _types_at(model, loc)):
        return REDACTED
    text = strip_userinfo(repr(value))
    return text if len(text) <= 60 else text[:57] + "..."


# -- the API's view --------------------------------------------------------------------------


def model_view(model: BaseModel) -> dict[str, Any]:
    """The model's declared, safe fields that are set (not None), as plain data."""
    out: dict[str, Any] = {}
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        if value is not None and not _hidden_field(info):
            out[name] = _plain(value)
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return model_view(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    if isinstance(value, (SecretStr, SecretBytes)):
        return REDACTED
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return strip_userinfo(str(value))

"""Configuration errors as people read them: ``key.path: rule, got value``.

pydantic's errors are turned into one line each, naming the key path as it is written in the
file (``pools[2].size``), the rule in words and the offending value, when
:func:`corral.config.safe.shown_input` allows it to be shown.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import AfterValidator, BaseModel, ValidationError

from corral.config.safe import shown_input

__all__ = ["ConfigError", "checked_by", "format_errors"]


class ConfigError(Exception):
    """The configuration is invalid; ``problems`` lists every problem found."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def format_errors(exc: ValidationError, model: type[BaseModel], prefix: tuple[str | int, ...] = (),
                  unknown: Callable[[str, str], str] | None = None) -> list[str]:
    """pydantic errors of ``model`` as ``path: rule, got value`` lines (``prefix`` is where the
    model sits in the file); a value is shown only where :func:`shown_input` allows it.
    ``unknown(path, key)`` words the line about a key the model forbids (default: not known)."""
    lines = []
    for err in exc.errors():
        path = _path(prefix + tuple(err["loc"]))
        if err["type"] == "missing":
            lines.append(f"{path}: required key is missing")
        elif err["type"] == "extra_forbidden":  # an unknown key's value is never echoed
            lines.append(unknown(path, str(err["loc"][-1])) if unknown else f"{path}: not a known key")
        else:
            shown = shown_input(model, tuple(err["loc"]), err.get("input"))
            lines.append(f"{path}: {_rule(err)}, got {shown}")
    return lines


def _path(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif str(part).startswith(("function-", "constrained-")) or "[" in str(part):
            continue  # pydantic's names of validators and of the member of a union it tried
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _rule(err: Any) -> str:
    ctx = err.get("ctx") or {}
    kind = err["type"]
    simple = {
        "greater_than_equal": "must be >= {ge}",
        "greater_than": "must be > {gt}",
        "less_than_equal": "must be <= {le}",
        "less_than": "must be < {lt}",
        "string_too_short": "must not be empty",
        "literal_error": "must be {expected}",
    }
    if kind in simple:
        return simple[kind].format(**ctx)
    if kind.endswith("_type") or kind.endswith("_parsing"):
        wanted = kind.split("_")[0]
        names = {"int": "a whole number", "float": "a number", "bool": "true or false",
                 "string": "a string", "dict": "a mapping", "model": "a mapping", "list": "a list"}
        return f"must be {names.get(wanted, wanted)}"
    return str(err.get("msg", kind)).lower().removeprefix("value error, ")


def checked_by(problem: Callable[[str], str | None]) -> AfterValidator:
    """A validator that refuses a string ``problem`` finds fault with, in ``problem``'s words."""

    def check(value: str) -> str:
        found = problem(value)
        if found:
            raise ValueError(found)
        return value

    return AfterValidator(check)

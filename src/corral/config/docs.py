"""docs/configuration.md's tables of keys, made from the configuration model.

The page is its own template: prose written by hand, and between a ``<!-- keys NAME -->`` line
and the next ``<!-- end keys -->`` line the table of the section ``NAME`` (``config``,
``pools``, ``provider vsphere`` …, see :func:`sections`), which this module writes. Every key
comes from the model: its type and limits from its annotation, its default from the model's
defaults, its meaning from its ``description``, and what it is to a vmpooler user from the
model's ``corral_keys``, ``corral_only``, ``not_acted_on`` and ``known_unused`` (see
:class:`corral.domain.settings_model.SettingsModel`). A section no marker places (one added to
the model since the page was written) goes into the ``rest`` block; ``unused`` lists the
vmpooler keys corral accepts and does not act on.

Regenerate the page with ``python -m corral.config.docs --output docs/configuration.md``
(``make docs``); ``--check`` exits 1 when the page differs from what the model gives.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import types
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from inspect import isclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types as at
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from corral.config.schema import Config
from corral.domain.settings_model import SettingsModel
from corral.providers.registry import PROVIDERS, find_class

__all__ = ["COMMAND", "KeyRow", "SectionDoc", "default_text", "fill", "main", "model_rows", "render_section",
           "sections", "type_text"]

#: How the page is regenerated; the check names it.
COMMAND = "python -m corral.config.docs --output docs/configuration.md"

BEGIN_RE = re.compile(r"^<!-- keys (?P<name>[a-z_ ]+) -->$")
END = "<!-- end keys -->"
REST = "rest"
UNUSED = "unused"


@dataclass(frozen=True)
class KeyRow:
    """One key of a section: its path in the section (``latency.boot``, ``hosts[].name``,
    ``templates.NAME.cpus``), type, default, whether vmpooler has it, whether corral acts on it."""

    key: str
    type: str
    default: str
    corral: bool
    acts: bool
    meaning: str


@dataclass(frozen=True)
class SectionDoc:
    """The keys of one section of the file; ``quiet``: vmpooler keys accepted without a word
    and not acted on, each with where it is accepted when that is narrower than the section."""

    name: str
    title: str
    rows: tuple[KeyRow, ...]
    quiet: tuple[tuple[str, str], ...] = ()


# -- types and defaults, as the page shows them ---------------------------------------------

_SCALARS: dict[Any, str] = {bool: "bool", int: "integer", float: "number", str: "string",
                            SecretStr: "secret string", Any: "anything"}


def _number(value: Any) -> str:
    """``15`` for 15.0 (a whole number, however the model spells it), ``0.25`` as it is."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


def _either(parts: Sequence[str]) -> str:
    return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} or {parts[-1]}"


def _limits(metadata: Iterable[Any]) -> list[str]:
    """The bounds ``metadata`` (a field's, or an ``Annotated``'s) puts on a value."""
    found = []
    for item in metadata:
        if isinstance(item, FieldInfo):
            found += _limits(item.metadata)
        elif isinstance(item, at.Ge):
            found.append(f"≥ {_number(item.ge)}")
        elif isinstance(item, at.Gt):
            found.append(f"> {_number(item.gt)}")
        elif isinstance(item, at.Le):
            found.append(f"≤ {_number(item.le)}")
        elif isinstance(item, at.Lt):
            found.append(f"< {_number(item.lt)}")
        elif isinstance(item, at.MinLen) and item.min_length > 0:
            found.append(f"at least {item.min_length} long")
        elif isinstance(item, at.MaxLen):
            found.append(f"at most {item.max_length} long")
        elif getattr(item, "pattern", None):
            found.append(f"matching `{item.pattern}`")
    return found


def type_text(annotation: Any, metadata: Sequence[Any] = ()) -> str:
    """How the page names a type: ``integer, ≥ 1``, ```name` or `guest_ip` ``, ``list of string``,
    ``map of string to number``; None in a union is left out (the default says "none")."""
    limits = _limits(metadata)
    while get_origin(annotation) is Annotated:
        annotation, *inner = get_args(annotation)
        limits = _limits(inner) + limits
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (Union, types.UnionType):
        text = _either([type_text(arg) for arg in args if arg is not type(None)])
    elif origin is Literal:
        text = _either([f"`{_plain(v)}`" for v in args])
    elif origin in (list, tuple, set, frozenset, Sequence):
        text = ("list of entries" if _is_model(args[0]) else f"list of {type_text(args[0])}") if args else "list"
    elif origin in (dict, Mapping):
        text = ("map: name → entry" if _is_model(args[1]) else f"map: name → {type_text(args[1])}") \
            if len(args) == 2 else "map"
    elif _is_model(annotation):
        text = "section"
    elif isclass(annotation) and issubclass(annotation, Enum):
        text = _either([f"`{m.value}`" for m in annotation])
    else:
        text = _SCALARS.get(annotation, getattr(annotation, "__name__", str(annotation)))
    return ", ".join([text, *limits])


def _is_model(annotation: Any) -> bool:
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return isclass(annotation) and issubclass(annotation, BaseModel)


def _plain(value: Any) -> str:
    """A value as YAML writes it in flow style: ``true``, ``10``, ``vmpooler``, ``[a, b]``, ``{}``."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return _number(value)
    if isinstance(value, Enum):
        return _plain(value.value)
    if isinstance(value, str):
        return value if value else '""'
    if isinstance(value, BaseModel):
        return _plain(value.model_dump())
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {_plain(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple, set, frozenset)):
        return "[" + ", ".join(_plain(v) for v in value) + "]"
    return str(value)


def default_text(value: Any) -> str:
    """A default as the page shows it: ``required``, ``none``, or the value in code quotes."""
    if value is PydanticUndefined:
        return "required"
    if value is None:
        return "none"
    if isinstance(value, SecretStr):
        return "(secret)"
    return f"`{_plain(value)}`"


# -- walking the model ---------------------------------------------------------------------


def _models_in(annotation: Any) -> list[tuple[str, type[BaseModel]]]:
    """Where models sit in a type: ("model", M), ("list", M) or ("dict", M)."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if _is_model(annotation):
        return [("model", annotation)]
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (Union, types.UnionType):
        return [found for arg in args for found in _models_in(arg)]
    if origin is list and args:
        return [("list", m) for kind, m in _models_in(args[0]) if kind == "model"]
    if origin is dict and len(args) == 2:
        return [("dict", m) for kind, m in _models_in(args[1]) if kind == "model"]
    return []


def _only_a_model(annotation: Any) -> bool:
    """The type is one settings model, or one or None: a section of the file, not a value."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) in (Union, types.UnionType):
        rest = [arg for arg in get_args(annotation) if arg is not type(None)]
        return len(rest) == 1 and _only_a_model(rest[0])
    return _is_model(annotation)


def _marks(model: type[BaseModel]) -> tuple[frozenset[str], frozenset[str], bool, frozenset[str]]:
    """``known_unused``, ``corral_keys``, ``corral_only`` and ``not_acted_on`` of a model (see
    :class:`SettingsModel`); a plain pydantic model has none of them: vmpooler's keys, acted on."""
    return (getattr(model, "known_unused", frozenset()), getattr(model, "corral_keys", frozenset()),
            bool(getattr(model, "corral_only", False)), getattr(model, "not_acted_on", frozenset()))


def _default(info: FieldInfo, name: str, defaults: BaseModel | None) -> Any:
    if defaults is not None:
        return getattr(defaults, name)
    return info.get_default(call_default_factory=True, validated_data={})


def _meaning(info: FieldInfo) -> str:
    return " ".join((info.description or "").split()).replace("|", "\\|")


def model_rows(model: type[BaseModel], defaults: BaseModel | None = None, prefix: str = "", *,
               corral: bool = False, acts: bool = True) -> list[KeyRow]:
    """The rows of ``model``'s keys, those of the models inside it after each (a section in
    a section: ``latency.boot``; a list of entries: ``hosts[].name``; a map of named entries:
    ``templates.NAME.cpus``). ``defaults``: an instance whose values are the defaults (a section
    whose default differs from its model's own); ``corral``/``acts``: what the enclosing key is."""
    _, corral_keys, corral_only, not_acted_on = _marks(model)
    corral = corral or corral_only
    rows: list[KeyRow] = []
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        own_corral = corral or name in corral_keys
        own_acts = acts and name not in not_acted_on
        default = _default(info, name, defaults)
        inside = _models_in(info.annotation)
        if _only_a_model(info.annotation):
            (_, sub), = inside
            rows.append(KeyRow(path, "section", "none" if default is None else "—", own_corral, own_acts,
                               _meaning(info)))
            rows += model_rows(sub, default if isinstance(default, sub) else None, f"{path}.",
                               corral=own_corral, acts=own_acts)
            continue
        rows.append(KeyRow(path, type_text(info.annotation, info.metadata), default_text(default),
                           own_corral, own_acts, _meaning(info)))
        for kind, sub in inside:
            below = f"{path}[]." if kind == "list" else f"{path}.NAME."
            rows += model_rows(sub, None, below, corral=own_corral, acts=own_acts)
    return rows


def _quiet(model: type[BaseModel], prefix: str = "", seen: frozenset[type] = frozenset()) -> list[str]:
    """``known_unused`` of ``model`` and of the models inside it, as paths in the section."""
    found = [f"{prefix}{key}" for key in sorted(_marks(model)[0])]
    for name, info in model.model_fields.items():
        for kind, sub in _models_in(info.annotation):
            if sub in seen:
                continue
            below = {"model": f"{prefix}{name}.", "list": f"{prefix}{name}[].", "dict": f"{prefix}{name}.NAME."}[kind]
            found += _quiet(sub, below, seen | {model})
    return found


def sections(root: type[SettingsModel] = Config) -> list[SectionDoc]:
    """Every section of the file, in the model's order: one per field of ``root``, and after
    ``providers`` one per provider class of :data:`corral.providers.registry.PROVIDERS`."""
    found = []
    for name, info in root.model_fields.items():
        title = f"`:{name}:`"
        default = _default(info, name, None)
        inside = _models_in(info.annotation)
        if inside:
            kind, model = inside[0]
            rows = model_rows(model, default if isinstance(default, model) else None,
                              corral=name in root.corral_keys, acts=name not in root.not_acted_on)
            quiet = tuple((key, "") for key in _quiet(model))
        else:  # a map of plain values (``:tagfilter:``): one row for its entries
            value_type = get_args(info.annotation)[-1] if get_args(info.annotation) else info.annotation
            rows = [KeyRow("NAME", type_text(value_type), "—",
                           name in root.corral_keys, name not in root.not_acted_on, _meaning(info))]
            quiet = ()
        found.append(SectionDoc(name, title, tuple(rows), quiet))
        if name == "providers":
            found += _provider_sections()
    # a top-level section named after a provider class (``:vsphere:``) is read as that provider
    top = tuple((f":{key}:", "") for key in sorted(root.known_unused) if find_class(key) is None)
    return [SectionDoc("top", "the top level", (), top), *found]


def _provider_sections() -> list[SectionDoc]:
    found = []
    for cls in PROVIDERS.values():
        model = cls.settings()
        rows = [row for row in model_rows(model) if row.key != "provider_class"]
        quiet = [(key, "") for key in _quiet(model)]
        for alias in cls.aliases:
            quiet += [(key, f"a `provider_class: {alias.name}` entry") for key in sorted(alias.quiet)]
        found.append(SectionDoc(f"provider {cls.name}", f"a `provider_class: {cls.name}` entry", tuple(rows),
                                tuple(quiet)))
    return found


# -- the page --------------------------------------------------------------------------------


def render_section(section: SectionDoc) -> str:
    """The table of a section's keys."""
    lines = ["| key | type | default | vmpooler | acted on | meaning |", "|---|---|---|---|---|---|"]
    for row in section.rows:
        origin = "corral only" if row.corral else "same key"
        lines.append(f"| `{row.key}` | {row.type} | {row.default} | {origin} | {'yes' if row.acts else 'no'} "
                     f"| {row.meaning} |")
    return "\n".join(lines)


def _render_unused(found: Sequence[SectionDoc]) -> str:
    lines = ["| section | vmpooler keys accepted without a word, not acted on |", "|---|---|"]
    for section in found:
        if not section.quiet:
            continue
        plain = [f"`{key}`" for key, where in section.quiet if not where]
        if plain:
            lines.append(f"| {section.title} | {', '.join(plain)} |")
        by_where: dict[str, list[str]] = {}
        for key, where in section.quiet:
            if where:
                by_where.setdefault(where, []).append(f"`{key}`")
        lines += [f"| {where} | {', '.join(keys)} |" for where, keys in by_where.items()]
    return "\n".join(lines)


def _render_rest(found: Sequence[SectionDoc]) -> str:
    if not found:
        return "Every section has its table above."
    return "\n\n".join(f"### {s.title}\n\n{render_section(s)}" for s in found)


def fill(template: str, found: Sequence[SectionDoc]) -> str:
    """``template`` with each ``<!-- keys NAME -->`` block holding the table of section NAME,
    ``rest`` the tables of the sections no block names, ``unused`` the keys accepted and not
    acted on. ValueError: a block names no section, is not closed, or a section has two blocks."""
    by_name = {s.name: s for s in found}
    lines = template.split("\n")
    named: list[str] = []
    for line in lines:
        match = BEGIN_RE.match(line)
        if match and match["name"] not in (REST, UNUSED):
            if match["name"] not in by_name:
                raise ValueError(f"<!-- keys {match['name']} -->: no such section "
                                 f"(sections: {', '.join(by_name)})")
            if match["name"] in named:
                raise ValueError(f"<!-- keys {match['name']} --> appears twice")
            named.append(match["name"])
    rest = [s for s in found if s.name not in named and s.rows]
    out: list[str] = []
    i = 0
    while i < len(lines):
        match = BEGIN_RE.match(lines[i])
        if not match:
            out.append(lines[i])
            i += 1
            continue
        try:
            end = lines.index(END, i + 1)
        except ValueError:
            raise ValueError(f"line {i + 1}: <!-- keys {match['name']} --> has no {END}") from None
        name = match["name"]
        body = _render_rest(rest) if name == REST else _render_unused(found) if name == UNUSED \
            else render_section(by_name[name])
        out += [lines[i], body, END]
        i = end + 1
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m corral.config.docs",
        description="Write the tables of configuration keys into docs/configuration.md from the model.",
        epilog=f"example: {COMMAND}",
    )
    parser.add_argument("--output", type=Path, help="the page to rewrite (it is its own template)")
    parser.add_argument("--check", type=Path, help="exit 1 when this page differs from what the model gives")
    args = parser.parse_args(argv)
    path = args.output or args.check
    if path is None:
        parser.error("give --output PAGE or --check PAGE")
    try:
        text = path.read_text(encoding="utf-8")
        made = fill(text, sections())
    except (OSError, ValueError) as exc:
        print(f"error: {path}: {exc}", file=sys.stderr)
        return 2
    if args.check is not None:
        if made != text:
            print(f"{path} differs from the configuration model; run: {COMMAND}", file=sys.stderr)
            return 1
        return 0
    if made != text:
        path.write_text(made, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

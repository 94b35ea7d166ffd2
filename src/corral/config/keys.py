"""Keys the configuration model does not declare: an error, a warning, or nothing.

corral's own sections (``:store:``, ``:monitoring:``, ``:scheduling:``, ``:runner:``, a
simulator provider) are corral's key space: a key corral does not read there is a mistake, and
an error (as in a vSphere provider, whose model forbids them). vmpooler's sections
(``:config:``, a pool, ``:redis:``, ``:auth:`` …) also carry keys of vmpooler and its plugins
that corral has no use for, so a key corral does not read there is only a warning, unless it
looks like a mistake: the near-miss of a key corral reads there (``task_limt``), or a key
corral reads in another section (``feed_timeout`` under ``:config:``). A DNS plugin's entry may
hold any key of its plugin; only a near-miss of ``domain`` or ``dns_class`` is an error there.

:func:`judge_key` is that decision; :func:`key_problems` applies it to a whole document.
Messages name keys and sections, never values (a misspelled ``pasword:`` is not echoed).
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from corral.domain.settings_model import SettingsModel

__all__ = ["CUTOFF", "SECTIONS", "KeyIndex", "Rule", "Verdict", "declared_keys", "judge_key", "key_problems",
           "section_index", "unknown_key_line"]

#: How alike (difflib's ratio, 0–1) an unknown key and a known one must be to call it a near-miss;
#: a key one typo away (a letter added, left out, changed or two swapped) is one too.
CUTOFF = 0.8


@dataclass(frozen=True)
class Rule:
    """How the unknown keys of one section are judged.

    ``strict``: corral's own key space, anything unknown is an error. ``open``: a plugin's
    settings, keys corral does not know are expected. ``quiet`` and ``known`` add keys at the
    top of the section to the model's ``known_unused`` and declared fields.
    """

    label: str  # how messages name the section: ":config:", "a pool"
    strict: bool = False
    open: bool = False
    quiet: frozenset[str] = field(default_factory=frozenset)
    known: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Verdict:
    level: Literal["error", "warning", "quiet"]
    message: str = ""


def _one_typo(a: str, b: str) -> bool:
    """``a`` and ``b`` (of 3 letters or more) differ by one letter added, left out, changed, or
    two neighbours swapped."""
    if min(len(a), len(b)) < 3 or abs(len(a) - len(b)) > 1:
        return False
    if len(a) != len(b):
        short, long = sorted((a, b), key=len)
        return any(long[:i] + long[i + 1:] == short for i in range(len(long)))
    diff = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
    return len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]]
                              and a[diff[1]] == b[diff[0]])


def _close(key: str, known: Collection[str]) -> str | None:
    """The known key ``key`` is a near-miss of, if any (letter case aside)."""
    by_lower = {k.lower(): k for k in sorted(known)}
    match = difflib.get_close_matches(key.lower(), list(by_lower), n=1, cutoff=CUTOFF)
    if not match:
        match = [k for k in by_lower if _one_typo(key.lower(), k)][:1]
    return by_lower[match[0]] if match else None


def _listed(labels: Sequence[str]) -> str:
    return labels[0] if len(labels) == 1 else f"{', '.join(labels[:-1])} and {labels[-1]}"


def judge_key(path: str, key: str, *, known: Collection[str], quiet: Collection[str], rule: Rule,
              elsewhere: Sequence[str]) -> Verdict:
    """The verdict on ``key`` (at ``path``), which the section does not declare.

    ``known`` are the keys corral reads in this section, ``quiet`` the vmpooler keys it accepts
    without a word, ``elsewhere`` the other sections where corral reads ``key``.
    """
    if key in quiet:
        return Verdict("quiet")
    close = _close(key, known)
    if rule.open:
        return Verdict("error", f"{path}: not a known key; did you mean {close!r}?") if close else Verdict("quiet")
    if elsewhere:
        return Verdict("error", f"{path}: not read in {rule.label}; corral reads {key!r} in {_listed(elsewhere)}")
    if close:
        return Verdict("error", f"{path}: not a known key; did you mean {close!r}?")
    if rule.strict:
        return Verdict("error", f"{path}: not a known key")
    return Verdict("warning", f"{path}: unknown key, ignored")


# -- the sections of a configuration file ------------------------------------------------------

TOP = Rule("the file's top level")

#: Each section of the file (a field of ``Config``) and whose key space it is; ``providers``
#: are judged per entry (:data:`corral.config.providers.PROVIDER_RULES`), ``tagfilter`` maps tags to patterns.
SECTIONS: dict[str, Rule] = {
    "config": Rule(":config:"),
    "pools": Rule("a pool"),
    "store": Rule(":store:", strict=True),
    "monitoring": Rule(":monitoring:", strict=True),
    "scheduling": Rule(":scheduling:", strict=True),
    "runner": Rule(":runner:", strict=True),
    "ha": Rule(":ha:", strict=True),
    "api": Rule(":api:", strict=True),
    "redis": Rule(":redis:"),
    "auth": Rule(":auth:"),
    "rate_limits": Rule(":rate_limits:"),
    "dns_configs": Rule("a :dns_configs: entry", open=True),
    "prometheus": Rule(":prometheus:"),
    "statsd": Rule(":statsd:"),
    "graphite": Rule(":graphite:"),
}

# -- the model's shape -------------------------------------------------------------------------


def declared_keys(model: type[SettingsModel]) -> frozenset[str]:
    """The keys ``model`` reads: its fields and their aliases."""
    keys = set(model.model_fields)
    keys.update(info.alias for info in model.model_fields.values() if info.alias)
    return frozenset(keys)


def _shapes(annotation: Any) -> list[tuple[str, type[SettingsModel]]]:
    """Where models sit in a field's type: ("model", M) for M itself, ("list", M) for a list of
    M, ("dict", M) for a mapping to M (through Optional, unions and Annotated)."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if isinstance(annotation, type) and issubclass(annotation, SettingsModel):
        return [("model", annotation)]
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (Union, types.UnionType):
        return [shape for arg in args for shape in _shapes(arg)]
    if origin is list and args:
        return [("list", m) for kind, m in _shapes(args[0]) if kind == "model"]
    if origin is dict and len(args) == 2:
        return [("dict", m) for kind, m in _shapes(args[1]) if kind == "model"]
    return []


def _model_of(annotation: Any) -> type[SettingsModel] | None:
    found = _shapes(annotation)
    return found[0][1] if found else None


KeyIndex = dict[str, tuple[str, ...]]


def _index(spaces: Iterable[tuple[str, Collection[str]]]) -> KeyIndex:
    index: dict[str, list[str]] = {}
    for label, keys in spaces:
        for key in keys:
            if label not in index.setdefault(key, []):
                index[key].append(label)
    return {key: tuple(labels) for key, labels in index.items()}


def _section_spaces(root: type[SettingsModel]) -> list[tuple[str, frozenset[str]]]:
    spaces = []
    for name, rule in SECTIONS.items():
        model = _model_of(root.model_fields[name].annotation)
        if model is not None:
            spaces.append((rule.label, declared_keys(model)))
    return spaces


def section_index(root: type[SettingsModel]) -> KeyIndex:
    """Key -> the sections (of :data:`SECTIONS`, by label) of ``root`` whose top level reads it."""
    return _index(_section_spaces(root))


# -- judging a document ------------------------------------------------------------------------

def _walk(data: Any, model: type[SettingsModel], path: str, rule: Rule, index: KeyIndex, found: list[Verdict],
          top: bool) -> None:
    """Judge the keys of the mapping ``data`` read as ``model`` (at ``path``), and of the models
    inside it; ``top``: ``data`` is a section itself, where keys read elsewhere are mistakes."""
    if not isinstance(data, dict):
        return  # not a mapping: the model's error
    known = declared_keys(model) | (rule.known if top else frozenset())
    quiet = model.known_unused | (rule.quiet if top else frozenset())
    for key, value in data.items():
        where = f"{path}.{key}" if path else str(key)
        info = model.model_fields.get(key)
        if key in known:
            if info is not None:
                _walk_field(value, info.annotation, where, rule, index, found, top=False)
            continue
        elsewhere = [label for label in index.get(key, ()) if label != rule.label] if top else []
        found.append(judge_key(where, key, known=known, quiet=quiet, rule=rule, elsewhere=elsewhere))


def _walk_field(value: Any, annotation: Any, path: str, rule: Rule, index: KeyIndex, found: list[Verdict],
                top: bool) -> None:
    """Walk the models in ``value``, the value of a field of type ``annotation``."""
    for kind, model in _shapes(annotation):
        if kind == "model" and isinstance(value, dict):
            _walk(value, model, path, rule, index, found, top)
        elif kind == "list" and isinstance(value, list):
            for i, item in enumerate(value):
                _walk(item, model, f"{path}[{i}]", rule, index, found, top)
        elif kind == "dict" and isinstance(value, dict):
            for name, item in value.items():
                _walk(item, model, f"{path}.{name}", rule, index, found, top)
        else:
            continue
        return


def key_problems(data: Mapping[str, Any], root: type[SettingsModel],
                 providers: Mapping[str, tuple[type[SettingsModel], Rule]]) -> tuple[list[str], list[str]]:
    """The errors and warnings about undeclared keys of the normalised document ``data`` read as
    ``root`` (``Config``). ``providers`` gives each provider entry's settings model and rule;
    a model that forbids unknown keys is left to its own validation (see :func:`unknown_key_line`)."""
    spaces = _section_spaces(root)
    sections = _index(spaces)
    everywhere = _index([*spaces, *((rule.label, declared_keys(model)) for model, rule in providers.values())])
    found: list[Verdict] = []
    top_known = declared_keys(root)
    quiet = root.known_unused
    for key in data:
        if key not in top_known:
            found.append(judge_key(str(key), key, known=top_known, quiet=quiet, rule=TOP,
                                   elsewhere=everywhere.get(key, ())))
    for name, rule in SECTIONS.items():
        _walk_field(data.get(name), root.model_fields[name].annotation, name, rule, everywhere, found, top=True)
    entries = data.get("providers")
    for name, (model, rule) in providers.items():
        if isinstance(entries, dict) and model.model_config.get("extra") != "forbid":
            _walk(entries.get(name), model, f"providers.{name}", rule, sections, found, top=True)
    errors = [v.message for v in found if v.level == "error"]
    warnings = [v.message for v in found if v.level == "warning"]
    return errors, warnings


def unknown_key_line(model: type[SettingsModel], rule: Rule, index: KeyIndex) -> Callable[[str, str], str]:
    """For a model that forbids unknown keys (a vSphere provider's, whose ``rule`` is strict):
    the line its validation reports for an unknown ``key`` at ``path``, as :func:`judge_key`
    words it."""
    known = declared_keys(model) | rule.known

    def line(path: str, key: str) -> str:
        elsewhere = [label for label in index.get(key, ()) if label != rule.label]
        return judge_key(path, key, known=known, quiet=frozenset(), rule=rule, elsewhere=elsewhere).message

    return line

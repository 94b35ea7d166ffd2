"""Reading the configuration's YAML safely: limits on what aliases and nesting may build, and
keys that are given twice.

PyYAML's safe loader builds no objects but plain data, yet an alias may refer to the block it
sits in (a loop that later code follows forever) and a few lines of aliases of aliases may
stand for billions of values. :func:`read_yaml` refuses both while the document is composed,
before anything is built, and refuses a key given twice in one mapping (YAML would keep the
last one silently). :func:`spelling_clashes` finds keys given both as a Ruby symbol and
plainly (``:pools:`` and ``pools:``), which would otherwise overwrite each other when the
colons are stripped.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

#: Values (scalars, lists and mappings) a document may stand for once every alias is expanded.
MAX_VALUES = 200_000
#: Lists and mappings inside each other, at most.
MAX_DEPTH = 64
MERGE_TAG = "tag:yaml.org,2002:merge"

__all__ = ["MAX_DEPTH", "MAX_VALUES", "YamlRefused", "describe_yaml_error", "read_yaml", "spelling_clashes", "unsymbol"]


class YamlRefused(ComposerError):
    """The document is valid YAML but breaks one of the limits above (or repeats a key)."""


class _LimitedLoader(yaml.SafeLoader):
    """SafeLoader that counts what each node expands to and watches anchors being composed."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._open_anchors: set[str] = set()
        self._sizes: dict[int, int] = {}
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        event = self.peek_event()
        if isinstance(event, AliasEvent):
            if event.anchor in self._open_anchors:
                raise YamlRefused(None, None, f"recursive alias *{event.anchor}: it refers to the block that "
                                  "contains it", event.start_mark)
            return super().compose_node(parent, index)  # a finished node: its size is known
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise YamlRefused(None, None, f"nested more than {MAX_DEPTH} levels deep", event.start_mark)
        anchor = event.anchor
        if anchor is not None:
            self._open_anchors.add(anchor)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
            if anchor is not None:
                self._open_anchors.discard(anchor)
        self._count(node)
        if isinstance(node, MappingNode):
            _refuse_repeated_keys(node)
        return node

    def _count(self, node: Node) -> None:
        if isinstance(node, SequenceNode):
            size = 1 + sum(self._sizes[id(child)] for child in node.value)
        elif isinstance(node, MappingNode):
            size = 1 + sum(self._sizes[id(k)] + self._sizes[id(v)] for k, v in node.value)
        else:
            size = 1
        if size > MAX_VALUES:
            raise YamlRefused(None, None, f"this block expands to more than {MAX_VALUES} values "
                              "(aliases repeat it too often)", node.start_mark)
        self._sizes[id(node)] = size


def _refuse_repeated_keys(node: MappingNode) -> None:
    first: dict[tuple[str, str], ScalarNode] = {}
    for key, _ in node.value:
        if not isinstance(key, ScalarNode) or key.tag == MERGE_TAG:
            continue
        seen = first.setdefault((key.tag, key.value), key)
        if seen is not key:
            raise YamlRefused(None, None, f"key {key.value!r} is given twice in one mapping "
                              f"(first on line {seen.start_mark.line + 1})", key.start_mark)


def read_yaml(text: str) -> Any:
    """The document in ``text`` as plain data; ``yaml.YAMLError`` (a :class:`YamlRefused` for
    a broken limit) when it cannot be read."""
    loader = _LimitedLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def describe_yaml_error(exc: yaml.YAMLError) -> str:
    """``exc`` in one line, with its line and column, that quotes no part of the file (PyYAML's
    own text shows the offending line, which may hold a secret)."""
    if isinstance(exc, yaml.reader.ReaderError):
        return f"not valid YAML: unacceptable character #x{exc.character:04x} at position {exc.position}"
    kind = "refused" if isinstance(exc, YamlRefused) else "not valid YAML"
    mark = getattr(exc, "problem_mark", None)
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
    return f"{kind}{where}: {getattr(exc, 'problem', None) or 'cannot be parsed'}"


def unsymbol(key: Any) -> str:
    """A key as the configuration model reads it: ``:pools`` and ``pools`` are both ``pools``."""
    text = str(key)
    return text[1:] if text.startswith(":") else text


def spelling_clashes(value: Any, path: str = "") -> list[str]:
    """Keys of one mapping that are the same once the symbol colon is stripped, anywhere in
    ``value``, each as ``path: given both as ':x' and 'x'; keep one``."""
    problems: list[str] = []
    if isinstance(value, dict):
        spelled: dict[str, Any] = {}
        for key, item in value.items():
            name = unsymbol(key)
            where = f"{path}.{name}" if path else name
            if name in spelled:
                problems.append(f"{where}: given both as {str(spelled[name])!r} and {str(key)!r}; keep one")
            else:
                spelled[name] = key
            problems += spelling_clashes(item, where)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            problems += spelling_clashes(item, f"{path}[{i}]")
    return problems

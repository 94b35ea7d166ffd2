"""The local copy's objects by kind, by (kind, name) and by parent, kept as updates arrive.

A clone looks up its template, folder, datastore and datacenter; with these indexes each of
those is a dictionary read (and a walk up the template's folders), not a scan of every
object in the vCenter. :class:`~corral.providers.vsphere.cache.ObjectCache` adds an object
with the values its properties have and removes it with the same values before they change,
so renames, moves between folders, objects leaving and fresh snapshots keep the indexes right.
"""

from __future__ import annotations

from typing import TypeVar

K = TypeVar("K")
Keys = dict[str, None]  # moids in the order they were added (an ordered set)


class ObjectIndex:
    """Managed object ids (moids) by kind, by kind and name, by parent and by parent and name."""

    def __init__(self) -> None:
        self._by_kind: dict[str, Keys] = {}
        self._by_name: dict[tuple[str, str], Keys] = {}
        self._children: dict[str, Keys] = {}
        self._by_parent_name: dict[tuple[str, str], Keys] = {}

    def add(self, key: str, kind: str, name: str | None, parent: str | None) -> None:
        _put(self._by_kind, kind, key)
        if name is not None:
            _put(self._by_name, (kind, name), key)
        if parent is not None:
            _put(self._children, parent, key)
            if name is not None:
                _put(self._by_parent_name, (parent, name), key)

    def remove(self, key: str, kind: str, name: str | None, parent: str | None) -> None:
        """Undo :meth:`add` with the same values (absent entries are fine)."""
        _drop(self._by_kind, kind, key)
        if name is not None:
            _drop(self._by_name, (kind, name), key)
        if parent is not None:
            _drop(self._children, parent, key)
            if name is not None:
                _drop(self._by_parent_name, (parent, name), key)

    def clear(self) -> None:
        for index in (self._by_kind, self._by_name, self._children, self._by_parent_name):
            index.clear()

    def of_kind(self, kind: str) -> list[str]:
        return list(self._by_kind.get(kind, ()))

    def named(self, kind: str, name: str) -> list[str]:
        return list(self._by_name.get((kind, name), ()))

    def children(self, parent: str) -> list[str]:
        return list(self._children.get(parent, ()))

    def child(self, parent: str, name: str) -> list[str]:
        return list(self._by_parent_name.get((parent, name), ()))


def _put(index: dict[K, Keys], at: K, key: str) -> None:
    keys = index.get(at)
    if keys is None:
        index[at] = {key: None}
    else:
        keys[key] = None


def _drop(index: dict[K, Keys], at: K, key: str) -> None:
    keys = index.get(at)
    if keys is not None:
        keys.pop(key, None)
        if not keys:
            del index[at]

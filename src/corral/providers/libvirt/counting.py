"""Counting every libvirt call: a wrapper around libvirt's objects that adds one to a counter per
method called (``calls["defineXML"]`` …), and wraps the libvirt objects the call returns, so a
domain looked up through a counted connection is counted too. ``corral bench libvirt`` reads the
counter for "libvirt calls per VM"; it costs one dictionary update per call. Accessors that libvirt
answers from the object itself (a domain's name and UUID) are not calls to the host and are not
counted."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import libvirt

__all__ = ["Counted"]

_OBJECTS = (libvirt.virConnect, libvirt.virDomain, libvirt.virStoragePool, libvirt.virStorageVol,
            libvirt.virDomainSnapshot, libvirt.virNetwork)


_COUNTING = threading.Lock()

#: methods libvirt answers locally, without a message to the host
LOCAL = frozenset({"name", "UUID", "UUIDString", "ID", "connect", "getName"})


def _wrap(value: Any, calls: Counter[str]) -> Any:
    if isinstance(value, _OBJECTS):
        return Counted(value, calls)
    if isinstance(value, list) and value and isinstance(value[0], _OBJECTS):
        return [Counted(item, calls) for item in value]
    return value


def _unwrap(value: Any) -> Any:
    return value.wrapped if isinstance(value, Counted) else value


class Counted:
    """A libvirt object whose method calls are counted by name."""

    __slots__ = ("calls", "wrapped")

    def __init__(self, wrapped: Any, calls: Counter[str]) -> None:
        self.wrapped = wrapped
        self.calls = calls

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.wrapped, name)
        if name.startswith("_") or not callable(attr):
            return attr
        if name in LOCAL:
            return attr
        calls = self.calls

        def call(*args: Any, **kwargs: Any) -> Any:
            with _COUNTING:  # the host's worker threads count into one Counter
                calls[name] += 1
            return _wrap(attr(*map(_unwrap, args), **{k: _unwrap(v) for k, v in kwargs.items()}), calls)

        return call

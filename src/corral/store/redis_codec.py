"""How the Redis store writes a record's fields as strings and reads them back.

Python does all the encoding: floats as their ``repr`` (which reads back to the same float),
booleans as ``1``/``0``, tags and lists as JSON, None as an absent field. The Lua scripts
only move these strings, so no number is ever re-encoded on the way.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from typing import Any

from corral.domain.models import OndemandRequest, RequestedPool, RequestStatus, TokenRecord, Vm
from corral.domain.states import VmState
from corral.store.base import StoreError

_FLOATS = frozenset({"created_at", "cloned_at", "ready_at", "checkout_at", "completed_at", "destroyed_at",
                     "lifetime_s", "migrated_at", "migration_s"})
_STRINGS = frozenset({"name", "pool", "template", "provider", "host", "ip", "token", "user", "reason",
                      "request_id"})
_OTHERS = frozenset({"state", "tags", "migrated", "disks", "snapshots"})
FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Vm))
if frozenset(FIELDS) != _FLOATS | _STRINGS | _OTHERS:  # pragma: no cover - guards a Vm change
    raise ImportError("corral.store.redis_codec: the field kinds no longer match the Vm dataclass")

# Fields a caller may set with transition() / update_vm(): everything but the key and state.
_REQUIRED = frozenset({"name", "pool", "template", "state", "provider", "created_at", "tags", "migrated",
                       "disks", "snapshots"})


def number(value: object) -> str:
    """A float as stored: its repr, which reads back exactly."""
    return repr(float(value))  # type: ignore[arg-type]


def _tags(tags: object) -> str:
    if not isinstance(tags, dict):
        raise TypeError(f"tags must be a dict, not {type(tags).__name__}")
    return json.dumps(tags, sort_keys=True, separators=(",", ":"))


def _list(values: object) -> str:
    if not isinstance(values, list | tuple):
        raise TypeError(f"must be a list, not {type(values).__name__}")
    return json.dumps(list(values), separators=(",", ":"))


_ENCODERS: dict[str, Callable[[Any], str]] = {
    "state": lambda s: VmState(s).value,
    "tags": _tags,
    "migrated": lambda m: "1" if m else "0",
    "disks": _list,
    "snapshots": _list,
    **dict.fromkeys(_FLOATS, number),
    **dict.fromkeys(_STRINGS, str),
}
_DECODERS: dict[str, Callable[[str], Any]] = {
    "state": VmState,
    "tags": json.loads,
    "migrated": lambda m: m == "1",
    "disks": json.loads,
    "snapshots": json.loads,
    **dict.fromkeys(_FLOATS, float),
}


def encode(name: str, value: object) -> str | None:
    """One field as stored; None: the field is absent."""
    if value is None and name not in _REQUIRED:
        return None
    try:
        if value is None:
            raise TypeError("it may not be None")
        return _ENCODERS[name](value)
    except (TypeError, ValueError) as err:
        raise StoreError(f"bad value for VM field {name!r}: {err}") from None


def field_args(fields: Mapping[str, object]) -> tuple[list[str], list[str]]:
    """(field, value, field, value, ...) to set and the fields to delete, for a script."""
    sets: list[str] = []
    drops: list[str] = []
    for name, value in fields.items():
        encoded = encode(name, value)
        if encoded is None:
            drops.append(name)
        else:
            sets += (name, encoded)
    return sets, drops


def vm_args(vm: Vm) -> list[str]:
    """A whole VM as (field, value, ...) pairs, None fields left out."""
    out: list[str] = []
    for name in FIELDS:
        encoded = encode(name, getattr(vm, name))
        if encoded is not None:
            out += (name, encoded)
    return out


def pairs(flat: list[str]) -> dict[str, str]:
    """A flat HGETALL-style reply (field, value, ...) as a dict."""
    return dict(zip(flat[::2], flat[1::2], strict=True))


def decode_vm(stored: Mapping[str, str]) -> Vm:
    values: dict[str, Any] = {}
    for name, raw in stored.items():
        decoder = _DECODERS.get(name)
        if name in _ENCODERS:  # a field this version does not know is left alone
            values[name] = raw if decoder is None else decoder(raw)
    return Vm(**values)


# -- tokens and on-demand requests --------------------------------------------------------------

def optional(value: float | None) -> str:
    return "" if value is None else number(value)


def decode_token(stored: Mapping[str, str]) -> TokenRecord:
    last = stored.get("last_used_at", "")
    return TokenRecord(hash=stored["hash"], user=stored["user"], created_at=float(stored["created_at"]),
                       last_used_at=float(last) if last else None, hint=stored.get("hint", ""))


def dump(what: str, value: object) -> str:
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError) as err:
        raise StoreError(f"cannot store {what}: {err}") from None


def request_args(request: OndemandRequest) -> list[str]:
    try:
        lines = [{"label": r.label, "pool": r.pool, "count": int(r.count)} for r in request.requested]
    except (AttributeError, TypeError, ValueError) as err:
        raise StoreError(f"bad requested pools: {err}") from None
    out = ["id", request.id, "requested", dump("the requested pools", lines),
           "status", RequestStatus(request.status).value, "created_at", number(request.created_at)]
    for name in ("updated_at", "token", "user"):
        value = getattr(request, name)
        if value is not None:
            out += (name, number(value) if name == "updated_at" else str(value))
    return out


def decode_request(stored: Mapping[str, str]) -> OndemandRequest:
    updated = stored.get("updated_at")
    return OndemandRequest(
        id=stored["id"], requested=[RequestedPool(**r) for r in json.loads(stored["requested"])],
        status=RequestStatus(stored["status"]), created_at=float(stored["created_at"]),
        updated_at=None if updated is None else float(updated), token=stored.get("token"),
        user=stored.get("user"),
    )

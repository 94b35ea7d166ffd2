"""The Redis store: the store several corral processes share, with fenced writes.

Every record is a hash (:mod:`corral.store.redis_codec` encodes its fields); every move of a
VM is one Lua script (:mod:`corral.store.redis_scripts`) that checks and changes the VM and
its indexes at once, so two processes can never hand out one VM. Key names come from
:class:`~corral.store.redis_keys.Keys`; nothing scans keys.

:meth:`RedisStore.fenced` gives a pool manager a view whose writes for a pool carry the
manager's fencing token for that pool; the script refuses the whole write (:class:`Fenced`)
when the pool's fencing counter has passed the token, i.e. a newer lease exists.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable
from typing import Any, cast

from corral.domain.models import TimingKind, Vm
from corral.domain.states import VmState
from corral.store.base import StoreError, check_fields, checked_move, checkout_totals
from corral.store.redis_codec import (
    decode_vm,
    field_args,
    number,
    pairs,
    vm_args,
)
from corral.store.redis_conn import Guard, Scripts, client, scrubber
from corral.store.redis_keys import Keys
from corral.store.redis_meta import RedisMeta, refused

__all__ = ["RedisStore", "TokenOf"]

TokenOf = Callable[[str], int | None]
_POOL_CACHE_MAX = 100_000  # VM name -> pool guesses a fenced view keeps
_MOVED_TRIES = 3


def _optional(value: str | None) -> str:
    """A value a script tells from None: '=' and the value, or '' for None."""
    return "" if value is None else "=" + value


class RedisStore(RedisMeta):
    """A :class:`~corral.store.base.Store` on one Redis server, for one site (a key prefix).

    Thread-safe (a pool of connections); other processes open their own ``RedisStore``.
    The password is handed to the client and kept nowhere else.
    """

    def __init__(
        self,
        host: str = "localhost",
        port: int = 6379,
        password: str | None = None,
        *,
        site: str = "default",
        db: int = 0,
        timeout_s: float = 5.0,
    ) -> None:
        self.host = host
        self.port = port
        self.site = site
        self.db = db
        self.keys = Keys(site)
        self._client = client(host, port, password, db, timeout_s)
        self._guard = Guard(f"{host}:{port}", scrubber(password))
        self._scripts = Scripts(self._client, self.keys)
        self._token_of: TokenOf | None = None
        self._wake: list[str] = []  # the wake channel, in a waking view (see waking())
        self._pool_of: dict[str, str] = {}
        self._owner = True

    def __repr__(self) -> str:
        fenced = ", fenced" if self._token_of is not None else ""
        return f"RedisStore({self.host}:{self.port}, site={self.site!r}{fenced})"

    def fenced(self, token_of: TokenOf) -> RedisStore:
        """A view on the same connections whose writes for a pool carry ``token_of(pool)``.

        Fenced: add_vm(s), transition and update_vm (for the pool recorded in the VM's hash),
        set/clear_pool_override and record_duration(s). A refused write raises
        :class:`~corral.store.base.Fenced` and changes nothing. Checkouts (the API's), tokens,
        on-demand requests, tag records (they name no pool) and purges are not fenced.
        """
        view = copy.copy(self)
        view._token_of = token_of
        view._pool_of = {}
        view._owner = False
        return view

    def waking(self) -> RedisStore:
        """A view on the same connections whose checkouts and moves of a VM's state publish the
        VM's pool on the site's wake channel (``Keys.wake``), in the same script: a process that
        only answers the API wakes the pool's manager with no round trip of its own."""
        view = copy.copy(self)
        view._wake = [self.keys.wake]
        view._owner = False
        return view

    def close(self) -> None:
        """Close the connections (a fenced view leaves them to the store it came from)."""
        if self._owner:
            self._client.close()

    def __enter__(self) -> RedisStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ping(self) -> float:
        """Seconds one round trip to Redis takes; :class:`StoreUnavailable` if it cannot."""
        start = time.perf_counter()
        with self._guard:
            self._client.ping()
        return time.perf_counter() - start

    # -- fencing --------------------------------------------------------------------------

    def _token(self, pool: str) -> str:
        assert self._token_of is not None
        token = self._token_of(pool)
        return "none" if token is None else str(int(token))

    def _fences(self, pools: Iterable[str]) -> list[str]:
        """The fence pairs of a script: the count, then (pool, token) per distinct pool."""
        if self._token_of is None:
            return ["0"]
        distinct = list(dict.fromkeys(pools))
        out = [str(len(distinct))]
        for pool in distinct:
            out += (pool, self._token(pool))
        return out

    def _seen(self, vm: Vm) -> Vm:
        if self._token_of is not None:
            if len(self._pool_of) >= _POOL_CACHE_MAX:
                self._pool_of.clear()
            self._pool_of[vm.name] = vm.pool
        return vm

    def _decode(self, flat: list[str]) -> Vm:
        return self._seen(decode_vm(pairs(flat)))

    # -- the Store protocol ---------------------------------------------------------------

    def add_vm(self, vm: Vm) -> None:
        self.add_vms([vm])

    def add_vms(self, vms: list[Vm]) -> None:
        if not vms:
            return
        args = self._fences(vm.pool for vm in vms)
        for vm in vms:
            fields = vm_args(vm)
            args += (vm.name, str(len(fields)), *fields)
        with self._guard:
            reply = self._scripts.add(keys=[], args=args)
        refused(reply)
        if reply[0] == "exists":
            raise StoreError(f"VM {reply[1]!r} already exists in an active state")
        for vm in vms:
            self._seen(vm)

    def get_vm(self, name: str) -> Vm | None:
        stored = self._hash(self.keys.vm(name))
        return self._seen(decode_vm(stored)) if stored else None

    def list_vms(self, *, pool: str | None = None, states: Iterable[VmState] | None = None) -> list[Vm]:
        if states is None:
            wanted = [s.value for s in VmState]
        else:
            wanted = [VmState(s).value for s in ((states,) if isinstance(states, str) else states)]
            if not wanted:
                return []
        with self._guard:
            reply = self._scripts.list(keys=[], args=[_optional(pool), *dict.fromkeys(wanted)])
        vms = [self._decode(flat) for flat in reply if flat]
        return sorted(vms, key=lambda v: (v.created_at, v.name))

    def transition(self, name: str, expected: Iterable[VmState], new: VmState, **fields: object) -> Vm | None:
        dst, src = checked_move(expected, new)
        check_fields(fields)
        return self._set(name, [dst, str(len(src)), *src], fields)

    def transition_soon(self, name: str, expected: Iterable[VmState], new: VmState, **fields: object) -> Vm | None:
        """:meth:`transition`: one script, as every write here (nothing to gather)."""
        return self.transition(name, expected, new, **fields)

    def update_vm(self, name: str, **fields: object) -> Vm | None:
        check_fields(fields)
        if not fields:  # nothing to write: a read
            return self.get_vm(name)
        return self._set(name, ["", "0"], fields)

    def _set(self, name: str, move: list[str], fields: dict[str, object]) -> Vm | None:
        sets, drops = field_args(fields)
        tail = [*move, str(len(sets)), *sets, *drops]
        for _ in range(_MOVED_TRIES):
            fence = ["", ""]
            if self._token_of is not None:
                pool = self._pool_of.get(name)
                if pool is None:
                    with self._guard:
                        pool = cast(str | None, self._client.hget(self.keys.vm(name), "pool"))
                    if pool is None:
                        return None
                fence = ["=" + pool, self._token(pool)]
            with self._guard:
                reply = self._scripts.set(keys=self._wake, args=[name, *fence, *tail])
            refused(reply)
            if reply[0] == "moved":
                self._pool_of[name] = reply[1]
                continue
            return self._decode(reply[1]) if reply[0] == "ok" else None
        raise StoreError(f"VM {name!r} kept changing pools while it was written")

    def checkout(
        self, pool: str, *, now: float, lifetime_s: float, token: str | None = None, user: str | None = None
    ) -> Vm | None:
        vms = self._checkout({pool: 1}, now, {pool: lifetime_s}, token, user)
        return vms[0] if vms else None

    def checkout_many(
        self,
        wanted: list[tuple[str, int]],
        *,
        now: float,
        lifetimes: dict[str, float],
        token: str | None = None,
        user: str | None = None,
    ) -> list[Vm] | None:
        totals = checkout_totals(wanted, lifetimes)
        taken = self._checkout(totals, now, lifetimes, token, user)
        if taken is None:
            return None
        queues: dict[str, list[Vm]] = {}
        for vm in taken:  # each pool's VMs come longest-ready first
            queues.setdefault(vm.pool, []).append(vm)
        picks = {pool: iter(vms) for pool, vms in queues.items()}
        return [next(picks[pool]) for pool, count in wanted for _ in range(count)]

    def _checkout(
        self, totals: dict[str, int], now: float, lifetimes: dict[str, float], token: str | None, user: str | None
    ) -> list[Vm] | None:
        args = [number(now), _optional(token), _optional(user)]
        for pool, count in totals.items():
            if count:
                args += (pool, str(count), number(lifetimes[pool]))
        if len(args) == 3:
            return []
        with self._guard:
            reply = self._scripts.checkout(keys=self._wake, args=args)
        if reply[0] != "ok":
            return None
        return [self._decode(flat) for flat in reply[1:]]

    def counts(self) -> dict[str, dict[VmState, int]]:
        pools = self._members(self.keys.pools)
        result: dict[str, dict[VmState, int]] = {}
        for pool, stored in zip(pools, self._hashes([self.keys.counts(p) for p in pools]), strict=True):
            per_state = {VmState(state): int(n) for state, n in stored.items() if int(n) > 0}
            if per_state:
                result[pool] = per_state
        return result

    def purge_destroyed(self, older_than: float) -> int:
        keys = [*(self.keys.durations(k.value) for k in TimingKind), self.keys.tag_records]
        with self._guard:
            return int(self._scripts.purge(keys=keys, args=[number(older_than)]))

    def request_vms(self, request_id: str) -> list[Vm]:
        with self._guard:
            reply: list[Any] = self._scripts.request_vms(keys=[], args=[request_id])
        return sorted((self._decode(flat) for flat in reply if flat), key=lambda v: (v.created_at, v.name))

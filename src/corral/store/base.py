"""The store protocol: the durable, atomic record of every VM's state.

Every state move is a compare-and-set: it succeeds only if the VM is still in one of the
states the caller expects, so two actors can never both move one VM (two callers can never
check out one VM). Methods are synchronous and thread-safe; they are short local calls
(sqlite) or one round trip (redis).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Protocol, runtime_checkable

from corral.domain.models import OndemandRequest, RequestStatus, TimingKind, TokenRecord, Vm
from corral.domain.states import TRANSITIONS, VmState, can_move


class StoreError(Exception):
    """The store could not carry out an operation."""


#: The VM attributes a write may set (``state`` changes only by a move).
SETTABLE_FIELDS: frozenset[str] = frozenset(f.name for f in dataclasses.fields(Vm)) - {"name", "state"}


def check_fields(fields: Mapping[str, object]) -> None:
    """:class:`StoreError` naming a field a write may not set."""
    for name in fields.keys() - SETTABLE_FIELDS:
        hint = "; states change only by transition()" if name == "state" else ""
        raise StoreError(f"unknown or read-only VM field {name!r}{hint}")


def checked_move(expected: Iterable[VmState], new: VmState) -> tuple[str, tuple[str, ...]]:
    """The new and expected states as stored values; rejects a move the lifecycle forbids."""
    states = (expected,) if isinstance(expected, str) else tuple(expected)
    try:
        src = tuple(dict.fromkeys(VmState(s) for s in states))
        dst = VmState(new)
    except ValueError as err:
        raise TransitionRejected(str(err)) from None
    if not src:
        raise TransitionRejected(f"no expected state given for a move to {dst.value!r}")
    forbidden = [s.value for s in src if not can_move(s, dst)]
    if forbidden:
        allowed = {s.value: sorted(d.value for d in TRANSITIONS[s]) for s in src}
        raise TransitionRejected(f"the lifecycle forbids {', '.join(forbidden)} -> {dst.value} (allowed: {allowed})")
    return dst.value, tuple(s.value for s in src)


def checkout_totals(wanted: list[tuple[str, int]], lifetimes: dict[str, float]) -> dict[str, int]:
    """How many VMs of each pool a ``checkout_many`` takes (a pool may be named more than once);
    :class:`StoreError` for a negative count or a pool without a lifetime."""
    totals: dict[str, int] = {}
    for pool, count in wanted:
        if count < 0:
            raise StoreError(f"cannot check out {count} VMs of pool {pool!r}")
        if pool not in lifetimes:
            raise StoreError(f"no lifetime given for pool {pool!r}")
        totals[pool] = totals.get(pool, 0) + count
    return totals


class TransitionRejected(StoreError):
    """A state move that the lifecycle does not allow was asked for."""


class StoreUnavailable(StoreError):
    """The store cannot be reached, or refused the connection (a wrong password, say); trying
    again later may work. The message names the server and the cause, never a secret."""


class Fenced(StoreError):
    """A write for a pool was refused: a newer lease on the pool exists than the writer holds.

    ``current`` is the pool's fencing counter, ``token`` the writer's token (None: it holds
    no lease on the pool). Nothing of the write was done.
    """

    def __init__(self, pool: str, current: int, token: int | None) -> None:
        held = "no token" if token is None else f"token {token}"
        super().__init__(f"write for pool {pool!r} refused: its fencing token is now {current}, "
                         f"this writer holds {held}")
        self.pool = pool
        self.current = current
        self.token = token


@runtime_checkable
class Store(Protocol):
    def close(self) -> None: ...

    def add_vm(self, vm: Vm) -> None:
        """Record a new VM (normally ``pending``: the intent to create it).

        Raises :class:`StoreError` if a VM of that name is already recorded in an active state.
        A destroyed VM of the same name is replaced.
        """

    def add_vms(self, vms: list[Vm]) -> None:
        """Record several new VMs in one transaction: all of them, or (on :class:`StoreError`) none."""

    def get_vm(self, name: str) -> Vm | None: ...

    def list_vms(
        self,
        *,
        pool: str | None = None,
        states: Iterable[VmState] | None = None,
    ) -> list[Vm]:
        """VMs filtered by pool and/or states, oldest ``created_at`` first."""

    def transition(
        self,
        name: str,
        expected: Iterable[VmState],
        new: VmState,
        **fields: object,
    ) -> Vm | None:
        """Move ``name`` to ``new`` if it is in one of ``expected``; set ``fields`` too.

        Returns the updated VM, or None if the VM is missing or not in an expected state.
        Raises :class:`TransitionRejected` if the lifecycle forbids expected -> new.
        ``fields`` are :class:`~corral.domain.models.Vm` attribute names.
        """

    def transition_soon(
        self,
        name: str,
        expected: Iterable[VmState],
        new: VmState,
        **fields: object,
    ) -> Vm | None:
        """:meth:`transition`, for a move recovery redoes if a crash loses it (a VM found ready,
        a destroy found done): the store may commit it with its next write, a few milliseconds
        later at most (sqlite), or at once (Redis)."""

    def update_vm(self, name: str, **fields: object) -> Vm | None:
        """Set fields (never ``state``) on a VM; returns it, or None if missing."""

    def checkout(
        self,
        pool: str,
        *,
        now: float,
        lifetime_s: float,
        token: str | None = None,
        user: str | None = None,
    ) -> Vm | None:
        """Atomically take the longest-ready VM of ``pool``: ready -> running. None if empty."""

    def checkout_many(
        self,
        wanted: list[tuple[str, int]],
        *,
        now: float,
        lifetimes: dict[str, float],
        token: str | None = None,
        user: str | None = None,
    ) -> list[Vm] | None:
        """All or nothing: for each (pool, count) take that many ready VMs in one transaction.

        Returns the VMs in request order, or None (and changes nothing) if any pool is short.
        """

    def counts(self) -> dict[str, dict[VmState, int]]:
        """Per pool, the number of VMs in each active state (pools with none are absent).

        VMs of an on-demand request are not pool stock: they are left out while ``pending`` or
        ``ready`` (see :meth:`request_vms`), and counted like any VM once running or later.
        ``checkout``/``checkout_many`` never hand out a VM of an on-demand request.
        """

    def purge_destroyed(self, older_than: float) -> int:
        """Forget destroyed VMs whose ``destroyed_at`` is before ``older_than``; returns the count.

        Also forgets history older than that: task durations, tag records, and on-demand
        requests that ended (ready, failed or deleted) and were last updated before it.
        """

    def request_vms(self, request_id: str) -> list[Vm]:
        """The VMs (any state but destroyed) created for an on-demand request."""

    # -- API tokens (only hashes are stored) -----------------------------------------------
    def add_token(self, token: TokenRecord) -> None:
        """Record a token; :class:`StoreError` if its hash is already recorded."""

    def get_token(self, token_hash: str) -> TokenRecord | None: ...

    def touch_token(self, token_hash: str, now: float) -> None:
        """Record that a token was just used (``last_used_at``)."""

    def user_tokens(self, user: str) -> list[TokenRecord]:
        """The tokens of one user, oldest first."""

    def delete_token(self, token_hash: str) -> bool:
        """Forget a token; False if it was not recorded."""

    # -- pool settings changed at the API (they outlive restarts) ----------------------------
    def pool_overrides(self) -> dict[str, dict[str, object]]:
        """pool -> {setting -> value} for every override set (settings: size, template, clone_target)."""

    def set_pool_override(self, pool: str, setting: str, value: object) -> None: ...

    def clear_pool_override(self, pool: str, setting: str) -> bool:
        """Drop one override; False if it was not set."""

    # -- on-demand requests -----------------------------------------------------------------
    def add_request(self, request: OndemandRequest) -> bool:
        """Record a new request; False (and nothing changes) if its id is already recorded."""

    def get_request(self, request_id: str) -> OndemandRequest | None: ...

    def list_requests(self, statuses: Iterable[RequestStatus]) -> list[OndemandRequest]:
        """Requests in any of ``statuses``, oldest first."""

    def set_request_status(
        self, request_id: str, expected: Iterable[RequestStatus], new: RequestStatus, now: float
    ) -> bool:
        """Compare-and-set of a request's status; False if it is missing or not in ``expected``."""

    # -- history for /summary -----------------------------------------------------------------
    def record_duration(self, task: TimingKind, pool: str, vm: str, seconds: float, at: float) -> None:
        """Remember how long a ``clone`` or ``boot`` of ``vm`` took, finishing at ``at``."""

    def record_durations(self, rows: Iterable[tuple[TimingKind, str, str, float, float]]) -> None:
        """Several :meth:`record_duration` rows (task, pool, vm, seconds, at) in one transaction."""

    def durations(self, task: TimingKind, since: float, until: float) -> list[tuple[float, str, float]]:
        """(at, pool, seconds) of every ``task`` that finished in [since, until)."""

    def record_tags(self, vm: str, tags: dict[str, str], at: float) -> None:
        """Remember the tags set on ``vm`` at ``at`` (for the tag summary)."""

    def tag_records(self, since: float, until: float) -> list[tuple[float, str, str, str]]:
        """(at, vm, tag, value) of every tag set in [since, until)."""

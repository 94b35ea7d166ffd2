"""The contract every store passes: subclass :class:`StoreContract` and provide two fixtures.

- ``store``: a fresh, empty store, closed after the test;
- ``store_factory``: a picklable zero-argument callable that opens another handle on the
  very store ``store`` is (the multi-process test calls it in child processes).
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from corral.domain.models import (
    OndemandRequest,
    RequestedPool,
    RequestStatus,
    TimingKind,
    TokenRecord,
    Vm,
)
from corral.domain.states import ACTIVE_STATES, TRANSITIONS, VmState, can_move
from corral.store.base import Store, StoreError, TransitionRejected

from ._workers import checkout_process, checkout_until_empty

S = VmState


def make_vm(name: str, pool: str = "pool-a", state: VmState = S.PENDING, **fields: Any) -> Vm:
    fields.setdefault("created_at", 1000.0)
    return Vm(name=name, pool=pool, template="tpl-" + pool, state=state, **fields)


def fill(store: Store, pool: str, n: int, *, ready_at: float = 2000.0) -> list[str]:
    """Add ``n`` ready VMs to ``pool``, the first one ready longest; returns their names."""
    names = [f"{pool}-{i:04d}" for i in range(n)]
    for i, name in enumerate(names):
        store.add_vm(make_vm(name, pool, S.READY, ready_at=ready_at + i))
    return names


def assert_handed_out_once(store: Store, got: dict[str, list[str]], names: list[str]) -> None:
    """Every VM of ``names`` went to exactly one worker, and the store agrees which."""
    handed = Counter(n for taken in got.values() for n in taken)
    twice = sorted(n for n, c in handed.items() if c > 1)
    assert not twice, f"handed out more than once: {twice}"
    assert sorted(handed) == sorted(names)
    for label, taken in got.items():
        for name in taken:
            vm = store.get_vm(name)
            assert vm is not None and vm.state is S.RUNNING and vm.token == label


FORBIDDEN = [(a, b) for a in VmState for b in VmState if not can_move(a, b)]


class StoreContract:
    # -- records --------------------------------------------------------------------------

    def test_is_a_store(self, store: Store) -> None:
        assert isinstance(store, Store)

    def test_round_trip_of_every_field(self, store: Store) -> None:
        vm = Vm(
            name="full-1", pool="pool-a", template="tpl", state=S.RUNNING, provider="vsphere",
            host="esx-1", ip="10.1.2.3", created_at=1000.25, cloned_at=1001.5, ready_at=1002.0,
            checkout_at=1003.125, completed_at=1004.0, destroyed_at=1005.0, lifetime_s=3600.0,
            token="tok-hash", user="alice", tags={"team": "qa", "jira": "ABC-1", "ü": "ß"},
            migrated=True, reason="because", request_id="req-1", disks=["+8gb", "+20gb"],
            snapshots=["before-upgrade", "ü-snap"],
        )
        store.add_vm(vm)
        got = store.get_vm("full-1")
        assert got == vm
        assert got is not vm
        assert got.state is S.RUNNING and got.migrated is True
        for name in ("created_at", "cloned_at", "ready_at", "checkout_at", "lifetime_s"):
            assert type(getattr(got, name)) is float, name

    def test_round_trip_of_defaults_and_none(self, store: Store) -> None:
        vm = Vm(name="bare-1", pool="pool-a", template="tpl")
        store.add_vm(vm)
        got = store.get_vm("bare-1")
        assert got == vm
        assert got.tags == {} and got.migrated is False and got.host is None
        assert got.request_id is None and got.disks == [] and got.snapshots == []
        assert got.state is S.PENDING

    def test_get_missing_is_none(self, store: Store) -> None:
        assert store.get_vm("nope") is None

    @pytest.mark.parametrize("state", sorted(ACTIVE_STATES))
    def test_duplicate_active_name_raises(self, store: Store, state: VmState) -> None:
        store.add_vm(make_vm("dup-1", "pool-a", state))
        with pytest.raises(StoreError, match="dup-1"):
            store.add_vm(make_vm("dup-1", "pool-b"))
        got = store.get_vm("dup-1")
        assert got.pool == "pool-a" and got.state is state

    def test_add_vms_records_all(self, store: Store) -> None:
        store.add_vms([make_vm(f"many-{i}", "pool-a", created_at=float(i)) for i in range(5)])
        assert [v.name for v in store.list_vms(pool="pool-a")] == [f"many-{i}" for i in range(5)]

    def test_add_vms_is_all_or_nothing(self, store: Store) -> None:
        store.add_vm(make_vm("taken-1", "pool-a", S.READY))
        with pytest.raises(StoreError, match="taken-1"):
            store.add_vms([make_vm("fresh-1", "pool-b"), make_vm("taken-1", "pool-b"), make_vm("fresh-2", "pool-b")])
        assert store.get_vm("fresh-1") is None and store.get_vm("fresh-2") is None
        assert store.get_vm("taken-1").pool == "pool-a"

    def test_destroyed_name_can_be_added_again(self, store: Store) -> None:
        store.add_vm(make_vm("re-1", "pool-a", S.DESTROYED, destroyed_at=5.0, tags={"a": "b"}))
        store.add_vm(make_vm("re-1", "pool-b", created_at=7.0))
        got = store.get_vm("re-1")
        assert (got.pool, got.state, got.destroyed_at, got.tags) == ("pool-b", S.PENDING, None, {})
        assert [v.name for v in store.list_vms()] == ["re-1"]

    def test_list_vms_order_and_filters(self, store: Store) -> None:
        store.add_vm(make_vm("c", "pool-a", S.READY, created_at=3.0))
        store.add_vm(make_vm("b", "pool-b", S.READY, created_at=1.0))
        store.add_vm(make_vm("a", "pool-a", S.PENDING, created_at=3.0))
        store.add_vm(make_vm("d", "pool-a", S.RUNNING, created_at=2.0))
        assert [v.name for v in store.list_vms()] == ["b", "d", "a", "c"]
        assert [v.name for v in store.list_vms(pool="pool-a")] == ["d", "a", "c"]
        assert [v.name for v in store.list_vms(states=[S.READY])] == ["b", "c"]
        assert [v.name for v in store.list_vms(pool="pool-a", states={S.READY, S.RUNNING})] == [
            "d", "c",
        ]
        assert store.list_vms(states=[]) == []
        assert store.list_vms(pool="pool-z") == []

    # -- transitions ----------------------------------------------------------------------

    def test_transition_is_compare_and_set(self, store: Store) -> None:
        store.add_vm(make_vm("cas-1"))
        assert store.transition("cas-1", [S.READY], S.RUNNING, token="t") is None
        assert store.get_vm("cas-1") == make_vm("cas-1")
        moved = store.transition("cas-1", [S.PENDING], S.READY, ready_at=1010.5, ip="10.0.0.9")
        assert moved is not None
        assert (moved.state, moved.ready_at, moved.ip) == (S.READY, 1010.5, "10.0.0.9")
        assert store.get_vm("cas-1") == moved
        assert store.transition("cas-1", [S.PENDING], S.READY) is None  # already moved

    def test_transition_from_any_of_several_states(self, store: Store) -> None:
        store.add_vm(make_vm("m-1", state=S.RUNNING))
        store.add_vm(make_vm("m-2", state=S.MIGRATING))
        store.add_vm(make_vm("m-3", state=S.READY))
        for name in ("m-1", "m-2", "m-3"):
            store.transition(name, [S.RUNNING, S.MIGRATING], S.COMPLETED, reason="expired")
        assert [v.name for v in store.list_vms(states=[S.COMPLETED])] == ["m-1", "m-2"]
        assert store.get_vm("m-1").reason == "expired" and store.get_vm("m-3").reason is None

    def test_transition_soon_is_a_compare_and_set_every_handle_sees_moments_later(
            self, store: Store, store_factory: Any) -> None:
        store.add_vm(make_vm("soon-1"))
        assert store.transition_soon("soon-1", [S.READY], S.RUNNING) is None
        moved = store.transition_soon("soon-1", [S.PENDING], S.READY, ready_at=2000.5)
        assert moved is not None and moved.state is S.READY and moved.ready_at == 2000.5
        with pytest.raises(TransitionRejected):
            store.transition_soon("soon-1", [S.READY], S.PENDING)
        other = store_factory()
        try:
            deadline = time.monotonic() + 2
            while (seen := other.get_vm("soon-1")) is None or seen.state is not S.READY:
                assert time.monotonic() < deadline, f"another handle still sees {seen}"
                time.sleep(0.005)
        finally:
            other.close()

    def test_transition_of_missing_vm_is_none(self, store: Store) -> None:
        assert store.transition("ghost", [S.PENDING], S.READY) is None

    def test_every_forbidden_move_is_rejected(self, store: Store) -> None:
        assert len(FORBIDDEN) > 40  # the lifecycle forbids most pairs
        for src, dst in FORBIDDEN:
            name = f"f-{src.value}-{dst.value}"
            store.add_vm(make_vm(name, state=src))
            with pytest.raises(TransitionRejected) as info:
                store.transition(name, [src], dst, reason="nope")
            assert src.value in str(info.value) and dst.value in str(info.value)
            assert store.get_vm(name) == make_vm(name, state=src)

    def test_a_forbidden_state_among_allowed_ones_is_rejected(self, store: Store) -> None:
        store.add_vm(make_vm("fa-1", state=S.READY))
        with pytest.raises(TransitionRejected, match="pending"):
            store.transition("fa-1", [S.READY, S.PENDING], S.RUNNING)
        with pytest.raises(TransitionRejected):
            store.transition("fa-1", [], S.RUNNING)
        assert store.get_vm("fa-1").state is S.READY

    def test_full_lifecycle(self, store: Store) -> None:
        store.add_vm(make_vm("life-1", created_at=1.0))
        path = [
            (S.PENDING, S.READY, {"ready_at": 2.0, "host": "h1"}),
            (S.READY, S.RUNNING, {"checkout_at": 3.0, "lifetime_s": 60.0, "token": "t"}),
            (S.RUNNING, S.MIGRATING, {}),
            (S.MIGRATING, S.RUNNING, {"host": "h2", "migrated": True}),
            (S.RUNNING, S.COMPLETED, {"completed_at": 4.0, "reason": "returned"}),
            (S.COMPLETED, S.DESTROYED, {"destroyed_at": 5.0}),
        ]
        for src, dst, fields in path:
            assert dst in TRANSITIONS[src]
            vm = store.transition("life-1", [src], dst, **fields)
            assert vm is not None and vm.state is dst, (src, dst)
        assert store.get_vm("life-1") == Vm(
            name="life-1", pool="pool-a", template="tpl-pool-a", state=S.DESTROYED,
            created_at=1.0, ready_at=2.0, host="h2", checkout_at=3.0, lifetime_s=60.0,
            token="t", migrated=True, completed_at=4.0, reason="returned", destroyed_at=5.0,
        )
        assert store.counts() == {}

    def test_state_is_not_a_field(self, store: Store) -> None:
        store.add_vm(make_vm("st-1"))
        with pytest.raises(StoreError, match="state"):
            store.update_vm("st-1", state=S.READY)
        with pytest.raises(StoreError, match="state"):
            store.transition("st-1", [S.PENDING], S.READY, state=S.FAILED)
        assert store.get_vm("st-1").state is S.PENDING

    def test_unknown_field_raises_and_changes_nothing(self, store: Store) -> None:
        store.add_vm(make_vm("uf-1"))
        with pytest.raises(StoreError, match="colour"):
            store.update_vm("uf-1", host="h", colour="red")
        with pytest.raises(StoreError, match="colour"):
            store.transition("uf-1", [S.PENDING], S.READY, colour="red")
        assert store.get_vm("uf-1") == make_vm("uf-1")

    def test_update_vm(self, store: Store) -> None:
        store.add_vm(make_vm("up-1", state=S.RUNNING, tags={"a": "1"}))
        vm = store.update_vm("up-1", host="h9", tags={"b": "2"}, migrated=True, ip=None)
        assert (vm.host, vm.tags, vm.migrated, vm.state) == ("h9", {"b": "2"}, True, S.RUNNING)
        assert store.get_vm("up-1") == vm
        assert store.update_vm("ghost", host="h") is None

    def test_list_fields_through_update_and_transition(self, store: Store) -> None:
        store.add_vm(make_vm("lf-1", state=S.READY, disks=["+8gb"]))
        vm = store.update_vm("lf-1", disks=["+8gb", "+16gb"], snapshots=("snap-1",))
        assert (vm.disks, vm.snapshots) == (["+8gb", "+16gb"], ["snap-1"])
        vm.disks.append("+1gb")  # a returned list is the caller's own
        assert store.get_vm("lf-1").disks == ["+8gb", "+16gb"]
        moved = store.transition("lf-1", [S.READY], S.RUNNING, snapshots=["snap-1", "snap-2"])
        assert (moved.disks, moved.snapshots) == (["+8gb", "+16gb"], ["snap-1", "snap-2"])
        assert store.update_vm("lf-1", disks=[]).disks == []
        for bad in ("+8gb", {"a": 1}, None):
            with pytest.raises(StoreError, match="disks"):
                store.update_vm("lf-1", disks=bad)
        assert store.get_vm("lf-1") == dataclasses.replace(moved, disks=[])

    # -- checkout -------------------------------------------------------------------------

    def test_checkout_takes_the_longest_ready_vm(self, store: Store) -> None:
        store.add_vm(make_vm("r-late", "pool-a", S.READY, ready_at=30.0))
        store.add_vm(make_vm("r-tie-b", "pool-a", S.READY, ready_at=20.0))
        store.add_vm(make_vm("r-tie-a", "pool-a", S.READY, ready_at=20.0))
        store.add_vm(make_vm("r-early", "pool-a", S.READY, ready_at=10.0))
        # Older but not ready, or not in this pool: never handed out.
        store.add_vm(make_vm("x-pending", "pool-a", S.PENDING, ready_at=1.0))
        store.add_vm(make_vm("x-running", "pool-a", S.RUNNING, ready_at=1.0))
        store.add_vm(make_vm("x-failed", "pool-a", S.FAILED, ready_at=1.0))
        store.add_vm(make_vm("x-other", "pool-b", S.READY, ready_at=1.0))
        order = []
        while (vm := store.checkout("pool-a", now=500.0, lifetime_s=90.0, token="t", user="u")):
            assert (vm.state, vm.checkout_at, vm.lifetime_s, vm.token, vm.user) == (
                S.RUNNING, 500.0, 90.0, "t", "u",
            )
            assert store.get_vm(vm.name) == vm
            order.append(vm.name)
        assert order == ["r-early", "r-tie-a", "r-tie-b", "r-late"]
        assert store.checkout("pool-a", now=501.0, lifetime_s=90.0) is None
        assert store.get_vm("x-pending") == make_vm("x-pending", "pool-a", S.PENDING, ready_at=1.0)
        assert store.get_vm("x-running").checkout_at is None
        assert store.get_vm("x-other").state is S.READY

    def test_checkout_of_empty_or_unknown_pool_is_none(self, store: Store) -> None:
        assert store.checkout("pool-a", now=1.0, lifetime_s=1.0) is None
        store.add_vm(make_vm("p-1", "pool-a", S.PENDING))
        assert store.checkout("pool-a", now=1.0, lifetime_s=1.0) is None
        assert store.get_vm("p-1").state is S.PENDING

    def test_checkout_many_in_request_order(self, store: Store) -> None:
        a = fill(store, "pool-a", 4)
        b = fill(store, "pool-b", 2)
        got = store.checkout_many(
            [("pool-a", 1), ("pool-b", 1), ("pool-a", 2)], now=50.0,
            lifetimes={"pool-a": 10.0, "pool-b": 20.0}, token="tok", user="bob",
        )
        assert [v.name for v in got] == [a[0], b[0], a[1], a[2]]
        for vm in got:
            assert (vm.state, vm.checkout_at, vm.token, vm.user) == (S.RUNNING, 50.0, "tok", "bob")
            assert vm.lifetime_s == {"pool-a": 10.0, "pool-b": 20.0}[vm.pool]
            assert store.get_vm(vm.name) == vm
        assert store.counts() == {
            "pool-a": {S.READY: 1, S.RUNNING: 3}, "pool-b": {S.READY: 1, S.RUNNING: 1},
        }
        assert store.checkout_many([], now=1.0, lifetimes={}) == []

    @pytest.mark.parametrize(
        "wanted",
        [
            [("pool-a", 2), ("pool-b", 2)],  # pool-b is short
            [("pool-a", 2), ("pool-a", 2)],  # repeated: 4 of pool-a wanted, 3 ready
            [("pool-a", 1), ("pool-c", 1)],  # no such pool
        ],
    )
    def test_checkout_many_is_all_or_nothing(self, store: Store, wanted: list) -> None:
        fill(store, "pool-a", 3)
        fill(store, "pool-b", 1)
        before = store.list_vms()
        lifetimes = {"pool-a": 1.0, "pool-b": 1.0, "pool-c": 1.0}
        assert store.checkout_many(wanted, now=9.0, lifetimes=lifetimes, token="t") is None
        assert store.list_vms() == before

    # -- counts and purge -----------------------------------------------------------------

    def test_counts_per_pool_and_state(self, store: Store) -> None:
        assert store.counts() == {}
        fill(store, "pool-a", 3)
        store.add_vm(make_vm("a-p", "pool-a", S.PENDING))
        store.add_vm(make_vm("a-d", "pool-a", S.DESTROYED))
        store.add_vm(make_vm("b-r", "pool-b", S.RUNNING))
        store.add_vm(make_vm("b-f", "pool-b", S.FAILED))
        store.add_vm(make_vm("c-d", "pool-c", S.DESTROYED))
        counts = store.counts()
        assert counts == {
            "pool-a": {S.READY: 3, S.PENDING: 1},
            "pool-b": {S.RUNNING: 1, S.FAILED: 1},
        }
        assert all(type(s) is VmState for per_pool in counts.values() for s in per_pool)
        store.checkout("pool-a", now=1.0, lifetime_s=1.0)
        assert store.counts()["pool-a"] == {S.READY: 2, S.RUNNING: 1, S.PENDING: 1}

    def test_purge_destroyed(self, store: Store) -> None:
        store.add_vm(make_vm("d-old", state=S.DESTROYED, destroyed_at=10.0))
        store.add_vm(make_vm("d-new", state=S.DESTROYED, destroyed_at=20.0))
        store.add_vm(make_vm("c-old", state=S.COMPLETED, completed_at=1.0, destroyed_at=1.0))
        assert store.purge_destroyed(15.0) == 1
        assert [v.name for v in store.list_vms()] == ["c-old", "d-new"]
        assert store.purge_destroyed(15.0) == 0
        assert store.purge_destroyed(25.0) == 1
        assert [v.name for v in store.list_vms()] == ["c-old"]

    # -- VMs of on-demand requests ----------------------------------------------------------

    def test_request_vms_are_not_pool_stock(self, store: Store) -> None:
        stock = fill(store, "pool-a", 2, ready_at=100.0)
        # Ready longer than the stock, and pending: neither counted nor handed out.
        store.add_vm(make_vm("od-r", "pool-a", S.READY, ready_at=1.0, request_id="req-1"))
        store.add_vm(make_vm("od-p", "pool-a", S.PENDING, request_id="req-1"))
        store.add_vm(make_vm("od-b", "pool-b", S.READY, ready_at=1.0, request_id="req-2"))
        assert store.counts() == {"pool-a": {S.READY: 2}}
        assert store.checkout("pool-b", now=5.0, lifetime_s=1.0) is None
        assert store.checkout_many([("pool-b", 1)], now=5.0, lifetimes={"pool-b": 1.0}) is None
        assert store.checkout_many(
            [("pool-a", 3)], now=5.0, lifetimes={"pool-a": 1.0}
        ) is None  # two of stock, not three
        taken = [store.checkout("pool-a", now=5.0, lifetime_s=1.0) for _ in range(3)]
        assert [vm and vm.name for vm in taken] == [*stock, None]
        assert store.get_vm("od-r").state is S.READY and store.get_vm("od-b").state is S.READY

    def test_request_vms_count_once_handed_out(self, store: Store) -> None:
        for i, state in enumerate((S.PENDING, S.READY, S.READY, S.FAILED, S.DESTROYED)):
            store.add_vm(make_vm(f"od-{i}", "pool-a", state, ready_at=1.0, request_id="req-1"))
        assert store.counts() == {"pool-a": {S.FAILED: 1}}
        store.transition("od-1", [S.READY], S.RUNNING, checkout_at=2.0, token="t")
        store.transition("od-2", [S.READY], S.COMPLETED, completed_at=2.0)
        assert store.counts() == {"pool-a": {S.FAILED: 1, S.RUNNING: 1, S.COMPLETED: 1}}
        store.transition("od-0", [S.PENDING], S.READY, ready_at=3.0)
        assert store.counts() == {"pool-a": {S.FAILED: 1, S.RUNNING: 1, S.COMPLETED: 1}}

    def test_request_vms(self, store: Store) -> None:
        store.add_vm(make_vm("r1-b", state=S.READY, created_at=2.0, request_id="req-1"))
        store.add_vm(make_vm("r1-a", "pool-b", state=S.PENDING, created_at=2.0, request_id="req-1"))
        store.add_vm(make_vm("r1-0", state=S.RUNNING, created_at=1.0, request_id="req-1"))
        store.add_vm(make_vm("r1-x", state=S.DESTROYED, created_at=0.5, request_id="req-1"))
        store.add_vm(make_vm("r2-a", state=S.READY, request_id="req-2"))
        fill(store, "pool-a", 2)
        got = store.request_vms("req-1")
        assert [v.name for v in got] == ["r1-0", "r1-a", "r1-b"]
        assert all(v == store.get_vm(v.name) for v in got)
        assert [v.name for v in store.request_vms("req-2")] == ["r2-a"]
        assert store.request_vms("req-3") == []

    # -- tokens ----------------------------------------------------------------------------

    def test_tokens(self, store: Store) -> None:
        assert store.get_token("h1") is None and store.user_tokens("alice") == []
        t1 = TokenRecord(hash="h1", user="alice", created_at=20.0, hint="abcd…wxyz")
        t2 = TokenRecord(hash="h2", user="bob", created_at=5.0)
        t3 = TokenRecord(hash="h3", user="alice", created_at=10.0, last_used_at=11.5)
        t4 = TokenRecord(hash="h0", user="alice", created_at=15.0)
        for token in (t1, t2, t3, t4):
            store.add_token(token)
        assert store.get_token("h1") == t1 and store.get_token("h3") == t3
        assert store.user_tokens("alice") == [t3, t4, t1]  # oldest first
        assert store.user_tokens("carol") == []
        store.touch_token("h1", 30.0)
        store.touch_token("missing", 30.0)  # no error, nothing recorded
        assert store.get_token("h1") == dataclasses.replace(t1, last_used_at=30.0)
        assert store.get_token("missing") is None
        assert type(store.get_token("h1").last_used_at) is float
        assert store.delete_token("h1") is True
        assert store.delete_token("h1") is False
        assert store.get_token("h1") is None and store.user_tokens("alice") == [t3, t4]

    def test_duplicate_token_hash_raises(self, store: Store) -> None:
        first = TokenRecord(hash="dup", user="alice", created_at=1.0, hint="aaaa…zzzz")
        store.add_token(first)
        with pytest.raises(StoreError):
            store.add_token(TokenRecord(hash="dup", user="mallory", created_at=2.0))
        assert store.get_token("dup") == first
        assert store.user_tokens("mallory") == []

    # -- pool overrides --------------------------------------------------------------------

    def test_pool_overrides_upsert_and_clear(self, store: Store) -> None:
        assert store.pool_overrides() == {}
        store.set_pool_override("pool-a", "size", 5)
        store.set_pool_override("pool-a", "template", "tpl-new")
        store.set_pool_override("pool-b", "clone_target", {"cluster": "c1", "hosts": ["h1"]})
        store.set_pool_override("pool-a", "size", 7)  # replaces, no duplicate
        assert store.pool_overrides() == {
            "pool-a": {"size": 7, "template": "tpl-new"},
            "pool-b": {"clone_target": {"cluster": "c1", "hosts": ["h1"]}},
        }
        assert type(store.pool_overrides()["pool-a"]["size"]) is int
        assert store.clear_pool_override("pool-a", "size") is True
        assert store.clear_pool_override("pool-a", "size") is False
        assert store.clear_pool_override("pool-z", "size") is False
        assert store.clear_pool_override("pool-b", "clone_target") is True
        assert store.pool_overrides() == {"pool-a": {"template": "tpl-new"}}  # pool-b is absent

    def test_unstorable_override_raises(self, store: Store) -> None:
        store.set_pool_override("pool-a", "size", 3)
        with pytest.raises(StoreError):
            store.set_pool_override("pool-a", "size", object())
        assert store.pool_overrides() == {"pool-a": {"size": 3}}

    # -- on-demand requests ----------------------------------------------------------------

    def test_request_round_trip_and_duplicate_id(self, store: Store) -> None:
        request = OndemandRequest(
            id="req-1",
            requested=[RequestedPool("centos", "pool-a", 2), RequestedPool("win", "pool-b", 1)],
            created_at=10.0, token="tok-hash", user="alice",
        )
        assert store.add_request(request) is True
        got = store.get_request("req-1")
        assert got == request and got is not request
        assert got.status == RequestStatus.PENDING and got.updated_at is None
        assert all(type(line) is RequestedPool for line in got.requested)
        again = OndemandRequest(id="req-1", requested=[RequestedPool("x", "pool-x", 9)],
                                created_at=99.0)
        assert store.add_request(again) is False
        assert store.get_request("req-1") == request
        assert store.get_request("req-2") is None

    @pytest.mark.parametrize("status", list(RequestStatus))
    def test_request_status_round_trips_as_its_enum(self, store: Store, status: RequestStatus) -> None:
        store.add_request(OndemandRequest(id="req-1", requested=[], status=status, created_at=1.0))
        got = store.get_request("req-1")
        assert got is not None and got.status is status
        assert [r.id for r in store.list_requests([status])] == ["req-1"]
        assert all(r.status is status for r in store.list_requests([status]))

    @pytest.mark.parametrize(("start", "end"), [
        (RequestStatus.PENDING, RequestStatus.READY),
        (RequestStatus.PENDING, RequestStatus.FAILED),
        (RequestStatus.PENDING, RequestStatus.DELETED),
        (RequestStatus.READY, RequestStatus.DELETED),
    ])
    def test_a_status_set_comes_back_as_its_enum(self, store: Store, start: RequestStatus,
                                                 end: RequestStatus) -> None:
        store.add_request(OndemandRequest(id="req-1", requested=[], status=start, created_at=1.0))
        assert store.set_request_status("req-1", [start], end, now=2.0) is True
        got = store.get_request("req-1")
        assert got is not None and got.status is end

    def test_list_requests(self, store: Store) -> None:
        for rid, status, created in [("c", RequestStatus.PENDING, 3.0),
                                     ("a", RequestStatus.READY, 1.0),
                                     ("b", RequestStatus.PENDING, 1.0),
                                     ("d", RequestStatus.FAILED, 0.5)]:
            store.add_request(OndemandRequest(id=rid, requested=[], status=status,
                                              created_at=created))
        assert [r.id for r in store.list_requests([RequestStatus.PENDING])] == ["b", "c"]
        pending_or_ready = store.list_requests({RequestStatus.PENDING, RequestStatus.READY})
        assert [r.id for r in pending_or_ready] == ["a", "b", "c"]
        assert [r.id for r in store.list_requests(RequestStatus.FAILED)] == ["d"]
        assert store.list_requests([]) == []
        assert store.list_requests([RequestStatus.DELETED]) == []

    def test_request_status_is_compare_and_set(self, store: Store) -> None:
        store.add_request(OndemandRequest(id="req-1", requested=[], created_at=1.0))
        P, R, F, D = (RequestStatus.PENDING, RequestStatus.READY, RequestStatus.FAILED,
                      RequestStatus.DELETED)
        assert store.set_request_status("req-1", [R], D, now=2.0) is False
        assert store.get_request("req-1").status == P
        assert store.get_request("req-1").updated_at is None
        assert store.set_request_status("req-1", [P, F], R, now=3.0) is True
        got = store.get_request("req-1")
        assert (got.status, got.updated_at) == (R, 3.0)
        assert store.set_request_status("req-1", [P], F, now=4.0) is False  # already moved
        assert store.set_request_status("req-1", [], D, now=4.0) is False
        assert store.set_request_status("ghost", [P], R, now=4.0) is False
        assert store.get_request("req-1") == got

    def test_request_status_race_has_one_winner(self, store: Store) -> None:
        store.add_request(OndemandRequest(id="req-1", requested=[], created_at=1.0))
        barrier = threading.Barrier(8)

        def racer(i: int) -> bool:
            barrier.wait(30)
            return store.set_request_status(
                "req-1", [RequestStatus.PENDING], RequestStatus.READY, now=float(i)
            )

        with ThreadPoolExecutor(8) as pool:
            won = [i for i, ok in enumerate(pool.map(racer, range(8))) if ok]
        assert len(won) == 1
        assert store.get_request("req-1").updated_at == float(won[0])

    # -- history ----------------------------------------------------------------------------

    def test_durations_are_a_half_open_range(self, store: Store) -> None:
        CLONE, BOOT = TimingKind.CLONE, TimingKind.BOOT
        store.record_duration(CLONE, "pool-a", "v-1", 3.5, at=100.0)
        store.record_duration(CLONE, "pool-b", "v-2", 4, at=110)
        store.record_duration(BOOT, "pool-a", "v-1", 9.0, at=105.0)
        store.record_duration(CLONE, "pool-a", "v-3", 2.0, at=90.0)
        store.record_duration(CLONE, "pool-a", "v-4", 1.0, at=120.0)
        got = store.durations(CLONE, 100.0, 120.0)  # 100 is in, 120 is out
        assert got == [(100.0, "pool-a", 3.5), (110.0, "pool-b", 4.0)]
        assert all(type(at) is float and type(s) is float for at, _, s in got)
        assert store.durations(BOOT, 0.0, 1000.0) == [(105.0, "pool-a", 9.0)]
        assert store.durations(CLONE, 120.0, 120.0) == []

    @pytest.mark.parametrize("kind", list(TimingKind))
    def test_each_timing_kind_is_kept_apart(self, store: Store, kind: TimingKind) -> None:
        store.record_durations([(k, "pool-a", f"v-{k}", 1.0, 10.0) for k in TimingKind])
        assert store.durations(kind, 0.0, 100.0) == [(10.0, "pool-a", 1.0)]
        assert store.durations(kind.value, 0.0, 100.0) == [(10.0, "pool-a", 1.0)]  # type: ignore[arg-type]

    def test_tag_records_are_a_half_open_range(self, store: Store) -> None:
        store.record_tags("v-1", {"team": "qa", "jira": "ABC-1"}, at=50.0)
        store.record_tags("v-2", {}, at=55.0)  # nothing to record
        store.record_tags("v-2", {"team": "dev"}, at=60.0)
        store.record_tags("v-3", {"ü": "ß"}, at=70.0)
        got = store.tag_records(50.0, 70.0)
        assert sorted(got) == [
            (50.0, "v-1", "jira", "ABC-1"), (50.0, "v-1", "team", "qa"),
            (60.0, "v-2", "team", "dev"),
        ]
        assert [r[0] for r in got] == sorted(r[0] for r in got)  # oldest first
        assert store.tag_records(70.0, 71.0) == [(70.0, "v-3", "ü", "ß")]
        assert store.tag_records(0.0, 50.0) == []

    def test_purge_forgets_old_history(self, store: Store) -> None:
        store.add_vm(make_vm("d-old", state=S.DESTROYED, destroyed_at=10.0))
        for at in (50.0, 100.0, 150.0):
            store.record_duration(TimingKind.CLONE, "pool-a", "v", 1.0, at=at)
            store.record_tags("v", {"t": str(at)}, at=at)
        ended = {"r-ready": RequestStatus.READY, "r-failed": RequestStatus.FAILED,
                 "r-deleted": RequestStatus.DELETED}
        for rid in ended:
            store.add_request(OndemandRequest(id=rid, requested=[], created_at=1.0))
        for rid in ("r-new", "r-pending", "r-at"):
            store.add_request(OndemandRequest(id=rid, requested=[], created_at=1.0))
        for rid, status in ended.items():
            store.set_request_status(rid, [RequestStatus.PENDING], status, now=40.0)
        store.set_request_status("r-new", [RequestStatus.PENDING], RequestStatus.READY, now=150.0)
        store.set_request_status("r-at", [RequestStatus.PENDING], RequestStatus.FAILED, now=100.0)
        assert store.purge_destroyed(100.0) == 1  # the VM count, as before
        assert store.durations(TimingKind.CLONE, 0.0, 1000.0) == [(100.0, "pool-a", 1.0),
                                                                   (150.0, "pool-a", 1.0)]
        assert [r[0] for r in store.tag_records(0.0, 1000.0)] == [100.0, 150.0]
        for rid in ended:
            assert store.get_request(rid) is None, rid
        # Still pending (however old), ended at or after the cut: kept.
        for rid in ("r-new", "r-pending", "r-at"):
            assert store.get_request(rid) is not None, rid
        assert store.get_vm("d-old") is None

    def test_close_is_idempotent(self, store_factory: Any) -> None:
        other = store_factory()
        other.close()
        other.close()

    # -- concurrency ----------------------------------------------------------------------

    def test_threads_never_share_a_vm(self, store: Store) -> None:
        names = fill(store, "pool-t", 300)
        barrier = threading.Barrier(8)
        with ThreadPoolExecutor(8) as pool:
            futures = {
                f"thread-{i}": pool.submit(checkout_until_empty, store, "pool-t", f"thread-{i}",
                                           barrier)
                for i in range(8)
            }
            got = {label: f.result() for label, f in futures.items()}
        assert sum(len(t) for t in got.values()) == 300
        assert_handed_out_once(store, got, names)
        assert store.counts() == {"pool-t": {S.RUNNING: 300}}

    def test_transition_race_has_one_winner(self, store: Store) -> None:
        names = fill(store, "pool-r", 25)
        barrier = threading.Barrier(12)

        def racer(label: str) -> list[str]:
            barrier.wait(30)
            return [n for n in names if store.transition(n, [S.READY], S.RUNNING, token=label)]

        with ThreadPoolExecutor(12) as pool:
            futures = {f"racer-{i}": pool.submit(racer, f"racer-{i}") for i in range(12)}
            got = {label: f.result() for label, f in futures.items()}
        assert_handed_out_once(store, got, names)

    def test_processes_and_threads_never_share_a_vm(self, store: Store, store_factory: Any
                                                   ) -> None:
        names = fill(store, "pool-mp", 400)
        ctx = multiprocessing.get_context("spawn")
        barrier = ctx.Barrier(4 + 2)
        results = ctx.Queue()
        procs = [
            ctx.Process(target=checkout_process,
                        args=(store_factory, "pool-mp", f"proc-{i}", barrier, results))
            for i in range(4)
        ]
        for proc in procs:
            proc.start()
        try:
            with ThreadPoolExecutor(2) as pool:
                futures = {
                    f"thread-{i}": pool.submit(checkout_until_empty, store, "pool-mp",
                                               f"thread-{i}", barrier)
                    for i in range(2)
                }
                got: dict[str, Any] = {}
                for _ in procs:  # first, so that a child's failure is the one reported
                    label, taken = results.get(timeout=60)
                    assert isinstance(taken, list), f"{label} failed:\n{taken}"
                    got[label] = taken
                got.update((label, f.result()) for label, f in futures.items())
        finally:
            for proc in procs:
                proc.join(30)
                if proc.exitcode is None:
                    proc.kill()
        assert [p.exitcode for p in procs] == [0, 0, 0, 0]
        assert_handed_out_once(store, got, names)
        assert store.counts() == {"pool-mp": {S.RUNNING: 400}}

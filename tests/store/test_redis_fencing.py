"""Fenced writes of the Redis store: a writer whose lease on a pool was superseded changes
nothing of that pool, atomically; the current lease holder and unfenced handles write."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest
import redis

from corral.bench.redisd import RedisServer
from corral.domain.models import TimingKind
from corral.domain.states import VmState
from corral.store.base import Fenced
from corral.store.redis import RedisStore
from corral.store.redis_keys import Keys

from .contract import make_vm

S = VmState


@pytest.fixture
def store(redis_server: RedisServer, redis_site: str) -> Iterator[RedisStore]:
    with RedisStore("127.0.0.1", redis_server.port, site=redis_site) as store:
        yield store


@pytest.fixture
def raw(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis(port=redis_server.port, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def lease(raw: redis.Redis, redis_site: str) -> Callable[[str], int]:
    """Take a new lease on a pool as the lease code does: INCR its fence; the new token."""
    return lambda pool: int(raw.incr(Keys(redis_site).fence(pool)))


def held(**tokens: int | None) -> Callable[[str], int | None]:
    """token_of for a writer holding these tokens (by pool; pool names with '-' as '_')."""
    return lambda pool: tokens.get(pool.replace("-", "_"))


@pytest.mark.parametrize(
    ("counter", "token", "allowed"),
    [
        (0, 0, True),  # no lease ever taken (fence absent): token 0 writes
        (0, None, False),  # no token at all: refused even on a pool never leased
        (3, 3, True),  # the current lease
        (3, 4, True),  # a token the counter has not reached yet is not stale
        (3, 2, False),  # a newer lease exists
        (3, None, False),
    ],
)
def test_fence_rule(store: RedisStore, lease: Callable[[str], int], counter: int, token: int | None,
                    allowed: bool) -> None:
    for _ in range(counter):
        lease("pool-a")
    fenced = store.fenced(held(pool_a=token))
    if allowed:
        fenced.add_vm(make_vm("v-1"))
        assert store.get_vm("v-1") == make_vm("v-1")
    else:
        with pytest.raises(Fenced) as info:
            fenced.add_vm(make_vm("v-1"))
        assert (info.value.pool, info.value.current, info.value.token) == ("pool-a", counter, token)
        assert store.get_vm("v-1") is None


def test_refusal_names_the_pool_and_both_tokens(store: RedisStore, lease: Callable[[str], int]) -> None:
    for _ in range(7):
        lease("pool-a")
    with pytest.raises(Fenced, match=r"'pool-a'.* 7.*token 5"):
        store.fenced(held(pool_a=5)).add_vm(make_vm("v-1"))
    with pytest.raises(Fenced, match=r"'pool-a'.* 7.*no token"):
        store.fenced(held()).add_vm(make_vm("v-1"))


def test_stale_writer_changes_nothing_of_a_vm(store: RedisStore, lease: Callable[[str], int]) -> None:
    old = store.fenced(held(pool_a=lease("pool-a")))
    old.add_vm(make_vm("v-1", state=S.READY, ready_at=5.0))
    new = store.fenced(held(pool_a=lease("pool-a")))
    before = (store.list_vms(), store.counts())
    with pytest.raises(Fenced):
        old.transition("v-1", [S.READY], S.COMPLETED, reason="stale")
    with pytest.raises(Fenced):
        old.update_vm("v-1", host="h-stale")
    with pytest.raises(Fenced):
        old.add_vm(make_vm("v-2"))
    assert (store.list_vms(), store.counts()) == before
    assert store.checkout("pool-a", now=1.0, lifetime_s=1.0).name == "v-1"  # still stock
    moved = new.transition("v-1", [S.RUNNING], S.COMPLETED, reason="returned")
    assert moved is not None and moved.reason == "returned"
    assert new.update_vm("v-1", host="h-new").host == "h-new"


def test_multi_pool_add_is_refused_as_a_whole(store: RedisStore, lease: Callable[[str], int]) -> None:
    a, b = lease("pool-a"), lease("pool-b")
    lease("pool-b")  # someone else took pool-b since
    writer = store.fenced(held(pool_a=a, pool_b=b))
    with pytest.raises(Fenced, match="pool-b"):
        writer.add_vms([make_vm("a-1", "pool-a"), make_vm("b-1", "pool-b"), make_vm("a-2", "pool-a")])
    assert store.list_vms() == [] and store.counts() == {}
    writer.add_vms([make_vm("a-1", "pool-a"), make_vm("a-2", "pool-a")])
    assert [v.name for v in store.list_vms()] == ["a-1", "a-2"]


def test_overrides_and_history_are_fenced(store: RedisStore, lease: Callable[[str], int]) -> None:
    token = lease("pool-a")
    writer = store.fenced(held(pool_a=token, pool_b=lease("pool-b")))
    writer.set_pool_override("pool-a", "size", 3)
    writer.record_duration(TimingKind.CLONE, "pool-a", "v-1", 2.0, at=10.0)
    lease("pool-a")
    with pytest.raises(Fenced):
        writer.set_pool_override("pool-a", "size", 9)
    with pytest.raises(Fenced):
        writer.clear_pool_override("pool-a", "size")
    with pytest.raises(Fenced):  # one stale pool refuses every row
        writer.record_durations([(TimingKind.CLONE, "pool-b", "v-2", 1.0, 11.0),
                                 (TimingKind.BOOT, "pool-a", "v-1", 5.0, 12.0)])
    assert store.pool_overrides() == {"pool-a": {"size": 3}}
    assert store.durations(TimingKind.CLONE, 0.0, 100.0) == [(10.0, "pool-a", 2.0)]
    assert store.durations(TimingKind.BOOT, 0.0, 100.0) == []
    writer.record_tags("v-1", {"team": "qa"}, at=13.0)  # names no pool: not fenced
    assert store.tag_records(0.0, 100.0) == [(13.0, "v-1", "team", "qa")]
    writer.set_pool_override("pool-b", "size", 1)  # pool-b's lease is still current
    assert store.pool_overrides()["pool-b"] == {"size": 1}


def test_unfenced_handle_writes_whatever_the_counter(store: RedisStore, lease: Callable[[str], int]) -> None:
    for _ in range(3):
        lease("pool-a")
    store.add_vm(make_vm("v-1", state=S.READY))
    assert store.transition("v-1", [S.READY], S.RUNNING, token="t") is not None
    store.set_pool_override("pool-a", "size", 2)
    assert store.pool_overrides() == {"pool-a": {"size": 2}}


def test_a_vm_write_is_fenced_by_the_pool_recorded_now(store: RedisStore, lease: Callable[[str], int]) -> None:
    """The fenced view remembers each VM's pool; a VM destroyed and recorded again in another
    pool is fenced by its new pool, not the remembered one."""
    writer = store.fenced(held(pool_a=lease("pool-a"), pool_b=lease("pool-b")))
    writer.add_vm(make_vm("v-1", "pool-a", S.COMPLETED))
    writer.transition("v-1", [S.COMPLETED], S.DESTROYED, destroyed_at=2.0)
    store.add_vm(make_vm("v-1", "pool-b"))  # by another process: the writer still thinks pool-a
    lease("pool-b")
    with pytest.raises(Fenced, match="pool-b"):
        writer.update_vm("v-1", host="h")
    assert store.get_vm("v-1").host is None
    assert writer.update_vm("ghost", host="h") is None
    assert writer.transition("ghost", [S.PENDING], S.READY) is None


def test_checkout_is_not_fenced(store: RedisStore, lease: Callable[[str], int]) -> None:
    store.add_vm(make_vm("v-1", state=S.READY))
    lease("pool-a")
    got = store.fenced(held()).checkout("pool-a", now=1.0, lifetime_s=1.0)
    assert got is not None and got.name == "v-1"


def test_a_fenced_view_shares_the_connections(store: RedisStore) -> None:
    view = store.fenced(held(pool_a=0))
    view.add_vm(make_vm("v-1"))
    view.close()  # leaves the store's connections alone
    assert store.get_vm("v-1") is not None
    assert "fenced" in repr(view) and store.site in repr(view)


def test_no_stale_write_lands_after_the_fence_moves(store: RedisStore, lease: Callable[[str], int]) -> None:
    """A writer keeps updating a VM while a new lease is taken: once the counter has moved,
    none of the old writer's writes land, however they interleave."""
    writer = store.fenced(held(pool_a=lease("pool-a")))
    writer.add_vm(make_vm("v-1", state=S.RUNNING))
    stop = threading.Event()
    outcomes: list[str] = []

    def write() -> None:
        step = 0
        while not stop.is_set():
            step += 1
            try:
                writer.update_vm("v-1", reason=f"step {step}")
                outcomes.append("ok")
            except Fenced:
                outcomes.append("fenced")

    worker = threading.Thread(target=write)
    worker.start()
    try:
        while outcomes.count("ok") < 20:
            time.sleep(0.001)
        lease("pool-a")
        after = store.get_vm("v-1").reason
        while outcomes.count("fenced") < 20:
            time.sleep(0.001)
    finally:
        stop.set()
        worker.join(10)
    assert store.get_vm("v-1").reason == after
    first_refusal = outcomes.index("fenced")
    assert "ok" not in outcomes[first_refusal:]

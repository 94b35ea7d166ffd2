"""RedisStore: the store contract on a real redis-server, and what only Redis promises."""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from corral.bench.redisd import RedisServer
from corral.domain.models import TimingKind
from corral.domain.states import TRANSITIONS, VmState
from corral.store.base import Store, StoreError, StoreUnavailable
from corral.store.redis import RedisStore
from corral.store.redis_conn import Guard, scrubber
from corral.store.redis_keys import Keys
from corral.store.sqlite import SqliteStore

from .contract import StoreContract, fill, make_vm

S = VmState


class TestRedisContract(StoreContract):
    @pytest.fixture
    def store_factory(self, redis_server: RedisServer, redis_site: str) -> Callable[[], RedisStore]:
        return functools.partial(RedisStore, "127.0.0.1", redis_server.port, site=redis_site)

    @pytest.fixture
    def store(self, store_factory: Callable[[], RedisStore]) -> Iterator[RedisStore]:
        store = store_factory()
        yield store
        store.close()


@pytest.fixture
def store(redis_server: RedisServer, redis_site: str) -> Iterator[RedisStore]:
    with RedisStore("127.0.0.1", redis_server.port, site=redis_site) as store:
        yield store


SECRET = "pw-Zq81-never-shown"


@pytest.fixture(scope="module")
def locked_server() -> Iterator[RedisServer]:
    with RedisServer(password=SECRET) as server:
        yield server


def test_floats_round_trip_exactly(store: RedisStore) -> None:
    values = [0.1 + 0.2, 1e-300, 1.7976931348623157e308, 1764770000.123456789, -0.0, 5e-324]
    for i, value in enumerate(values):
        store.add_vm(make_vm(f"f-{i}", state=S.READY, created_at=value, ready_at=value, lifetime_s=value))
        got = store.get_vm(f"f-{i}")
        assert (got.created_at, got.ready_at, got.lifetime_s) == (value, value, value)
    store.record_duration(TimingKind.CLONE, "pool-a", "f-0", 0.1 + 0.2, at=0.1 + 0.2)
    assert store.durations(TimingKind.CLONE, 0.0, 1.0) == [(0.1 + 0.2, "pool-a", 0.1 + 0.2)]


def test_sites_keep_apart(redis_server: RedisServer, redis_site: str) -> None:
    with RedisStore("127.0.0.1", redis_server.port, site=redis_site + "-a") as a, \
            RedisStore("127.0.0.1", redis_server.port, site=redis_site + "-b") as b:
        fill(a, "pool-a", 2)
        assert b.list_vms() == [] and b.counts() == {} and b.checkout("pool-a", now=1.0, lifetime_s=1.0) is None
        b.add_vm(make_vm("pool-a-0000"))  # the same name on another site is another VM
        assert a.get_vm("pool-a-0000").state is S.READY


def test_every_key_is_under_the_site_prefix(store: RedisStore, redis_server: RedisServer, redis_site: str) -> None:
    fill(store, "pool-a", 3)
    store.checkout("pool-a", now=1.0, lifetime_s=1.0, token="t")
    store.add_vm(make_vm("od-1", state=S.READY, request_id="req-1"))
    store.record_tags("pool-a-0000", {"a": "b"}, at=1.0)
    store.set_pool_override("pool-a", "size", 1)
    client = redis.Redis(port=redis_server.port, decode_responses=True)
    try:
        mine = list(client.scan_iter(match=Keys(redis_site).prefix + "*", count=1000))
        assert Keys(redis_site).vm("od-1") in mine and Keys(redis_site).ready("pool-a") in mine
        assert all(k.startswith(f"corral:{redis_site}:") for k in mine)
    finally:
        client.close()


def test_ping_and_repr(store: RedisStore, redis_server: RedisServer, redis_site: str) -> None:
    assert 0 < store.ping() < 1.0
    assert repr(store) == f"RedisStore(127.0.0.1:{redis_server.port}, site={redis_site!r})"


def test_password_is_used_and_never_shown(locked_server: RedisServer, redis_site: str) -> None:
    with RedisStore("127.0.0.1", locked_server.port, SECRET, site=redis_site) as store:
        store.add_vm(make_vm("v-1"))
        assert store.get_vm("v-1") is not None
        assert SECRET not in repr(store) and SECRET not in str(vars(store))
    wrong = RedisStore("127.0.0.1", locked_server.port, SECRET + "-wrong", site=redis_site)
    with pytest.raises(StoreUnavailable, match=rf"127.0.0.1:{locked_server.port} refused the password") as info:
        wrong.ping()
    assert SECRET not in str(info.value) and info.value.__cause__ is None
    missing = RedisStore("127.0.0.1", locked_server.port, site=redis_site)
    with pytest.raises(StoreUnavailable, match="wants a password"):
        missing.get_vm("v-1")


def test_a_stopped_server_is_unavailable_until_it_is_back(redis_site: str) -> None:
    with RedisServer() as server:
        store = RedisStore("127.0.0.1", server.port, site=redis_site, timeout_s=2.0)
        fill(store, "pool-a", 1)
        server.stop()
        for call in (store.ping, lambda: store.checkout("pool-a", now=1.0, lifetime_s=1.0), store.counts):
            with pytest.raises(StoreUnavailable, match=rf"Redis at 127.0.0.1:{server.port} cannot be reached"):
                call()
        server.start()  # empty again: nothing is saved
        assert store.ping() > 0
        assert store.counts() == {}
        fill(store, "pool-a", 1)
        assert store.checkout("pool-a", now=1.0, lifetime_s=1.0).name == "pool-a-0000"
        store.close()


# -- the indexes always agree with the records: random work, compared with sqlite ---------------

def _step(rng: random.Random, store: Store, i: int) -> object:
    name = f"v-{rng.randrange(12)}"
    pool = rng.choice(["pool-a", "pool-b"])
    roll = rng.random()
    try:
        if roll < 0.25:
            request = rng.choice([None, None, "req-1"])
            state = rng.choice(list(VmState))
            return store.add_vm(make_vm(name, pool, state, created_at=float(rng.randrange(5)),
                                        ready_at=rng.choice([None, float(i)]), request_id=request,
                                        destroyed_at=float(i)))
        if roll < 0.55:
            src = rng.choice(list(VmState))
            dst = rng.choice(sorted(TRANSITIONS[src]) or [VmState.DESTROYED])
            return store.transition(name, [src], dst, destroyed_at=float(i), ready_at=float(i % 3))
        if roll < 0.65:
            return store.update_vm(name, pool=pool, request_id=rng.choice([None, "req-1"]), created_at=float(i))
        if roll < 0.85:
            return store.checkout_many([(pool, rng.randrange(3))], now=float(i), lifetimes={pool: 9.0}, token="t")
        if roll < 0.95:
            return store.checkout(pool, now=float(i), lifetime_s=9.0, user="u")
        return store.purge_destroyed(float(i))
    except StoreError as err:
        return type(err).__name__


def test_indexes_agree_with_sqlite_under_random_work(store: RedisStore, tmp_path: Path) -> None:
    reference = SqliteStore(tmp_path / "ref.db")
    rng_a, rng_b = random.Random(7), random.Random(7)
    try:
        for i in range(600):
            assert _step(rng_a, store, i) == _step(rng_b, reference, i), i
            if i % 20 == 0:
                assert store.list_vms() == reference.list_vms(), i
                assert store.counts() == reference.counts(), i
                for state in VmState:
                    assert store.list_vms(pool="pool-a", states=[state]) == \
                        reference.list_vms(pool="pool-a", states=[state])
                assert store.request_vms("req-1") == reference.request_vms("req-1")
    finally:
        reference.close()


@pytest.mark.parametrize(
    ("error", "kind", "message"),
    [
        (redis.exceptions.ConnectionError("Error 111 connecting. Connection refused."), StoreUnavailable,
         "Redis at h:1 cannot be reached: Error 111 connecting. Connection refused."),
        (redis.exceptions.TimeoutError("Timeout reading from socket"), StoreUnavailable,
         "Redis at h:1 cannot be reached: Timeout reading from socket"),
        (redis.exceptions.BusyLoadingError("LOADING Redis is loading the dataset in memory"), StoreUnavailable,
         "Redis at h:1 is loading its data and cannot answer yet"),
        (redis.exceptions.AuthenticationError("WRONGPASS invalid username-password pair"), StoreUnavailable,
         "Redis at h:1 refused the password (:redis: password)"),
        (redis.exceptions.AuthenticationError("Authentication required."), StoreUnavailable,
         "Redis at h:1 wants a password and none is configured (:redis: password)"),
        (redis.exceptions.ResponseError("AUTH <password> called without any password configured"), StoreUnavailable,
         "Redis at h:1 refused the password: it has none configured"),
        (redis.exceptions.ConnectionError(f"cannot log in as default:{SECRET}"), StoreUnavailable,
         "Redis at h:1 cannot be reached: cannot log in as default:<redacted>"),
        (redis.exceptions.ReadOnlyError("READONLY You can't write against a read only replica."), StoreUnavailable,
         "Redis at h:1 does not take writes now (a replica or a failover under way): READONLY You can't write "
         "against a read only replica."),
        (redis.exceptions.ResponseError("ERR Error running script"), StoreError,
         "Redis at h:1: ERR Error running script"),
    ],
)
def test_redis_errors_become_store_errors(error: Exception, kind: type, message: str) -> None:
    got = Guard("h:1", scrubber(SECRET)).translate(error)
    assert type(got) is kind and str(got) == message
    with pytest.raises(kind) as info, Guard("h:1", scrubber(SECRET)):
        raise error
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_a_name_recorded_again_is_not_purged_with_its_destroyed_past(store: RedisStore) -> None:
    store.add_vm(make_vm("re-1", state=S.DESTROYED, destroyed_at=5.0, request_id="req-1"))
    store.add_vm(make_vm("re-1", "pool-b", S.READY, ready_at=6.0))
    assert store.purge_destroyed(100.0) == 0
    assert store.get_vm("re-1").state is S.READY
    assert store.request_vms("req-1") == [] and store.counts() == {"pool-b": {S.READY: 1}}
    assert store.checkout("pool-b", now=7.0, lifetime_s=1.0).name == "re-1"

"""What the Redis store keeps besides VMs: API tokens, pool overrides, on-demand requests and
the history behind /summary. A mixin of :class:`~corral.store.redis.RedisStore`; every write
is one script or one command, so atomic on its own."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, cast

import redis

from corral.domain.models import OndemandRequest, RequestStatus, TimingKind, TokenRecord
from corral.store.base import Fenced, StoreError
from corral.store.redis_codec import decode_request, decode_token, dump, number, request_args
from corral.store.redis_conn import Guard, Scripts
from corral.store.redis_keys import Keys

_SEQ_WIDTH = 16  # the sequence number before each history member's payload


def _strings(values: Iterable[str]) -> list[str]:
    """A list of the given strings; one string alone counts as one value, not its letters."""
    return [values] if isinstance(values, str) else list(dict.fromkeys(values))


def refused(reply: Any) -> None:
    """Raise :class:`Fenced` when a script's reply is a fencing refusal."""
    if isinstance(reply, list) and reply and reply[0] == "fenced":
        _, pool, current, token = reply
        raise Fenced(pool, int(current), None if token == "none" else int(token))


class RedisMeta:
    """Tokens, pool overrides, on-demand requests and history on the store's client."""

    keys: Keys
    _client: redis.Redis
    _guard: Guard
    _scripts: Scripts

    def _fences(self, pools: Iterable[str]) -> list[str]:  # pragma: no cover - RedisStore's
        raise NotImplementedError

    def _hash(self, key: str) -> dict[str, str]:
        """HGETALL of one key (the client decodes every reply to text)."""
        with self._guard:
            return cast(dict[str, str], self._client.hgetall(key))

    def _members(self, key: str) -> list[str]:
        """Every member of a set, sorted."""
        with self._guard:
            return sorted(cast(set[str], self._client.smembers(key)))

    def _hashes(self, keys: list[str]) -> list[dict[str, str]]:
        """HGETALL of each key in one pipeline (MULTI/EXEC: one moment's values); missing ones
        are empty dicts."""
        if not keys:
            return []
        with self._guard:
            pipe = self._client.pipeline(transaction=True)
            for key in keys:
                pipe.hgetall(key)
            return list(pipe.execute())

    # -- API tokens -------------------------------------------------------------------------

    def add_token(self, token: TokenRecord) -> None:
        fields = ["hash", token.hash, "user", token.user, "created_at", number(token.created_at),
                  "hint", token.hint]
        if token.last_used_at is not None:
            fields += ("last_used_at", number(token.last_used_at))
        keys = [self.keys.token(token.hash), self.keys.user_tokens(token.user)]
        with self._guard:
            added = self._scripts.token_add(keys=keys, args=[number(token.created_at), *fields])
        if not added:
            raise StoreError(f"token {token.hint or token.hash[:8]!r} is already recorded")

    def get_token(self, token_hash: str) -> TokenRecord | None:
        stored = self._hash(self.keys.token(token_hash))
        return decode_token(stored) if stored else None

    def touch_token(self, token_hash: str, now: float) -> None:
        with self._guard:
            self._scripts.token_touch(keys=[self.keys.token(token_hash)], args=[number(now)])

    def user_tokens(self, user: str) -> list[TokenRecord]:
        with self._guard:
            hashes = cast(list[str], self._client.zrange(self.keys.user_tokens(user), 0, -1))
        stored = self._hashes([self.keys.token(h) for h in hashes])
        return [decode_token(s) for s in stored if s]

    def delete_token(self, token_hash: str) -> bool:
        with self._guard:
            return bool(self._scripts.token_delete(keys=[self.keys.token(token_hash)], args=[]))

    # -- pool overrides ---------------------------------------------------------------------

    def pool_overrides(self) -> dict[str, dict[str, object]]:
        pools = self._members(self.keys.override_pools)
        result: dict[str, dict[str, object]] = {}
        for pool, stored in zip(pools, self._hashes([self.keys.overrides(p) for p in pools]), strict=True):
            if stored:
                result[pool] = {setting: json.loads(stored[setting]) for setting in sorted(stored)}
        return result

    def _override(self, pool: str, setting: str, *value: str) -> int:
        keys = [self.keys.overrides(pool), self.keys.override_pools]
        args = [*self._fences([pool]), pool, setting, *value]
        with self._guard:
            reply = self._scripts.override(keys=keys, args=args)
        refused(reply)
        return int(reply[1])

    def set_pool_override(self, pool: str, setting: str, value: object) -> None:
        self._override(pool, setting, dump(f"override {pool}.{setting}", value))

    def clear_pool_override(self, pool: str, setting: str) -> bool:
        return self._override(pool, setting) == 1

    # -- on-demand requests -----------------------------------------------------------------

    def add_request(self, request: OndemandRequest) -> bool:
        args = [request.id, *request_args(request)]
        with self._guard:
            return bool(self._scripts.request_add(keys=[], args=args))

    def get_request(self, request_id: str) -> OndemandRequest | None:
        stored = self._hash(self.keys.request(request_id))
        return decode_request(stored) if stored else None

    def list_requests(self, statuses: Iterable[RequestStatus]) -> list[OndemandRequest]:
        wanted = [RequestStatus(s).value for s in _strings(statuses)]
        if not wanted:
            return []
        with self._guard:
            pipe = self._client.pipeline(transaction=True)
            for status in wanted:
                pipe.zrange(self.keys.requests(status), 0, -1)
            ids = [i for found in pipe.execute() for i in found]
        requests = [decode_request(s) for s in self._hashes([self.keys.request(i) for i in ids]) if s]
        return sorted(requests, key=lambda r: (r.created_at, r.id))

    def set_request_status(
        self, request_id: str, expected: Iterable[RequestStatus], new: RequestStatus, now: float
    ) -> bool:
        src = [RequestStatus(s).value for s in _strings(expected)]
        if not src:
            return False
        args = [request_id, RequestStatus(new).value, number(now), *src]
        with self._guard:
            return bool(self._scripts.request_status(keys=[], args=args))

    # -- history ----------------------------------------------------------------------------

    def _record(self, pools: list[str], keys: list[str], rows: list[tuple[int, float, list[Any]]]) -> None:
        args = self._fences(pools)
        for key_number, at, payload in rows:
            args += (str(key_number), number(at), json.dumps(payload, separators=(",", ":")))
        with self._guard:
            reply = self._scripts.history(keys=keys, args=args)
        refused(reply)

    def record_duration(self, task: TimingKind, pool: str, vm: str, seconds: float, at: float) -> None:
        self.record_durations([(task, pool, vm, seconds, at)])

    def record_durations(self, rows: Iterable[tuple[TimingKind, str, str, float, float]]) -> None:
        batch = list(rows)
        if not batch:
            return
        keys = [self.keys.durations(k.value) for k in TimingKind]
        where = {k.value: i + 1 for i, k in enumerate(TimingKind)}
        try:
            entries = [(where[TimingKind(task).value], at, [pool, vm, float(seconds)])
                       for task, pool, vm, seconds, at in batch]
        except (TypeError, ValueError) as err:
            raise StoreError(f"bad duration record: {err}") from None
        self._record([row[1] for row in batch], keys, entries)

    def durations(self, task: TimingKind, since: float, until: float) -> list[tuple[float, str, float]]:
        out = []
        for at, payload in self._range(self.keys.durations(TimingKind(task).value), since, until):
            pool, _vm, seconds = payload
            out.append((at, pool, float(seconds)))
        return out

    def record_tags(self, vm: str, tags: dict[str, str], at: float) -> None:
        if tags:
            rows = [(1, at, [vm, str(tag), str(value)]) for tag, value in tags.items()]
            self._record([], [self.keys.tag_records], rows)

    def tag_records(self, since: float, until: float) -> list[tuple[float, str, str, str]]:
        return [(at, vm, tag, value) for at, (vm, tag, value) in self._range(self.keys.tag_records, since, until)]

    def _range(self, key: str, since: float, until: float) -> list[tuple[float, list[Any]]]:
        with self._guard:
            rows = cast(list[tuple[str, float]], self._client.zrange(
                key, number(since), "(" + number(until), byscore=True, withscores=True))
        return [(float(score), json.loads(member[_SEQ_WIDTH:])) for member, score in rows]

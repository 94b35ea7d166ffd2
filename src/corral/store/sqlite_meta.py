"""What the sqlite store keeps besides VMs: API tokens, pool overrides, on-demand requests
and the history behind /summary. A mixin of :class:`~corral.store.sqlite.SqliteStore`;
every method is one statement, so one atomic transaction of its own."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from typing import Any

from corral.domain.models import OndemandRequest, RequestedPool, RequestStatus, TimingKind, TokenRecord
from corral.store import sqlite_schema as sql
from corral.store.base import StoreError
from corral.store.sqlite_conn import Session, immediate, run


def _strings(values: Iterable[str]) -> list[str]:
    """A list of the given strings; one string alone counts as one value, not its letters."""
    return [values] if isinstance(values, str) else list(dict.fromkeys(values))


def _dump(what: str, value: object) -> str:
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError) as err:
        raise StoreError(f"cannot store {what}: {err}") from None


def _dump_requested(requested: Iterable[RequestedPool]) -> str:
    try:
        lines = [{"label": r.label, "pool": r.pool, "count": int(r.count)} for r in requested]
    except (AttributeError, TypeError, ValueError) as err:
        raise StoreError(f"bad requested pools: {err}") from None
    return _dump("the requested pools", lines)


def _request_from_row(row: tuple[Any, ...]) -> OndemandRequest:
    request_id, requested, status, *rest = row
    lines = [RequestedPool(**r) for r in json.loads(requested)]
    return OndemandRequest(request_id, lines, RequestStatus(status), *rest)


def purge_history(conn: sqlite3.Connection, older_than: float) -> None:
    """Forget durations and tag records before ``older_than``, and requests that ended
    (ready, failed, deleted) and were last updated before it. Run inside a transaction."""
    for statement in sql.PURGE_HISTORY_SQL:
        conn.execute(statement, (older_than,))


class SqliteMeta:
    """Tokens, pool overrides, on-demand requests and history on the store's connection."""

    _session: Session

    def _rows(self, statement: str, params: Any = ()) -> list[tuple[Any, ...]]:
        with self._session as conn:
            return run(conn, statement, params).fetchall()

    def _changed(self, statement: str, params: Any) -> int:
        """Run one writing statement; the number of rows it changed."""
        with self._session as conn:
            return run(conn, statement, params).rowcount

    # -- API tokens -------------------------------------------------------------------------

    def add_token(self, token: TokenRecord) -> None:
        params = (token.hash, token.user, token.created_at, token.last_used_at, token.hint)
        with self._session as conn:
            try:
                run(conn, sql.ADD_TOKEN_SQL, params)
            except sqlite3.IntegrityError as err:
                if "UNIQUE" not in str(err):
                    raise StoreError(f"cannot record token {token.hint!r}: {err}") from None
                label = token.hint or token.hash[:8]
                raise StoreError(f"token {label!r} is already recorded") from None

    def get_token(self, token_hash: str) -> TokenRecord | None:
        rows = self._rows(sql.GET_TOKEN_SQL, (token_hash,))
        return TokenRecord(*rows[0]) if rows else None

    def touch_token(self, token_hash: str, now: float) -> None:
        self._changed(sql.TOUCH_TOKEN_SQL, (now, token_hash))

    def user_tokens(self, user: str) -> list[TokenRecord]:
        return [TokenRecord(*row) for row in self._rows(sql.USER_TOKENS_SQL, (user,))]

    def delete_token(self, token_hash: str) -> bool:
        return self._changed(sql.DELETE_TOKEN_SQL, (token_hash,)) == 1

    # -- pool overrides ---------------------------------------------------------------------

    def pool_overrides(self) -> dict[str, dict[str, object]]:
        result: dict[str, dict[str, object]] = {}
        for pool, setting, value in self._rows(sql.OVERRIDES_SQL):
            result.setdefault(pool, {})[setting] = json.loads(value)
        return result

    def set_pool_override(self, pool: str, setting: str, value: object) -> None:
        encoded = _dump(f"override {pool}.{setting}", value)
        self._changed(sql.SET_OVERRIDE_SQL, (pool, setting, encoded))

    def clear_pool_override(self, pool: str, setting: str) -> bool:
        return self._changed(sql.CLEAR_OVERRIDE_SQL, (pool, setting)) == 1

    # -- on-demand requests -----------------------------------------------------------------

    def add_request(self, request: OndemandRequest) -> bool:
        params = (
            request.id, _dump_requested(request.requested), request.status, request.created_at,
            request.updated_at, request.token, request.user,
        )
        return self._changed(sql.ADD_REQUEST_SQL, params) == 1

    def get_request(self, request_id: str) -> OndemandRequest | None:
        rows = self._rows(sql.GET_REQUEST_SQL, (request_id,))
        return _request_from_row(rows[0]) if rows else None

    def list_requests(self, statuses: Iterable[RequestStatus]) -> list[OndemandRequest]:
        wanted = _strings(statuses)
        if not wanted:
            return []
        rows = self._rows(sql.list_requests_sql(len(wanted)), wanted)
        return [_request_from_row(row) for row in rows]

    def set_request_status(
        self, request_id: str, expected: Iterable[RequestStatus], new: RequestStatus, now: float
    ) -> bool:
        src = _strings(expected)
        if not src:
            return False
        statement = sql.set_request_status_sql(len(src))
        return self._changed(statement, (new, now, request_id, *src)) == 1

    # -- history ----------------------------------------------------------------------------

    def record_duration(self, task: TimingKind, pool: str, vm: str, seconds: float, at: float) -> None:
        self._changed(sql.ADD_DURATION_SQL, (task, pool, vm, seconds, at))

    def record_durations(self, rows: Iterable[tuple[TimingKind, str, str, float, float]]) -> None:
        batch = list(rows)
        if batch:
            with self._session as conn, immediate(conn):
                conn.executemany(sql.ADD_DURATION_SQL, batch)

    def durations(self, task: TimingKind, since: float, until: float) -> list[tuple[float, str, float]]:
        return self._rows(sql.DURATIONS_SQL, (task, since, until))

    def record_tags(self, vm: str, tags: dict[str, str], at: float) -> None:
        if tags:
            encoded = _dump("tags", {str(k): str(v) for k, v in tags.items()})
            self._changed(sql.ADD_TAGS_SQL, (at, vm, encoded))

    def tag_records(self, since: float, until: float) -> list[tuple[float, str, str, str]]:
        return self._rows(sql.TAG_RECORDS_SQL, (since, until))

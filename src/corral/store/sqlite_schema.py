"""The sqlite store's tables, its schema upgrades, and the SQL text of its statements."""

from __future__ import annotations

import dataclasses
from functools import lru_cache

from corral.domain.models import RequestStatus, Vm
from corral.domain.states import VmState

SCHEMA_VERSION = 3

# Column declarations, in the order of the Vm dataclass fields (rows decode as Vm(*row)).
# A new field goes at the end, with an upgrade below that adds its column.
COLUMN_TYPES: dict[str, str] = {
    "name": "TEXT NOT NULL PRIMARY KEY",
    "pool": "TEXT NOT NULL",
    "template": "TEXT NOT NULL",
    "state": "TEXT NOT NULL",
    "provider": "TEXT NOT NULL DEFAULT ''",
    "host": "TEXT",
    "ip": "TEXT",
    "created_at": "REAL NOT NULL",
    "cloned_at": "REAL",
    "ready_at": "REAL",
    "checkout_at": "REAL",
    "completed_at": "REAL",
    "destroyed_at": "REAL",
    "lifetime_s": "REAL",
    "token": "TEXT",
    "user": "TEXT",
    "tags": "TEXT NOT NULL DEFAULT '{}'",  # a JSON object
    "migrated": "INTEGER NOT NULL DEFAULT 0",
    "reason": "TEXT",
    "request_id": "TEXT",  # since version 2
    "disks": "TEXT NOT NULL DEFAULT '[]'",  # a JSON list, since version 2
    "snapshots": "TEXT NOT NULL DEFAULT '[]'",  # a JSON list, since version 2
    "migrated_at": "REAL",  # since version 3
    "migration_s": "REAL",  # since version 3
}
COLUMNS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Vm))
if tuple(COLUMN_TYPES) != COLUMNS:  # pragma: no cover - guards a Vm change without a migration
    raise ImportError("corral.store.sqlite: the vms table no longer matches the Vm dataclass")

# Fields a caller may set with transition() / update_vm(): everything but the key and state.

# Tables and indexes that version 2 added; CREATE ... IF NOT EXISTS, so an upgrade runs them too.
_V2_TABLES = """
CREATE INDEX IF NOT EXISTS vms_request ON vms (request_id) WHERE request_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS tokens (
    hash TEXT NOT NULL PRIMARY KEY, "user" TEXT NOT NULL, created_at REAL NOT NULL,
    last_used_at REAL, hint TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tokens_user ON tokens ("user", created_at);
CREATE TABLE IF NOT EXISTS pool_overrides (
    pool TEXT NOT NULL, setting TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (pool, setting)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS requests (
    id TEXT NOT NULL PRIMARY KEY, requested TEXT NOT NULL, status TEXT NOT NULL,
    created_at REAL NOT NULL, updated_at REAL, token TEXT, "user" TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS requests_status ON requests (status, created_at);
CREATE TABLE IF NOT EXISTS durations (
    task TEXT NOT NULL, pool TEXT NOT NULL, vm TEXT NOT NULL, seconds REAL NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS durations_task_at ON durations (task, at);
CREATE TABLE IF NOT EXISTS tag_records (
    at REAL NOT NULL, vm TEXT NOT NULL, tag TEXT NOT NULL, value TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tag_records_at ON tag_records (at);
"""

# Checkout picks a pool's oldest ready VM that no on-demand request owns: request_id IS NULL
# is an equality constraint on this index, so the pick reads it in (ready_at, name) order.
_VMS_POOL_INDEX = (
    "CREATE INDEX IF NOT EXISTS vms_pool_state_request ON vms "
    "(pool, state, request_id, ready_at, name)"
)

# A fresh file: the whole current schema.
CREATE_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS vms (
    {", ".join(f'"{c}" {t}' for c, t in COLUMN_TYPES.items())}
) WITHOUT ROWID;
{_VMS_POOL_INDEX};
CREATE INDEX IF NOT EXISTS vms_state ON vms (state);
{_V2_TABLES}
PRAGMA user_version = {SCHEMA_VERSION};
"""

# UPGRADES[v]: the statements that take a version-v file to version v + 1, in place.
UPGRADES: dict[int, str] = {
    1: f"""
ALTER TABLE vms ADD COLUMN request_id {COLUMN_TYPES["request_id"]};
ALTER TABLE vms ADD COLUMN disks {COLUMN_TYPES["disks"]};
ALTER TABLE vms ADD COLUMN snapshots {COLUMN_TYPES["snapshots"]};
DROP INDEX IF EXISTS vms_pool_state;
{_VMS_POOL_INDEX};
{_V2_TABLES}
PRAGMA user_version = 2;
""",
    2: f"""
ALTER TABLE vms ADD COLUMN migrated_at {COLUMN_TYPES["migrated_at"]};
ALTER TABLE vms ADD COLUMN migration_s {COLUMN_TYPES["migration_s"]};
PRAGMA user_version = 3;
""",
}


def statements(script: str) -> list[str]:
    """The statements of a script above (none of them holds a ';' of its own)."""
    return [s for s in script.split(";") if s.strip()]


# -- the vms table ----------------------------------------------------------------------------

SELECT = ", ".join(f'"{c}"' for c in COLUMNS)
_RETURNING = f"RETURNING {SELECT}"
_PENDING, _READY = VmState.PENDING.value, VmState.READY.value
_RUNNING, _DESTROYED = VmState.RUNNING.value, VmState.DESTROYED.value

ADD_SQL = (
    f"INSERT INTO vms ({SELECT}) VALUES ({', '.join('?' * len(COLUMNS))}) "
    f"ON CONFLICT (name) DO UPDATE SET "
    + ", ".join(f'"{c}" = excluded."{c}"' for c in COLUMNS[1:])
    + f" WHERE vms.state = '{_DESTROYED}'"
)
GET_SQL = f"SELECT {SELECT} FROM vms WHERE name = ?"
# The oldest ready VMs of a pool that are pool stock (no on-demand request owns them).
_OLDEST_READY = (
    f"SELECT name FROM vms WHERE pool = ? AND state = '{_READY}' AND request_id IS NULL "
    "ORDER BY ready_at, name LIMIT ?"
)
CHECKOUT_SQL = (
    f"UPDATE vms SET state = '{_RUNNING}', checkout_at = ?, lifetime_s = ?, token = ?, "
    f"\"user\" = ? WHERE name IN ({_OLDEST_READY}) AND state = '{_READY}' {_RETURNING}"
)
# VMs of an on-demand request are not pool stock until they are handed out.
COUNTS_SQL = (
    f"SELECT pool, state, COUNT(*) FROM vms WHERE state != '{_DESTROYED}' "
    f"AND (request_id IS NULL OR state NOT IN ('{_PENDING}', '{_READY}')) GROUP BY pool, state"
)
REQUEST_VMS_SQL = (
    f"SELECT {SELECT} FROM vms WHERE request_id = ? AND state != '{_DESTROYED}' "
    "ORDER BY created_at, name"
)
PURGE_VMS_SQL = f"DELETE FROM vms WHERE state = '{_DESTROYED}' AND destroyed_at < ?"


@lru_cache(maxsize=512)
def update_sql(names: tuple[str, ...], n_expected: int) -> str:
    """UPDATE for one field set; with n_expected > 0 it also sets state (compare-and-set)."""
    sets = [f'"{n}" = ?' for n in names]
    where = "name = ?"
    if n_expected:
        sets.insert(0, "state = ?")
        where += f" AND state IN ({marks(n_expected)})"
    return f"UPDATE vms SET {', '.join(sets)} WHERE {where} {_RETURNING}"


@lru_cache(maxsize=64)
def list_sql(by_pool: bool, n_states: int | None) -> str:
    where = []
    if by_pool:
        where.append("pool = ?")
    if n_states is not None:
        where.append(f"state IN ({marks(n_states)})")
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    return f"SELECT {SELECT} FROM vms{clause} ORDER BY created_at, name"


def marks(n: int) -> str:
    """``?, ?, ?`` for n parameters."""
    return ", ".join("?" * n)


# -- tokens, pool overrides, on-demand requests, history -----------------------------------------

TOKEN_COLUMNS = 'hash, "user", created_at, last_used_at, hint'
ADD_TOKEN_SQL = f"INSERT INTO tokens ({TOKEN_COLUMNS}) VALUES (?, ?, ?, ?, ?)"
GET_TOKEN_SQL = f"SELECT {TOKEN_COLUMNS} FROM tokens WHERE hash = ?"
TOUCH_TOKEN_SQL = "UPDATE tokens SET last_used_at = ? WHERE hash = ?"
USER_TOKENS_SQL = f'SELECT {TOKEN_COLUMNS} FROM tokens WHERE "user" = ? ORDER BY created_at, hash'
DELETE_TOKEN_SQL = "DELETE FROM tokens WHERE hash = ?"

OVERRIDES_SQL = "SELECT pool, setting, value FROM pool_overrides ORDER BY pool, setting"
SET_OVERRIDE_SQL = (
    "INSERT INTO pool_overrides (pool, setting, value) VALUES (?, ?, ?) "
    "ON CONFLICT (pool, setting) DO UPDATE SET value = excluded.value"
)
CLEAR_OVERRIDE_SQL = "DELETE FROM pool_overrides WHERE pool = ? AND setting = ?"

REQUEST_COLUMNS = 'id, requested, status, created_at, updated_at, token, "user"'
ADD_REQUEST_SQL = (
    f"INSERT INTO requests ({REQUEST_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (id) DO NOTHING"
)
GET_REQUEST_SQL = f"SELECT {REQUEST_COLUMNS} FROM requests WHERE id = ?"


@lru_cache(maxsize=32)
def list_requests_sql(n_statuses: int) -> str:
    return (
        f"SELECT {REQUEST_COLUMNS} FROM requests WHERE status IN ({marks(n_statuses)}) "
        "ORDER BY created_at, id"
    )


@lru_cache(maxsize=32)
def set_request_status_sql(n_expected: int) -> str:
    return (
        "UPDATE requests SET status = ?, updated_at = ? "
        f"WHERE id = ? AND status IN ({marks(n_expected)})"
    )


ADD_DURATION_SQL = "INSERT INTO durations (task, pool, vm, seconds, at) VALUES (?, ?, ?, ?, ?)"
DURATIONS_SQL = (
    "SELECT at, pool, seconds FROM durations WHERE task = ? AND at >= ? AND at < ? "
    "ORDER BY at, rowid"
)
# One statement for all the tags of one call: the tags come as one JSON object.
ADD_TAGS_SQL = (
    "INSERT INTO tag_records (at, vm, tag, value) SELECT ?, ?, key, value FROM json_each(?)"
)
TAG_RECORDS_SQL = (
    "SELECT at, vm, tag, value FROM tag_records WHERE at >= ? AND at < ? ORDER BY at, rowid"
)

# The statuses a request ends in; history that purge_destroyed() forgets with old VMs.
ENDED_REQUESTS = (RequestStatus.READY, RequestStatus.FAILED, RequestStatus.DELETED)
PURGE_HISTORY_SQL = (
    "DELETE FROM durations WHERE at < ?",
    "DELETE FROM tag_records WHERE at < ?",
    f"DELETE FROM requests WHERE status IN ({', '.join(repr(s.value) for s in ENDED_REQUESTS)}) "
    "AND coalesce(updated_at, created_at) < ?",
)

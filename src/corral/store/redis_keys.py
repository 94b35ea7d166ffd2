"""Where corral keeps what in Redis: every key name of one site, made here and nowhere else.

Every key starts with ``corral:<site>:`` so that several corrals (or a vmpooler) can share one
Redis without reading each other's keys. Nothing on a hot path scans keys: every set of
things (pools, managers) is itself a key.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Keys:
    site: str = "default"

    @property
    def prefix(self) -> str:
        return f"corral:{self.site}:"

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    # -- control plane (ha/) ------------------------------------------------------------------
    def fence(self, pool: str) -> str:
        """The pool's fencing counter: the highest token a lease on the pool was given (INCR only)."""
        return self.key("fence", pool)

    def lease(self, pool: str) -> str:
        """Who holds the pool's lease (a manager id), with the lease's TTL."""
        return self.key("lease", pool)

    @property
    def managers(self) -> str:
        """Hash: manager id -> its last published state (JSON)."""
        return self.key("managers")

    def alive(self, manager: str) -> str:
        """Present (with a TTL) while the manager is alive."""
        return self.key("alive", manager)

    @property
    def alive_prefix(self) -> str:
        """What every ``alive(manager)`` key starts with (a script builds them from the ids)."""
        return self.alive("")

    @property
    def wake(self) -> str:
        """Pub/sub channel: a pool's name, published when its stock changed outside its owner."""
        return self.key("wake")

    # -- the store (store/redis.py) -----------------------------------------------------------
    def vm(self, name: str) -> str:
        """Hash: one VM record, a field per Vm attribute (absent: None)."""
        return self.key("vm", name)

    @property
    def pools(self) -> str:
        """Set: every pool a VM was ever recorded in (what list_vms and counts walk)."""
        return self.key("pools")

    def pool_state(self, pool: str, state: str) -> str:
        """Sorted set: names of the pool's VMs in ``state``, scored by created_at."""
        return self.key("state", pool, state)

    def ready(self, pool: str) -> str:
        """Sorted set: the pool's ready stock (no on-demand VMs), scored by ready_at (None: -inf)."""
        return self.key("ready", pool)

    def counts(self, pool: str) -> str:
        """Hash: state -> the number of the pool's VMs counted as stock in it (see Store.counts)."""
        return self.key("counts", pool)

    def request_vms(self, request_id: str) -> str:
        """Sorted set: the names of an on-demand request's VMs not destroyed, scored by created_at."""
        return self.key("request-vms", request_id)

    @property
    def destroyed(self) -> str:
        """Sorted set: destroyed VMs, scored by destroyed_at (None: +inf, never purged)."""
        return self.key("destroyed")

    def token(self, token_hash: str) -> str:
        """Hash: one API token record (by the token's hash)."""
        return self.key("token", token_hash)

    def user_tokens(self, user: str) -> str:
        """Sorted set: a user's token hashes, scored by created_at."""
        return self.key("user-tokens", user)

    def overrides(self, pool: str) -> str:
        """Hash: setting -> JSON value of the pool's settings changed at the API."""
        return self.key("overrides", pool)

    @property
    def override_pools(self) -> str:
        """Set: the pools that have an overrides hash."""
        return self.key("override-pools")

    def request(self, request_id: str) -> str:
        """Hash: one on-demand request."""
        return self.key("request", request_id)

    def requests(self, status: str) -> str:
        """Sorted set: ids of the requests in ``status``, scored by created_at."""
        return self.key("requests", status)

    @property
    def requests_ended(self) -> str:
        """Sorted set: ids of ended requests (ready, failed, deleted), scored by their last update."""
        return self.key("requests-ended")

    def durations(self, task: str) -> str:
        """Sorted set: one member per recorded duration of ``task``, scored by when it finished."""
        return self.key("durations", task)

    @property
    def tag_records(self) -> str:
        """Sorted set: one member per tag set on a VM, scored by when it was set."""
        return self.key("tag-records")

    @property
    def history_seq(self) -> str:
        """Counter: orders history members recorded at one time as they were recorded."""
        return self.key("history-seq")

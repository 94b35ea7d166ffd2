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

"""The control plane's settings: how long a lease lasts, how often it is renewed, and how much
of its life a manager trusts.

A lease lives ``ttl_s`` in Redis from the moment Redis sets it. The manager takes the time
*before* each call that sets or extends a lease and acts on the pool only until that time plus
``ttl_s * safety``: the call's own travel time, a scheduling pause and the two clocks' drift
come out of the remaining ``1 - safety`` of the lease, so a manager that cannot renew stops
acting before its lease can expire in Redis and another manager can take the pool.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_SCORE_THRESHOLD = 50


@dataclass(frozen=True, slots=True)
class HaSettings:
    """``manager_id``: this process's name among the managers of a site, unique per process
    (a lease already held under the id is taken over as the process's own, with its token).
    ``ttl_s``: a lease's life in Redis. ``renew_every_s``: the tick of the loop (renew, probe,
    decide, act). ``safety``: the share of ``ttl_s`` the manager acts on a lease after taking
    the time before the call that set it (0 < safety < 1). ``score_threshold``: managers
    scoring at least this take pools before those below it (see ``ha.agent.score``)."""

    manager_id: str
    ttl_s: float = 5.0
    renew_every_s: float = 1.0
    safety: float = 0.6
    score_threshold: int = DEFAULT_SCORE_THRESHOLD

    def __post_init__(self) -> None:
        if not self.manager_id.strip():
            raise ValueError("HaSettings: manager_id is empty; every manager of a site needs a name of its own")
        if not self.ttl_s > 0:
            raise ValueError(f"HaSettings: ttl_s must be above 0 s, not {self.ttl_s}")
        if not 0 < self.safety < 1:
            raise ValueError(f"HaSettings: safety must lie strictly between 0 and 1, not {self.safety}")
        if not 0 < self.renew_every_s < self.trusted_s:
            raise ValueError(
                f"HaSettings: renew_every_s ({self.renew_every_s} s) must be above 0 and below ttl_s * safety "
                f"({self.trusted_s:.3f} s), or a healthy manager would stop acting between two renewals")
        if not 0 <= self.score_threshold <= 100:
            raise ValueError(f"HaSettings: score_threshold must lie in 0..100, not {self.score_threshold}")

    @property
    def trusted_s(self) -> float:
        """How long after taking the time before a lease call the manager may act on the lease."""
        return self.ttl_s * self.safety

    @property
    def io_timeout_s(self) -> float:
        """The longest one store call or probe may take: a renewal started at its tick then ends
        before the previous renewal's deadline (while acting, the deadline itself bounds it too)."""
        return self.trusted_s - self.renew_every_s

    @property
    def ttl_ms(self) -> int:
        return max(1, round(self.ttl_s * 1000))

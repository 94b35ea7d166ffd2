"""The pool manager's settings, built from the configuration."""

from __future__ import annotations

from dataclasses import dataclass, field

from corral.inventory import MonitorSettings
from corral.runner import RunnerSettings
from corral.scheduling import SchedulerSettings


@dataclass(slots=True)
class ManagerSettings:
    task_limit: int = 10  # provider calls creating or starting VMs in flight at most
    check_interval: float = 5.0  # seconds between safety-net sweeps
    ready_retry_s: float = 1.0  # a guest that is up but not yet reachable is probed again after this
    reconcile_interval: float = 300.0  # seconds between full store/provider comparisons
    prefix: str = ""
    data_ttl_s: float = 168 * 3600.0
    feed_timeout: float = 30.0  # long-poll length of one change-feed call
    ondemand_clone_limit: int = 10  # on-demand clones in flight at most
    ondemand_ttl_s: float = 300.0  # an on-demand request not ready after this has failed
    lifetime_auth_s: float | None = None  # lifetime of VMs handed to a token's user
    refill_gather_s: float = 0.003  # a refill round waits this long for more work to gather
    host_down_grace_s: float = 60.0  # a host silent this long is declared down
    scheduling: SchedulerSettings = field(default_factory=SchedulerSettings)
    migration_limit: int = 0  # migrations at checkout in flight at once; 0: none
    rebalance: bool = False
    rebalance_threshold: float = 80.0  # percent CPU or memory
    rebalance_sustain_s: float = 120.0
    rebalance_interval_s: float = 60.0
    runner: RunnerSettings = field(default_factory=RunnerSettings)  # its task_limit is the one above
    connect_retry_s: float = 1.0  # a provider that cannot be reached is tried again after this, doubled
    connect_retry_max_s: float = 60.0  # each time up to this
    connect_wait_s: float = 10.0  # start waits this long for the providers; a slower one comes in later

    def monitor_settings(self) -> MonitorSettings:
        return MonitorSettings(feed_timeout=self.feed_timeout, host_down_grace_s=self.host_down_grace_s)

"""Every metric corral exposes, in one table: its name, type, labels and meaning.

vmpooler's metrics (``vmpooler=True``) keep vmpooler's names and labels: in Prometheus
``<prometheus_prefix>_<key>`` with the label ``vmpooler_instance``, in statsd and graphite
``<prefix>.<path>.<label values>``. corral's own are ``corral_<key>`` and ``<prefix>.corral.<path>``.
A counter's Prometheus samples end in ``_total``, as the exposition format asks of counters.
docs/operations.md lists this table; a test holds the two together.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = ["CLONE_BUCKETS", "INSTANCE_LABEL", "METRICS", "READY_BUCKETS", "Kind", "Metric", "metric",
           "prometheus_name"]

#: vmpooler's buckets (seconds) for clone, destroy and migrate times, and for the time to ready.
CLONE_BUCKETS: tuple[float, ...] = (10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 180.0, 240.0, 300.0, 600.0)
READY_BUCKETS: tuple[float, ...] = (30.0, 60.0, 120.0, 180.0, 240.0, 300.0, 500.0, 800.0, 1200.0, 1600.0)

#: The label vmpooler puts on each of its metrics: the ``:prometheus: prefix`` of the instance.
INSTANCE_LABEL = "vmpooler_instance"


class Kind(Enum):
    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"


@dataclass(frozen=True, slots=True)
class Metric:
    key: str
    kind: Kind
    labels: tuple[str, ...]
    help: str
    vmpooler: bool = False
    buckets: tuple[float, ...] = ()

    @property
    def path(self) -> str:
        """The dotted stem of its statsd and graphite paths (vmpooler's where it has one)."""
        return _VMPOOLER_PATHS.get(self.key, self.key.replace("_", ".")) if self.vmpooler \
            else "corral." + self.key.replace("_", ".")


def prometheus_name(m: Metric, name_prefix: str) -> str:
    """Its family name in the exposition (counters get their ``_total`` on the samples)."""
    return f"{name_prefix}_{m.key}" if m.vmpooler else f"corral_{m.key}"


C, G, H = Kind.COUNTER, Kind.GAUGE, Kind.HISTOGRAM
POOL = ("poolname",)
HOST = ("provider", "host")

METRICS: tuple[Metric, ...] = (
    # -- vmpooler's ------------------------------------------------------------------------------
    Metric("ready", G, POOL, "VMs ready in the pool", vmpooler=True),
    Metric("running", G, POOL, "VMs of the pool checked out (migrating ones included)", vmpooler=True),
    Metric("pending", G, POOL, "VMs of the pool being created or booting (corral adds it)", vmpooler=True),
    Metric("checkout_success", C, POOL, "VMs handed out by checkouts, by pool", vmpooler=True),
    Metric("checkout_empty", C, POOL, "checkouts refused because the name asked for had too few ready VMs",
           vmpooler=True),
    Metric("checkout_invalid", C, POOL, "names asked for that are no pool or alias, all under poolname "
           "'unknown' (the name asked for may be anything)", vmpooler=True),
    Metric("delete_success", C, (), "VMs returned with DELETE /vm/<hostname>", vmpooler=True),
    Metric("delete_failed", C, (), "returns refused (no such checked-out VM, or not the owner's)", vmpooler=True),
    Metric("errors_markedasfailed", C, ("template_name",), "pending VMs marked failed (clone or boot failed "
           "or timed out), by pool", vmpooler=True),
    Metric("time_to_ready_state", H, POOL, "seconds from a VM's create request to ready", vmpooler=True,
           buckets=READY_BUCKETS),
    Metric("clone", H, POOL, "seconds from a VM's create request until the provider's inventory shows it",
           vmpooler=True, buckets=CLONE_BUCKETS),
    Metric("destroy", H, POOL, "seconds from a VM's destroy intent until it is gone", vmpooler=True,
           buckets=CLONE_BUCKETS),
    Metric("migrate", H, POOL, "seconds a migration corral asked for took", vmpooler=True, buckets=CLONE_BUCKETS),
    Metric("migrate_from", C, ("host_name",), "VMs corral migrated away from the host", vmpooler=True),
    Metric("migrate_to", C, ("host_name",), "VMs corral migrated onto the host", vmpooler=True),
    # -- pools -----------------------------------------------------------------------------------
    Metric("checkout_raced", C, (), "checkouts refused because other checkouts took the last ready VMs "
           "first (a 503: try again); not counted as empty"),
    Metric("pool_size", G, POOL, "the pool's size (ready VMs it keeps)"),
    Metric("pool_unplaceable", G, POOL, "1 when the pool's last VM could not be placed on any host"),
    Metric("pool_target_size", G, POOL, "an autosized pool's target: the size autosizing keeps now"),
    Metric("pool_demand_per_hour", G, POOL, "an autosized pool's rate of checkouts, per hour, as autosizing sees it"),
    Metric("pool_ready_seconds", G, POOL, "an autosized pool's measured time from asking for a VM to its being ready"),
    # -- the runner ------------------------------------------------------------------------------
    Metric("runner_queued", G, ("class",), "works waiting in the runner's queue, by class"),
    Metric("runner_queue_limit", G, (), "works the queue holds at most"),
    Metric("runner_calls_in_flight", G, (), "provider calls under way"),
    Metric("runner_calls_waiting", G, (), "provider calls waiting for a slot"),
    Metric("runner_calls", C, (), "provider calls the runner made (create or start)"),
    Metric("runner_vms_sent", C, (), "VMs those calls carried (divided by runner_calls: the mean batch size)"),
    Metric("runner_works", C, ("outcome",), "works by outcome: created, restarted, rerun, failed, "
           "permanent_failure, unplaced, cancelled, refused"),
    Metric("runner_hosts_avoided", G, (), "hosts whose circuit breaker is open"),
    Metric("runner_breakers_opened", C, (), "times a host's circuit breaker opened (no new VMs go there for a while)"),
    Metric("runner_breakers_closed", C, (), "times a host's circuit breaker closed again (the host took VMs again)"),
    # -- hosts -----------------------------------------------------------------------------------
    Metric("host_calls_in_flight", G, HOST, "the runner's calls to the host under way"),
    Metric("host_cpu_percent", G, HOST, "CPU use of the host, percent"),
    Metric("host_memory_percent", G, HOST, "memory use of the host, percent"),
    Metric("host_vms", G, HOST, "VMs on the host"),
    Metric("host_up", G, HOST, "1 when the provider reports the host connected and responding"),
    Metric("host_down", G, HOST, "1 when the inventory has declared the host down (after the grace time)"),
    Metric("host_maintenance", G, HOST, "1 when the host is in maintenance"),
    # -- placement -------------------------------------------------------------------------------
    Metric("placement_placed", C, ("provider",), "VMs placed on a host"),
    Metric("placement_unplaced", C, ("provider",), "VMs no host could take"),
    Metric("placement_reserved", G, ("provider",), "placements holding CPU and memory until their VM shows up"),
    Metric("placement_rejections", C, ("reason",), "hosts rejected for a VM no host could take, by the "
           "filter that rejected them"),
    Metric("migrations_in_flight", G, (), "migrations under way"),
    Metric("migrations", C, ("outcome",), "migrations by outcome: done, failed, not_needed, dropped, rebalanced, "
           "unsupported"),
    # -- providers and the inventory --------------------------------------------------------------
    Metric("provider_connected", G, ("provider",), "1 when the provider's session is up"),
    Metric("provider_connect_attempts", C, ("provider",), "attempts to connect the provider"),
    Metric("provider_failures", C, ("provider", "operation", "cause"), "failed provider calls, and VMs a bulk "
           "create or start failed, by the provider method and the cause (session, unreachable, timeout, host, "
           "not_found, refused, feed, injected, other)"),
    Metric("provider_sessions_renewed", C, ("provider",), "provider sessions that expired and were renewed (the "
           "call then went on; not failures)"),
    Metric("provider_feed_errors", C, ("provider",), "change-feed reads that failed"),
    Metric("provider_resnapshots", C, ("provider",), "full inventory snapshots read again after a lost feed"),
    Metric("provider_inventory_repairs", C, ("provider",), "inventory records a reconcile repaired"),
    Metric("provider_vms", G, ("provider",), "VMs in the provider's inventory"),
    Metric("provider_hosts_down", G, ("provider",), "hosts declared down"),
    Metric("provider_feed_lag_seconds", G, ("provider",), "seconds the inventory may be behind the provider: "
           "every change made before then is in it (a long-poll feed that is idle shows up to its wait)"),
    Metric("reconciles", C, (), "full reconciles of the store against the providers"),
    Metric("reconcile_repairs", C, (), "store records a reconcile found wrong (expected 0)"),
    Metric("vanished", C, (), "VMs that left a provider behind corral's back"),
    Metric("orphans_destroyed", C, (), "VMs no record knew, destroyed"),
    Metric("destroy_failures", G, ("state",), "VMs whose destroy failed: retrying, or held after a permanent error"),
    Metric("ha_restarts", C, (), "checked-out VMs restarted on another host after theirs went down"),
    Metric("ha_restart_failures", C, (), "such restarts that failed"),
    Metric("events_published", C, (), "events published on the event bus"),
    Metric("event_overflows", C, (), "times a subscriber's queue overflowed (it resyncs)"),
    # -- the store -------------------------------------------------------------------------------
    Metric("store_available", G, (), "1 while the pool manager's writes reach the store, 0 during an outage"),
    Metric("store_outages", C, (), "times the store became unavailable to the pool manager (Redis down, the "
           "sqlite file locked by another process past `lock_wait`)"),
    Metric("store_steps_refused", C, (), "manager steps (a refill, a sweep, a create's intent, a destroy) that "
           "failed on an unavailable store and wait for their next turn; no provider was called for them"),
    Metric("store_unavailable_answers", C, (), "API requests answered 503 because the store was unavailable"),
    # -- the pushers ------------------------------------------------------------------------------
    Metric("push_failures", C, ("to",), "failed sends or pushes to the statsd or graphite server"),
    Metric("push_dropped", C, ("to",), "statsd lines not sent (the server's address not known yet, or a send failed)"),
    # -- managers (several processes on Redis) ----------------------------------------------------
    Metric("manager_state", G, ("manager", "state"), "1 for each live manager's state (Active, Standby, ...)"),
    Metric("manager_pools", G, ("manager",), "pools each live manager holds the lease of"),
    Metric("manager_score", G, ("manager",), "each live manager's published health score"),
)

_VMPOOLER_PATHS = {"checkout_success": "checkout.success", "checkout_empty": "checkout.empty",
                   "checkout_invalid": "checkout.invalid", "delete_success": "delete.success",
                   "delete_failed": "delete.failed", "errors_markedasfailed": "errors.markedasfailed",
                   "time_to_ready_state": "time_to_ready_state", "migrate_from": "migrate_from",
                   "migrate_to": "migrate_to"}

_BY_KEY = {m.key: m for m in METRICS}


def metric(key: str) -> Metric:
    """The metric of ``key`` (KeyError naming it if there is none)."""
    return _BY_KEY[key]

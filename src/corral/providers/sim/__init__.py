"""The simulator: corral's embedded default provider and its benchmark substrate.

``SimProvider`` is an in-process, asyncio model of a virtualization cluster. It speaks the
:class:`~corral.providers.base.Provider` protocol exactly as the vSphere and libvirt
providers do, so everything above the provider layer runs unchanged against it.

The model
    A fixed set of hosts (``hosts``: a count, named ``sim-host-01``…, or an explicit list),
    each with a CPU (``cpu_model``, its description such as ``Intel(R) Xeon(R) CPU E5-2680 v4
    @ 2.40GHz``, whose fifth word is the model word; ``cpu_vendor``, ``cpu_family`` and
    ``cpu_flags``), cores, MHz and memory; ``host_defaults`` and ``host_overrides`` may set
    any of them. A host also has a health (``green``, ``yellow``, ``red`` or ``gray``) and a
    count of configuration issues, set by the hook ``set_host_health``; like vSphere, the
    simulator still places VMs on an unhealthy host (only corral's scheduler avoids it) and
    refuses only hosts that are down or in maintenance.

    VMs are created in bulk on one host (a call costs ``create_call``, then the host clones
    ``host_clone_slots`` VMs side by side, each taking ``create_per_vm``), sized by their
    template (``templates``, else ``template_defaults``; with ``strict_templates`` an
    unknown template fails the VM). A powered-on VM uses
    ``cpus × host MHz × vm_cpu_load`` of its host's CPU and its ``memory_mb`` of memory;
    every VM, powered on or off, counts in its host's allocated memory
    (``HostInfo.memory_allocated_mb``). A template may also ask for a CPU (``cpu_vendor``,
    ``cpu_family``, ``cpu_flags``, ``cpu_model`` as a model word; empty asks for nothing):
    ``template_info`` reports that, but the simulator does not enforce it on create or
    migrate; compatibility is the scheduler's business.
    A created or powered-on VM's guest becomes ready ``latency.boot`` seconds later.
    ``start_vms`` restarts VMs whose host failed on another host, as HA does (their disks are
    on shared storage): a call costs ``start_call``, then ``start_per_vm`` per round of
    ``host_clone_slots`` VMs; each VM moves, powers on and boots again. A VM still powered on
    on a host that is up is refused. ``bulk_calls`` is what the provider reports about its
    endpoint (whether many VMs per call is one real call); the simulator itself takes many
    VMs per call either way.
    A VM keeps the disks added to it (``add_disk``, sizes only) and named snapshots; a
    snapshot holds the disks and the run state, so reverting restores both (a guest that
    was ready is ready at once, one that was booting boots again).

Time
    Every latency is multiplied by ``time_scale`` (0.001 turns a 10 s boot into 10 ms) and
    by a random factor within ``1 ± jitter``. Each call holds one of ``concurrency`` slots
    while it sleeps, like calls on one endpoint session. Boots are ``loop.call_later``
    timers, no threads. The ``timeout`` of ``wait_for_updates`` is real time, not scaled.

Failures
    Every failure says why (``ProviderError.cause``, ``CreateResult.cause``): ``injected`` for
    what a test or a failure rate injected, ``host`` for a host down, in maintenance or failing
    VMs, ``not_found``, ``refused``, ``session``, ``unreachable`` and ``feed`` as named.
    ``failure_rates`` make single VM creates, boots, destroys, migrations, disk adds,
    snapshots and reverts fail at random (``seed`` makes that repeatable). Tests inject
    failures on purpose with the hooks of ``provider.controls`` (``controls.py``):
    ``fail_next``, ``stall``, ``set_host_down``, ``set_host_maintenance``,
    ``set_host_health``, ``fail_on_host`` (every VM created or started on that host fails,
    retryably, while the call succeeds), ``stall_host`` (every call touching a host sleeps),
    ``fail_clones`` (each VM of a create fails at a seeded rate), ``expire_session_every``
    (the session expires every N calls and is renewed; ``sessions_renewed`` counts it) with
    ``fail_renewals``, ``unreachable_for`` (the whole endpoint, the feed included, for a
    while), ``drop_feed`` (the change feed's connection drops), ``set_guest_ready``,
    ``inject_vm`` and ``vanish`` (a VM deleted behind corral's back), and read ``vm``,
    ``vm_disks`` / ``vm_snapshots`` without a call; ``calls`` counts calls per method, for
    "provider calls per VM" in benchmarks, and ``call_log`` keeps the last create and start calls
    (``SimCall``: operation, host, VM names, when it was dispatched).

The change feed
    Every change to a VM or host appends to a bounded log (``corral.providers.changefeed``); ``wait_for_updates``
    answers with the latest record of each VM and host changed since a version, a full
    snapshot for a version it cannot answer, or an empty update after ``timeout``.

Persistence
    With ``state_file`` the VMs, with their disks and snapshots, live in a small sqlite
    file, committed before each changing call returns, so a simulator reopened on it after
    a crash finds the same VMs; boots still running then finish on their original
    wall-clock deadline. Each connect reads the file again, so simulators of several
    processes on one file (managers that hand pools to each other) each start from what the
    others left.
"""

from corral.providers.sim.call_log import SimCall
from corral.providers.sim.provider import SimProvider
from corral.providers.sim.settings import (
    SimFailureRates,
    SimHostOverride,
    SimHostSettings,
    SimLatency,
    SimSettings,
    SimTemplate,
)

__all__ = [
    "SimCall",
    "SimFailureRates",
    "SimHostOverride",
    "SimHostSettings",
    "SimLatency",
    "SimProvider",
    "SimSettings",
    "SimTemplate",
]

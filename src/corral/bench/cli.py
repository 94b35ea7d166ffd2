"""``corral bench``: the benchmarks' commands and their options. Each command imports its
benchmark when it runs, so that the rest of ``corral`` does not load them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Protocol

import typer

from corral.bench.common import BENCHMARKS_MD, Say, command_line

# -- the end of a run: ``--record`` appends the result to ``--output``, then ``--json`` prints its
# one JSON object (``ok``, and ``targets_met`` where the benchmark has targets) or the tables --


class BenchResult(Protocol):
    """What a recorded benchmark's result offers :func:`finish`."""

    @property
    def ok(self) -> bool: ...

    def as_dict(self) -> dict[str, Any]: ...

    def summary(self) -> str: ...

    def append_markdown(self, path: Path, command: str) -> None: ...


def finish(result: BenchResult, tables: Sequence[Any], *, as_json: bool, record: bool, output: Path) -> None:
    """What every recorded benchmark does with its result: append it to the markdown file
    ``output`` when asked, then print it as one JSON object or as ``rich`` tables and a
    summary line."""
    if record:
        result.append_markdown(output, command_line())
    if as_json:
        typer.echo(json.dumps(result.as_dict()))
        return
    from rich.console import Console

    console = Console()
    if not console.is_terminal:
        console.width = max(console.width, 130)
    for table in tables:
        console.print(table)
    typer.echo(result.summary())


bench_app = typer.Typer(help="Benchmarks on the simulator.", no_args_is_help=True)


def _progress(as_json: bool) -> Say | None:
    """Progress lines go to stderr, unless the output is one JSON object."""
    return None if as_json else lambda m: typer.echo(m, err=True)


def _need_numpy(command: str) -> None:
    """Exit 2 with one line saying how to install numpy when it is missing."""
    try:
        import numpy  # noqa: F401
    except ImportError:
        typer.echo(f"error: corral bench {command} needs numpy, which is not installed; "
                   "install it with: pip install 'corral[bench]'", err=True)
        raise typer.Exit(2) from None


# The output options every recorded benchmark takes.
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object, nothing else.")]
RecordOption = Annotated[bool, typer.Option("--record", help="Append the result to the markdown file --output.")]
OutputOption = Annotated[Path, typer.Option(help="The markdown file --record appends to.")]


@bench_app.command("fill")
def bench_fill(
    vms: Annotated[int, typer.Option(help="VMs in all pools together.")] = 500,
    pools: Annotated[int, typer.Option(help="Number of pools.")] = 10,
    task_limit: Annotated[int, typer.Option(help="Clones in flight at most.")] = 10,
    time_scale: Annotated[float, typer.Option(help="Simulator time scale (1.0 = real seconds).")] = 0.02,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object as the last line.")] = False,
    output: Annotated[Path | None, typer.Option(help="Append a result row to this markdown file.")] = None,
) -> None:
    """Fill pools on the simulator and compare the time with the ideal of one bulk call per host."""
    from corral.bench.fill import run_fill

    result = run_fill(vms=vms, pools=pools, task_limit=task_limit, time_scale=time_scale, progress=_progress(as_json))
    if output is not None:
        result.append_markdown(output, command_line())
    typer.echo(result.report())
    if as_json:
        typer.echo(json.dumps(result.as_dict()))


@bench_app.command("api")
def bench_api(
    clients: Annotated[str, typer.Option(help="Comma-separated client counts, one run each.")] = "1,32",
    store: Annotated[str, typer.Option(help="The stores measured: sqlite, redis or both (Redis on a "
                                            "redis-server the run starts, with persistence).")] = "both",
    processes: Annotated[str, typer.Option(help="Comma-separated API process counts: 1 is one --role all "
                                                "process; N > 1 is N --role api processes and one --role "
                                                "manager, the clients spread over them. sqlite only ever runs "
                                                "1 process: corral refuses a second process on sqlite.")] = "1,2",
    duration: Annotated[float, typer.Option(help="Seconds measured per run.")] = 5.0,
    warmup: Annotated[float, typer.Option(help="Seconds of load before measuring.")] = 1.0,
    pool_size: Annotated[int, typer.Option(help="Ready VMs in corral's pool at the start of a run.")] = 2000,
    as_json: JsonOption = False,
    record: RecordOption = False,
    output: OutputOption = BENCHMARKS_MD,
    profile: Annotated[Path | None, typer.Option(help="Run corral's API processes under cProfile, write the "
                                                      "statistics next to this file (one per process, named "
                                                      "after it: FILE.sqlite-1.1.prof) and print the hotspots.")]
    = None,
) -> None:
    """Checkout + return pairs over HTTP against a real corral, on sqlite and on Redis, in one
    and in several processes, and against a bare-HTTP baseline.

    Example: corral bench api --store both --processes 1,2 --clients 1,32 --json
    """
    from corral.bench.api import check_settings, profile_summary, run_api
    from corral.bench.api_setups import choose_setups, profile_path
    from corral.bench.redisd import RedisUnavailable, binary

    try:
        counts = [int(c) for c in clients.split(",") if c.strip()]
        numbers = [int(p) for p in processes.split(",") if p.strip()]
    except ValueError:
        typer.echo(f"error: --clients and --processes must be whole numbers separated by commas, "
                   f"got {clients!r} and {processes!r}", err=True)
        raise typer.Exit(2) from None
    try:
        check_settings(counts, duration, warmup, pool_size)
        setups = choose_setups(store, numbers)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        if any(setup.store == "redis" for setup in setups):
            binary()  # before anything is measured: redis-server is there
        result = run_api(clients=counts, setups=setups, duration=duration, warmup=warmup, pool_size=pool_size,
                         profile=profile, progress=_progress(as_json))
    except RedisUnavailable as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    finish(result, result.tables(), as_json=as_json, record=record, output=output)
    if profile is not None and not as_json:
        for setup in setups:
            for index in range(1, setup.processes + 1):
                if (path := profile_path(profile, setup, index)).exists():
                    typer.echo(f"-- {path}\n{profile_summary(path)}", err=True)
    if not result.ok:
        raise typer.Exit(1)


@bench_app.command("inventory")
def bench_inventory(
    hosts: Annotated[int, typer.Option(help="Simulated hosts (vCenter's maximum: 2,500).")] = 2500,
    vms: Annotated[int, typer.Option(help="Simulated powered-on VMs (vCenter's maximum: 45,000).")] = 45000,
    pools: Annotated[int, typer.Option(help="Pools the VMs are spread over.")] = 300,
    rate: Annotated[float, typer.Option(help="Changes/s during the measured churn.")] = 2000.0,
    duration: Annotated[float, typer.Option(help="Seconds of churn measured.")] = 10.0,
    idle: Annotated[float, typer.Option(help="Seconds of idle measured.")] = 5.0,
    poll_interval: Annotated[float, typer.Option(help="Baseline: seconds between poll cycles (oVirt's "
                                                      "VdsRefreshRate: 3).")] = 3.0,
    threads: Annotated[int, typer.Option(help="Baseline: threads polling hosts.")] = 16,
    steps: Annotated[str, typer.Option(help="Comma-separated change rates tried, in order, for corral's "
                                            "highest sustained rate; empty: none.")]
    = "2000,5000,10000,20000,40000,60000,80000,100000,120000,160000",
    step_duration: Annotated[float, typer.Option(help="Seconds per step rate.")] = 4.0,
    as_json: JsonOption = False,
    record: RecordOption = False,
    output: OutputOption = BENCHMARKS_MD,
) -> None:
    """Initial load, memory, change-to-event latency and CPU of the live inventory, against re-polling."""
    from corral.bench.inventory import run_inventory
    from corral.bench.inventory_settings import InventoryBenchSettings

    try:
        rates = [float(r) for r in steps.split(",") if r.strip()]
        settings = InventoryBenchSettings(hosts=hosts, vms=vms, pools=pools, rate=rate, duration=duration,
                                          idle=idle, poll_interval=poll_interval, threads=threads, steps=rates,
                                          step_duration=step_duration)
        settings.check()
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    result = run_inventory(settings, progress=_progress(as_json))
    tables = [result.table(), *([result.steps_table()] if result.corral.steps else [])]
    finish(result, tables, as_json=as_json, record=record, output=output)
    if not result.ok:
        raise typer.Exit(1)


@bench_app.command("scheduler")
def bench_scheduler(
    quick: Annotated[bool, typer.Option("--quick", help="Small sizes (200 hosts / 1,000 VMs, 16 hosts / 300 VMs), "
                                                        "for tests.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of the generated hosts and VMs.")] = 1,
    as_json: JsonOption = False,
    record: RecordOption = False,
    output: OutputOption = BENCHMARKS_MD,
) -> None:
    """Placements/s of the scheduler against greedy baselines (same answers required), and how
    evenly it loads hosts against vmpooler's rules."""
    _need_numpy("scheduler")
    from corral.bench.scheduler import run_scheduler
    from corral.bench.scheduler_settings import SchedulerBenchSettings

    settings = SchedulerBenchSettings.quick_settings(seed) if quick else SchedulerBenchSettings(seed=seed)
    result = run_scheduler(settings, progress=_progress(as_json))
    finish(result, result.tables(), as_json=as_json, record=record, output=output)
    if not result.ok:
        raise typer.Exit(1)


@bench_app.command("massrun")
def bench_massrun(
    time_scale: Annotated[float | None, typer.Option(help="Simulator time scale (1.0 = real seconds); "
                                                          "default 0.1, 0.01 with --quick.")] = None,
    serial_sample: Annotated[int | None, typer.Option(help="Serial one-VM create calls measured, then "
                                                           "extrapolated to every VM; default 100, 10 with "
                                                           "--quick; 1000 measures them all.")] = None,
    repeats: Annotated[int | None, typer.Option(help="corral's mass run this many times, each on a fresh "
                                                     "manager; the median counts. Default 3, 1 with --quick.")]
    = None,
    quick: Annotated[bool, typer.Option("--quick", help="Small sizes (100 VMs, 200 HA VMs, 100 refills), "
                                                        "for tests.")] = False,
    as_json: JsonOption = False,
    record: RecordOption = False,
    output: OutputOption = BENCHMARKS_MD,
) -> None:
    """1,000 VMs created through the central runner against one call per VM and the physical
    limit, and HA restarts after a host goes down, alone and with 1,000 refills queued."""
    from corral.bench.massrun import run_massrun
    from corral.bench.massrun_settings import MassRunSettings

    settings = MassRunSettings.quick_settings() if quick else MassRunSettings()
    if time_scale is not None:
        settings.time_scale = time_scale
    if serial_sample is not None:
        settings.serial_sample = serial_sample
    if repeats is not None:
        settings.repeats = repeats
    try:
        settings.check()
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    result = run_massrun(settings, progress=_progress(as_json))
    finish(result, result.tables(), as_json=as_json, record=record, output=output)
    if not result.ok:
        raise typer.Exit(1)


@bench_app.command("failover")
def bench_failover(
    kills: Annotated[int, typer.Option(help="kill -9 rounds, for the standby takeover and for the baseline.",
                                       min=1, max=100)] = 10,
    ttl: Annotated[float, typer.Option(help="Lease TTL in seconds (:ha: lease_ttl).", min=1.0, max=60.0)] = 5.0,
    as_json: JsonOption = False,
    record: RecordOption = False,
    output: OutputOption = BENCHMARKS_MD,
) -> None:
    """Time from kill -9 of the manager owning pools to the first VM the new owner creates
    (real processes on a real redis-server), against a supervisor restarting a lone manager.

    Example: corral bench failover --kills 10 --record
    """
    from corral.bench.failover import run_failover
    from corral.bench.redisd import RedisUnavailable

    try:
        result = run_failover(kills, ttl, progress=_progress(as_json))
    except RedisUnavailable as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    finish(result, result.tables(), as_json=as_json, record=record, output=output)
    if not result.ok:
        raise typer.Exit(1)


@bench_app.command("vsphere")
def bench_vsphere(
    pools: Annotated[int, typer.Option(help="Pools filled from empty.")] = 10,
    vms_per_pool: Annotated[int, typer.Option(help="VMs per pool.")] = 20,
    clone_delay_ms: Annotated[int, typer.Option(help="Milliseconds vcsim holds every CloneVM_Task call.")] = 2000,
    hosts: Annotated[int, typer.Option(help="vcsim hosts (one cluster).")] = 10,
    task_limit: Annotated[int, typer.Option(help="Create calls in flight, corral and baseline alike.")] = 10,
    wide: Annotated[bool, typer.Option(help="Also run corral with 40 calls in flight on its one session.")] = True,
    as_json: JsonOption = False,
    record: RecordOption = False,
    output: OutputOption = BENCHMARKS_MD,
) -> None:
    """Fill pools on vcsim with one vCenter session for every pool against one session per pool
    (vmpooler's model) and against the floor (the same clones through one bare pyvmomi session):
    wall time, where each VM's time goes, peak sessions and vSphere calls."""
    from corral.bench.vcsim import VcsimUnavailable
    from corral.bench.vsphere import run_vsphere
    from corral.bench.vsphere_settings import VsphereBenchSettings

    settings = VsphereBenchSettings(pools=pools, vms_per_pool=vms_per_pool, clone_delay_ms=clone_delay_ms,
                                    hosts=hosts, task_limit=task_limit, wide=wide)
    try:
        settings.check()
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        result = run_vsphere(settings, progress=_progress(as_json))
    except VcsimUnavailable as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    finish(result, result.tables(), as_json=as_json, record=record, output=output)
    if not result.ok:
        raise typer.Exit(1)

"""``corral bench``: the benchmarks' commands and their options. Each command imports its
benchmark when it runs, so that the rest of ``corral`` does not load them."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Protocol

import typer

from corral.bench.common import BENCHMARKS_MD, command_line, link_plot, plot_path
from corral.bench.progress import shown

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# -- the end of a run: ``--record`` appends the result to ``--output``, ``--plot`` draws its figure,
# then ``--json`` prints its one JSON object (``ok``, and ``targets_met`` where the benchmark has
# targets) or the tables --


class BenchResult(Protocol):
    """What a recorded benchmark's result offers :func:`finish`."""

    @property
    def ok(self) -> bool: ...

    def as_dict(self) -> dict[str, Any]: ...

    def summary(self) -> str: ...

    def append_markdown(self, path: Path, command: str) -> None: ...


@dataclass(frozen=True)
class Plot:
    """The figure of a result (``--plot``): how to draw it, its file's name and, in the markdown
    file, the table it is shown beside and its caption."""

    figure: Callable[[], Figure]
    name: str
    header: str
    caption: str


def draw(plot: Plot, *, record: bool, output: Path) -> Path:
    """Write ``plot``'s figure: with ``record``, beside ``output`` (docs/benchmarks/NAME.png)
    and shown after its table there; else as corral-bench-NAME.png in the current directory."""
    from corral.bench.plots import save_png

    path = plot_path(output, plot.name) if record else Path(f"corral-bench-{plot.name}.png")
    save_png(plot.figure(), path)
    if record and output.exists():
        caption = f"{plot.caption}, the last run recorded ({time.strftime('%Y-%m-%d')})"
        output.write_text(link_plot(output.read_text(), plot.header, path.relative_to(output.parent).as_posix(),
                                    caption))
    return path


def finish(result: BenchResult, tables: Sequence[Any], *, as_json: bool, record: bool, output: Path,
           plot: Plot | None = None) -> None:
    """What every recorded benchmark does with its result: append it to the markdown file
    ``output`` when asked, draw its figure when asked (``plot``), then print it as one JSON
    object or as ``rich`` tables and a summary line. A figure that cannot be written is said on
    stderr and the exit status is 1, after the result is printed."""
    if record:
        result.append_markdown(output, command_line())
    failed = False
    if plot is not None:
        try:
            path = draw(plot, record=record, output=output)
            typer.echo(f"figure written to {path}", err=True)
        except OSError as exc:
            typer.echo(f"error: the figure could not be written: {exc}", err=True)
            failed = True
    if as_json:
        typer.echo(json.dumps(result.as_dict()))
    else:
        _print_tables(tables, result.summary())
    if failed:
        raise typer.Exit(1)


def _print_tables(tables: Sequence[Any], summary: str) -> None:
    """``tables`` with ``rich`` on stdout, at least 130 columns wide when it is not a terminal,
    then the summary."""
    from rich.console import Console

    console = Console()
    if not console.is_terminal:
        console.width = max(console.width, 130)
    for table in tables:
        console.print(table)
    typer.echo(summary)


bench_app = typer.Typer(
    no_args_is_help=True,
    help="Benchmarks: corral against a baseline on the same simulated cluster, in one run.\n\n"
         "Example: corral bench fill --vms 100 --pools 5")


def _command(name: str) -> Any:
    return bench_app.command(name)


def _fail(message: str) -> typer.Exit:
    """Say ``message`` as an error on stderr; the exit (status 2) to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


class Checked(Protocol):
    """A benchmark's settings: ``check`` raises ValueError saying what a run cannot use."""

    def check(self) -> None: ...


def measure(settings: Checked, run: Callable[..., Any], *, as_json: bool, record: bool, output: Path,
            plot: tuple[str, str, str] | None = None) -> None:
    """Check ``settings`` (exit 2 saying what is wrong), run the benchmark (``run(settings,
    progress=...)``), :func:`finish` with its tables, and exit 1 when its result is not ok.
    ``plot`` (the figure's name, the table's header, the caption) draws ``result.figure``."""
    try:
        settings.check()
    except ValueError as exc:
        raise _fail(str(exc)) from None
    with shown(as_json) as progress:
        result = run(settings, progress=progress)
    finish(result, result.tables(), as_json=as_json, record=record, output=output,
           plot=Plot(result.figure, *plot) if plot is not None else None)
    if not result.ok:
        raise typer.Exit(1)


def _need_numpy(command: str) -> None:
    """Exit 2 with one line saying how to install numpy when it is missing."""
    try:
        import numpy  # noqa: F401
    except ImportError:
        raise _fail(f"corral bench {command} needs numpy, which is not installed; "
                    "install it with: pip install 'corral[bench]'") from None


def _need_matplotlib(plot: bool) -> None:
    """With ``--plot``, exit 2 with one line saying how to install matplotlib when it is missing,
    before anything is measured."""
    from corral.bench.plots import MatplotlibMissing, check_matplotlib

    if plot:
        try:
            check_matplotlib()
        except MatplotlibMissing as exc:
            raise _fail(str(exc)) from None


# The output options every recorded benchmark takes.
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object, nothing else, on stdout.")]
RecordOption = Annotated[bool, typer.Option("--record", help="Append the result to the markdown file --output.")]
OutputOption = Annotated[Path, typer.Option(help="The markdown file --record appends to.")]
PlotOption = Annotated[bool, typer.Option(
    "--plot", help="Also draw the result as a PNG (needs matplotlib). With --record it goes into a folder named "
                   "after --output (docs/benchmarks/NAME.png) and is shown after the table; otherwise it is "
                   "written as corral-bench-NAME.png in the current directory.")]


@_command("fill")
def bench_fill(
    vms: Annotated[int, typer.Option(help="VMs in all pools together.", min=1, max=100_000)] = 500,
    pools: Annotated[int, typer.Option(help="Number of pools, at most one per VM.", min=1, max=10_000)] = 10,
    task_limit: Annotated[int, typer.Option(help="Clone calls in flight at most.", min=1, max=1000)] = 10,
    time_scale: Annotated[float, typer.Option(help="Simulator time scale (1.0 = real seconds).", min=0.0001,
                                              max=10.0)] = 0.02,
    as_json: JsonOption = False,
    record: RecordOption = False,
    output: OutputOption = BENCHMARKS_MD,
    plot: PlotOption = False,
) -> None:
    """Fill empty pools on the simulator, with corral and with a vmpooler-style loop, and compare
    both times with the ideal of one bulk clone call per host.

    Example: corral bench fill --vms 500 --pools 10 --record --plot
    """
    from corral.bench.fill import FILL_TABLE_HEADER, run_fill

    if pools > vms:
        raise _fail(f"--pools ({pools}) cannot be more than --vms ({vms}): every pool needs a VM")
    _need_matplotlib(plot)
    with shown(as_json) as progress:
        result = run_fill(vms=vms, pools=pools, task_limit=task_limit, time_scale=time_scale, progress=progress)
    finish(result, result.tables(), as_json=as_json, record=record, output=output,
           plot=Plot(result.figure, "fill", FILL_TABLE_HEADER,
                     "VMs ready over time, corral against the vmpooler-style loop") if plot else None)
    if not result.ok:
        raise typer.Exit(1)


@_command("api")
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
    plot: PlotOption = False,
    profile: Annotated[Path | None, typer.Option(help="Run corral's API processes under cProfile, write the "
                                                      "statistics next to this file (one per process, named "
                                                      "after it: FILE.sqlite-1.1.prof) and print the hotspots.")]
    = None,
) -> None:
    """Checkout + return pairs over HTTP against a real corral, on sqlite and on Redis, in one
    and in several processes, and against a bare HTTP server that does no work.

    Example: corral bench api --store both --processes 1,2 --clients 1,8,32 --plot
    """
    from corral.bench.api import check_settings, profile_summary, run_api
    from corral.bench.api_report import API_TABLE_HEADER
    from corral.bench.api_setups import choose_setups, profile_path
    from corral.bench.redisd import RedisUnavailable, binary

    try:
        counts = [int(c) for c in clients.split(",") if c.strip()]
        numbers = [int(p) for p in processes.split(",") if p.strip()]
    except ValueError:
        raise _fail(f"--clients and --processes must be whole numbers separated by commas, "
                    f"got {clients!r} and {processes!r}") from None
    _need_matplotlib(plot)
    try:
        check_settings(counts, duration, warmup, pool_size)
        setups = choose_setups(store, numbers)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    try:
        if any(setup.store == "redis" for setup in setups):
            binary()  # before anything is measured: redis-server is there
        with shown(as_json) as progress:
            result = run_api(clients=counts, setups=setups, duration=duration, warmup=warmup, pool_size=pool_size,
                             profile=profile, progress=progress)
    except RedisUnavailable as exc:
        raise _fail(str(exc)) from None
    finish(result, result.tables(), as_json=as_json, record=record, output=output,
           plot=Plot(result.figure, "api", API_TABLE_HEADER,
                     "Pairs/s and p99 against clients, each set-up and the bare HTTP server") if plot else None)
    if profile is not None and not as_json:
        for setup in setups:
            for index in range(1, setup.processes + 1):
                if (path := profile_path(profile, setup, index)).exists():
                    typer.echo(f"-- {path}\n{profile_summary(path)}", err=True)
    if not result.ok:
        raise typer.Exit(1)


@_command("load")
def bench_load(
    seconds: Annotated[float, typer.Option(help="Seconds the clients check out and return, per set-up.")] = 60.0,
    clients: Annotated[int, typer.Option(help="Concurrent clients, each on a keep-alive connection.", min=1,
                                         max=5000)] = 200,
    store: Annotated[str, typer.Option(help="The load part's set-ups: sqlite (one process), redis (two API "
                                            "processes and a manager on a redis-server) or both.")] = "both",
    pool_size: Annotated[int, typer.Option(help="Ready VMs in the pool at the start; back-to-back checkouts "
                                                "outrun the refill, so it must last the run (the simulator "
                                                "is given hosts for it and a quarter more).", min=1)] = 48000,
    redis_pool_size: Annotated[int, typer.Option(help="The same on Redis (at most --pool-size).", min=1)] = 24000,
    sse: Annotated[int, typer.Option(help="Event streams held open in the slow-client part.", min=0)] = 2000,
    idle: Annotated[int, typer.Option(help="Idle keep-alive connections held open.", min=0)] = 500,
    slow: Annotated[int, typer.Option(help="Clients each sending a request body one byte a second.", min=0)] = 20,
    phase_seconds: Annotated[float, typer.Option(help="Seconds the steady client is measured in each slow-client "
                                                      "phase.")] = 10.0,
    steady_rate: Annotated[float, typer.Option(help="The steady client's checkout + return pairs a second.")]
    = 50.0,
    as_json: JsonOption = False,
    record: RecordOption = False,
    output: OutputOption = BENCHMARKS_MD,
) -> None:
    """200 clients checking out and returning against one process on sqlite and two API processes
    on Redis (duplicates, answers >= 500, checkout p99), then checkout p99 of a steady client
    beside slow bodies, idle keep-alives and event streams against its quiet figure.

    Example: corral bench load --seconds 10 --sse 500 --record
    """
    from corral.bench.load import LoadBenchSettings, run_load_bench
    from corral.bench.redisd import RedisUnavailable, binary

    settings = LoadBenchSettings(seconds=seconds, clients=clients, stores=store, pool_size=pool_size,
                                 redis_pool_size=redis_pool_size, sse=sse,
                                 idle=idle, slow=slow, phase_seconds=phase_seconds, steady_rate=steady_rate)
    try:
        settings.check()
        if any(setup.store == "redis" for setup in settings.setups):
            binary()
    except (ValueError, RedisUnavailable) as exc:
        raise _fail(str(exc)) from None
    measure(settings, run_load_bench, as_json=as_json, record=record, output=output)


@_command("inventory")
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
    plot: PlotOption = False,
) -> None:
    """Initial load, memory, change-to-event latency and CPU of the live inventory, against
    polling every host again and again.

    Example: corral bench inventory --hosts 100 --vms 2000 --steps 2000,10000 --plot
    """
    from corral.bench.inventory import run_inventory
    from corral.bench.inventory_report import INVENTORY_TABLE_HEADER
    from corral.bench.inventory_settings import InventoryBenchSettings

    try:
        rates = [float(r) for r in steps.split(",") if r.strip()]
        settings = InventoryBenchSettings(hosts=hosts, vms=vms, pools=pools, rate=rate, duration=duration,
                                          idle=idle, poll_interval=poll_interval, threads=threads, steps=rates,
                                          step_duration=step_duration)
        settings.check()
    except ValueError as exc:
        raise _fail(str(exc)) from None
    _need_matplotlib(plot)
    with shown(as_json) as progress:
        result = run_inventory(settings, progress=progress)
    tables = [result.table(), *([result.steps_table()] if result.corral.steps else [])]
    finish(result, tables, as_json=as_json, record=record, output=output,
           plot=Plot(result.figure, "inventory", INVENTORY_TABLE_HEADER,
                     "Change-to-event latency against the change rate") if plot else None)
    if not result.ok:
        raise typer.Exit(1)


@_command("scheduler")
def bench_scheduler(
    quick: Annotated[bool, typer.Option("--quick", help="Small sizes (200 hosts / 1,000 VMs, 16 hosts / 300 VMs), "
                                                        "for tests.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of the generated hosts and VMs.")] = 1,
    as_json: JsonOption = False,
    record: RecordOption = False,
    output: OutputOption = BENCHMARKS_MD,
) -> None:
    """Placements/s of the scheduler against greedy baselines (same answers required), and how
    evenly it loads hosts against vmpooler's rules.

    Example: corral bench scheduler --quick --json
    """
    _need_numpy("scheduler")
    from corral.bench.scheduler import run_scheduler
    from corral.bench.scheduler_settings import SchedulerBenchSettings

    settings = SchedulerBenchSettings.quick_settings(seed) if quick else SchedulerBenchSettings(seed=seed)
    with shown(as_json) as progress:
        result = run_scheduler(settings, progress=progress)
    finish(result, result.tables(), as_json=as_json, record=record, output=output)
    if not result.ok:
        raise typer.Exit(1)


@_command("massrun")
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
    limit, and HA restarts after a host goes down, alone and with 1,000 refills queued.

    Example: corral bench massrun --quick
    """
    from corral.bench.massrun import run_massrun
    from corral.bench.massrun_settings import MassRunSettings

    settings = MassRunSettings.quick_settings() if quick else MassRunSettings()
    if time_scale is not None:
        settings.time_scale = time_scale
    if serial_sample is not None:
        settings.serial_sample = serial_sample
    if repeats is not None:
        settings.repeats = repeats
    measure(settings, run_massrun, as_json=as_json, record=record, output=output)


@_command("order")
def bench_order(
    busy_size: Annotated[int, typer.Option(help="Size of each of the two pools refilling from empty.",
                                           min=1, max=10_000)] = 50,
    empty_size: Annotated[int, typer.Option(help="Size of the full pool emptied by checkouts.",
                                            min=1, max=1000)] = 5,
    task_limit: Annotated[int, typer.Option(help="Create calls in flight at most.", min=1, max=1000)] = 10,
    time_scale: Annotated[float, typer.Option(help="Simulator time scale (1.0 = real seconds).", min=0.0001,
                                              max=10.0)] = 0.1,
    repeats: Annotated[int, typer.Option(help="Runs of each order, alternating; the median counts.",
                                         min=1, max=100)] = 3,
    as_json: JsonOption = False,
    record: RecordOption = False,
    output: OutputOption = BENCHMARKS_MD,
) -> None:
    """How long a pool emptied while two others refill waits for its first VM, with refills in
    order of need and first come, first served (one VM per create call, as on vSphere).

    Example: corral bench order --record
    """
    from corral.bench.order import OrderSettings, run_order

    measure(OrderSettings(busy_size=busy_size, empty_size=empty_size, task_limit=task_limit,
                          time_scale=time_scale, repeats=repeats), run_order,
            as_json=as_json, record=record, output=output)


@_command("failover")
def bench_failover(
    kills: Annotated[int, typer.Option(help="kill -9 rounds, for the standby takeover and for the baseline.",
                                       min=1, max=100)] = 10,
    ttl: Annotated[float, typer.Option(help="Lease time to live in seconds (lease_ttl of the ha section).",
                                       min=1.0, max=60.0)] = 5.0,
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
        with shown(as_json) as progress:
            result = run_failover(kills, ttl, progress=progress)
    except RedisUnavailable as exc:
        raise _fail(str(exc)) from None
    finish(result, result.tables(), as_json=as_json, record=record, output=output)
    if not result.ok:
        raise typer.Exit(1)


@_command("crash")
def bench_crash(
    store: Annotated[str, typer.Option(help="sqlite (one process), redis (one process) or redis-ha (an API "
                                            "process and two managers; the owner is killed each time).")] = "sqlite",
    kills: Annotated[int, typer.Option(help="kill -9s during the fill.", min=1, max=200)] = 20,
    seed: Annotated[int | None, typer.Option(help="Seed of the kill moments (printed when not given), to replay "
                                                  "a run.")] = None,
    as_json: JsonOption = False,
    record: RecordOption = False,
    output: OutputOption = BENCHMARKS_MD,
) -> None:
    """kill -9 at seeded random moments of a 500-VM fill with checkouts, returns and on-demand
    requests running; after each restart, count leaked VMs, VMs handed out twice, lost records
    and held VMs not running, and time the recovery; after the last kill, the convergence.

    Example: corral bench crash --store redis-ha --kills 20 --seed 7
    """
    from corral.bench.crash import CrashSettings, run_crash
    from corral.bench.redisd import RedisUnavailable

    try:
        measure(CrashSettings(store=store, kills=kills, seed=seed), run_crash, as_json=as_json, record=record,
                output=output)
    except RedisUnavailable as exc:
        raise _fail(str(exc)) from None


@_command("vsphere")
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
    wall time, where each VM's time goes, peak sessions and vSphere calls.

    Example: corral bench vsphere --pools 2 --vms-per-pool 5 --clone-delay-ms 200 --no-wide
    """
    from corral.bench.vcsim import VcsimUnavailable
    from corral.bench.vsphere import run_vsphere
    from corral.bench.vsphere_settings import VsphereBenchSettings

    settings = VsphereBenchSettings(pools=pools, vms_per_pool=vms_per_pool, clone_delay_ms=clone_delay_ms,
                                    hosts=hosts, task_limit=task_limit, wide=wide)
    try:
        settings.check()
    except ValueError as exc:
        raise _fail(str(exc)) from None
    try:
        with shown(as_json) as progress:
            result = run_vsphere(settings, progress=progress)
    except VcsimUnavailable as exc:
        raise _fail(str(exc)) from None
    finish(result, result.tables(), as_json=as_json, record=record, output=output)
    if not result.ok:
        raise typer.Exit(1)


@_command("libvirt")
def bench_libvirt(
    vms: Annotated[int, typer.Option(help="VMs per host (3 hosts).")] = 200,
    changes: Annotated[int, typer.Option(help="Domain changes timed to the change feed, corral and baseline "
                                               "each.")] = 500,
    poll_interval: Annotated[float, typer.Option(help="Baseline: seconds between its polls of every host "
                                                      "(oVirt's VdsRefreshRate: 3).")] = 3.0,
    task_limit: Annotated[int, typer.Option(help="Create calls in flight: corral's runner, the baseline's "
                                                 "threads.")] = 10,
    as_json: JsonOption = False,
    record: RecordOption = False,
    output: OutputOption = BENCHMARKS_MD,
) -> None:
    """Fill 3 hosts of libvirt's test driver through the real pool manager, counting libvirt calls
    per VM against a naive client (one call per operation, states learnt by polling), and time
    domain changes to the provider's change feed against the naive client's polls.

    Example: corral bench libvirt --vms 50 --changes 200 --poll-interval 1
    """
    from corral.bench.libvirt_settings import LibvirtBenchSettings
    from corral.providers.registry import LIBVIRT_MISSING

    try:
        import libvirt  # noqa: F401
    except ImportError:
        raise _fail(f"corral bench libvirt: {LIBVIRT_MISSING}") from None
    from corral.bench.libvirt import run_libvirt

    settings = LibvirtBenchSettings(vms_per_host=vms, changes=changes, poll_interval=poll_interval,
                                    task_limit=task_limit)
    measure(settings, run_libvirt, as_json=as_json, record=record, output=output)


@_command("autosize")
def bench_autosize(
    seed: Annotated[int, typer.Option(help="Seed of the generated day.")] = 1,
    day_hours: Annotated[float, typer.Option(help="The day's shape squeezed into this many hours, at the same "
                                                  "rates per hour (a short trace for tests).")] = 24.0,
    bursts: Annotated[int, typer.Option(help="Bursts of --burst-size checkouts within a minute, in working "
                                             "hours.")] = 6,
    burst_size: Annotated[int, typer.Option(help="Checkouts in one burst.")] = 50,
    busy_per_hour: Annotated[float, typer.Option(help="Checkouts/h in working hours.")] = 180.0,
    latency_scale: Annotated[float, typer.Option(help="The simulator's default latencies (create call, clone, "
                                                      "boot) multiplied by it.")] = 1.0,
    jitter: Annotated[float, typer.Option(help="Each latency times a random factor in 1 ± jitter.")] = 0.2,
    min_size: Annotated[int, typer.Option(help="Autosizing: min_size.")] = 1,
    max_size: Annotated[int, typer.Option(help="Autosizing: max_size.")] = 100,
    target_wait: Annotated[float, typer.Option(help="Autosizing: target_wait, the chance of finding the pool "
                                                    "empty during one replenishment time.")] = 0.01,
    scale_down_after: Annotated[float, typer.Option(help="Autosizing: scale_down_after, seconds.")] = 900.0,
    window: Annotated[float, typer.Option(help="Autosizing: the demand's long window, seconds.")] = 600.0,
    as_json: JsonOption = False,
    record: RecordOption = False,
    output: OutputOption = BENCHMARKS_MD,
    plot: PlotOption = False,
) -> None:
    """A generated day of checkouts replayed in simulated time against a pool fixed at the
    average demand, one fixed at the peak, and an autosized one: checkouts that found the pool
    empty, their waits, idle ready VM-hours and clones made.

    Example: corral bench autosize --record --plot
    """
    from corral.bench.autosize import run_autosize
    from corral.bench.autosize_report import AUTOSIZE_TABLE_HEADER
    from corral.bench.autosize_settings import AutosizeBenchSettings

    settings = AutosizeBenchSettings(seed=seed, day_hours=day_hours, bursts=bursts, burst_size=burst_size,
                                     busy_per_hour=busy_per_hour, latency_scale=latency_scale, jitter=jitter,
                                     min_size=min_size, max_size=max_size, target_wait=target_wait,
                                     scale_down_after=scale_down_after, window=window)
    _need_matplotlib(plot)
    measure(settings, run_autosize, as_json=as_json, record=record, output=output,
            plot=("autosize", AUTOSIZE_TABLE_HEADER,
                  "Ready VMs over one simulated day: fixed at the average, fixed at the peak, autosized")
            if plot else None)


@_command("soak")
def bench_soak(
    minutes: Annotated[float, typer.Option(help="Minutes of load (the first tenth, at least a minute and at most a "
                                                "quarter, is warm-up).")] = 30.0,
    seed: Annotated[int, typer.Option(help="Seed of the checkouts' pools and hold times.")] = 1,
    rate: Annotated[float, typer.Option(help="Checkouts/s, on a fixed schedule.")] = 20.0,
    clients: Annotated[int, typer.Option(help="HTTP keep-alive connections the checkouts and returns share.")] = 4,
    pools: Annotated[int, typer.Option(help="Pools, each checked out from at random.")] = 3,
    pool_size: Annotated[int, typer.Option(help="Ready VMs each pool is kept at.")] = 40,
    ready_s: Annotated[float, typer.Option(help="Real seconds a refill takes (the simulator's create call, clone "
                                                "and boot).")] = 2.5,
    as_json: JsonOption = False,
    record: RecordOption = False,
    output: OutputOption = BENCHMARKS_MD,
    plot: PlotOption = False,
) -> None:
    """A steady checkout/return load with refills against one real `corral serve` (simulator,
    sqlite) for --minutes: the server's resident memory, open fds, threads and store size over
    time, and checkout p50/p99 per interval. Target: RSS grows less than 5 % after the warm-up,
    and open fds stay flat.

    Example: corral bench soak --minutes 30 --record --plot
    """
    from corral.bench.soak import run_soak
    from corral.bench.soak_report import SOAK_TABLE_HEADER
    from corral.bench.soak_settings import SoakSettings

    _need_matplotlib(plot)
    measure(SoakSettings(minutes=minutes, seed=seed, rate=rate, clients=clients, pools=pools, pool_size=pool_size,
                         ready_s=ready_s), run_soak, as_json=as_json, record=record, output=output,
            plot=("soak", SOAK_TABLE_HEADER, "Server RSS, open fds, store size and checkout p50/p99 over a soak run")
            if plot else None)

"""The central runner: priority queue, aggregation window, bulk per-host dispatch, reruns."""

from corral.runner.gate import Gate
from corral.runner.model import Dispatch, NotRecorded, Placing, RunnerClient, RunnerSettings, RunnerStats, Where
from corral.runner.queue import WorkQueue
from corral.runner.runner import Runner
from corral.runner.work import Op, Priority, QueueFull, Work

__all__ = [
    "Dispatch", "Gate", "NotRecorded", "Op", "Placing", "Priority", "QueueFull", "Runner", "RunnerClient",
    "RunnerSettings", "RunnerStats", "Where", "Work", "WorkQueue",
]

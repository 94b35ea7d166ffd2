"""The central runner: priority queue, aggregation window, bulk per-host dispatch, reruns."""

from corral.runner.gate import Gate
from corral.runner.queue import WorkQueue
from corral.runner.runner import Dispatch, Runner, RunnerClient, RunnerSettings, RunnerStats
from corral.runner.work import Op, Priority, QueueFull, Work

__all__ = [
    "Dispatch", "Gate", "Op", "Priority", "QueueFull", "Runner", "RunnerClient", "RunnerSettings",
    "RunnerStats", "Work", "WorkQueue",
]

"""Placement: filters, weights, pending reservations, migration at checkout, rebalancing."""

from corral.scheduling.model import CpuNeed, Demand, HostLoad, Placement, Request
from corral.scheduling.reservations import Reservations
from corral.scheduling.scheduler import Scheduler, SchedulerSettings

__all__ = ["CpuNeed", "Demand", "HostLoad", "Placement", "Request", "Reservations", "Scheduler",
           "SchedulerSettings"]

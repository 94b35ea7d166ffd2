"""Placement: filters, weights, pending reservations, migration at checkout, rebalancing.

:data:`FILTERS`, :data:`WEIGHTS` and :data:`POLICIES` name every filter, weight and policy:
the names the configuration may use.
"""

from corral.scheduling.filters import FILTERS, Filter
from corral.scheduling.model import CpuNeed, Demand, HostLoad, Placement, Rejection, Request
from corral.scheduling.reservations import Reservations
from corral.scheduling.scheduler import Scheduler, SchedulerSettings
from corral.scheduling.weights import POLICIES, WEIGHTS, Weight

__all__ = ["FILTERS", "POLICIES", "WEIGHTS", "CpuNeed", "Demand", "Filter", "HostLoad", "Placement", "Rejection",
           "Request", "Reservations", "Scheduler", "SchedulerSettings", "Weight"]

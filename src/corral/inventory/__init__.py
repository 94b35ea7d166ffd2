"""The live inventory: hosts and VMs in memory, fed by provider change feeds; analysers; the event bus.

- :mod:`.repository` — one provider's hosts, clusters and VMs, indexed, updated in place;
- :mod:`.analysers` — (old, new) record pairs into domain events, host-down grace period;
- :mod:`.bus` — publish without blocking, one bounded queue per subscriber, resync on overflow;
- :mod:`.monitor` — the fetch → analyse → publish → update loop per endpoint, and reconcile.
"""

from corral.inventory.analysers import Analyser, AnalyserSettings
from corral.inventory.bus import RESYNC, EventBus, Resync, Subscription
from corral.inventory.monitor import Inventory, MonitorSettings, ProviderMonitor
from corral.inventory.repository import Changes, Repository

__all__ = [
    "RESYNC",
    "Analyser",
    "AnalyserSettings",
    "Changes",
    "EventBus",
    "Inventory",
    "MonitorSettings",
    "ProviderMonitor",
    "Repository",
    "Resync",
    "Subscription",
]

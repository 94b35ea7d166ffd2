"""Pool lifecycle: pending -> ready -> running -> completed, TTLs, refill, orphans, crash recovery."""

from corral.pools.manager import PoolManager
from corral.pools.settings import ManagerSettings

__all__ = ["ManagerSettings", "PoolManager"]

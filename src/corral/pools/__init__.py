"""Pool lifecycle: pending -> ready -> running -> completed, TTLs, refill, orphans, crash recovery."""

from corral.pools.manager import ManagerSettings, PoolManager

__all__ = ["ManagerSettings", "PoolManager"]

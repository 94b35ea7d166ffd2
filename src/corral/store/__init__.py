"""Durable VM state: sqlite (embedded default) or Redis (shared by several corral processes)."""

from corral.store.base import Fenced, Store, StoreError, StoreUnavailable, TransitionRejected

__all__ = ["Fenced", "Store", "StoreError", "StoreUnavailable", "TransitionRejected"]

"""Durable VM state: sqlite (embedded default); redis comes later."""

from corral.store.base import Store, StoreError, TransitionRejected

__all__ = ["Store", "StoreError", "TransitionRejected"]
